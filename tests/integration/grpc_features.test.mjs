// The gateway's gRPC features beyond plain proxying, end to end through the real binary, with
// grpc-js clients and servers (fixtures/grpc_test.proto, fixtures/health.proto) and, where a
// server must misbehave, Node's own HTTP/2 server:
// - active gRPC health checks (health_check on a protocol: grpc upstream): grpc.health.v1.Health/
//   Check for `service` ("" by default); SERVING -> traffic, NOT_SERVING (or any other answer:
//   UNKNOWN, SERVICE_UNKNOWN, NOT_FOUND for an unknown service, UNIMPLEMENTED, SERVING with a
//   non-OK grpc-status, a plain HTTP 200, no answer within the timeout) -> the target leaves the
//   balancer (gatehouse_upstream_target_healthy 0) and, with none left, calls get the gateway's
//   UNAVAILABLE as a trailers-only answer; back to SERVING -> traffic again; two targets, one not
//   serving -> every call to the other;
// - retries by gRPC status (retry.on: [unavailable, ...], on the upstream or the route): a
//   trailers-only answer with a listed code is tried again (POST and all), counted per try on the
//   server and in gatehouse_upstream_retries_total{reason="grpc_status"}; codes not listed, and
//   calls whose response had started with a message, are not retried;
// - grpc.max_message_bytes on a route, both ways: at the limit passes, one byte over ends the call
//   with RESOURCE_EXHAUSTED naming grpc.max_message_bytes, the oversized message never reaches
//   the upstream and the upstream's stream is cancelled; messages that span DATA frames, several
//   messages in one DATA frame, a length prefix split across frames;
// - an upstream that fails in the middle of a response (its HTTP/2 session destroyed, or the
//   stream reset) after a message: the client gets the message, then trailers with UNAVAILABLE
//   and a message saying the upstream reset the call (not an RST_STREAM, which grpc-js would
//   report as INTERNAL);
// - gatehouse_grpc_requests_total{service,method,code}, gatehouse_grpc_request_duration_seconds,
//   and the access log's grpc_service, grpc_method and grpc_status, for upstream answers (in the
//   head or in trailers) and the gateway's own (no route);
// - full duplex for plain HTTP/2 (protocol: http2): a client that waits for each chunk's echo
//   before it sends the next completes;
// - `gatehouse validate`: the new keys' config errors, as FILE:LINE:COL: path: message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { startGatehouse, waitFor, freePort, curl, runGatehouse, tempFile, parseMetrics, sampleOf } from './harness.mjs';
import { newId, md, within, reader, decodeGrpcMessage, bindInsecure, onRawStreams } from './grpc_client.mjs';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants;
const Status = grpc.status;

const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures');
const LOAD_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const testDef = protoLoader.loadSync(path.join(FIXTURES, 'grpc_test.proto'), LOAD_OPTIONS);
const healthDef = protoLoader.loadSync(path.join(FIXTURES, 'health.proto'), LOAD_OPTIONS);
const testing = grpc.loadPackageDefinition(testDef).grpc.testing;
const health = grpc.loadPackageDefinition(healthDef).grpc.health.v1;
const TS = testDef['grpc.testing.TestService'];

const zeros = (n) => Buffer.alloc(n);

// The serialized size of a request (or response) of TestService.method.
const requestSize = (method, obj) => TS[method].requestSerialize(obj).length;
const responseSize = (method, obj) => TS[method].responseSerialize(obj).length;
// The body length n for which make(n) serializes to exactly `size` bytes (with size(make(n))).
function bodyFor(size, sizeOf) {
  for (let n = Math.max(0, size - 16); n <= size; n++) if (sizeOf(n) === size) return n;
  throw new Error(`no body length serializes to exactly ${size} bytes`);
}
// A length-prefixed gRPC message (uncompressed).
function frame(message) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

// --- test servers --------------------------------------------------------------------------------

// A grpc-js server with TestService (and, unless health: false, grpc.health.v1.Health).
//   status:  service name -> 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN' | 'HANG'
//            (never answers); a name not in it is answered NOT_FOUND (health-checking.md).
//   checks:  the `service` of every Check call, in order.
//   calls:   x-test-id -> [one record per try: { method, try, requestBytes, messages (request
//            message sizes), done }]
//   streams: x-test-id -> [one per HTTP/2 stream: { headers, bytes (DATA received), closed,
//            rstCode }]
//   served:  TestService calls, all ids.
// Knobs, as metadata: x-fail-codes ("14,0,...": EmptyCall and UnaryCall end try i with that code,
// trailers-only; 0 or nothing: answer). UnaryCall answers with response_size zero bytes and, with
// fill_server_id, server_id = the server's name. StreamingOutputCall sends response_parameters
// (after interval_us each, stopped by a cancel) then ends with response_status (if any).
async function startBackend(name, { withHealth = true, status = { '': 'SERVING' } } = {}) {
  const b = { name, status: { ...status }, checks: [], calls: new Map(), streams: new Map(), served: 0 };
  const track = (call, method) => {
    const id = call.metadata.get('x-test-id')[0];
    b.served++;
    const tries = id ? (b.calls.get(id) || []) : [];
    const timers = new Map();
    const r = { method, try: tries.length + 1, requestBytes: 0, messages: [], done: false, cancelled: false };
    call.on('error', () => {});
    call.on('cancelled', () => {
      if (r.done) return;
      r.cancelled = true;
      for (const [t, resolve] of timers) { clearTimeout(t); resolve(false); }
      timers.clear();
    });
    r.pause = (ms) => new Promise((resolve) => {
      if (r.cancelled) return resolve(false);
      const t = setTimeout(() => { timers.delete(t); resolve(true); }, ms);
      t.unref();
      timers.set(t, resolve);
    });
    if (id) { tries.push(r); b.calls.set(id, tries); }
    return r;
  };
  const failCode = (call, r) =>
    Number((call.metadata.get('x-fail-codes')[0] || '').split(',')[r.try - 1] || 0);

  const impl = {
    EmptyCall(call, cb) {
      const r = track(call, 'EmptyCall');
      r.done = true;
      const code = failCode(call, r);
      if (code) return cb({ code, details: `${name}: try ${r.try} failed with ${code}` });
      cb(null, {});
    },
    UnaryCall(call, cb) {
      const r = track(call, 'UnaryCall');
      r.requestBytes = call.request.payload ? call.request.payload.body.length : 0;
      r.done = true;
      const code = failCode(call, r);
      if (code) return cb({ code, details: `${name}: try ${r.try} failed with ${code}` });
      // server_id only when asked for: an explicit '' would still be serialized (2 bytes).
      const res = { payload: { body: zeros(call.request.response_size) } };
      if (call.request.fill_server_id) res.server_id = name;
      cb(null, res);
    },
    async StreamingOutputCall(call) {
      const r = track(call, 'StreamingOutputCall');
      for (const p of call.request.response_parameters) {
        if (p.interval_us && !(await r.pause(p.interval_us / 1000))) return;
        if (r.cancelled) return;
        call.write({ payload: { body: zeros(p.size) } });
      }
      r.done = true;
      const s = call.request.response_status;
      if (s && s.code) call.emit('error', { code: s.code, details: s.message });
      else call.end();
    },
    StreamingInputCall(call, cb) {
      const r = track(call, 'StreamingInputCall');
      call.on('data', (m) => {
        const n = m.payload ? m.payload.body.length : 0;
        r.messages.push(n);
        r.requestBytes += n;
      });
      call.on('end', () => {
        if (r.cancelled) return;
        r.done = true;
        cb(null, { aggregated_payload_size: r.requestBytes });
      });
    },
  };

  const server = new grpc.Server();
  server.addService(testing.TestService.service, impl);
  if (withHealth) {
    server.addService(health.Health.service, {
      Check(call, cb) {
        const service = call.request.service;
        b.checks.push(service);
        const s = b.status[service];
        if (s === undefined) return cb({ code: Status.NOT_FOUND, details: `unknown service ${service}` });
        if (s === 'HANG') return;  // never answers
        cb(null, { status: s });
      },
    });
  }
  b.port = await bindInsecure(server);
  // The raw HTTP/2 streams, before grpc-js sees them: how much DATA came and how each ended.
  onRawStreams(server, (stream, headers) => {
    const id = headers['x-test-id'];
    if (!id) return;
    const raw = { headers: { ...headers }, bytes: 0, closed: false, rstCode: null };
    b.streams.set(id, [...(b.streams.get(id) || []), raw]);
    stream.on('data', (d) => { raw.bytes += d.length; });
    stream.on('close', () => { raw.closed = true; raw.rstCode = stream.rstCode; });
  });
  b.tries = (id) => (b.calls.get(id) || []).length;
  b.close = () => server.forceShutdown();
  backends.push(b);
  return b;
}
const backends = [];
after(() => { for (const b of backends) b.close(); });

