// HTTP/JSON to gRPC transcoding (a route's `grpc_transcode`), end to end through the real binary:
// JSON clients (node:http over HTTP/1.1, node:http2 over h2c) in front of a grpc-js server of
// fixtures/transcode_test.proto's lib.Library. The descriptor set is compiled at test time with
// `protoc --include_imports --descriptor_set_out`, as a user would; the server records every call
// it got (the decoded request) and every raw HTTP/2 stream, so the tests assert what the gateway
// sent, or that it sent nothing.
// - responses in proto3 JSON: lowerCamelCase names, int64 as strings, enums by name, Timestamp
//   (RFC 3339), Duration ("3600s"), wrappers as plain values, nested messages, repeated fields;
//   default-valued fields omitted (also when the server's encoder wrote them on the wire; a
//   wrapper holding 0 is still there); content-type application/json; the upstream gets
//   POST /lib.Library/<Method> as application/grpc; UTF-8 text intact both ways (path variables,
//   bodies, a gRPC error's message);
// - path variables (one segment, a nested field `book.id`, a multi-segment `{name=shelves/*/books/*}`,
//   a verb `:stream`), query parameters (repeated, enum, int32, bool, a nested field, a wrapper,
//   percent-encoded values); an unknown query parameter, or a path variable that is not a number
//   for an int64 field, is a 400 JSON answer and the upstream is never called;
// - bodies: `body: "book"` (POST, and PUT as an additional binding), `body: "*"` (PATCH), DELETE
//   answering google.protobuf.Empty as `{}`; an unknown JSON field or malformed JSON is a 400 and
//   the upstream is never called;
// - a route with an explicit `method` (no annotation): the route's captures and the query bind
//   fields;
// - gRPC errors as HTTP statuses (google.rpc.Code's table) with google.rpc.Status JSON bodies
//   ({"code", "message", "details"}), details from grpc-status-details-bin unpacked as Any JSON;
// - response metadata: initial and (unary) trailing metadata as response headers, never a
//   grpc-status header or trailer;
// - server streaming: NDJSON (the default) streamed line by line (the first line reaches the
//   client before the server sends the second), an error mid-stream as a last
//   {"error": {...}} line, an error before any message as the HTTP error, an empty stream;
//   `stream: array` as one JSON array;
// - HTTP/2 (h2c) clients (node:http2 and curl): unary calls, an error and a stream, no gRPC
//   trailers;
// - the gateway's own errors as its JSON error format: upstream down, the route's timeout, a path
//   under the route that no method takes;
// - gatehouse_grpc_requests_total and the access log's grpc_service, grpc_method, grpc_status for
//   transcoded calls (the upstream's method), none for a request refused before any call;
// - config errors through `gatehouse validate`: a missing descriptor set (FILE:LINE:COL and the
//   YAML path), a file that is not one, an unknown method, an upstream that is not gRPC, an
//   unknown `stream` mode; a good config, with a descriptor set relative to the config file;
// - reload: a changed descriptor set file is read again with the config (SIGHUP), and a broken
//   one is refused with the old config kept serving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { startGatehouse, runGatehouse, requireTool, waitFor, freePort, curl, parseMetrics } from './harness.mjs';
import { within, bindInsecure, onRawStreams } from './grpc_client.mjs';

const Status = grpc.status;
const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures');
const PROTO = 'transcode_test.proto';
const LOAD_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [FIXTURES] };
const libDef = protoLoader.loadSync(PROTO, LOAD_OPTIONS);
const lib = grpc.loadPackageDefinition(libDef).lib;

// --- the descriptor sets -------------------------------------------------------------------------

// The files of this run: descriptor sets and configs (a config's relative descriptor_set is
// relative to its directory).
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-transcode-'));
after(() => fs.rmSync(WORK, { recursive: true, force: true }));
const work = (name) => path.join(WORK, name);

// Compiles `proto` (a file name found through `includes`, then the fixtures, which hold
// google/api; protoc has google/protobuf built in) into the descriptor set `out`.
function compile(out, { includes = [], proto = PROTO } = {}) {
  execFileSync('protoc', [...includes.flatMap((d) => ['-I', d]), '-I', FIXTURES, '--include_imports',
    `--descriptor_set_out=${out}`, proto], { stdio: ['ignore', 'pipe', 'pipe'] });
  assert.ok(fs.statSync(out).size > 0, `protoc wrote ${out}`);
  return out;
}

// The fixture's proto without ListBooks's google.api.http annotation, in a directory of its own
// (found before the fixtures by -I), compiled into `out`.
function compileWithoutListBooks(out) {
  const dir = work('no-list');
  fs.mkdirSync(dir, { recursive: true });
  const src = fs.readFileSync(path.join(FIXTURES, PROTO), 'utf8');
  const stripped = src.replace(
    /(rpc ListBooks\(ListBooksRequest\) returns \(ListBooksResponse\)) \{[\s\S]*?\n {2}\}/, '$1;');
  assert.notEqual(stripped, src, 'the ListBooks annotation was found in the fixture and removed');
  fs.writeFileSync(path.join(dir, PROTO), stripped);
  return compile(out, { includes: [dir] });
}

// --- the gRPC server -----------------------------------------------------------------------------

const EPOCH_2024_05_01T10 = '1714557600';  // 2024-05-01T10:00:00Z
const EPOCH_2024_01_02T03_04_05 = '1704164645';  // 2024-01-02T03:04:05Z

// The book GetBook answers by default: every kind of field set.
const fullBook = (id, shelf) => ({
  id, shelf, title: 'Dune', author: { name: 'Frank Herbert', country: 'US' }, tags: ['classic', 'sf'],
  genre: 'FICTION', published: { seconds: EPOCH_2024_05_01T10, nanos: 0 }, read_time: { seconds: '3600', nanos: 0 },
  rating: { value: 5 }, subtitle: { value: 'Part One' },
});
// ...and in proto3 JSON.
const fullBookJson = (id, shelf) => ({
  id: String(id), shelf, title: 'Dune', author: { name: 'Frank Herbert', country: 'US' }, tags: ['classic', 'sf'],
  genre: 'FICTION', published: '2024-05-01T10:00:00Z', readTime: '3600s', rating: 5, subtitle: 'Part One',
});

// Statuses GetBook fails with, by the book id asked for: [gRPC status, message, HTTP status].
const GET_ERRORS = {
  404: [Status.NOT_FOUND, 'no book 404', 404],
  403: [Status.PERMISSION_DENIED, 'shelf 403 is private', 403],
  400: [Status.INVALID_ARGUMENT, 'id 400 is not a book id', 400],
  503: [Status.UNAVAILABLE, 'the catalogue is offline (503)', 503],
};
const DETAILED_ID = '4040';  // NOT_FOUND with a google.rpc.Status in grpc-status-details-bin
const SLOW_ID = '2000';  // answers after 2 s
const METADATA_ID = '77';  // initial metadata x-book-source, trailing metadata x-cache-hint
const UTF8_ERROR_ID = '4220';  // FAILED_PRECONDITION with a message that is not ASCII
const UTF8_MESSAGE = 'shelf «café» is closed';

