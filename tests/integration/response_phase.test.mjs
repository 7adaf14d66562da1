// The response phase of the filter chain: response_headers (a response-only filter) removes and
// adds headers on the upstream's responses and on other filters' answers; CORS adds its headers in
// the response phase, whoever answered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startGatehouse, curl, runGatehouse, tempFile } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');
let up, gh;
before(async () => {
  up = await startUpstream({ name: 'u' });
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
consumers:
  - { name: alpha, api_keys: [ { sha256: ${sha('key-alpha')} } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - match: { path: /hardened/* }
    to: u
    plugins:
      response_headers: { add: { X-Frame-Options: DENY, Cache-Control: no-store }, remove: [x-upstream, Content-Type] }
  - match: { path: /guarded/* }
    to: u
    plugins:
      cors: { origins: ["https://app.example.com"] }
      key_auth: {}
      response_headers: { add: { x-frame-options: DENY } }
  - { match: { path: /plain/* }, to: u }
`);
});
after(async () => {
  await gh?.stop();
  await up?.close();
});

test("response_headers removes the upstream's headers and adds its own", async () => {
  const r = await curl([gh.url('/hardened/echo')]);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).upstream, 'u', 'the body is relayed as it came');
  assert.equal(r.headers['x-upstream'], undefined, 'removed');
  assert.equal(r.headers['content-type'], undefined, 'removed, whatever the case of its name');
  assert.deepEqual(r.headers['x-frame-options'], ['DENY']);
  assert.deepEqual(r.headers['cache-control'], ['no-store']);
  // Another route is untouched.
  const plain = await curl([gh.url('/plain/echo')]);
  assert.deepEqual(plain.headers['x-upstream'], ['u']);
  assert.equal(plain.headers['x-frame-options'], undefined);
});

test("the response phase also runs on a filter's own answer (a 401), CORS headers included", async () => {
  const origin = ['-H', 'Origin: https://app.example.com'];
  const refused = await curl([...origin, gh.url('/guarded/echo')]);
  assert.equal(refused.status, 401);
  assert.equal(JSON.parse(refused.body).error, 'unauthorized');
  assert.deepEqual(refused.headers['x-frame-options'], ['DENY']);
  assert.deepEqual(refused.headers['access-control-allow-origin'], ['https://app.example.com'],
    'a browser may read the 401');
  const ok = await curl([...origin, '-H', 'x-api-key: key-alpha', gh.url('/guarded/echo')]);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.headers['access-control-allow-origin'], ['https://app.example.com']);
  assert.deepEqual(ok.headers.vary, ['Origin']);
  assert.deepEqual(ok.headers['x-frame-options'], ['DENY']);
  // A disallowed origin gets Vary but no CORS headers.
  const other = await curl(['-H', 'Origin: https://evil.example.com', '-H', 'x-api-key: key-alpha', gh.url('/guarded/echo')]);
  assert.equal(other.headers['access-control-allow-origin'], undefined);
  assert.deepEqual(other.headers.vary, ['Origin']);
});

test('response_headers settings are checked at load, with file:line:col', () => {
  const file = tempFile('bad.yaml', `
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:9 } ] }
routes:
  - match: { path: /a }
    to: u
    plugins:
      response_headers: { add: { "bad name": x, x-ok: "a\\u0001b" }, remove: ["x y"] }
  - match: { path: /b }
    to: u
    plugins:
      response_headers: {}
`);
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /:10:\d+: routes\[0\]\.plugins\.response_headers\.add\.bad name: 'bad name' is not a valid header name/);
  assert.match(r.stderr, /:10:\d+: routes\[0\]\.plugins\.response_headers\.add\.x-ok: a header value cannot hold control characters/);
  assert.match(r.stderr, /:10:\d+: routes\[0\]\.plugins\.response_headers\.remove\[0\]: 'x y' is not a valid header name/);
  assert.match(r.stderr, /:14:\d+: routes\[1\]\.plugins\.response_headers: 'add' or 'remove' is required/);
});