// Node's HTTP/2 server with a handler of its own: onStream(stream, headers, session).
async function startRawH2(onStream) {
  const sessions = new Set();
  const server = http2.createServer();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); s.on('error', () => {}); });
  server.on('stream', (stream, headers) => { stream.on('error', () => {}); onStream(stream, headers, stream.session); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const h = { port: server.address().port, close: () => { for (const s of sessions) s.destroy(); server.close(); } };
  rawServers.push(h);
  return h;
}
const rawServers = [];
after(() => { for (const s of rawServers) s.close(); });

// --- clients -------------------------------------------------------------------------------------

const clients = [];
after(() => { for (const c of clients) c.close(); });
function clientFor(port) {
  const c = new testing.TestService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

// A unary call: resolves { err, res, status } once its status is in (bounded).
function unary(client, method, req, metadata = new grpc.Metadata()) {
  return within(new Promise((resolve) => {
    const out = { err: null, res: null, status: null };
    const call = client[method](req, metadata, (err, res) => { out.err = err; out.res = res; });
    call.on('status', (s) => { out.status = s; resolve(out); });
  }), 10000, `${method}`);
}

// One gRPC call with Node's HTTP/2 client: the head, then `writes` (each written once the one
// before has been flushed; default: an empty message), then the end of the request. onData(out)
// runs at each DATA chunk. Resolves { head, endAfterHeaders, data (Buffer), trailers, ended,
// rstCode, error } once the stream has closed.
function rawGrpc(port, p, { headers = {}, writes = [Buffer.alloc(5)], onData = null } = {}) {
  return within(new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const out = { head: null, endAfterHeaders: null, data: Buffer.alloc(0), trailers: null, ended: false, rstCode: null, error: null };
    const req = session.request({
      ':method': 'POST', ':path': p, 'content-type': 'application/grpc', te: 'trailers', ...headers,
    });
    req.on('response', (h, flags) => {
      out.head = h;
      out.endAfterHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on('data', (d) => { out.data = Buffer.concat([out.data, d]); if (onData) onData(out); });
    req.on('trailers', (tr) => { out.trailers = tr; });
    req.on('end', () => { out.ended = true; });
    req.on('error', (e) => { out.error = e; });
    req.on('close', () => { out.rstCode = req.rstCode; session.close(); resolve(out); });
    (async () => {
      for (const w of writes) {
        if (req.closed || req.destroyed) return;
        await new Promise((r) => req.write(w, r));
      }
      if (!req.closed && !req.destroyed) req.end();
    })();
  }), 10000, `the call to ${p}`);
}

// A gateway-made gRPC error: :status 200, application/grpc, trailers-only (END_STREAM on the one
// HEADERS frame, no DATA), the code. Returns the decoded grpc-message.
function assertTrailersOnly(r, code) {
  assert.equal(r.error, null, r.error && r.error.message);
  assert.ok(r.head, 'a response head');
  assert.equal(r.head[':status'], 200, `:status 200 (got ${r.head[':status']})`);
  assert.match(String(r.head['content-type']), /^application\/grpc(\+|;|$)/);
  assert.equal(r.head['grpc-status'], String(code),
    `grpc-status ${code} (got ${r.head['grpc-status']}: ${r.head['grpc-message']})`);
  assert.equal(r.endAfterHeaders, true, 'one HEADERS frame with END_STREAM (trailers-only)');
  assert.equal(r.data.length, 0, 'no DATA');
  assert.equal(r.trailers, null, 'no separate trailers');
  assert.equal(r.rstCode, NGHTTP2_NO_ERROR);
  return decodeGrpcMessage(String(r.head['grpc-message'] || ''));
}

// The grpc-status and message a raw call ended with (in the head or in the trailers).
function rawStatus(r) {
  const src = r.trailers || r.head || {};
  return { code: src['grpc-status'] === undefined ? undefined : Number(src['grpc-status']),
    message: decodeGrpcMessage(String(src['grpc-message'] || '')) };
}

// The length-prefixed messages in `data`: their lengths.
function messageLengths(data) {
  const out = [];
  for (let at = 0; at + 5 <= data.length; at += 5 + data.readUInt32BE(at + 1)) out.push(data.readUInt32BE(at + 1));
  return out;
}

// --- gateways and metrics ------------------------------------------------------------------------

const gateways = [];
after(async () => { for (const gh of gateways) await gh.stop('SIGKILL'); });

// A gateway (one worker, http1 + h2c, the admin API, a JSON access log on stdout) with `body`
// (upstreams:, routes:, ...). Returns { gh, port, client, metrics(), sample(name, labels) }.
async function gateway(body) {
  const port = await freePort();
  const admin = await freePort();
  const gh = await startGatehouse(`server: { workers: 1, listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ] }
admin: { listen: 127.0.0.1:${admin} }
observability: { access_log: { path: stdout, format: json } }
${body}`);
  gateways.push(gh);
  const g = { gh, port: gh.port, admin, client: clientFor(gh.port) };
  g.metrics = async () => {
    const r = await curl([`http://127.0.0.1:${admin}/metrics`]);
    assert.equal(r.status, 200, `GET /metrics: ${r.status} ${r.stderr}`);
    return parseMetrics(r.body);
  };
  // The value of the one sample of `name` whose labels include `labels` (undefined: none).
  g.sample = async (name, labels) => sampleOf(await g.metrics(), name, labels);
  g.healthy = (upstream, targetPort) =>
    g.sample('gatehouse_upstream_target_healthy', { upstream, target: `127.0.0.1:${targetPort}` });
  g.stop = () => gh.stop('SIGKILL');
  return g;
}


const waitHealthy = (g, upstream, targetPort, value, what) =>
  waitFor(async () => (await g.healthy(upstream, targetPort)) === value, 5000,
    what || `gatehouse_upstream_target_healthy{upstream="${upstream}",target=":${targetPort}"} to be ${value}`);

const EMPTY_CALL = '/grpc.testing.TestService/EmptyCall';
const HC = 'interval: 100ms, timeout: 200ms, unhealthy_after: 1, healthy_after: 1';

// --- 1. health checks ----------------------------------------------------------------------------

test('health: SERVING -> traffic; NOT_SERVING -> unhealthy, the gateway answers UNAVAILABLE; SERVING again -> traffic', async () => {
  const be = await startBackend('a');
  const g = await gateway(`upstreams:
  h:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${be.port} } ]
    health_check: { ${HC}, initial_state: unhealthy }
routes:
  - { name: h, match: { path: /grpc.testing.TestService/* }, to: h }
`);
  try {
    // initial_state unhealthy: only a passing check lets traffic in.
    await waitHealthy(g, 'h', be.port, 1, 'the target to pass its first gRPC health check');
    assert.ok(be.checks.length >= 1, 'the server got Health/Check calls');
    assert.deepEqual([...new Set(be.checks)], [''], 'the check asks for the whole server (service "")');
    let u = await unary(g.client, 'EmptyCall', {}, md(newId('hc_serving')));
    assert.equal(u.status.code, Status.OK, u.status.details);

    be.status[''] = 'NOT_SERVING';
    await waitHealthy(g, 'h', be.port, 0, 'NOT_SERVING to mark the target unhealthy');
    const served = be.served;
    const id = newId('hc_not_serving');
    const r = await rawGrpc(g.port, EMPTY_CALL, { headers: { 'x-test-id': id } });
    assertTrailersOnly(r, Status.UNAVAILABLE);
    u = await unary(g.client, 'EmptyCall', {}, md(newId('hc_not_serving_grpcjs')));
    assert.equal(u.status.code, Status.UNAVAILABLE, u.status.details);
    assert.equal(be.served, served, 'no call reached the not-serving server');

    be.status[''] = 'SERVING';
    await waitHealthy(g, 'h', be.port, 1, 'SERVING again to bring the target back');
    u = await unary(g.client, 'EmptyCall', {}, md(newId('hc_back')));
    assert.equal(u.status.code, Status.OK, u.status.details);
    assert.equal(be.served, served + 1, 'the call reached the server again');
  } finally {
    await g.stop();
  }
});

test('health: `service` names the service checked; a service the server does not know (NOT_FOUND) -> unhealthy', async () => {
  // The whole server is not serving, the named service is: only a check for the name passes.
  const named = await startBackend('named', { status: { '': 'NOT_SERVING', 'grpc.testing.TestService': 'SERVING' } });
  const unknown = await startBackend('unknown', { status: { '': 'SERVING' } });
  const g = await gateway(`upstreams:
  named:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${named.port} } ]
    health_check: { ${HC}, initial_state: unhealthy, service: grpc.testing.TestService }
  unknown:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${unknown.port} } ]
    health_check: { ${HC}, service: "no.such.Service" }
routes:
  - { name: named, match: { path: /grpc.testing.TestService/EmptyCall }, to: named }
  - { name: unknown, match: { path: /grpc.testing.TestService/UnaryCall }, to: unknown }
`);
  try {
    await waitHealthy(g, 'named', named.port, 1, 'the named service\'s SERVING to make the target healthy');
    assert.deepEqual([...new Set(named.checks)], ['grpc.testing.TestService'], 'Check asked for the named service');
    await waitHealthy(g, 'unknown', unknown.port, 0, 'an unknown service (NOT_FOUND) to make the target unhealthy');
    assert.deepEqual([...new Set(unknown.checks)], ['no.such.Service']);

    const u = await unary(g.client, 'EmptyCall', {}, md(newId('hc_named')));
    assert.equal(u.status.code, Status.OK, u.status.details);
    const served = unknown.served;
    const r = await rawGrpc(g.port, '/grpc.testing.TestService/UnaryCall');
    assertTrailersOnly(r, Status.UNAVAILABLE);
    assert.equal(unknown.served, served, 'no call reached the unhealthy target');
  } finally {
    await g.stop();
  }
});

test('health: only SERVING with grpc-status 0 passes (UNKNOWN, SERVICE_UNKNOWN, UNIMPLEMENTED, SERVING with a non-OK status, plain HTTP 200, no answer: unhealthy)', async () => {
  const ok = await startBackend('ok');
  const unknownStatus = await startBackend('unknown-status', { status: { '': 'UNKNOWN' } });
  const serviceUnknown = await startBackend('service-unknown', { status: { '': 'SERVICE_UNKNOWN' } });
  const hang = await startBackend('hang', { status: { '': 'HANG' } });
  const noHealth = await startBackend('no-health', { withHealth: false });
  // SERVING in the message, but the call ends with grpc-status 2.
  const badStatusHits = [];
  const badStatus = await startRawH2((stream, headers) => {
    badStatusHits.push(headers[':path']);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '2', 'grpc-message': 'broken' }));
    stream.end(frame(Buffer.from([0x08, 0x01])));
  });
  // An HTTP health endpoint, not gRPC: 200 with text.
  const plainHits = [];
  const plain = await startRawH2((stream, headers) => {
    plainHits.push(headers[':path']);
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end('ok');
  });
  const targets = { ok, unknownStatus, serviceUnknown, hang, noHealth,
    badStatus: { port: badStatus.port }, plain: { port: plain.port } };
  const g = await gateway(`upstreams:
${Object.entries(targets).map(([n, t]) => `  ${n}:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${t.port} } ]
    health_check: { ${HC} }