// `m` (a message as proto-loader decoded it, defaults filled in) with its default-valued fields
// left out, so that protobufjs does not encode them (it writes every field an object has, even "",
// 0 or the zero enum): the server's answers hold only what was set. Messages stay (a wrapper
// holding 0 is still set).
function clean(m) {
  const out = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === null || v === '' || v === '0' || v === 0 || v === false || v === 'GENRE_UNSPECIFIED') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = v && typeof v === 'object' && !Array.isArray(v) ? clean(v) : v;
  }
  return out;
}

// --- a tiny protobuf writer, for grpc-status-details-bin ----------------------------------------

function varint(n) {
  const out = [];
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) { out.push(v); break; }
    out.push((v % 128) | 0x80);
  }
  return Buffer.from(out);
}
const fieldVarint = (num, v) => Buffer.concat([varint(num << 3), varint(v)]);
const fieldBytes = (num, bytes) => {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8');
  return Buffer.concat([varint((num << 3) | 2), varint(b.length), b]);
};
// google.rpc.Status { code = 1; message = 2; repeated google.protobuf.Any details = 3 }, the
// details being lib.Author { name = 1; country = 2 } packed in Any { type_url = 1; value = 2 }.
const DETAIL_AUTHOR = { name: 'Ann Lee', country: 'NZ' };
const DETAILED_MESSAGE = 'book 4040 was withdrawn';
const statusDetailsBin = () => Buffer.concat([
  fieldVarint(1, Status.NOT_FOUND),
  fieldBytes(2, DETAILED_MESSAGE),
  fieldBytes(3, Buffer.concat([
    fieldBytes(1, 'type.googleapis.com/lib.Author'),
    fieldBytes(2, Buffer.concat([fieldBytes(1, DETAIL_AUTHOR.name), fieldBytes(2, DETAIL_AUTHOR.country)])),
  ])),
]);

// A grpc-js server with lib.Library.
//   calls:   every call the handlers got, in order: { method, request (decoded) }
//   streams: every raw HTTP/2 stream, in order, before grpc-js sees it: { headers, bytes (DATA
//            received), closed, rstCode }. Its
//            grpc-timeout is removed before grpc-js reads it (kept in the record), so that the
//            gateway, not this server, keeps a route's timeout.
//   mark() / since(mark): what came after a point, to assert what one request caused.
// GetBook: GET_ERRORS and the ids above; shelf "sparse": only the id; shelf "zero": the id and
// rating 0; shelf "explicit-defaults": fields set to their defaults, which protobufjs encodes
// on the wire; otherwise fullBook. CreateBook and UpdateBook answer the book they got (clean). StreamBooks: `count` books { id: i + 1, title: "Book i+1", shelf },
// failing with ABORTED after `fail_after` of them; shelf "none": NOT_FOUND before any; a shelf
// starting with "gate": after the first book, waits for release(shelf) (at most 5 s).
async function startLibrary() {
  const b = { calls: [], streams: [], gates: new Map() };
  const record = (method, call) => {
    const r = { method, request: call.request, released: null };
    b.calls.push(r);
    call.on('error', () => {});
    return r;
  };
  const impl = {
    GetBook(call, cb) {
      record('GetBook', call);
      const { id, shelf } = call.request;
      if (GET_ERRORS[id]) {
        const [code, details] = GET_ERRORS[id];
        return cb({ code, details });
      }
      if (id === DETAILED_ID) {
        const m = new grpc.Metadata();
        m.set('grpc-status-details-bin', statusDetailsBin());
        return cb({ code: Status.NOT_FOUND, details: DETAILED_MESSAGE, metadata: m });
      }
      if (id === SLOW_ID) {
        setTimeout(() => cb(null, fullBook(id, shelf)), 2000).unref();
        return undefined;
      }
      if (id === UTF8_ERROR_ID) return cb({ code: Status.FAILED_PRECONDITION, details: UTF8_MESSAGE });
      if (id === METADATA_ID) {
        const initial = new grpc.Metadata();
        initial.set('x-book-source', 'db');
        call.sendMetadata(initial);
        const trailing = new grpc.Metadata();
        trailing.set('x-cache-hint', 'warm');
        return cb(null, fullBook(id, shelf), trailing);
      }
      if (shelf === 'sparse') return cb(null, { id });
      if (shelf === 'zero') return cb(null, { id, rating: { value: 0 } });
      if (shelf === 'explicit-defaults') {
        return cb(null, { id, title: '', shelf: '', genre: 'GENRE_UNSPECIFIED', tags: [], author: { name: 'X', country: '' } });
      }
      return cb(null, fullBook(id, shelf));
    },
    ListBooks(call, cb) {
      record('ListBooks', call);
      cb(null, { books: [{ id: '1', title: 'Listed', shelf: call.request.shelf }] });
    },
    CreateBook(call, cb) {
      record('CreateBook', call);
      cb(null, clean({ ...call.request.book, id: '100', shelf: call.request.shelf }));
    },
    UpdateBook(call, cb) {
      record('UpdateBook', call);
      cb(null, clean({ ...call.request.book, subtitle: { value: 'updated' } }));
    },
    DeleteBook(call, cb) {
      record('DeleteBook', call);
      cb(null, {});
    },
    Lookup(call, cb) {
      record('Lookup', call);
      cb(null, { id: '8', title: `found ${call.request.name}` });
    },
    Unannotated(call, cb) {
      record('Unannotated', call);
      cb(null, { id: call.request.id, shelf: call.request.shelf, title: 'explicit' });
    },
    async StreamBooks(call) {
      const r = record('StreamBooks', call);
      const { shelf, count, fail_after: failAfter } = call.request;
      if (shelf === 'none') return call.emit('error', { code: Status.NOT_FOUND, details: 'no shelf none' });
      let cancelled = false;
      call.on('cancelled', () => { cancelled = true; });
      for (let i = 0; i < count; i++) {
        if (failAfter > 0 && i === failAfter) {
          return call.emit('error', { code: Status.ABORTED, details: `stopped after ${i} books` });
        }
        if (i === 1 && shelf.startsWith('gate')) {
          r.released = await new Promise((resolve) => {
            const t = setTimeout(() => resolve(false), 5000);
            t.unref();
            b.gates.set(shelf, () => { clearTimeout(t); resolve(true); });
          });
        }
        if (cancelled) return undefined;
        call.write({ id: String(i + 1), title: `Book ${i + 1}`, shelf });
      }
      call.end();
      return undefined;
    },
  };
  const server = new grpc.Server();
  server.addService(lib.Library.service, impl);
  b.port = await bindInsecure(server);
  onRawStreams(server, (stream, headers) => {
    const raw = { headers: { ...headers }, bytes: 0, closed: false, rstCode: null };
    b.streams.push(raw);
    delete headers['grpc-timeout'];
    stream.on('data', (d) => { raw.bytes += d.length; });
    stream.on('close', () => { raw.closed = true; raw.rstCode = stream.rstCode; });
  });
  b.mark = () => ({ calls: b.calls.length, streams: b.streams.length });
  b.since = (mark, method = null) => b.calls.slice(mark.calls).filter((c) => !method || c.method === method);
  b.streamsSince = (mark) => b.streams.slice(mark.streams);
  b.release = (shelf) => { const g = b.gates.get(shelf); if (g) g(); };
  b.close = () => server.forceShutdown();
  return b;
}

