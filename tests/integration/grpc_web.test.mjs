// gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) at the gateway, end to
// end through the real binary: a route with `grpc_web: {}` (and `cors`) in front of a grpc-js
// server (fixtures/grpc_test.proto), called by a minimal gRPC-Web client written here (messages
// encoded with proto-loader's serializers) over HTTP/1.1 (node:http) and HTTP/2 (node:http2, h2c):
// - unary calls, binary (application/grpc-web, application/grpc-web+proto) and text
//   (application/grpc-web-text[+proto], base64 both ways), from both protocols: the upstream gets
//   application/grpc[+proto] and the request's message bytes unchanged; the client gets
//   content-type application/grpc-web[-text] (the request's +subtype kept), the messages, then
//   one trailer frame (flag 0x80, "name:value\r\n" lines) with grpc-status, and no HTTP trailers;
//   a -text request body arriving in pieces that split base64 groups; a 300 KB message each way;
// - server streaming: several messages in order, then the one trailer frame; the first message
//   reaches the client, whole and decodable (in -text too: PROTOCOL-WEB has the server base64-encode
//   and flush each message atomically), before the server sends the next;
// - an error after a message: grpc-status, the grpc-message and the server's custom trailing
//   metadata (text and -bin) in the trailer frame; an error answered trailers-only by the server:
//   the status, message and metadata in the response head (empty body) or in a trailer frame;
// - the gateway's own answers to gRPC-Web calls (no route; key_auth without the key): HTTP 200,
//   grpc-status/grpc-message in the head, content-type application/grpc-web..., an empty body
//   (trailers-only), never JSON; with an allowed Origin, still the CORS headers;
// - CORS: a browser preflight (OPTIONS, Origin, Access-Control-Request-Method: POST,
//   Access-Control-Request-Headers: content-type,x-grpc-web) answered 204 by the gateway with the
//   allow headers, nothing forwarded; an actual call from the origin gets
//   Access-Control-Allow-Origin and Access-Control-Expose-Headers naming grpc-status and
//   grpc-message;
// - a malformed application/grpc-web-text body (not base64): an error status, answered promptly,
//   not a hang and not a 5xx JSON body; the gateway serves the next call;
// - the access log's grpc_service, grpc_method, grpc_status, and gatehouse_grpc_requests_total,
//   for gRPC-Web calls;
// - plain gRPC (application/grpc, a grpc-js client over h2c) through the same route, unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { startGatehouse, waitFor, freePort, curl, parseMetrics, sampleOf } from './harness.mjs';
import { newId, md, within, reader, decodeGrpcMessage, bindInsecure, onRawStreams } from './grpc_client.mjs';

const Status = grpc.status;
const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures');
const LOAD_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const testDef = protoLoader.loadSync(path.join(FIXTURES, 'grpc_test.proto'), LOAD_OPTIONS);
const testing = grpc.loadPackageDefinition(testDef).grpc.testing;
const TS = testDef['grpc.testing.TestService'];

const SERVICE = 'grpc.testing.TestService';
const UNARY = `/${SERVICE}/UnaryCall`;
const STREAM = `/${SERVICE}/StreamingOutputCall`;
const EMPTY = `/${SERVICE}/EmptyCall`;
const ORIGIN = 'https://app.example';
const API_KEY = 'grpc-web-test-key';

// Custom trailing metadata the server ends its errors with.
const DETAIL = 'stock-level=0; see ticket 42';
const DETAIL_BIN = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);