`).join('')}routes:
  - { name: ok, match: { path: /grpc.testing.TestService/* }, to: ok }
`);
  try {
    for (const [n, t] of Object.entries(targets)) {
      if (n === 'ok') continue;
      await waitHealthy(g, n, t.port, 0, `the ${n} target to be marked unhealthy`);
    }
    assert.ok(unknownStatus.checks.length > 0 && serviceUnknown.checks.length > 0 && hang.checks.length > 0);
    assert.ok(badStatusHits.length > 0 && badStatusHits.every((p) => p === '/grpc.health.v1.Health/Check'),
      `the checks call /grpc.health.v1.Health/Check (got ${[...new Set(badStatusHits)]})`);
    assert.ok(plainHits.length > 0 && plainHits.every((p) => p === '/grpc.health.v1.Health/Check'));
    assert.ok(ok.checks.length > 0, 'the serving target was checked');
    assert.equal(await g.healthy('ok', ok.port), 1, 'the serving target stays healthy');
  } finally {
    await g.stop();
  }
});

test('health: two targets, one NOT_SERVING -> every call goes to the other', async () => {
  const a = await startBackend('a');
  const b = await startBackend('b');
  const g = await gateway(`upstreams:
  two:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${a.port} }, { address: 127.0.0.1:${b.port} } ]
    health_check: { ${HC} }
routes:
  - { name: two, match: { path: /grpc.testing.TestService/* }, to: two }
`);
  const servedBy = async (n) => {
    const seen = [];
    for (let i = 0; i < n; i++) {
      const u = await unary(g.client, 'UnaryCall', { fill_server_id: true }, md(newId('hc_two')));
      assert.equal(u.status.code, Status.OK, u.status.details);
      seen.push(u.res.server_id);
    }
    return seen;
  };
  try {
    await waitFor(() => a.checks.length > 0 && b.checks.length > 0, 5000, 'both targets checked');
    assert.deepEqual([...new Set(await servedBy(10))].sort(), ['a', 'b'], 'both targets get traffic while serving');

    b.status[''] = 'NOT_SERVING';
    await waitHealthy(g, 'two', b.port, 0, 'b marked unhealthy');
    assert.equal(await g.healthy('two', a.port), 1);
    const bServed = b.served;
    assert.deepEqual(await servedBy(20), Array(20).fill('a'), 'every call to the serving target');
    assert.equal(b.served, bServed, 'nothing reached b');

    b.status[''] = 'SERVING';
    await waitHealthy(g, 'two', b.port, 1, 'b healthy again');
    assert.ok((await servedBy(10)).includes('b'), 'b gets traffic again');
  } finally {
    await g.stop();
  }
});

