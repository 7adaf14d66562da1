// Upstreams that break HTTP/1.1 in the middle of a response: a head that never ends, a body longer
// than its Content-Length, a reset mid-body, interim (1xx) responses, broken chunked framing. Each
// upstream is a raw TCP server that writes exactly the bytes a test asks for; each client is a raw
// socket, so that what the gateway does with the connections (closed, reset, reused) is visible.
// No test sleeps: each waits for the event it is about, bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { startGatehouse, curl, dechunk } from './harness.mjs';

// Rejects with `what` when `promise` has not settled within `ms`.
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A misbehaving upstream on raw TCP. `respond(conn, req)` answers each request head (the tests
// send no request bodies) by writing whatever it likes on conn.sock. Connections are numbered in
// the order they arrive and each request keeps its connection, so a test can tell a reused
// connection from a new one; conn.closed resolves when the gateway (or the test) closes it.
function startRawUpstream(respond) {
  const connections = [];
  const requests = [];
  const events = new EventEmitter();
  const server = net.createServer((sock) => {
    const conn = { id: connections.length + 1, sock, isClosed: false };
    conn.closed = new Promise((resolve) => sock.on('close', () => { conn.isClosed = true; resolve(); }));
    connections.push(conn);
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const req = { path: head.split(' ')[1], head, conn };
        requests.push(req);
        respond(conn, req);
        events.emit('request', req);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    connections,
    requests,
    // The next request to arrive (ask before sending it).
    nextRequest: (what = 'a request at the upstream') => within(
      new Promise((r) => events.once('request', r)), 3000, what),
    close: () => new Promise((r) => {
      for (const c of connections) c.sock.destroy();
      server.close(() => r());
    }),
  })));
}

