// Slow and hostile clients: a request body that trickles in (server.timeouts.body_read) and a
// client that never reads its response (server.timeouts.send, backpressure to the upstream, the
// memory the gateway holds per such connection). The upstreams are node servers that record what
// happens to their side (the request aborted, the connection closed, write() refused); the clients
// are raw sockets. No test sleeps: each waits for the event it is about, bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startGatehouse, waitFor } from './harness.mjs';

// Rejects with `what` when `promise` has not settled within `ms`.
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function closeServer(server) {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

function rssKiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)[1]);
}

// A raw client that keeps what it receives and how its connection ended ('end' or 'reset').
function rawClient(port) {
  const sock = net.connect(port, '127.0.0.1');
  const c = { sock, bytes: Buffer.alloc(0), ended: null, received: 0 };
  c.connected = new Promise((r) => sock.once('connect', r));
  c.closed = new Promise((resolve) => sock.on('close', () => resolve()));
  sock.on('data', (d) => { c.received += d.length; if (c.bytes.length < 65536) c.bytes = Buffer.concat([c.bytes, d]); });
  sock.on('end', () => { c.ended ??= 'end'; });
  sock.on('error', (e) => { c.ended ??= e.code === 'ECONNRESET' ? 'reset' : e.code; });
  return c;
}

// --- 1. a request body that trickles in --------------------------------------------------------

// An upstream that reads request bodies and records how each request ended: complete, or cut
// short (its connection closed before the body's end: node's 'close' with req.complete false).
async function startBodyUpstream() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const r = { url: req.url, bytes: 0, complete: false, aborted: false };
    r.ended = new Promise((resolve) => {
      req.on('data', (d) => { r.bytes += d.length; });
      req.on('end', () => { r.complete = true; res.end(`got ${r.bytes}`); resolve(r); });
      req.on('close', () => { if (!req.complete) r.aborted = true; resolve(r); });
    });
    requests.push(r);
  });
  const port = await listen(server);
  return { port, requests, close: () => closeServer(server) };
}

test('a body sent at 10 bytes/s: 408 body_timeout after timeouts.body_read, upstream request aborted, client connection closed', async (t) => {
  const up = await startBodyUpstream();
  t.after(() => up.close());
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  timeouts: { body_read: 1s, idle: 10s }
upstreams:
  app: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: app }
`);
  t.after(() => g.stop());
  const c = rawClient(g.port);
  t.after(() => c.sock.destroy());
  await c.connected;
  const t0 = Date.now();
  c.sock.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n');
  // 10 bytes a second, one at a time: every stall is far below timeouts.idle.
  const trickle = setInterval(() => { if (!c.sock.destroyed) c.sock.write('x'); }, 100);
  t.after(() => clearInterval(trickle));
  await within(c.closed, 6000, 'the gateway to close the client connection');
  const elapsed = Date.now() - t0;
  clearInterval(trickle);
  const text = c.bytes.toString('latin1');
  const m = /^HTTP\/1\.1 (\d+) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
  assert.ok(m, `a response: ${JSON.stringify(text)}`);
  assert.equal(Number(m[1]), 408);
  assert.match(m[2], /\r?\nconnection: close(\r|$)/i);
  const body = JSON.parse(m[3]);
  assert.equal(body.error, 'body_timeout');
  assert.match(body.message, /within 1s \(server\.timeouts\.body_read\)/);
  assert.ok(body.request_id);
  assert.ok(elapsed >= 900, `not before timeouts.body_read (${elapsed} ms)`);
  assert.ok(elapsed < 5000, `closed within the bounds (${elapsed} ms)`);
  // The upstream saw the request start, then its connection close before the body ended.
  assert.equal(up.requests.length, 1);
  const r = await within(up.requests[0].ended, 3000, 'the upstream request to end');
  assert.equal(r.aborted, true, 'the upstream request was aborted');
  assert.equal(r.complete, false);
  assert.ok(r.bytes > 0 && r.bytes < 100, `the trickled bytes reached the upstream (${r.bytes})`);
  const log = await waitFor(() => g.accessLog().find((l) => l.path === '/upload'), 3000, 'the access log line');
  assert.equal(log.status, 408);
  assert.equal(log.error, 'body_timeout');
});

test('a body that arrives within timeouts.body_read goes through, also after 100 Continue', async (t) => {
  const up = await startBodyUpstream();
  t.after(() => up.close());
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  timeouts: { body_read: 2s }
upstreams:
  app: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: app }
`);
  t.after(() => g.stop());
  for (const expect of [false, true]) {
    const c = rawClient(g.port);
    t.after(() => c.sock.destroy());
    await c.connected;
    c.sock.write(`POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n${expect ? 'Expect: 100-continue\r\n' : ''}\r\n`);
    if (expect) await waitFor(() => c.bytes.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 3000, '100 Continue');
    c.sock.write(Buffer.alloc(1048576, 'y'));
    await waitFor(() => /got 1048576$/.test(c.bytes.toString('latin1')), 5000, 'the upstream answer');
    assert.match(c.bytes.toString('latin1'), /HTTP\/1\.1 200 OK/);
  }
});

// --- 2. a client that never reads its response -------------------------------------------------

const DOWNLOAD = 100 * 1024 * 1024;
// The gateway's memory per slow reader (docs/configuration.md, "Slow clients"): measured 41-43 KiB
// (Release, 2 workers, 200 connections); at most 64 KiB of response held per connection by design.
// The bound leaves about 4x room for the allocator and other builds.
const PER_CONN_BOUND_KIB = 160;

