// The response cache as an operator sees it: POST /cache/purge (by URL, prefix and tag, behind
// the admin token), its metrics and access log field, and a store that stays within max_size
// whatever volume passes through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGatehouse, curl, freePort, httpGet, waitFor } from './harness.mjs';

const TOKEN = 'purge-token';
let origin, gh, adminPort;
const count = new Map();  // path -> origin requests
const hits = (p) => count.get(p) || 0;

before(async () => {
  origin = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    count.set(url.pathname, hits(url.pathname) + 1);
    const size = Number(url.searchParams.get('size') || 0);
    const body = size ? 'b'.repeat(size) : `body of ${url.pathname}`;
    const headers = { 'content-length': body.length, 'cache-control': 'max-age=600' };
    const tag = url.searchParams.get('tag');
    if (tag) headers['surrogate-key'] = tag;
    res.writeHead(200, headers);
    res.end(body);
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  adminPort = await freePort();
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
admin:
  listen: 127.0.0.1:${adminPort}
  token_env: PURGE_TOKEN
cache: { max_size: 1MiB, max_object_size: 64KiB }
upstreams:
  o: { targets: [ { address: 127.0.0.1:${origin.address().port} } ] }
routes:
  - { name: products, match: { path: /products/* }, to: o, plugins: { cache: { tag_header: Surrogate-Key } } }
  - { name: other, match: { path: /* }, to: o, plugins: { cache: {} } }
`, { env: { PURGE_TOKEN: TOKEN } });
});
after(async () => {
  await gh?.stop();
  origin?.close();
});

const admin = (p) => `http://127.0.0.1:${adminPort}${p}`;
const purge = (body, token = TOKEN) => curl(['-X', 'POST', '-H', `Authorization: Bearer ${token}`,
  '-H', 'Content-Type: application/json', '--data-binary', body, admin('/cache/purge')]);
const status = async (p, host) => {
  const r = await curl([gh.url(p), ...(host ? ['-H', `Host: ${host}`] : [])]);
  return r.headers['cache-status'][0];
};
const stored = async (p, host) => { await status(p, host); assert.match(await status(p, host), /hit/, p); };

test('purge by exact URL drops that URL only (all its variants), and says how many went', async () => {
  await stored('/products/1', 'shop.example');
  await stored('/products/1?page=2', 'shop.example');
  const r = await purge(JSON.stringify({ url: 'http://SHOP.example/products/1' }));
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { purged: 1 });
  assert.match(await status('/products/1', 'shop.example'), /fwd=uri-miss/);
  assert.match(await status('/products/1?page=2', 'shop.example'), /hit/);
});

test('purge by prefix: a URL prefix, or a path prefix for every host', async () => {
  await stored('/products/a', 'one.example');
  await stored('/products/b', 'two.example');
  await stored('/other/c', 'one.example');
  let r = await purge(JSON.stringify({ prefix: 'http://one.example/products/' }));
  assert.deepEqual(JSON.parse(r.body), { purged: 1 });
  assert.match(await status('/products/b', 'two.example'), /hit/);
  await stored('/products/a', 'one.example');
  r = await purge(JSON.stringify({ prefix: '/products/' }));
  assert.ok(JSON.parse(r.body).purged >= 2);
  assert.match(await status('/products/a', 'one.example'), /fwd=uri-miss/);
  assert.match(await status('/products/b', 'two.example'), /fwd=uri-miss/);
  assert.match(await status('/other/c', 'one.example'), /hit/, 'outside the prefix: kept');
});

test('purge by tag, from the route\'s tag header (space- or comma-separated)', async () => {
  await stored('/products/t1?tag=sale%20shoes');
  await stored('/products/t2?tag=shoes,hats');
  await stored('/products/t3?tag=hats');
  const r = await purge(JSON.stringify({ tag: 'shoes' }));
  assert.deepEqual(JSON.parse(r.body), { purged: 2 });
  assert.match(await status('/products/t1?tag=sale%20shoes'), /fwd=uri-miss/);
  assert.match(await status('/products/t2?tag=shoes,hats'), /fwd=uri-miss/);
  assert.match(await status('/products/t3?tag=hats'), /hit/);
});

test('purge needs the admin token, POST, and a well-formed body', async () => {
  assert.equal((await purge('{"url":"http://x/"}', 'wrong')).status, 401);
  const get = await curl(['-H', `Authorization: Bearer ${TOKEN}`, admin('/cache/purge')]);
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow[0], 'POST');
  for (const [body, what] of [
    ['not json', /expected a JSON object/],
    ['{}', /expected a JSON object/],
    ['{"url":"/relative"}', /absolute/],
    ['{"tag":""}', /non-empty/],
    ['{"url":"http://a/","tag":"b"}', /one of/],
    ['{"host":"x"}', /unknown key 'host'/],
  ]) {
    const r = await purge(body);
    assert.equal(r.status, 400, body);
    assert.equal(JSON.parse(r.body).error, 'bad_request');
    assert.match(JSON.parse(r.body).message, what, body);
  }
  const huge = await purge(JSON.stringify({ tag: 'x'.repeat(70 * 1024) }));
  assert.equal(huge.status, 413);
});

test('metrics: requests by what the cache did, stores, and the store\'s size', async () => {
  const p = '/metrics-probe';
  await curl([gh.url(p)]);
  await curl([gh.url(p)]);
  const m = (await curl(['-H', `Authorization: Bearer ${TOKEN}`, admin('/metrics')])).body;
  const value = (re) => Number((m.match(re) || [])[1]);
  assert.ok(value(/^gatehouse_cache_requests_total\{route="other",result="hit"\} (\d+)$/m) >= 1);
  assert.ok(value(/^gatehouse_cache_requests_total\{route="other",result="miss"\} (\d+)$/m) >= 1);
  assert.ok(value(/^gatehouse_cache_stores_total\{route="other"\} (\d+)$/m) >= 1);
  assert.ok(value(/^gatehouse_cache_stored_entries (\d+)$/m) >= 1);
  assert.ok(value(/^gatehouse_cache_stored_bytes (\d+)$/m) > 0);
  assert.match(m, /^# TYPE gatehouse_cache_evictions_total counter$/m);
});

test('the access log says what the cache did', async () => {
  const p = '/logged';
  await curl([gh.url(p)]);
  await curl([gh.url(p)]);
  const lines = await waitFor(() => {
    const l = gh.accessLog().filter((r) => r.path === p);
    return l.length === 2 && l;
  });
  assert.deepEqual(lines.map((l) => l.cache), ['miss', 'hit']);
  assert.equal(lines[1].error, undefined, 'a hit is an answer, not an error');
});

test('the store stays within max_size with ten times that volume of distinct objects', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const size = 32 * 1024;
  const n = 320;  // 10 MiB through a 1 MiB store
  for (let i = 0; i < n; i += 8) {
    await Promise.all(Array.from({ length: 8 }, (_, j) => httpGet(gh.port, `/fill/${i + j}?size=${size}`, { agent })));
  }
  agent.destroy();
  const m = (await curl(['-H', `Authorization: Bearer ${TOKEN}`, admin('/metrics')])).body;
  const bytes = Number(m.match(/^gatehouse_cache_stored_bytes (\d+)$/m)[1]);
  const evictions = Number(m.match(/^gatehouse_cache_evictions_total (\d+)$/m)[1]);
  assert.ok(bytes <= 1024 * 1024, `${bytes} bytes stored`);
  assert.ok(bytes > 512 * 1024, `the store is used: ${bytes} bytes`);
  assert.ok(evictions >= n - 32, `${evictions} evictions`);
});
