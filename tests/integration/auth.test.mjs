// Consumers, API keys (key_auth), ACLs and IP rules, end to end through the real binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startGatehouse, curl, json } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const APP_KEY = 'app-key-0123456789';
const PARTNER_KEY = 'partner-key-from-env';

let up, gh, ghTrusting;
before(async () => {
  up = await startUpstream({ name: 'u' });
  const config = (server) => `
server:
  listen: [ { address: 127.0.0.1:0 } ]
${server}
consumers:
  - name: mobile-app
    groups: [clients, beta]
    api_keys: [ { sha256: ${sha256(APP_KEY)} } ]
  - name: partner
    groups: [partners]
    api_keys: [ { env: GH_TEST_PARTNER_KEY } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - name: open
    match: { path: /open/* }
    to: u
  - name: keys
    match: { path: /keys/* }
    to: u
    plugins:
      key_auth: { header: x-api-key, query: api_key }
  - name: acl
    match: { path: /acl/* }
    to: u
    plugins:
      acl: { allow_groups: [clients] }   # listed first; runs after key_auth all the same
      key_auth: {}
  - name: ip-allow
    match: { path: /ip/allow/* }
    to: u
    plugins: { ip_rules: { allow: [127.0.0.0/8] } }
  - name: ip-deny
    match: { path: /ip/deny/* }
    to: u
    plugins: { ip_rules: { deny: [10.0.0.0/8, 127.0.0.1] } }
  - name: ip-office
    match: { path: /ip/office/* }
    to: u
    plugins: { ip_rules: { allow: [203.0.113.0/24, "2001:db8::/32"] } }
`;
  const env = { GH_TEST_PARTNER_KEY: PARTNER_KEY };
  gh = await startGatehouse(config(''), { env });
  ghTrusting = await startGatehouse(config('  trusted_proxies: [127.0.0.1, 10.0.0.0/8]'), { env });
});
after(async () => {
  await gh?.stop();
  await ghTrusting?.stop();
  await up?.close();
});

// Values of a header as the upstream received it (the echo returns raw header pairs).
function upstreamHeader(res, name) {
  const raw = json(res).headers;
  const out = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}

test('key_auth: no key and a wrong key get the same 401, with a challenge and the request id', async () => {
  const before = up.state.requests;
  const none = await curl([gh.url('/keys/x')]);
  const wrong = await curl(['-H', 'x-api-key: guess', gh.url('/keys/x')]);
  const wrongQuery = await curl([gh.url('/keys/x?api_key=guess')]);
  for (const r of [none, wrong, wrongQuery]) {
    assert.equal(r.status, 401);
    assert.equal(r.headers['content-type'][0], 'application/json');
    assert.match(r.headers['www-authenticate'][0], /realm="gatehouse"/);
    const body = json(r);
    assert.equal(body.error, 'unauthorized');
    assert.equal(body.message, json(none).message, 'no hint of what was wrong');
    assert.equal(body.request_id, r.headers['x-request-id'][0]);
  }
  assert.equal(up.state.requests, before, 'nothing reached the upstream');
});

test('key_auth: a key in the header identifies the consumer; the key never goes upstream', async () => {
  const r = await curl(['-H', `X-Api-Key: ${APP_KEY}`, gh.url('/keys/x')]);
  assert.equal(r.status, 200);
  assert.deepEqual(upstreamHeader(r, 'x-consumer-name'), ['mobile-app']);
  assert.deepEqual(upstreamHeader(r, 'x-consumer-groups'), ['clients, beta']);
  assert.deepEqual(upstreamHeader(r, 'x-api-key'), []);
});

test('key_auth: a key from the environment, in the query; the parameter is removed upstream', async () => {
  const r = await curl([gh.url(`/keys/x?a=1&api_key=${encodeURIComponent(PARTNER_KEY)}&b=2`)]);
  assert.equal(r.status, 200);
  assert.equal(json(r).url, '/keys/x?a=1&b=2');
  assert.deepEqual(upstreamHeader(r, 'x-consumer-name'), ['partner']);
});

test('identity headers sent by the client never reach an upstream', async () => {
  const spoof = ['-H', 'X-Consumer-Name: mobile-app', '-H', 'X-Consumer-Groups: admins'];
  const authed = await curl([...spoof, '-H', `x-api-key: ${PARTNER_KEY}`, gh.url('/keys/x')]);
  assert.deepEqual(upstreamHeader(authed, 'x-consumer-name'), ['partner']);
  assert.deepEqual(upstreamHeader(authed, 'x-consumer-groups'), ['partners']);
  const open = await curl([...spoof, gh.url('/open/x')]);
  assert.equal(open.status, 200);
  assert.deepEqual(upstreamHeader(open, 'x-consumer-name'), []);
  assert.deepEqual(upstreamHeader(open, 'x-consumer-groups'), []);
});

test('acl: consumers in an allowed group pass, others get 403, anonymous callers 401', async () => {
  assert.equal((await curl(['-H', `x-api-key: ${APP_KEY}`, gh.url('/acl/x')])).status, 200);
  const partner = await curl(['-H', `x-api-key: ${PARTNER_KEY}`, gh.url('/acl/x')]);
  assert.equal(partner.status, 403);
  assert.equal(json(partner).error, 'forbidden');
  assert.equal((await curl([gh.url('/acl/x')])).status, 401);
});

test('ip_rules: allow and deny lists on the client address', async () => {
  assert.equal((await curl([gh.url('/ip/allow/x')])).status, 200);
  const denied = await curl([gh.url('/ip/deny/x')]);
  assert.equal(denied.status, 403);
  assert.equal(json(denied).error, 'forbidden');
  assert.equal((await curl([gh.url('/ip/office/x')])).status, 403);
});

test('ip_rules: X-Forwarded-For decides only when the peer is a trusted proxy', async () => {
  const xff = (v) => ['-H', `X-Forwarded-For: ${v}`];
  // Untrusted peer: a forged header changes nothing.
  assert.equal((await curl([...xff('203.0.113.9'), gh.url('/ip/office/x')])).status, 403);
  // Trusted peer: the client is the last hop that is not a trusted proxy.
  assert.equal((await curl([...xff('203.0.113.9'), ghTrusting.url('/ip/office/x')])).status, 200);
  assert.equal((await curl([...xff('203.0.113.9, 10.1.2.3'), ghTrusting.url('/ip/office/x')])).status, 200);
  assert.equal((await curl([...xff('203.0.113.9, 198.51.100.1'), ghTrusting.url('/ip/office/x')])).status, 403);
  assert.equal((await curl([...xff('2001:db8::7'), ghTrusting.url('/ip/office/x')])).status, 200);
  assert.equal((await curl([...xff('not-an-ip'), ghTrusting.url('/ip/office/x')])).status, 403);
  // The deny list sees the real client too: a denied address behind a trusted proxy is refused.
  assert.equal((await curl([...xff('10.9.9.9'), ghTrusting.url('/ip/deny/x')])).status, 403);
  assert.equal((await curl([...xff('192.0.2.1'), ghTrusting.url('/ip/deny/x')])).status, 200,
    'the denied 127.0.0.1 is only the proxy here; the client 192.0.2.1 is not denied');
});
