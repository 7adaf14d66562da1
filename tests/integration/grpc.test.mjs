// gRPC through the gateway (upstreams.X.protocol: grpc: HTTP/2 cleartext with prior knowledge to
// the targets), end to end through the real binary, with grpc-js clients and a grpc-js server
// (the service of fixtures/grpc_test.proto, behaving as grpc's interop server):
// - the standard interop cases (grpc/doc/interop-test-descriptions.md), each run directly against
//   the server and through the gateway with the same outcome: empty_unary, large_unary,
//   client_streaming, server_streaming, ping_pong (full duplex), empty_stream,
//   cancel_after_begin, cancel_after_first_response, timeout_on_sleeping_server, custom_metadata,
//   status_code_and_message, special_status_message, unimplemented_method, unimplemented_service;
//   and the upstream gets the client's "te: trailers";
// - the gateway's own answers to gRPC requests: HTTP 200, application/grpc, trailers-only (one
//   HEADERS frame with END_STREAM, no DATA) with grpc-status mapped from the gateway's HTTP status
//   and the gateway's message in grpc-message (percent-encoded), x-request-id and the error's
//   headers: no route, key_auth, acl, rate_limit, upstream down, the route's timeout, an open
//   circuit breaker; seen by Node's HTTP/2 client frame by frame, and by a grpc-js client;
// - grpc-timeout: sent upstream no larger than the client's; past it the client gets
//   DEADLINE_EXCEEDED and the upstream call is cancelled (also with an upstream that ignores
//   grpc-timeout, so that the gateway itself must keep the deadline);
// - a client that cancels a server stream mid-way: the upstream sees RST_STREAM CANCEL;
// - trailers (text, -bin, repeated) and a non-OK status from the upstream, exactly.
// The server records what it saw per call (keyed by an x-test-id metadata entry): its metadata,
// the raw HTTP/2 request head (grpc-timeout), whether the handler saw a cancel before it finished,
// and how the HTTP/2 stream ended (rstCode).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { startGatehouse, waitFor, freePort } from './harness.mjs';
import { newId, md, within, reader, decodeGrpcMessage, bindInsecure, onRawStreams } from './grpc_client.mjs';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;
const Status = grpc.status;

