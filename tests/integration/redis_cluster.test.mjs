// Cluster-wide rate limits on a real Redis Cluster (three redis-server nodes made into a cluster by
// redis-cli): each decision goes to the node that owns its key's hash slot; a slot moved to
// another node (with its keys) is followed through the MOVED redirection, counts intact; and
// during a migration, keys the old owner does not have are decided on the new one (ASK).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { startGatehouse, waitFor, freePort, httpGet } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const hasRedis = (() => { try { execFileSync('redis-cli', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !hasRedis && 'redis-server not installed';
const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

let up, ports = [], servers = [], gateways = [];
before(async () => {
  if (!hasRedis) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-redis-cluster-'));
  for (let i = 0; i < 3; i++) ports.push(await freePort());
  for (const port of ports) {
    servers.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' }));
  }
  await waitFor(() => ports.every((p) => { try { return cli(p, 'ping') === 'PONG'; } catch { return false; } }), 5000, 'three nodes');
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0',
    '--cluster-yes'], { stdio: 'ignore' });
  await waitFor(() => ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 10000, 'cluster_state:ok');
  up = await startUpstream({ name: 'u' });
  // The URL names one node; the gateway finds the others.
  const config = `
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
redis: { url: "redis://127.0.0.1:${ports[0]}", cluster: true, timeout: 300ms, on_error: deny }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - match: { path: /* }
    to: u
    plugins:
      rate_limit: { limits: ["5/m"], key: "header:x-user", scope: cluster }
`;
  gateways = [await startGatehouse(config), await startGatehouse(config)];
});
after(async () => {
  for (const g of gateways) await g.stop();
  for (const s of servers) s.kill('SIGKILL');
  await up?.close();
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const passes = async (user, n) => {
  let passed = 0;
  for (let i = 0; i < n; i++) {
    const r = await httpGet(gateways[i % 2].port, '/x', { headers: { 'x-user': user }, agent });
    if (r.status === 200) passed++;
  }
  return passed;
};

// The node that holds a user's keys, and their hash slot.
function whereIs(user) {
  for (const port of ports) {
    const keys = cli(port, '--scan', '--pattern', `*${user}*`).split('\n').filter(Boolean);
    if (keys.length) return { port, slot: Number(cli(port, 'cluster', 'keyslot', keys[0])) };
  }
  return null;
}

test('each decision goes to the node that owns its hash slot: exact limits for keys on every node', { skip }, async () => {
  await waitFor(async () => (await httpGet(gateways[0].port, '/x', { headers: { 'x-user': 'warm-up' }, agent })).status === 200,
    5000, 'the first cluster decision');
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  for (const user of users) assert.equal(await passes(user, 8), 5, user);
  const nodes = new Set(users.map((u) => whereIs(u)?.port));
  assert.equal(nodes.size, 3, 'the keys are spread over the three nodes');
});

test('a slot moved to another node (keys included) is followed through MOVED: counting goes on', { skip }, async () => {
  const user = 'mover';
  assert.equal(await passes(user, 3), 3);
  const from = whereIs(user);
  const to = ports.find((p) => p !== from.port);
  const [fromId, toId] = [cli(from.port, 'cluster', 'myid'), cli(to, 'cluster', 'myid')];
  // The migration redis-cli --cluster reshard does, for one slot.
  cli(to, 'cluster', 'setslot', String(from.slot), 'importing', fromId);
  cli(from.port, 'cluster', 'setslot', String(from.slot), 'migrating', toId);
  const keys = cli(from.port, 'cluster', 'getkeysinslot', String(from.slot), '100').split('\n').filter(Boolean);
  cli(from.port, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys);
  for (const p of ports) cli(p, 'cluster', 'setslot', String(from.slot), 'node', toId);
  assert.equal(whereIs(user).port, to);
  // The gateways still map the slot to the old node: it answers MOVED, and they follow.
  assert.equal(await passes(user, 6), 2, 'the 2 left of 5, counted where the keys went');
});

// The node that owns a hash slot, from CLUSTER NODES ("... master - 0 0 1 connected 0-5460").
function ownerOf(slot) {
  for (const line of cli(ports[0], 'cluster', 'nodes').split('\n')) {
    const fields = line.split(' ');
    for (const range of fields.slice(8)) {
      const [a, b = a] = range.split('-').map(Number);
      if (slot >= a && slot <= b) return Number(fields[1].split(':')[1].split('@')[0]);
    }
  }
  return null;
}

test('while a slot migrates, a key its old owner does not have is decided on the new one (ASK)', { skip }, async () => {
  const user = 'asker';  // not used yet: its keys exist nowhere
  const slot = Number(cli(ports[0], 'cluster', 'keyslot', `{h:${user}}`));
  const from = ownerOf(slot);
  const to = ports.find((p) => p !== from);
  cli(to, 'cluster', 'setslot', String(slot), 'importing', cli(from, 'cluster', 'myid'));
  cli(from, 'cluster', 'setslot', String(slot), 'migrating', cli(to, 'cluster', 'myid'));
  assert.equal(await passes(user, 8), 5, 'decided with ASKING on the importing node');
  assert.equal(whereIs(user).port, to, 'the keys were made on the new owner');
});
