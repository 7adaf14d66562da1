// Cluster-wide rate limits on a real Redis Cluster (six redis-server nodes, three masters with a
// replica each, made into a cluster by redis-cli): each decision goes to the node that owns its
// key's hash slot; a slot moved to another node (with its keys) is followed through the MOVED
// redirection, counts intact; during a migration, keys the old owner does not have are decided
// on the new one (ASK); and a dead master's promoted replica takes over its decisions. The
// cache's shared tier on the same cluster: hits and purges reach the entries on every master, and
// the other gateway's memory through the purge stream, read from the node that holds it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { startGatehouse, waitFor, freePort, httpGet, curl } from './harness.mjs';
import { requireRedis, spawnRedis, cli, limitedConfig, sharedCacheConfig, passes as passesThrough } from './redis_fixture.mjs';
import { startUpstream } from './upstream.mjs';

let up, gateways = [];
const servers = {};     // port -> redis-server process
let ports = [];         // all six nodes
const killed = new Set();
before(async () => {
  requireRedis();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-redis-cluster-'));
  // A cluster node also listens on its port + 10000 (the cluster bus): both must be free.
  while (ports.length < 6) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    if (!ports.includes(port) && await freePort(port) && await freePort(port + 10000)) ports.push(port);
  }
  for (const port of ports) {
    servers[port] = spawnRedis(['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000',
      // Replicas in sync at once (no 5 s wait for more replicas), and allowed to take over.
      '--repl-diskless-sync-delay', '0', '--cluster-replica-validity-factor', '0'], { dir });
  }
  await waitFor(() => ports.every((p) => { try { return cli(p, 'ping') === 'PONG'; } catch { return false; } }), 5000, 'six nodes');
  // Three masters, each with a replica.
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1',
    '--cluster-yes'], { stdio: 'ignore' });
  await waitFor(() => ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 10000, 'cluster_state:ok');
  await waitFor(() => ports.every((p) => {
    const info = cli(p, 'info', 'replication');
    return info.includes('role:master') || info.includes('master_link_status:up');
  }), 10000, 'replicas in sync');
  up = await startUpstream({ name: 'u' });
  // The URL names one node; the gateway finds the others.
  const config = limitedConfig(`{ url: "redis://127.0.0.1:${ports[0]}", cluster: true, timeout: 300ms, on_error: deny }`, up.port);
  gateways = [await startGatehouse(config), await startGatehouse(config)];
});
after(async () => {
  for (const g of gateways) await g.stop();
  for (const s of Object.values(servers)) s.kill('SIGKILL');
  await up?.close();
});

// The live nodes' view (CLUSTER NODES): masters with their slot ranges.
function masters() {
  const alive = ports.find((p) => !killed.has(p));
  return cli(alive, 'cluster', 'nodes').split('\n').map((line) => line.split(' '))
    .filter((f) => f[2].includes('master') && !f[2].includes('fail'))
    .map((f) => ({ id: f[0], port: Number(f[1].split(':')[1].split('@')[0]), ranges: f.slice(8) }));
}
const ownerOf = (slot) => masters().find((m) => m.ranges.some((r) => {
  const [a, b = a] = r.split('-').map(Number);
  return slot >= a && slot <= b;
}))?.port;
const slotOf = (user) => Number(cli(ports[0], 'cluster', 'keyslot', `{h:${user}}`));

const passes = (user, n) => passesThrough(gateways, user, n);

// The master that holds a user's keys.
function whereIs(user) {
  for (const { port } of masters()) {
    if (cli(port, '--scan', '--pattern', `*${user}*`)) return port;
  }
  return null;
}

test('each decision goes to the node that owns its hash slot: exact limits for keys on every node', async () => {
  await waitFor(async () => (await passes('warm-up', 1)) === 1, 5000, 'the first cluster decision');
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  for (const user of users) assert.equal(await passes(user, 8), 5, user);
  const nodes = new Set(users.map((u) => whereIs(u)));
  assert.equal(nodes.size, 3, 'the keys are spread over the three masters');
});