// n bytes that are not text (every byte value occurs), starting at `seed`.
const pattern = (n, seed = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

// A length-prefixed gRPC message (uncompressed).
function frame(message) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

// --- the gRPC server -----------------------------------------------------------------------------

// A grpc-js server with TestService.
//   calls:   x-test-id -> { method, request (deserialized), released }
//   streams: x-test-id -> [one per HTTP/2 stream: { headers, bytes (DATA received), closed }]
//   streamCount: every HTTP/2 stream it got.
// UnaryCall answers with payload.body = the request's payload.body followed by response_size
// pattern bytes; with response_status.code it fails instead (trailers-only, since no message went
// out), with the custom trailing metadata. StreamingOutputCall sends one message per
// response_parameters entry (body = pattern(size, index)); with metadata x-gate, after the first
// message it waits for release(id) (at most 5 s) before the rest; then it ends with
// response_status (and the custom trailing metadata) or OK.
async function startBackend() {
  const b = { calls: new Map(), streams: new Map(), streamCount: 0, gates: new Map() };
  const trailing = () => {
    const m = new grpc.Metadata();
    m.set('x-detail', DETAIL);
    m.set('x-detail-bin', DETAIL_BIN);
    return m;
  };
  const record = (call, method) => {
    const id = call.metadata.get('x-test-id')[0];
    const r = { method, request: call.request, released: null };
    if (id) b.calls.set(id, r);
    call.on('error', () => {});
    return { id, r };
  };
  const impl = {
    EmptyCall(call, cb) {
      record(call, 'EmptyCall');
      cb(null, {});
    },
    UnaryCall(call, cb) {
      record(call, 'UnaryCall');
      const req = call.request;
      const s = req.response_status;
      if (s && s.code) return cb({ code: s.code, details: s.message, metadata: trailing() });
      const body = Buffer.concat([req.payload ? req.payload.body : Buffer.alloc(0), pattern(req.response_size)]);
      cb(null, { payload: { body } });
    },
    async StreamingOutputCall(call) {
      const { id, r } = record(call, 'StreamingOutputCall');
      const params = call.request.response_parameters;
      let cancelled = false;
      call.on('cancelled', () => { cancelled = true; });
      for (let i = 0; i < params.length; i++) {
        if (cancelled) return;
        if (i === 1 && call.metadata.get('x-gate').length) {
          r.released = await new Promise((resolve) => {
            const t = setTimeout(() => resolve(false), 5000);
            t.unref();
            b.gates.set(id, () => { clearTimeout(t); resolve(true); });
          });
        } else if (params[i].interval_us) {
          await new Promise((resolve) => setTimeout(resolve, params[i].interval_us / 1000).unref());
        }
        if (cancelled) return;
        call.write({ payload: { body: pattern(params[i].size, i) } });
      }
      const s = call.request.response_status;
      if (s && s.code) call.emit('error', { code: s.code, details: s.message, metadata: trailing() });
      else call.end();
    },
  };
  const server = new grpc.Server();
  server.addService(testing.TestService.service, impl);
  b.port = await bindInsecure(server);
  // The raw HTTP/2 streams, before grpc-js sees them: their head and how much DATA came.
  onRawStreams(server, (stream, headers) => {
    b.streamCount++;
    const id = headers['x-test-id'];
    if (!id) return;
    const raw = { headers: { ...headers }, bytes: 0, closed: false };
    b.streams.set(id, [...(b.streams.get(id) || []), raw]);
    stream.on('data', (d) => { raw.bytes += d.length; });
    stream.on('close', () => { raw.closed = true; });
  });
  b.release = (id) => { const g = b.gates.get(id); if (g) g(); };
  b.close = () => server.forceShutdown();
  backends.push(b);
  return b;
}
const backends = [];
after(() => { for (const b of backends) b.close(); });

// --- the gateway ---------------------------------------------------------------------------------

const gateways = [];
after(async () => { for (const gh of gateways) await gh.stop('SIGKILL'); });

const CORS = `cors: { origins: ["${ORIGIN}"], methods: [POST], headers: [content-type, x-grpc-web, x-user-agent, grpc-timeout], expose_headers: [grpc-status, grpc-message] }`;

// A gateway (one worker, http1 + h2c, the admin API, a JSON access log on stdout) in front of
// `be`: route `web` (grpc_web, cors) for TestService, and route `keyed` (grpc_web, key_auth, cors)
// for EmptyCall alone.
async function gateway(be) {
  const port = await freePort();
  const admin = await freePort();
  const sha = crypto.createHash('sha256').update(API_KEY).digest('hex');
  const gh = await startGatehouse(`server: { workers: 1, listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ] }
admin: { listen: 127.0.0.1:${admin} }
observability: { access_log: { path: stdout, format: json } }
consumers:
  - { name: web-app, api_keys: [ { sha256: ${sha} } ] }
upstreams:
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
routes:
  - name: keyed
    match: { path: ${EMPTY} }
    to: g
    plugins:
      grpc_web: {}
      key_auth: {}
      cors: { origins: ["${ORIGIN}"], methods: [POST], headers: [content-type, x-grpc-web, x-api-key], expose_headers: [grpc-status, grpc-message] }
  - name: web
    match: { path: /${SERVICE}/* }
    to: g
    plugins:
      grpc_web: {}
      ${CORS}
`);
  gateways.push(gh);
  const g = { gh, port: gh.port, admin };
  g.metrics = async () => {
    const r = await curl([`http://127.0.0.1:${admin}/metrics`]);
    assert.equal(r.status, 200, `GET /metrics: ${r.status} ${r.stderr}`);
    return parseMetrics(r.body);
  };
  g.stop = () => gh.stop('SIGKILL');
  return g;
}


// --- a minimal gRPC-Web client -------------------------------------------------------------------

const sessions = new Set();
after(() => { for (const s of sessions) s.destroy(); });

// One request over HTTP/1.1 (node:http, a fresh connection). Resolves { proto, status, headers,
// body (Buffer), trailers (null when none came), error } once the response has ended.
// onData(bodySoFar) runs at each piece of the body.
function h1Request(port, p, { method = 'POST', headers = {}, body = null, onData = null, pieces = null } = {}) {
  return within(new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body) h['content-length'] = body.length;
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => { chunks.push(d); if (onData) onData(Buffer.concat(chunks)); });
      res.on('end', () => resolve({
        proto: 'HTTP/1.1', status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks),
        trailers: res.rawTrailers.length ? res.trailers : null, error: null,
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (pieces) writePieces(req, pieces);
    else req.end(body || undefined);
  }), 15000, `${method} ${p} over HTTP/1.1`);
}

