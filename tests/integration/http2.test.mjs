// HTTP/2 from clients (RFC 9113), end to end through the real binary to an HTTP/1.1 upstream:
// cleartext with prior knowledge beside HTTP/1.1 on one listener (h2c), and over TLS by ALPN
// (h2 beside http/1.1); request bodies with and without a length, cookies joined, many streams on
// few connections (nghttp, h2load), flow control end to end both ways, the gateway's own answers
// (auth, rate limits, cache hits), limits on the header section, and GOAWAY on drain with streams
// in flight. The clients are curl, nghttp, h2load and Node's http2 module.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { startGatehouse, curl, requireTool, makeCa, makeCert, waitFor, freePort, peakRssKiB, SANITIZED } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const KEY = 'h2-key-0123456789';

let up, gh, dir, big, trailing;
let bigWritten = 0;  // what the big upstream has written of its body so far
before(async () => {
  requireTool('nghttp');
  requireTool('h2load');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-h2-'));
  makeCa(dir, 'ca');
  makeCert(dir, 'server', 'ca', ['DNS:localhost', 'IP:127.0.0.1']);
  up = await startUpstream({ name: 'u' });
  // A 64 MiB body written as fast as the gateway takes it: how much it has written shows whether
  // a client that stops reading stops the upstream too.
  big = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 64 << 20 });
    const chunk = Buffer.alloc(64 * 1024, 'b');
    let left = 64 << 20;
    const pump = () => {
      while (left > 0) {
        left -= chunk.length;
        bigWritten += chunk.length;
        if (!res.write(chunk)) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise((r) => big.listen(0, '127.0.0.1', r));
  // A chunked response with trailer fields (as gRPC's status travels).
  trailing = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-status' });
    res.write('part one, ');
    res.write('part two');
    res.addTrailers({ 'x-checksum': 'abc123', 'x-status': '0' });
    res.end();
  });
  await new Promise((r) => trailing.listen(0, '127.0.0.1', r));
  // Two listeners: ports of their own (two on port 0 would be one address to the gateway).
  const [plain, tls] = [await freePort(), await freePort()];
  gh = await startGatehouse(`
server:
  listen:
    - { address: 127.0.0.1:${plain}, protocols: [http1, h2c] }
    - address: 127.0.0.1:${tls}
      tls:
        certificates: [ { cert: ${dir}/server.pem, key: ${dir}/server.key } ]
        alpn: [h2, http/1.1]
  limits: { max_header_bytes: 8KiB, max_body_bytes: 2GiB }
cache: { max_size: 4MiB, max_object_size: 64KiB }
consumers:
  - { name: app, api_keys: [ { sha256: ${sha256(KEY)} } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
  big: { targets: [ { address: 127.0.0.1:${big.address().port} } ] }
  trailing: { targets: [ { address: 127.0.0.1:${trailing.address().port} } ] }
routes:
  - { name: keyed, match: { path: /keyed/* }, to: u, plugins: { key_auth: { header: x-api-key } } }
  - { name: limited, match: { path: /limited/* }, to: u, plugins: { rate_limit: { limits: [ { rate: "1/m", burst: 2 } ], key: ip } } }
  - { name: cached, match: { path: /cached/* }, to: u, plugins: { cache: { ttl: 60s } } }
  - { name: big, match: { path: /big }, to: big }
  - { name: trailing, match: { path: /trailing }, to: trailing }
  - { name: compressed, match: { path: /compressed/* }, to: u, plugins: { compress: { types: [application/json], min_size: 10 } } }
  - { name: all, match: { path: /* }, to: u }
`, { expectListeners: 2 });
});
after(async () => {
  await gh?.stop();
  await up?.close();
  big?.close();
  trailing?.close();
});

const h2c = () => `http://127.0.0.1:${gh.ports[0]}`;
const h2s = () => `https://localhost:${gh.ports[1]}`;