// An upstream that streams DOWNLOAD bytes to each request, 64 KiB per write(), waiting for 'drain'
// whenever write() returns false (it respects backpressure, so what it wrote is what the path to
// the client accepted). Records per response: bytes written, write() refusals, and when its
// connection closed.
async function startDownloadUpstream() {
  const responses = [];
  const piece = Buffer.alloc(64 * 1024, 'z');
  const server = http.createServer((req, res) => {
    const r = { written: 0, refused: 0, closed: false, finished: false };
    r.closedP = new Promise((resolve) => res.on('close', () => { r.closed = true; resolve(); }));
    responses.push(r);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DOWNLOAD });
    const pump = () => {
      while (!r.closed && r.written < DOWNLOAD) {
        r.written += piece.length;
        if (!res.write(piece)) { r.refused++; res.once('drain', pump); return; }
      }
      if (!r.closed) { r.finished = true; res.end(); }
    };
    pump();
  });
  const port = await listen(server);
  return { port, responses, close: () => closeServer(server) };
}

// A client that asks for the download and never reads: its socket is paused before any byte
// comes (node then stops reading once its own small buffer is full).
async function slowReader(port) {
  const c = rawClient(port);
  c.sock.pause();
  await c.connected;
  c.sock.write('GET /download HTTP/1.1\r\nHost: x\r\n\r\n');
  return c;
}

// The upstream's bytes written stay still for `quietMs` (polled; bounded by `ms`).
async function untilStalled(responses, count, quietMs, ms, what) {
  let last = -1;
  let since = Date.now();
  await waitFor(() => {
    if (responses.length < count) return false;
    const total = responses.reduce((s, r) => s + r.written, 0);
    if (total !== last) { last = total; since = Date.now(); return false; }
    return Date.now() - since >= quietMs;
  }, ms, what);
}

test('a client that never reads: the upstream is held back, both connections closed after timeouts.send', async (t) => {
  const up = await startDownloadUpstream();
  t.after(() => up.close());
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
  timeouts: { send: 500ms, idle: 30s }
upstreams:
  app: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { match: { path: /* }, to: app }
`);
  t.after(() => g.stop());
  const t0 = Date.now();
  const c = await slowReader(g.port);
  t.after(() => c.sock.destroy());
  await waitFor(() => up.responses.length === 1, 3000, 'the request at the upstream');
  const r = up.responses[0];
  await within(r.closedP, 5000, 'the gateway to close the upstream connection');
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 450, `not before timeouts.send (${elapsed} ms)`);
  assert.ok(r.refused > 0, 'the upstream\'s write() returned false: backpressure');
  assert.equal(r.finished, false);
  assert.ok(r.written < DOWNLOAD / 4, `the upstream wrote ${r.written} bytes, well short of ${DOWNLOAD}`);
  // The client connection was ended by the gateway: what the client's socket holds, then its end.
  c.sock.resume();
  await within(c.closed, 3000, 'the client connection to end');
  assert.ok(c.ended, 'the gateway ended the client connection');
  assert.ok(c.received < r.written, `the client got ${c.received} of the ${r.written} bytes the upstream wrote`);
  assert.match(c.bytes.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
  console.log(`slow reader: upstream wrote ${(r.written / 1048576).toFixed(1)} MiB, client received ${(c.received / 1048576).toFixed(1)} MiB, both closed after ${elapsed} ms`);
});

test('200 clients that never read: gateway RSS stays bounded, every connection closed after timeouts.send', async (t) => {
  const N = 200;
  const up = await startDownloadUpstream();
  t.after(() => up.close());
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
  timeouts: { send: 5s, idle: 30s }
upstreams:
  app: { targets: [ { address: 127.0.0.1:${up.port} } ], max_idle_per_target: 0 }
routes:
  - { match: { path: /* }, to: app }
observability: { access_log: { path: off } }
`);
  t.after(() => g.stop());
  const baseline = rssKiB(g.proc.pid);
  const clients = [];
  t.after(() => { for (const c of clients) c.sock.destroy(); });
  for (let i = 0; i < N; i++) clients.push(await slowReader(g.port));
  await untilStalled(up.responses, N, 300, 10000, `${N} downloads held back`);
  const rss = rssKiB(g.proc.pid);
  const written = up.responses.reduce((s, r) => s + r.written, 0);
  const perConnKiB = (rss - baseline) / N;
  console.log(`${N} slow readers: RSS ${baseline} KiB -> ${rss} KiB (${perConnKiB.toFixed(1)} KiB per connection); upstream wrote ${(written / 1048576).toFixed(0)} MiB in all, ${(written / N / 1048576).toFixed(2)} MiB each`);
  assert.ok(up.responses.every((r) => r.refused > 0 && !r.finished), 'every upstream response was held back');
  assert.ok(written / N < DOWNLOAD / 4, 'each upstream wrote well short of the download');
  if (process.env.ASAN_OPTIONS || process.env.TSAN_OPTIONS) {
    t.diagnostic('sanitizer build: the RSS bound is not checked');
  } else {
    assert.ok(rss < baseline + N * PER_CONN_BOUND_KIB, `RSS ${rss} KiB over ${baseline} + ${N} x ${PER_CONN_BOUND_KIB} KiB`);
  }
  await within(Promise.all(up.responses.map((r) => r.closedP)), 15000, 'every upstream connection closed');
  for (const c of clients) c.sock.resume();
  await within(Promise.all(clients.map((c) => c.closed)), 10000, 'every client connection ended');
});
