// WebSocket over HTTP/2 (RFC 8441) through the gateway: Node's http2 client opens an extended
// CONNECT (`:protocol websocket`) on a cleartext HTTP/2 listener, and the gateway carries it to a
// `ws` echo server as the HTTP/1.1 upgrade it stands for. The handshake is routed and
// authenticated like any request; the stream's DATA is the tunnel (frames checked as over
// HTTP/1.1: masking 1002, the route's limits 1009); many tunnels share one connection; a close
// from either side ends the stream; a drain closes tunnels with 1001; a route that does not
// tunnel never answers a 2xx that would look like one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import { WebSocketServer } from 'ws';
import { startGatehouse, freePort, waitFor } from './harness.mjs';

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const KEY = 'ws-h2-key-0123456789';

let wss, plain, gh, admin;
const seen = [];  // what the echo server saw: { url, headers, closed } per connection
before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.on('listening', r));
  wss.on('connection', (s, req) => {
    const conn = { url: req.url, headers: req.headers, closed: null };
    seen.push(conn);
    s.on('message', (m, binary) => s.send(m, { binary }));
    s.on('close', (code) => { conn.closed = code; });
  });
  // An HTTP server that answers every GET 200: what a route without `websocket` reaches.
  plain = http.createServer((req, res) => res.end('not a tunnel'));
  await new Promise((r) => plain.listen(0, '127.0.0.1', r));
  admin = await freePort();
  const port = await freePort();
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ]
admin: { listen: 127.0.0.1:${admin} }
consumers:
  - { name: app, api_keys: [ { sha256: ${sha256(KEY)} } ] }
upstreams:
  ws: { targets: [ { address: 127.0.0.1:${wss.address().port} } ] }
  plain: { targets: [ { address: 127.0.0.1:${plain.address().port} } ] }
routes:
  - { name: echo, match: { path: /echo }, to: ws, websocket: {} }
  - { name: small, match: { path: /small }, to: ws, websocket: { max_frame_bytes: 1KiB } }
  - { name: keyed, match: { path: /keyed }, to: ws, websocket: {}, plugins: { key_auth: { header: x-api-key } } }
  - { name: plain, match: { path: /plain }, to: plain }
`);
});
after(async () => {
  await gh?.stop();
  wss?.close();
  plain?.close();
});

// --- a WebSocket client over one HTTP/2 stream -------------------------------------------------

// A client frame (RFC 6455 5.2): FIN, the opcode, masked (or not, to test the gateway).
function frame(opcode, payload, { masked = true } = {}) {
  const p = Buffer.from(payload);
  const len = p.length < 126 ? [p.length] : p.length < 65536 ? [126, p.length >> 8, p.length & 255]
    : [127, 0, 0, 0, 0, (p.length >>> 24) & 255, (p.length >> 16) & 255, (p.length >> 8) & 255, p.length & 255];
  const head = Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | len[0], ...len.slice(1)]);
  if (!masked) return Buffer.concat([head, p]);
  const mask = crypto.randomBytes(4);
  return Buffer.concat([head, mask, Buffer.from(p.map((b, i) => b ^ mask[i % 4]))]);
}
const closeFrame = (code) => frame(8, Buffer.from([code >> 8, code & 255]));

// Server frames (unmasked) parsed as they come: { opcode, payload } each.
function frameReader(stream) {
  let buf = Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  stream.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      let len = buf[1] & 127, at = 2;
      if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      if (buf.length < at + len) break;
      frames.push({ opcode: buf[0] & 15, payload: buf.subarray(at, at + len) });
      buf = buf.subarray(at + len);
    }
    while (waiters.length && frames.length) waiters.shift()(frames.shift());
  });
  return () => new Promise((resolve, reject) => {
    if (frames.length) return resolve(frames.shift());
    waiters.push(resolve);
    stream.once('close', () => reject(new Error(`stream closed (rst ${stream.rstCode}) before a frame`)));
  });
}

function connect() {
  const session = http2.connect(`http://127.0.0.1:${gh.port}`);
  session.on('error', () => {});
  return session;
}
// Opens a tunnel on `session`: resolves { stream, headers, next } once the answer came.
function openTunnel(session, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const go = () => {
      const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http',
        ':path': path, ':authority': `127.0.0.1:${gh.port}`, 'sec-websocket-version': '13', ...headers });
      const next = frameReader(stream);
      stream.on('error', () => {});
      stream.once('response', (h) => resolve({ stream, headers: h, next }));
      stream.once('close', () => reject(new Error(`closed before an answer (rst ${stream.rstCode})`)));
    };
    // RFC 8441 3: extended CONNECT only once the server said SETTINGS_ENABLE_CONNECT_PROTOCOL.
    if (session.remoteSettings?.enableConnectProtocol) go();
    else session.once('remoteSettings', go);
  });
}
const streamClosed = (stream) => new Promise((r) => (stream.closed ? r() : stream.once('close', r)));

// --- tests -----------------------------------------------------------------------------------

