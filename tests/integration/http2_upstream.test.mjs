// HTTP/2 to upstreams (upstreams.X.protocol: http2, RFC 9113), end to end through the real binary:
// cleartext h2c with prior knowledge and h2 over TLS (ALPN offers "h2" alone); requests translated
// for HTTP/1.1 and HTTP/2 clients (pseudo-header fields, connection-specific fields dropped,
// cookies split one per field, chunked bodies as DATA, trailers both ways) and responses back
// (chunked to HTTP/1.1 clients, with the upstream's trailers); streams multiplexed on few
// connections up to the upstream's SETTINGS_MAX_CONCURRENT_STREAMS; REFUSED_STREAM and GOAWAY sent
// again at once; a reset mid-response, a response timeout and a client gone (RST_STREAM CANCEL);
// health checks over HTTP/2; flow control both ways with the gateway's memory bounded; the other
// features on top (retries, key_auth); the config checks. The upstreams are Node's http2 servers
// that record what they saw (sessions, streams, how each stream ended).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  startGatehouse, rawConnection, runGatehouse, tempFile, waitFor, freePort, makeCa, makeCert,
  peakRssKiB, SANITIZED, dechunk,
} from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL } = http2.constants;
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const KEY = 'h2up-key-0123456789';

// An HTTP/2-only upstream (Node's http2 server: h2c, or h2 over TLS with `secure` = { key, cert }),
// by path:
//   /echo... (anything not below)  200 JSON: what it received (pseudo-header fields, raw fields,
//                                  body size and sha256, trailers), and on which session and stream
//   /status/CODE      answers CODE, with an x-custom field
//   /trailers         a body without a length, then trailer fields
//   /hold             answers when the test calls release() (state.held: those waiting)
//   /hang             never answers
//   /refuse?n=N&key=K refuses (RST_STREAM REFUSED_STREAM) the first N tries for K, then echoes
//   /flaky?key=K      503 on the first try for K, 200 after
//   /reset-mid        a head and 'partial', then RST_STREAM INTERNAL_ERROR when the test says
//   /stream/BYTES     BYTES bytes without a length, as fast as flow control lets (state.written)
//   /endless          the same, until the stream ends
//   /healthz          state.health (checks from the gateway are counted in state.checks)
//   /big-head?fields=N or ?bytes=N  a response head of N extra fields, or of N bytes more
// state.sessions counts connections; state.maxOpen is the most streams ever open at once on one.
function startH2Upstream({ secure = null, settings = {} } = {}) {
  const state = {
    sessions: 0, maxOpen: 0, written: 0, health: 200, checks: 0,
    streams: [],   // every stream: { path, query, session, id }
    closes: [],    // every stream's end: { path, session, id, rstCode }
    attempts: {},  // /refuse and /flaky: tries per key
    held: [],      // /hold streams: { session, id, tag, answer }
    resets: [],    // /reset-mid streams' resets
  };
  // maxSendHeaderBlockLength: room for /big-head's (nghttp2 bounds a block by its plain size).
  const options = { settings, maxSendHeaderBlockLength: 256 * 1024 };
  const server = secure ? http2.createSecureServer({ ...secure, ...options }) : http2.createServer(options);
  const sessions = new Map();  // gid -> ServerHttp2Session
  server.on('session', (session) => {
    session.gid = ++state.sessions;
    session.open = 0;
    sessions.set(session.gid, session);
    session.on('close', () => sessions.delete(session.gid));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers, flags, rawHeaders) => {
    const session = stream.session;
    const gid = session.gid;
    const id = stream.id;
    const url = new URL(headers[':path'], 'http://x');
    const p = url.pathname;
    session.open++;
    state.maxOpen = Math.max(state.maxOpen, session.open);
    state.streams.push({ path: p, query: url.search, session: gid, id });
    stream.on('error', () => {});
    stream.on('close', () => {
      session.open--;
      state.closes.push({ path: p, session: gid, id, rstCode: stream.rstCode });
    });
    const send = (status, obj, extra = {}) => {
      if (stream.closed || stream.destroyed) return;
      const body = JSON.stringify(obj);
      stream.respond({ ':status': status, 'content-type': 'application/json',
        'content-length': Buffer.byteLength(body), 'x-upstream-protocol': 'h2', ...extra });
      stream.end(body);
    };
    const echo = () => {
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      let trailers = null;
      stream.on('data', (d) => { bytes += d.length; hash.update(d); });
      stream.on('trailers', (t) => { trailers = { ...t }; });
      stream.on('end', () => send(200, {
        method: headers[':method'], scheme: headers[':scheme'], authority: headers[':authority'],
        path: headers[':path'], rawHeaders, body_bytes: bytes, sha256: hash.digest('hex'), trailers,
        sensitive: headers[http2.sensitiveHeaders] ?? [], session: gid, id,
      }));
    };
    const pump = (total) => {
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let left = total;
      const more = () => {
        while (left > 0 && !stream.destroyed) {
          const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= c.length;
          state.written += c.length;
          if (!stream.write(c)) return void stream.once('drain', more);
        }
        if (!stream.destroyed) stream.end();
      };
      more();
    };
    const key = url.searchParams.get('key');
    if (p === '/healthz') {
      if (headers['user-agent'] === 'gatehouse-health-check') state.checks++;
      stream.resume();
      send(state.health, { health: state.health });
    } else if (p.startsWith('/status/')) {
      stream.resume();
      send(Number(p.split('/')[2]), { status: Number(p.split('/')[2]) }, { 'x-custom': 'yes' });
    } else if (p === '/trailers') {
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123', 'x-status': '0' }));
      stream.write('part one, ');
      stream.end('part two');
    } else if (p === '/hold') {
      stream.resume();
      state.held.push({ session: gid, id, tag: url.searchParams.get('i'),
        answer: () => send(200, { held: true, session: gid, id, tag: url.searchParams.get('i') }) });
    } else if (p === '/hang') {
      stream.resume();
    } else if (p === '/refuse') {
      state.attempts[key] = (state.attempts[key] || 0) + 1;
      if (state.attempts[key] <= Number(url.searchParams.get('n'))) stream.close(NGHTTP2_REFUSED_STREAM);
      else echo();
    } else if (p === '/flaky') {
      stream.resume();
      state.attempts[key] = (state.attempts[key] || 0) + 1;
      send(state.attempts[key] === 1 ? 503 : 200, { attempt: state.attempts[key] });
    } else if (p === '/reset-mid') {
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write('partial');
      // destroy(error) is RST_STREAM INTERNAL_ERROR alone; close(code) on a stream still being
      // written would first end it (an empty DATA with END_STREAM: a whole response).
      state.resets.push(() => stream.destroy(new Error('reset mid-response')));
    } else if (p.startsWith('/stream/')) {
      stream.resume();
      pump(Number(p.split('/')[2]));
    } else if (p === '/endless') {
      stream.resume();
      pump(Infinity);
    } else if (p === '/big-head') {
      // ?fields=N small fields, or ?bytes=N in three fields.
      stream.resume();
      const fields = {};
      for (let i = 0; i < Number(url.searchParams.get('fields') || 0); i++) fields[`x-f${i}`] = 'v';
      const bytes = Number(url.searchParams.get('bytes') || 0);
      for (let i = 0; i < 3 && bytes; i++) fields[`x-big${i}`] = 'a'.repeat(Math.ceil(bytes / 3));
      stream.respond({ ':status': 200, 'content-length': 2, ...fields });
      stream.end('ok');
    } else {
      echo();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, state,
    session: (gid) => sessions.get(gid),
    // Answers every held stream that is still open.
    release: () => { for (const h of state.held.splice(0)) h.answer(); },
    close: () => new Promise((r) => { for (const s of sessions.values()) s.destroy(); server.close(() => r()); }),
  })));
}

