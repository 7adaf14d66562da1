// The proxy path's features over HTTP/2 from clients, each once (they are tested in depth over
// HTTP/1.1 elsewhere; here they must hold for a stream as for a connection): retries, a circuit
// breaker that opens, a bulkhead that refuses, a route timeout, CORS (preflight and response
// fields), the request id both ways, and the protocol in the access log and the metrics. The
// client is Node's http2 module with prior knowledge (h2c).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { startGatehouse, freePort, waitFor } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let gh, admin, up, flaky, held, slow;
before(async () => {
  up = await startUpstream({ name: 'u' });
  flaky = await startUpstream({ name: 'flaky' });
  held = await startUpstream({ name: 'held' });
  slow = await startUpstream({ name: 'slow' });
  admin = await freePort();
  const port = await freePort();
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:${port}, protocols: [h2c] } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
  retried:
    targets: [ { address: 127.0.0.1:${flaky.port} } ]
    retry: { attempts: 2, backoff: 1ms, on: [503] }
  broken:
    targets: [ { address: 127.0.0.1:${flaky.port} } ]
    circuit_breaker: { failure_rate: 50%, min_requests: 2, window: 10s, open_for: 30s }
  narrow:
    targets: [ { address: 127.0.0.1:${held.port} } ]
    max_concurrent_requests: 1
  slow: { targets: [ { address: 127.0.0.1:${slow.port} } ] }
routes:
  - { name: retried, match: { path: /retried/* }, to: retried }
  - { name: broken, match: { path: /broken/* }, to: broken }
  - { name: narrow, match: { path: /narrow/* }, to: narrow, rewrite: { strip_prefix: /narrow } }
  - { name: slow, match: { path: /slow/* }, to: slow, rewrite: { strip_prefix: /slow }, timeout: 200ms }
  - { name: slower, match: { path: /slower/* }, to: slow, rewrite: { strip_prefix: /slower }, timeout: 1500ms }
  - name: cors
    match: { path: /cors/* }
    to: u
    plugins:
      cors: { origins: ["https://app.example.com"], methods: [GET, POST], expose_headers: [x-upstream] }
`);
});
after(async () => {
  await gh?.stop();
  for (const u of [up, flaky, held, slow]) await u?.close();
});

// One request on its own HTTP/2 connection: { status, headers, body }.
function h2(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${gh.port}`);
    session.on('error', reject);
    const req = session.request({ ':path': path, ...headers });
    let body = '';
    let head;
    req.setEncoding('utf8');
    req.on('response', (h) => { head = h; });
    req.on('data', (d) => { body += d; });
    req.on('end', () => { session.close(); resolve({ status: head[':status'], headers: head, body }); });
    req.on('error', reject);
    req.end();
  });
}
const metrics = async () => (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();

test('retries: a 503 is tried again and the client gets the 200', async () => {
  flaky.failNext(1, 503);
  const before = flaky.state.requests;
  const r = await h2('/retried/echo');
  assert.equal(r.status, 200);
  assert.equal(flaky.state.requests - before, 2, 'one failure, one retry');
});

test('a circuit breaker opens after failures: 503 upstream_unavailable without reaching the target', async () => {
  flaky.failNext(2, 503);
  assert.equal((await h2('/broken/echo')).status, 503);
  assert.equal((await h2('/broken/echo')).status, 503);
  const before = flaky.state.requests;
  const r = await h2('/broken/echo');
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.body).error, 'upstream_unavailable');
  assert.equal(flaky.state.requests, before, 'the open breaker kept the request from the target');
});

test('a bulkhead: a second request while one is in flight gets 503 upstream_overloaded', async () => {
  const first = h2('/narrow/hold');
  await waitFor(() => held.state.held === 1, 3000, 'the first request held');
  const second = await h2('/narrow/echo');
  assert.equal(second.status, 503);
  assert.equal(JSON.parse(second.body).error, 'upstream_overloaded');
  held.release();
  assert.equal((await first).status, 200);
});

test('a route timeout: 504, the stream answered, not left open', async () => {
  const r = await h2('/slow/hang');
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.body).error, 'upstream_timeout');
});

// The connection's one timer keeps every stream's deadline: one set after a later one, on the
// same connection, still comes first, and a stream between them is served at once.
test('streams on one connection keep their own deadlines: the earlier 504 first, the other served', async () => {
  const session = http2.connect(`http://127.0.0.1:${gh.port}`);
  try {
    const started = Date.now();
    const ask = (path) => new Promise((resolve, reject) => {
      const req = session.request({ ':path': path });
      let status;
      req.on('response', (h) => { status = h[':status']; });
      req.on('data', () => {});
      req.on('end', () => resolve({ status, at: Date.now() - started }));
      req.on('error', reject);
      req.end();
    });
    const longer = ask('/slower/hang');   // 1500 ms
    const shorter = ask('/slow/hang');    // 200 ms, set after the 1500 ms one
    const served = await ask('/cors/x');
    assert.equal(served.status, 200);
    const [a, b] = await Promise.all([longer, shorter]);
    assert.equal(a.status, 504);
    assert.equal(b.status, 504);
    assert.ok(b.at < 1200, `the 200 ms deadline was kept (answered at ${b.at} ms)`);
    assert.ok(a.at >= 1400, `the 1500 ms deadline was not cut short (answered at ${a.at} ms)`);
  } finally {
    session.close();
  }
});

test('CORS: a preflight answered by the gateway, the response fields on the actual request', async () => {
  const pre = await h2('/cors/echo', { ':method': 'OPTIONS', origin: 'https://app.example.com',
    'access-control-request-method': 'POST' });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.match(pre.headers['access-control-allow-methods'], /POST/);
  const r = await h2('/cors/echo', { origin: 'https://app.example.com' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(r.headers['access-control-expose-headers'], 'x-upstream');
  const other = await h2('/cors/echo', { origin: 'https://evil.example' });
  assert.equal(other.headers['access-control-allow-origin'], undefined);
});

test('the request id: the client\'s goes upstream and comes back; the access log and metrics say HTTP/2', async () => {
  const r = await h2('/cors/echo', { 'x-request-id': 'h2-request-0001' });
  assert.equal(r.headers['x-request-id'], 'h2-request-0001');
  const seen = JSON.parse(r.body);
  const sent = Object.fromEntries(seen.headers.reduce((a, v, i, all) => (i % 2 ? a : [...a, [v.toLowerCase(), all[i + 1]]]), []));
  assert.equal(sent['x-request-id'], 'h2-request-0001');
  const line = await waitFor(() => gh.accessLog().find((l) => l.request_id === 'h2-request-0001'), 3000, 'the log line');
  assert.equal(line.protocol, 'HTTP/2');
  assert.match(await metrics(), /gatehouse_downstream_requests_total\{protocol="HTTP\/2"\} [1-9]/);
});
