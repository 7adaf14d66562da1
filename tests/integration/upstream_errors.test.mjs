// Upstream failures become clear JSON errors (502, 504) with the request id, never a hung client,
// and never corrupt the client's keep-alive connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { startGatehouse, curl, json, raw, rawConnection, waitFor, freePort, startBlackhole, tempFile } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

// An upstream that closes its side of each connection (FIN) `idleMs` after its last answer, as a
// keep-alive timeout does, but goes on reading: a request the gateway sends on a connection it has
// closed still arrives, and is counted as `late` (the connection is then dropped, and the gateway
// sends the request again on a new one, so the client cannot tell). A pool that detects the closed
// connection before using it sends no request late.
function startHalfClosingUpstream(idleMs) {
  const state = { connections: 0, requests: 0, late: 0, halfClosed: 0 };
  const sockets = new Set();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    state.connections++;
    sockets.add(sock);
    let buf = '';
    let closed = false;
    let timer = null;
    sock.on('error', () => {});
    sock.on('end', () => sock.destroy());
    sock.on('close', () => { clearTimeout(timer); sockets.delete(sock); });
    sock.on('data', (d) => {
      if (closed) {
        state.late++;
        sock.destroy();
        return;
      }
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const url = buf.slice(0, end).split(' ')[1];
        buf = buf.slice(end + 4);
        state.requests++;
        const body = JSON.stringify({ url });
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
      clearTimeout(timer);
      timer = setTimeout(() => { closed = true; state.halfClosed++; sock.end(); }, idleMs);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    state,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  })));
}