// One request on a session of Node's http2 client: { status, headers, body (Buffer) }.
function request(session, headers, body) {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const chunks = [];
    let head;
    req.on('response', (h) => { head = h; });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => resolve({ status: head[':status'], headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}
// The values of a field the echo upstream received (its raw [name, value, ...] list).
const fieldsOf = (echo, name) => echo.headers.filter((_, i) => i % 2 === 1 && echo.headers[i - 1].toLowerCase() === name);
const connect = (url, opts = {}) => http2.connect(url, { ca: fs.readFileSync(`${dir}/ca.pem`), ...opts });

test('h2c with prior knowledge and HTTP/1.1 share a listener; the response is HTTP/2, fields in lower case', async () => {
  const r = await curl(['--http2-prior-knowledge', `${h2c()}/echo/one?x=1`]);
  assert.equal(r.status, 200);
  const echo = JSON.parse(r.body);
  assert.equal(echo.url, '/echo/one?x=1');
  assert.equal(echo.httpVersion, '1.1', 'the upstream is spoken to in HTTP/1.1');
  assert.deepEqual(fieldsOf(echo, 'host'), [`127.0.0.1:${gh.ports[0]}`], ':authority is the Host');
  assert.ok(r.headers['x-request-id']?.[0], 'the request id');
  assert.deepEqual(r.headers.via, ['1.1 gatehouse']);
  const v1 = await curl(['--http1.1', `${h2c()}/echo/two`]);
  assert.equal(v1.status, 200);
  assert.equal(JSON.parse(v1.body).url, '/echo/two');
  // curl -D prints the status line: which protocol answered.
  const proto = await new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_version}',
    '--http2-prior-knowledge', `${h2c()}/echo`], (e, out) => resolve(out)));
  assert.equal(proto, '2');
  // The access log says which protocol each request came in.
  const logged = (p) => waitFor(() => gh.accessLog().find((l) => l.path === p), 3000, p);
  assert.equal((await logged('/echo/one?x=1')).protocol, 'HTTP/2');
  assert.equal((await logged('/echo/two')).protocol, 'HTTP/1.1');
});

test('over TLS, ALPN chooses h2 or http/1.1 on one listener', async () => {
  const version = (args) => new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_version} %{http_code}',
    '--cacert', `${dir}/ca.pem`, ...args, `${h2s()}/echo`], (e, out) => resolve(out)));
  assert.equal(await version(['--http2']), '2 200');
  assert.equal(await version(['--http1.1']), '1.1 200');
  const s = connect(h2s());
  const r = await request(s, { ':path': '/echo/tls' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).url, '/echo/tls');
  s.close();
});

test('request bodies: with Content-Length as it came, without one chunked to the upstream; cookies joined', async () => {
  const body = crypto.randomBytes(300 * 1024);  // past the 64 KiB stream window: flow control
  for (const url of [h2c(), h2s()]) {
    const s = connect(url);
    const withLength = await request(s, { ':method': 'POST', ':path': '/sink', 'content-length': body.length }, body);
    assert.deepEqual(JSON.parse(withLength.body), { upstream: 'u', bytes: body.length, sha256: sha256(body) });
    const chunked = await request(s, { ':method': 'PUT', ':path': '/sink' }, body);
    assert.deepEqual(JSON.parse(chunked.body), { upstream: 'u', bytes: body.length, sha256: sha256(body) });
    const echoed = JSON.parse((await request(s, { ':method': 'POST', ':path': '/echo', cookie: ['a=1', 'b=2'] }, 'x')).body);
    assert.deepEqual(fieldsOf(echoed, 'transfer-encoding'), ['chunked'], 'no length: chunked upstream');
    assert.deepEqual(fieldsOf(echoed, 'cookie'), ['a=1; b=2'], 'the cookie fields joined, RFC 9113 8.2.3');
    s.close();
  }
});

test('many streams on few connections: nghttp and h2load, every response whole', async () => {
  const out = await new Promise((resolve, reject) => execFile('h2load', ['-n', '2000', '-c', '4', '-m', '100',
    `${h2c()}/echo/load`], (e, stdout) => (e ? reject(e) : resolve(stdout))));
  assert.match(out, /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/);
  assert.match(out, /status codes: 2000 2xx/);
  const n = await new Promise((resolve, reject) => execFile('nghttp', ['-n', '-s', '--no-verify-peer',
    ...Array.from({ length: 50 }, (_, i) => `${h2s()}/echo/${i}`)], (e, stdout) => (e ? reject(e) : resolve(stdout))));
  assert.equal((n.match(/ 200 /g) || []).length, 50, n);
});

