// The cache's shared tier: two gateway instances in front of one real redis-server share what
// either stored; invalidation and purges reach Redis and, through its purge stream, the other
// instance's memory; Redis going away leaves each instance with its memory tier, never an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGatehouse, curl, freePort, waitFor } from './harness.mjs';
import { requireRedis, spawnRedis, cli, sharedCacheConfig } from './redis_fixture.mjs';

let origin, redis, redisPort, a, b, adminPort;
const count = new Map();
const hits = (p) => count.get(p) || 0;

before(async () => {
  requireRedis();
  origin = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    count.set(url.pathname, hits(url.pathname) + 1);
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') { res.writeHead(204); res.end(); return; }
      const headers = { 'cache-control': 'max-age=600', etag: '"e"' };
      if (url.pathname.startsWith('/vary/')) headers.vary = 'Accept-Language';
      if (url.searchParams.get('tag')) headers['surrogate-key'] = url.searchParams.get('tag');
      const body = `${url.pathname} for ${req.headers['accept-language'] || 'anyone'}`;
      res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  redisPort = await freePort();
  redis = spawnRedis(['--port', String(redisPort), '--bind', '127.0.0.1']);
  await waitFor(() => { try { return cli(redisPort, 'PING') === 'PONG'; } catch { return false; } }, 5000, 'redis');
  adminPort = await freePort();
  const config = (admin) => sharedCacheConfig({
    redis: `{ url: "redis://127.0.0.1:${redisPort}", timeout: 200ms }`,
    cache: '{ max_size: 8MiB, max_object_size: 256KiB, shared_max_object_size: 64KiB }',
    originPort: origin.address().port,
    adminPort: admin && adminPort,
  });
  a = await startGatehouse(config(true));
  b = await startGatehouse(config(false));
});
after(async () => {
  await a?.stop();
  await b?.stop();
  redis?.kill();
  origin?.close();
});

const on = (gh, p, headers = []) => curl([gh.url(p), '-H', 'Host: shop.example', ...headers.flatMap((h) => ['-H', h])]);
const status = (r) => r.headers['cache-status'][0];
// Stores are sent to Redis after the response: wait until the entry is there.
const inRedis = (p) => waitFor(() => cli(redisPort, 'EXISTS', `gh:c:http://shop.example${p}`) === '1', 3000, `${p} in Redis`);

test('a response one instance stored is a hit on the other, from Redis', async () => {
  const first = await on(a, '/shared/1');
  assert.match(status(first), /fwd=uri-miss; fwd-status=200; ttl=\d+; stored/);
  await inRedis('/shared/1');
  const r = await on(b, '/shared/1');
  assert.equal(r.status, 200);
  assert.equal(r.body, '/shared/1 for anyone');
  assert.equal(r.headers.etag[0], '"e"');
  assert.match(status(r), /^gatehouse; hit; ttl=\d+; detail=redis$/);
  assert.equal(hits('/shared/1'), 1);
  // Now in b's memory too: no Redis detail.
  assert.match(status(await on(b, '/shared/1')), /^gatehouse; hit; ttl=\d+$/);
  const ttl = Number(cli(redisPort, 'TTL', 'gh:c:http://shop.example/shared/1'));
  assert.ok(ttl > 600 && ttl <= 600 + 3600, `kept ${ttl} s: fresh for 600 s, an hour more to revalidate`);
});

test('Vary variants are shared one by one', async () => {
  await on(a, '/vary/x', ['Accept-Language: en']);
  await inRedis('/vary/x');
  await waitFor(() => Number(cli(redisPort, 'HLEN', 'gh:c:http://shop.example/vary/x')) === 2, 3000, 'marker and variant');
  const en = await on(b, '/vary/x', ['Accept-Language: en']);
  assert.equal(en.body, '/vary/x for en');
  assert.match(status(en), /hit; ttl=\d+; detail=redis/);
  const fr = await on(b, '/vary/x', ['Accept-Language: fr']);
  assert.equal(fr.body, '/vary/x for fr');
  assert.match(status(fr), /fwd=vary-miss/);
  assert.equal(hits('/vary/x'), 2);
});

test('an unsafe request through one instance drops the URL from Redis', async () => {
  await on(a, '/inval/1');
  await inRedis('/inval/1');
  const post = await curl(['-X', 'POST', '-d', 'x', a.url('/inval/1'), '-H', 'Host: shop.example']);
  assert.equal(post.status, 204);
  await waitFor(() => cli(redisPort, 'EXISTS', 'gh:c:http://shop.example/inval/1') === '0', 3000, 'dropped');
  assert.match(status(await on(b, '/inval/1')), /fwd=uri-miss/);
});