// A raw client connection that keeps every byte it receives and how the connection ended
// ('end': the gateway closed it, 'reset': ECONNRESET), with a bounded wait for a condition on
// them, checked again on every event.
function rawClient(port) {
  const sock = net.connect(port, '127.0.0.1');
  const wakers = new Set();
  const wake = () => { for (const w of wakers) w(); };
  const c = {
    bytes: Buffer.alloc(0),
    ended: null,
    get text() { return this.bytes.toString('latin1'); },
    send: (d) => sock.write(d),
    close: () => sock.destroy(),
    until(pred, what, ms = 3000) {
      return new Promise((resolve, reject) => {
        const finish = () => { clearTimeout(timer); wakers.delete(check); };
        const check = () => { if (pred(c)) { finish(); resolve(c); } };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(c.text)}, ended: ${c.ended}`));
        }, ms);
        wakers.add(check);
        check();
      });
    },
  };
  sock.on('data', (d) => { c.bytes = Buffer.concat([c.bytes, d]); wake(); });
  sock.on('end', () => { c.ended ??= 'end'; wake(); });
  sock.on('error', (e) => { c.ended ??= e.code === 'ECONNRESET' ? 'reset' : e.code; wake(); });
  sock.on('close', () => { c.ended ??= 'close'; wake(); });
  return c;
}

// The complete responses at the start of `text`, in order (each complete by its Content-Length;
// an interim 1xx head counts as a response of its own), and what follows them.
function responses(text) {
  const list = [];
  for (;;) {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = text.slice(0, end);
    const status = Number(head.split(' ')[1]);
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    const length = status < 200 || !m ? 0 : Number(m[1]);
    if (text.length < end + 4 + length) break;
    list.push({ status, head, body: text.slice(end + 4, end + 4 + length) });
    text = text.slice(end + 4 + length);
  }
  list.rest = text;
  return list;
}

const ok = (body) => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
const get = (path, version = '1.1') => `GET ${path} HTTP/${version}\r\nHost: t\r\n\r\n`;

let stall;
let overlong;
let resets;
let interim;
let badChunks;
let gh;
// Upstream connections waiting for the test to reset them, by path.
const toReset = new Map();
// Upstream connections that sent an interim response and wait for the test to send the final one.
const toFinish = new Map();

before(async () => {
  // A head that never ends.
  stall = await startRawUpstream((conn, req) => {
    if (req.path.startsWith('/stall')) conn.sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/pl');
    else conn.sock.write(ok(`fine ${req.path}`));
  });
  // Five bytes of body announced, more sent.
  overlong = await startRawUpstream((conn, req) => {
    if (req.path === '/overlong') conn.sock.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled');
    else conn.sock.write(ok(`fine ${req.path}`));
  });
  // A head and part of the body, then a reset when the test says (once the client has them).
  resets = await startRawUpstream((conn, req) => {
    const part = 'x'.repeat(100);
    if (req.path === '/length') {
      conn.sock.write(`HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n${part}`);
    } else if (req.path === '/chunked') {
      conn.sock.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n64\r\n${part}\r\n`);
    } else if (req.path === '/until-close') {
      conn.sock.write(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${part}`);
    } else {
      conn.sock.write(ok(`fine ${req.path}`));
      return;
    }
    toReset.set(req.path, conn);
  });
  // Interim responses before the final one.
  interim = await startRawUpstream((conn, req) => {
    if (req.path === '/continue') {
      conn.sock.write('HTTP/1.1 100 Continue\r\n\r\n');
      conn.sock.write(ok('after a 100'));
    } else if (req.path === '/early-hints') {
      conn.sock.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n' +
        'Connection: x-hop\r\nX-Hop: dropped\r\n\r\n');
      toFinish.set(req.path, conn);
    } else {
      conn.sock.write(ok(`fine ${req.path}`));
    }
  });
  // Chunked bodies with broken framing.
  badChunks = await startRawUpstream((conn, req) => {
    const head = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n';
    if (req.path === '/bad-size') conn.sock.write(`${head}5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n`);
    else if (req.path === '/no-crlf') conn.sock.write(`${head}5\r\nhelloXX5\r\nworld\r\n0\r\n\r\n`);
    else conn.sock.write(ok(`fine ${req.path}`));
  });

  const upstream = (name, port, extra = '') => `  ${name}: { targets: [ { address: 127.0.0.1:${port} } ]${extra} }\n`;
  const route = (name, extra = '') =>
    `  - { name: ${name}, match: { path: /${name}/* }, rewrite: { strip_prefix: /${name} },${extra} to: ${name} }\n`;
  gh = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
${upstream('stall', stall.port, ', timeouts: { response: 300ms }')}\
${upstream('stall_route', stall.port)}\
${upstream('overlong', overlong.port)}\
${upstream('resets', resets.port)}\
${upstream('interim', interim.port)}\
${upstream('bad_chunks', badChunks.port)}\
routes:
${route('stall')}\
${route('stall_route', ' timeout: 300ms,')}\
${route('overlong')}\
${route('resets')}\
${route('interim')}\
${route('bad_chunks')}\
`);
});

after(async () => {
  // The upstreams first: a test that failed half-way may leave the gateway waiting on one.
  await Promise.all([stall, overlong, resets, interim, badChunks].map((u) => u?.close()));
  await gh?.stop();
});

// --- 1. a response head that never ends ------------------------------------------------------

for (const [prefix, message] of [['/stall', /stall did not answer within 300ms/],
  ['/stall_route', /stall_route did not answer within the route's timeout of 300ms/]]) {
  test(`${prefix}: a partial head then silence -> 504 within the timeout, the upstream connection closed`, async (t) => {
    const c = rawClient(gh.port);
    t.after(() => c.close());
    const arrived = stall.nextRequest();
    const t0 = Date.now();
    c.send(`GET ${prefix}/stall HTTP/1.1\r\nHost: t\r\nX-Request-Id: stalled-1\r\n\r\n`);
    const { conn } = await arrived;
    await c.until((x) => responses(x.text).length === 1, 'the 504');
    const elapsed = Date.now() - t0;
    const [r] = responses(c.text);
    assert.equal(r.status, 504);
    assert.match(r.head, /\r\nx-request-id: stalled-1(\r\n|$)/i);
    const body = JSON.parse(r.body);
    assert.equal(body.error, 'upstream_timeout');
    assert.equal(body.request_id, 'stalled-1');
    assert.match(body.message, message);
    assert.ok(elapsed >= 280 && elapsed < 2000, `answered after ${elapsed} ms`);
    // The half-read upstream connection is closed, never pooled.
    await within(conn.closed, 2000, 'the gateway to close the stalled upstream connection');
    // The client's connection is still good: the next request on it is answered, from a new
    // upstream connection.
    const next = stall.nextRequest();
    c.send(get(`${prefix}/after`));
    assert.notEqual((await next).conn.id, conn.id);
    await c.until((x) => responses(x.text).length === 2, 'the next response');
    const after2 = responses(c.text)[1];
    assert.equal(after2.status, 200);
    assert.equal(after2.body, 'fine /after');
  });
}

// --- 2. more body than the Content-Length ----------------------------------------------------

test('a body longer than its Content-Length: the client gets exactly that many bytes, the upstream connection is not reused', async (t) => {
  const c = rawClient(gh.port);
  t.after(() => c.close());
  // Two well-behaved exchanges first: the second reuses the first's connection, so that a new
  // connection later is the gateway's choice, not the pool's habit.
  c.send(get('/overlong/first'));
  await c.until((x) => responses(x.text).length === 1, 'the first response');
  c.send(get('/overlong/second'));
  await c.until((x) => responses(x.text).length === 2, 'the second response');
  assert.deepEqual(overlong.requests.map((r) => r.conn.id), [1, 1], 'a clean response leaves its connection reusable');

  c.send(get('/overlong/overlong'));
  await c.until((x) => responses(x.text).length === 3, 'the overlong response');
  const r = responses(c.text)[2];
  assert.equal(r.status, 200);
  assert.match(r.head, /\r\ncontent-length: 5(\r\n|$)/i);
  assert.equal(r.body, 'hello');
  const overlongConn = overlong.requests[2].conn;
  assert.equal(overlongConn.id, 1);
  // The bytes after the body are neither relayed nor kept: the upstream connection is closed.
  await within(overlongConn.closed, 2000, 'the gateway to close the overlong upstream connection');

  // The client's connection is in step: the next response follows at once, from a new upstream
  // connection, and nothing of the upstream's extra bytes shows.
  const next = overlong.nextRequest();
  c.send(get('/overlong/after'));
  assert.equal((await next).conn.id, 2, 'the next request comes on a new upstream connection');
  assert.equal(overlong.connections.length, 2);
  await c.until((x) => responses(x.text).length === 4, 'the response after it');
  const all = responses(c.text);
  assert.equal(all[3].status, 200);
  assert.equal(all[3].body, 'fine /after');
  assert.equal(all.rest, '');
  assert.doesNotMatch(c.text, /smuggled/);
  assert.equal(c.ended, null, 'the client connection stays open');
});

// --- 3. a reset in the middle of the body ----------------------------------------------------

// Sends `path` to the resets upstream, waits until the client has the head and the first 100 body
// bytes, resets the upstream connection, and waits for the client connection to end.
async function resetMidBody(t, path, version = '1.1') {
  const c = rawClient(gh.port);
  t.after(() => c.close());
  c.send(get(`/resets${path}`, version));
  await c.until((x) => {
    const end = x.text.indexOf('\r\n\r\n');
    return end >= 0 && x.text.slice(end + 4).includes('x'.repeat(100));
  }, 'the head and the first body bytes');
  const conn = toReset.get(path);
  toReset.delete(path);
  conn.sock.resetAndDestroy();
  await c.until((x) => x.ended, 'the gateway to end the client connection');
  const end = c.text.indexOf('\r\n\r\n');
  return { c, head: c.text.slice(0, end), body: c.text.slice(end + 4) };
}

test('a reset mid-body (Content-Length): fewer bytes, then the client connection closes', async (t) => {
  const { head, body } = await resetMidBody(t, '/length');
  assert.match(head, /^HTTP\/1.1 200 /);
  assert.match(head, /\r\ncontent-length: 1000(\r\n|$)/i);
  assert.equal(body, 'x'.repeat(100), 'short of its Content-Length: the client knows it is cut');
});

test('a reset mid-body (chunked): no last chunk, then the client connection closes', async (t) => {
  const { head, body } = await resetMidBody(t, '/chunked');
  assert.match(head, /\r\ntransfer-encoding: chunked(\r\n|$)/i);
  const decoded = dechunk(body);
  assert.equal(decoded.payload, 'x'.repeat(100));
  assert.equal(decoded.complete, false, 'the chunked body never ends: the client knows it is cut');
});

// Where the close is the end of the body, only a reset tells the client that the body is cut
// (RFC 9112 6.3, 8): a FIN would present the first bytes as the whole response.
test('a reset mid-body (close-delimited): the client connection is reset, not closed as if complete', async (t) => {
  const { c, head, body } = await resetMidBody(t, '/until-close');
  assert.doesNotMatch(head, /content-length|transfer-encoding/i);
  assert.equal(body, 'x'.repeat(100));
  assert.equal(c.ended, 'reset');
});

test('a reset mid-body (chunked, de-chunked for an HTTP/1.0 client): the client connection is reset', async (t) => {
  const { c, head, body } = await resetMidBody(t, '/chunked', '1.0');
  assert.doesNotMatch(head, /content-length|transfer-encoding/i);
  assert.equal(body, 'x'.repeat(100));
  assert.equal(c.ended, 'reset');
});

// An upstream gone silent mid-body: the stall limit (server.timeouts.idle) ends the response, and
// where the close would end the body, with a reset.
test('an upstream silent mid-body (close-delimited): after timeouts.idle the client connection is reset', async (t) => {
  const silent = await startRawUpstream((conn) => conn.sock.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npartial'));
  t.after(() => silent.close());
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  timeouts: { idle: 300ms }
upstreams:
  silent: { targets: [ { address: 127.0.0.1:${silent.port} } ] }
routes:
  - { match: { path: /* }, to: silent }
`);
  t.after(() => g.stop());
  const c = rawClient(g.port);
  t.after(() => c.close());
  c.send(get('/x'));
  await c.until((x) => x.text.endsWith('\r\n\r\npartial'), 'the head and the first body bytes');
  const t0 = Date.now();
  await c.until((x) => x.ended, 'the gateway to end the client connection');
  assert.equal(c.ended, 'reset');
  assert.ok(Date.now() - t0 < 2000);
  await within(silent.connections[0].closed, 2000, 'the gateway to close the upstream connection');
});

// --- 4. interim (1xx) responses --------------------------------------------------------------
// As docs/configuration.md ("Upstream responses that are not plain") says: an upstream's 100
// Continue is never forwarded (the gateway answers the client's Expect itself); other 1xx, such
// as 103 Early Hints, go at once to HTTP/1.1 clients (RFC 9110 15.2) without hop-by-hop fields,
// and never to HTTP/1.0 clients.

test('an unasked 100 Continue is dropped; the final response arrives intact, both connections stay usable', async (t) => {
  const c = rawClient(gh.port);
  t.after(() => c.close());
  const arrived = interim.nextRequest();
  c.send(get('/interim/continue'));
  const { conn } = await arrived;
  await c.until((x) => responses(x.text).length === 1, 'the response');
  const [r] = responses(c.text);
  assert.equal(r.status, 200, 'the first thing the client gets is the final response');
  assert.equal(r.body, 'after a 100');
  assert.doesNotMatch(c.text, /100 Continue/);
  const next = interim.nextRequest();
  c.send(get('/interim/after'));
  assert.equal((await next).conn.id, conn.id, 'the upstream connection is reused: the gateway read it in step');
  await c.until((x) => responses(x.text).length === 2, 'the next response');
  assert.equal(responses(c.text)[1].body, 'fine /after');
  assert.equal(responses(c.text).rest, '');
});

test('103 Early Hints is forwarded to an HTTP/1.1 client before the final response, without hop-by-hop fields', async (t) => {
  const c = rawClient(gh.port);
  t.after(() => c.close());
  t.after(() => toFinish.get('/early-hints')?.sock.destroy());  // when the test fails half-way
  c.send(get('/interim/early-hints'));
  // The hint reaches the client while the upstream still holds the final response back.
  await c.until((x) => responses(x.text).length === 1, 'the 103');
  const [hint] = responses(c.text);
  assert.equal(hint.status, 103);
  assert.match(hint.head, /^HTTP\/1.1 103 Early Hints\r\n/);
  assert.match(hint.head, /\r\nLink: <\/style.css>; rel=preload; as=style(\r\n|$)/);
  assert.doesNotMatch(hint.head, /x-hop|connection:|content-length|transfer-encoding/i);
  const conn = toFinish.get('/early-hints');
  toFinish.delete('/early-hints');
  conn.sock.write(ok('the final response'));
  await c.until((x) => responses(x.text).length === 2, 'the final response');
  const r = responses(c.text)[1];
  assert.equal(r.status, 200);
  assert.equal(r.body, 'the final response');
  const next = interim.nextRequest();
  c.send(get('/interim/after'));
  assert.equal((await next).conn.id, conn.id, 'the upstream connection is reused');
  await c.until((x) => responses(x.text).length === 3, 'the next response');
  assert.equal(responses(c.text)[2].body, 'fine /after');
  assert.equal(responses(c.text).rest, '');
});

test('103 Early Hints is not sent to an HTTP/1.0 client (RFC 9110 15.2); the final response is', async (t) => {
  const c = rawClient(gh.port);
  t.after(() => c.close());
  const arrived = interim.nextRequest();
  c.send('GET /interim/early-hints HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n');
  const { conn } = await arrived;
  toFinish.delete('/early-hints');
  conn.sock.write(ok('the final response'));
  await c.until((x) => responses(x.text).length === 1, 'the final response');
  const [r] = responses(c.text);
  assert.equal(r.status, 200, 'the first thing the client gets is the final response');
  assert.equal(r.body, 'the final response');
  // Not /103/ alone: the random request id may hold those digits.
  assert.doesNotMatch(c.text, /HTTP\/1\.\d 103 |\r\nLink:/i);
});

// --- 5. broken chunked framing ---------------------------------------------------------------

for (const [path, what] of [['/bad-size', 'a chunk size that is not hex'], ['/no-crlf', 'no CRLF after the chunk data']]) {
  test(`${what}: the client connection closes on a body that never ends, the upstream connection is discarded`, async (t) => {
    const c = rawClient(gh.port);
    t.after(() => c.close());
    const arrived = badChunks.nextRequest();
    // A second request pipelined behind it: it must not be answered on this connection.
    c.send(get(`/bad_chunks${path}`) + get('/bad_chunks/pipelined'));
    const { conn } = await arrived;
    await c.until((x) => x.ended, 'the gateway to end the client connection');
    const end = c.text.indexOf('\r\n\r\n');
    assert.match(c.text, /^HTTP\/1.1 200 /);
    assert.match(c.text.slice(0, end), /\r\ntransfer-encoding: chunked(\r\n|$)/i);
    const decoded = dechunk(c.text.slice(end + 4));
    assert.equal(decoded.complete, false, 'no last chunk: the client knows the body is cut');
    assert.equal(decoded.payload, 'hello', 'nothing from the broken framing on is relayed');
    assert.equal(c.text.match(/HTTP\/1.1/g).length, 1, 'the pipelined request is not answered');
    await within(conn.closed, 2000, 'the gateway to close the upstream connection');
    // The next request goes on a new upstream connection.
    const next = badChunks.nextRequest();
    const c2 = rawClient(gh.port);
    t.after(() => c2.close());
    c2.send(get('/bad_chunks/after'));
    assert.notEqual((await next).conn.id, conn.id);
    await c2.until((x) => responses(x.text).length === 1, 'the next response');
    assert.equal(responses(c2.text)[0].body, 'fine /after');
  });
}

// Here the gateway finds the broken framing in the same read as the body's first bytes, so the
// reset follows them at once; curl reads them and then the reset (Node's client, on a hang-up
// right after data, reports an end: libuv takes EPOLLHUP for EOF without reading again).
test('broken chunked framing de-chunked for an HTTP/1.0 client: the client connection is reset, not closed as if complete', async () => {
  const r = await curl(['--http1.0', gh.url('/bad_chunks/no-crlf')]);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.equal(r.body, 'hello');
  assert.equal(r.code, 56, `curl: ${r.stderr}`);  // CURLE_RECV_ERROR; a close would be 0
  assert.match(r.stderr, /reset by peer/i);
});