// --- 2. retries by gRPC status -------------------------------------------------------------------

test('retry on gRPC status: listed trailers-only codes are retried, others and started responses are not', async (t) => {
  const be = await startBackend('r');
  const g = await gateway(`upstreams:
  r:
    protocol: grpc
    targets: [ { address: 127.0.0.1:${be.port} } ]
    retry: { attempts: 2, backoff: 1ms, on: [unavailable] }
routes:
  # The route's own policy replaces the upstream's.
  - { name: route-retry, match: { path: /grpc.testing.TestService/EmptyCall }, to: r, retry: { attempts: 1, backoff: 1ms, on: [resource_exhausted] } }
  - { name: r, match: { path: /grpc.testing.TestService/* }, to: r }
`);
  const retries = async () =>
    (await g.sample('gatehouse_upstream_retries_total', { upstream: 'r', reason: 'grpc_status' })) || 0;
  try {
    await t.test('UNAVAILABLE then OK: the client gets OK, the server saw 2 tries with the whole request', async () => {
      const before = await retries();
      const id = newId('retry_once');
      const u = await unary(g.client, 'UnaryCall', { response_size: 7, payload: { body: zeros(3000) } },
        md(id, { 'x-fail-codes': '14' }));
      assert.equal(u.status.code, Status.OK, u.status.details);
      assert.equal(u.res.payload.body.length, 7);
      assert.equal(be.tries(id), 2, 'two tries on the server');
      assert.deepEqual(be.calls.get(id).map((r) => r.requestBytes), [3000, 3000], 'each try got the request message');
      assert.equal(await retries(), before + 1, 'one retry counted with reason="grpc_status"');
    });
    await t.test('UNAVAILABLE on every try: attempts + 1 tries, the last try\'s status reaches the client', async () => {
      const before = await retries();
      const id = newId('retry_always');
      const u = await unary(g.client, 'UnaryCall', {}, md(id, { 'x-fail-codes': '14,14,14,14' }));
      assert.equal(u.status.code, Status.UNAVAILABLE, u.status.details);
      assert.equal(u.status.details, 'r: try 3 failed with 14', 'the server\'s last answer');
      assert.equal(be.tries(id), 3);
      assert.equal(await retries(), before + 2);
    });
    await t.test('INTERNAL (not listed): one try', async () => {
      const before = await retries();
      const id = newId('retry_internal');
      const u = await unary(g.client, 'UnaryCall', {}, md(id, { 'x-fail-codes': '13' }));
      assert.equal(u.status.code, Status.INTERNAL, u.status.details);
      assert.equal(be.tries(id), 1);
      assert.equal(await retries(), before);
    });
    await t.test('one message then UNAVAILABLE: not retried, the client gets the message then UNAVAILABLE', async () => {
      const before = await retries();
      const id = newId('retry_started');
      const r = reader(g.client.StreamingOutputCall({ response_parameters: [{ size: 10 }],
        response_status: { code: Status.UNAVAILABLE, message: 'gone after one' } }, md(id)));
      const got = (await r.all()).map((m) => m.payload.body.length);
      const status = await r.status;
      assert.deepEqual(got, [10], 'the message');
      assert.equal(status.code, Status.UNAVAILABLE, status.details);
      assert.equal(status.details, 'gone after one');
      assert.equal(be.tries(id), 1, 'one try');
      assert.equal(await retries(), before);
    });
    await t.test('a route\'s retry replaces the upstream\'s: RESOURCE_EXHAUSTED retried, UNAVAILABLE not', async () => {
      const before = await retries();
      const id = newId('route_retry_listed');
      let u = await unary(g.client, 'EmptyCall', {}, md(id, { 'x-fail-codes': '8' }));
      assert.equal(u.status.code, Status.OK, u.status.details);
      assert.equal(be.tries(id), 2);
      const id2 = newId('route_retry_unlisted');
      u = await unary(g.client, 'EmptyCall', {}, md(id2, { 'x-fail-codes': '14' }));
      assert.equal(u.status.code, Status.UNAVAILABLE, u.status.details);
      assert.equal(be.tries(id2), 1, 'unavailable is not in the route\'s list');
      assert.equal(await retries(), before + 1);
    });
  } finally {
    await g.stop();
  }
});

// --- 3. grpc.max_message_bytes -------------------------------------------------------------------