// The response on an HTTP/2 client stream: { head, body (Buffer) } once the stream ends.
function collect(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let head;
    req.on('response', (h) => { head = h; });
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve({ head, body: Buffer.concat(parts) }));
    req.on('error', reject);
  });
}

// One request from Node's HTTP/1.1 client on a connection of its own: { status, headers, body
// (Buffer), trailers, complete }. `body`: sent with its Content-Length; `chunks` (and `trailers`):
// a chunked body.
function h1(p, { port = gh.port, method = 'GET', headers = {}, body, chunks, trailers } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['content-length'] = body.length;
    if (chunks) h['transfer-encoding'] = 'chunked';
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts),
        trailers: res.trailers, complete: res.complete }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (chunks) {
      for (const c of chunks) req.write(c);
      if (trailers) req.addTrailers(trailers);
      req.end();
    } else {
      req.end(body);
    }
  });
}
const jsonOf = (r) => JSON.parse(r.body.toString());
// The values of a field in a raw [name, value, ...] list, in order.
const fieldsOf = (raw, name) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1].toLowerCase() === name);
const namesOf = (raw) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-h2up-'));
let gh, main, four, gw, secure, h1tls, noalpn, h1plain;
let h1tlsRequests = 0;
before(async () => {
  makeCa(dir, 'ca');
  makeCert(dir, 'up', 'ca', ['DNS:localhost', 'IP:127.0.0.1']);
  const tlsFiles = { key: fs.readFileSync(`${dir}/up.key`), cert: fs.readFileSync(`${dir}/up.pem`) };
  main = await startH2Upstream();
  four = await startH2Upstream({ settings: { maxConcurrentStreams: 4 } });
  gw = await startH2Upstream();
  secure = await startH2Upstream({ secure: tlsFiles });
  // HTTPS that speaks only HTTP/1.1: Node's https server offers ALPN "http/1.1" alone, so a client
  // offering only "h2" gets the no_application_protocol alert (RFC 7301 3.2) ...
  h1tls = https.createServer(tlsFiles, (req, res) => { h1tlsRequests++; res.end('http/1.1 only'); });
  await new Promise((r) => h1tls.listen(0, '127.0.0.1', r));
  // ... and one that does no ALPN at all: the handshake completes with no protocol agreed.
  noalpn = https.createServer({ ...tlsFiles, ALPNProtocols: [] }, (req, res) => { h1tlsRequests++; res.end('no alpn'); });
  await new Promise((r) => noalpn.listen(0, '127.0.0.1', r));
  // Cleartext HTTP/1.1 only: the HTTP/2 preface is not a request it understands.
  h1plain = await startUpstream({ name: 'h1plain' });
  const at = (port) => `targets: [ { address: 127.0.0.1:${port} } ]`;
  const port = await freePort();
  gh = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ]
consumers:
  - { name: app, api_keys: [ { sha256: ${sha256(KEY)} } ] }
upstreams:
  h2: { protocol: http2, ${at(main.port)} }
  short: { protocol: http2, ${at(main.port)}, timeouts: { response: 300ms } }
  retrying: { protocol: http2, ${at(main.port)}, retry: { attempts: 1, on: [503] } }
  four: { protocol: http2, ${at(four.port)} }
  gw: { protocol: http2, ${at(gw.port)} }
  secure: { protocol: http2, ${at(secure.port)}, tls: { ca_file: ${dir}/ca.pem } }
  h1tls: { protocol: http2, ${at(h1tls.address().port)}, tls: { ca_file: ${dir}/ca.pem } }
  noalpn: { protocol: http2, ${at(noalpn.address().port)}, tls: { ca_file: ${dir}/ca.pem } }
  h1plain: { protocol: http2, ${at(h1plain.port)} }
routes:
${['short', 'retrying', 'four', 'gw', 'secure', 'h1tls', 'noalpn', 'h1plain']
    .map((u) => `  - { match: { path: /${u}/* }, rewrite: { strip_prefix: /${u} }, to: ${u} }`).join('\n')}
  - { match: { path: /keyed/* }, to: h2, plugins: { key_auth: { header: x-api-key } } }
  - { match: { path: /* }, to: h2 }
`);
});
after(async () => {
  await gh?.stop();
  for (const u of [main, four, gw, secure, h1plain]) await u?.close();
  for (const s of [h1tls, noalpn]) {
    s?.closeAllConnections();
    await new Promise((r) => (s ? s.close(() => r()) : r()));
  }
});

// --- translation

// Proves the request's HTTP/2 form: :method, :scheme http, :authority from Host, :path with the
// query; connection-specific fields dropped; one cookie field per cookie (RFC 9113 8.2.2, 8.2.3);
// a Content-Length body as DATA; the response's status and fields back to HTTP/1.1.
test('HTTP/1.1 -> h2c: pseudo-header fields, connection fields dropped, cookies split, a body as DATA', async () => {
  const c = await rawConnection(gh.port);
  c.send('GET /echo/a%20b?x=1&y=2 HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: keep-alive, X-Hop\r\n' +
    'X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: foo\r\n' +
    'Cookie: a=1; b=2; c=3\r\nX-Kept: yes\r\n\r\n');
  const res = await c.readResponse();
  assert.equal(res.status, 200, res.head);
  assert.match(res.head, /\r\nx-upstream-protocol: h2\r\n/i, 'the upstream\'s fields come back');
  const echo = JSON.parse(res.body);
  assert.equal(echo.method, 'GET');
  assert.equal(echo.scheme, 'http');
  assert.equal(echo.authority, 'shop.example:8080', ':authority is the Host the client sent');
  assert.equal(echo.path, '/echo/a%20b?x=1&y=2');
  assert.deepEqual(fieldsOf(echo.rawHeaders, 'cookie'), ['a=1', 'b=2', 'c=3'], 'one cookie field per cookie');
  const names = namesOf(echo.rawHeaders);
  for (const hop of ['connection', 'x-hop', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding']) {
    assert.ok(!names.includes(hop), `${hop} must not be forwarded`);
  }
  assert.deepEqual(fieldsOf(echo.rawHeaders, 'x-kept'), ['yes']);
  // A second request on the same client connection: a body with a length.
  c.send('POST /echo/post HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world');
  const post = await c.readResponse();
  c.close();
  const posted = JSON.parse(post.body);
  assert.equal(posted.method, 'POST');
  assert.equal(posted.body_bytes, 11);
  assert.equal(posted.sha256, sha256('hello world'));
  assert.equal(posted.trailers, null);
  // A status other than 200, and the upstream's own fields.
  const created = await h1('/status/201');
  assert.equal(created.status, 201);
  assert.equal(created.headers['x-custom'], 'yes');
  assert.deepEqual(jsonOf(created), { status: 201 });
});

// Proves a chunked request body is de-chunked into DATA, its trailers a trailing HEADERS.
test('HTTP/1.1 -> h2c: a chunked request body arrives whole, its trailers as HTTP/2 trailers', async () => {
  const r = await h1('/echo/chunked', { method: 'POST', headers: { trailer: 'x-req-sum' },
    chunks: ['abc', 'defg', 'h'], trailers: { 'x-req-sum': 'r1' } });
  assert.equal(r.status, 200);
  const echo = jsonOf(r);
  assert.equal(echo.body_bytes, 8);
  assert.equal(echo.sha256, sha256('abcdefgh'));
  assert.deepEqual(echo.trailers, { 'x-req-sum': 'r1' });
  assert.deepEqual(fieldsOf(echo.rawHeaders, 'transfer-encoding'), []);
});

// Proves a response without a length reaches an HTTP/1.1 client chunked, trailers in the last chunk.
test('h2c -> HTTP/1.1: a body without a length goes chunked, the upstream\'s trailers in the last chunk', async () => {
  const r = await h1('/trailers');
  assert.equal(r.status, 200);
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['content-length'], undefined);
  assert.ok(r.complete);
  assert.equal(r.body.toString(), 'part one, part two');
  assert.deepEqual({ ...r.trailers }, { 'x-checksum': 'abc123', 'x-status': '0' });
});

// Proves HTTP/2 clients to an HTTP/2 upstream: trailers both ways.
test('HTTP/2 client -> h2c upstream: request trailers reach the upstream, response trailers the client', async () => {
  const s = http2.connect(`http://127.0.0.1:${gh.port}`);
  s.on('error', () => {});
  try {
    const req = s.request({ ':method': 'POST', ':path': '/echo/h2client', 'content-type': 'text/plain' },
      { waitForTrailers: true });
    req.on('wantTrailers', () => req.sendTrailers({ 'x-req-sum': 'r2' }));
    req.end('hello body');
    const { head, body: answer } = await collect(req);
    assert.equal(head[':status'], 200);
    const echo = JSON.parse(answer);
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body_bytes, 10);
    assert.equal(echo.sha256, sha256('hello body'));
    assert.deepEqual(echo.trailers, { 'x-req-sum': 'r2' });

    const t = s.request({ ':path': '/trailers' });
    const trailers = new Promise((resolve) => t.on('trailers', resolve));
    const body = [];
    t.on('data', (d) => body.push(d));
    await new Promise((resolve, reject) => { t.on('end', resolve); t.on('error', reject); });
    assert.equal(Buffer.concat(body).toString(), 'part one, part two');
    const got = await trailers;
    assert.equal(got['x-checksum'], 'abc123');
    assert.equal(got['x-status'], '0');
  } finally {
    s.close();
  }
});

// Proves the request id, new on every request, is sent as an HPACK literal never indexed (RFC 7541
// 6.2.3) both ways, and nothing else is: indexed, each id would evict the fields that repeat.
// Node lists the fields that arrived never indexed under http2.sensitiveHeaders.
test('HPACK: the request id goes never indexed to the h2 upstream and to the h2 client, the other fields indexable', async () => {
  const s = http2.connect(`http://127.0.0.1:${gh.port}`);
  s.on('error', () => {});
  try {
    for (let i = 0; i < 3; i++) {
      const { head, body } = await collect(s.request({ ':path': `/echo/hpack${i}`, 'x-repeated': 'same every time' }));
      assert.equal(head[':status'], 200);
      assert.deepEqual(head[http2.sensitiveHeaders], ['x-request-id'], 'to the client');
      const echo = JSON.parse(body);
      assert.deepEqual(echo.sensitive, ['x-request-id'], 'to the upstream');
      assert.deepEqual(fieldsOf(echo.rawHeaders, 'x-request-id'), [head['x-request-id']]);
      assert.deepEqual(fieldsOf(echo.rawHeaders, 'x-repeated'), ['same every time']);
    }
  } finally {
    s.close();
  }
  // From an HTTP/1.1 client too.
  const echo = jsonOf(await h1('/echo/hpack-h1'));
  assert.deepEqual(echo.sensitive, ['x-request-id']);
});

// Proves the HTTP/2 response head is held to the same limits as an HTTP/1.1 one (1000 fields,
// 64 KiB), as its fields arrive: past them, 502 and the stream reset, the connection serving on.
test('a response head past 1000 fields or 64 KiB: 502 upstream_bad_response, the stream cancelled', async () => {
  const within = await h1('/big-head?fields=990');
  assert.equal(within.status, 200, 'up to the limit it passes');
  assert.equal(within.headers['x-f989'], 'v');
  for (const query of ['fields=1001', 'bytes=70000']) {
    const closes = main.state.closes.length;
    const r = await h1(`/big-head?${query}`);
    assert.equal(r.status, 502, query);
    const body = jsonOf(r);
    assert.equal(body.error, 'upstream_bad_response');
    assert.match(body.message, /response head over 65536 bytes or 1000 fields/);
    await waitFor(() => main.state.closes.length > closes, 5000, 'the stream to close');
  }
  const after = await h1('/echo/after-big-head');
  assert.equal(after.status, 200, 'the connection serves on');
});

// --- multiplexing

// Proves streams share one connection while it has room (Node's default limit: the gateway's 100).
test('12 concurrent requests share one connection when it has room', async () => {
  const warm = jsonOf(await h1('/echo/warm'));  // the worker's connection to the target
  const sessions = main.state.sessions;
  const pending = Array.from({ length: 12 }, (_, i) => h1(`/hold?i=${i}`));
  await waitFor(() => main.state.held.length === 12, 5000, 'twelve streams held at the upstream');
  assert.deepEqual([...new Set(main.state.held.map((h) => h.session))], [warm.session], 'all on the one connection');
  main.release();
  for (const r of await Promise.all(pending)) assert.equal(r.status, 200);
  assert.equal(main.state.sessions, sessions, 'no new connection');
});

// Proves the upstream's SETTINGS_MAX_CONCURRENT_STREAMS bounds the streams per connection and
// more connections are opened for the rest.
test('an upstream allowing 4 streams: 12 concurrent requests, never more than 4 on one connection, >= 3 connections', async () => {
  assert.equal((await h1('/four/echo/warm')).status, 200);  // its SETTINGS are known
  const pending = Array.from({ length: 12 }, (_, i) => h1(`/four/hold?i=${i}`));
  await waitFor(() => four.state.held.length === 12, 5000, 'twelve streams held at the upstream');
  assert.ok(four.state.maxOpen <= 4, `${four.state.maxOpen} streams open at once on one connection`);
  assert.ok(four.state.sessions >= 3, `${four.state.sessions} connections for 12 streams at 4 each`);
  four.release();
  const answers = await Promise.all(pending);
  assert.deepEqual(answers.map((r) => r.status), Array(12).fill(200));
  assert.deepEqual(answers.map((r) => jsonOf(r).tag).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => String(i)));
});

// --- refused streams, GOAWAY

// Proves REFUSED_STREAM is sent again at once, twice at most, whatever the method (a POST's body
// intact), then 503 upstream_refused.
test('REFUSED_STREAM: sent again at once (twice at most, a POST too, its body intact), then 503 upstream_refused', async () => {
  for (const n of [1, 2]) {
    const r = await h1(`/refuse?n=${n}&key=get${n}`);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(main.state.attempts[`get${n}`], n + 1);
  }
  const body = crypto.randomBytes(48 * 1024);
  const post = await h1('/refuse?n=2&key=post', { method: 'POST', body });
  assert.equal(post.status, 200, post.body.toString());
  const echo = jsonOf(post);
  assert.equal(echo.method, 'POST');
  assert.equal(echo.body_bytes, body.length);
  assert.equal(echo.sha256, sha256(body), 'the resent body is the same bytes');
  assert.equal(main.state.attempts.post, 3);
  const refused = await h1('/refuse?n=100&key=always', { headers: { 'x-request-id': 'req-refused' } });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['content-type'], 'application/json');
  const err = jsonOf(refused);
  assert.equal(err.error, 'upstream_refused');
  assert.equal(err.request_id, 'req-refused');
  assert.equal(typeof err.message, 'string');
  assert.equal(main.state.attempts.always, 3, 'the first try and two more');
});

// Proves GOAWAY: streams at or below its last id finish there; those above go again on a new
// connection; no new stream goes on the old one.
test('GOAWAY: streams above its last id are sent again on a new connection, the others finish, none more on it', async () => {
  const first = jsonOf(await h1('/gw/echo/warm')).session;
  const pending = [0, 1, 2, 3].map((i) => h1(`/gw/hold?i=${i}`));
  await waitFor(() => gw.state.held.length === 4, 5000, 'four streams held');
  assert.deepEqual([...new Set(gw.state.held.map((h) => h.session))], [first], 'on the connection with room');
  const original = new Map(gw.state.held.map((h) => [h.tag, h.id]));
  const last = [...original.values()].sort((a, b) => a - b)[1];
  gw.session(first).goaway(NGHTTP2_NO_ERROR, last);
  await waitFor(() => gw.state.held.filter((h) => h.session !== first).length === 2, 5000,
    'the two streams above the last id sent again');
  gw.release();
  const answers = await Promise.all(pending);
  for (const r of answers) {
    assert.equal(r.status, 200, r.body.toString());
    const a = jsonOf(r);
    if (original.get(a.tag) <= last) assert.equal(a.session, first, `stream ${original.get(a.tag)} <= ${last} finishes there`);
    else assert.notEqual(a.session, first, `stream ${original.get(a.tag)} > ${last} goes again elsewhere`);
  }
  assert.equal(gw.state.streams.filter((s) => s.path === '/hold').length, 6, '4 streams, 2 of them twice');
  const later = jsonOf(await h1("/gw/echo/after"));
  assert.notEqual(later.session, first, 'no new stream on a connection told to go away');
});

// --- failures mid-way

// Proves a reset after the head and some DATA cuts the HTTP/1.1 client's response (no last chunk).
test('a stream reset mid-response: the HTTP/1.1 client\'s chunked body never ends, the connection closes', async () => {
  const sock = net.connect(gh.port, '127.0.0.1');
  let text = '';
  let ended = false;
  sock.on('data', (d) => { text += d.toString('latin1'); });
  sock.on('close', () => { ended = true; });
  sock.on('error', () => {});
  try {
    sock.write('GET /reset-mid HTTP/1.1\r\nHost: t\r\n\r\n');
    await waitFor(() => text.includes('partial'), 5000, 'the head and the first bytes');
    main.state.resets.shift()();
    const reset = await waitFor(() => main.state.closes.find((c) => c.path === '/reset-mid'), 3000, 'the reset');
    assert.equal(reset.rstCode, NGHTTP2_INTERNAL_ERROR, 'the upstream reset the stream (not ended it)');
    await waitFor(() => ended, 5000, 'the gateway to end the client connection')
      .catch((e) => { throw new Error(`${e.message}; the client got:\n${text}`); });
  } finally {
    sock.destroy();
  }
  const at = text.indexOf('\r\n\r\n');
  assert.match(text.slice(0, at), /^HTTP\/1\.1 200 /);
  assert.match(text.slice(0, at), /\r\ntransfer-encoding: chunked/i);
  const decoded = dechunk(text.slice(at + 4));
  assert.equal(decoded.payload, 'partial');
  assert.equal(decoded.complete, false, 'no last chunk: the client knows the body is cut');
});

// Proves the response timeout: 504, the stream cancelled (RST_STREAM CANCEL), the connection kept.
test('a stream never answered: 504 upstream_timeout, RST_STREAM CANCEL, the connection serves on', async () => {
  const warm = jsonOf(await h1('/short/echo/warm'));
  const sessions = main.state.sessions;
  const t0 = Date.now();
  const r = await h1('/short/hang');
  assert.equal(r.status, 504);
  assert.equal(jsonOf(r).error, 'upstream_timeout');
  assert.ok(Date.now() - t0 < 3000, `answered after ${Date.now() - t0} ms`);
  const closed = await waitFor(() => main.state.closes.find((c) => c.path === '/hang'), 3000, 'the stream to end');
  assert.equal(closed.rstCode, NGHTTP2_CANCEL);
  assert.equal(closed.session, warm.session);
  const next = jsonOf(await h1('/short/echo/next'));
  assert.equal(next.session, warm.session, 'the same connection');
  assert.equal(main.state.sessions, sessions, 'no new connection');
});

// Proves a client that goes away mid-response cancels the upstream stream.
test('an HTTP/1.1 client gone mid-response: the upstream stream is cancelled (RST_STREAM CANCEL)', async () => {
  await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: gh.port, path: '/endless', agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      res.once('data', () => { req.destroy(); resolve(); });
    });
    req.on('error', (e) => { if (!req.destroyed) reject(e); });
  });
  const closed = await waitFor(() => main.state.closes.find((c) => c.path === '/endless'), 5000, 'the stream to end');
  assert.equal(closed.rstCode, NGHTTP2_CANCEL);
});

// --- TLS and upstreams that do not speak HTTP/2

// Proves h2 over TLS: the certificate verified, :scheme https.
test('h2 over TLS (ALPN h2) to a verified upstream; :scheme is https', async () => {
  const r = await h1('/secure/echo/tls?q=1', { headers: { host: 'api.example' } });
  assert.equal(r.status, 200, r.body.toString());
  const echo = jsonOf(r);
  assert.equal(echo.scheme, 'https');
  assert.equal(echo.authority, 'api.example');
  assert.equal(echo.path, '/echo/tls?q=1');
  const again = jsonOf(await h1('/secure/echo/again'));
  assert.equal(again.session, echo.session, 'the TLS connection is shared');
});

// Proves an HTTPS upstream that does not agree to h2 is refused at the handshake, nothing sent:
// one that speaks only http/1.1 (and says so with the no_application_protocol alert), and one
// that does no ALPN at all (the handshake completes, no protocol agreed).
test('an HTTPS upstream that speaks only HTTP/1.1 (https.createServer): 502 upstream_tls_failed naming ALPN/HTTP/2', async () => {
  const r = await h1('/h1tls/x');
  assert.equal(r.status, 502);
  const err = jsonOf(r);
  assert.equal(err.error, 'upstream_tls_failed');
  assert.match(err.message, /ALPN|HTTP\/2/);
  assert.equal(h1tlsRequests, 0, 'no request went to it');
});

test('an HTTPS upstream without ALPN: 502 upstream_tls_failed naming ALPN/HTTP/2', async () => {
  const r = await h1('/noalpn/x');
  assert.equal(r.status, 502);
  const err = jsonOf(r);
  assert.equal(err.error, 'upstream_tls_failed');
  assert.match(err.message, /ALPN|HTTP\/2/);
  assert.equal(h1tlsRequests, 0, 'no request went to it');
});

// Proves h2c to an HTTP/1.1-only server fails fast with a 502, no hang.
test('an h2c upstream that speaks only HTTP/1.1: 502, no hang', async () => {
  const t0 = Date.now();
  const r = await h1('/h1plain/x');
  assert.equal(r.status, 502, r.body.toString());
  assert.match(jsonOf(r).error, /^upstream_/);
  assert.ok(Date.now() - t0 < 5000, `answered after ${Date.now() - t0} ms`);
});

// --- other features on an HTTP/2 upstream

// Proves the retry policy applies to an HTTP/2 upstream's 503 (and that, without it, the 503 is relayed).
test('a retry policy retries a 503 from the HTTP/2 upstream', async () => {
  const r = await h1('/retrying/flaky?key=retried');
  assert.equal(r.status, 200);
  assert.deepEqual(jsonOf(r), { attempt: 2 });
  assert.equal(main.state.attempts.retried, 2);
  const plain = await h1('/flaky?key=once');
  assert.equal(plain.status, 503, 'no retry policy: the 503 goes to the client');
  assert.equal(main.state.attempts.once, 1);
});

// Proves a plugin still answers before the HTTP/2 upstream is asked.
test('key_auth over an HTTP/2 upstream: 401 without a key (nothing sent), 200 with one', async () => {
  const denied = await h1('/keyed/echo');
  assert.equal(denied.status, 401);
  assert.equal(jsonOf(denied).error, 'unauthorized');
  assert.equal(main.state.streams.filter((s) => s.path === '/keyed/echo').length, 0);
  const ok = await h1('/keyed/echo', { headers: { 'x-api-key': KEY } });
  assert.equal(ok.status, 200);
  assert.equal(jsonOf(ok).path, '/keyed/echo');
});

// --- flow control

// Proves flow control end to end: a client that stops reading stops the upstream; the body then
// arrives whole.
test('an HTTP/1.1 client that stops reading stops the HTTP/2 upstream; when it reads again, the body arrives whole', async () => {
  main.state.written = 0;
  const total = 64 << 20;
  let got = 0;
  let res;
  const req = http.get({ host: '127.0.0.1', port: gh.port, path: `/stream/${total}`, agent: false }, (r) => {
    res = r;
    r.on('data', (d) => { got += d.length; });
  });
  req.on('error', () => {});
  await waitFor(() => got > 0, 5000, 'the first bytes');
  res.pause();
  let before = -1;
  await waitFor(async () => {
    const now = main.state.written;
    const still = now === before;
    before = now;
    await new Promise((r) => setTimeout(r, 200));
    return still && main.state.written === now;
  }, 10000, 'the upstream to stop writing');
  assert.ok(main.state.written < 40 << 20, `the upstream wrote ${main.state.written} bytes of 64 MiB while the client read none`);
  const ended = new Promise((resolve, reject) => { res.on('end', resolve); res.on('error', reject); });
  res.resume();
  await ended;
  assert.ok(res.complete);
  assert.equal(got, total);
});

// --- health checks

// Proves active health checks go over HTTP/2 (the upstream speaks nothing else) and take the
// target out when they fail, back when they pass.
test('health checks over HTTP/2: 200 keeps the target, 503 takes it out (503 upstream_unavailable)', async () => {
  const hc = await startH2Upstream();
  const g = await startGatehouse(`
server: { workers: 1, listen: [ { address: 127.0.0.1:${await freePort()} } ] }
upstreams:
  hc:
    protocol: http2
    targets: [ { address: 127.0.0.1:${hc.port} } ]
    health_check: { path: /healthz, interval: 100ms, timeout: 500ms, unhealthy_after: 1, healthy_after: 1 }
routes:
  - { match: { path: /* }, to: hc }
`);
  try {
    await waitFor(() => hc.state.checks >= 3, 5000, 'checks over HTTP/2');
    assert.equal((await h1('/echo', { port: g.port })).status, 200);
    assert.doesNotMatch(g.stderr, /health: hc target \S+ is unhealthy/);
    hc.state.health = 503;
    const down = await waitFor(async () => {
      const r = await h1('/echo', { port: g.port });
      return r.status === 503 && r;
    }, 5000, 'the target taken out');
    assert.equal(jsonOf(down).error, 'upstream_unavailable');
    assert.match(g.stderr, /health: hc target \S+ is unhealthy/);
    hc.state.health = 200;
    await waitFor(async () => (await h1('/echo', { port: g.port })).status === 200, 5000, 'the target back');
  } finally {
    await g.stop();
    await hc.close();
  }
});

// --- config

// Proves validate: a WebSocket route cannot use an http2 upstream; protocol: http2 is otherwise accepted.
test('validate: websocket over an http2 upstream is an error; protocol: http2 is otherwise accepted', () => {
  const cfg = (route, tls = '') => `server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  h2: { protocol: http2, targets: [ { address: 127.0.0.1:9 } ]${tls} }
routes:
  - ${route}
`;
  const bad = tempFile('ws-h2.yaml', cfg('{ match: { path: /ws }, to: h2, websocket: {} }'));
  let r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /routes\[0\]\.websocket: .*HTTP\/2.*http1/);
  r = runGatehouse(['validate', '-c', tempFile('h2.yaml', cfg('{ match: { path: /* }, to: h2 }'))]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(1 listener\(s\), 1 upstream\(s\), 1 route\(s\)\)/);
  r = runGatehouse(['validate', '-c', tempFile('h2tls.yaml', cfg('{ match: { path: /* }, to: h2 }', `, tls: { ca_file: ${dir}/ca.pem }`))]);
  assert.equal(r.status, 0, r.stderr);
});

// --- memory

// Resolves what `work` resolves; rejects when `progress()` (bytes moved so far) stays the same for
// `ms`: a stalled transfer fails, saying where it stopped, instead of hanging the file.
async function unlessStalled(work, progress, what, ms = 15000) {
  let last = -1;
  let since = Date.now();
  let timer;
  const stalled = new Promise((_, reject) => {
    timer = setInterval(() => {
      const now = progress();
      if (now !== last) [last, since] = [now, Date.now()];
      else if (Date.now() - since > ms) reject(new Error(`${what} stalled at ${now} bytes`));
    }, 250);
  });
  try {
    return await Promise.race([work, stalled]);
  } finally {
    clearInterval(timer);
  }
}

// Proves flow control bounds the gateway's memory: 1 GiB down and 1 GiB up between an HTTP/1.1
// client and the HTTP/2 upstream, the gateway's peak RSS under 64 MiB.
test('1 GiB down and 1 GiB up between HTTP/1.1 and HTTP/2, the gateway\'s memory bounded (RSS < 64 MiB)', { timeout: 180000 }, async () => {
  const g = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:${await freePort()} } ]
  limits: { max_body_bytes: 2GiB }
upstreams:
  h2: { protocol: http2, targets: [ { address: 127.0.0.1:${main.port} } ] }
routes:
  - { match: { path: /* }, to: h2 }
`);
  try {
    let limitKiB = 64 * 1024;
    if (SANITIZED) limitKiB += peakRssKiB(g.proc.pid);  // shadow memory: growth is what counts
    // Down: the upstream's DATA, chunked to the client.
    let received = 0;
    const down = new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: g.port, path: `/stream/${1 << 30}`, agent: false }, (res) => {
        res.on('data', (d) => { received += d.length; });
        res.on('end', () => resolve({ n: received, complete: res.complete, status: res.statusCode }));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.deepEqual(await unlessStalled(down, () => received, 'the download'), { n: 1 << 30, complete: true, status: 200 });
    // Up: written as fast as the gateway takes it; the upstream hashes it.
    const chunk = Buffer.alloc(1 << 20, 'u');
    const hash = crypto.createHash('sha256');
    for (let i = 0; i < 1024; i++) hash.update(chunk);
    let sent = 0;
    const up = (async () => {
      const req = http.request({ host: '127.0.0.1', port: g.port, method: 'POST', path: '/sink',
        headers: { 'content-length': 1 << 30 }, agent: false });
      const answered = new Promise((resolve, reject) => {
        req.on('response', (res) => {
          const parts = [];
          res.on('data', (d) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(parts)) }));
        });
        req.on('error', reject);
      });
      for (let i = 0; i < 1024; i++) {
        sent += chunk.length;
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
      return answered;
    })();
    const { status, body } = await unlessStalled(up, () => sent, 'the upload');
    assert.equal(status, 200);
    assert.equal(body.body_bytes, 1 << 30);
    assert.equal(body.sha256, hash.digest('hex'));
    const peak = peakRssKiB(g.proc.pid);
    assert.ok(peak < limitKiB, `peak RSS ${peak} KiB`);
  } finally {
    await g.stop();
  }
});