test('an extended CONNECT is a WebSocket upstream: 200, then messages both ways on the stream', async () => {
  const session = connect();
  await new Promise((r) => session.once('remoteSettings', r));
  assert.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL');
  const before = seen.length;
  const t = await openTunnel(session, '/echo?room=1', { 'sec-websocket-protocol': 'chat' });
  assert.equal(t.headers[':status'], 200);
  assert.equal(t.headers['sec-websocket-accept'], undefined, 'HTTP/1.1\'s accept is not for HTTP/2');
  assert.equal(t.headers.upgrade, undefined);
  // The upstream saw a real RFC 6455 handshake, with a key the gateway made.
  const up = seen[before];
  assert.equal(up.url, '/echo?room=1');
  assert.equal(up.headers.upgrade, 'websocket');
  assert.match(up.headers['sec-websocket-key'], /^[A-Za-z0-9+/]{22}==$/);
  assert.equal(up.headers['sec-websocket-version'], '13');
  assert.equal(up.headers['sec-websocket-protocol'], 'chat');

  t.stream.write(frame(1, 'hello over h2'));
  let f = await t.next();
  assert.deepEqual([f.opcode, f.payload.toString()], [1, 'hello over h2']);
  const bin = crypto.randomBytes(200 * 1024);  // larger than a stream window's worth of frames
  t.stream.write(frame(2, bin));
  f = await t.next();
  assert.equal(f.opcode, 2);
  assert.ok(f.payload.equals(bin), 'the binary message came back whole');

  // The client's close handshake passes through; both sides end the stream.
  t.stream.write(closeFrame(1000));
  f = await t.next();
  assert.equal(f.opcode, 8);
  assert.equal(f.payload.readUInt16BE(0), 1000);
  t.stream.end();
  await streamClosed(t.stream);
  await waitFor(() => up.closed === 1000, 3000, 'the upstream saw the close');
  session.close();
  // The line is written once the stream's exchange finishes, which may come after the client saw
  // the stream end.
  const log = await waitFor(() => gh.accessLog().find((l) => l.path === '/echo?room=1'), 3000, 'the log line');
  assert.equal(log.protocol, 'HTTP/2');
  assert.equal(log.route, 'echo');
  // Logged as the client saw it: an extended CONNECT answered 200 (not the GET and 101 inside).
  assert.equal(log.method, 'CONNECT');
  assert.equal(log.status, 200);
});

test('the handshake is authenticated like any request', async () => {
  const session = connect();
  const denied = await openTunnel(session, '/keyed');
  assert.equal(denied.headers[':status'], 401);
  const t = await openTunnel(session, '/keyed', { 'x-api-key': KEY });
  assert.equal(t.headers[':status'], 200);
  t.stream.write(frame(1, 'keyed'));
  assert.equal((await t.next()).payload.toString(), 'keyed');
  session.close();
});

test('tunnels share one connection, each its own stream', async () => {
  const session = connect();
  const tunnels = await Promise.all(Array.from({ length: 8 }, () => openTunnel(session, '/echo')));
  tunnels.forEach((t, i) => t.stream.write(frame(1, `tunnel ${i}`)));
  const got = await Promise.all(tunnels.map((t) => t.next()));
  assert.deepEqual(got.map((f) => f.payload.toString()), tunnels.map((_, i) => `tunnel ${i}`));
  // One tunnel's end leaves the others open.
  tunnels[0].stream.close(http2.constants.NGHTTP2_CANCEL);
  await streamClosed(tunnels[0].stream);
  tunnels[1].stream.write(frame(1, 'still here'));
  assert.equal((await tunnels[1].next()).payload.toString(), 'still here');
  session.close();
});

test('frames are checked as over HTTP/1.1: unmasked 1002, over max_frame_bytes 1009', async () => {
  const session = connect();
  const a = await openTunnel(session, '/echo');
  const upA = seen[seen.length - 1];
  a.stream.write(frame(1, 'no mask', { masked: false }));
  let f = await a.next();
  assert.equal(f.opcode, 8);
  assert.equal(f.payload.readUInt16BE(0), 1002);
  await waitFor(() => upA.closed === 1002, 3000, 'the upstream told 1002 too');
  await streamClosed(a.stream);

  const b = await openTunnel(session, '/small');
  b.stream.write(frame(2, Buffer.alloc(2048)));
  f = await b.next();
  assert.equal(f.opcode, 8);
  assert.equal(f.payload.readUInt16BE(0), 1009);
  await streamClosed(b.stream);
  session.close();
});

test('a route that does not tunnel never answers 2xx to an extended CONNECT', async () => {
  const session = connect();
  const t = await openTunnel(session, '/plain');
  // The upstream answered a plain GET with 200: a 2xx here would tell the client a tunnel opened.
  assert.equal(t.headers[':status'], 502);
  await streamClosed(t.stream);
  session.close();
  const log = await waitFor(() => gh.accessLog().find((l) => l.path === '/plain'), 3000, 'the log line');
  assert.equal(log.status, 502, 'the log says what the client got');
});

test('the end of a drain closes tunnels with 1001 to both sides, and the gateway exits', async () => {
  const session = connect();
  const t = await openTunnel(session, '/echo');
  const up = seen[seen.length - 1];
  t.stream.write(frame(1, 'before the drain'));
  assert.equal((await t.next()).payload.toString(), 'before the drain');
  const exited = gh.stop();
  const f = await t.next();
  assert.equal(f.opcode, 8);
  assert.equal(f.payload.readUInt16BE(0), 1001);
  await waitFor(() => up.closed === 1001, 5000, 'the upstream told 1001');
  const { code } = await exited;
  assert.equal(code, 0);
  session.destroy();
});