test('grpc.max_message_bytes: request and response messages at the limit pass, one byte over ends the call with RESOURCE_EXHAUSTED', async (t) => {
  const LIMIT = 1000;
  const be = await startBackend('m');
  // Sends its response messages (`batch`: each a body size) in one DATA frame, then holds the
  // stream open; how each stream ended: rawEnds.
  let batch = [];
  const rawEnds = [];
  const rawUp = await startRawH2((stream) => {
    stream.resume();
    const end = { closed: false, rstCode: null };
    rawEnds.push(end);
    stream.on('close', () => { end.closed = true; end.rstCode = stream.rstCode; });
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.concat(batch.map((n) => frame(TS.StreamingOutputCall.responseSerialize({ payload: { body: zeros(n) } })))));
  });
  const g = await gateway(`upstreams:
  m: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
  batch: { protocol: grpc, targets: [ { address: 127.0.0.1:${rawUp.port} } ] }
routes:
  - { name: m, match: { path: /grpc.testing.TestService/* }, to: m, grpc: { max_message_bytes: ${LIMIT} } }
  - { name: batch, match: { path: /batch.Service/* }, to: batch, grpc: { max_message_bytes: ${LIMIT} } }
`);
  const unaryReq = (size) => {
    const n = bodyFor(size, (k) => requestSize('UnaryCall', { payload: { body: zeros(k) } }));
    return { payload: { body: zeros(n) } };
  };
  const inputMsg = (size) => {
    const n = bodyFor(size, (k) => requestSize('StreamingInputCall', { payload: { body: zeros(k) } }));
    return { payload: { body: zeros(n) } };
  };
  // Waits for the upstream stream of `id` (if one was opened) to end; asserts it was cancelled.
  const upstreamCancelled = async (id) => {
    const raws = be.streams.get(id) || [];
    for (const raw of raws) {
      await waitFor(() => raw.closed, 3000, 'the upstream stream to end');
      assert.equal(raw.rstCode, NGHTTP2_CANCEL, 'the upstream stream was cancelled (RST_STREAM CANCEL)');
    }
    return raws;
  };
  try {
    await t.test('a request message of exactly the limit reaches the server', async () => {
      const id = newId('max_req_at');
      const req = unaryReq(LIMIT);
      const u = await unary(g.client, 'UnaryCall', req, md(id));
      assert.equal(u.status.code, Status.OK, u.status.details);
      assert.equal(be.calls.get(id)[0].requestBytes, req.payload.body.length);
    });
    await t.test('a request message one byte over: RESOURCE_EXHAUSTED, never reaches the server', async () => {
      const id = newId('max_req_over');
      const u = await unary(g.client, 'UnaryCall', unaryReq(LIMIT + 1), md(id));
      assert.equal(u.status.code, Status.RESOURCE_EXHAUSTED, u.status.details);
      assert.match(u.status.details, /grpc\.max_message_bytes/);
      const raws = await upstreamCancelled(id);
      assert.equal(be.tries(id), 0, 'the server\'s handler never got the message');
      for (const raw of raws) assert.ok(raw.bytes < LIMIT + 5, `the upstream got ${raw.bytes} bytes: not the whole message`);
    });
    await t.test('client streaming: messages before the oversized one reach the server, then the upstream call is cancelled', async () => {
      const id = newId('max_req_stream');
      const out = {};
      const call = g.client.StreamingInputCall(md(id), (err, res) => { out.err = err; out.res = res; });
      const status = within(new Promise((resolve) => call.on('status', resolve)), 10000, 'the status');
      call.write(inputMsg(500));
      call.write(inputMsg(LIMIT));
      await waitFor(() => be.calls.get(id)?.[0].messages.length === 2, 3000, 'the server to get the first two messages');
      call.write(inputMsg(LIMIT + 1));
      const s = await status;
      assert.equal(s.code, Status.RESOURCE_EXHAUSTED, s.details);
      assert.match(s.details, /grpc\.max_message_bytes/);
      await upstreamCancelled(id);
      assert.equal(be.calls.get(id)[0].messages.length, 2, 'the oversized message never reached the server');
      call.end();
    });
    await t.test('a response message of exactly the limit passes', async () => {
      const n = bodyFor(LIMIT, (k) => responseSize('UnaryCall', { payload: { body: zeros(k) } }));
      const u = await unary(g.client, 'UnaryCall', { response_size: n }, md(newId('max_res_at')));
      assert.equal(u.status.code, Status.OK, u.status.details);
      assert.equal(u.res.payload.body.length, n);
    });
    // Seen on the wire (Node's HTTP/2 client): grpc-js hands a non-OK status to the application
    // as soon as it has it, dropping messages it has not delivered yet, so it cannot tell whether
    // the gateway sent them.
    await t.test('a response message one byte over: the messages before it, then trailers with RESOURCE_EXHAUSTED; the upstream stream cancelled', async () => {
      const id = newId('max_res_over');
      const over = bodyFor(LIMIT + 1, (k) => responseSize('StreamingOutputCall', { payload: { body: zeros(k) } }));
      // The last message only after a minute: the server is still in the call when the gateway
      // sees the oversized one.
      const req = { response_parameters: [{ size: 100 }, { size: 200 }, { size: over }, { size: 10, interval_us: 60_000_000 }] };
      const r = await rawGrpc(g.port, '/grpc.testing.TestService/StreamingOutputCall',
        { headers: { 'x-test-id': id }, writes: [frame(TS.StreamingOutputCall.requestSerialize(req))] });
      assert.equal(r.error, null, r.error && r.error.message);
      const sizes = (n) => responseSize('StreamingOutputCall', { payload: { body: zeros(n) } });
      assert.deepEqual(messageLengths(r.data), [sizes(100), sizes(200)], 'the messages before the oversized one');
      assert.equal(r.data.length, sizes(100) + sizes(200) + 10, 'nothing of the oversized message');
      assert.ok(r.trailers, 'trailers after the messages');
      const s = rawStatus(r);
      assert.equal(s.code, Status.RESOURCE_EXHAUSTED, s.message);
      assert.match(s.message, /grpc\.max_message_bytes/);
      assert.equal(r.rstCode, NGHTTP2_NO_ERROR, 'ended by trailers, not RST_STREAM');
      await upstreamCancelled(id);
      assert.equal(be.streams.get(id)?.length, 1, 'the call went upstream');
      await waitFor(() => be.calls.get(id)[0].cancelled, 3000, 'the server handler to see the cancel');
    });
    await t.test('response messages in one DATA frame, the third one byte over: the first two reach the client, then RESOURCE_EXHAUSTED', async () => {
      const over = bodyFor(LIMIT + 1, (k) => responseSize('StreamingOutputCall', { payload: { body: zeros(k) } }));
      batch = [100, 200, over];
      const n = rawEnds.length;
      const r = await rawGrpc(g.port, '/batch.Service/Call');
      assert.equal(r.error, null, r.error && r.error.message);
      const sizes = (k) => responseSize('StreamingOutputCall', { payload: { body: zeros(k) } });
      assert.deepEqual(messageLengths(r.data), [sizes(100), sizes(200)],
        `the messages before the oversized one (got ${r.data.length} bytes of DATA; trailers ${JSON.stringify(r.trailers)})`);
      const s = rawStatus(r);
      assert.equal(s.code, Status.RESOURCE_EXHAUSTED, s.message);
      assert.match(s.message, /grpc\.max_message_bytes/);
      assert.equal(rawEnds.length, n + 1, 'the call went upstream');
      await waitFor(() => rawEnds[n].closed, 3000, 'the upstream stream to end');
      assert.equal(rawEnds[n].rstCode, NGHTTP2_CANCEL, 'the upstream stream was cancelled');
    });
    await t.test('a response message one byte over: grpc-js gets RESOURCE_EXHAUSTED', async () => {
      const over = bodyFor(LIMIT + 1, (k) => responseSize('StreamingOutputCall', { payload: { body: zeros(k) } }));
      const r = reader(g.client.StreamingOutputCall({ response_parameters: [{ size: 100 }, { size: over }] },
        md(newId('max_res_over_grpcjs'))));
      const got = (await r.all()).map((m) => m.payload.body.length);
      const status = await r.status;
      assert.equal(status.code, Status.RESOURCE_EXHAUSTED, status.details);
      assert.match(status.details, /grpc\.max_message_bytes/);
      assert.ok(!got.includes(over), 'not the oversized message');
    });
    await t.test('several messages in one DATA frame: the oversized third ends the call', async () => {
      const small = frame(TS.StreamingInputCall.requestSerialize(inputMsg(10)));
      const big = frame(TS.StreamingInputCall.requestSerialize(inputMsg(LIMIT + 1)));
      const id = newId('max_one_frame');
      const r = await rawGrpc(g.port, '/grpc.testing.TestService/StreamingInputCall',
        { headers: { 'x-test-id': id }, writes: [Buffer.concat([small, small, big])] });
      assert.equal(r.error, null, r.error && r.error.message);
      const s = rawStatus(r);
      assert.equal(s.code, Status.RESOURCE_EXHAUSTED, s.message);
      assert.match(s.message, /grpc\.max_message_bytes/);
      assert.equal(r.rstCode, NGHTTP2_NO_ERROR, 'ended with a status, not a reset');
      await upstreamCancelled(id);
      const rec = be.calls.get(id)?.[0];
      assert.ok(!rec || rec.messages.every((n) => n <= LIMIT), `the server got ${JSON.stringify(rec?.messages)}`);
      for (const raw of be.streams.get(id) || []) assert.ok(raw.bytes < 2 * small.length + big.length);
    });
    await t.test('several small messages in one DATA frame pass', async () => {
      const small = frame(TS.StreamingInputCall.requestSerialize(inputMsg(LIMIT)));
      const r = await rawGrpc(g.port, '/grpc.testing.TestService/StreamingInputCall',
        { headers: { 'x-test-id': newId('max_one_frame_ok') }, writes: [Buffer.concat([small, small, small])] });
      assert.equal(rawStatus(r).code, Status.OK, rawStatus(r).message);
      const res = TS.StreamingInputCall.responseDeserialize(r.data.subarray(5));
      assert.equal(res.aggregated_payload_size, 3 * inputMsg(LIMIT).payload.body.length);
    });
    await t.test('a length prefix split across DATA frames is still held to the limit', async () => {
      const big = frame(TS.StreamingInputCall.requestSerialize(inputMsg(LIMIT + 1)));
      const id = newId('max_split_prefix');
      const r = await rawGrpc(g.port, '/grpc.testing.TestService/StreamingInputCall',
        { headers: { 'x-test-id': id }, writes: [big.subarray(0, 3), big.subarray(3, 300), big.subarray(300)] });
      const s = rawStatus(r);
      assert.equal(s.code, Status.RESOURCE_EXHAUSTED, s.message);
      await upstreamCancelled(id);
      for (const raw of be.streams.get(id) || []) assert.ok(raw.bytes < big.length, `the upstream got ${raw.bytes} bytes`);
    });
  } finally {
    await g.stop();
  }
});