// The one call `method` got since `mark` (and no other call of any method): its request.
function onlyCall(be, mark, method) {
  const all = be.since(mark);
  assert.deepEqual(all.map((c) => c.method), [method], `the upstream got one ${method} call (got ${JSON.stringify(all.map((c) => c.method))})`);
  return all[0].request;
}
// Nothing reached the upstream since `mark` through the gateway on `port`: no call, not even a
// stream grpc-js could not decode. A stream the gateway opened could still be on its way when the
// client has its answer, so a call made after it (GetBook, shelf "barrier", on the same upstream
// connection: its HEADERS come after any earlier stream's) marks when everything before it has
// arrived; then only that call may be there.
async function assertUntouched(be, mark, port) {
  const barrier = await h1(port, '/v1/shelves/barrier/books/1');
  assert.equal(barrier.status, 200, `the barrier call (got ${show(barrier)})`);
  const calls = be.since(mark);
  assert.deepEqual(calls.map((c) => `${c.method} ${c.request.shelf}`), ['GetBook barrier'],
    `the upstream was never called (got ${JSON.stringify(calls.map((c) => ({ method: c.method, request: c.request })))})`);
  const streams = be.streamsSince(mark).slice(0, -1);
  assert.equal(streams.length, 0, `no HTTP/2 stream reached the upstream (got ${JSON.stringify(streams.map((st) => ({
    path: st.headers[':path'], bytes: st.bytes, closed: st.closed, rstCode: st.rstCode })))})`);
}

// --- the gateways --------------------------------------------------------------------------------

const gateways = [];
after(async () => { for (const gh of gateways) await gh.stop('SIGKILL'); });

// A gateway (one worker, HTTP/1.1 and h2c, no access log) from `routes` (YAML under `routes:`),
// with upstream `library` (the test server) and `deadlib` (a closed port), started from a config
// file in WORK so that relative descriptor sets resolve there.
async function gateway(name, be, routes, { deadPort = 1 } = {}) {
  const port = await freePort();
  const file = work(`${name}.yaml`);
  fs.writeFileSync(file, `server: { workers: 1, listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ] }
observability: { access_log: { path: "off" } }
upstreams:
  library: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
  deadlib: { protocol: grpc, targets: [ { address: 127.0.0.1:${deadPort} } ], timeouts: { connect: 500ms } }
routes:
${routes}`);
  const gh = await startGatehouse(null, { configFile: file });
  gateways.push(gh);
  return gh;
}

// --- JSON clients --------------------------------------------------------------------------------

// One request over HTTP/1.1 (node:http, a fresh connection). Resolves { status, headers, body
// (text), trailers ({} when none came) }. `json`: a body, sent as application/json; `raw`: a body
// as it is. onData(bodySoFar) runs at each piece of the response body. `split`: the request body
// leaves in two writes, the second once the head and the first have been flushed (as a client
// streaming its body sends it: the gateway has the head before the whole body).
function h1(port, p, { method = 'GET', headers = {}, json = undefined, raw = undefined, onData = null, split = null } = {}) {
  const body = json !== undefined ? JSON.stringify(json) : raw;
  return within(new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: h, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; if (onData) onData(text); });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text, trailers: res.trailers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (split === null || body === undefined) {
      req.end(body);
    } else {
      const bytes = Buffer.from(body);
      req.flushHeaders();
      req.write(bytes.subarray(0, split), () => setImmediate(() => { if (!req.destroyed) req.end(bytes.subarray(split)); }));
    }
  }), 15000, `${method} ${p} over HTTP/1.1`);
}

// One request over HTTP/2 (node:http2, h2c prior knowledge, a fresh session): the same shape.
const sessions = new Set();
after(() => { for (const s of sessions) s.destroy(); });
function h2(port, p, { method = 'GET', headers = {}, json = undefined } = {}) {
  const body = json !== undefined ? JSON.stringify(json) : undefined;
  return within(new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    sessions.add(session);
    session.on('error', reject);
    const h = { ':method': method, ':path': p, ...headers };
    if (body !== undefined) { h['content-type'] = 'application/json'; h['content-length'] = String(Buffer.byteLength(body)); }
    const req = session.request(h, { endStream: body === undefined });
    const out = { status: null, headers: null, body: '', trailers: {} };
    req.setEncoding('utf8');
    req.on('response', (head) => { out.status = Number(head[':status']); out.headers = head; });
    req.on('data', (d) => { out.body += d; });
    req.on('trailers', (t) => { out.trailers = t; });
    req.on('error', reject);
    req.on('close', () => { session.close(); sessions.delete(session); resolve(out); });
    if (body !== undefined) req.end(body);
  }), 15000, `${method} ${p} over HTTP/2`);
}

const show = (r) => `${r.status} ${JSON.stringify(r.headers && r.headers['content-type'])} ${JSON.stringify(r.body.slice(0, 300))}`;

// A JSON answer: status, content-type application/json, its body parsed.
function jsonAnswer(r, status, type = /^application\/json\s*(;.*)?$/i) {
  assert.equal(r.status, status, `HTTP ${status} (got ${show(r)})`);
  assert.match(String(r.headers['content-type'] || ''), type, `content-type (got ${show(r)})`);
  try {
    return JSON.parse(r.body);
  } catch (e) {
    assert.fail(`a JSON body (got ${JSON.stringify(r.body.slice(0, 300))}: ${e.message})`);
  }
  return undefined;
}

// No gRPC field (grpc-status, grpc-message, ...) in the response's head or trailers.
function assertNoGrpcFields(r) {
  const grpcNames = (o) => Object.keys(o || {}).filter((k) => k.toLowerCase().startsWith('grpc-'));
  assert.deepEqual(grpcNames(r.headers), [], `no grpc-* header reaches the JSON client (got ${JSON.stringify(r.headers)})`);
  assert.deepEqual(grpcNames(r.trailers), [], `no grpc-* trailer reaches the JSON client (got ${JSON.stringify(r.trailers)})`);
}

// A gRPC status as google.rpc.Status's JSON, with the HTTP status google.rpc.Code maps it to.
function assertStatusJson(r, httpStatus, code, message, details = []) {
  const body = jsonAnswer(r, httpStatus);
  assert.deepEqual(body, { code, message, details }, `the google.rpc.Status JSON (got ${r.body})`);
  assertNoGrpcFields(r);
}