test('a slot moved to another node (keys included) is followed through MOVED: counting goes on', async () => {
  const user = 'mover';
  assert.equal(await passes(user, 3), 3);
  const slot = slotOf(user);
  const from = ownerOf(slot);
  const to = masters().find((m) => m.port !== from).port;
  const [fromId, toId] = [cli(from, 'cluster', 'myid'), cli(to, 'cluster', 'myid')];
  // The migration redis-cli --cluster reshard does, for one slot.
  cli(to, 'cluster', 'setslot', String(slot), 'importing', fromId);
  cli(from, 'cluster', 'setslot', String(slot), 'migrating', toId);
  const keys = cli(from, 'cluster', 'getkeysinslot', String(slot), '100').split('\n').filter(Boolean);
  cli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys);
  for (const m of masters()) cli(m.port, 'cluster', 'setslot', String(slot), 'node', toId);
  assert.equal(whereIs(user), to);
  // The gateways still map the slot to the old node: it answers MOVED, and they follow.
  assert.equal(await passes(user, 6), 2, 'the 2 left of 5, counted where the keys went');
});

test('while a slot migrates, a key its old owner does not have is decided on the new one (ASK)', async () => {
  const user = 'asker';  // not used yet: its keys exist nowhere
  const slot = slotOf(user);
  const from = ownerOf(slot);
  const to = masters().find((m) => m.port !== from).port;
  cli(to, 'cluster', 'setslot', String(slot), 'importing', cli(from, 'cluster', 'myid'));
  cli(from, 'cluster', 'setslot', String(slot), 'migrating', cli(to, 'cluster', 'myid'));
  assert.equal(await passes(user, 8), 5, 'decided with ASKING on the importing node');
  assert.equal(whereIs(user), to, 'the keys were made on the new owner');
  for (const m of masters()) cli(m.port, 'cluster', 'setslot', String(slot), 'node', cli(to, 'cluster', 'myid'));
});

