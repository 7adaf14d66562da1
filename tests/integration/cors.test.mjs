// CORS at the gateway: preflights answered without reaching the upstream or needing credentials,
// response headers only for allowed origins, and routes without cors left alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startGatehouse, curl, json } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const KEY = 'cors-test-key';
let up, gh;
before(async () => {
  up = await startUpstream({ name: 'u' });
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
consumers:
  - { name: web, api_keys: [ { sha256: ${crypto.createHash('sha256').update(KEY).digest('hex')} } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - name: api
    match: { path: /api/*, methods: [GET, POST] }
    to: u
    plugins:
      key_auth: {}
      cors:
        origins: ["https://app.example.com"]
        methods: [GET, POST]
        headers: [content-type, x-api-key]
        expose_headers: [x-upstream]
        credentials: true
        max_age: 10m
  - name: plain
    match: { path: /plain/*, methods: [GET] }
    to: u
`);
});
after(async () => {
  await gh?.stop();
  await up?.close();
});

const preflight = (origin, method, headers) => ['-X', 'OPTIONS', '-H', `Origin: ${origin}`,
  '-H', `Access-Control-Request-Method: ${method}`,
  ...(headers ? ['-H', `Access-Control-Request-Headers: ${headers}`] : [])];

test('a preflight is answered by the gateway: no credentials needed, nothing forwarded', async () => {
  const before = up.state.requests;
  const r = await curl([...preflight('https://app.example.com', 'POST', 'content-type, x-api-key'), gh.url('/api/items')]);
  assert.equal(r.status, 204);
  assert.equal(r.body, '');
  assert.deepEqual(r.headers['access-control-allow-origin'], ['https://app.example.com']);
  assert.deepEqual(r.headers['access-control-allow-methods'], ['GET, POST']);
  assert.deepEqual(r.headers['access-control-allow-headers'], ['content-type, x-api-key']);
  assert.deepEqual(r.headers['access-control-allow-credentials'], ['true']);
  assert.deepEqual(r.headers['access-control-max-age'], ['600']);
  assert.equal(up.state.requests, before);
});

test('preflight table: a wrong origin, method or header gets no CORS headers', async () => {
  const cases = [
    ['https://evil.example.com', 'GET', ''],
    ['https://app.example.com.evil.com', 'GET', ''],
    ['http://app.example.com', 'GET', ''],
    ['https://app.example.com', 'PUT', ''],  // 405: no route takes PUT on this path
    ['https://app.example.com', 'GET', 'authorization'],
  ];
  for (const [origin, method, headers] of cases) {
    const r = await curl([...preflight(origin, method, headers), gh.url('/api/items')]);
    assert.equal(r.status, method === 'PUT' ? 405 : 204, `${origin} ${method} ${headers}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined, `${origin} ${method} ${headers}`);
  }
});

test('actual requests: CORS headers for an allowed origin, on errors from the gateway too', async () => {
  const ok = await curl(['-H', 'Origin: https://app.example.com', '-H', `x-api-key: ${KEY}`, gh.url('/api/items')]);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.headers['access-control-allow-origin'], ['https://app.example.com']);
  assert.deepEqual(ok.headers['access-control-expose-headers'], ['x-upstream']);
  assert.deepEqual(ok.headers.vary, ['Origin']);
  // The page can read why it was refused.
  const denied = await curl(['-H', 'Origin: https://app.example.com', gh.url('/api/items')]);
  assert.equal(denied.status, 401);
  assert.deepEqual(denied.headers['access-control-allow-origin'], ['https://app.example.com']);
  const evil = await curl(['-H', 'Origin: https://evil.example.com', '-H', `x-api-key: ${KEY}`, gh.url('/api/items')]);
  assert.equal(evil.status, 200);
  assert.equal(evil.headers['access-control-allow-origin'], undefined);
});

test('a route without cors does not answer preflights', async () => {
  const r = await curl([...preflight('https://app.example.com', 'GET', ''), gh.url('/plain/x')]);
  assert.equal(r.status, 405);
  assert.equal(json(r).error, 'method_not_allowed');
});
