// The body phases end to end, through response_replace (a response body filter, as NGINX's
// sub_filter): the HTTP/1.1 codec frames the rewritten body chunked (with the upstream's trailers)
// to an HTTP/1.1 client and ends it by the close to an HTTP/1.0 one; bodies of other types, and
// content-coded ones, stream through untouched with their length.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { startGatehouse, curl, raw, runGatehouse, tempFile } from './harness.mjs';

const INTERNAL = 'http://orders.internal:8080';
const PUBLIC = 'https://api.example.com';
// Written in pieces, a moment apart, with the address cut in two across them.
const PIECES = ['<a href="http://orders.inter', 'nal:8080/list">list</a> <a href="http://', 'orders.internal:8080/new">new</a>'];
const gzipped = zlib.gzipSync(`<a href="${INTERNAL}/x">x</a>`);

let up, gh;
before(async () => {
  up = http.createServer(async (req, res) => {
    if (req.url === '/site/split') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8', ETag: '"v1"',
        'Last-Modified': 'Tue, 01 Dec 2026 10:00:00 GMT', Trailer: 'X-Checksum',
      });
      for (const p of PIECES) {
        res.write(p);
        await new Promise((r) => setTimeout(r, 30));
      }
      res.addTrailers({ 'X-Checksum': 'abc123' });
      res.end();
    } else if (req.url === '/api/doc') {
      const body = JSON.stringify({ self: `${INTERNAL}/api/doc` });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    } else if (req.url === '/site/gzip') {
      res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Encoding': 'gzip', 'Content-Length': gzipped.length });
      res.end(gzipped);
    } else if (req.url === '/site/image') {
      const body = `not html: ${INTERNAL}`;
      res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Content-Length': body.length, ETag: '"img"' });
      res.end(body);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.address().port} } ] }
routes:
  - match: { path: /site/* }
    to: u
    plugins:
      response_replace: { replace: { "${INTERNAL}": "${PUBLIC}" } }
  - match: { path: /api/* }
    to: u
    plugins:
      response_replace: { replace: { "${INTERNAL}": "${PUBLIC}" }, types: [application/json] }
  - { match: { path: /plain/* }, to: u, rewrite: { strip_prefix: /plain } }
`);
});
after(async () => {
  await gh?.stop();
  up?.close();
});

const expected = PIECES.join('').replaceAll(INTERNAL, PUBLIC);

test('a streamed HTML body is rewritten across its pieces, re-chunked, without its validators', async () => {
  const r = await curl([gh.url('/site/split')]);
  assert.equal(r.status, 200);
  // curl -D - writes the trailer fields it got after the body
  assert.equal(r.body, `${expected}X-Checksum: abc123\r\n`);
  assert.equal(r.headers['content-length'], undefined);
  assert.deepEqual(r.headers['transfer-encoding'], ['chunked']);
  assert.equal(r.headers.etag, undefined, 'a strong ETag would name bytes the client does not get');
  assert.equal(r.headers['last-modified'], undefined);
  assert.deepEqual(r.headers['content-type'], ['text/html; charset=utf-8']);
});

test("the upstream's trailers follow the rewritten body to an HTTP/1.1 client", async () => {
  const r = await raw(gh.port, 'GET /site/split HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { timeout: 5000 });
  assert.ok(r.closed, 'the gateway closed as asked');
  const [head, body] = [r.text.slice(0, r.text.indexOf('\r\n\r\n')), r.text.slice(r.text.indexOf('\r\n\r\n') + 4)];
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /\r\nTransfer-Encoding: chunked/i);
  assert.match(body, /\r\n0\r\nX-Checksum: abc123\r\n\r\n$/, 'the last chunk carries the trailer');
  // De-chunk what came and compare.
  let text = '', rest = body;
  for (;;) {
    const nl = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, nl), 16);
    if (size === 0) break;
    text += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
  assert.equal(text, expected);
});

test('an HTTP/1.0 client gets the rewritten body ended by the close', async () => {
  const r = await raw(gh.port, 'GET /site/split HTTP/1.0\r\nHost: a\r\n\r\n', { timeout: 5000 });
  assert.ok(r.closed);
  const at = r.text.indexOf('\r\n\r\n');
  const head = r.text.slice(0, at);
  assert.doesNotMatch(head, /transfer-encoding|content-length/i);
  assert.match(head, /\r\nConnection: close/i);
  assert.equal(r.text.slice(at + 4), expected);
});

test('a length-delimited JSON body is rewritten on a route that lists its type', async () => {
  const r = await curl([gh.url('/api/doc')]);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { self: `${PUBLIC}/api/doc` });
  assert.equal(r.headers['content-length'], undefined);
  // Keep-alive holds after a rewritten body: two requests on one connection.
  const two = await curl([gh.url('/api/doc'), gh.url('/api/doc')]);
  assert.equal(two.code, 0);
  assert.equal(two.body.split(PUBLIC).length - 1, 2, two.body);
});

test('the trailer fields of one rewritten response never reach the next on the connection', async () => {
  // curl -D - writes each response's head and trailer fields into the output, in order.
  const two = await curl([gh.url('/site/split'), gh.url('/api/doc')]);
  assert.equal(two.code, 0);
  assert.equal(two.body.split('X-Checksum: abc123').length - 1, 1, two.body);
  assert.ok(two.body.endsWith(`{"self":"${PUBLIC}/api/doc"}`), two.body);
});

test('other media types and content-coded bodies stream through untouched, with their length', async () => {
  const img = await curl([gh.url('/site/image')]);
  assert.equal(img.body, `not html: ${INTERNAL}`);
  assert.deepEqual(img.headers['content-length'], [String(`not html: ${INTERNAL}`.length)]);
  assert.deepEqual(img.headers.etag, ['"img"']);
  const gz = await curl(['--compressed', gh.url('/site/gzip')]);
  assert.equal(gz.body, `<a href="${INTERNAL}/x">x</a>`, 'a gzip body has no text to find');
  assert.deepEqual(gz.headers['content-length'], [String(gzipped.length)]);
  // A route without the plugin relays the same HTML as it came.
  const plain = await curl([gh.url('/plain/site/split')]);
  assert.equal(plain.body, `${PIECES.join('')}X-Checksum: abc123\r\n`);
  assert.deepEqual(plain.headers.etag, ['"v1"']);
});

test('a HEAD request gets the head without a body', async () => {
  const r = await raw(gh.port, 'HEAD /api/doc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  assert.ok(r.closed);
  assert.match(r.text, /^HTTP\/1\.1 200/);
  assert.ok(r.text.endsWith('\r\n\r\n'), `nothing after the head: ${JSON.stringify(r.text)}`);
  assert.doesNotMatch(r.text, /transfer-encoding/i, 'no body, so no framing to announce');
  assert.doesNotMatch(r.text, /content-length/i, 'the GET it stands for is rewritten: its length is unknown');
});

test('response_replace settings are checked at load, with file:line:col', () => {
  const file = tempFile('bad-replace.yaml', `
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:9 } ] }
routes:
  - match: { path: /a }
    to: u
    plugins:
      response_replace: { replace: { "": x } }
  - match: { path: /b }
    to: u
    plugins:
      response_replace: { types: [text/html] }
`);
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /:10:\d+: routes\[0\]\.plugins\.response_replace\.replace\.: the string to find cannot be empty/);
  assert.match(r.stderr, /:14:\d+: routes\[1\]\.plugins\.response_replace\.replace: expected a mapping of strings to find to their replacements/);
});