// The cache's shared tier on the same cluster: each URL's hash lives on the master of its slot.
test('the cache\'s shared tier: entries on every master are shared hits, and purges reach every master', async () => {
  const fetched = new Map();  // path -> requests the origin answered
  const origin = http.createServer((req, res) => {
    fetched.set(req.url, (fetched.get(req.url) || 0) + 1);
    const body = `body of ${req.url}`;
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': Buffer.byteLength(body),
      'surrogate-key': req.url.startsWith('/t/') ? 'tagged' : 'plain' });
    res.end(body);
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  const adminPort = await freePort();
  const config = (admin) => sharedCacheConfig({
    redis: `{ url: "redis://127.0.0.1:${ports[0]}", cluster: true, timeout: 300ms }`,
    cache: '{ max_size: 16MiB, max_object_size: 256KiB }',
    workers: 1,  // one Redis client each, warmed up below
    originPort: origin.address().port,
    adminPort: admin && adminPort,
  });
  let one, two;
  try {
    one = await startGatehouse(config(true));
    two = await startGatehouse(config(false));
    const get = (gh, p) => httpGet(gh.port, p, { headers: { host: 'shop.example' } });
    const key = (p) => `gh:c:http://shop.example${p}`;
    const ownerOfKey = (p) => ownerOf(Number(cli(ports[0], 'cluster', 'keyslot', key(p))));
    const inRedis = (p) => cli(ownerOfKey(p), 'EXISTS', key(p)) === '1';
    // A gateway's Redis client learns the slot map, and opens its connection to each master, on
    // first use; until then a store or a lookup there skips Redis (it never waits for it). Warm
    // both up on every master: a path of that master's stored by one, then read from Redis by two.
    let n = 0;
    for (const master of new Set(masters().map((m) => m.port))) {
      await waitFor(async () => {
        let p;
        do p = `/warm/${n++}`; while (ownerOfKey(p) !== master);
        await get(one, p);
        if (!(await waitFor(() => inRedis(p), 1000, p).then(() => true, () => false))) return false;
        return /detail=redis/.test((await get(two, p)).headers['cache-status']);
      }, 10000, `both gateways reaching master ${master}`);
    }

    const paths = [...Array.from({ length: 12 }, (_, i) => `/p/${i}`), ...Array.from({ length: 6 }, (_, i) => `/t/${i}`)];
    for (const p of paths) assert.match((await get(one, p)).headers['cache-status'], /fwd=uri-miss; fwd-status=200; ttl=\d+; stored/);
    await waitFor(() => paths.every(inRedis), 5000, 'every entry in the cluster');
    const owners = new Set(paths.map(ownerOfKey));
    assert.equal(owners.size, 3, 'the entries are spread over the three masters');
    for (const p of paths) {
      const r = await get(two, p);
      assert.equal(r.body, `body of ${p}`);
      assert.match(r.headers['cache-status'], /^gatehouse; hit; ttl=\d+; detail=redis$/, p);
      assert.equal(fetched.get(p), 1, `${p} fetched once, by the first gateway`);
    }

    const purge = async (body) => JSON.parse((await curl(['-X', 'POST', '--data-binary', body,
      `http://127.0.0.1:${adminPort}/cache/purge`])).body);
    assert.deepEqual(await purge('{"prefix":"/p/"}'), { purged: 12, shared: 12 });
    assert.deepEqual(paths.filter(inRedis), paths.filter((p) => p.startsWith('/t/')), 'the prefix went from every master');
    assert.deepEqual(await purge('{"tag":"tagged"}'), { purged: 6, shared: 6 });
    assert.deepEqual(paths.filter(inRedis), []);
    // The other gateway held them in memory; it reads the purges from the stream (on the master
    // of its key's slot) and drops them too: its next request for each goes to the origin.
    for (const p of paths) {
      await waitFor(async () => /fwd=uri-miss/.test((await get(two, p)).headers['cache-status']), 5000,
        `${p} dropped from the second gateway's memory`);
      assert.equal(fetched.get(p), 2, p);
    }
    // Each gateway reads the stream with XREAD BLOCK 1000 STREAMS gh:cp ...: it goes to the
    // owner of gh:cp's slot, not of "BLOCK"'s (where every read would first be answered MOVED).
    const streamOwner = ownerOf(Number(cli(ports[0], 'cluster', 'keyslot', 'gh:cp')));
    const blockOwner = ownerOf(Number(cli(ports[0], 'cluster', 'keyslot', 'BLOCK')));
    assert.notEqual(streamOwner, blockOwner, 'the two slots on different masters, as the cluster was made');
    const stat = (port, section, pattern) => Number(cli(port, 'info', section).match(pattern)?.[1] ?? 0);
    const reads = () => stat(streamOwner, 'commandstats', /cmdstat_xread:calls=(\d+)/);
    const moved = () => stat(blockOwner, 'errorstats', /errorstat_MOVED:count=(\d+)/);
    const [reads0, moved0] = [reads(), moved()];
    await waitFor(() => reads() >= reads0 + 3, 10000, 'the followers reading the stream');
    assert.equal(moved(), moved0, 'no read of the stream sent to the node of "BLOCK"');
  } finally {
    await one?.stop();
    await two?.stop();
    origin.close();
  }
});

test('a master that dies is replaced by its promoted replica: decisions find it, counts intact', async () => {
  const user = 'survivor';
  assert.equal(await passes(user, 3), 3);
  const slot = slotOf(user);
  const master = ownerOf(slot);
  cli(master, 'wait', '1', '1000');  // the replica has the counts
  servers[master].kill('SIGKILL');
  killed.add(master);
  await waitFor(() => { const o = ownerOf(slot); return o && o !== master; }, 10000, 'a replica promoted');
  // Until the gateways see the new map, on_error (deny) answers; then the replica decides, from
  // the replicated counts: 3 used, 2 left.
  await waitFor(async () => (await passes(user, 1)) === 1, 5000, 'decisions on the promoted replica');
  assert.equal(await passes(user, 4), 1);
});
