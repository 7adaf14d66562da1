// Path normalisation before routing: the attack table of docs/security.md, end to end. Requests
// are sent as raw bytes so that no client tidies the path first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatehouse, raw } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let pub, adm, strict, lenient;
before(async () => {
  pub = await startUpstream({ name: 'public' });
  adm = await startUpstream({ name: 'admin' });
  const config = (extra) => `
server:
  listen: [ { address: 127.0.0.1:0 } ]
${extra}
upstreams:
  public: { targets: [ { address: 127.0.0.1:${pub.port} } ] }
  admin: { targets: [ { address: 127.0.0.1:${adm.port} } ] }
routes:
  - name: public
    match: { path: /api/public/* }
    to: public
  - name: admin
    match: { path: /admin/* }
    to: admin
`;
  strict = await startGatehouse(config(''));
  lenient = await startGatehouse(config('  path_normalization: { merge_slashes: true, encoded_slashes: keep }'));
});
after(async () => {
  await strict?.stop();
  await lenient?.stop();
  await pub?.close();
  await adm?.close();
});

// Sends GET `target` and returns { status, body (parsed JSON), upstream url or null }.
async function get(gh, target) {
  const r = await raw(gh.port, `GET ${target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
  const status = Number(r.text.split(' ')[1]);
  const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4));
  return { status, body, url: body.url ?? null, upstream: body.upstream ?? null };
}

test('dot segments, plain or percent-encoded, are removed before routing; the upstream gets the plain path', async () => {
  const table = [
    ['/api/public/./a/../b', 'public', '/api/public/b'],
    ['/api/public/%61bc', 'public', '/api/public/abc'],
    ['/api/public/x/%2e%2e/y', 'public', '/api/public/y'],
    ['/api/public/%2e%2e/%2E%2E/admin/panel', 'admin', '/admin/panel'],
    ['/api/public/.%2e/.%2e/admin/panel', 'admin', '/admin/panel'],
    ['/api/public/../../../../admin/panel', 'admin', '/admin/panel'],
    ['/api/public/./q?x=%2e%2e/..', 'public', '/api/public/q?x=%2e%2e/..'],
  ];
  for (const [target, upstream, url] of table) {
    const r = await get(strict, target);
    assert.equal(r.status, 200, target);
    assert.equal(r.upstream, upstream, `${target} must be routed as ${url}`);
    assert.equal(r.url, url, target);
  }
});

test('encoded slashes and backslashes, NUL and dot segments with parameters are refused with 400', async () => {
  const before = pub.state.requests + adm.state.requests;
  for (const target of ['/api/public/..%2Fadmin/panel', '/api/public/..%2fadmin/panel',
    '/api/public/..%5Cadmin/panel', '/api/public/..\\admin/panel', '/admin/panel%00.json',
    '/api/public/..;/admin/panel', '/api/public/%2e%2e;x/admin/panel']) {
    const r = await get(strict, target);
    assert.equal(r.status, 400, target);
    assert.equal(r.body.error, 'bad_request', target);
    assert.ok(r.body.request_id, target);
  }
  assert.equal(pub.state.requests + adm.state.requests, before, 'no refused request reached an upstream');
});

test('slashes are merged only when configured', async () => {
  assert.equal((await get(strict, '//admin/panel')).status, 404);
  const r = await get(lenient, '//admin///panel');
  assert.equal(r.upstream, 'admin');
  assert.equal(r.url, '/admin/panel');
});

test('encoded_slashes: keep forwards %2F as text, never as a separator, and NUL is still refused', async () => {
  const r = await get(lenient, '/api/public/..%2fadmin/panel');
  assert.equal(r.upstream, 'public');
  assert.equal(r.url, '/api/public/..%2Fadmin/panel');
  assert.equal((await get(lenient, '/admin/panel%00')).status, 400);
});
