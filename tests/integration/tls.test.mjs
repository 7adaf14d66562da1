// TLS termination: certificates by SNI, protocol floor, ciphers, ALPN, session resumption,
// certificates reloaded with the config, and hostile handshakes. Certificates are made with the
// openssl command line; clients are curl and openssl s_client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import net from 'node:net';
import { startGatehouse, curl, json, waitFor, runGatehouse, makeCa, makeCert, requireTool } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-tls-'));
const file = (n) => path.join(dir, n);

// openssl s_client with input closed at once; resolves its combined output.
function sClient(port, args) {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', file('ca.pem'), ...args]);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.stdin.end('');
    const timer = setTimeout(() => p.kill(), 5000);
    p.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}

// A ClientHello written byte by byte, so that the client offers exactly what a case names whatever
// the local OpenSSL would do (Debian's has no 3DES suite at all, and at its default security level
// curl and s_client give up a TLS 1.0/1.1 handshake themselves, even with a server that accepts
// it): a refusal seen through s_client or curl could be the client's own. `version`: the hello's (legacy) version, with no supported_versions extension, so 0x0303 is
// TLS 1.2 at most; `ciphers`: the suites' code points. Resolves the server's first record:
// { type: 'alert', level, description } (level 2 fatal; 40 handshake_failure, 70 protocol_version),
// { type: 'handshake', message } (message 2: ServerHello), or { type: 'closed' } with no answer.
function serverAnswerTo(port, { version = 0x0303, ciphers, serverName = 'a.test' }) {
  const u8 = (...n) => Buffer.from(n);
  const u16 = (n) => u8(n >> 8, n & 0xff);
  const list16 = (items) => { const b = Buffer.concat(items.map(u16)); return Buffer.concat([u16(b.length), b]); };
  const ext = (type, body) => Buffer.concat([u16(type), u16(body.length), body]);
  const name = Buffer.from(serverName);
  const extensions = Buffer.concat([
    ext(0x0000, Buffer.concat([u16(name.length + 3), u8(0), u16(name.length), name])),  // server_name
    ext(0x000a, list16([0x001d, 0x0017])),  // supported_groups: x25519, secp256r1
    ext(0x000b, u8(1, 0)),  // ec_point_formats: uncompressed
    ext(0x000d, list16([0x0403, 0x0804, 0x0401])),  // signature_algorithms
  ]);
  const hello = Buffer.concat([u16(version), crypto.randomBytes(32), u8(0), list16(ciphers), u8(1, 0),
    u16(extensions.length), extensions]);
  const handshake = Buffer.concat([u8(1, 0), u16(hello.length), hello]);
  const record = Buffer.concat([u8(0x16), u16(0x0301), u16(handshake.length), handshake]);
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(record));
    let buf = Buffer.alloc(0);
    const done = (v) => { clearTimeout(timer); s.destroy(); resolve(v); };
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no answer to the ClientHello within 5 s')); }, 5000);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 7) return;
      if (buf[0] === 0x15) done({ type: 'alert', level: buf[5], description: buf[6] });
      else if (buf[0] === 0x16) done({ type: 'handshake', message: buf[5] });
      else done({ type: 'other', byte: buf[0] });
    });
    s.on('end', () => done({ type: 'closed' }));
    s.on('error', () => done({ type: 'closed' }));
  });
}
const HANDSHAKE_FAILURE = { type: 'alert', level: 2, description: 40 };
const PROTOCOL_VERSION = { type: 'alert', level: 2, description: 70 };
const SERVER_HELLO = { type: 'handshake', message: 2 };
const ECDHE_ECDSA_AES128_GCM_SHA256 = 0xc02b;
const ECDHE_RSA_AES128_GCM_SHA256 = 0xc02f;
const ECDHE_ECDSA_AES128_SHA = 0xc009;

