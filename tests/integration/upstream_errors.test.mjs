// Upstream failures become clear JSON errors (502, 504) with the request id, never a hung client,
// and never corrupt the client's keep-alive connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatehouse, curl, json, raw, rawConnection, sleep, freePort, startBlackhole } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let up;
let shortKeepAlive;
let blackhole;
let deadPort;
let gh;
before(async () => {
  up = await startUpstream({ name: 'echo' });
  shortKeepAlive = await startUpstream({ name: 'short', keepAliveTimeout: 200 });
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
  const first = await curl([gh.url('/short/echo/1')]);
  assert.equal(first.status, 200);
  await sleep(500); // the upstream closes its idle keep-alive connection after 200 ms
  for (let i = 0; i < 5; i++) {
    const r = await curl([gh.url(`/short/echo/${i}`)]);
    assert.equal(r.status, 200, `request ${i} after the upstream closed the pooled connection`);
    await sleep(250);
  }
});

test('no hung client: every failure mode answers within its deadline', async () => {
  const t0 = Date.now();
  const results = await Promise.all(['/garbage', '/reset', '/dead/x', '/blackhole/x', '/delay/5000', '/close-early']
    .map((p) => curl([gh.url(p)])));
  assert.ok(Date.now() - t0 < 3000);
  assert.deepEqual(results.map((r) => r.status), [502, 502, 502, 504, 504, 502]);
});
