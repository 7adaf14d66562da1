// Load balancing end to end: least_request steers around a slow target; consistent hashing on a
// cookie and on the client address; X-Forwarded-For extended only for trusted proxies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatehouse, curl, curlHeaderOfEach, json } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let fast, slow, c1, c2, c3;
let gh;
before(async () => {
  fast = await startUpstream({ name: 'fast' });
  slow = await startUpstream({ name: 'slow', echoDelayMs: 300 });
  [c1, c2, c3] = await Promise.all(['c1', 'c2', 'c3'].map((name) => startUpstream({ name })));
  const t = (u) => `{ address: 127.0.0.1:${u.port} }`;
  gh = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  trusted_proxies: [ 127.0.0.0/8 ]
upstreams:
  lr: { targets: [ ${t(fast)}, ${t(slow)} ], balance: least_request }
  by-cookie: { targets: [ ${t(c1)}, ${t(c2)}, ${t(c3)} ], balance: consistent_hash, hash_on: "cookie:session" }
  by-ip: { targets: [ ${t(c1)}, ${t(c2)}, ${t(c3)} ], balance: consistent_hash, hash_on: ip }
routes:
  - { match: { path: /lr/* }, rewrite: { strip_prefix: /lr }, to: lr }
  - { match: { path: /cookie/* }, to: by-cookie }
  - { match: { path: /ip/* }, to: by-ip }
`);
});
after(async () => { await gh.stop(); for (const u of [fast, slow, c1, c2, c3]) await u.close(); });

test('least_request sends most of a concurrent load to the target that answers quickly', async () => {
  // 8 clients x 10 sequential requests: the slow target holds its requests for 300 ms, so with
  // power-of-two choices over two targets nearly every pick sees it busier.
  const clients = Array.from({ length: 8 }, () =>
    curlHeaderOfEach(Array.from({ length: 10 }, () => gh.url('/lr/echo')), 'x-upstream'));
  const names = (await Promise.all(clients)).flat();
  const slowCount = names.filter((n) => n === 'slow').length;
  assert.equal(names.length, 80);
  assert.ok(slowCount > 0 && slowCount <= 20, `slow got ${slowCount} of 80`);
});

test('consistent hash on a cookie: one session, one target; sessions spread', async () => {
  const targets = new Map();
  for (let s = 0; s < 20; s++) {
    const got = await curlHeaderOfEach(Array.from({ length: 3 }, () => gh.url('/cookie/echo')), 'x-upstream',
      ['-H', `Cookie: theme=dark; session=s-${s}; lang=en`]);
    assert.equal(new Set(got).size, 1, `session s-${s} went to ${got}`);
    targets.set(s, got[0]);
  }
  assert.ok(new Set(targets.values()).size >= 2);
});

test('consistent hash on the client address: the same client always lands on the same target', async () => {
  const got = await curlHeaderOfEach(Array.from({ length: 12 }, () => gh.url('/ip/echo')), 'x-upstream');
  assert.equal(new Set(got).size, 1);
});

test('X-Forwarded-For from a trusted proxy is extended, its proto and host kept', async () => {
  const r = await curl(['-H', 'X-Forwarded-For: 203.0.113.7, 10.1.1.1', '-H', 'X-Forwarded-Proto: https',
    '-H', 'X-Forwarded-Host: shop.example', gh.url('/cookie/echo')]);
  const h = json(r).headers;
  const get = (k) => h[h.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === k) + 1];
  assert.equal(get('x-forwarded-for'), '203.0.113.7, 10.1.1.1, 127.0.0.1');
  assert.equal(get('x-forwarded-proto'), 'https');
  assert.equal(get('x-forwarded-host'), 'shop.example');
});
