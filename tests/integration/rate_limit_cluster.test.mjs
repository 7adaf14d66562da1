// Cluster-wide rate limits through a real redis-server: exact across three gateway instances,
// the on_error policies while Redis is down (no 5xx, decisions within redis.timeout), recovery
// when it comes back, and TLS to Redis (rediss://).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startGatehouse, waitFor, freePort, curl, httpGet, makeCa, makeCert, requireTool } from './harness.mjs';
import { spawnRedis } from './redis_fixture.mjs';
import { startUpstream } from './upstream.mjs';

const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');

let up, redisPort, redis, adminPort;
const instances = {};  // policy -> gatehouse

function startRedis() {
  const p = spawnRedis(['--port', String(redisPort), '--bind', '127.0.0.1']);
  return waitFor(() => new Promise((resolve) => {
    const s = net.connect(redisPort, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 5000, 'redis-server').then(() => p);
}

const config = (policy, admin = '') => `
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
${admin}
redis: { url: "redis://127.0.0.1:${redisPort}/0", timeout: 100ms, on_error: ${policy} }
consumers:
  - { name: alpha, api_keys: [ { sha256: ${sha('key-alpha')} } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - name: shared
    match: { path: /c/* }
    to: u
    plugins:
      key_auth: {}
      rate_limit: { limits: ["60/h"], key: consumer, scope: cluster }
`;
// 60/h: a burst of 60, then one more a minute. No test here lasts a minute, so every count below
// is exact, however slowly the machine runs the requests.

// Each Redis connection logs when it is lost (or a first attempt fails) and when it is back:
// every connection of the gateway that went down is up again when the two counts are equal.
const downs = (g) => (g.stderr.match(/redis: connection to \S+ (lost|failed)/g) || []).length;
const ups = (g) => (g.stderr.match(/redis: connected again/g) || []).length;

before(async () => {
  requireTool('redis-server');
  redisPort = await freePort();
  redis = await startRedis();
  up = await startUpstream({ name: 'u' });
  adminPort = await freePort();
  instances.local = await startGatehouse(config('local', `admin: { listen: 127.0.0.1:${adminPort} }`));
  for (const policy of ['deny', 'allow']) instances[policy] = await startGatehouse(config(policy));
  instances.local2 = await startGatehouse(config('local'));
  instances.local3 = await startGatehouse(config('local'));
});
after(async () => {
  for (const g of Object.values(instances)) await g.stop();
  redis?.kill('SIGKILL');
  await up?.close();
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
const get = (g, path, key = 'key-alpha') => httpGet(g.port, path, { headers: { 'x-api-key': key }, agent });

test('three instances share one budget: 60/h lets exactly 60 of 300 through', async () => {
  const three = [instances.local, instances.local2, instances.local3];
  const all = await Promise.all(Array.from({ length: 300 }, (_, i) => get(three[i % 3], '/c/x')));
  assert.equal(all.filter((r) => r.status === 200).length, 60);
  assert.equal(all.filter((r) => r.status === 429).length, 240);
  const ok = all.find((r) => r.status === 200);
  assert.equal(ok.headers['ratelimit-policy'], '"60/h";q=60;w=3600');
});

test('Redis down: each on_error policy holds, no 5xx, decisions within redis.timeout; Redis back: cluster counting resumes', async () => {
  const gone = new Promise((resolve) => redis.once('exit', resolve));
  redis.kill('SIGKILL');
  await gone;
  // The three instances that used Redis above see their connections go.
  const used = [instances.local, instances.local2, instances.local3];
  await waitFor(() => used.every((g) => downs(g) > ups(g)), 5000, 'the connections lost');
  for (const [policy, want] of [['local', 200], ['deny', 429], ['allow', 200]]) {
    // A fresh consumer key would be simplest, but the budget above is spent cluster-wide: the
    // local fallback has its own, per instance.
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await get(instances[policy], '/c/x'));
    for (const r of results) {
      assert.ok(r.status < 500, `${policy}: ${r.status}`);
      assert.ok(r.ms < 100 + 150, `${policy}: decided in ${r.ms.toFixed(0)} ms`);
    }
    assert.equal(results[0].status, want, policy);
  }
  // The local fallback enforces the limit per instance.
  const statuses = [];
  for (let i = 0; i < 70; i++) statuses.push((await get(instances.local, '/c/x')).status);
  assert.ok(statuses.includes(429), 'the local fallback limits too');

  redis = await startRedis();
  // Cluster counting resumes by itself: the new Redis has no state, so the budget is fresh and
  // shared again across instances. The first request through it takes one of the 60.
  await waitFor(async () => {
    const r = await get(instances.deny, '/c/x');
    return r.status === 200;
  }, 8000, 'cluster decisions again');
  // Every connection that went down is back (each after its own backoff, at most 2 s), so no
  // instance decides on its own any more.
  await waitFor(() => Object.values(instances).every((g) => downs(g) === ups(g)), 8000, 'every Redis connection back');
  const all = await Promise.all(Array.from({ length: 120 }, (_, i) => get(used[i % 3], '/c/x')));
  const passed = all.filter((r) => r.status === 200).length;
  // Shared again: the 59 left of the fresh budget, and not one more from a local fallback.
  assert.equal(passed, 59, `shared again: ${passed} of 120 passed`);

  const m = (await curl([`http://127.0.0.1:${adminPort}/metrics`])).body;
  const metric = (re) => Number((m.match(re) || [])[1]);
  assert.ok(metric(/gatehouse_rate_limit_fallbacks_total\{route="shared"\} (\d+)/) >= 5, 'fallbacks counted');
  assert.ok(metric(/gatehouse_rate_limit_redis_duration_seconds_count\{route="shared"\} (\d+)/) >= 100, 'round trips timed');
});

test('rediss://: cluster decisions over verified TLS; a Redis whose certificate does not verify is down', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-rediss-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeCert(dir, 'redis', 'ca', ['DNS:redis.test', 'IP:127.0.0.1']);
  const tlsPort = await freePort();
  const tlsRedis = spawnRedis(['--port', '0', '--tls-port', String(tlsPort), '--bind', '127.0.0.1',
    '--tls-cert-file', path.join(dir, 'redis.pem'), '--tls-key-file', path.join(dir, 'redis.key'),
    '--tls-ca-cert-file', path.join(dir, 'ca.pem'), '--tls-auth-clients', 'no']);
  const gateways = [];
  try {
    await waitFor(() => new Promise((resolve) => {
      const s = net.connect(tlsPort, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    }), 5000, 'redis-server with TLS');
    const start = async (ca) => {
      const g = await startGatehouse(config('deny').replace(/redis: \{[^\n]*\}/,
        `redis: { url: "rediss://127.0.0.1:${tlsPort}/0", tls: { ca_file: ${path.join(dir, ca)}, server_name: redis.test }, timeout: 300ms, on_error: deny }`)
        .replace('"60/h"', '"5/h"'));
      gateways.push(g);
      return g;
    };
    // Two instances count together through pipelined TLS connections: of 1 + 60 requests, 5
    // pass, the rest get 429.
    const [a, b] = [await start('ca.pem'), await start('ca.pem')];
    await waitFor(async () => (await get(a, '/c/x', 'key-alpha')).status === 200, 5000, 'the first decision over TLS');
    const statuses = (await Promise.all(Array.from({ length: 60 }, (_, i) => get(i % 2 ? a : b, '/c/x'))))
      .map((r) => r.status);
    assert.deepEqual([statuses.filter((s) => s === 200).length, statuses.filter((s) => s === 429).length], [4, 56],
      `${statuses}`);
    // Against another CA, the handshake fails: Redis counts as down, and on_error: deny answers.
    const c = await start('other-ca.pem');
    const r = await get(c, '/c/x');
    assert.equal(r.status, 429);
    await waitFor(() => /redis: connection to 127\.0\.0\.1:\d+ failed: TLS handshake failed/.test(c.stderr), 3000, 'the reason logged');
  } finally {
    for (const g of gateways) await g.stop();
    tlsRedis.kill('SIGKILL');
  }
});
