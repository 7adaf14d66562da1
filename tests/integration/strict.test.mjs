// Hostile input: every request a smuggling or parser-confusion attempt is refused with 400 (or the
// status the contract names) and the connection closed; nothing of it reaches the upstream.
// Limits: 431, 414, 413, 405, 404, max_connections, slowloris (header_read) and idle timeouts.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startGatehouse, raw, rawConnection, curl, json, waitFor } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let up;
let gh;
before(async () => {
  up = await startUpstream({ name: 'echo' });
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
  limits: { max_header_bytes: 4KiB, max_uri_bytes: 1KiB, max_body_bytes: 1MiB }
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - name: echo
    match: { path: /echo/* }
    to: echo
  - name: sink
    match: { path: /sink, methods: [POST, PUT] }
    to: echo
  - name: sink-get
    match: { path: /sink, methods: [GET] }
    to: echo
  - name: small
    match: { path: /small }
    rewrite: { path: /sink }
    to: echo
    plugins:
      request_size: { max_body_bytes: 100 }
`);
});
after(async () => { await gh.stop(); await up.close(); });

// That nothing more reached the upstream since `before` (its request count) cannot be waited for
// as such; a good request sent after the refused one can: once its answer is back, the upstream has
// seen it, and anything the gateway had forwarded of the refused request would have come first.
async function upstreamSawOnlyAMarkerSince(before, what) {
  const marker = await curl([gh.url('/echo/marker')]);
  assert.equal(marker.status, 200);
  assert.equal(up.state.requests - before, 1, what);
}

async function refused(request, status = 400) {
  const before = up.state.requests;
  const r = await raw(gh.port, request);
  assert.match(r.text, new RegExp(`^HTTP/1.1 ${status} `), `expected ${status}, got: ${r.text.slice(0, 80)}`);
  assert.ok(r.closed, 'the connection is closed after a refused request');
  const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4));
  assert.ok(body.error && body.message && body.request_id, 'JSON error body with a request id');
  await upstreamSawOnlyAMarkerSince(before, 'nothing of the refused request reached the upstream');
  return r;
}

describe('request smuggling and malformed requests', () => {
  test('Content-Length together with Transfer-Encoding', () => refused(
    'POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: t\r\n\r\n'));
  test('differing repeated Content-Length', () => refused(
    'POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'));
  test('Content-Length list with different values', () => refused(
    'POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!'));
  test('negative or non-numeric Content-Length', () => refused(
    'POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n'));
  test('obsolete line folding', () => refused(
    'GET /echo/x HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n  b\r\n\r\n'));
  test('bare LF line ending', () => refused('GET /echo/x HTTP/1.1\nHost: t\n\n'));
  test('bare CR inside a header value', () => refused('GET /echo/x HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n'));
  test('NUL in a header value', () => refused('GET /echo/x HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n'));
  test('whitespace between header name and colon', () => refused('GET /echo/x HTTP/1.1\r\nHost : t\r\n\r\n'));
  test('control character in a header name', () => refused('GET /echo/x HTTP/1.1\r\nHost: t\r\nX\x01A: 1\r\n\r\n'));
  test('invalid method', () => refused('GE(T /echo/x HTTP/1.1\r\nHost: t\r\n\r\n'));
  test('invalid request target', () => refused('GET echo/x HTTP/1.1\r\nHost: t\r\n\r\n'));
  test('space inside the request target', () => refused('GET /echo/a b HTTP/1.1\r\nHost: t\r\n\r\n'));
  test('bad percent-encoding', () => refused('GET /echo/%zz HTTP/1.1\r\nHost: t\r\n\r\n'));
  test('missing Host in HTTP/1.1', () => refused('GET /echo/x HTTP/1.1\r\n\r\n'));
  test('two Host headers', () => refused('GET /echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'));
  test('unsupported transfer coding', () => refused(
    'POST /echo/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501));
  test('HTTP/2.0 in HTTP/1 syntax', () => refused('GET /echo/x HTTP/2.0\r\nHost: t\r\n\r\n', 505));
  test('garbage instead of a request', () => refused('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n'));
  test('bad chunk size: the body is refused and nothing more is forwarded', async () => {
    // All in one write: the bad chunk is seen before anything is forwarded.
    const before = up.state.requests;
    const r = await raw(gh.port, 'POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n');
    assert.match(r.text, /^HTTP\/1.1 400 /);
    assert.ok(r.closed);
    await upstreamSawOnlyAMarkerSince(before, 'nothing of the request reached the upstream');

    // The head first: a chunked body streams, so the head is forwarded at once. Then the bad
    // chunk: the upstream's request is cut off, its body never complete, and nothing follows it.
    const [heads, incomplete, sunk] = [up.state.requests, up.state.incomplete, up.state.sunk.length];
    const c = await rawConnection(gh.port);
    c.send('POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n');
    await waitFor(() => up.state.requests === heads + 1, 3000, 'the head at the upstream');
    c.send('zz\r\nhello\r\n0\r\n\r\n');
    assert.equal((await c.readResponse()).status, 400);
    await waitFor(() => c.closed, 3000, 'the client connection closed');
    await waitFor(() => up.state.incomplete === incomplete + 1, 3000, 'the upstream request cut off');
    assert.equal(up.state.sunk.length, sunk, 'no body completed at the upstream');
    await upstreamSawOnlyAMarkerSince(heads + 1, 'nothing more reached the upstream');
  });
  test('chunk size overflow', async () => {
    const r = await raw(gh.port, 'POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n');
    assert.match(r.text, /^HTTP\/1.1 400 /);
    assert.ok(r.closed);
  });
});

describe('limits', () => {
  test('headers over max_header_bytes -> 431', () => refused(
    `GET /echo/x HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`, 431));
  test('request line over max_uri_bytes -> 414', () => refused(
    `GET /echo/${'a'.repeat(2000)} HTTP/1.1\r\nHost: t\r\n\r\n`, 414));
  test('request line longer than the whole header budget -> 414', () => refused(
    `GET /echo/${'a'.repeat(6000)} HTTP/1.1\r\nHost: t\r\n\r\n`, 414));
  test('declared body over max_body_bytes -> 413 before anything is forwarded', () => refused(
    'POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n', 413));
  test('chunked body crossing max_body_bytes -> 413', async () => {
    const r = await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', '@-', gh.url('/sink')],
      { input: Buffer.alloc(1100000, 'z') });
    assert.equal(r.status, 413);
    assert.equal(json(r).error, 'body_too_large');
  });
  test('a body under the limit passes', async () => {
    const r = await curl(['--data-binary', '@-', gh.url('/sink')], { input: Buffer.alloc(900000, 'z') });
    assert.equal(r.status, 200);
    assert.equal(json(r).bytes, 900000);
  });
  test('route request_size plugin: 413 over its own smaller limit', async () => {
    const big = await curl(['--data-binary', '@-', gh.url('/small')], { input: 'x'.repeat(101) });
    assert.equal(big.status, 413);
    const ok = await curl(['--data-binary', '@-', gh.url('/small')], { input: 'x'.repeat(100) });
    assert.equal(ok.status, 200);
    assert.equal(json(ok).bytes, 100);
    const chunked = await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', '@-', gh.url('/small')],
      { input: 'x'.repeat(500) });
    assert.equal(chunked.status, 413);
  });
  test('404 for no route, as JSON with the request id', async () => {
    const r = await curl(['-H', 'X-Request-Id: find-me-404', gh.url('/nowhere')]);
    assert.equal(r.status, 404);
    assert.equal(r.headers['content-type'][0], 'application/json');
    assert.deepEqual(json(r), { error: 'no_route', message: 'no route for GET /nowhere', request_id: 'find-me-404' });
  });
  test('405 with Allow merged from all routes that match but for the method', async () => {
    const r = await curl(['-X', 'DELETE', gh.url('/sink')]);
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow[0], 'POST, PUT, GET');
    assert.equal(json(r).error, 'method_not_allowed');
  });
  test('a refused request with a small body keeps the connection usable', async () => {
    const c = await rawConnection(gh.port);
    c.send('DELETE /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /echo/next HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.equal((await c.readResponse()).status, 405);
    const next = await c.readResponse();
    assert.equal(next.status, 200);
    assert.equal(JSON.parse(next.body).url, '/echo/next');
    c.close();
  });
});

describe('connection limits and slow clients', () => {
  let gh2;
  before(async () => {
    gh2 = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  limits: { max_connections: 5 }
  timeouts: { header_read: 600ms, idle: 1500ms }
admin: { listen: 127.0.0.1:0 }
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - match: { path: /* }
    to: echo
`);
  });
  after(() => gh2.stop());

  test('slowloris: a client trickling its head is cut off after header_read', async () => {
    const t0 = Date.now();
    const chunks = ['GET /echo/x HTTP/1.1\r\n', ...Array.from({ length: 40 }, (_, i) => `X-${i}: y\r\n`)];
    const r = await raw(gh2.port, null, { chunks, gap: 100, timeout: 6000 });
    assert.ok(r.closed, 'cut off');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 500 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.equal(r.text, '', 'no response to an unfinished request');
  });

  test('an idle keep-alive connection is closed after the idle timeout', async () => {
    const c = await rawConnection(gh2.port);
    c.send('GET /echo/x HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.equal((await c.readResponse()).status, 200);
    const t0 = Date.now();
    await waitFor(() => c.closed, 4000, 'idle close');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 1200 && elapsed < 3000, `closed after ${elapsed} ms`);
  });

  test('max_connections: connections past the limit are refused, others keep working', async () => {
    // The connections the gateway holds, from its own count (the admin API is not one of them).
    const adminPort = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(gh2.stderr)[1]);
    const open = async () => {
      const m = (await curl([`http://127.0.0.1:${adminPort}/metrics`])).body;
      return Number(/^gatehouse_downstream_connections (\d+)$/m.exec(m)[1]);
    };
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await rawConnection(gh2.port));
    await waitFor(async () => (await open()) === 5, 3000, 'the gateway to hold the 5 connections');
    const extra = await raw(gh2.port, 'GET /echo/x HTTP/1.1\r\nHost: t\r\n\r\n', { timeout: 2000 });
    assert.ok(extra.closed);
    assert.equal(extra.text, '');
    held[0].send('GET /echo/held HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.equal((await held[0].readResponse()).status, 200);
    for (const h of held) h.close();
    await waitFor(async () => (await open()) === 0, 3000, 'the gateway to close the 5 connections');
    const again = await raw(gh2.port, 'GET /echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    assert.match(again.text, /^HTTP\/1.1 200 /, 'slots are given back when connections close');
  });
});
