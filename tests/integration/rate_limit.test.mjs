// Local rate limits: exact across workers, keyed by ip / consumer / header, several limits at
// once, IETF RateLimit headers on every response, 429 with Retry-After, counts kept over a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { startGatehouse, waitFor, freePort, curl, httpGet } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');
let up, gh, adminPort;
before(async () => {
  up = await startUpstream({ name: 'u' });
  adminPort = await freePort();
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${adminPort} }
consumers:
  - { name: alpha, api_keys: [ { sha256: ${sha('key-alpha')} } ] }
  - { name: beta, api_keys: [ { sha256: ${sha('key-beta')} } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: ip, match: { path: /ip/* }, to: u, plugins: { rate_limit: { limits: [ { rate: "1/m", burst: 10 } ], key: ip } } }
  - { name: refill, match: { path: /refill/* }, to: u, plugins: { rate_limit: { limits: [ { rate: "1/s", burst: 2 } ], key: ip } } }
  - { match: { path: /consumer/* }, to: u, plugins: { key_auth: {}, rate_limit: { limits: ["5/m"], key: consumer } } }
  - { match: { path: /header/* }, to: u, plugins: { rate_limit: { limits: ["2/m"], key: "header:x-tenant" } } }
  - { match: { path: /two/* }, to: u, plugins: { rate_limit: { limits: ["3/s", "5/m"], key: ip } } }
  - { match: { path: /reload/* }, to: u, plugins: { rate_limit: { limits: ["2/h"], key: route } } }
  - { match: { path: /open/* }, to: u }
`);
});
after(async () => {
  await gh?.stop();
  await up?.close();
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
const get = (path, headers = {}) => httpGet(gh.port, path, { headers, agent });

test('a burst of 10 over 2 workers and 20 connections: exactly 10 of 200 pass', async () => {
  // 1/m with a burst of 10: the burst needs no refill to be exact, and the first refill comes a
  // minute later, so exactly 10 pass however slowly the machine runs the 200.
  const all = await Promise.all(Array.from({ length: 200 }, () => get('/ip/x')));
  const passed = all.filter((r) => r.status === 200).length;
  assert.equal(passed, 10);
  assert.equal(all.filter((r) => r.status === 429).length, 190);
  const ok = all.filter((r) => r.status === 200);
  const remaining = ok.map((r) => Number(/r=(\d+)/.exec(r.headers.ratelimit)[1])).sort((a, b) => a - b);
  assert.deepEqual(remaining, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each allowed response says how many are left');
  for (const r of all) assert.equal(r.headers['ratelimit-policy'], '"1/m";q=1;w=60');
  const limited = all.find((r) => r.status === 429);
  assert.equal(limited.headers['retry-after'], '60');
  assert.equal(limited.headers.ratelimit, '"1/m";r=0;t=600', 'the bucket is full again in 10 minutes');
  assert.equal(JSON.parse(limited.body).error, 'rate_limited');
  assert.ok(JSON.parse(limited.body).request_id);
});

test('the bucket refills one request at a time', async () => {
  // 1/s with a burst of 2: two pass at once, then one a second. A refused request counts against
  // nothing, so asking until one passes waits for the refill itself.
  const seq = [];
  for (let i = 0; i < 3; i++) seq.push(await get('/refill/x'));
  assert.deepEqual(seq.map((r) => r.status), [200, 200, 429]);
  assert.equal(seq[2].headers['retry-after'], '1');
  await waitFor(async () => (await get('/refill/x')).status === 200, 5000, 'a refill');
  assert.equal((await get('/refill/x')).status, 429, 'one request, not the burst');
});

test('keyed by consumer: each consumer has its own budget', async () => {
  const a = [];
  for (let i = 0; i < 6; i++) a.push((await get('/consumer/x', { 'x-api-key': 'key-alpha' })).status);
  assert.deepEqual(a, [200, 200, 200, 200, 200, 429]);
  assert.equal((await get('/consumer/x', { 'x-api-key': 'key-beta' })).status, 200);
  const r = await get('/consumer/x', { 'x-api-key': 'key-alpha' });
  assert.ok(Number(r.headers['retry-after']) >= 10, `a 5/m limit: retry in about 12 s, got ${r.headers['retry-after']}`);
});

test('keyed by a header; requests without it share their client address', async () => {
  const t = (v) => (v ? { 'x-tenant': v } : {});
  const seq = [];
  for (const tenant of ['a', 'a', 'a', 'b', 'b', 'b', '', '', '']) seq.push((await get('/header/x', t(tenant))).status);
  assert.deepEqual(seq, [200, 200, 429, 200, 200, 429, 200, 200, 429]);
  // A long value (kept as its digest) is still one key of its own.
  const long = [];
  for (let i = 0; i < 3; i++) long.push((await get('/header/x', t('z'.repeat(5000)))).status);
  assert.deepEqual(long, [200, 200, 429]);
});

test('several limits at once: the tightest decides, and a refused request counts against none', async () => {
  const seq = [];
  for (let i = 0; i < 4; i++) seq.push(await get('/two/x'));
  assert.deepEqual(seq.map((r) => r.status), [200, 200, 200, 429]);
  assert.equal(seq[3].headers['retry-after'], '1', 'refused by the per-second limit');
  // The per-second limit takes one more request every 333 ms. Asking until it does waits for the
  // refill itself; every request it refuses meanwhile must count against neither limit, or the
  // minute limit would refuse r2.
  const admitted = () => waitFor(async () => {
    const r = await get('/two/x');
    if (r.status !== 429) return r;
    assert.equal(r.headers['retry-after'], '1', 'refused by the per-second limit only');
    return null;
  }, 5000, 'the per-second limit to admit a request again');
  const r1 = await admitted();
  const r2 = await admitted();
  assert.equal(r1.status, 200);
  assert.equal(r2.status, 200);
  assert.match(r2.headers.ratelimit, /"3\/s";r=\d+;t=\d+, "5\/m";r=0;t=\d+/);
  const r3 = await get('/two/x');
  assert.equal(r3.status, 429, 'the minute limit is used up');
  assert.ok(Number(r3.headers['retry-after']) > 5);
});

test('routes without rate_limit carry no RateLimit headers', async () => {
  const r = await get('/open/x');
  assert.equal(r.status, 200);
  assert.equal(r.headers.ratelimit, undefined);
  assert.equal(r.headers['ratelimit-policy'], undefined);
});

test('a reload keeps the counts', async () => {
  assert.equal((await get('/reload/x')).status, 200);
  assert.equal((await get('/reload/x')).status, 200);
  assert.equal((await get('/reload/x')).status, 429);
  const before = (gh.stderr.match(/reloaded/g) || []).length;
  fs.appendFileSync(gh.file, '# touched\n');
  gh.proc.kill('SIGHUP');
  await waitFor(() => (gh.stderr.match(/reloaded/g) || []).length > before, 5000, 'the reload');
  assert.equal((await get('/reload/x')).status, 429, 'not a fresh budget');
});

test('metrics: decisions by route and result', async () => {
  const m = (await curl([`http://127.0.0.1:${adminPort}/metrics`])).body;
  const value = (result) => Number((m.match(new RegExp(`gatehouse_rate_limit_decisions_total\\{route="ip",result="${result}"\\} (\\d+)`)) || [])[1]);
  assert.equal(value('allowed'), 10, m.split('\n').filter((l) => l.includes('rate_limit')).join('\n'));
  assert.equal(value('limited'), 190);
});