const PROTO = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures/grpc_test.proto');
const packageDefinition = protoLoader.loadSync(PROTO, {
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const testing = grpc.loadPackageDefinition(packageDefinition).grpc.testing;

const zeros = (n) => Buffer.alloc(n);
const isZeros = (b) => b.every((x) => x === 0);

// --- the test server ---------------------------------------------------------------------------

// The interop server (grpc's interop/server), with grpc-js:
//   EmptyCall, UnaryCall (response_size zero bytes, or response_status), StreamingInputCall (the
//   aggregated size), StreamingOutputCall and FullDuplexCall (one response per
//   response_parameters entry, after interval_us; response_status ends the call), HalfDuplexCall
//   (answers once the client has half-closed); UnimplementedCall is left out (grpc-js answers
//   UNIMPLEMENTED), and so is UnimplementedService.
// Every call echoes x-grpc-test-echo-initial as initial metadata and
// x-grpc-test-echo-trailing-bin as a trailer. Test knobs, as metadata: x-sleep-ms (UnaryCall
// sleeps that long first; a cancel ends the sleep), x-hold-ms (StreamingInputCall waits that long
// after the client's half-close before it answers), x-test-trailers (UnaryCall ends with
// FAILED_PRECONDITION and trailers: "separate" after initial metadata, "only" trailers-only).
//   calls:   x-test-id -> { method, metadata, requestBytes, done, cancelled (the handler saw a
//            cancel before it had finished), deadline }
//   streams: x-test-id -> { headers (the raw HTTP/2 request head), closed, rstCode }
const TRAILER_STATUS = { code: Status.FAILED_PRECONDITION, details: 'precondition failed: 100% "not" met ☺' };
function trailerMetadata() {
  const md = new grpc.Metadata();
  md.set('x-trailer-text', 'trailer value');
  md.set('x-trailer-bin', Buffer.from([0, 1, 2, 0xfe, 0xff]));
  md.add('x-trailer-multi', 'first');
  md.add('x-trailer-multi', 'second');
  return md;
}

async function startTestServer() {
  const calls = new Map();
  const streams = new Map();

  const track = (call, method) => {
    const id = call.metadata.get('x-test-id')[0];
    const timers = new Map();  // timer -> resolve
    const r = { id, method, metadata: call.metadata, requestBytes: 0, done: false, cancelled: false,
      deadline: call.getDeadline() };
    call.on('error', () => {});
    // grpc-js also emits 'cancelled' once the call has ended normally: a cancel is one that comes
    // before the handler has finished, or on a stream the client reset with CANCEL (grpc-js
    // takes a client's RST_STREAM for a half-close first, so a client-streaming handler may
    // have answered it before its 'cancelled').
    const cancel = () => {
      r.cancelled = true;
      for (const [t, resolve] of timers) { clearTimeout(t); resolve(false); }
      timers.clear();
    };
    call.on('cancelled', () => {
      if (!r.done) return cancel();
      const raw = id && streams.get(id);
      if (!raw) return;
      const check = () => { if (raw.rstCode === NGHTTP2_CANCEL) cancel(); };
      if (raw.closed) check(); else raw.onClose.push(check);
    });
    // Resolves true after ms, or false at once when the call is cancelled meanwhile.
    r.pause = (ms) => new Promise((resolve) => {
      if (r.cancelled) return resolve(false);
      const t = setTimeout(() => { timers.delete(t); resolve(true); }, ms);
      t.unref();  // a call left hanging must not keep the test process alive
      timers.set(t, resolve);
    });
    if (id) calls.set(id, r);
    return r;
  };

  const echo = (call) => {
    const initial = call.metadata.get('x-grpc-test-echo-initial');
    if (initial.length) {
      const md = new grpc.Metadata();
      md.set('x-grpc-test-echo-initial', initial[0]);
      call.sendMetadata(md);
    }
    const trailing = new grpc.Metadata();
    const bin = call.metadata.get('x-grpc-test-echo-trailing-bin');
    if (bin.length) trailing.set('x-grpc-test-echo-trailing-bin', bin[0]);
    return trailing;
  };

  const statusOf = (s, trailing) =>
    (s && s.code ? { code: s.code, details: s.message, metadata: trailing } : null);

  // Sends the responses a StreamingOutputCallRequest asks for; false when cancelled meanwhile.
  const respond = async (call, r, req) => {
    for (const p of req.response_parameters) {
      if (p.interval_us && !(await r.pause(p.interval_us / 1000))) return false;
      if (r.cancelled) return false;
      call.write({ payload: { type: 'COMPRESSABLE', body: zeros(p.size) } });
    }
    return !r.cancelled;
  };

  const impl = {
    EmptyCall(call, cb) {
      const r = track(call, 'EmptyCall');
      const trailing = echo(call);
      r.done = true;
      cb(null, {}, trailing);
    },
    async UnaryCall(call, cb) {
      const r = track(call, 'UnaryCall');
      r.requestBytes = call.request.payload ? call.request.payload.body.length : 0;
      const mode = call.metadata.get('x-test-trailers')[0];
      if (mode === 'separate') {
        const md = new grpc.Metadata();
        md.set('x-initial', 'initial value');
        call.sendMetadata(md);
      }
      const trailing = echo(call);
      const sleepMs = Number(call.metadata.get('x-sleep-ms')[0] || 0);
      if (sleepMs && !(await r.pause(sleepMs))) return;
      r.done = true;
      if (mode) return cb({ ...TRAILER_STATUS, metadata: trailerMetadata() });
      const status = statusOf(call.request.response_status, trailing);
      if (status) return cb(status);
      cb(null, { payload: { type: 'COMPRESSABLE', body: zeros(call.request.response_size) } }, trailing);
    },
    async StreamingOutputCall(call) {
      const r = track(call, 'StreamingOutputCall');
      const trailing = echo(call);
      if (!(await respond(call, r, call.request))) return;
      r.done = true;
      const status = statusOf(call.request.response_status, trailing);
      if (status) call.emit('error', status); else call.end(trailing);
    },
    StreamingInputCall(call, cb) {
      const r = track(call, 'StreamingInputCall');
      const trailing = echo(call);
      let size = 0;
      call.on('data', (m) => { size += m.payload ? m.payload.body.length : 0; });
      call.on('end', async () => {
        const holdMs = Number(call.metadata.get('x-hold-ms')[0] || 0);
        if (r.cancelled || (holdMs && !(await r.pause(holdMs)))) return;
        r.requestBytes = size;
        r.done = true;
        cb(null, { aggregated_payload_size: size }, trailing);
      });
    },
    FullDuplexCall(call) {
      const r = track(call, 'FullDuplexCall');
      const trailing = echo(call);
      let chain = Promise.resolve();
      let finished = false;
      const finish = (status) => {
        if (finished || r.cancelled) return;
        finished = true;
        r.done = true;
        if (status) call.emit('error', status); else call.end(trailing);
      };
      call.on('data', (req) => {
        chain = chain.then(async () => {
          if (finished) return;
          r.requestBytes += req.payload ? req.payload.body.length : 0;
          if (!(await respond(call, r, req))) return;
          const status = statusOf(req.response_status, trailing);
          if (status) finish(status);
        });
      });
      call.on('end', () => { chain = chain.then(() => finish(null)); });
    },
    HalfDuplexCall(call) {
      const r = track(call, 'HalfDuplexCall');
      const trailing = echo(call);
      const reqs = [];
      call.on('data', (req) => reqs.push(req));
      call.on('end', async () => {
        for (const req of reqs) if (!(await respond(call, r, req))) return;
        r.done = true;
        call.end(trailing);
      });
    },
  };

  const server = new grpc.Server();
  server.addService(testing.TestService.service, impl);
  const port = await bindInsecure(server);
  // The raw request heads (grpc-js drops grpc-timeout from the metadata it hands to handlers):
  // from the HTTP/2 servers grpc-js made, before grpc-js sees each stream.
  onRawStreams(server, (stream, headers) => {
    const id = headers['x-test-id'];
    if (!id) return;
    const raw = { headers: { ...headers }, closed: false, rstCode: null, onClose: [] };
    streams.set(id, raw);
    stream.on('close', () => {
      raw.closed = true;
      raw.rstCode = stream.rstCode;
      for (const f of raw.onClose) f();
    });
  });
  return { port, calls, streams, close: () => server.forceShutdown() };
}

// An upstream that takes any gRPC call and answers OK after `delayMs`, paying no heed to
// grpc-timeout (Node's http2 server): so that only the gateway can keep a client's deadline.
// streams: { headers, closed, rstCode } per stream.
async function startDeafUpstream(delayMs) {
  const streams = [];
  const sessions = new Set();
  const server = http2.createServer();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); s.on('error', () => {}); });
  server.on('stream', (stream, headers) => {
    const raw = { headers: { ...headers }, closed: false, rstCode: null };
    streams.push(raw);
    stream.on('error', () => {});
    stream.resume();
    const timer = setTimeout(() => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
      stream.end(Buffer.alloc(5));
    }, delayMs);
    stream.on('close', () => { clearTimeout(timer); raw.closed = true; raw.rstCode = stream.rstCode; });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port, streams,
    close: () => { for (const s of sessions) s.destroy(); server.close(); },
  };
}

