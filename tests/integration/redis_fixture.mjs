// Shared by the Redis Cluster and Sentinel suites: real redis-server processes driven with
// redis-cli, and two gateways that share a 5/h limit per `x-user` header through them.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { httpGet, ownChild, requireTool } from './harness.mjs';

// Fails the suite (in its before hook) when redis-server or redis-cli is missing.
export function requireRedis() {
  requireTool('redis-server');
  requireTool('redis-cli');
}

// redis-server ARGS..., persisting nothing, and run in (and with --dir) a fresh temporary folder:
// whatever it writes (an RDB a replica receives, a cluster's nodes.conf) never lands in the
// source tree, whatever the current directory. `dir`: that folder instead.
export function spawnRedis(args, { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-redis-')) } = {}) {
  return ownChild(spawn('redis-server', [...args, '--dir', dir, '--save', '', '--appendonly', 'no'], { cwd: dir, stdio: 'ignore' }));
}

// redis-cli -p PORT ARGS..., its output trimmed.
export const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

// A gateway config with cluster-wide limits of 5/h per x-user, through `redis` (a YAML mapping).
// Per hour, not per minute: GCRA gives a 5/m key a request back every 12 s, and a failover on a
// loaded machine can take that long, so the counts a test expects would drift with time.
export const limitedConfig = (redis, upstreamPort) => `
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
redis: ${redis}
upstreams:
  u: { targets: [ { address: 127.0.0.1:${upstreamPort} } ] }
routes:
  - match: { path: /* }
    to: u
    plugins:
      rate_limit: { limits: ["5/h"], key: "header:x-user", scope: cluster }
`;

// A gateway config whose one route caches, with a tier in Redis (`redis`, `cache`: the YAML
// mappings), in front of the origin on `originPort`, tagging entries by Surrogate-Key; with the
// admin API on `adminPort` when one is given, and `workers` workers when given.
export const sharedCacheConfig = ({ redis, cache, originPort, adminPort, workers }) => `
server:
  listen: [ { address: 127.0.0.1:0 } ]${workers ? `\n  workers: ${workers}` : ''}
${adminPort ? `admin: { listen: 127.0.0.1:${adminPort} }` : ''}
redis: ${redis}
cache: ${cache}
upstreams:
  o: { targets: [ { address: 127.0.0.1:${originPort} } ] }
routes:
  - match: { path: /* }
    to: o
    plugins: { cache: { tier: redis, tag_header: Surrogate-Key } }
`;

// How many of n requests for `user`, alternating between the gateways, get through.
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
export async function passes(gateways, user, n) {
  let passed = 0;
  for (let i = 0; i < n; i++) {
    const r = await httpGet(gateways[i % gateways.length].port, '/x', { headers: { 'x-user': user }, agent });
    if (r.status === 200) passed++;
  }
  return passed;
}