// One request over HTTP/2 (node:http2, h2c prior knowledge, a fresh session). Resolves the same
// shape (headers include :status), plus rstCode, once the stream has closed.
function h2Request(port, p, { method = 'POST', headers = {}, body = null, onData = null, pieces = null } = {}) {
  return within(new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    sessions.add(session);
    session.on('error', reject);
    const out = { proto: 'HTTP/2', status: null, headers: null, body: Buffer.alloc(0), trailers: null, error: null, rstCode: null };
    const h = { ':method': method, ':path': p, ...headers };
    if (body) h['content-length'] = String(body.length);
    const req = session.request(h, { endStream: !body });
    req.on('response', (head) => { out.status = head[':status']; out.headers = head; });
    req.on('data', (d) => { out.body = Buffer.concat([out.body, d]); if (onData) onData(out.body); });
    req.on('trailers', (t) => { out.trailers = t; });
    req.on('error', (e) => { out.error = e; });
    req.on('close', () => {
      out.rstCode = req.rstCode;
      session.close();
      sessions.delete(session);
      resolve(out);
    });
    if (pieces) writePieces(req, pieces);
    else if (body) req.end(body);
  }), 15000, `${method} ${p} over HTTP/2`);
}

// Writes `pieces` of a request body one at a time, each once the one before has been flushed (so
// they leave as separate writes: HTTP/2 DATA frames, HTTP/1.1 segments), then ends the request.
async function writePieces(req, pieces) {
  for (const piece of pieces) {
    if (req.destroyed) return;
    await new Promise((resolve) => req.write(piece, resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (!req.destroyed) req.end();
}

const send = (via) => (via === 'h2' ? h2Request : h1Request);

// The content-type of a gRPC-Web call: binary or text, with or without +proto.
const webType = ({ text = false, plus = false } = {}) => `application/grpc-web${text ? '-text' : ''}${plus ? '+proto' : ''}`;

// A gRPC-Web call of `p` carrying `messages` (serialized), as a browser's grpc-web client makes
// it: content-type, accept, x-grpc-web, x-user-agent, and x-test-id as metadata.
// `split`: the body's sizes of piece, sent one at a time (the rest in a last piece).
function webCall(port, p, { via = 'h1', text = false, plus = false, messages = [], id = null, headers = {}, onData = null, rawBody = null, split = null } = {}) {
  const bytes = Buffer.concat(messages.map(frame));
  const body = rawBody || (text ? Buffer.from(bytes.toString('base64'), 'latin1') : bytes);
  const ct = webType({ text, plus });
  let pieces = null;
  if (split) {
    pieces = [];
    let at = 0;
    for (const n of split) { pieces.push(body.subarray(at, at + n)); at += n; }
    pieces.push(body.subarray(at));
  }
  return send(via)(port, p, {
    body,
    pieces,
    onData,
    headers: {
      'content-type': ct, accept: ct, 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1',
      ...(id ? { 'x-test-id': id } : {}), ...headers,
    },
  });
}

// Base64 as a gRPC-Web-text body may carry it: padded 4-character groups, possibly several padded
// pieces one after the other (so a '=' may end any group, not only the last). Anything else fails.
function base64Decode(text) {
  assert.match(text, /^[A-Za-z0-9+/=]*$/, `a base64 body (got ${JSON.stringify(text.slice(0, 80))})`);
  assert.equal(text.length % 4, 0, `base64 in whole 4-character groups (got ${text.length} characters)`);
  const out = [];
  for (let i = 0; i < text.length; i += 4) {
    const q = text.slice(i, i + 4);
    assert.match(q, /^[A-Za-z0-9+/]{2}([A-Za-z0-9+/]{2}|[A-Za-z0-9+/]=|==)$/, `a well-formed base64 group at ${i}: ${q}`);
    out.push(Buffer.from(q, 'base64'));
  }
  return Buffer.concat(out);
}

// A trailer frame's payload: HTTP/1.1-style header lines, lower-case names, "name:value" or
// "name: value", split by \r\n.
function parseTrailerBlock(buf) {
  const out = {};
  for (const line of buf.toString('latin1').split('\r\n')) {
    if (line === '') continue;
    const i = line.indexOf(':');
    assert.ok(i > 0, `a trailer line "name:value" (got ${JSON.stringify(line)})`);
    const name = line.slice(0, i).trim();
    assert.equal(name, name.toLowerCase(), `trailer names in lower case (got ${name})`);
    out[name] = line.slice(i + 1).trim();
  }
  return out;
}

// A gRPC-Web response body (base64-decoded first when its content-type is -text) as frames:
// { text, frames, messages (Buffers, in order), trailer (the trailer frame's fields, or null) }.
// Each frame whole; data frames uncompressed (flag 0x00); at most one trailer frame, the last.
function decodeWeb(r) {
  const text = /^application\/grpc-web-text/i.test(String(r.headers['content-type'] || ''));
  const bytes = text ? base64Decode(r.body.toString('latin1')) : r.body;
  const frames = [];
  for (let at = 0; at < bytes.length;) {
    assert.ok(at + 5 <= bytes.length, `a whole frame prefix at byte ${at} of ${bytes.length}`);
    const flag = bytes[at];
    const len = bytes.readUInt32BE(at + 1);
    assert.ok(at + 5 + len <= bytes.length, `a whole frame at byte ${at}: ${len} bytes announced, ${bytes.length - at - 5} there`);
    frames.push({ flag, data: bytes.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  const trailerAt = frames.findIndex((f) => f.flag & 0x80);
  if (trailerAt >= 0) assert.equal(trailerAt, frames.length - 1, `the trailer frame is the last (frame ${trailerAt} of ${frames.length})`);
  const dataFrames = trailerAt >= 0 ? frames.slice(0, -1) : frames;
  for (const f of dataFrames) assert.equal(f.flag, 0x00, `data frames uncompressed, flag 0x00 (got 0x${f.flag.toString(16)})`);
  if (trailerAt >= 0) assert.equal(frames[trailerAt].flag, 0x80, 'the trailer frame\'s flag is 0x80');
  return {
    text, frames,
    messages: dataFrames.map((f) => f.data),
    trailer: trailerAt >= 0 ? parseTrailerBlock(frames[trailerAt].data) : null,
  };
}

// A gRPC-Web response's transport: HTTP 200, not reset, no HTTP trailers, a gRPC-Web content-type
// of the request's kind (the request's +proto kept; "application/grpc-web" means +proto too).
function assertWebTransport(r, { text = false, plus = false } = {}) {
  assert.equal(r.error, null, r.error && `the stream failed: ${r.error.message}`);
  assert.equal(Number(r.status), 200, `HTTP 200 (got ${r.status}: ${r.body.toString('latin1').slice(0, 200)})`);
  const ct = String(r.headers['content-type'] || '');
  const base = text ? 'application\\/grpc-web-text' : 'application\\/grpc-web';
  assert.match(ct, new RegExp(`^${base}${plus ? '\\+proto' : '(\\+proto)?'}\\s*(;.*)?$`, 'i'),
    `content-type ${webType({ text, plus })} (got ${ct})`);
  assert.equal(r.trailers, null, `no HTTP trailers (got ${JSON.stringify(r.trailers)})`);
}

// A normal response (messages, then the trailer frame): its decoded form, status from the frame.
function assertWebMessages(r, opts = {}) {
  assertWebTransport(r, opts);
  const d = decodeWeb(r);
  assert.ok(d.trailer, `a trailer frame at the end of the body (frames: ${d.frames.map((f) => `0x${f.flag.toString(16)}/${f.data.length}`).join(' ')})`);
  assert.ok(d.trailer['grpc-status'] !== undefined, `grpc-status in the trailer frame (got ${JSON.stringify(d.trailer)})`);
  assert.equal(r.headers['grpc-status'], undefined, 'grpc-status in the trailer frame, not also in the head');
  d.code = Number(d.trailer['grpc-status']);
  d.message = decodeGrpcMessage(d.trailer['grpc-message'] || '');
  return d;
}

// A trailers-only gRPC-Web answer: the status (and metadata) in the head, an empty body.
function assertWebTrailersOnly(r, code, opts = {}) {
  assertWebTransport(r, opts);
  assert.equal(r.headers['grpc-status'], String(code),
    `grpc-status ${code} in the head (got ${r.headers['grpc-status']}: ${r.headers['grpc-message']}; body ${JSON.stringify(r.body.toString('latin1').slice(0, 200))})`);
  assert.equal(r.body.length, 0, `an empty body (got ${JSON.stringify(r.body.toString('latin1').slice(0, 200))})`);
  return decodeGrpcMessage(String(r.headers['grpc-message'] || ''));
}

// Where a call's status came from, either form: the trailer frame, or (empty body) the head.
// Returns { code, message, fields (the trailer frame or the head), where }.
function webStatusEitherForm(r, opts = {}) {
  assertWebTransport(r, opts);
  if (r.body.length === 0) {
    assert.ok(r.headers['grpc-status'] !== undefined, 'an empty body: grpc-status in the head');
    return { code: Number(r.headers['grpc-status']), message: decodeGrpcMessage(String(r.headers['grpc-message'] || '')), fields: r.headers, where: 'head' };
  }
  const d = decodeWeb(r);
  assert.deepEqual(d.messages.map((m) => m.length), [], 'no messages');
  assert.ok(d.trailer, 'a non-empty body: a trailer frame');
  return { code: Number(d.trailer['grpc-status']), message: decodeGrpcMessage(d.trailer['grpc-message'] || ''), fields: d.trailer, where: 'trailer frame' };
}

// A comma-separated header as a set of lower-case items.
const items = (v) => new Set(String(v || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));

// --- the shared backend and gateway --------------------------------------------------------------

let be;
let g;
before(async () => {
  be = await startBackend();
  g = await gateway(be);
});

const VARIANTS = [];
for (const via of ['h1', 'h2']) {
  for (const text of [false, true]) {
    for (const plus of [false, true]) VARIANTS.push({ via, text, plus });
  }
}
const label = ({ via, text, plus }) => `${via === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} ${webType({ text, plus })}`;

// --- 1. unary calls ------------------------------------------------------------------------------

test('unary OK, binary and text, over HTTP/1.1 and HTTP/2: application/grpc upstream, the message unchanged; one message then the trailer frame', async (t) => {
  for (const v of VARIANTS) {
    await t.test(label(v), async () => {
      const id = newId('unary');
      const sent = pattern(300, 11);
      const req = TS.UnaryCall.requestSerialize({ payload: { body: sent }, response_size: 200 });
      const r = await webCall(g.port, UNARY, { ...v, id, messages: [req] });
      const d = assertWebMessages(r, v);
      assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
      assert.equal(d.messages.length, 1, 'one response message');
      const res = TS.UnaryCall.responseDeserialize(d.messages[0]);
      assert.deepEqual(Buffer.from(res.payload.body), Buffer.concat([sent, pattern(200)]), 'the server\'s answer, whole');

      // What the server got: a gRPC call, the message bytes as sent (decoded from base64 for -text).
      const call = be.calls.get(id);
      assert.ok(call, 'the call reached the server');
      assert.deepEqual(Buffer.from(call.request.payload.body), sent, 'the request message reached the server unchanged');
      const raw = be.streams.get(id);
      assert.equal(raw.length, 1, 'one upstream stream');
      assert.match(String(raw[0].headers['content-type']), v.plus ? /^application\/grpc\+proto$/ : /^application\/grpc(\+proto)?$/,
        `the upstream's content-type is gRPC's (got ${raw[0].headers['content-type']})`);
      await waitFor(() => raw[0].closed, 3000, 'the upstream stream to close');
      assert.equal(raw[0].bytes, frame(req).length, 'the upstream got the length-prefixed message, byte for byte');
    });
  }
});

test('a -text request body whose pieces split base64 groups, and a large message both ways (binary and text)', async (t) => {
  for (const via of ['h1', 'h2']) {
    await t.test(`-text body in pieces of 1, 2, 3, 5, 7 characters, ${via === 'h1' ? 'HTTP/1.1' : 'HTTP/2'}`, async () => {
      const id = newId('split');
      const sent = pattern(40, 5);
      const req = TS.UnaryCall.requestSerialize({ payload: { body: sent }, response_size: 1 });
      const r = await webCall(g.port, UNARY, { via, text: true, id, messages: [req], split: [1, 2, 3, 5, 7] });
      const d = assertWebMessages(r, { text: true });
      assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
      assert.deepEqual(Buffer.from(be.calls.get(id).request.payload.body), sent, 'the message reached the server whole');
    });
    for (const text of [false, true]) {
      await t.test(`a 300 KB message each way, ${label({ via, text })}`, async () => {
        const id = newId('large');
        const sent = pattern(300 * 1024, 9);
        const req = TS.UnaryCall.requestSerialize({ payload: { body: sent }, response_size: 200 * 1024 });
        const r = await webCall(g.port, UNARY, { via, text, id, messages: [req] });
        const d = assertWebMessages(r, { text });
        assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
        assert.equal(d.messages.length, 1);
        assert.ok(Buffer.from(TS.UnaryCall.responseDeserialize(d.messages[0]).payload.body).equals(Buffer.concat([sent, pattern(200 * 1024)])),
          'the answer whole');
        assert.ok(Buffer.from(be.calls.get(id).request.payload.body).equals(sent), 'the request message reached the server whole');
      });
    }
  }
});

// --- 2. server streaming -------------------------------------------------------------------------

test('server streaming: every message in order, then one trailer frame with grpc-status 0', async (t) => {
  const sizes = [0, 1, 5, 100, 3000, 70000, 2];
  for (const v of VARIANTS.filter((x) => !x.plus)) {
    await t.test(label(v), async () => {
      const id = newId('stream');
      const req = TS.StreamingOutputCall.requestSerialize({
        response_parameters: sizes.map((size, i) => ({ size, interval_us: i % 2 ? 10000 : 0 })),
      });
      const r = await webCall(g.port, STREAM, { ...v, id, messages: [req] });
      const d = assertWebMessages(r, v);
      assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
      assert.deepEqual(d.messages.map((m) => TS.StreamingOutputCall.responseDeserialize(m).payload.body.length), sizes,
        'every message, in order');
      d.messages.forEach((m, i) => assert.deepEqual(Buffer.from(TS.StreamingOutputCall.responseDeserialize(m).payload.body),
        pattern(sizes[i], i), `message ${i} intact`));
    });
  }
});

// PROTOCOL-WEB: "the server runtime will always base64-encode and flush gRPC messages atomically",
// so in -text too each message can be decoded as soon as it is sent, without waiting for the next.
test('server streaming: the first message reaches the client (whole, decodable) before the server sends the next', async (t) => {
  for (const via of ['h1', 'h2']) {
    for (const text of [false, true]) {
      await t.test(label({ via, text }), async () => {
        const id = newId('gated');
        // The first response message is a 19-byte frame: not a multiple of 3, so its base64 ends in
        // padding unless the encoder holds its last byte back for the next piece.
        const req = TS.StreamingOutputCall.requestSerialize({ response_parameters: [{ size: 10 }, { size: 20 }] });
        assert.equal(TS.StreamingOutputCall.responseSerialize({ payload: { body: pattern(10) } }).length + 5, 19);
        let gotFirst = false;
        const r = await webCall(g.port, STREAM, {
          via, text, id, messages: [req], headers: { 'x-gate': '1' },
          onData: (sofar) => {
            const bytes = text ? decodableBytes(sofar.toString('latin1')) : sofar;
            if (!gotFirst && bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1)) {
              gotFirst = true;
              be.release(id);
            }
          },
        });
        const d = assertWebMessages(r, { text });
        assert.equal(d.code, Status.OK);
        assert.deepEqual(d.messages.map((m) => TS.StreamingOutputCall.responseDeserialize(m).payload.body.length), [10, 20],
          'both messages, in order');
        assert.equal(be.calls.get(id).released, true,
          'the client could read the first message while the server waited to send the second (the gateway held none of it back)');
      });
    }
  }
});

// The bytes a -text body received so far stands for: its whole 4-character groups, decoded.
function decodableBytes(text) {
  const out = [];
  for (let i = 0; i + 4 <= text.length; i += 4) out.push(Buffer.from(text.slice(i, i + 4), 'base64'));
  return Buffer.concat(out);
}

// --- 3. errors from the server -------------------------------------------------------------------

test('an error after a message: grpc-status, grpc-message and the custom trailing metadata in the trailer frame', async (t) => {
  const message = 'stock too low: 0% left for "Fancy Widget" (café)';
  for (const v of VARIANTS.filter((x) => !x.plus)) {
    await t.test(label(v), async () => {
      const req = TS.StreamingOutputCall.requestSerialize({
        response_parameters: [{ size: 7 }], response_status: { code: Status.FAILED_PRECONDITION, message },
      });
      const r = await webCall(g.port, STREAM, { ...v, id: newId('err_trailers'), messages: [req] });
      const d = assertWebMessages(r, v);
      assert.equal(d.messages.length, 1, 'the message before the error');
      assert.equal(TS.StreamingOutputCall.responseDeserialize(d.messages[0]).payload.body.length, 7);
      assert.equal(d.code, Status.FAILED_PRECONDITION, `grpc-status 9 (got ${JSON.stringify(d.trailer)})`);
      assert.equal(d.message, message, 'grpc-message, as the server sent it');
      assert.equal(d.trailer['x-detail'], DETAIL, `custom trailing metadata in the trailer frame (got ${JSON.stringify(d.trailer)})`);
      const bin = d.trailer['x-detail-bin'];
      assert.ok(bin !== undefined, 'binary trailing metadata in the trailer frame');
      // Base64 as in gRPC over HTTP/2; for -text PROTOCOL-WEB lets that extra encoding be skipped
      // (the raw bytes in the frame), so either is accepted there.
      const asRaw = Buffer.from(bin, 'latin1').equals(DETAIL_BIN);
      assert.ok(Buffer.from(bin, 'base64').equals(DETAIL_BIN) || (v.text && asRaw),
        `-bin metadata base64-encoded${v.text ? ' (or raw, for -text)' : ''} (got ${JSON.stringify(bin)})`);
    });
  }
});

test('an error answered trailers-only by the server (no message): the status, message and metadata, in the head or a trailer frame', async (t) => {
  const message = 'no such item: 42';
  for (const v of VARIANTS.filter((x) => !x.plus)) {
    await t.test(label(v), async () => {
      const req = TS.UnaryCall.requestSerialize({ response_status: { code: Status.NOT_FOUND, message } });
      const r = await webCall(g.port, UNARY, { ...v, id: newId('err_only'), messages: [req] });
      const s = webStatusEitherForm(r, v);
      assert.equal(s.code, Status.NOT_FOUND, `grpc-status 5 in the ${s.where} (got ${s.code}: ${s.message})`);
      assert.equal(s.message, message, `grpc-message in the ${s.where}`);
      assert.equal(s.fields['x-detail'], DETAIL, `the server's trailing metadata in the ${s.where}`);
    });
  }
});

// --- 4. the gateway's own answers ----------------------------------------------------------------

test('the gateway\'s own answers to gRPC-Web calls: HTTP 200, trailers-only (status in the head, empty body), never JSON', async (t) => {
  for (const v of VARIANTS.filter((x) => !x.plus)) {
    await t.test(`no route: UNIMPLEMENTED, ${label(v)}`, async () => {
      const before = be.streamCount;
      const r = await webCall(g.port, '/grpc.testing.UnimplementedService/UnimplementedCall',
        { ...v, messages: [TS.EmptyCall.requestSerialize({})] });
      const m = assertWebTrailersOnly(r, Status.UNIMPLEMENTED, v);
      assert.ok(m.length > 0, 'a grpc-message');
      assert.equal(be.streamCount, before, 'nothing reached the server');
    });
    await t.test(`key_auth without the key: UNAUTHENTICATED, with the CORS headers, ${label(v)}`, async () => {
      const before = be.streamCount;
      const r = await webCall(g.port, EMPTY, { ...v, messages: [TS.EmptyCall.requestSerialize({})], headers: { origin: ORIGIN } });
      const m = assertWebTrailersOnly(r, Status.UNAUTHENTICATED, v);
      assert.ok(m.length > 0, 'a grpc-message');
      assert.equal(be.streamCount, before, 'nothing reached the server');
      assert.equal(r.headers['access-control-allow-origin'], ORIGIN, 'the page may read the gateway\'s answer');
      const exposed = items(r.headers['access-control-expose-headers']);
      assert.ok(exposed.has('grpc-status') && exposed.has('grpc-message'),
        `Access-Control-Expose-Headers names grpc-status and grpc-message (got ${r.headers['access-control-expose-headers']})`);
    });
    await t.test(`key_auth with the key: the call goes through, ${label(v)}`, async () => {
      const id = newId('keyed');
      const r = await webCall(g.port, EMPTY, { ...v, id, messages: [TS.EmptyCall.requestSerialize({})], headers: { 'x-api-key': API_KEY } });
      const d = assertWebMessages(r, v);
      assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
      assert.equal(d.messages.length, 1);
      assert.ok(be.calls.get(id), 'the call reached the server');
      assert.equal(be.streams.get(id)[0].headers['x-api-key'], undefined, 'the key is not sent upstream');
    });
  }
});

// --- 5. CORS -------------------------------------------------------------------------------------

test('CORS: a browser preflight gets 204 with the allow headers, nothing forwarded; a call from the origin gets Allow-Origin and Expose-Headers', async (t) => {
  for (const via of ['h1', 'h2']) {
    await t.test(`preflight, ${via === 'h1' ? 'HTTP/1.1' : 'HTTP/2'}`, async () => {
      const before = be.streamCount;
      const r = await send(via)(g.port, UNARY, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-grpc-web' },
      });
      assert.equal(r.error, null);
      assert.equal(Number(r.status), 204, `204 (got ${r.status}: ${r.body.toString('latin1').slice(0, 200)})`);
      assert.equal(r.body.length, 0);
      assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
      assert.ok(items(r.headers['access-control-allow-methods']).has('post'),
        `Access-Control-Allow-Methods has POST (got ${r.headers['access-control-allow-methods']})`);
      const allowed = items(r.headers['access-control-allow-headers']);
      assert.ok(allowed.has('content-type') && allowed.has('x-grpc-web'),
        `Access-Control-Allow-Headers has content-type and x-grpc-web (got ${r.headers['access-control-allow-headers']})`);
      assert.equal(be.streamCount, before, 'the preflight was not forwarded');
    });
    for (const text of [false, true]) {
      await t.test(`a call with Origin, ${label({ via, text })}`, async () => {
        const req = TS.UnaryCall.requestSerialize({ response_size: 3 });
        const r = await webCall(g.port, UNARY, { via, text, id: newId('cors'), messages: [req], headers: { origin: ORIGIN } });
        const d = assertWebMessages(r, { text });
        assert.equal(d.code, Status.OK, `grpc-status 0 (got ${d.code}: ${d.message})`);
        assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
        const exposed = items(r.headers['access-control-expose-headers']);
        assert.ok(exposed.has('grpc-status') && exposed.has('grpc-message'),
          `Access-Control-Expose-Headers names grpc-status and grpc-message (got ${r.headers['access-control-expose-headers']})`);
      });
    }
  }
});

// --- 6. a malformed -text body -------------------------------------------------------------------

test('a malformed application/grpc-web-text body (not base64): an error status, promptly, no 5xx and no JSON; the next call works', async (t) => {
  for (const via of ['h1', 'h2']) {
    await t.test(via === 'h1' ? 'HTTP/1.1' : 'HTTP/2', async () => {
      const r = await within(webCall(g.port, UNARY, { via, text: true, id: newId('bad_b64'), rawBody: Buffer.from('this is *not* base64 at all!!', 'latin1') }),
        10000, 'the answer to a malformed -text body');
      assert.equal(r.error, null, r.error && r.error.message);
      assert.equal(Number(r.status), 200, `HTTP 200 with a gRPC status, not an HTTP error (got ${r.status}: ${r.body.toString('latin1').slice(0, 200)})`);
      const ct = String(r.headers['content-type'] || '');
      assert.match(ct, /^application\/grpc-web/i, `a gRPC-Web content-type, not JSON (got ${ct})`);
      assert.equal(r.trailers, null, 'no HTTP trailers');
      let code;
      if (r.headers['grpc-status'] !== undefined) {
        code = Number(r.headers['grpc-status']);
      } else {
        const d = decodeWeb(r);
        assert.ok(d.trailer, `grpc-status in the head or a trailer frame (body ${JSON.stringify(r.body.toString('latin1').slice(0, 200))})`);
        code = Number(d.trailer['grpc-status']);
      }
      assert.ok(Number.isInteger(code) && code !== Status.OK, `a non-OK grpc-status (got ${code})`);

      const next = await webCall(g.port, UNARY, { via, text: true, id: newId('after_bad'), messages: [TS.UnaryCall.requestSerialize({ response_size: 1 })] });
      assert.equal(assertWebMessages(next, { text: true }).code, Status.OK, 'a good call afterwards');
    });
  }
});

// --- 7. access log and metrics -------------------------------------------------------------------

test('access log and metrics: gRPC-Web calls carry grpc_service, grpc_method, grpc_status and count in gatehouse_grpc_requests_total', async () => {
  const gw = await gateway(be);
  try {
    const ok = await webCall(gw.port, UNARY, { via: 'h1', messages: [TS.UnaryCall.requestSerialize({ response_size: 2 })] });
    assert.equal(assertWebMessages(ok).code, Status.OK);
    const nf = await webCall(gw.port, UNARY, { via: 'h2', text: true,
      messages: [TS.UnaryCall.requestSerialize({ response_status: { code: Status.NOT_FOUND, message: 'gone' } })] });
    assert.equal(webStatusEitherForm(nf, { text: true }).code, Status.NOT_FOUND);
    const fp = await webCall(gw.port, STREAM, { via: 'h1', messages: [TS.StreamingOutputCall.requestSerialize({
      response_parameters: [{ size: 1 }], response_status: { code: Status.FAILED_PRECONDITION, message: 'no' } })] });
    assert.equal(assertWebMessages(fp).code, Status.FAILED_PRECONDITION);
    const nr = await webCall(gw.port, '/grpc.testing.UnimplementedService/UnimplementedCall', { via: 'h2', messages: [Buffer.alloc(0)] });
    assertWebTrailersOnly(nr, Status.UNIMPLEMENTED);

    const lines = await waitFor(() => {
      const l = gw.gh.accessLog();
      return l.length >= 4 && l;
    }, 3000, 'four access log lines');
    // `status` is what the client got: HTTP 200 for every call, the gateway's own answer (no
    // route: `error` says so) included.
    const fields = (p) => lines.filter((l) => l.path === p)
      .map((l) => ({ status: l.status, ...(l.error ? { error: l.error } : {}), grpc_service: l.grpc_service, grpc_method: l.grpc_method, grpc_status: l.grpc_status }));
    assert.deepEqual(fields(UNARY), [
      { status: 200, grpc_service: SERVICE, grpc_method: 'UnaryCall', grpc_status: 0 },
      { status: 200, grpc_service: SERVICE, grpc_method: 'UnaryCall', grpc_status: 5 },
    ]);
    assert.deepEqual(fields(STREAM), [{ status: 200, grpc_service: SERVICE, grpc_method: 'StreamingOutputCall', grpc_status: 9 }]);
    assert.deepEqual(fields('/grpc.testing.UnimplementedService/UnimplementedCall'),
      [{ status: 200, error: 'no_route', grpc_service: 'grpc.testing.UnimplementedService', grpc_method: 'UnimplementedCall', grpc_status: 12 }]);

    const samples = await gw.metrics();
    const count = (service, method, code) => sampleOf(samples, 'gatehouse_grpc_requests_total', { service, method, code });
    assert.equal(count(SERVICE, 'UnaryCall', 'OK'), 1);
    assert.equal(count(SERVICE, 'UnaryCall', 'NOT_FOUND'), 1);
    assert.equal(count(SERVICE, 'StreamingOutputCall', 'FAILED_PRECONDITION'), 1);
    assert.equal(count('grpc.testing.UnimplementedService', 'UnimplementedCall', 'UNIMPLEMENTED'), 1);
  } finally {
    await gw.stop();
  }
});

// --- 8. plain gRPC through the same route --------------------------------------------------------

test('plain gRPC (application/grpc, grpc-js over h2c) through the grpc_web route: unchanged', async () => {
  const client = new testing.TestService(`127.0.0.1:${g.port}`, grpc.credentials.createInsecure());
  try {
    // Unary OK.
    const id = newId('plain');
    const sent = pattern(50, 3);
    const u = await within(new Promise((resolve) => {
      const out = {};
      const call = client.UnaryCall({ payload: { body: sent }, response_size: 4 }, md(id), (err, res) => { out.err = err; out.res = res; });
      call.on('status', (s) => { out.status = s; resolve(out); });
    }), 10000, 'UnaryCall');
    assert.equal(u.status.code, Status.OK, u.status.details);
    assert.deepEqual(Buffer.from(u.res.payload.body), Buffer.concat([sent, pattern(4)]));
    assert.match(String(be.streams.get(id)[0].headers['content-type']), /^application\/grpc(\+proto)?$/);

    // Server streaming, then an error with trailing metadata: as the server sent it.
    const r = reader(client.StreamingOutputCall({ response_parameters: [{ size: 1 }, { size: 2 }, { size: 3 }],
      response_status: { code: Status.FAILED_PRECONDITION, message: 'plain no' } }, md(newId('plain_stream'))));
    assert.deepEqual((await r.all()).map((m) => m.payload.body.length), [1, 2, 3]);
    const s = await r.status;
    assert.equal(s.code, Status.FAILED_PRECONDITION);
    assert.equal(s.details, 'plain no');
    assert.deepEqual(s.metadata.get('x-detail'), [DETAIL]);
    assert.deepEqual(s.metadata.get('x-detail-bin').map((b) => Buffer.from(b)), [DETAIL_BIN]);

    // The response is gRPC's, not gRPC-Web's, and its status is in HTTP/2 trailers.
    const raw = await within(new Promise((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${g.port}`);
      sessions.add(session);
      session.on('error', reject);
      const out = { head: null, trailers: null, data: Buffer.alloc(0) };
      const req = session.request({ ':method': 'POST', ':path': UNARY, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('response', (h) => { out.head = h; });
      req.on('data', (d) => { out.data = Buffer.concat([out.data, d]); });
      req.on('trailers', (tr) => { out.trailers = tr; });
      req.on('error', reject);
      req.on('close', () => { session.close(); sessions.delete(session); resolve(out); });
      req.end(frame(TS.UnaryCall.requestSerialize({ response_size: 5 })));
    }), 10000, 'a raw gRPC call');
    assert.match(String(raw.head['content-type']), /^application\/grpc(\+proto)?$/, `content-type application/grpc (got ${raw.head['content-type']})`);
    assert.ok(raw.trailers, 'HTTP/2 trailers');
    assert.equal(raw.trailers['grpc-status'], '0');
    assert.equal(raw.data[0], 0x00, 'a message frame');
    assert.equal(raw.data.length, 5 + raw.data.readUInt32BE(1), 'one message and nothing else (no gRPC-Web trailer frame)');
  } finally {
    client.close();
  }
});