const server = await startTestServer();
after(() => server.close());

// Waits until the server's call `id` has ended; asserts that its handler saw a cancel and that
// the stream came to an end by the client's RST_STREAM CANCEL.
async function serverSawCancel(id) {
  const state = () => {
    const rec = server.calls.get(id);
    const raw = server.streams.get(id);
    return { handler: rec && { done: rec.done, cancelled: rec.cancelled }, stream: raw && { closed: raw.closed, rstCode: raw.rstCode } };
  };
  try {
    await waitFor(() => server.calls.get(id)?.cancelled && server.streams.get(id)?.closed, 5000);
  } catch {
    assert.fail(`the server did not see the cancel: ${JSON.stringify(state())}`);
  }
  assert.equal(server.streams.get(id).rstCode, NGHTTP2_CANCEL, `RST_STREAM CANCEL upstream: ${JSON.stringify(state())}`);
}

// Cancels the call `r` reads (test id `id`): the client's status, and what the server saw of it.
async function cancelled(r, id) {
  r.call.cancel();
  const status = await r.status;
  assert.equal(status.code, Status.CANCELLED);
  const rec = server.calls.get(id);
  await serverSawCancel(id);
  return { code: status.code, serverCancelled: rec.cancelled, rstCode: server.streams.get(id).rstCode };
}

// --- clients -------------------------------------------------------------------------------------

const clients = [];
function clientsFor(port) {
  const target = `127.0.0.1:${port}`;
  const c = {
    test: new testing.TestService(target, grpc.credentials.createInsecure()),
    unimplemented: new testing.UnimplementedService(target, grpc.credentials.createInsecure()),
  };
  clients.push(c.test, c.unimplemented);
  return c;
}
after(() => { for (const c of clients) c.close(); });

// A unary (or client-streaming: `start` writes the messages) call: resolves { err, res, initial,
// status } once its status is in.
function unary(client, method, req, { metadata = new grpc.Metadata(), deadline } = {}) {
  return new Promise((resolve) => {
    const out = { err: null, res: null, initial: null, status: null };
    const call = client[method](req, metadata, deadline ? { deadline } : {},
      (err, res) => { out.err = err; out.res = res; });
    call.on('metadata', (m) => { out.initial = m; });
    call.on('status', (s) => { out.status = s; resolve(out); });
  });
}

// The entries of metadata (a grpc.Metadata) named in `keys`: { key: [values] } (-bin values as
// hex), for comparisons that leave out what the gateway may add (x-request-id, date, ...).
function pick(metadata, keys) {
  const out = {};
  if (!metadata) return out;
  for (const k of keys) {
    const v = metadata.get(k);
    if (v.length) out[k] = v.map((x) => (Buffer.isBuffer(x) ? `hex:${x.toString('hex')}` : x));
  }
  return out;
}

// --- the gateways --------------------------------------------------------------------------------

const gateways = [];
after(async () => { for (const gh of gateways) await gh.stop('SIGKILL'); });

// A gateway on a port of its own, listening for HTTP/1.1 and h2c, with `yaml` for the rest of its
// config; stopped when the file's tests end.
async function gateway(yaml) {
  const gh = await startGatehouse(listen(await freePort()) + yaml);
  gateways.push(gh);
  return gh;
}
const listen = (port) =>
  `server: { workers: 1, listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ] }\n`;

// The interop gateway: TestService and UnimplementedService to the test server.
let interop = null;
function interopGateway() {
  interop ??= (async () => {
    const gh = await gateway(`
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
routes:
  - { name: grpc, match: { path: /grpc.testing.TestService/* }, to: g }
  - { name: grpc-unimplemented-service, match: { path: /grpc.testing.UnimplementedService/* }, to: g }
`);
    return { gh, ...clientsFor(gh.port) };
  })();
  return interop;
}
const direct = clientsFor(server.port);

// --- 1. interop cases ----------------------------------------------------------------------------