// The gateway's own error: its JSON error format (docs/cli-contract.md).
function assertGatewayError(r, statuses, error = null) {
  assert.ok(statuses.includes(r.status), `HTTP ${statuses.join(' or ')} (got ${show(r)})`);
  const body = jsonAnswer(r, r.status);
  assert.equal(typeof body.error, 'string', `the gateway's error format: {"error": ..., "message": ..., "request_id": ...} (got ${r.body})`);
  if (error) assert.equal(body.error, error, `error ${error} (got ${r.body})`);
  assert.equal(typeof body.message, 'string', `a message (got ${r.body})`);
  assert.equal(typeof body.request_id, 'string', `the request id (got ${r.body})`);
  assertNoGrpcFields(r);
  return body;
}

// A 400 the gateway answered for a request it could not transcode: JSON, whose text names
// `what` (when given), and the upstream never called.
async function assertRefused(be, mark, r, what = null, port = gh.port) {
  jsonAnswer(r, 400);
  if (what) assert.ok(r.body.includes(what), `the error names ${what} (got ${r.body})`);
  assertNoGrpcFields(r);
  await assertUntouched(be, mark, port);
}

// An NDJSON body: its lines, each parsed; every line ends with \n.
function ndjsonLines(body) {
  assert.ok(body === '' || body.endsWith('\n'), `every NDJSON line ends with \\n (got ${JSON.stringify(body)})`);
  return body.split('\n').slice(0, -1).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      assert.fail(`line ${i} is JSON (got ${JSON.stringify(l)}: ${e.message})`);
    }
    return undefined;
  });
}
const NDJSON = /^application\/x-ndjson\s*(;.*)?$/i;
const streamedBook = (i, shelf) => ({ id: String(i), title: `Book ${i}`, shelf });

// --- the shared server and gateway ---------------------------------------------------------------

let be;
let gh;
let PB;
before(async () => {
  requireTool('protoc');
  PB = compile(work('lib.pb'));
  be = await startLibrary();
  const deadPort = await freePort();
  // Descriptor sets by absolute path (library-json) and relative to the config file (the others).
  gh = await gateway('main', be, `
  - name: library-json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: ${PB} }
  - name: library-v2
    match: { path: "/v2/*" }
    to: library
    grpc_transcode: { descriptor_set: lib.pb }
  - name: library-array
    match: { host: array.test, path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: lib.pb, stream: array }
  - name: library-down
    match: { host: down.test, path: "/v1/*" }
    to: deadlib
    grpc_transcode: { descriptor_set: lib.pb }
  - name: library-slow
    match: { host: slow.test, path: "/v1/*" }
    to: library
    timeout: 300ms
    grpc_transcode: { descriptor_set: lib.pb }
  - name: explicit
    match: { path: "/books/{id}", methods: [GET] }
    to: library
    grpc_transcode: { descriptor_set: lib.pb, method: lib.Library/Unannotated }
`, { deadPort });
});
after(() => { if (be) be.close(); });

// --- 1. unary responses in proto3 JSON -----------------------------------------------------------

test('GET /v1/shelves/s1/books/5: GetBook {shelf, id} as a gRPC call; the Book in proto3 JSON', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books/5');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body, fullBookJson(5, 's1'),
    'lowerCamelCase names, int64 as a string, enum by name, RFC 3339 Timestamp, Duration in seconds, wrappers as plain values');
  assert.deepEqual(onlyCall(be, mark, 'GetBook'), { shelf: 's1', id: '5', with_reviews: false });
  const [raw] = be.streamsSince(mark);
  assert.equal(raw.headers[':method'], 'POST');
  assert.equal(raw.headers[':path'], '/lib.Library/GetBook');
  assert.match(String(raw.headers['content-type']), /^application\/grpc(\+proto)?$/, `a gRPC call upstream (got ${raw.headers['content-type']})`);
  assert.equal(raw.headers.te, 'trailers', 'te: trailers upstream');
  assertNoGrpcFields(r);
});

test('default-valued fields are omitted; a wrapper holding 0 is not a default and stays', async (t) => {
  await t.test('only the id set: {"id": "5"}', async () => {
    const body = jsonAnswer(await h1(gh.port, '/v1/shelves/sparse/books/5'), 200);
    assert.deepEqual(body, { id: '5' }, 'no "title": "", "tags": [], "genre": "GENRE_UNSPECIFIED", "shelf": "" or null messages');
  });
  await t.test('rating {value: 0}: "rating": 0', async () => {
    const body = jsonAnswer(await h1(gh.port, '/v1/shelves/zero/books/6'), 200);
    assert.deepEqual(body, { id: '6', rating: 0 });
  });
});

test('fields the server encodes with their default values (as protobufjs does) are omitted all the same', async () => {
  const body = jsonAnswer(await h1(gh.port, '/v1/shelves/explicit-defaults/books/5'), 200);
  assert.deepEqual(body, { id: '5', author: { name: 'X' } },
    'proto3 JSON is defined on the message: a field holding its default is left out, however the wire carried it');
});

test('text that is not ASCII (UTF-8) both ways: a percent-encoded path variable, a body string, a gRPC error message', async (t) => {
  await t.test('GET /v1/shelves/caf%C3%A9/books/5: shelf "café"', async () => {
    const mark = be.mark();
    const r = await h1(gh.port, '/v1/shelves/caf%C3%A9/books/5');
    assert.deepEqual(jsonAnswer(r, 200), fullBookJson(5, 'café'));
    assert.deepEqual(onlyCall(be, mark, 'GetBook'), { shelf: 'café', id: '5', with_reviews: false });
  });
  await t.test('POST a title "Ærø — 北"', async () => {
    const mark = be.mark();
    const r = await h1(gh.port, '/v1/shelves/s1/books', { method: 'POST', json: { title: 'Ærø — 北' } });
    assert.deepEqual(jsonAnswer(r, 200), { id: '100', shelf: 's1', title: 'Ærø — 北' });
    assert.equal(onlyCall(be, mark, 'CreateBook').book.title, 'Ærø — 北');
  });
  await t.test(`a gRPC error whose message is ${JSON.stringify(UTF8_MESSAGE)}`, async () => {
    const r = await h1(gh.port, `/v1/shelves/s1/books/${UTF8_ERROR_ID}`);
    assertStatusJson(r, 400, Status.FAILED_PRECONDITION, UTF8_MESSAGE);
  });
});

test('a path variable that is not a number for an int64 field: 400 JSON, the upstream never called', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books/five');
  await assertRefused(be, mark, r);
});

// --- 2. query parameters -------------------------------------------------------------------------

