// Cluster-wide rate limits through Redis Sentinel: a master, its replica and a sentinel watching
// them (all real redis-server processes). The gateways ask the sentinel where the master is, and
// after a failover they find the new one, with the replicated counts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGatehouse, waitFor, freePort } from './harness.mjs';
import { requireRedis, spawnRedis, cli, limitedConfig, passes as passesThrough } from './redis_fixture.mjs';
import { startUpstream } from './upstream.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

let up, master, replica, sentinel;
const processes = [];
const gateways = [];
// Each server in a folder of its own: the replica writes the RDB it receives from the master.
const redis = (...args) => {
  const p = spawnRedis(args);
  processes.push(p);
  return p;
};
const replOffset = (port) => Number(/master_repl_offset:(\d+)/.exec(cli(port, 'info', 'replication'))[1]);
const masterPort = () => Number(cli(sentinel, 'sentinel', 'get-master-addr-by-name', 'mymaster').split('\n')[1]);

before(async () => {
  requireRedis();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sentinel-'));
  [master, replica, sentinel] = [await freePort(), await freePort(), await freePort()];
  const common = ['--bind', '127.0.0.1', '--repl-diskless-sync-delay', '0'];
  redis('--port', String(master), ...common);
  redis('--port', String(replica), ...common, '--replicaof', '127.0.0.1', String(master));
  await waitFor(() => { try { return cli(replica, 'info', 'replication').includes('master_link_status:up'); } catch { return false; } },
    10000, 'the replica in sync');
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(conf, `port ${sentinel}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${master} 1\n` +
    'sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 3000\n');
  redis(conf, '--sentinel');
  await waitFor(() => { try { return cli(sentinel, 'sentinel', 'replicas', 'mymaster').includes(String(replica)); } catch { return false; } },
    10000, 'the sentinel knows the replica');
  up = await startUpstream({ name: 'u' });
  // With sentinels, the URL's host is the master's name.
  const config = limitedConfig(`{ url: "redis://mymaster/0", sentinels: ["127.0.0.1:${sentinel}"], timeout: 300ms, on_error: deny }`, up.port);
  gateways.push(await startGatehouse(config), await startGatehouse(config));
});
after(async () => {
  for (const g of gateways) await g.stop();
  for (const p of processes) p.kill('SIGKILL');
  await up?.close();
});

const passes = (user, n) => passesThrough(gateways, user, n);

test('the sentinel names the master: both gateways count there', async () => {
  await waitFor(async () => (await passes('warm-up', 1)) === 1, 5000, 'the first decision');
  assert.equal(await passes('alice', 8), 5);
  assert.ok(cli(master, '--scan', '--pattern', '*alice*'), 'the counts live on the master');
});

test('after a failover the gateways find the new master, with the replicated counts', async () => {
  assert.equal(await passes('bob', 3), 3);
  // The replica has bob's counts: replication is asynchronous, and a forced failover promotes the
  // replica as it is. (WAIT would not do: it waits for the calling client's own writes, and
  // redis-cli's connection has made none.)
  await waitFor(() => replOffset(replica) >= replOffset(master), 5000, 'the replica caught up');
  // The sentinel refuses (NOGOODSLAVE) until it has the replica's INFO with its link up: ask again.
  await waitFor(() => cli(sentinel, 'sentinel', 'failover', 'mymaster') === 'OK', 10000, 'the sentinel starts a failover');
  await waitFor(() => masterPort() === replica, 10000, 'the replica promoted');
  // The sentinel tells the old master it is a replica on its next round (about 10 s later); do it
  // now, as it would.
  cli(master, 'replicaof', '127.0.0.1', String(replica));
  // The old master, a replica now, refuses writes (READONLY): the gateways ask the sentinel again.
  await waitFor(async () => (await passes('bob', 1)) === 1, 5000, 'decisions on the new master');
  assert.equal(await passes('bob', 4), 1, '3 + 1 used before, 1 left of 5');
  assert.ok(cli(replica, '--scan', '--pattern', '*bob*'));
});

// The replica above wrote the RDB it received into its own temporary folder, not the current one.
test('nothing the Redis servers wrote lands in the source tree', () => {
  for (const d of [here, process.cwd()]) assert.ok(!fs.existsSync(path.join(d, 'dump.rdb')), `${d}/dump.rdb`);
});