test('grpc.max_message_bytes: messages larger than an HTTP/2 frame, at the limit and one byte over, both ways', async () => {
  const LIMIT = 40000;  // over two 16KiB DATA frames
  const be = await startBackend('m40');
  const g = await gateway(`upstreams:
  m: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
routes:
  - { name: m, match: { path: /grpc.testing.TestService/* }, to: m, grpc: { max_message_bytes: ${LIMIT} } }
`);
  try {
    const resBody = (size) => bodyFor(size, (k) => responseSize('UnaryCall', { payload: { body: zeros(k) } }));
    const atLimit = { response_size: resBody(LIMIT) };
    atLimit.payload = { body: zeros(bodyFor(LIMIT, (k) => requestSize('UnaryCall', { ...atLimit, payload: { body: zeros(k) } }))) };
    assert.equal(requestSize('UnaryCall', atLimit), LIMIT);
    let u = await unary(g.client, 'UnaryCall', atLimit, md(newId('max40_at')));
    assert.equal(u.status.code, Status.OK, u.status.details);
    assert.equal(u.res.payload.body.length, resBody(LIMIT));

    const id = newId('max40_req_over');
    const reqBody = (size) => bodyFor(size, (k) => requestSize('UnaryCall', { payload: { body: zeros(k) } }));
    u = await unary(g.client, 'UnaryCall', { payload: { body: zeros(reqBody(LIMIT + 1)) } }, md(id));
    assert.equal(u.status.code, Status.RESOURCE_EXHAUSTED, u.status.details);
    assert.match(u.status.details, /grpc\.max_message_bytes/);
    assert.equal(be.tries(id), 0, 'the oversized request never reached the server\'s handler');

    u = await unary(g.client, 'UnaryCall', { response_size: resBody(LIMIT + 1) }, md(newId('max40_res_over')));
    assert.equal(u.status.code, Status.RESOURCE_EXHAUSTED, u.status.details);
    assert.match(u.status.details, /grpc\.max_message_bytes/);
    assert.equal(u.res ?? null, null, 'no message');
  } finally {
    await g.stop();
  }
});

// --- 4. an upstream that fails mid-response ------------------------------------------------------