// Each case runs against `c` (clients) and returns its outcome; it asserts what the interop
// description asks for, and the gateway's outcome must equal the direct one.
const interopCases = {
  async empty_unary(c) {
    const out = await unary(c.test, 'EmptyCall', {}, { metadata: md(newId('empty_unary')) });
    assert.equal(out.status.code, Status.OK, out.status.details);
    assert.deepEqual(out.res, {});
    return { code: out.status.code, res: out.res };
  },

  async large_unary(c) {
    const id = newId('large_unary');
    const out = await unary(c.test, 'UnaryCall',
      { response_size: 314159, payload: { body: zeros(271828) } }, { metadata: md(id) });
    assert.equal(out.status.code, Status.OK, out.status.details);
    assert.equal(out.res.payload.body.length, 314159);
    assert.ok(isZeros(out.res.payload.body));
    assert.equal(server.calls.get(id).requestBytes, 271828);
    return { code: out.status.code, size: out.res.payload.body.length, received: 271828 };
  },

  async client_streaming(c) {
    const id = newId('client_streaming');
    const out = await new Promise((resolve) => {
      const o = {};
      const call = c.test.StreamingInputCall(md(id), (err, res) => { o.err = err; o.res = res; });
      call.on('status', (s) => { o.status = s; resolve(o); });
      for (const n of [27182, 8, 1828, 45904]) call.write({ payload: { body: zeros(n) } });
      call.end();
    });
    assert.equal(out.status.code, Status.OK, out.status.details);
    assert.equal(out.res.aggregated_payload_size, 74922);
    return { code: out.status.code, aggregated: out.res.aggregated_payload_size };
  },

  async server_streaming(c) {
    const sizes = [31415, 9, 2653, 58979];
    const r = reader(c.test.StreamingOutputCall(
      { response_parameters: sizes.map((size) => ({ size })) }, md(newId('server_streaming'))));
    const got = (await r.all()).map((m) => m.payload.body.length);
    const status = await r.status;
    assert.equal(status.code, Status.OK, status.details);
    assert.deepEqual(got, sizes);
    return { code: status.code, sizes: got };
  },

  async ping_pong(c) {
    const requests = [27182, 8, 1828, 45904];
    const responses = [31415, 9, 2653, 58979];
    const r = reader(c.test.FullDuplexCall(md(newId('ping_pong'))));
    const got = [];
    for (let i = 0; i < 4; i++) {
      // Sent only once the previous response is in: the gateway must stream both ways.
      r.call.write({ response_parameters: [{ size: responses[i] }], payload: { body: zeros(requests[i]) } });
      const m = await r.next();
      assert.ok(m, `response ${i + 1} came`);
      got.push(m.payload.body.length);
    }
    r.call.end();
    assert.equal(await r.next(), null, 'no response after the last');
    const status = await r.status;
    assert.equal(status.code, Status.OK, status.details);
    assert.deepEqual(got, responses);
    return { code: status.code, sizes: got };
  },

  async empty_stream(c) {
    const r = reader(c.test.FullDuplexCall(md(newId('empty_stream'))));
    r.call.end();
    const got = await r.all();
    const status = await r.status;
    assert.equal(status.code, Status.OK, status.details);
    assert.equal(got.length, 0);
    return { code: status.code, messages: got.length };
  },

  async cancel_after_begin(c) {
    const id = newId('cancel_after_begin');
    let status;
    const done = new Promise((resolve) => {
      // A cancel from grpc-js is an END_STREAM then RST_STREAM CANCEL (Node's close()): x-hold-ms
      // keeps the server from answering the half-close before the reset comes.
      const call = c.test.StreamingInputCall(md(id, { 'x-hold-ms': '60000' }), () => {});
      call.on('status', (s) => { status = s; resolve(); });
      // Once the server has the call (its head only: no message was sent), cancel it.
      waitFor(() => server.calls.get(id), 5000, 'the server to see the call').then(
        () => call.cancel(), (e) => { call.cancel(); status = { error: e.message }; });
    });
    await done;
    assert.equal(status.error, undefined, status.error);
    assert.equal(status.code, Status.CANCELLED);
    const rec = server.calls.get(id);
    await serverSawCancel(id);
    return { code: status.code, serverCancelled: rec.cancelled, rstCode: server.streams.get(id).rstCode };
  },

  async cancel_after_first_response(c) {
    const id = newId('cancel_after_first_response');
    const r = reader(c.test.FullDuplexCall(md(id)));
    // A second response a minute later keeps the server busy when the cancel comes (a grpc-js
    // cancel is an END_STREAM then RST_STREAM CANCEL: the half-close alone would end the call).
    r.call.write({ response_parameters: [{ size: 31415 }, { size: 9, interval_us: 60_000_000 }],
      payload: { body: zeros(27182) } });
    const first = await r.next();
    assert.equal(first.payload.body.length, 31415);
    return cancelled(r, id);
  },

  async timeout_on_sleeping_server(c) {
    const r = reader(c.test.FullDuplexCall(md(newId('timeout_on_sleeping_server')),
      { deadline: Date.now() + 2 }));
    r.call.write({ payload: { body: zeros(27182) } });
    const status = await within(r.status, 5000, 'the status');
    assert.equal(status.code, Status.DEADLINE_EXCEEDED, status.details);
    return { code: status.code };
  },

  async custom_metadata(c) {
    const echoMd = () => ({
      'x-grpc-test-echo-initial': 'test_initial_metadata_value',
      'x-grpc-test-echo-trailing-bin': Buffer.from([0xab, 0xab, 0xab]),
    });
    const initialKey = ['x-grpc-test-echo-initial'];
    const trailingKey = ['x-grpc-test-echo-trailing-bin'];
    const expectInitial = { 'x-grpc-test-echo-initial': ['test_initial_metadata_value'] };
    const expectTrailing = { 'x-grpc-test-echo-trailing-bin': ['hex:ababab'] };

    const u = await unary(c.test, 'UnaryCall', { response_size: 314159, payload: { body: zeros(271828) } },
      { metadata: md(newId('custom_metadata_unary'), echoMd()) });
    assert.equal(u.status.code, Status.OK, u.status.details);
    assert.equal(u.res.payload.body.length, 314159);
    assert.deepEqual(pick(u.initial, initialKey), expectInitial);
    assert.deepEqual(pick(u.status.metadata, trailingKey), expectTrailing);

    const r = reader(c.test.FullDuplexCall(md(newId('custom_metadata_duplex'), echoMd())));
    r.call.write({ response_parameters: [{ size: 314159 }], payload: { body: zeros(271828) } });
    r.call.end();
    const got = (await r.all()).map((m) => m.payload.body.length);
    const status = await r.status;
    assert.equal(status.code, Status.OK, status.details);
    assert.deepEqual(got, [314159]);
    assert.deepEqual(pick(r.initial, initialKey), expectInitial);
    assert.deepEqual(pick(status.metadata, trailingKey), expectTrailing);
    return {
      unary: { initial: pick(u.initial, initialKey), trailing: pick(u.status.metadata, trailingKey) },
      duplex: { sizes: got, initial: pick(r.initial, initialKey), trailing: pick(status.metadata, trailingKey) },
    };
  },

  async status_code_and_message(c) {
    const response_status = { code: 2, message: 'test status message' };
    const u = await unary(c.test, 'UnaryCall', { response_status },
      { metadata: md(newId('status_code_and_message_unary')) });
    assert.equal(u.status.code, 2);
    assert.equal(u.status.details, 'test status message');

    const r = reader(c.test.FullDuplexCall(md(newId('status_code_and_message_duplex'))));
    r.call.write({ response_status });
    r.call.end();
    const status = await within(r.status, 5000, 'the status');
    assert.equal(status.code, 2);
    assert.equal(status.details, 'test status message');
    return { unary: [u.status.code, u.status.details], duplex: [status.code, status.details] };
  },

  async special_status_message(c) {
    const message = '\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n';
    const u = await unary(c.test, 'UnaryCall', { response_status: { code: 2, message } },
      { metadata: md(newId('special_status_message')) });
    assert.equal(u.status.code, 2);
    assert.equal(u.status.details, message);
    return { code: u.status.code, details: u.status.details };
  },

  async unimplemented_method(c) {
    const u = await unary(c.test, 'UnimplementedCall', {}, { metadata: md(newId('unimplemented_method')) });
    assert.equal(u.status.code, Status.UNIMPLEMENTED);
    return { code: u.status.code, details: u.status.details };
  },

  async unimplemented_service(c) {
    const u = await unary(c.unimplemented, 'UnimplementedCall', {},
      { metadata: md(newId('unimplemented_service')) });
    assert.equal(u.status.code, Status.UNIMPLEMENTED);
    // The server's answer, not the gateway's: the same details as directly.
    return { code: u.status.code, details: u.status.details };
  },
};

