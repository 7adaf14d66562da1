// HTTPS to upstreams: the gateway verifies the upstream's certificate (a CA file, or the system
// store), sends SNI, checks the name, pools established TLS connections and resumes sessions.
// Certificates are made with the openssl command line; the upstreams are Node https servers that
// report what they saw (SNI, protocol, ALPN, resumption) and count TLS connections.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { startGatehouse, curl, json, runGatehouse, waitFor, freePort, sleep, makeCa, makeCert } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-uptls-'));
const file = (n) => path.join(dir, n);

// An https upstream. /mirror answers the request body back, /status/NNN answers NNN; anything else
// answers what it saw.
function startHttpsUpstream(cert, tlsOptions = {}) {
  const state = { requests: 0, checks: 0, tls: 0, resumed: 0, servernames: [] };
  const server = https.createServer({
    key: fs.readFileSync(file(`${cert}.key`)), cert: fs.readFileSync(file(`${cert}.pem`)), ...tlsOptions,
  }, (req, res) => {
    state.requests++;
    if (req.headers['user-agent'] === 'gatehouse-health-check') state.checks++;
    const status = req.url.match(/\/status\/(\d{3})$/);
    if (status) {
      res.writeHead(Number(status[1]), { 'content-length': 0 });
      res.end();
      return;
    }
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url.endsWith('/mirror')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
        return;
      }
      const out = JSON.stringify({
        method: req.method, url: req.url, headers: req.rawHeaders, body_bytes: body.length,
        servername: req.socket.servername, protocol: req.socket.getProtocol(),
        alpn: req.socket.alpnProtocol, reused: req.socket.isSessionReused(),
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  server.on('secureConnection', (s) => {
    state.tls++;
    if (s.isSessionReused()) state.resumed++;
    state.servernames.push(s.servername);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, state,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  })));
}

// Accepts TCP connections and never says a word: a TLS handshake that never completes.
function startSilent() {
  const socks = [];
  const server = net.createServer((s) => { socks.push(s); s.on('error', () => {}); });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    close: () => new Promise((r) => { socks.forEach((s) => s.destroy()); server.close(() => r()); }),
  })));
}

// A TLS server on a raw socket, answering a close-delimited response: /notify ends it with
// close_notify, anything else closes the TCP connection under TLS without one (a truncation).
function startCloseDelimited() {
  const server = net.createServer((raw) => {
    const t = new tls.TLSSocket(raw, { isServer: true, key: fs.readFileSync(file('up.key')), cert: fs.readFileSync(file('up.pem')) });
    t.on('error', () => {});
    t.once('data', (d) => {
      const response = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of this until the close';
      if (String(d).includes('/notify')) t.end(response);
      else t.write(response, () => setTimeout(() => raw.end(), 50));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, close: () => new Promise((r) => server.close(() => r())),
  })));
}

const tlsTo = (extra = '') => `{ ca_file: ca.pem, server_name: up.test${extra} }`;