let up, gh, gh13, configText;
before(async () => {
  makeCa(dir, 'ca', 'Gatehouse Test CA');
  makeCert(dir, 'a', 'ca', ['DNS:a.test', 'DNS:*.wild.test'], 'a.test');
  makeCert(dir, 'b', 'ca', ['DNS:b.test'], 'b.test');
  makeCert(dir, 'c', 'ca', ['DNS:c.test'], 'c.test');
  // An RSA certificate, so that suites with RSA key exchange or signatures can be chosen at all
  // (with only EC certificates a server cannot use them, whatever its cipher policy).
  makeCert(dir, 'r', 'ca', ['DNS:r.test'], 'r.test', 'rsa');
  up = await startUpstream({ name: 'u' });
  configText = (defaultCert, extra = '') => `
server:
  listen:
    - address: 127.0.0.1:0
      tls:
        certificates:
          - { cert: ${defaultCert}.pem, key: ${defaultCert}.key }
          - { cert: b.pem, key: b.key }
          - { cert: r.pem, key: r.key }
${extra}
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: u }
`;
  // Relative certificate paths are resolved against the config file's directory.
  fs.writeFileSync(file('gatehouse.yaml'), configText('a'));
  gh = await startGatehouse(null, { configFile: file('gatehouse.yaml') });
  fs.writeFileSync(file('g13.yaml'), configText('a', '        min_version: "1.3"'));
  gh13 = await startGatehouse(null, { configFile: file('g13.yaml') });
});
after(async () => {
  await gh?.stop();
  await gh13?.stop();
  await up?.close();
});

const https = (g, host, p = '/x', extra = []) => curl(['--cacert', file('ca.pem'),
  '--resolve', `${host}:${g.port}:127.0.0.1`, ...extra, `https://${host}:${g.port}${p}`]);

test('HTTPS with the certificate chosen by SNI; X-Forwarded-Proto is https', async () => {
  const r = await https(gh, 'a.test');
  assert.equal(r.status, 200, r.stderr);
  const raw = json(r).headers;
  assert.equal(raw[raw.findIndex((h) => h.toLowerCase() === 'x-forwarded-proto') + 1], 'https');
  assert.equal((await https(gh, 'b.test')).status, 200, 'b.test is served with its own certificate');
  assert.equal((await https(gh, 'x.wild.test')).status, 200, 'wildcard name');
  const subject = (out) => (out.match(/subject=.*CN ?= ?([^\s,/]+)/) || [])[1];
  assert.equal(subject(await sClient(gh.port, ['-servername', 'b.test'])), 'b.test');
  assert.equal(subject(await sClient(gh.port, ['-servername', 'a.test'])), 'a.test');
  assert.equal(subject(await sClient(gh.port, ['-servername', 'unknown.test'])), 'a.test', 'default');
  assert.equal(subject(await sClient(gh.port, ['-noservername'])), 'a.test', 'no SNI: default');
  // curl checks the name against the certificate: c.test is not served here.
  assert.notEqual((await https(gh, 'c.test')).code, 0);
});

test('protocol floor and ciphers: the server refuses TLS 1.0/1.1 and weak ciphers with an alert', async () => {
  assert.equal((await https(gh, 'a.test', '/x', ['--tlsv1.2', '--tls-max', '1.2'])).status, 200);
  assert.equal((await https(gh13, 'a.test')).status, 200);
  // The hand-written hello is good: offering TLS 1.2 and a strong suite, the server answers with
  // its ServerHello, for the EC and for the RSA certificate. Each case below changes only what the
  // server must refuse.
  assert.deepEqual(await serverAnswerTo(gh.port, { ciphers: [ECDHE_ECDSA_AES128_GCM_SHA256] }), SERVER_HELLO);
  assert.deepEqual(await serverAnswerTo(gh.port, { ciphers: [ECDHE_RSA_AES128_GCM_SHA256], serverName: 'r.test' }),
    SERVER_HELLO, 'RSA certificate');
  // TLS 1.0 and 1.1, with suites those versions have: the server's protocol_version alert.
  for (const [name, version] of [['TLS 1.0', 0x0301], ['TLS 1.1', 0x0302]]) {
    assert.deepEqual(await serverAnswerTo(gh.port, { version, ciphers: [ECDHE_ECDSA_AES128_SHA, 0xc00a, 0x002f] }),
      PROTOCOL_VERSION, name);
  }
  assert.deepEqual(await serverAnswerTo(gh13.port, { ciphers: [ECDHE_ECDSA_AES128_GCM_SHA256] }), PROTOCOL_VERSION,
    'min_version 1.3: TLS 1.2 refused');
  // TLS 1.2 offering only a weak suite, one the certificate chosen by the name could serve: the
  // server's handshake_failure alert (no shared cipher).
  for (const [name, code, serverName] of [
    ['ECDHE-ECDSA-AES128-SHA', ECDHE_ECDSA_AES128_SHA, 'a.test'], ['ECDHE-ECDSA-DES-CBC3-SHA', 0xc008, 'a.test'],
    ['AES128-SHA', 0x002f, 'r.test'], ['DES-CBC3-SHA', 0x000a, 'r.test'], ['ECDHE-RSA-DES-CBC3-SHA', 0xc012, 'r.test']]) {
    assert.deepEqual(await serverAnswerTo(gh.port, { ciphers: [code], serverName }), HANDSHAKE_FAILURE, name);
  }
});