test('query binding: repeated, enum, int32, a nested field and a wrapper, on ListBooks', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books?tags=a&tags=b&genre=SCIENCE&page_size=3&author.name=Ann&min_rating=4');
  assert.deepEqual(jsonAnswer(r, 200), { books: [{ id: '1', title: 'Listed', shelf: 's1' }] });
  const req = onlyCall(be, mark, 'ListBooks');
  assert.equal(req.shelf, 's1', 'the path variable');
  assert.deepEqual(req.tags, ['a', 'b'], 'a repeated field takes every value, in order');
  assert.equal(req.genre, 'SCIENCE', 'an enum by name');
  assert.equal(req.page_size, 3, 'an int32');
  assert.deepEqual(req.author, { name: 'Ann', country: '' }, 'a nested field by its dotted path');
  assert.deepEqual(req.min_rating, { value: 4 }, 'a wrapper by its plain value');
});

test('query binding: a bool (with_reviews=true) beside the path variables, on GetBook', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s2/books/12?with_reviews=true');
  assert.deepEqual(jsonAnswer(r, 200), fullBookJson(12, 's2'));
  assert.deepEqual(onlyCall(be, mark, 'GetBook'), { shelf: 's2', id: '12', with_reviews: true });
});

test('query binding: percent-encoded values are decoded', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books?author.name=Ann%20Lee&tags=caf%C3%A9&tags=a%26b');
  jsonAnswer(r, 200);
  const req = onlyCall(be, mark, 'ListBooks');
  assert.equal(req.author.name, 'Ann Lee');
  assert.deepEqual(req.tags, ['café', 'a&b']);
});

test('an unknown query parameter (?colour=red): 400 JSON naming it, the upstream never called', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books/5?colour=red');
  await assertRefused(be, mark, r, 'colour');
});

// --- 3. request bodies ---------------------------------------------------------------------------

test('POST /v1/shelves/s1/books (body: "book"): CreateBook gets the shelf and the book; the answer is the server\'s Book', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books', {
    method: 'POST',
    json: { title: 'T', author: { name: 'A' }, tags: ['x'], genre: 'SCIENCE', published: '2024-01-02T03:04:05Z', readTime: '90s', rating: 7 },
  });
  assert.deepEqual(jsonAnswer(r, 200), {
    id: '100', shelf: 's1', title: 'T', author: { name: 'A' }, tags: ['x'], genre: 'SCIENCE',
    published: '2024-01-02T03:04:05Z', readTime: '90s', rating: 7,
  });
  const req = onlyCall(be, mark, 'CreateBook');
  assert.equal(req.shelf, 's1');
  const book = req.book;
  assert.ok(book, 'the body became the book field');
  assert.equal(book.title, 'T');
  assert.deepEqual(book.author, { name: 'A', country: '' });
  assert.deepEqual(book.tags, ['x']);
  assert.equal(book.genre, 'SCIENCE');
  assert.deepEqual(book.published, { seconds: EPOCH_2024_01_02T03_04_05, nanos: 0 }, 'the Timestamp parsed from RFC 3339');
  assert.deepEqual(book.read_time, { seconds: '90', nanos: 0 }, 'the Duration parsed from "90s" (JSON name readTime)');
  assert.deepEqual(book.rating, { value: 7 }, 'the wrapper from a plain number');
  assert.equal(book.id, '0', 'nothing else set');
});

test('PATCH /v1/books/42 (body: "*"): UpdateBook gets book {id: 42 from the path, title from the body}', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/books/42', { method: 'PATCH', json: { book: { title: 'New' } } });
  assert.deepEqual(jsonAnswer(r, 200), { id: '42', title: 'New', subtitle: 'updated' });
  const req = onlyCall(be, mark, 'UpdateBook');
  assert.equal(req.book.id, '42', 'the path variable book.id is the nested field');
  assert.equal(req.book.title, 'New');
});

test('PUT /v1/books/42 (an additional binding, body: "book"): the same UpdateBook', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/books/42', { method: 'PUT', json: { title: 'New' } });
  assert.deepEqual(jsonAnswer(r, 200), { id: '42', title: 'New', subtitle: 'updated' });
  const req = onlyCall(be, mark, 'UpdateBook');
  assert.equal(req.book.id, '42');
  assert.equal(req.book.title, 'New');
});

test('DELETE /v1/books/9: DeleteBook {id: 9}; google.protobuf.Empty answers 200 {}', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/books/9', { method: 'DELETE' });
  assert.deepEqual(jsonAnswer(r, 200), {});
  assert.deepEqual(onlyCall(be, mark, 'DeleteBook'), { id: '9' });
});

// Each with the body in the head's packet, and after it (in two writes: the gateway has the head
// before it can know the body is bad).
const DELIVERIES = [[null, 'the body with the head'], [6, 'the body after the head, in two writes']];

test('an unknown field in the JSON body ({"titel": "x"}): 400 JSON naming it, the upstream never called', async (t) => {
  for (const [split, how] of DELIVERIES) {
    await t.test(how, async () => {
      const mark = be.mark();
      const r = await h1(gh.port, '/v1/shelves/s1/books', { method: 'POST', json: { titel: 'x' }, split });
      await assertRefused(be, mark, r, 'titel');
    });
  }
});

test('a malformed JSON body: 400 JSON, the upstream never called', async (t) => {
  for (const [split, how] of DELIVERIES) {
    await t.test(how, async () => {
      const mark = be.mark();
      const r = await h1(gh.port, '/v1/shelves/s1/books', { method: 'POST', raw: '{"title": "T", ', split });
      await assertRefused(be, mark, r);
    });
  }
});

// --- 4. path templates and explicit methods ------------------------------------------------------

test('a multi-segment variable: GET /v2/shelves/a/books/b is Lookup {name: "shelves/a/books/b"}', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v2/shelves/a/books/b');
  assert.deepEqual(jsonAnswer(r, 200), { id: '8', title: 'found shelves/a/books/b' });
  assert.deepEqual(onlyCall(be, mark, 'Lookup'), { name: 'shelves/a/books/b' });
});

test('a route with an explicit method: GET /books/7?shelf=x is Unannotated {id: 7 (the route\'s capture), shelf: "x" (the query)}', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/books/7?shelf=x');
  assert.deepEqual(jsonAnswer(r, 200), { id: '7', shelf: 'x', title: 'explicit' });
  assert.deepEqual(onlyCall(be, mark, 'Unannotated'), { id: '7', shelf: 'x', with_reviews: false });
  assert.equal(be.streamsSince(mark)[0].headers[':path'], '/lib.Library/Unannotated');
});

// --- 5. gRPC errors as HTTP ----------------------------------------------------------------------

for (const [id, [code, message, httpStatus]] of Object.entries(GET_ERRORS)) {
  test(`gRPC status ${code} from the server: HTTP ${httpStatus} with google.rpc.Status JSON {code, message, details: []}`, async () => {
    const mark = be.mark();
    const r = await h1(gh.port, `/v1/shelves/s1/books/${id}`);
    assertStatusJson(r, httpStatus, code, message);
    onlyCall(be, mark, 'GetBook');
  });
}