let good, keep, resume, wrong, tls12, plain, silent, untilClose, gh;
before(async () => {
  makeCa(dir, 'ca');
  makeCa(dir, 'ca2');
  makeCert(dir, 'up', 'ca', ['DNS:up.test', 'IP:127.0.0.1']);
  makeCert(dir, 'other', 'ca', ['DNS:other.test']);
  good = await startHttpsUpstream('up');
  keep = await startHttpsUpstream('up');
  resume = await startHttpsUpstream('up');
  wrong = await startHttpsUpstream('other');
  tls12 = await startHttpsUpstream('up', { maxVersion: 'TLSv1.2' });
  plain = await startUpstream({ name: 'plain' });
  silent = await startSilent();
  untilClose = await startCloseDelimited();
  const at = (u) => `targets: [ { address: 127.0.0.1:${u.port} } ]`;
  // Relative paths (ca.pem) are resolved against the config file's directory.
  fs.writeFileSync(file('gatehouse.yaml'), `
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  good: { ${at(good)}, tls: ${tlsTo()} }
  keep: { ${at(keep)}, tls: ${tlsTo()} }
  resume: { ${at(resume)}, tls: ${tlsTo()}, max_idle_per_target: 0 }
  byip: { ${at(good)}, tls: { ca_file: ca.pem } }
  wrongname: { ${at(wrong)}, tls: ${tlsTo()} }
  otherca: { ${at(good)}, tls: { ca_file: ca2.pem, server_name: up.test } }
  noverify: { ${at(good)}, tls: { ca_file: ca2.pem, server_name: up.test, verify: false } }
  plain: { ${at(plain)}, tls: ${tlsTo()} }
  tls12: { ${at(tls12)}, tls: ${tlsTo()} }
  only13: { ${at(tls12)}, tls: ${tlsTo(', min_version: "1.3"')} }
  silent: { ${at(silent)}, tls: ${tlsTo()}, timeouts: { connect: 300ms } }
  untilclose: { ${at(untilClose)}, tls: ${tlsTo()} }
routes:
${['good', 'keep', 'resume', 'byip', 'wrongname', 'otherca', 'noverify', 'plain', 'tls12', 'only13', 'silent', 'untilclose']
    .map((u) => `  - { match: { path: /${u}/* }, to: ${u} }`).join('\n')}
`);
  gh = await startGatehouse(null, { configFile: file('gatehouse.yaml') });
});
after(async () => {
  await gh?.stop();
  for (const u of [good, keep, resume, wrong, tls12, plain, silent, untilClose]) await u?.close();
});

test('requests reach the upstream over TLS, with SNI = server_name and ALPN http/1.1', async () => {
  const r = await curl([gh.url('/good/x?y=1')]);
  assert.equal(r.status, 200, r.body);
  const seen = json(r);
  assert.equal(seen.servername, 'up.test');
  assert.equal(seen.protocol, 'TLSv1.3');
  assert.equal(seen.alpn, 'http/1.1');
  assert.equal(seen.url, '/good/x?y=1');
  assert.equal(seen.method, 'GET');
  assert.ok(good.state.servernames.every((n) => n === 'up.test'));
});

test('an IP target without server_name: no SNI (RFC 6066), checked against the IP in the certificate', async () => {
  const r = await curl([gh.url('/byip/x')]);
  assert.equal(r.status, 200, r.body);
  assert.equal(json(r).servername, false, 'no SNI for an IP address');
});

test('keep-alive: several requests share one TLS connection', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await curl([gh.url(`/keep/${i}`)]);
    assert.equal(r.status, 200, r.body);
    assert.equal(json(r).url, `/keep/${i}`);
  }
  assert.equal(keep.state.requests, 5);
  assert.equal(keep.state.tls, 1, 'one TLS handshake for five requests');
});

test('a 1 MB body up and down, intact', async () => {
  const payload = crypto.randomBytes(1024 * 1024);
  fs.writeFileSync(file('payload.bin'), payload);
  const r = await curl(['--data-binary', `@${file('payload.bin')}`, '-o', file('back.bin'), gh.url('/good/mirror')]);
  assert.equal(r.status, 200, r.stderr);
  const back = fs.readFileSync(file('back.bin'));
  assert.equal(back.length, payload.length);
  assert.ok(back.equals(payload), 'the same bytes came back');
});

test('new connections resume the TLS session', async () => {
  for (let i = 0; i < 3; i++) assert.equal((await curl([gh.url('/resume/x')])).status, 200);
  assert.equal(resume.state.tls, 3, 'max_idle_per_target: 0 makes a connection per request');
  assert.ok(resume.state.resumed >= 1, `resumed ${resume.state.resumed} of 3`);
});

test('TLS 1.2 upstreams work; min_version "1.3" refuses them', async () => {
  const r = await curl([gh.url('/tls12/x')]);
  assert.equal(r.status, 200, r.body);
  assert.equal(json(r).protocol, 'TLSv1.2');
  const refused = await curl([gh.url('/only13/x')]);
  assert.equal(refused.status, 502);
  assert.equal(json(refused).error, 'upstream_tls_failed');
});

test('a certificate for another name -> 502 upstream_tls_failed', async () => {
  const r = await curl([gh.url('/wrongname/x')]);
  assert.equal(r.status, 502);
  const body = json(r);
  assert.equal(body.error, 'upstream_tls_failed');
  assert.match(body.message, /^wrongname \(127\.0\.0\.1:\d+\) TLS handshake failed: certificate verify failed: hostname mismatch/);
  assert.ok(body.request_id);
  assert.equal(wrong.state.requests, 0, 'nothing was sent');
});

test('a CA file that did not sign the certificate -> 502; verify: false accepts it', async () => {
  const r = await curl([gh.url('/otherca/x')]);
  assert.equal(r.status, 502);
  assert.equal(json(r).error, 'upstream_tls_failed');
  assert.match(json(r).message, /certificate verify failed: unable to get local issuer certificate/);
  const lax = await curl([gh.url('/noverify/x')]);
  assert.equal(lax.status, 200, lax.body);
  assert.match(gh.stderr, /warn.*gatehouse\.yaml:\d+:\d+: upstreams\.noverify\.tls\.verify: certificate verification is off/);
});

test('a plain-HTTP target behind tls -> 502, and the gateway stays healthy', async () => {
  const r = await curl([gh.url('/plain/x')]);
  assert.equal(r.status, 502);
  assert.equal(json(r).error, 'upstream_tls_failed');
  assert.match(json(r).message, /TLS handshake failed: the peer does not speak TLS/);
  assert.equal(plain.state.requests, 0, 'no HTTP request went out in the clear');
  const again = await curl([gh.url('/good/after')]);
  assert.equal(again.status, 200);
  assert.equal(gh.proc.exitCode, null);
});

test('health checks of a tls upstream GET the path over verified TLS', async () => {
  const checked = await startHttpsUpstream('up');
  const check = (path) => `{ path: ${path}, interval: 100ms, timeout: 500ms, unhealthy_after: 1 }`;
  fs.writeFileSync(file('health.yaml'), `
server: { workers: 1, listen: [ { address: 127.0.0.1:0 } ] }
upstreams:
  passing: { targets: [ { address: 127.0.0.1:${checked.port} } ], tls: ${tlsTo()}, health_check: ${check('/ok')} }
  failing: { targets: [ { address: 127.0.0.1:${checked.port} } ], tls: ${tlsTo()}, health_check: ${check('/status/503')} }
  wrongname: { targets: [ { address: 127.0.0.1:${wrong.port} } ], tls: ${tlsTo()}, health_check: ${check('/ok')} }
routes:
${['passing', 'failing', 'wrongname'].map((u) => `  - { match: { path: /${u}/* }, to: ${u} }`).join('\n')}
`);
  const g = await startGatehouse(null, { configFile: file('health.yaml') });
  try {
    // A 503 from the health path, and a certificate for another name, each fail the check.
    await waitFor(() => /health: failing target \S+ is unhealthy/.test(g.stderr) &&
      /health: wrongname target \S+ is unhealthy/.test(g.stderr), 3000, 'both failing upstreams marked unhealthy');
    await waitFor(() => checked.state.checks >= 4, 3000, 'a few checks over TLS');
    assert.doesNotMatch(g.stderr, /health: passing target/);
    assert.equal((await curl([g.url('/passing/x')])).status, 200);
    for (const u of ['failing', 'wrongname']) {
      const r = await curl([g.url(`/${u}/x`)]);
      assert.equal(r.status, 503, u);
      assert.equal(json(r).error, 'upstream_unavailable');
    }
  } finally {
    await g.stop();
    await checked.close();
  }
});

test('a handshake that stalls -> 504 within the connect timeout', async () => {
  const t0 = Date.now();
  const r = await curl([gh.url('/silent/x')]);
  assert.equal(r.status, 504);
  assert.equal(json(r).error, 'upstream_connect_timeout');
  assert.match(json(r).message, /did not complete the TLS handshake within 300ms/);
  assert.ok(Date.now() - t0 < 3000);
});

test('a close-delimited body ends with close_notify; a bare TCP close is a truncation (RFC 8446 6.1)', async () => {
  const whole = await curl([gh.url('/untilclose/notify')]);
  assert.equal(whole.status, 200);
  assert.equal(whole.body, 'all of this until the close');
  const cut = await curl([gh.url('/untilclose/cut')]);
  assert.equal(cut.status, 200, 'the head had already gone to the client');
  const log = await waitFor(() => {
    const lines = gh.accessLog().filter((l) => l.path.startsWith('/untilclose/'));
    return lines.length === 2 && lines;
  }, 3000, 'two access log lines');
  assert.equal(log[0].error, undefined);
  assert.equal(log[1].error, 'upstream_reset_mid_body');
});

test('a reload that turns verification on never reuses connections made without it', async () => {
  const cfg = (verify) => `
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:${good.port} } ], tls: { ca_file: ca2.pem, server_name: up.test, verify: ${verify} } }
routes:
  - { match: { path: /* }, to: u }
`;
  fs.writeFileSync(file('reload.yaml'), cfg(false));
  const g = await startGatehouse(null, { configFile: file('reload.yaml') });
  try {
    assert.equal((await curl([g.url('/x')])).status, 200, 'unverified, pooled');
    fs.writeFileSync(file('reload.yaml'), cfg(true));
    g.proc.kill('SIGHUP');
    await waitFor(() => /reloaded/.test(g.stderr), 5000, 'the reload');
    const r = await curl([g.url('/x')]);
    assert.equal(r.status, 502, 'the pooled unverified connection is not used');
    assert.equal(json(r).error, 'upstream_tls_failed');
  } finally {
    await g.stop();
  }
});

// openssl s_server as a hand-driven HTTP upstream: what it decrypts shows on its stdout, what we
// write to its stdin goes out encrypted, and a line "k" sends a TLS 1.3 KeyUpdate (RFC 8446
// 4.6.3): a TLS record on a connection with no request in flight, like a late session ticket.
test('records that arrive on an idle pooled TLS connection (a KeyUpdate) do not make it look dead', async () => {
  const port = await freePort();
  // stdbuf: s_server's own messages go through stdio, buffered on a pipe.
  const srv = spawn('stdbuf', ['-o0', 'openssl', 's_server', '-accept', `127.0.0.1:${port}`, '-cert', file('up.pem'),
    '-key', file('up.key'), '-tls1_3', '-naccept', '2']);
  let out = '';
  srv.stdout.on('data', (d) => { out += d; });
  srv.stderr.on('data', (d) => { out += d; });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  ku: { targets: [ { address: 127.0.0.1:${port} } ], tls: { ca_file: ${file('ca.pem')}, server_name: up.test } }
routes:
  - { match: { path: /* }, to: ku }
`);
  try {
    await waitFor(() => /ACCEPT/.test(out), 5000, 's_server to listen');
    const answer = async (p) => {
      const res = curl([g.url(p)]);
      await waitFor(() => out.includes(`GET ${p} HTTP/1.1`), 5000, `the request for ${p}`);
      srv.stdin.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      return res;
    };
    assert.equal((await answer('/one')).status, 200);
    srv.stdin.write('k\n');
    await waitFor(() => /SSL_do_handshake -> 1/.test(out), 5000, 'the KeyUpdate');
    await sleep(50);  // past the pool's trust window: the idle check runs
    const second = await answer('/two');
    assert.equal(second.status, 200, second.body);
    assert.equal(second.body, 'ok');
    assert.doesNotMatch(out, /CONNECTION CLOSED/, 'the second request used the pooled connection');
  } finally {
    srv.kill();
    await g.stop();
  }
});

test('config errors name the file and line', () => {
  const bad = file('bad.yaml');
  const cfg = (tls) => `server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  billing:
    targets: [ { address: 127.0.0.1:8443 } ]
    tls:
${tls}
routes:
  - { match: { path: /* }, to: billing }
`;
  fs.writeFileSync(bad, cfg('      ca_file: missing-ca.pem'));
  let r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml:7:16: upstreams\.billing\.tls\.ca_file: cannot read the CA file .*missing-ca\.pem: No such file or directory/);

  fs.writeFileSync(bad, cfg('      ca_file: ca.key'));
  r = runGatehouse(['validate', '-c', bad]);
  assert.match(r.stderr, /bad\.yaml:7:16: upstreams\.billing\.tls\.ca_file: no usable CA certificate in .*ca\.key/);

  fs.writeFileSync(bad, cfg('      min_version: "1.1"\n      server_name: "bad name"\n      verify: maybe'));
  r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml:7:20: upstreams\.billing\.tls\.min_version: expected "1\.2" or "1\.3"/);
  assert.match(r.stderr, /bad\.yaml:8:20: upstreams\.billing\.tls\.server_name: 'bad name' is not a DNS name or an IP address/);
  assert.match(r.stderr, /bad\.yaml:9:15: upstreams\.billing\.tls\.verify:/);

  fs.writeFileSync(bad, cfg('      ca_file: ca.pem\n      server_name: billing.internal'));
  r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 0, r.stderr);
});