test('an upstream failing after a message: the client gets the message, then UNAVAILABLE in trailers, not a reset', async (t) => {
  // Answers every call with a head and one StreamingOutputCallResponse, then holds the stream
  // until the test fails it (hold) or ends it with OK trailers (complete).
  const held = [];
  let mode = 'hold';
  const message = frame(TS.StreamingOutputCall.responseSerialize({ payload: { body: zeros(16) } }));
  const up = await startRawH2((stream) => {
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    if (mode === 'complete') return stream.end(message);
    stream.write(message);
    held.push(stream);
  });
  const g = await gateway(`upstreams:
  flaky: { protocol: grpc, targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: flaky, match: { path: /grpc.testing.TestService/* }, to: flaky }
`);
  const failures = {
    'the upstream\'s HTTP/2 session destroyed': (s) => s.session.destroy(),
    'the upstream stream reset (RST_STREAM INTERNAL_ERROR)': (s) => s.close(NGHTTP2_INTERNAL_ERROR),
  };
  try {
    for (const [what, fail] of Object.entries(failures)) {
      await t.test(`${what}: grpc-js sees the message, then UNAVAILABLE`, async () => {
        mode = 'hold';
        const n = held.length;
        const r = reader(g.client.StreamingOutputCall({}, md(newId('midway'))));
        const first = await r.next();
        assert.equal(first.payload.body.length, 16);
        assert.equal(held.length, n + 1);
        fail(held[n]);
        const status = await r.status;
        assert.equal(status.code, Status.UNAVAILABLE, `code ${status.code}: ${status.details}`);
        assert.match(status.details, /reset/);
        assert.equal(await r.next(), null, 'no more messages');
      });
      await t.test(`${what}: on the wire, the message then trailers with grpc-status 14, the stream not reset`, async () => {
        mode = 'hold';
        const n = held.length;
        let failed = false;
        const r = await rawGrpc(g.port, '/grpc.testing.TestService/StreamingOutputCall', {
          onData: (out) => {
            if (!failed && out.data.length >= message.length && held.length > n) { failed = true; fail(held[n]); }
          },
        });
        assert.ok(failed, 'the message came through before the failure');
        assert.equal(r.error, null, r.error && r.error.message);
        assert.equal(r.head[':status'], 200);
        assert.deepEqual(r.data, message, 'the message, whole');
        assert.ok(r.trailers, `trailers (rstCode ${r.rstCode})`);
        assert.equal(r.trailers['grpc-status'], '14');
        assert.match(decodeGrpcMessage(String(r.trailers['grpc-message'] || '')), /reset/);
        assert.equal(r.rstCode, NGHTTP2_NO_ERROR, 'ended by trailers, not RST_STREAM');
      });
      await t.test(`${what}: a later call succeeds`, async () => {
        mode = 'complete';
        const r = reader(g.client.StreamingOutputCall({}, md(newId('after_midway'))));
        assert.deepEqual((await r.all()).map((m) => m.payload.body.length), [16]);
        const status = await r.status;
        assert.equal(status.code, Status.OK, status.details);
      });
    }
  } finally {
    await g.stop();
  }
});

// A server may frame its answer with content-length (nginx serving a static message does): the
// trailers that follow it still carry the status, so the gateway must not end the response at
// the length, from HTTP/2 or HTTP/1.1 clients.
test('an upstream answer with content-length keeps its trailers: grpc-js sees OK and the message', async () => {
  const message = frame(TS.StreamingOutputCall.responseSerialize({ payload: { body: zeros(16) } }));
  const up = await startRawH2((stream) => {
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'content-length': String(message.length) },
      { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-after': 'kept' }));
    stream.end(message);
  });
  const g = await gateway(`upstreams:
  sized: { protocol: grpc, targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: sized, match: { path: /grpc.testing.TestService/* }, to: sized }
`);
  try {
    const r = reader(g.client.StreamingOutputCall({}, md(newId('sized'))));
    assert.deepEqual((await r.all()).map((m) => m.payload.body.length), [16]);
    const status = await r.status;
    assert.equal(status.code, Status.OK, status.details);
    assert.deepEqual(status.metadata.get('x-after'), ['kept']);
    // HTTP/1.1: chunked, the trailers in the chunked body's trailer section.
    const h1 = await curl(['--raw', '-H', 'content-type: application/grpc', '-H', 'te: trailers',
      '--data-binary', '@-', `http://127.0.0.1:${g.port}/grpc.testing.TestService/StreamingOutputCall`],
    { input: frame(Buffer.alloc(0)) });
    assert.equal(h1.status, 200, h1.stderr);
    assert.deepEqual(h1.headers['transfer-encoding'], ['chunked']);
    assert.equal(h1.headers['content-length'], undefined);
    assert.match(h1.body, /\r\ngrpc-status: 0\r\nx-after: kept\r\n\r\n$/);
  } finally {
    await g.stop();
  }
});

// --- 5. metrics and access log -------------------------------------------------------------------

test('gRPC metrics and access log: per service, method and code, for upstream answers and the gateway\'s own', async () => {
  const be = await startBackend('obs');
  const g = await gateway(`upstreams:
  obs: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
routes:
  - { name: obs, match: { path: /grpc.testing.TestService/* }, to: obs }
`);
  try {
    for (let i = 0; i < 3; i++) {
      const u = await unary(g.client, 'EmptyCall', {}, md(newId('obs_ok')));
      assert.equal(u.status.code, Status.OK, u.status.details);
    }
    // NOT_FOUND from the upstream, trailers-only (the code in the response head).
    let u = await unary(g.client, 'UnaryCall', {}, md(newId('obs_not_found'), { 'x-fail-codes': '5' }));
    assert.equal(u.status.code, Status.NOT_FOUND);
    // FAILED_PRECONDITION after a message (the code in the trailers).
    const r = reader(g.client.StreamingOutputCall({ response_parameters: [{ size: 3 }],
      response_status: { code: Status.FAILED_PRECONDITION, message: 'no' } }, md(newId('obs_trailers'))));
    await r.all();
    assert.equal((await r.status).code, Status.FAILED_PRECONDITION);
    // The gateway's own answer: no route.
    const nr = await rawGrpc(g.port, '/grpc.testing.UnimplementedService/UnimplementedCall');
    assertTrailersOnly(nr, Status.UNIMPLEMENTED);
    // Not gRPC: counts nowhere here.
    assert.equal((await curl([g.gh.url('/plain/path')])).status, 404);

    const samples = await g.metrics();
    const count = (service, method, code) => sampleOf(samples, 'gatehouse_grpc_requests_total', { service, method, code });
    assert.equal(count('grpc.testing.TestService', 'EmptyCall', 'OK'), 3);
    assert.equal(count('grpc.testing.TestService', 'UnaryCall', 'NOT_FOUND'), 1);
    assert.equal(count('grpc.testing.TestService', 'StreamingOutputCall', 'FAILED_PRECONDITION'), 1);
    assert.equal(count('grpc.testing.UnimplementedService', 'UnimplementedCall', 'UNIMPLEMENTED'), 1);
    const grpcSamples = samples.filter((s) => s.name === 'gatehouse_grpc_requests_total');
    assert.deepEqual(grpcSamples.map((s) => `${s.labels.service}/${s.labels.method}:${s.labels.code}`).sort(), [
      'grpc.testing.TestService/EmptyCall:OK',
      'grpc.testing.TestService/StreamingOutputCall:FAILED_PRECONDITION',
      'grpc.testing.TestService/UnaryCall:NOT_FOUND',
      'grpc.testing.UnimplementedService/UnimplementedCall:UNIMPLEMENTED',
    ], 'one series per service, method and code; nothing for the plain HTTP request');

    const h = { service: 'grpc.testing.TestService', method: 'EmptyCall' };
    assert.equal(sampleOf(samples, 'gatehouse_grpc_request_duration_seconds_count', h), 3);
    assert.ok(sampleOf(samples, 'gatehouse_grpc_request_duration_seconds_sum', h) > 0, 'a duration sum');
    assert.equal(sampleOf(samples, 'gatehouse_grpc_request_duration_seconds_bucket', { ...h, le: '+Inf' }), 3);
    assert.equal(sampleOf(samples, 'gatehouse_grpc_request_duration_seconds_count',
      { service: 'grpc.testing.UnimplementedService', method: 'UnimplementedCall' }), 1);

    const lines = await waitFor(() => {
      const l = g.gh.accessLog();
      return l.length >= 7 && l;
    }, 3000, 'seven access log lines');
    const grpcFields = (p) => lines.filter((l) => l.path === p)
      .map((l) => ({ grpc_service: l.grpc_service, grpc_method: l.grpc_method, grpc_status: l.grpc_status }));
    const ts = 'grpc.testing.TestService';
    assert.deepEqual(grpcFields(EMPTY_CALL), Array(3).fill({ grpc_service: ts, grpc_method: 'EmptyCall', grpc_status: 0 }));
    assert.deepEqual(grpcFields('/grpc.testing.TestService/UnaryCall'), [{ grpc_service: ts, grpc_method: 'UnaryCall', grpc_status: 5 }]);
    assert.deepEqual(grpcFields('/grpc.testing.TestService/StreamingOutputCall'),
      [{ grpc_service: ts, grpc_method: 'StreamingOutputCall', grpc_status: 9 }]);
    assert.deepEqual(grpcFields('/grpc.testing.UnimplementedService/UnimplementedCall'),
      [{ grpc_service: 'grpc.testing.UnimplementedService', grpc_method: 'UnimplementedCall', grpc_status: 12 }]);
    assert.deepEqual(grpcFields('/plain/path'), [{ grpc_service: undefined, grpc_method: undefined, grpc_status: undefined }],
      'a plain HTTP request carries no grpc_* fields');
  } finally {
    await g.stop();
  }
});