test('an error with details (grpc-status-details-bin): each Any in its JSON form, "@type" and the fields', async () => {
  const r = await h1(gh.port, `/v1/shelves/s1/books/${DETAILED_ID}`);
  assertStatusJson(r, 404, Status.NOT_FOUND, DETAILED_MESSAGE,
    [{ '@type': 'type.googleapis.com/lib.Author', name: DETAIL_AUTHOR.name, country: DETAIL_AUTHOR.country }]);
});

// --- 6. response metadata ------------------------------------------------------------------------

test('initial and trailing metadata of a unary call arrive as response headers; no grpc-status header or trailer', async () => {
  const r = await h1(gh.port, `/v1/shelves/s1/books/${METADATA_ID}`);
  assert.deepEqual(jsonAnswer(r, 200), fullBookJson(METADATA_ID, 's1'));
  assert.equal(r.headers['x-book-source'], 'db', `initial metadata as a header (got ${JSON.stringify(r.headers)})`);
  assert.equal(r.headers['x-cache-hint'], 'warm', `trailing metadata as a header (got ${JSON.stringify(r.headers)})`);
  assert.equal(r.trailers['x-cache-hint'], undefined, 'in the head, not as an HTTP trailer');
  assertNoGrpcFields(r);
});

// --- 7. server streaming -------------------------------------------------------------------------

test('server streaming (NDJSON, the default): GET /v1/shelves/s1/books:stream?count=3 is 3 lines, one Book each, in order', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books:stream?count=3');
  assert.equal(r.status, 200, show(r));
  assert.match(String(r.headers['content-type']), NDJSON, `content-type application/x-ndjson (got ${r.headers['content-type']})`);
  assert.deepEqual(ndjsonLines(r.body), [1, 2, 3].map((i) => streamedBook(i, 's1')));
  assert.deepEqual(onlyCall(be, mark, 'StreamBooks'), { shelf: 's1', count: 3, fail_after: 0 });
  assertNoGrpcFields(r);
});

test('server streaming: the first line reaches the client before the server sends the second', async () => {
  const shelf = 'gate-ndjson';
  const mark = be.mark();
  let sawFirst = null;
  const r = await h1(gh.port, `/v1/shelves/${shelf}/books:stream?count=2`, {
    onData: (sofar) => {
      if (sawFirst === null && sofar.includes('\n')) {
        sawFirst = sofar;
        be.release(shelf);
      }
    },
  });
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(ndjsonLines(r.body), [streamedBook(1, shelf), streamedBook(2, shelf)]);
  assert.deepEqual(ndjsonLines(sawFirst), [streamedBook(1, shelf)], 'the first line whole, alone');
  const call = be.since(mark, 'StreamBooks')[0];
  assert.equal(call.released, true, 'the client had the first line while the server held the second back (the gateway buffered nothing)');
});

test('server streaming: an error after 2 books is a last line {"error": {"code": 10, "message": ...}}', async () => {
  const r = await h1(gh.port, '/v1/shelves/s1/books:stream?count=5&fail_after=2');
  assert.equal(r.status, 200, show(r));
  const lines = ndjsonLines(r.body);
  assert.equal(lines.length, 3, `two books and the error (got ${r.body})`);
  assert.deepEqual(lines.slice(0, 2), [streamedBook(1, 's1'), streamedBook(2, 's1')]);
  assert.deepEqual(Object.keys(lines[2]), ['error'], `the last line is {"error": ...} (got ${JSON.stringify(lines[2])})`);
  assert.equal(lines[2].error.code, Status.ABORTED);
  assert.equal(lines[2].error.message, 'stopped after 2 books');
  assertNoGrpcFields(r);
});

test('server streaming: an error before any message is the HTTP error (404 with the google.rpc.Status JSON)', async () => {
  const r = await h1(gh.port, '/v1/shelves/none/books:stream?count=3');
  assertStatusJson(r, 404, Status.NOT_FOUND, 'no shelf none');
});

test('server streaming: an empty stream (count=0) is 200 with an empty body', async () => {
  const mark = be.mark();
  const r = await h1(gh.port, '/v1/shelves/s1/books:stream?count=0');
  assert.equal(r.status, 200, show(r));
  assert.equal(r.body, '');
  assertNoGrpcFields(r);
  onlyCall(be, mark, 'StreamBooks');
});

test('stream: array: the stream as one JSON array, content-type application/json', async () => {
  const r = await h1(gh.port, '/v1/shelves/s1/books:stream?count=3', { headers: { host: 'array.test' } });
  assert.deepEqual(jsonAnswer(r, 200), [1, 2, 3].map((i) => streamedBook(i, 's1')));
  assertNoGrpcFields(r);
});

test('stream: array: an empty stream is []', async () => {
  const r = await h1(gh.port, '/v1/shelves/s1/books:stream?count=0', { headers: { host: 'array.test' } });
  assert.deepEqual(jsonAnswer(r, 200), []);
});

// --- 8. HTTP/2 clients ---------------------------------------------------------------------------

test('HTTP/2 (h2c): GET and POST are transcoded the same; no grpc-status header or trailer', async (t) => {
  await t.test('GET /v1/shelves/s1/books/5', async () => {
    const mark = be.mark();
    const r = await h2(gh.port, '/v1/shelves/s1/books/5');
    assert.deepEqual(jsonAnswer(r, 200), fullBookJson(5, 's1'));
    assert.deepEqual(onlyCall(be, mark, 'GetBook'), { shelf: 's1', id: '5', with_reviews: false });
    assertNoGrpcFields(r);
  });
  await t.test('POST /v1/shelves/h2/books', async () => {
    const mark = be.mark();
    const r = await h2(gh.port, '/v1/shelves/h2/books', { method: 'POST', json: { title: 'Over h2', genre: 'FICTION' } });
    assert.deepEqual(jsonAnswer(r, 200), { id: '100', shelf: 'h2', title: 'Over h2', genre: 'FICTION' });
    const req = onlyCall(be, mark, 'CreateBook');
    assert.equal(req.book.title, 'Over h2');
    assertNoGrpcFields(r);
  });
  await t.test('a gRPC error: 404 with the google.rpc.Status JSON', async () => {
    const r = await h2(gh.port, '/v1/shelves/s1/books/404');
    assertStatusJson(r, 404, Status.NOT_FOUND, 'no book 404');
  });
});

test('HTTP/2 (h2c): a server stream as NDJSON', async () => {
  const r = await h2(gh.port, '/v1/shelves/s1/books:stream?count=3');
  assert.equal(r.status, 200, show(r));
  assert.match(String(r.headers['content-type']), NDJSON);
  assert.deepEqual(ndjsonLines(r.body), [1, 2, 3].map((i) => streamedBook(i, 's1')));
  assertNoGrpcFields(r);
});

test('curl --http2-prior-knowledge: GET /v1/shelves/s1/books/5', async () => {
  const r = await curl(['--http2-prior-knowledge', gh.url('/v1/shelves/s1/books/5')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.status, 200, r.body);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(r.body), fullBookJson(5, 's1'));
  assert.equal(r.headers['grpc-status'], undefined, 'no grpc-status');
});

