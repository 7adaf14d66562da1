// The compress plugin end to end: the coding the client prefers (gzip, br, zstd), only where it
// applies, streamed; and the cache storing the coded response as a variant. Bodies are decoded
// with Node's zlib (gzip, br) and the zstd tool.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { startGatehouse, requireTool, waitFor } from './harness.mjs';

const JSON_BODY = JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ id: i, name: `item ${i}` })));
let origin, gh;
const count = new Map();

before(async () => {
  requireTool('zstd');
  origin = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    count.set(path, (count.get(path) || 0) + 1);
    const send = (status, headers, body) => {
      res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path === '/json' || path === '/cached/json')
      return send(200, { 'content-type': 'application/json', etag: '"j1"', 'cache-control': 'max-age=60', 'accept-ranges': 'bytes' }, JSON_BODY);
    if (path === '/cached/swr') {
      // Stale after a second, then refreshed in the background: each answer says which it is.
      const n = count.get(path);
      const cc = n === 1 ? 'max-age=1, stale-while-revalidate=30' : 'max-age=60';
      return send(200, { 'content-type': 'application/json', etag: `"s${n}"`, 'cache-control': cc },
        JSON.stringify({ version: n, items: JSON.parse(JSON_BODY) }));
    }
    if (path === '/cached/reval') {
      // Stale after a second; revalidated with a 304 that says the origin's strong tag.
      if ((req.headers['if-none-match'] || '').includes('"r1"')) {
        res.writeHead(304, { etag: '"r1"', 'cache-control': 'max-age=60' });
        return res.end();
      }
      return send(200, { 'content-type': 'application/json', etag: '"r1"', 'cache-control': 'max-age=1' }, JSON_BODY);
    }
    if (path === '/small') return send(200, { 'content-type': 'application/json' }, '{"a":1}');
    if (path === '/image') return send(200, { 'content-type': 'image/png' }, JSON_BODY);
    if (path === '/no-transform') return send(200, { 'content-type': 'application/json', 'cache-control': 'no-transform' }, JSON_BODY);
    if (path === '/encoded') {
      const gz = zlib.gzipSync(JSON_BODY);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length });
      return res.end(gz);
    }
    if (path === '/partial') return send(206, { 'content-type': 'application/json', 'content-range': `bytes 0-9/${JSON_BODY.length}` }, JSON_BODY.slice(0, 10));
    if (path === '/error') return send(500, { 'content-type': 'application/json' }, JSON_BODY);
    if (path === '/stream') {
      // Chunked, in pieces a moment apart: no length known, the body coded as it comes.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const next = () => {
        if (i === 20) return res.end();
        res.write(`line ${i++} `.repeat(50));
        setTimeout(next, 5);
      };
      return next();
    }
    send(404, {}, '');
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  o: { targets: [ { address: 127.0.0.1:${origin.address().port} } ] }
routes:
  - match: { path: /cached/* }
    to: o
    plugins: { cache: {}, compress: {} }
  - match: { path: /gzip-only/* }
    to: o
    rewrite: { strip_prefix: /gzip-only }
    plugins: { compress: { encodings: [gzip], level: { gzip: 9 } } }
  - match: { path: /* }
    to: o
    plugins: { compress: {} }
`);
});
after(async () => {
  await gh?.stop();
  origin?.close();
});

// GET with Node's client (no automatic decoding); resolves status, headers and the raw body.
function get(path, headers = {}, method = 'GET') {
  return new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port: gh.port, path, headers, method }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject).end();
  });
}
const unzstd = (buf) => execFileSync('zstd', ['-d', '-c', '-q'], { input: buf });
const decode = { gzip: (b) => zlib.gunzipSync(b), br: (b) => zlib.brotliDecompressSync(b), zstd: unzstd };

test('each coding the client asks for, decoded back to the body; Vary, a weak ETag, no length', async () => {
  for (const [accept, coding] of [['gzip', 'gzip'], ['br', 'br'], ['zstd', 'zstd'], ['gzip, deflate, br, zstd', 'zstd'], ['gzip;q=1, br;q=0.5', 'gzip']]) {
    const r = await get('/json', { 'accept-encoding': accept });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], coding, accept);
    assert.equal(decode[coding](r.body).toString(), JSON_BODY, accept);
    assert.ok(r.body.length < JSON_BODY.length / 4, `${coding}: ${r.body.length} bytes`);
    assert.match(r.headers.vary, /Accept-Encoding/);
    assert.equal(r.headers.etag, 'W/"j1"', 'the coded bytes are not what the strong tag names');
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers['accept-ranges'], undefined);
  }
});

test('no Accept-Encoding, or none acceptable: identity, still Vary: Accept-Encoding', async () => {
  for (const headers of [{}, { 'accept-encoding': 'identity' }, { 'accept-encoding': 'gzip;q=0, deflate' }]) {
    const r = await get('/json', headers);
    assert.equal(r.headers['content-encoding'], undefined);
    assert.equal(r.body.toString(), JSON_BODY);
    assert.equal(r.headers.etag, '"j1"');
    assert.equal(r.headers['content-length'], String(JSON_BODY.length));
    assert.match(r.headers.vary, /Accept-Encoding/);
  }
});

test('not compressed: other types, small bodies, no-transform, already coded, 206, errors', async () => {
  for (const path of ['/image', '/small', '/no-transform', '/partial', '/error']) {
    const r = await get(path, { 'accept-encoding': 'gzip, br' });
    assert.equal(r.headers['content-encoding'], undefined, path);
    assert.ok(r.headers['content-length'], path);
  }
  const coded = await get('/encoded', { 'accept-encoding': 'br' });
  assert.equal(coded.headers['content-encoding'], 'gzip', 'never twice');
  assert.equal(zlib.gunzipSync(coded.body).toString(), JSON_BODY);
});

test('the route\'s encodings and level apply', async () => {
  const r = await get('/gzip-only/json', { 'accept-encoding': 'br, zstd, gzip;q=0.1' });
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(zlib.gunzipSync(r.body).toString(), JSON_BODY);
  const none = await get('/gzip-only/json', { 'accept-encoding': 'br' });
  assert.equal(none.headers['content-encoding'], undefined);
});

test('a streamed body is coded as it comes, and HEAD says what GET would', async () => {
  const r = await get('/stream', { 'accept-encoding': 'gzip' });
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  let expected = '';
  for (let i = 0; i < 20; i++) expected += `line ${i} `.repeat(50);
  assert.equal(zlib.gunzipSync(r.body).toString(), expected);
  const head = await get('/json', { 'accept-encoding': 'gzip' }, 'HEAD');
  assert.equal(head.headers['content-encoding'], 'gzip');
  assert.equal(head.headers['content-length'], undefined);
  assert.equal(head.body.length, 0);
});

test('with the cache: each coding is a stored variant, and a hit is not coded again', async () => {
  const p = '/cached/json';
  const gz = await get(p, { 'accept-encoding': 'gzip' });
  assert.match(gz.headers['cache-status'], /fwd=uri-miss; fwd-status=200; ttl=\d+; stored/);
  const gz2 = await get(p, { 'accept-encoding': 'gzip' });
  assert.match(gz2.headers['cache-status'], /^gatehouse; hit/);
  assert.equal(gz2.headers['content-encoding'], 'gzip');
  assert.equal(gz2.headers['content-length'], String(gz2.body.length), 'a hit has its stored length');
  assert.equal(gz2.headers.etag, 'W/"j1"');
  assert.equal(zlib.gunzipSync(gz2.body).toString(), JSON_BODY);
  assert.match(gz2.headers.vary, /Accept-Encoding/i);
  const plain = await get(p);
  assert.match(plain.headers['cache-status'], /fwd=vary-miss/);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(plain.body.toString(), JSON_BODY);
  const plain2 = await get(p);
  assert.match(plain2.headers['cache-status'], /^gatehouse; hit/);
  assert.equal(plain2.body.toString(), JSON_BODY);
  const br = await get(p, { 'accept-encoding': 'br' });
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(zlib.brotliDecompressSync(br.body).toString(), JSON_BODY);
  assert.equal(count.get(p), 3, 'three variants, three origin requests');
});

test('with the cache: a stale-while-revalidate refresh stores the coded variant, as a client\'s miss would', async () => {
  const p = '/cached/swr';
  const gz = await get(p, { 'accept-encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.match(gz.headers['cache-status'], /stored/);
  await new Promise((r) => setTimeout(r, 2100));  // max-age=1: stale, within stale-while-revalidate
  const stale = await get(p, { 'accept-encoding': 'gzip' });
  assert.match(stale.headers['cache-status'], /detail=stale-while-revalidate/);
  assert.equal(JSON.parse(zlib.gunzipSync(stale.body)).version, 1);
  // The refresh went with the client's Accept-Encoding through the compressor: the fresh entry is
  // the gzip variant (an identity entry stored there would replace the Vary marker).
  await waitFor(() => count.get(p) === 2, 3000, 'the background refresh');
  const fresh = await waitFor(async () => {
    const r = await get(p, { 'accept-encoding': 'gzip' });
    return /^gatehouse; hit; ttl=(60|59)$/.test(r.headers['cache-status']) && r;
  }, 3000, 'the refreshed entry');
  assert.equal(fresh.headers['content-encoding'], 'gzip');
  assert.equal(fresh.headers.etag, 'W/"s2"');
  assert.match(fresh.headers.vary, /Accept-Encoding/i);
  assert.equal(JSON.parse(zlib.gunzipSync(fresh.body)).version, 2);
  assert.equal(count.get(p), 2);
  // Identity stays a variant of its own: its own miss, never the gzip body.
  const plain = await get(p);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(JSON.parse(plain.body).version, 3);
  assert.match(plain.headers['cache-status'], /fwd=vary-miss/);
});

test('with the cache: a 304 that freshens a coded variant leaves its ETag weak', async () => {
  const p = '/cached/reval';
  const first = await get(p, { 'accept-encoding': 'gzip' });
  assert.equal(first.headers.etag, 'W/"r1"');
  await new Promise((r) => setTimeout(r, 2100));  // max-age=1: stale
  const revalidated = await get(p, { 'accept-encoding': 'gzip' });
  assert.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304/);
  assert.equal(count.get(p), 2);
  for (const r of [revalidated, await get(p, { 'accept-encoding': 'gzip' })]) {
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.headers.etag, 'W/"r1"', 'the coded bytes are not the strong "r1"');
    assert.equal(zlib.gunzipSync(r.body).toString(), JSON_BODY);
  }
  assert.equal(count.get(p), 2, 'the freshened entry is a hit');
});