test('ALPN: http/1.1 is negotiated; a client offering only h2 is refused', async () => {
  assert.match(await sClient(gh.port, ['-alpn', 'http/1.1', '-servername', 'a.test']), /ALPN protocol: http\/1\.1/);
  const h2only = await sClient(gh.port, ['-alpn', 'h2', '-servername', 'a.test']);
  assert.match(h2only, /no application protocol|alert/i);
});

test('session resumption', async () => {
  const sess = file('session.pem');
  await sClient(gh.port, ['-tls1_2', '-servername', 'a.test', '-sess_out', sess]);
  assert.match(await sClient(gh.port, ['-tls1_2', '-servername', 'a.test', '-sess_in', sess]), /Reused, TLSv1\.2/);
});

test('keep-alive and large bodies both ways over TLS', async () => {
  const urls = [1, 2, 3].map((i) => `https://a.test:${gh.port}/echo/${i}`);
  const r = await curl(['--cacert', file('ca.pem'), '--resolve', `a.test:${gh.port}:127.0.0.1`,
    '-w', '%{num_connects}\\n', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', ...urls]);
  const connects = r.body.split('\n').map((l) => l.trim()).filter((l) => /^\d+$/.test(l));
  assert.deepEqual(connects, ['1', '0', '0'], 'one TLS connection for three requests');
  const down = await https(gh, 'a.test', '/stream/3000000?cl=1', ['-o', '/dev/null', '-w', '%{size_download}']);
  assert.equal(down.body, '3000000');
  const payload = crypto.randomBytes(2_500_000);
  fs.writeFileSync(file('payload.bin'), payload);
  const upl = await https(gh, 'a.test', '/sink', ['--data-binary', `@${file('payload.bin')}`]);
  assert.equal(json(upl).bytes, payload.length);
  assert.equal(json(upl).sha256, crypto.createHash('sha256').update(payload).digest('hex'));
});

test('hostile handshakes: plain HTTP, garbage and silence are cut off; the listener lives on', async () => {
  const plain = await curl([`http://127.0.0.1:${gh.port}/x`]);
  assert.notEqual(plain.code, 0);
  await new Promise((resolve) => {
    const s = net.connect(gh.port, '127.0.0.1', () => s.write(Buffer.alloc(300, 0x16)));
    s.on('error', resolve);
    s.on('close', resolve);
  });
  assert.equal((await https(gh, 'a.test')).status, 200);
});

test('certificates are reloaded with the config', async () => {
  fs.writeFileSync(file('gatehouse.yaml'), configText('c'));
  gh.proc.kill('SIGHUP');
  const subject = async () => ((await sClient(gh.port, ['-noservername'])).match(/subject=.*CN ?= ?([^\s,/]+)/) || [])[1];
  await waitFor(async () => (await subject()) === 'c.test', 5000, 'the new default certificate');
  assert.equal((await https(gh, 'c.test')).status, 200);
});

test('testssl.sh: no weak protocol or cipher category is offered on a default listener', () => {
  requireTool('testssl');  // Debian's testssl.sh package installs it under this name
  const out = file('testssl.json');
  execFileSync('testssl', ['--quiet', '--color', '0', '-p', '-s', '--jsonfile', out, `127.0.0.1:${gh.port}`],
    { stdio: 'ignore', timeout: 120000 });
  const finding = Object.fromEntries(JSON.parse(fs.readFileSync(out, 'utf8')).map((e) => [e.id, e.finding]));
  for (const weak of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'cipherlist_NULL', 'cipherlist_aNULL',
    'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_AVERAGE']) {
    assert.equal(finding[weak], 'not offered', weak);
  }
  assert.equal(finding.TLS1_2, 'offered');
  assert.match(finding.TLS1_3, /^offered/);
  assert.equal(finding.cipherlist_STRONG, 'offered');
});

test('TLS config errors name the file and line', () => {
  const bad = file('bad.yaml');
  fs.writeFileSync(bad, configText('missing'));
  let r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml:\d+:\d+: server\.listen\[0\]\.tls: cannot use the certificate .*missing\.pem/);
  fs.writeFileSync(bad, configText('a').replace('key: a.key', 'key: b.key'));
  r = runGatehouse(['validate', '-c', bad]);
  assert.match(r.stderr, /does not match the certificate/);
  fs.writeFileSync(bad, configText('a', '        min_version: "1.1"'));
  r = runGatehouse(['validate', '-c', bad]);
  assert.match(r.stderr, /min_version: expected "1\.2" or "1\.3"/);
});