// --- 6. full duplex for plain HTTP/2 -------------------------------------------------------------

test('HTTP/2 full duplex through protocol: http2: a client that waits for each chunk\'s echo before the next completes', async () => {
  const up = await startRawH2((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
    stream.on('data', (d) => stream.write(d));  // each chunk echoed as soon as it comes
    stream.on('end', () => stream.end());
  });
  const g = await gateway(`upstreams:
  echo: { protocol: http2, targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: echo, match: { path: /duplex/* }, to: echo }
`);
  const session = http2.connect(`http://127.0.0.1:${g.port}`);
  try {
    session.on('error', () => {});
    const req = session.request({ ':method': 'POST', ':path': '/duplex/echo', 'content-type': 'application/octet-stream' });
    req.on('error', () => {});
    let received = Buffer.alloc(0);
    let wake = null;
    let ended = false;
    req.on('data', (d) => { received = Buffer.concat([received, d]); if (wake) wake(); });
    req.on('end', () => { ended = true; if (wake) wake(); });
    const head = within(new Promise((resolve) => req.on('response', resolve)), 5000, 'the response head');
    head.catch(() => {});
    const until = (cond, what) => within((async () => {
      while (!cond()) await new Promise((r) => { wake = r; });
      wake = null;
    })(), 5000, what);
    let sent = Buffer.alloc(0);
    for (let i = 0; i < 5; i++) {
      const chunk = Buffer.from(`chunk ${i} `.padEnd(100 + i * 1000, String(i)));
      req.write(chunk);
      sent = Buffer.concat([sent, chunk]);
      await until(() => received.length >= sent.length, `the echo of chunk ${i} (the request not ended yet)`);
      assert.deepEqual(received, sent, `the echo so far, after chunk ${i}`);
    }
    assert.equal((await head)[':status'], 200);
    req.end();
    await until(() => ended, 'the end of the response');
    assert.deepEqual(received, sent);
  } finally {
    session.destroy();
    await g.stop();
  }
});

// --- 7. config errors ----------------------------------------------------------------------------

test('validate: the new gRPC keys are accepted where they belong', () => {
  const file = tempFile('grpc-good.yaml', `server: { workers: 1, listen: [ { address: 127.0.0.1:1, protocols: [http1, h2c] } ] }
upstreams:
  g:
    protocol: grpc
    targets: [ { address: 127.0.0.1:2 } ]
    health_check: { interval: 1s, service: grpc.testing.TestService }
    retry: { attempts: 2, backoff: 1ms, on: [unavailable, resource_exhausted, internal, deadline_exceeded, connect_failure] }
routes:
  - { name: g, match: { path: /g/* }, to: g, grpc: { max_message_bytes: 4MiB }, retry: { attempts: 1, on: [unavailable] } }
`);
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 0, r.stderr);
});

test('validate: path, expected_statuses on a gRPC upstream, service on an HTTP one, an unknown gRPC code, max_message_bytes 0: FILE:LINE:COL errors, exit 1', () => {
  const text = `server: { workers: 1, listen: [ { address: 127.0.0.1:1, protocols: [http1, h2c] } ] }
upstreams:
  g1:
    protocol: grpc
    targets: [ { address: 127.0.0.1:2 } ]
    health_check: { interval: 1s, path: /healthz }
  g2:
    protocol: grpc
    targets: [ { address: 127.0.0.1:3 } ]
    health_check: { expected_statuses: [200] }
  h1:
    targets: [ { address: 127.0.0.1:4 } ]
    health_check: { service: grpc.testing.TestService }
  g3:
    protocol: grpc
    targets: [ { address: 127.0.0.1:5 } ]
    retry: { attempts: 2, on: [unavailable, no_such_code] }
routes:
  - { name: a, match: { path: /a/* }, to: g1, grpc: { max_message_bytes: 0 } }
  - { name: b, match: { path: /b/* }, to: g3, retry: { on: [unavailble] } }
`;
  const file = tempFile('grpc-bad.yaml', text);
  const lines = text.split('\n');
  // The line and column (1-based) of `value` on the line holding `marker`.
  const at = (marker, value) => {
    const i = lines.findIndex((l) => l.includes(marker));
    return [i + 1, lines[i].indexOf(value, lines[i].indexOf(marker)) + 1];
  };
  const expected = [
    [...at('path: /healthz', '/healthz'), 'upstreams.g1.health_check.path'],
    [...at('expected_statuses', '[200]'), 'upstreams.g2.health_check.expected_statuses'],
    [...at('service: grpc.testing', 'grpc.testing'), 'upstreams.h1.health_check.service'],
    [...at('no_such_code', 'no_such_code'), 'upstreams.g3.retry.on[1]'],
    [...at('max_message_bytes: 0', '0 }'), 'routes[0].grpc.max_message_bytes'],
    [...at('unavailble', 'unavailble'), 'routes[1].retry.on[0]'],
  ];
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 1, `exit 1 (got ${r.status})\n${r.stdout}${r.stderr}`);
  const errors = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.startsWith(`${file}:`) && /^:\d+:\d+: /.test(l.slice(file.length)));
  for (const [line, col, yamlPath] of expected) {
    const prefix = `${file}:${line}:${col}: ${yamlPath}: `;
    assert.ok(errors.some((l) => l.startsWith(prefix) && l.length > prefix.length),
      `an error ${prefix}...\ngot:\n${errors.join('\n')}`);
  }
  assert.equal(errors.length, expected.length, `only these errors:\n${errors.join('\n')}`);
});
