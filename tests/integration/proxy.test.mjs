// Proxying correctness (RFC 9110/9112): headers, request ids, keep-alive, pipelining, HEAD,
// 100-continue, chunked bodies both ways, HTTP/1.0 clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGatehouse, curl, json, raw, rawConnection } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let up;
let gh;
before(async () => {
  up = await startUpstream({ name: 'echo' });
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - name: all
    match: { path: /* }
    to: echo
`);
});
after(async () => { await gh.stop(); await up.close(); });

function headerPairs(echoed) {
  const pairs = [];
  for (let i = 0; i < echoed.headers.length; i += 2) pairs.push([echoed.headers[i], echoed.headers[i + 1]]);
  return pairs;
}

test('forwards method, path and query; the response comes back intact', async () => {
  const r = await curl(['-X', 'PUT', gh.url('/echo/a/b?x=1&y=%20z')]);
  assert.equal(r.status, 200);
  const body = json(r);
  assert.equal(body.method, 'PUT');
  assert.equal(body.url, '/echo/a/b?x=1&y=%20z');
  assert.equal(r.headers['x-upstream'][0], 'echo');
});

test('hop-by-hop headers are dropped, including those named in Connection', async () => {
  const c = await rawConnection(gh.port);
  c.send('GET /echo HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n' +
    'Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: foo\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n');
  const res = await c.readResponse();
  c.close();
  const names = headerPairs(JSON.parse(res.body)).map(([k]) => k.toLowerCase());
  for (const hop of ['connection', 'x-secret-hop', 'keep-alive', 'te', 'upgrade', 'proxy-connection']) {
    assert.ok(!names.includes(hop), `${hop} must not be forwarded`);
  }
  assert.ok(names.includes('x-kept'));
});

test('header order and repeated headers are kept', async () => {
  const c = await rawConnection(gh.port);
  c.send('GET /echo HTTP/1.1\r\nHost: t\r\nX-B: 1\r\nX-A: 2\r\nX-B: 3\r\nx-c: 4\r\n\r\n');
  const res = await c.readResponse();
  c.close();
  const pairs = headerPairs(JSON.parse(res.body)).filter(([k]) => /^x-[abc]$/i.test(k));
  assert.deepEqual(pairs, [['X-B', '1'], ['X-A', '2'], ['X-B', '3'], ['x-c', '4']]);
});

test('X-Forwarded-* and Via: a spoofed X-Forwarded-For from an untrusted client is replaced', async () => {
  const r = await curl(['-H', 'X-Forwarded-For: 6.6.6.6', '-H', 'X-Forwarded-Proto: https',
    '-H', 'Host: shop.example', gh.url('/echo')]);
  const h = Object.fromEntries(headerPairs(json(r)).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'shop.example');
  assert.equal(h.host, 'shop.example');
  assert.equal(h.via, '1.1 gatehouse');
  assert.equal(r.headers.via[0], '1.1 gatehouse');
});

test('request id: generated when absent, sent upstream, echoed, and in the access log', async () => {
  const r = await curl([gh.url('/echo')]);
  const id = r.headers['x-request-id'][0];
  assert.match(id, /^[0-9a-f]{32}$/);
  const upstreamSaw = Object.fromEntries(headerPairs(json(r)).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(upstreamSaw['x-request-id'], id);
  const { waitFor } = await import('./harness.mjs');
  await waitFor(() => gh.accessLog().some((l) => l.request_id === id), 2000, 'access log line');
});

test('request id: a well-formed incoming id is kept, a malformed one replaced', async () => {
  const kept = await curl(['-H', 'X-Request-Id: abc-123.DEF_4:5', gh.url('/echo')]);
  assert.equal(kept.headers['x-request-id'][0], 'abc-123.DEF_4:5');
  const bad = await curl(['-H', 'X-Request-Id: <script>', gh.url('/echo')]);
  assert.notEqual(bad.headers['x-request-id'][0], '<script>');
  assert.match(bad.headers['x-request-id'][0], /^[0-9a-f]{32}$/);
  const seen = headerPairs(json(bad)).filter(([k]) => k.toLowerCase() === 'x-request-id');
  assert.equal(seen.length, 1);
});

test('keep-alive: many requests on one client connection reuse one upstream connection', async () => {
  const before = up.state.connections;
  const c = await rawConnection(gh.port);
  for (let i = 0; i < 20; i++) {
    c.send(`GET /echo/${i} HTTP/1.1\r\nHost: t\r\n\r\n`);
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).url, `/echo/${i}`);
  }
  c.close();
  // One worker served this client connection; it needs at most one new upstream connection.
  assert.ok(up.state.connections - before <= 1, `opened ${up.state.connections - before} upstream connections`);
});

test('pipelining: three requests in one write get three responses, in order', async () => {
  const r = await raw(gh.port,
    'GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: t\r\n\r\n' +
    'GET /echo/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  assert.ok(r.closed);
  const urls = [...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(urls, ['/echo/1', '/echo/2', '/echo/3']);
  assert.equal((r.text.match(/HTTP\/1.1 200/g) || []).length, 3);
});

test('HEAD: headers only, Content-Length kept, the next request on the connection unharmed', async () => {
  const c = await rawConnection(gh.port);
  c.send('HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/after-head HTTP/1.1\r\nHost: t\r\n\r\n');
  const head = await c.readResponse(5000, true);
  assert.equal(head.status, 200);
  assert.match(head.head, /content-length: [1-9]\d*/i);
  // Had any body bytes followed the HEAD response, this would not parse as the next response.
  const next = await c.readResponse();
  assert.equal(next.status, 200);
  assert.equal(JSON.parse(next.body).url, '/echo/after-head');
  c.close();
});