let up;
let shortKeepAlive;
let blackhole;
let deadPort;
let gh;
before(async () => {
  up = await startUpstream({ name: 'echo' });
  shortKeepAlive = await startHalfClosingUpstream(200);
  blackhole = await startBlackhole();
  deadPort = await freePort();
  gh = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  echo:
    targets: [ { address: 127.0.0.1:${up.port} } ]
    timeouts: { connect: 300ms, response: 500ms }
  dead:
    targets: [ { address: 127.0.0.1:${deadPort} } ]
  blackhole:
    targets: [ { address: 127.0.0.1:${blackhole.port} } ]
    timeouts: { connect: 400ms }
  short:
    targets: [ { address: 127.0.0.1:${shortKeepAlive.port} } ]
routes:
  - { name: echo, match: { path: /* }, to: echo }
  - { name: dead, match: { path: /dead/* }, to: dead }
  - { name: blackhole, match: { path: /blackhole/* }, to: blackhole }
  - { name: short, match: { path: /short/* }, rewrite: { strip_prefix: /short }, to: short }
`);
});
after(async () => { await gh.stop(); await up.close(); await shortKeepAlive.close(); blackhole.close(); });

test('connection refused -> 502 upstream_connect_failed with the request id', async () => {
  const r = await curl(['-H', 'X-Request-Id: req-502', gh.url('/dead/x')]);
  assert.equal(r.status, 502);
  const body = json(r);
  assert.equal(body.error, 'upstream_connect_failed');
  assert.equal(body.request_id, 'req-502');
  assert.match(body.message, /dead/);
  assert.equal(r.headers['x-request-id'][0], 'req-502');
});

test('connect timeout -> 504 upstream_connect_timeout within the budget', async () => {
  const t0 = Date.now();
  const r = await curl([gh.url('/blackhole/x')]);
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 504);
  assert.equal(json(r).error, 'upstream_connect_timeout');
  assert.ok(elapsed >= 350 && elapsed < 2000, `answered after ${elapsed} ms`);
});

test('response timeout -> 504 upstream_timeout, and the client connection stays usable', async () => {
  const c = await rawConnection(gh.port);
  const t0 = Date.now();
  c.send('GET /delay/3000 HTTP/1.1\r\nHost: t\r\n\r\n');
  const r = await c.readResponse();
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.body).error, 'upstream_timeout');
  assert.match(JSON.parse(r.body).message, /echo did not answer within 500ms/);
  assert.ok(elapsed >= 450 && elapsed < 2000, `answered after ${elapsed} ms`);
  c.send('GET /echo/after HTTP/1.1\r\nHost: t\r\n\r\n');
  const next = await c.readResponse();
  assert.equal(next.status, 200);
  assert.equal(JSON.parse(next.body).url, '/echo/after');
  c.close();
});

for (const [path, code] of [['/garbage', 'upstream_bad_response'], ['/close-early', 'upstream_bad_response'],
  ['/reset', 'upstream_reset']]) {
  test(`${path}: 502 ${code}, and the next request on the same client connection is fine`, async () => {
    const c = await rawConnection(gh.port);
    c.send(`GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`);
    const r = await c.readResponse();
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error, code);
    c.send('GET /echo/next HTTP/1.1\r\nHost: t\r\n\r\n');
    const next = await c.readResponse();
    assert.equal(next.status, 200);
    assert.equal(JSON.parse(next.body).url, '/echo/next');
    c.close();
  });
}

test('a reset in the middle of the body closes the client connection (no silent truncation)', async () => {
  const r = await raw(gh.port, 'GET /reset-mid-body HTTP/1.1\r\nHost: t\r\n\r\n', { timeout: 3000 });
  assert.ok(r.closed, 'the client sees the connection close');
  assert.match(r.text, /^HTTP\/1.1 200 /);
  assert.ok(r.text.length < 100000, 'the body is short of its Content-Length');
});

test('upstream error statuses pass through unchanged', async () => {
  const r = await curl([gh.url('/status/503')]);
  assert.equal(r.status, 503);
  assert.equal(json(r).upstream, 'echo');
});

test('an upstream connection closed while idle in the pool is detected, not used', async () => {
  const { state } = shortKeepAlive;
  const first = await curl([gh.url('/short/echo/0')]);
  assert.equal(first.status, 200);
  for (let i = 1; i <= 5; i++) {
    // The upstream has closed the pooled connection (200 ms after its answer).
    await waitFor(() => state.halfClosed === i, 3000, `the upstream closing connection ${i}`);
    const r = await curl([gh.url(`/short/echo/${i}`)]);
    assert.equal(r.status, 200, `request ${i} after the upstream closed the pooled connection`);
    assert.equal(json(r).url, `/echo/${i}`);
  }
  // Each request on a new connection, sent once: none was sent on a closed one and resent.
  assert.deepEqual({ connections: state.connections, requests: state.requests, late: state.late },
    { connections: 6, requests: 6, late: 0 });
});

test('no hung client: every failure mode answers within its deadline', async () => {
  const t0 = Date.now();
  const results = await Promise.all(['/garbage', '/reset', '/dead/x', '/blackhole/x', '/delay/5000', '/close-early']
    .map((p) => curl([gh.url(p)])));
  assert.ok(Date.now() - t0 < 3000);
  assert.deepEqual(results.map((r) => r.status), [502, 502, 502, 504, 504, 502]);
});

// An upstream that answers the first request on each connection, keep-alive, and closes the
// connection without answering when a second one arrives on it: the race of a pooled connection
// the upstream closes just as the gateway sends on it, on demand.
function startOneShotUpstream() {
  const state = { answered: 0, dropped: 0 };
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let served = 0;
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(buf.subarray(0, end).toString('latin1').match(/\r\ncontent-length: *(\d+)/i)?.[1] || 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.subarray(end + 4, end + 4 + length);
        buf = buf.subarray(end + 4 + length);
        if (served++ > 0) {
          state.dropped++;
          sock.destroy();
          return;
        }
        state.answered++;
        const out = JSON.stringify({ bytes: length, sha256: crypto.createHash('sha256').update(body).digest('hex') });
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${out.length}\r\n\r\n${out}`);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, state, close: () => new Promise((r) => server.close(() => r())),
  })));
}

test('a pooled connection closed as the request is sent: an idempotent request goes again at once, body included', async () => {
  const one = await startOneShotUpstream();
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  oneshot: { targets: [ { address: 127.0.0.1:${one.port} } ] }
routes:
  - { match: { path: /* }, to: oneshot }
`);
  const send = (method, data, headers = []) => curl(['-X', method, ...headers,
    ...(data ? ['--data-binary', `@${tempFile('body', data)}`] : []), g.url('/x')]);
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  try {
    assert.equal((await send('GET')).status, 200);  // leaves one pooled connection
    // GET, and a PUT with a 30 KB body: each meets the dying pooled connection, then goes again.
    assert.equal((await send('GET')).status, 200);
    const body = crypto.randomBytes(30000);
    const put = await send('PUT', body);
    assert.equal(put.status, 200, put.body);
    assert.deepEqual(json(put), { bytes: 30000, sha256: sha(body) });
    assert.deepEqual([one.state.answered, one.state.dropped], [3, 2]);

    // A POST is not sent twice: the client gets the 502.
    const post = await send('POST', crypto.randomBytes(100));
    assert.equal(post.status, 502);
    assert.equal(json(post).error, 'upstream_reset');
    // Nor is a PUT whose body is over what is kept for replay (64KiB without a retry policy).
    assert.equal((await send('GET')).status, 200);
    const big = await send('PUT', crypto.randomBytes(100000));
    assert.equal(big.status, 502);
    assert.deepEqual([one.state.answered, one.state.dropped], [4, 4]);
  } finally {
    await g.stop();
    await one.close();
  }
});