test('a client that stops reading stops the upstream too; when it reads again, the body arrives whole', async () => {
  const s = connect(h2c());
  const req = s.request({ ':path': '/big' });
  let got = 0;
  const hash = crypto.createHash('sha256');
  req.on('data', (d) => { got += d.length; hash.update(d); });
  await waitFor(() => got > 0, 5000, 'the first bytes');
  req.pause();
  // Paused: the client's windows fill, the gateway's stream buffer fills, then the upstream waits.
  let before = -1;
  await waitFor(async () => {
    const now = bigWritten;
    const still = now === before;
    before = now;
    await new Promise((r) => setTimeout(r, 200));
    return still && bigWritten === now;
  }, 10000, 'the upstream to stop writing');
  assert.ok(bigWritten < 40 << 20, `the upstream wrote ${bigWritten} bytes of 64 MiB while the client read none`);
  req.resume();
  await new Promise((resolve) => req.on('end', resolve));
  assert.equal(got, 64 << 20);
  assert.equal(hash.digest('hex'), sha256(Buffer.alloc(64 << 20, 'b')));
  s.close();
});

test('1 GiB up and 1 GiB down over HTTP/2, the gateway\'s memory bounded (RSS < 64 MiB)', { timeout: 300000 }, async () => {
  let limitKiB = 64 * 1024;
  if (SANITIZED) limitKiB += peakRssKiB(gh.proc.pid);  // shadow memory: growth is what counts
  const s = connect(h2c());
  // Up: written as the flow-control windows allow (the gateway gives them back as the upstream
  // takes the bytes), one 1 MiB chunk at a time.
  const chunk = Buffer.alloc(1 << 20, 'u');
  const hash = crypto.createHash('sha256');
  for (let i = 0; i < 1024; i++) hash.update(chunk);
  const up = s.request({ ':method': 'POST', ':path': '/sink', 'content-length': 1 << 30 }, { endStream: false });
  const answered = new Promise((resolve, reject) => {
    const parts = [];
    up.on('data', (d) => parts.push(d));
    up.on('end', () => resolve(JSON.parse(Buffer.concat(parts))));
    up.on('error', reject);
  });
  for (let i = 0; i < 1024; i++) {
    if (!up.write(chunk)) await new Promise((r) => up.once('drain', r));
  }
  up.end();
  assert.deepEqual(await answered, { upstream: 'u', bytes: 1 << 30, sha256: hash.digest('hex') });
  // Down: the upstream's chunked body, de-chunked into DATA frames.
  const down = s.request({ ':path': `/stream/${1 << 30}` });
  let got = 0;
  down.on('data', (d) => { got += d.length; });
  await new Promise((resolve, reject) => { down.on('end', resolve); down.on('error', reject); });
  assert.equal(got, 1 << 30);
  s.close();
  const peak = peakRssKiB(gh.proc.pid);
  assert.ok(peak < limitKiB, `peak RSS ${peak} KiB`);
});

test('an HTTP/1.1 upstream\'s chunked trailers reach an HTTP/2 client as trailers', async () => {
  const s = connect(h2c());
  const req = s.request({ ':path': '/trailing' });
  const trailers = new Promise((resolve) => req.on('trailers', resolve));
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  await new Promise((resolve, reject) => { req.on('end', resolve); req.on('error', reject); });
  assert.equal(Buffer.concat(chunks).toString(), 'part one, part two');
  const t = await trailers;
  assert.equal(t['x-checksum'], 'abc123');
  assert.equal(t['x-status'], '0');
  s.close();
});

