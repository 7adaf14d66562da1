// WebSocket through the gateway (RFC 6455), with the `ws` package on both ends: the upgrade is
// routed, authenticated and rate-limited like any request, then tunnelled both ways; the route's
// limits on frames and messages (1009), masking (1002), the idle timeout and the end of a drain
// (1001) close it with a Close frame; the close handshake passes through; a reload leaves it open;
// routes without `websocket:` do not upgrade; the tunnels are in the metrics and the access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import { WebSocketServer, WebSocket } from 'ws';
import { startGatehouse, freePort, waitFor } from './harness.mjs';

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const KEY = 'ws-key-0123456789';

let wss, gh, admin;
const seen = [];  // what the upstream saw: { url, headers } per connection, closes
before(async () => {
  // An echo server; it records each connection's handshake and how it closed.
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.on('listening', r));
  wss.on('connection', (s, req) => {
    const conn = { url: req.url, headers: req.headers, closed: null };
    seen.push(conn);
    s.on('message', (m, binary) => s.send(m, { binary }));
    s.on('close', (code, reason) => { conn.closed = { code, reason: reason.toString() }; });
  });
  admin = await freePort();
  gh = await startGatehouse(config(), { expectListeners: 1 });
});
after(async () => {
  await gh?.stop();
  wss?.close();
});

function config(extra = '') {
  return `
server:
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
consumers:
  - { name: app, api_keys: [ { sha256: ${sha256(KEY)} } ] }
upstreams:
  ws: { targets: [ { address: 127.0.0.1:${wss.address().port} } ] }
routes:
  - { name: echo, match: { path: /echo }, to: ws, websocket: {} }
  - { name: small, match: { path: /small }, to: ws, websocket: { max_frame_bytes: 16KiB, max_message_bytes: 64KiB } }
  - { name: keyed, match: { path: /keyed }, to: ws, websocket: {}, plugins: { key_auth: { header: x-api-key } } }
  - { name: limited, match: { path: /limited }, to: ws, websocket: {}, plugins: { rate_limit: { limits: [ { rate: "1/m", burst: 1 } ], key: ip } } }
  - { name: quiet, match: { path: /quiet }, to: ws, websocket: { idle_timeout: 300ms } }
  - { name: plain, match: { path: /plain }, to: ws }
${extra}`;
}

// Opens a WebSocket through the gateway: resolves the open socket, or rejects with the status
// of the answer that was not 101.
function open(path, headers = {}, port = gh.port, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers, ...options });
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
}
// The next message; a close before it is an error (not a hang).
const next = (ws) => new Promise((resolve, reject) => {
  const onClose = (code) => reject(new Error(`closed with ${code} before a message`));
  ws.once('close', onClose);
  ws.once('message', (m, binary) => { ws.off('close', onClose); resolve({ m, binary }); });
});
const closed = (ws) => new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
const metric = async (name) => {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
};

test('messages both ways, text and binary, through the tunnel; in the metrics and the access log', async () => {
  const ws = await open('/echo');
  ws.send('hello');
  assert.deepEqual(await next(ws), { m: Buffer.from('hello'), binary: false });
  const blob = crypto.randomBytes(200 * 1024);  // within the default limits (1 MiB frames)
  ws.send(blob);
  const back = await next(ws);
  assert.equal(back.binary, true);
  assert.ok(back.m.equals(blob));
  assert.equal(await metric('gatehouse_websocket_tunnels_open'), 1);
  const conn = seen[seen.length - 1];
  assert.equal(conn.url, '/echo');
  assert.ok(conn.headers['x-request-id'], 'the request id goes upstream with the handshake');
  const done = closed(ws);
  ws.close(4000, 'bye');
  assert.deepEqual(await done, { code: 4000, reason: 'bye' }, 'the close handshake passes through');
  await waitFor(() => conn.closed, 3000, 'the upstream side closed');
  assert.deepEqual(conn.closed, { code: 4000, reason: 'bye' });
  await waitFor(async () => (await metric('gatehouse_websocket_tunnels_open')) === 0, 3000, 'the tunnel gone from the gauge');
  assert.ok(await metric('gatehouse_websocket_bytes_total{direction="upstream"}') > 200 * 1024);
  assert.ok(await metric('gatehouse_downstream_requests_total{protocol="HTTP/1.1"}') >= 1);
  const line = await waitFor(() => gh.accessLog().find((l) => l.path === '/echo'), 3000, 'the log line');
  assert.equal(line.status, 101);
  assert.equal(line.protocol, 'HTTP/1.1');
  assert.ok(line.bytes_in > 200 * 1024, 'the tunnel\'s bytes are counted');
});