// --- 9. the gateway's own errors -----------------------------------------------------------------

test('upstream down: 502 or 503 in the gateway\'s JSON error format, not a gRPC status', async () => {
  const r = await h1(gh.port, '/v1/shelves/s1/books/5', { headers: { host: 'down.test', 'x-request-id': 'transcode-down-1' } });
  const body = assertGatewayError(r, [502, 503]);
  assert.equal(body.request_id, 'transcode-down-1');
});

test('the route\'s timeout (300ms) against a server that takes 2 s: 504 upstream_timeout JSON, in time', async () => {
  const t0 = Date.now();
  const r = await h1(gh.port, `/v1/shelves/s1/books/${SLOW_ID}`, { headers: { host: 'slow.test' } });
  const ms = Date.now() - t0;
  assertGatewayError(r, [504], 'upstream_timeout');
  assert.ok(ms < 1800, `answered at the route's timeout, not at the server's answer (${ms} ms)`);
});

test('a path under /v1/* that no annotated method takes (GET /v1/nothing): 404 JSON, the upstream never called', async (t) => {
  for (const [method, p] of [['GET', '/v1/nothing'], ['GET', '/v1/shelves/s1'], ['POST', '/v1/books/42']]) {
    await t.test(`${method} ${p}`, async () => {
      const mark = be.mark();
      const r = await h1(gh.port, p, { method, ...(method === 'POST' ? { json: {} } : {}) });
      assert.ok(r.status === 404 || (method !== 'GET' && r.status === 405), `404 (or 405 for a method no binding of the path takes) (got ${show(r)})`);
      jsonAnswer(r, r.status);
      assertNoGrpcFields(r);
      await assertUntouched(be, mark, gh.port);
    });
  }
});

// A transcoded call is a gRPC call once it goes upstream: gatehouse_grpc_requests_total and the
// access log name its method (the upstream's /service/method) and status; a request refused
// before any call (bad JSON) is not one.
// A composite route's leg to a gRPC service, through transcoding (docs/aggregation.md): a unary
// method's answer, and a server stream as one JSON array, composed with the other legs.
test('aggregation: legs to a gRPC service through grpc_transcode, a unary call and a stream as an array', async () => {
  const g = await gateway('composite', be, `
  - name: book-page
    match: { path: "/api/book-page/{id}", methods: [GET] }
    aggregate:
      calls:
        book: { upstream: library, path: "/book?shelf=s1&id={id}", grpc_transcode: { descriptor_set: lib.pb, method: lib.Library/GetBook } }
        more: { upstream: library, path: "/more?shelf=s1&count=2", grpc_transcode: { descriptor_set: lib.pb, method: lib.Library/StreamBooks, stream: array } }
`);
  const mark = be.mark();
  const r = await h1(g.port, '/api/book-page/5');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body, { book: fullBookJson(5, 's1'), more: [1, 2].map((i) => streamedBook(i, 's1')) });
  assert.deepEqual(be.since(mark).map((c) => c.method).sort(), ['GetBook', 'StreamBooks']);
  // A gRPC status is the leg's: NOT_FOUND is its 404.
  const missing = await h1(g.port, '/api/book-page/404');
  const err = jsonAnswer(missing, 502);
  assert.match(err.message, /leg 'book'.*answered 404/);
});

// The compress plugin codes the JSON the client gets, not the gRPC answer it was made of: its
// Content-Type is the transcoder's.
test('compress on a transcoding route: the JSON answer is gzip-coded for a client that asks', async () => {
  const g = await gateway('compressed', be, `
  - name: compressed
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: lib.pb }
    plugins: { compress: { types: [application/json], min_size: 1 } }
`);
  const r = await curl(['-s', '-H', 'accept-encoding: gzip', '-o', '-', `http://127.0.0.1:${g.port}/v1/shelves/s1/books/5`]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.headers['content-encoding'], ['gzip']);
  const { gunzipSync } = await import('node:zlib');
  assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(r.body, 'latin1')).toString()), fullBookJson(5, 's1'));
});

test('metrics and access log: transcoded calls by gRPC service, method and status', async () => {
  const port = await freePort();
  const admin = await freePort();
  const dead = await freePort();
  const obs = await startGatehouse(`server: { workers: 1, listen: [ { address: 127.0.0.1:${port} } ] }
admin: { listen: 127.0.0.1:${admin} }
observability: { access_log: { path: stdout, format: json } }
upstreams:
  library: { protocol: grpc, targets: [ { address: 127.0.0.1:${be.port} } ] }
  deadlib: { protocol: grpc, targets: [ { address: 127.0.0.1:${dead} } ] }
routes:
  - name: down
    match: { host: down.test, path: "/v1/*" }
    to: deadlib
    grpc_transcode: { descriptor_set: ${PB} }
  - name: lib
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: ${PB} }
`);
  gateways.push(obs);
  jsonAnswer(await h1(obs.port, '/v1/shelves/s1/books/5'), 200);
  jsonAnswer(await h1(obs.port, '/v1/shelves/s1/books/5'), 200);
  jsonAnswer(await h1(obs.port, '/v1/shelves/s1/books/404'), 404);
  jsonAnswer(await h1(obs.port, '/v1/shelves/s1/books', { method: 'POST', json: { titel: 'x' } }), 400);
  assertGatewayError(await h1(obs.port, '/v1/books/9', { method: 'DELETE', headers: { host: 'down.test' } }), [502, 503]);

  const m = await curl([`http://127.0.0.1:${admin}/metrics`]);
  assert.equal(m.status, 200);
  const series = parseMetrics(m.body).filter((x) => x.name === 'gatehouse_grpc_requests_total')
    .map((x) => `${x.labels.service}/${x.labels.method} ${x.labels.code} ${x.value}`).sort();
  assert.deepEqual(series, [
    'lib.Library/DeleteBook UNAVAILABLE 1',
    'lib.Library/GetBook NOT_FOUND 1',
    'lib.Library/GetBook OK 2',
  ], 'one series per method and code; nothing for the request refused before any call');

  const lines = await waitFor(() => { const l = obs.accessLog(); return l.length >= 5 && l; }, 3000, 'five access log lines');
  const fields = lines.map((l) => [l.path, l.status, l.grpc_service, l.grpc_method, l.grpc_status]);
  assert.deepEqual(fields, [
    ['/v1/shelves/s1/books/5', 200, 'lib.Library', 'GetBook', 0],
    ['/v1/shelves/s1/books/5', 200, 'lib.Library', 'GetBook', 0],
    ['/v1/shelves/s1/books/404', 404, 'lib.Library', 'GetBook', 5],
    ['/v1/shelves/s1/books', 400, undefined, undefined, undefined],
    ['/v1/books/9', lines[4].status, 'lib.Library', 'DeleteBook', 14],
  ]);
});

