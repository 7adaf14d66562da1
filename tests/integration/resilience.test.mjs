// Resilience: bulkheads (max_concurrent_requests). Retries, breakers and health checks come next.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGatehouse, curl, freePort, json } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let slow, other, gh, adminPort;
before(async () => {
  slow = await startUpstream({ name: 'slow' });
  other = await startUpstream({ name: 'other' });
  adminPort = await freePort();
  gh = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${adminPort} }
upstreams:
  slow:
    targets: [ { address: 127.0.0.1:${slow.port} } ]
    max_concurrent_requests: 10
  other: { targets: [ { address: 127.0.0.1:${other.port} } ] }
routes:
  - { match: { path: /slow/* }, rewrite: { strip_prefix: /slow }, to: slow }
  - { match: { path: /other/* }, rewrite: { strip_prefix: /other }, to: other }
`);
});
after(async () => {
  await gh?.stop();
  await slow?.close();
  await other?.close();
});

function get(path) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gh.port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, ms: performance.now() - t0 }));
    }).on('error', reject);
  });
}

test('the bulkhead refuses the 11th concurrent request at once, across workers; others are unaffected', async () => {
  // Ten slow requests fill the upstream's ten slots (over both workers' connections).
  const ten = Array.from({ length: 10 }, () => get('/slow/delay/600'));
  await new Promise((r) => setTimeout(r, 150));
  const eleventh = await get('/slow/delay/600');
  assert.equal(eleventh.status, 503);
  assert.ok(eleventh.ms < 100, `refused in ${eleventh.ms.toFixed(0)} ms, not queued`);
  assert.equal(JSON.parse(eleventh.body).error, 'upstream_overloaded');
  assert.equal(eleventh.headers['retry-after'], '1');
  const elsewhere = await get('/other/echo');
  assert.equal(elsewhere.status, 200, 'another upstream is not affected');
  const results = await Promise.all(ten);
  assert.deepEqual(results.map((r) => r.status), Array(10).fill(200));
  // The slots are free again.
  assert.equal((await get('/slow/echo')).status, 200);
  const m = (await curl([`http://127.0.0.1:${adminPort}/metrics`])).body;
  assert.match(m, /gatehouse_upstream_rejected_total\{upstream="slow"\} 1\b/);
});