for (const [name, run] of Object.entries(interopCases)) {
  test(`interop ${name}: directly and through the gateway, the same outcome`, async (t) => {
    let expected;
    await t.test('directly', async () => { expected = await run(direct); });
    await t.test('through the gateway', async () => {
      const gw = await interopGateway();
      const got = await run(gw);
      assert.ok(expected, 'the direct run gave an outcome');
      assert.deepEqual(got, expected);
    });
  });
}

// gRPC over HTTP/2 requires "te: trailers" on requests (to detect proxies that would drop
// trailers); the gateway must send it upstream, as the client did.
test('the upstream gets te: trailers, as directly', async (t) => {
  const teSeen = async (c) => {
    const id = newId('te_trailers');
    const u = await unary(c.test, 'EmptyCall', {}, { metadata: md(id) });
    assert.equal(u.status.code, Status.OK, u.status.details);
    assert.equal(server.streams.get(id).headers.te, 'trailers');
  };
  await t.test('directly', () => teSeen(direct));
  await t.test('through the gateway', async () => teSeen(await interopGateway()));
});

// --- 2. the gateway's own answers ----------------------------------------------------------------

// One gRPC request with Node's HTTP/2 client: the head, then an empty message (5 bytes). Resolves
// { head, endAfterHeaders (the response HEADERS had END_STREAM), data (bytes), trailers, ended,
// rstCode, error, ms }.
function rawGrpc(port, p, headers = {}) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const out = { head: null, endAfterHeaders: null, data: 0, trailers: null, ended: false, rstCode: null, error: null };
    const req = session.request({
      ':method': 'POST', ':path': p, 'content-type': 'application/grpc', te: 'trailers', ...headers,
    });
    // The flags of the response's HEADERS frame (req.endAfterHeaders is not set yet here).
    req.on('response', (h, flags) => {
      out.head = h;
      out.endAfterHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on('data', (d) => { out.data += d.length; });
    req.on('trailers', (tr) => { out.trailers = tr; });
    req.on('end', () => { out.ended = true; });
    req.on('error', (e) => { out.error = e; });
    req.on('close', () => {
      out.rstCode = req.rstCode;
      out.ms = performance.now() - t0;
      session.close();
      resolve(out);
    });
    req.end(Buffer.alloc(5));
  });
}