test('Expect: 100-continue gets an interim 100 before the body is sent', async () => {
  const c = await rawConnection(gh.port);
  c.send('POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  const interim = await c.readResponse();
  assert.equal(interim.status, 100);
  c.send('hello');
  const res = await c.readResponse();
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.body).bytes, 5);
  c.close();
});

test('a chunked request body is streamed through and arrives whole', async () => {
  const data = 'x'.repeat(300000);
  const r = await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', '@-', gh.url('/sink')], { input: data });
  assert.equal(r.status, 200);
  assert.equal(json(r).bytes, 300000);
});

test('a chunked response passes through chunked to an HTTP/1.1 client', async () => {
  const r = await raw(gh.port, 'GET /stream/100000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  assert.match(r.text, /transfer-encoding: chunked/i);
  const res = await new Promise((resolve) => http.get(gh.url('/stream/100000'), (res) => {
    let n = 0; res.on('data', (d) => { n += d.length; }); res.on('end', () => resolve(n));
  }));
  assert.equal(res, 100000);
});

test('an HTTP/1.0 client gets a chunked upstream response without the chunked coding', async () => {
  const r = await raw(gh.port, 'GET /stream/70000 HTTP/1.0\r\n\r\n');
  assert.ok(r.closed, 'the end of the body is the close');
  const idx = r.bytes.indexOf('\r\n\r\n');
  const head = r.bytes.subarray(0, idx).toString();
  assert.doesNotMatch(head, /transfer-encoding/i);
  assert.equal(r.bytes.length - idx - 4, 70000);
});

test('HTTP/1.0 keep-alive is honoured when asked for', async () => {
  const c = await rawConnection(gh.port);
  c.send('GET /echo/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const a = await c.readResponse();
  assert.match(a.head, /connection: keep-alive/i);
  c.send('GET /echo/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const b = await c.readResponse();
  assert.equal(JSON.parse(b.body).url, '/echo/2');
  c.close();
});

test('a close-delimited upstream response is relayed and the client connection closed', async () => {
  const r = await raw(gh.port, 'GET /until-close HTTP/1.1\r\nHost: t\r\n\r\n');
  assert.ok(r.closed);
  assert.match(r.text, /connection: close/i);
  assert.ok(r.text.endsWith('all of this until the close'));
});

test('absolute-form request target: the authority becomes the Host', async () => {
  const c = await rawConnection(gh.port);
  c.send('GET http://abs.example/echo?q=1 HTTP/1.1\r\nHost: other\r\n\r\n');
  const res = await c.readResponse();
  c.close();
  const body = JSON.parse(res.body);
  assert.equal(body.url, '/echo?q=1');
  assert.ok(body.headers.includes('abs.example'));
});