test('a body the filters rewrite (compression) goes out over HTTP/2, its length the filters\'', async () => {
  const s = connect(h2s());
  for (let i = 0; i < 3; i++) {  // a stream after a rewritten one is served too
    const r = await request(s, { ':path': `/compressed/echo/${i}`, 'accept-encoding': 'gzip' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(JSON.parse(zlib.gunzipSync(r.body)).url, `/compressed/echo/${i}`);
  }
  s.close();
});

test('the gateway\'s own answers over HTTP/2: 401 and 200 by key, 429 with Retry-After, a cache hit', async () => {
  const s = connect(h2s());
  const denied = await request(s, { ':path': '/keyed/x' });
  assert.equal(denied.status, 401);
  assert.equal(JSON.parse(denied.body).error, 'unauthorized');
  assert.equal(denied.headers['content-type'], 'application/json');
  assert.equal((await request(s, { ':path': '/keyed/x', 'x-api-key': KEY })).status, 200);
  const statuses = [];
  let limited;
  for (let i = 0; i < 4; i++) {
    const r = await request(s, { ':path': '/limited/x' });
    statuses.push(r.status);
    if (r.status === 429) limited = r;
  }
  assert.deepEqual(statuses, [200, 200, 429, 429]);
  assert.ok(Number(limited.headers['retry-after']) > 0);
  const first = await request(s, { ':path': '/cached/item' });
  const second = await request(s, { ':path': '/cached/item' });
  assert.match(first.headers['cache-status'], /fwd=uri-miss/);
  assert.match(second.headers['cache-status'], /^gatehouse; hit/);
  assert.deepEqual(second.body, first.body);
  const head = await request(s, { ':method': 'HEAD', ':path': '/cached/item' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  s.close();
});

test('a header section over max_header_bytes gets 431; Host unlike :authority gets 400; the connection goes on', async () => {
  const s = connect(h2c(), { maxSendHeaderBlockLength: 1 << 20, peerMaxHeaderListSize: 1 << 20 });
  s.on('error', () => {});
  const big = await request(s, { ':path': '/echo', 'x-big': 'v'.repeat(9000) });
  assert.equal(big.status, 431);
  assert.equal(JSON.parse(big.body).error, 'header_too_large');
  const spoofed = await request(s, { ':path': '/echo', ':authority': 'a.example', host: 'b.example' });
  assert.equal(spoofed.status, 400);
  assert.equal((await request(s, { ':path': '/echo' })).status, 200, 'other streams are served');
  s.close();
});

test('drain: GOAWAY, the streams in flight finish, no new one is served', async () => {
  const own = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0, protocols: [h2c] } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: u }
`);
  const s = http2.connect(`http://127.0.0.1:${own.port}`);
  s.on('error', () => {});
  const goaway = new Promise((resolve) => s.on('goaway', (code, last) => resolve({ code, last })));
  const before = up.state.requests;
  const slow = request(s, { ':path': '/delay/700' });
  await waitFor(() => up.state.requests > before, 3000, 'the slow request upstream');
  const stopped = own.stop();
  const g = await goaway;
  assert.equal(g.code, http2.constants.NGHTTP2_NO_ERROR);
  assert.equal(g.last, 1, 'the one stream received is the last served');
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).delayed, 700);
  assert.equal((await stopped).code, 0);
});

test('Upgrade: h2c is neither honoured nor forwarded (h2c smuggling)', async () => {
  // RFC 7540 3.2's upgrade: an HTTP/1.1 request asking to switch. The gateway answers it in
  // HTTP/1.1, and the upstream never sees the upgrade, so no tunnel can start behind it.
  const r = await curl(['--http1.1', '-H', 'Connection: Upgrade, HTTP2-Settings', '-H', 'Upgrade: h2c',
    '-H', 'HTTP2-Settings: AAMAAABkAAQAAP__', `${h2c()}/echo/smuggle`]);
  assert.equal(r.status, 200);
  const echo = JSON.parse(r.body);
  assert.deepEqual(fieldsOf(echo, 'upgrade'), []);
  assert.deepEqual(fieldsOf(echo, 'http2-settings'), []);
  assert.deepEqual(fieldsOf(echo, 'connection'), []);
});

test('an HTTP/1.1-only listener does not take the HTTP/2 preface for a request it could serve', async () => {
  const own = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: u }
`);
  const r = await curl(['--http2-prior-knowledge', `http://127.0.0.1:${own.port}/echo`]);
  assert.notEqual(r.status, 200);
  await own.stop();
});