// A gateway-made gRPC error: :status 200, application/grpc, trailers-only (no DATA, no separate
// trailers, END_STREAM on the HEADERS), the code, the gateway's message, x-request-id. Returns
// the decoded message.
function assertTrailersOnly(r, code, messageRe) {
  assert.equal(r.error, null, r.error && r.error.message);
  assert.ok(r.head, 'a response head');
  assert.equal(r.head[':status'], 200, `:status 200 (got ${r.head[':status']})`);
  assert.match(String(r.head['content-type']), /^application\/grpc(\+|;|$)/);
  assert.equal(r.head['grpc-status'], String(code),
    `grpc-status ${code} (got ${r.head['grpc-status']}: ${r.head['grpc-message']})`);
  assert.equal(typeof r.head['grpc-message'], 'string', 'grpc-message');
  assert.match(r.head['grpc-message'], /^[\x20-\x7e]*$/, 'grpc-message is percent-encoded');
  const message = decodeGrpcMessage(r.head['grpc-message']);
  assert.match(message, messageRe);
  assert.ok(r.head['x-request-id'], 'x-request-id');
  assert.equal(r.endAfterHeaders, true, 'one HEADERS frame with END_STREAM (trailers-only)');
  assert.equal(r.data, 0, 'no DATA (never a JSON body)');
  assert.equal(r.trailers, null, 'no separate trailers');
  assert.equal(r.ended, true);
  assert.equal(r.rstCode, NGHTTP2_NO_ERROR);
  return message;
}

