// jwt_auth end to end: tokens signed by an independent implementation (jose), one per algorithm,
// the attack cases, scopes, claims forwarded, consumers and ACLs from claims, and a JWKS served by
// a test identity provider that rotates its keys during the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import * as jose from 'jose';
import { startGatehouse, curl, json, tempFile, sleep, waitFor, freePort } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const ISS = 'https://id.test/';
const AUD = 'api';
const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
const HMAC_SECRET = crypto.randomBytes(48).toString('base64url');

// The identity provider: serves whatever `idp.jwks` holds and counts fetches.
const idp = { jwks: { keys: [] }, fetches: 0, up: true, server: null, port: 0 };
const keys = {};  // alg -> { kid, privateKey, publicJwk }
let up, gh, fileKey, rotated;

async function makeKey(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

function sign(key, claims = {}, { header = {}, exp = '2m' } = {}) {
  let jwt = new jose.SignJWT({ sub: 'user-1', scope: 'read', ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .setIssuer(ISS)
    .setAudience(AUD);
  if (claims.iat === undefined) jwt = jwt.setIssuedAt();
  if (exp) jwt = jwt.setExpirationTime(exp);
  return jwt.sign(key.privateKey);
}

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

before(async () => {
  for (const alg of ALGS) keys[alg] = await makeKey(alg, `k-${alg}`);
  idp.jwks = { keys: ALGS.map((a) => keys[a].publicJwk) };
  idp.server = http.createServer((req, res) => {
    if (!idp.up) { req.socket.destroy(); return; }
    idp.fetches++;
    const body = JSON.stringify(idp.jwks);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((r) => idp.server.listen(0, '127.0.0.1', r));
  idp.port = idp.server.address().port;

  fileKey = await makeKey('ES256', 'file-1');
  const jwksFile = tempFile('jwks.json', JSON.stringify({ keys: [fileKey.publicJwk] }));
  up = await startUpstream({ name: 'u' });
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
consumers:
  - { name: alice, groups: [admins] }
jwt_providers:
  idp:
    issuer: ${ISS}
    audiences: [${AUD}]
    jwks_url: http://127.0.0.1:${idp.port}/jwks
    refresh: 1h
    algorithms: [${ALGS.join(', ')}]
    leeway: 5s
    token_from: [ "header:authorization", "cookie:session", "query:access_token" ]
    consumer_claim: sub
    forward_claims: { sub: x-user-id, scope: x-user-scopes }
  shared-secret:
    algorithms: [HS256, HS384, HS512]
    keys: [ { secret_env: GH_TEST_JWT_SECRET, kid: h1 } ]
  from-file:
    algorithms: [ES256]
    jwks_file: ${jwksFile}
    forward_token: false
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: jwt, match: { path: /jwt/* }, to: u, plugins: { jwt_auth: { provider: idp } } }
  - { name: scoped, match: { path: /scoped/* }, to: u, plugins: { jwt_auth: { provider: idp, require_scopes: [read, write] } } }
  - name: admin
    match: { path: /admin/* }
    to: u
    plugins: { jwt_auth: { provider: idp }, acl: { allow_groups: [admins] } }
  - { name: hmac, match: { path: /hmac/* }, to: u, plugins: { jwt_auth: { provider: shared-secret } } }
  - { name: file, match: { path: /file/* }, to: u, plugins: { jwt_auth: { provider: from-file } } }
`, { env: { GH_TEST_JWT_SECRET: HMAC_SECRET } });
  // The first fetch of the JWKS happens in the background right after start.
  await waitFor(async () => (await curl(['-H', `Authorization: Bearer ${await sign(keys.ES256)}`, gh.url('/jwt/x')])).status === 200,
    5000, 'the JWKS to be fetched');
});
after(async () => {
  await gh?.stop();
  await up?.close();
  idp.server?.close();
});

const bearer = (t) => ['-H', `Authorization: Bearer ${t}`];
function upstreamHeader(res, name) {
  const raw = json(res).headers;
  const out = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}

test('one token per algorithm, signed by jose, is accepted; claims and consumer go upstream', async () => {
  for (const alg of ALGS) {
    const r = await curl([...bearer(await sign(keys[alg], { sub: `user-${alg}` })), gh.url('/jwt/x')]);
    assert.equal(r.status, 200, alg);
    assert.deepEqual(upstreamHeader(r, 'x-user-id'), [`user-${alg}`], alg);
    assert.deepEqual(upstreamHeader(r, 'x-consumer-name'), [`user-${alg}`], alg);
    assert.deepEqual(upstreamHeader(r, 'x-user-scopes'), ['read'], alg);
  }
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    const t = await new jose.SignJWT({ sub: 'svc' }).setProtectedHeader({ alg, kid: 'h1' })
      .setExpirationTime('1m').sign(Buffer.from(HMAC_SECRET));
    assert.equal((await curl([...bearer(t), gh.url('/hmac/x')])).status, 200, alg);
  }
  assert.equal((await curl([...bearer(await sign(fileKey)), gh.url('/file/x')])).status, 200, 'jwks_file');
});

test('tokens from a cookie and from the query; forward_token: false removes it', async () => {
  const t = await sign(keys.ES256);
  assert.equal((await curl(['-H', `Cookie: a=1; session=${t}; b=2`, gh.url('/jwt/x')])).status, 200);
  assert.equal((await curl([gh.url(`/jwt/x?access_token=${t}`)])).status, 200);
  const kept = await curl([...bearer(t), gh.url('/jwt/x')]);
  assert.equal(upstreamHeader(kept, 'authorization').length, 1, 'forwarded by default');
  const removed = await curl([...bearer(await sign(fileKey)), gh.url('/file/x')]);
  assert.deepEqual(upstreamHeader(removed, 'authorization'), []);
});

test('missing and bad tokens: 401, one message, RFC 6750 challenges, nothing forwarded', async () => {
  const rsa = keys.RS256;
  const good = await sign(rsa);
  const [h, p, s] = good.split('.');
  const spki = await jose.exportSPKI(rsa.publicKey);
  const cases = {
    expired: await sign(rsa, { exp: Math.floor(Date.now() / 1000) - 60 }, { exp: null }),
    'not yet valid': await sign(rsa, { nbf: Math.floor(Date.now() / 1000) + 600 }),
    'issued in the future': await sign(rsa, { iat: Math.floor(Date.now() / 1000) + 600 }),
    'wrong issuer': await new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
      .setIssuer('https://evil.test/').setAudience(AUD).setExpirationTime('1m').sign(rsa.privateKey),
    'wrong audience': await new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
      .setIssuer(ISS).setAudience('other').setExpirationTime('1m').sign(rsa.privateKey),
    'tampered payload': `${h}.${b64({ sub: 'admin', iss: ISS, aud: AUD, exp: 9999999999 })}.${s}`,
    'tampered signature': `${h}.${p}.${s.slice(0, -4)}AAAA`,
    'alg none': `${b64({ alg: 'none', kid: rsa.kid })}.${p}.`,
    'alg not configured (HS256 on the RSA provider)': await new jose.SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
      .setIssuer(ISS).setAudience(AUD).setExpirationTime('1m').sign(Buffer.from('x'.repeat(32))),
    'algorithm confusion (HMAC keyed with the RSA public key)': await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).setIssuer(ISS).setAudience(AUD)
      .setExpirationTime('1m').sign(Buffer.from(spki)),
    // jose itself refuses to make one unless told the extension is understood.
    'crit header': await new jose.CompactSign(Buffer.from(JSON.stringify({ iss: ISS, aud: AUD, exp: 9999999999 })))
      .setProtectedHeader({ alg: 'RS256', kid: rsa.kid, crit: ['x-unknown'], 'x-unknown': 1 })
      .sign(rsa.privateKey, { crit: { 'x-unknown': true } }),
    'bad base64': `${h}.${p}.${s}=`,
    'two parts': `${h}.${p}`,
    'not JSON': `${Buffer.from('not json').toString('base64url')}.${p}.${s}`,
    oversized: await sign(rsa, { pad: 'x'.repeat(9000) }),
    'unknown kid': await sign({ ...rsa, kid: 'nobody-knows-me' }),
  };
  const before = up.state.requests;
  for (const [what, token] of Object.entries(cases)) {
    const r = await curl([...bearer(token), gh.url('/jwt/x')]);
    assert.equal(r.status, 401, what);
    assert.equal(json(r).error, 'unauthorized', what);
    assert.equal(json(r).message, 'a valid bearer token is required', what);
    assert.equal(r.headers['www-authenticate'][0], 'Bearer realm="gatehouse", error="invalid_token"', what);
  }
  const none = await curl([gh.url('/jwt/x')]);
  assert.equal(none.status, 401);
  assert.equal(none.headers['www-authenticate'][0], 'Bearer realm="gatehouse"');
  const basic = await curl(['-H', `Authorization: Basic ${good}`, gh.url('/jwt/x')]);
  assert.equal(basic.status, 401, 'only the Bearer scheme carries a token');
  assert.equal(up.state.requests, before, 'nothing reached the upstream');
});

test('scopes: a missing one is 403 insufficient_scope; "scope" string and "scp" array both count', async () => {
  const es = keys.ES256;
  const readOnly = await curl([...bearer(await sign(es, { scope: 'read' })), gh.url('/scoped/x')]);
  assert.equal(readOnly.status, 403);
  assert.match(readOnly.headers['www-authenticate'][0], /error="insufficient_scope"/);
  assert.equal((await curl([...bearer(await sign(es, { scope: 'write read admin' })), gh.url('/scoped/x')])).status, 200);
  assert.equal((await curl([...bearer(await sign(es, { scope: undefined, scp: ['read', 'write'] })), gh.url('/scoped/x')])).status, 200);
});

test('consumer from a claim: a configured consumer brings its groups to the ACL', async () => {
  const alice = await curl([...bearer(await sign(keys.EdDSA, { sub: 'alice' })), gh.url('/admin/x')]);
  assert.equal(alice.status, 200);
  assert.deepEqual(upstreamHeader(alice, 'x-consumer-groups'), ['admins']);
  const bob = await curl([...bearer(await sign(keys.EdDSA, { sub: 'bob' })), gh.url('/admin/x')]);
  assert.equal(bob.status, 403);
});

test('claim headers sent by the client are dropped', async () => {
  const r = await curl(['-H', 'X-User-Id: admin', '-H', 'X-User-Scopes: everything',
    ...bearer(await sign(keys.ES384, { sub: 'carol', scope: undefined })), gh.url('/jwt/x')]);
  assert.deepEqual(upstreamHeader(r, 'x-user-id'), ['carol']);
  assert.deepEqual(upstreamHeader(r, 'x-user-scopes'), []);
});

test('JWKS rotation: a new kid is fetched on first sight; old keys keep working; unknown kids cannot flood the IdP', async () => {
  const fresh = rotated = await makeKey('ES256', 'rotated-1');
  idp.jwks = { keys: [...idp.jwks.keys, fresh.publicJwk] };
  const token = await sign(fresh);
  const first = await curl([...bearer(token), gh.url('/jwt/x')]);
  assert.equal(first.status, 401, 'not known yet: refused, and a fetch is asked for');
  // Within kMinRefetch (5 s) of the previous fetch plus one fetcher tick.
  await waitFor(async () => (await curl([...bearer(token), gh.url('/jwt/x')])).status === 200, 8000, 'the rotated key');
  assert.equal((await curl([...bearer(await sign(keys.RS256)), gh.url('/jwt/x')])).status, 200, 'old keys still work');

  // The IdP drops every old key; they stay in use until the next scheduled refresh (1h here).
  idp.jwks = { keys: [fresh.publicJwk] };
  const oldKeyToken = await sign(keys.PS256);
  assert.equal((await curl([...bearer(oldKeyToken), gh.url('/jwt/x')])).status, 200);

  // A flood of made-up kids: at most one fetch per 5 s. (A wish left by the requests above may
  // have started one just before; so count over 6.5 s, in which at most two can happen.)
  await sleep(5200);
  const fetchesBefore = idp.fetches;
  await Promise.all(Array.from({ length: 30 }, (_, i) => sign({ ...keys.ES256, kid: `made-up-${i}` })
    .then((t) => curl([...bearer(t), gh.url('/jwt/x')]))));
  await sleep(6500);
  const fetched = idp.fetches - fetchesBefore;
  assert.ok(fetched >= 1 && fetched <= 2, `${fetched} fetches for thirty unknown kids in 6.5 s`);
  // That fetch brought the set without the old keys: a token verified (and cached) with one of
  // them is refused now.
  assert.equal((await curl([...bearer(oldKeyToken), gh.url('/jwt/x')])).status, 401);
});

test('an IdP that is down keeps the keys already fetched', async () => {
  idp.up = false;
  await sleep(5200);
  await curl([...bearer(await sign({ ...keys.ES256, kid: 'unknown-while-down' })), gh.url('/jwt/x')]);
  await sleep(1500);  // the fetch fails
  // The set fetched last (only the rotated key, after the flood's refetch) stays in use.
  const r = await curl([...bearer(await sign(rotated)), gh.url('/jwt/x')]);
  assert.equal(r.status, 200);
  assert.match(gh.stderr, /jwks: fetching .* failed .* the keys fetched before stay in use/);
  idp.up = true;
});

test('keys not fetched yet: 503 with Retry-After, then served once the IdP answers', async () => {
  const port = await freePort();
  const late = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
jwt_providers:
  late: { algorithms: [ES256], jwks_url: "http://127.0.0.1:${port}/jwks" }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: u, plugins: { jwt_auth: { provider: late } } }
`);
  try {
    const token = await sign(keys.ES256);
    const r = await curl([...bearer(token), late.url('/x')]);
    assert.equal(r.status, 503);
    assert.equal(json(r).error, 'auth_unavailable');
    assert.deepEqual(r.headers['retry-after'], ['1']);
    const server = http.createServer((req, res) => res.end(JSON.stringify({ keys: [keys.ES256.publicJwk] })));
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await waitFor(async () => (await curl([...bearer(token), late.url('/x')])).status === 200, 8000, 'the late JWKS');
    } finally {
      server.close();
    }
  } finally {
    await late.stop();
  }
});

test('a JWKS over HTTPS: the identity provider is verified (CA, name), and a wrong name is refused', async () => {
  const { execFileSync } = await import('node:child_process');
  const fsm = await import('node:fs');
  const https = await import('node:https');
  const dir = fsm.mkdtempSync(`${(await import('node:os')).tmpdir()}/gatehouse-jwks-`);
  const run = (...args) => execFileSync('openssl', args, { stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/ca.key`,
    '-out', `${dir}/ca.pem`, '-days', '2', '-subj', '/CN=JWKS Test CA');
  fsm.writeFileSync(`${dir}/ext`, 'subjectAltName=DNS:localhost\n');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/idp.key`,
    '-out', `${dir}/idp.csr`, '-subj', '/CN=localhost');
  run('x509', '-req', '-in', `${dir}/idp.csr`, '-CA', `${dir}/ca.pem`, '-CAkey', `${dir}/ca.key`, '-CAcreateserial',
    '-out', `${dir}/idp.pem`, '-days', '2', '-extfile', `${dir}/ext`);
  const server = https.createServer({ key: fsm.readFileSync(`${dir}/idp.key`), cert: fsm.readFileSync(`${dir}/idp.pem`) },
    (req, res) => res.end(JSON.stringify({ keys: [keys.EdDSA.publicJwk] })));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const config = (host) => `
server:
  listen: [ { address: 127.0.0.1:0 } ]
jwt_providers:
  tls: { algorithms: [EdDSA], jwks_url: "https://${host}:${server.address().port}/jwks" }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: u, plugins: { jwt_auth: { provider: tls } } }
`;
  // The test CA is the only one this gatehouse trusts (OpenSSL honours SSL_CERT_FILE).
  const env = { SSL_CERT_FILE: `${dir}/ca.pem` };
  const good = await startGatehouse(config('localhost'), { env });
  const wrongName = await startGatehouse(config('127.0.0.1'), { env });
  try {
    const token = await sign(keys.EdDSA);
    await waitFor(async () => (await curl([...bearer(token), good.url('/x')])).status === 200, 5000, 'the JWKS over HTTPS');
    await sleep(1500);
    assert.equal((await curl([...bearer(token), wrongName.url('/x')])).status, 503, 'a certificate for another name');
    assert.match(wrongName.stderr, /jwks: fetching https:\/\/127\.0\.0\.1:\d+\/jwks failed \(TLS/);
  } finally {
    await good.stop();
    await wrongName.stop();
    server.close();
  }
});