test('a purge through one instance\'s admin API reaches Redis (by URL, prefix and tag)', async () => {
  const purge = (body) => curl(['-X', 'POST', '--data-binary', body, `http://127.0.0.1:${adminPort}/cache/purge`]);
  for (const p of ['/p/url', '/p/prefix/a', '/p/prefix/b', '/p/tagged']) {
    await on(a, p === '/p/tagged' ? `${p}?tag=t1` : p);
  }
  await inRedis('/p/url');
  await inRedis('/p/tagged?tag=t1');
  await waitFor(() => cli(redisPort, 'EXISTS', 'gh:ct:t1') === '1', 3000, 'tag set');
  let r = await purge('{"url":"http://shop.example/p/url"}');
  assert.deepEqual(JSON.parse(r.body), { purged: 1, shared: 1 });
  r = await purge('{"prefix":"/p/prefix/"}');
  assert.deepEqual(JSON.parse(r.body), { purged: 2, shared: 2 });
  r = await purge('{"tag":"t1"}');
  assert.deepEqual(JSON.parse(r.body), { purged: 1, shared: 1 });
  for (const p of ['/p/url', '/p/prefix/a', '/p/prefix/b', '/p/tagged?tag=t1'])
    assert.match(status(await on(b, p)), /fwd=uri-miss/, p);
});

test('what one instance purges or invalidates leaves the other\'s memory tier too', async () => {
  const purge = (body) => curl(['-X', 'POST', '--data-binary', body, `http://127.0.0.1:${adminPort}/cache/purge`]);
  const paths = ['/x/url', '/x/prefix/a', '/x/tagged?tag=t2', '/x/posted'];
  for (const p of paths) {
    await on(a, p);
    await inRedis(p);
    assert.match(status(await on(b, p)), /detail=redis/, p);
    assert.match(status(await on(b, p)), /^gatehouse; hit; ttl=\d+$/, `${p} in b's memory`);
  }
  assert.equal((await purge('{"url":"http://shop.example/x/url"}')).status, 200);
  assert.equal((await purge('{"prefix":"/x/prefix/"}')).status, 200);
  assert.equal((await purge('{"tag":"t2"}')).status, 200);
  const post = await curl(['-X', 'POST', '-d', 'x', a.url('/x/posted'), '-H', 'Host: shop.example']);
  assert.equal(post.status, 204);
  const fetched = new Map(paths.map((p) => [p, hits(p.split('?')[0])]));  // the POST counted
  // b reads a's purges from the stream and drops them from its memory (Redis no longer has them
  // either): its next request for each goes to the origin, once.
  for (const p of paths) {
    await waitFor(async () => /fwd=uri-miss/.test(status(await on(b, p))), 5000, `${p} dropped from b's memory`);
    assert.equal(hits(p.split('?')[0]), fetched.get(p) + 1, p);
    assert.match(status(await on(b, p)), /^gatehouse; hit/, `${p} stored again`);
  }
  assert.ok(Number(cli(redisPort, 'XLEN', 'gh:cp')) >= paths.length, 'the purges are in the stream');
});

test('entries above shared_max_object_size stay in memory only', async () => {
  const big = '/big';
  origin.removeAllListeners('request');
  origin.on('request', (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    count.set(path, hits(path) + 1);
    const body = 'x'.repeat(100 * 1024);
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': body.length });
    res.end(body);
  });
  await on(a, big);
  assert.match(status(await on(a, big)), /hit/);
  assert.equal(cli(redisPort, 'EXISTS', `gh:c:http://shop.example${big}`), '0');
  await on(b, big);
  assert.equal(hits(big), 2);
});

test('Redis down: each instance keeps its memory tier, and nothing fails', async () => {
  redis.kill();
  await new Promise((r) => redis.on('exit', r));
  const seen = hits('/big');
  const r = await on(a, '/big');
  assert.equal(r.status, 200);
  assert.match(status(r), /hit/);
  const miss = await on(a, '/after-redis');
  assert.equal(miss.status, 200);
  assert.match(status(miss), /fwd=uri-miss/);
  assert.match(status(await on(a, '/after-redis')), /hit/, 'stored in memory all the same');
  assert.equal(hits('/big'), seen);
});

test('an instance whose worker reads the purge stream stops at once, cleanly', async () => {
  // b's follower is waiting out a retry after Redis went away; a drain must not wait for it.
  const started = Date.now();
  assert.deepEqual(await b.stop(), { code: 0, signal: null });
  assert.ok(Date.now() - started < 2000, `stopped in ${Date.now() - started} ms`);
  b = null;
});