// A call the upstream answered: a head, then the (empty) message, then grpc-status 0 as trailers.
function assertUpstreamOk(r) {
  assert.equal(r.error, null, r.error && r.error.message);
  assert.equal(r.head[':status'], 200);
  assert.equal(r.head['grpc-status'], undefined,
    `not trailers-only (got grpc-status ${r.head['grpc-status']}: ${r.head['grpc-message']})`);
  assert.equal(r.data, 5, 'the empty response message');
  assert.equal(r.trailers && r.trailers['grpc-status'], '0');
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const APP_KEY = 'grpc-app-key-0123456789';
const OLD_KEY = 'grpc-old-key-0123456789';
const EMPTY_CALL = '/grpc.testing.TestService/EmptyCall';
const UNARY_CALL = '/grpc.testing.TestService/UnaryCall';

test('gateway-made error: no route -> UNIMPLEMENTED, trailers-only', async () => {
  const gw = await interopGateway();
  const r = await rawGrpc(gw.gh.port, '/grpc.testing.NoSuchService/Call');
  const message = assertTrailersOnly(r, Status.UNIMPLEMENTED, /no route/);
  assert.match(message, /\/grpc\.testing\.NoSuchService\/Call/);
});

test('gateway-made error: key_auth without a key -> UNAUTHENTICATED, trailers-only', async () => {
  const gh = await gateway(`
consumers:
  - { name: app, groups: [clients], api_keys: [ { sha256: ${sha256(APP_KEY)} } ] }
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
routes:
  - { name: grpc-auth, match: { path: /grpc.testing.TestService/* }, to: g, plugins: { key_auth: { header: x-api-key } } }
`);
  // With the key, the call reaches the server.
  assertUpstreamOk(await rawGrpc(gh.port, EMPTY_CALL, { 'x-api-key': APP_KEY }));
  const r = await rawGrpc(gh.port, EMPTY_CALL);
  assertTrailersOnly(r, Status.UNAUTHENTICATED, /API key/);
  assert.match(String(r.head['www-authenticate']), /ApiKey/, 'the error\'s own headers');
});

test('gateway-made error: acl denied -> PERMISSION_DENIED, trailers-only', async () => {
  const gh = await gateway(`
consumers:
  - { name: app, groups: [clients], api_keys: [ { sha256: ${sha256(APP_KEY)} } ] }
  - { name: old, groups: [legacy], api_keys: [ { sha256: ${sha256(OLD_KEY)} } ] }
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
routes:
  - name: grpc-acl
    match: { path: /grpc.testing.TestService/* }
    to: g
    plugins: { key_auth: { header: x-api-key }, acl: { allow_groups: [clients] } }
`);
  assertUpstreamOk(await rawGrpc(gh.port, EMPTY_CALL, { 'x-api-key': APP_KEY }));
  const r = await rawGrpc(gh.port, EMPTY_CALL, { 'x-api-key': OLD_KEY });
  assertTrailersOnly(r, Status.PERMISSION_DENIED, /not allowed/);
});

test('gateway-made error: rate_limit exceeded -> RESOURCE_EXHAUSTED with retry-after, trailers-only', async () => {
  const gh = await gateway(`
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
routes:
  - { name: grpc-limited, match: { path: /grpc.testing.TestService/* }, to: g, plugins: { rate_limit: { limits: ["1/m"], key: route } } }
`);
  assertUpstreamOk(await rawGrpc(gh.port, EMPTY_CALL));
  const r = await rawGrpc(gh.port, EMPTY_CALL);
  assertTrailersOnly(r, Status.RESOURCE_EXHAUSTED, /too many requests/);
  assert.ok(Number(r.head['retry-after']) >= 1, `retry-after (got ${r.head['retry-after']})`);
});

test('gateway-made error: upstream down (nothing listening) -> UNAVAILABLE, trailers-only', async () => {
  const dead = await freePort();
  const gh = await gateway(`
upstreams:
  down: { protocol: grpc, targets: [ { address: 127.0.0.1:${dead} } ] }
routes:
  - { name: grpc-down, match: { path: /grpc.testing.TestService/* }, to: down }
`);
  const r = await rawGrpc(gh.port, EMPTY_CALL);
  const message = assertTrailersOnly(r, Status.UNAVAILABLE, /refused/);
  assert.ok(message.includes(`127.0.0.1:${dead}`), `the message names the target: ${message}`);
  assert.match(message, /\bdown\b/, 'the message names the upstream');
});

test('gateway-made error: the route\'s timeout before the upstream answers -> DEADLINE_EXCEEDED, trailers-only, the upstream call cancelled', async () => {
  const gh = await gateway(`
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
routes:
  - { name: grpc-slow, match: { path: /grpc.testing.TestService/* }, to: g, timeout: 300ms }
`);
  const id = newId('route_timeout');
  // No grpc-timeout from the client: the route's timeout alone bounds the call.
  const r = await rawGrpc(gh.port, UNARY_CALL, { 'x-test-id': id, 'x-sleep-ms': '3000' });
  assertTrailersOnly(r, Status.DEADLINE_EXCEEDED, /route's timeout/);
  assert.ok(r.ms < 2500, `answered at the route's timeout, not the server's answer (${r.ms} ms)`);
  const rec = await waitFor(() => server.calls.get(id), 3000, 'the server to see the call');
  await waitFor(() => rec.cancelled || rec.done, 5000, 'the upstream call to end');
  assert.equal(rec.cancelled, true, 'the server handler saw the cancel');
});

test('gateway-made error: an open circuit breaker -> UNAVAILABLE with retry-after, trailers-only', async () => {
  const dead = await freePort();
  const gh = await gateway(`
upstreams:
  b:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${dead} } ]
    circuit_breaker: { consecutive_failures: 1, open_for: 30s }
routes:
  - { name: grpc-breaker, match: { path: /grpc.testing.TestService/* }, to: b }
`);
  // The first call fails to connect, which opens the breaker...
  assertTrailersOnly(await rawGrpc(gh.port, EMPTY_CALL), Status.UNAVAILABLE, /refused/);
  // ... so the next is refused at once.
  const r = await rawGrpc(gh.port, EMPTY_CALL);
  const message = assertTrailersOnly(r, Status.UNAVAILABLE, /no target available/);
  assert.match(message, /\bb\b/, 'the message names the upstream');
  assert.ok(Number(r.head['retry-after']) >= 1, `retry-after (got ${r.head['retry-after']})`);
});

test('gateway-made errors reach a grpc-js client as their code and the gateway\'s details', async (t) => {
  const dead = await freePort();
  const gh = await gateway(`
consumers:
  - { name: app, groups: [clients], api_keys: [ { sha256: ${sha256(APP_KEY)} } ] }
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${server.port} } ] }
  down: { protocol: grpc, targets: [ { address: 127.0.0.1:${dead} } ] }
routes:
  - { name: grpc-auth, match: { path: /grpc.testing.TestService/EmptyCall }, to: g, plugins: { key_auth: { header: x-api-key } } }
  - { name: grpc-slow, match: { path: /grpc.testing.TestService/UnaryCall }, to: g, timeout: 300ms }
  - { name: grpc-down, match: { path: /grpc.testing.TestService/UnimplementedCall }, to: down }
`);
  const c = clientsFor(gh.port);
  try {
    await t.test('no route: UNIMPLEMENTED', async () => {
      const u = await unary(c.unimplemented, 'UnimplementedCall', {});
      assert.equal(u.status.code, Status.UNIMPLEMENTED, u.status.details);
      assert.match(u.status.details, /no route/);
    });
    await t.test('key_auth without a key: UNAUTHENTICATED', async () => {
      const u = await unary(c.test, 'EmptyCall', {});
      assert.equal(u.status.code, Status.UNAUTHENTICATED, u.status.details);
      assert.match(u.status.details, /API key/);
      const ok = await unary(c.test, 'EmptyCall', {}, { metadata: md(newId('auth_ok'), { 'x-api-key': APP_KEY }) });
      assert.equal(ok.status.code, Status.OK, ok.status.details);
    });
    await t.test('the route\'s timeout: DEADLINE_EXCEEDED', async () => {
      const id = newId('route_timeout_grpcjs');
      const u = await unary(c.test, 'UnaryCall', {}, { metadata: md(id, { 'x-sleep-ms': '3000' }) });
      assert.equal(u.status.code, Status.DEADLINE_EXCEEDED, u.status.details);
      assert.match(u.status.details, /route's timeout/);
      const rec = server.calls.get(id);
      assert.ok(rec, 'the server saw the call');
      await waitFor(() => rec.cancelled || rec.done, 5000, 'the upstream call to end');
      assert.equal(rec.cancelled, true, 'the server handler saw the cancel');
    });
    await t.test('upstream down: UNAVAILABLE', async () => {
      const u = await unary(c.test, 'UnimplementedCall', {});
      assert.equal(u.status.code, Status.UNAVAILABLE, u.status.details);
      assert.ok(u.status.details.includes(`127.0.0.1:${dead}`), u.status.details);
    });
  } finally {
    await gh.stop('SIGKILL');
  }
});

// --- 3. grpc-timeout -----------------------------------------------------------------------------

// A grpc-timeout value in milliseconds (gRPC over HTTP/2: 1-8 digits and a unit).
function grpcTimeoutMs(v) {
  const m = /^(\d{1,8})([HMSmun])$/.exec(String(v));
  assert.ok(m, `a well-formed grpc-timeout (got ${v})`);
  const unit = { H: 3600e3, M: 60e3, S: 1e3, m: 1, u: 1e-3, n: 1e-6 }[m[2]];
  return Number(m[1]) * unit;
}

test('grpc-timeout: a call within the client\'s deadline succeeds, and the upstream gets a grpc-timeout no larger', async () => {
  const gw = await interopGateway();
  const id = newId('grpc_timeout_ok');
  const u = await unary(gw.test, 'UnaryCall', { response_size: 10 },
    { metadata: md(id, { 'x-sleep-ms': '100' }), deadline: Date.now() + 300 });
  assert.equal(u.status.code, Status.OK, u.status.details);
  assert.equal(u.res.payload.body.length, 10);
  const raw = server.streams.get(id);
  assert.ok(raw, 'the server saw the call');
  assert.ok(raw.headers['grpc-timeout'] !== undefined, 'the upstream got a grpc-timeout');
  const ms = grpcTimeoutMs(raw.headers['grpc-timeout']);
  assert.ok(ms > 0 && ms <= 300, `grpc-timeout upstream ${raw.headers['grpc-timeout']} (${ms} ms) is within the client's 300 ms`);
});

test('grpc-timeout: past the client\'s deadline, DEADLINE_EXCEEDED and the upstream handler sees the cancel', async () => {
  const gw = await interopGateway();
  const id = newId('grpc_timeout_exceeded');
  const t0 = performance.now();
  const u = await unary(gw.test, 'UnaryCall', {},
    { metadata: md(id, { 'x-sleep-ms': '1000' }), deadline: Date.now() + 200 });
  assert.equal(u.status.code, Status.DEADLINE_EXCEEDED, u.status.details);
  assert.ok(performance.now() - t0 < 900, 'before the server would have answered');
  const rec = await waitFor(() => server.calls.get(id), 3000, 'the server to see the call');
  await waitFor(() => rec.cancelled || rec.done, 3000, 'the upstream call to end');
  assert.equal(rec.cancelled, true, 'the server handler saw the cancel before its answer');
});

test('grpc-timeout: the gateway itself keeps the deadline (a client and an upstream that do not): DEADLINE_EXCEEDED, the upstream stream cancelled', async () => {
  const deaf = await startDeafUpstream(2000);
  const gh = await gateway(`
upstreams:
  deaf: { protocol: grpc, targets: [ { address: 127.0.0.1:${deaf.port} } ] }
routes:
  - { name: grpc-deaf, match: { path: /grpc.testing.TestService/* }, to: deaf }
`);
  try {
    const r = await rawGrpc(gh.port, EMPTY_CALL, { 'grpc-timeout': '200m' });
    assert.ok(r.ms < 1500, `answered at the client's deadline, not the upstream's answer (${r.ms} ms)`);
    assertTrailersOnly(r, Status.DEADLINE_EXCEEDED, /./);
    assert.equal(deaf.streams.length, 1, 'the call went upstream');
    await waitFor(() => deaf.streams[0].closed, 3000, 'the upstream stream to end');
    assert.equal(deaf.streams[0].rstCode, NGHTTP2_CANCEL, 'RST_STREAM CANCEL upstream');
    const ms = grpcTimeoutMs(deaf.streams[0].headers['grpc-timeout']);
    assert.ok(ms > 0 && ms <= 200, `grpc-timeout upstream ${deaf.streams[0].headers['grpc-timeout']} is within 200 ms`);
  } finally {
    await gh.stop('SIGKILL');
    deaf.close();
  }
});

// --- 4. a client that cancels mid-stream ---------------------------------------------------------

async function cancelMidStream(c) {
  const id = newId('cancel_mid_stream');
  // The first message at once, the second only after a minute: the call is cancelled between.
  const r = reader(c.test.StreamingOutputCall(
    { response_parameters: [{ size: 1000 }, { size: 1000, interval_us: 60_000_000 }] }, md(id)));
  const first = await r.next();
  assert.equal(first.payload.body.length, 1000);
  return cancelled(r, id);
}

test('a client cancelling a server stream after the first message: the upstream sees the cancel', async (t) => {
  let expected;
  await t.test('directly', async () => { expected = await cancelMidStream(direct); });
  await t.test('through the gateway', async () => {
    assert.deepEqual(await cancelMidStream(await interopGateway()), expected);
  });
});

// --- 5. trailers ---------------------------------------------------------------------------------

async function trailersCall(c, mode) {
  const u = await unary(c.test, 'UnaryCall', {}, { metadata: md(newId(`trailers_${mode}`), { 'x-test-trailers': mode }) });
  assert.equal(u.status.code, TRAILER_STATUS.code, u.status.details);
  assert.equal(u.status.details, TRAILER_STATUS.details);
  const trailing = pick(u.status.metadata, ['x-trailer-text', 'x-trailer-bin', 'x-trailer-multi']);
  assert.deepEqual(trailing, {
    'x-trailer-text': ['trailer value'],
    'x-trailer-bin': ['hex:000102feff'],
    // Two fields of one name: Node's HTTP/2 joins them for grpc-js.
    'x-trailer-multi': ['first, second'],
  });
  const initial = pick(u.initial, ['x-initial']);
  if (mode === 'separate') assert.deepEqual(initial, { 'x-initial': ['initial value'] });
  return { code: u.status.code, details: u.status.details, trailing, initial };
}

for (const mode of ['separate', 'only']) {
  const what = mode === 'separate' ? 'after initial metadata' : 'in a trailers-only response';
  test(`trailers: a non-OK status with text, -bin and repeated trailing metadata ${what}, exactly`, async (t) => {
    let expected;
    await t.test('directly', async () => { expected = await trailersCall(direct, mode); });
    await t.test('through the gateway', async () => {
      assert.deepEqual(await trailersCall(await interopGateway(), mode), expected);
    });
  });
}