// --- 10. config errors (gatehouse validate) ------------------------------------------------------

// A config file in WORK with one transcoding route (the first), upstream `library` (gRPC) and
// `web` (HTTP/1.1). Returns its path and text.
function configFile(name, route) {
  const text = `server: { listen: [ { address: 127.0.0.1:0 } ] }
upstreams:
  library: { protocol: grpc, targets: [ { address: 127.0.0.1:1 } ] }
  web: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
${route}`;
  const file = work(name);
  fs.writeFileSync(file, text);
  return { file, text };
}
const validate = (file) => runGatehouse(['validate', '-c', file]);
// The lines of `stderr` that are errors in `file` (FILE:LINE:COL: path: message).
const errorLines = (r, file) => r.stderr.split('\n').filter((l) => l.startsWith(`${file}:`) && /:\d+:\d+: /.test(l));

test('validate: a good config (descriptor set relative to the config file, both stream modes, an explicit method) exits 0', () => {
  const { file } = configFile('good.yaml', `
  - name: json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: lib.pb, stream: ndjson }
  - name: array
    match: { host: array.test, path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: ${PB}, stream: array }
  - name: explicit
    match: { path: "/books/{id}", methods: [GET] }
    to: library
    grpc_transcode: { descriptor_set: ./lib.pb, method: lib.Library/Unannotated }
`);
  const r = validate(file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(1 listener\(s\), 2 upstream\(s\), 3 route\(s\)\)/);
});

test('validate: a descriptor_set that does not exist: FILE:LINE:COL: routes[0].grpc_transcode.descriptor_set: and the path', () => {
  const missing = work('nowhere/missing.pb');
  const { file, text } = configFile('missing.yaml', `
  - name: json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode:
      descriptor_set: ${missing}
`);
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes('descriptor_set:')) + 1;
  const col = lines[line - 1].indexOf(missing) + 1;
  const r = validate(file);
  assert.equal(r.status, 1, r.stderr);
  const errors = errorLines(r, file);
  const prefix = `${file}:${line}:${col}: routes[0].grpc_transcode.descriptor_set: `;
  assert.ok(errors.some((l) => l.startsWith(prefix) && l.includes(missing)),
    `an error starting ${prefix} and naming ${missing} (got:\n${r.stderr})`);
  assert.equal(errors.length, 1, `one error (got:\n${r.stderr})`);
});

test('validate: a descriptor_set that is not a descriptor set: an error naming the file', () => {
  const notPb = work('not-a-descriptor-set.pb');
  // 'n' (0x6e) is a tag with wire type 6, which protobuf does not have: never a parsable message.
  fs.writeFileSync(notPb, 'not a descriptor set, just some text\n');
  const { file } = configFile('not-pb.yaml', `
  - name: json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: ${notPb} }
`);
  const r = validate(file);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\]\.grpc_transcode\.descriptor_set: /.test(l) && l.includes(notPb)),
    `an error at routes[0].grpc_transcode.descriptor_set naming ${notPb} (got:\n${r.stderr})`);
});

test('validate: a method the descriptor set does not have (lib.Library/Nope): an error naming it', () => {
  const { file } = configFile('nope.yaml', `
  - name: explicit
    match: { path: "/books/{id}", methods: [GET] }
    to: library
    grpc_transcode: { descriptor_set: lib.pb, method: lib.Library/Nope }
`);
  const r = validate(file);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\]\.grpc_transcode(\.method)?: /.test(l) && l.includes('lib.Library/Nope')),
    `an error at routes[0].grpc_transcode naming lib.Library/Nope (got:\n${r.stderr})`);
});

test('validate: a transcoding route whose upstream is not protocol: grpc is an error', () => {
  const { file } = configFile('not-grpc.yaml', `
  - name: json
    match: { path: "/v1/*" }
    to: web
    grpc_transcode: { descriptor_set: lib.pb }
`);
  const r = validate(file);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\]\.(grpc_transcode|to)[^:]*: /.test(l) && /grpc/i.test(l) && !/not supported yet/.test(l)),
    `an error at routes[0] saying the upstream must be gRPC (got:\n${r.stderr})`);
});

test('validate: an unknown stream mode is an error', () => {
  const { file } = configFile('bad-stream.yaml', `
  - name: json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: lib.pb, stream: xml }
`);
  const r = validate(file);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\]\.grpc_transcode\.stream: /.test(l)),
    `an error at routes[0].grpc_transcode.stream (got:\n${r.stderr})`);
});

// --- 11. reload ----------------------------------------------------------------------------------

// SIGHUP, then waits until the gateway has logged `what` once more than before.
async function reload(g, what) {
  const count = () => g.stderr.split(what).length - 1;
  const before = count();
  g.proc.kill('SIGHUP');
  await waitFor(() => count() > before, 5000, `"${what}" after SIGHUP`);
}

test('reload: the descriptor set is read again with the config (ListBooks annotated only after it)', async () => {
  compileWithoutListBooks(work('reload.pb'));
  const g = await gateway('reload', be, `
  - name: library-json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: reload.pb }
`);
  // Before: GetBook is there, ListBooks has no binding.
  assert.deepEqual(jsonAnswer(await h1(g.port, '/v1/shelves/r1/books/5'), 200), fullBookJson(5, 'r1'));
  let mark = be.mark();
  const r404 = await h1(g.port, '/v1/shelves/r1/books');
  assert.equal(r404.status, 404, `no method takes the path yet (got ${show(r404)})`);
  await assertUntouched(be, mark, g.port);

  compile(work('reload.pb'));
  await reload(g, 'reloaded');
  mark = be.mark();
  const r = await h1(g.port, '/v1/shelves/r1/books?page_size=2');
  assert.deepEqual(jsonAnswer(r, 200), { books: [{ id: '1', title: 'Listed', shelf: 'r1' }] });
  const req = onlyCall(be, mark, 'ListBooks');
  assert.equal(req.shelf, 'r1');
  assert.equal(req.page_size, 2);
});

test('reload: a descriptor set that became unreadable is refused; the old one keeps serving', async () => {
  const pb = compile(work('reload-bad.pb'));
  const g = await gateway('reload-bad', be, `
  - name: library-json
    match: { path: "/v1/*" }
    to: library
    grpc_transcode: { descriptor_set: ${pb} }
`);
  assert.deepEqual(jsonAnswer(await h1(g.port, '/v1/shelves/b1/books/5'), 200), fullBookJson(5, 'b1'));
  fs.writeFileSync(pb, 'not a descriptor set any more\n');
  await reload(g, 'reload rejected');
  assert.match(g.stderr, /routes\[0\]\.grpc_transcode\.descriptor_set/, 'the rejection names the descriptor set');
  const mark = be.mark();
  const r = await h1(g.port, '/v1/shelves/b1/books/6');
  assert.deepEqual(jsonAnswer(r, 200), fullBookJson(6, 'b1'));
  onlyCall(be, mark, 'GetBook');
});