test('the upgrade is authenticated and rate-limited like any request', async () => {
  await assert.rejects(open('/keyed'), { status: 401 });
  const ws = await open('/keyed', { 'x-api-key': KEY });
  assert.equal(seen[seen.length - 1].headers['x-api-key'], undefined, 'the key is not forwarded');
  ws.close();
  const first = await open('/limited');
  first.close();
  await assert.rejects(open('/limited'), { status: 429 });
});

test('a route without websocket does not upgrade: the upstream sees a plain GET', async () => {
  const before = seen.length;
  await assert.rejects(open('/plain'), (e) => e.status !== 101 && e.status >= 400);
  assert.equal(seen.length, before, 'no WebSocket reached the upstream');
});

test('a message over max_message_bytes, or a frame over max_frame_bytes, closes both sides with 1009', async () => {
  // Frames as sent: no permessage-deflate.
  const ws = await open('/small', {}, gh.port, { perMessageDeflate: false });
  const conn = seen[seen.length - 1];
  ws.on('error', () => {});
  // A message in 16 KiB frames: the first four (64 KiB) pass, the fifth is over.
  const piece = crypto.randomBytes(16 * 1024);
  ws.send(piece, { fin: false });
  ws.send(piece, { fin: true });
  assert.equal((await next(ws)).m.length, 32 * 1024, 'a message within the limits passes');
  const done = closed(ws);
  for (let i = 0; i < 4; i++) ws.send(piece, { fin: false });
  ws.send(piece, { fin: true });
  assert.equal((await done).code, 1009);
  await waitFor(() => conn.closed, 3000, 'the upstream side closed');
  assert.equal(conn.closed.code, 1009);

  const ws2 = await open('/small', {}, gh.port, { perMessageDeflate: false });
  ws2.on('error', () => {});
  const done2 = closed(ws2);
  ws2.send(crypto.randomBytes(16 * 1024 + 1));  // one frame, a byte over
  assert.equal((await done2).code, 1009);
});

test('an unmasked frame from the client is a protocol error: 1002', async () => {
  // A handshake by hand, then a frame without a mask (RFC 6455 5.1).
  const sock = net.connect(gh.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.write('GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
  let got = Buffer.alloc(0);
  sock.on('data', (d) => { got = Buffer.concat([got, d]); });
  await waitFor(() => got.includes('\r\n\r\n'), 3000, 'the 101');
  assert.match(got.toString('latin1'), /^HTTP\/1\.1 101 /);
  const headEnd = got.indexOf('\r\n\r\n') + 4;
  sock.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));  // "hi", unmasked
  await new Promise((r) => sock.on('close', r));
  const rest = got.subarray(headEnd);
  assert.deepEqual([...rest.subarray(0, 4)], [0x88, 0x02, 0x03, 0xea], 'a Close frame with 1002');
});

test('a tunnel idle for the route\'s idle_timeout is closed with 1001', async () => {
  const ws = await open('/quiet');
  const t0 = Date.now();
  const { code } = await closed(ws);
  assert.equal(code, 1001);
  assert.ok(Date.now() - t0 >= 250, 'not before the idle timeout');
});

test('a tunnel stays open across a reload, and the end of a drain closes it with 1001', async () => {
  const own = await startGatehouse(config().replace('listen: [ { address: 127.0.0.1:0 } ]',
    'listen: [ { address: 127.0.0.1:0 } ]\n  timeouts: { drain: 500ms }').replace(/admin: .*\n/, ''));
  const ws = await open('/echo', {}, own.port);
  // A reload (the same file, rewritten): the tunnel carries on.
  fs.writeFileSync(own.file, fs.readFileSync(own.file, 'utf8') + '\n# reloaded\n');
  own.proc.kill('SIGHUP');
  await waitFor(() => /reload/i.test(own.stderr), 3000, 'the reload');
  ws.send('after the reload');
  assert.equal((await next(ws)).m.toString(), 'after the reload');
  const done = closed(ws);
  const stopped = own.stop();
  assert.equal((await done).code, 1001);
  assert.equal((await stopped).code, 0);
});
