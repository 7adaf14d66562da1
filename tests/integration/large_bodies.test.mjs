// Bodies stream both ways: 1 GiB up and 1 GiB down pass through while the gateway's resident
// memory stays under 64 MiB (its high-water mark, read from /proc; under a sanitizer, 64 MiB over
// the gateway's high-water mark at start, see SANITIZED in harness.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { startGatehouse, peakRssKiB, SANITIZED } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const GiB = 1024 * 1024 * 1024;
let up;
let gh;
let rssLimitKiB = 64 * 1024;
before(async () => {
  up = await startUpstream({ name: 'bulk' });
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
  limits: { max_body_bytes: 2GiB }
observability:
  access_log: { path: "off" }
upstreams:
  bulk: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  # Stored for a minute if small enough (8 MiB by default): a larger body is dropped from the
  # cache's copy as soon as it outgrows that, and streams on.
  - match: { path: /cached/* }
    to: bulk
    rewrite: { strip_prefix: /cached }
    plugins: { cache: { ttl: 60s } }
  - match: { path: /* }
    to: bulk
`);
  if (SANITIZED) rssLimitKiB += peakRssKiB(gh.proc.pid);
});
after(async () => { await gh.stop(); await up.close(); });

// Uploads `total` bytes of a repeating pattern; resolves the upstream's answer and our checksum.
function upload({ total, chunked }) {
  return new Promise((resolve, reject) => {
    const headers = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': total };
    const req = http.request(gh.url('/sink'), { method: 'PUT', headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body), sha256: hash.digest('hex') }));
    });
    req.on('error', reject);
    const hash = crypto.createHash('sha256');
    const block = crypto.randomBytes(256 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(block.length, total - sent);
        const piece = n === block.length ? block : block.subarray(0, n);
        hash.update(piece);
        sent += n;
        if (!req.write(piece)) { req.once('drain', pump); return; }
      }
      req.end();
    };
    pump();
  });
}

test('1 GiB upload with Content-Length arrives whole, gateway RSS < 64 MiB', { timeout: 120000 }, async (t) => {
  const r = await upload({ total: GiB, chunked: false });
  assert.equal(r.status, 200);
  assert.equal(r.body.bytes, GiB);
  assert.equal(r.body.sha256, r.sha256);
  const peak = peakRssKiB(gh.proc.pid);
  t.diagnostic(`gateway peak RSS ${peak} KiB`);
  assert.ok(peak < rssLimitKiB, `peak RSS ${peak} KiB`);
});

test('1 GiB chunked upload arrives whole', { timeout: 120000 }, async (t) => {
  const r = await upload({ total: GiB, chunked: true });
  assert.equal(r.status, 200);
  assert.equal(r.body.bytes, GiB);
  assert.equal(r.body.sha256, r.sha256);
  assert.ok(peakRssKiB(gh.proc.pid) < rssLimitKiB);
});

for (const [cl, prefix] of [[true, ''], [false, ''], [true, '/cached'], [false, '/cached']]) {
  test(`1 GiB download (${cl ? 'Content-Length' : 'chunked'}${prefix ? ', on a cached route' : ''}), gateway RSS < 64 MiB`, { timeout: 120000 }, async (t) => {
    const n = await new Promise((resolve, reject) => {
      http.get(gh.url(`${prefix}/stream/${GiB}${cl ? '?cl=1' : ''}`), (res) => {
        // Too large to keep: by its Content-Length at once; chunked, once it outgrows the limit.
        if (prefix) assert.match(res.headers['cache-status'], cl ? /detail=too-large$/ : /ttl=60; stored$/);
        let bytes = 0;
        res.on('data', (d) => { bytes += d.length; });
        res.on('end', () => resolve(bytes));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(n, GiB);
    const peak = peakRssKiB(gh.proc.pid);
    t.diagnostic(`gateway peak RSS ${peak} KiB`);
    assert.ok(peak < rssLimitKiB, `peak RSS ${peak} KiB`);
  });
}
