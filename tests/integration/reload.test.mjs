// Hot reload: SIGHUP swaps the configuration with no request lost; requests in flight finish on
// the configuration they started with; an invalid file changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startGatehouse, sleep, waitFor } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let a, b;
before(async () => {
  a = await startUpstream({ name: 'a' });
  b = await startUpstream({ name: 'b' });
});
after(async () => { await a.close(); await b.close(); });

// Config `name` routes every path to upstream `name`.
const config = (name) => `
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
observability:
  access_log: { path: "off" }
upstreams:
  a: { targets: [ { address: 127.0.0.1:${a.port} } ] }
  b: { targets: [ { address: 127.0.0.1:${b.port} } ] }
routes:
  - name: to-${name}
    match: { path: /* }
    to: ${name}
`;

function get(agent, port, path, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, upstream: res.headers['x-upstream'] }));
    });
    req.on('error', (e) => resolve({ status: 0, error: e.code }));
  });
}

test('50 reloads under load from 32 keep-alive connections: nothing fails, each reload takes effect', { timeout: 120000 }, async () => {
  const gh = await startGatehouse(config('a'));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  let stop = false;
  const results = [];
  const clients = Array.from({ length: 32 }, async () => {
    while (!stop) results.push(await get(agent, gh.port, '/echo'));
  });
  const probe = new http.Agent({ keepAlive: false });
  for (let i = 1; i <= 50; i++) {
    const name = i % 2 ? 'b' : 'a';
    fs.writeFileSync(gh.file, config(name));
    gh.proc.kill('SIGHUP');
    // New requests use the new configuration as soon as the reload is logged.
    await waitFor(() => gh.stderr.split('reloaded').length - 1 >= i, 5000, `reload ${i}`);
    for (let k = 0; k < 4; k++) {
      const r = await get(probe, gh.port, '/echo');
      assert.equal(r.upstream, name, `request after reload ${i} went to ${r.upstream}`);
    }
  }
  stop = true;
  await Promise.all(clients);
  agent.destroy();
  const failed = results.filter((r) => r.status !== 200);
  assert.ok(results.length > 500, `only ${results.length} requests`);
  assert.deepEqual(failed, [], `${failed.length} of ${results.length} failed`);
  assert.ok(results.some((r) => r.upstream === 'a') && results.some((r) => r.upstream === 'b'));
  const { code } = await gh.stop();
  assert.equal(code, 0);
});

test('a request in flight finishes on the configuration it started with', async () => {
  const gh = await startGatehouse(config('a'));
  const slow = get(undefined, gh.port, '/delay/600');
  await sleep(150);
  fs.writeFileSync(gh.file, config('b'));
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reloaded'), 3000, 'reload');
  assert.equal((await get(undefined, gh.port, '/echo')).upstream, 'b');
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.upstream, 'a');
  await gh.stop();
});

test('an invalid file on SIGHUP: errors logged, the old configuration keeps serving', async () => {
  const gh = await startGatehouse(config('a'));
  fs.writeFileSync(gh.file, config('b').replace('to: b', 'to: nowhere').replace('workers: 2', 'workers: 2\n  colour: red'));
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reload rejected'), 3000, 'rejection');
  assert.match(gh.stderr, /server\.colour: unknown key 'colour'/);
  assert.match(gh.stderr, /routes\[0\]\.to: unknown upstream 'nowhere'/);
  assert.match(gh.stderr, /still serving config version 1/);
  const r = await get(undefined, gh.port, '/echo');
  assert.equal(r.status, 200);
  assert.equal(r.upstream, 'a');
  await gh.stop();
});

test('a reload that changes what needs a restart is refused, naming it', async () => {
  const gh = await startGatehouse(config('a'));
  fs.writeFileSync(gh.file, config('b').replace('workers: 2', 'workers: 1'));
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reload rejected'), 3000, 'rejection');
  assert.match(gh.stderr, /server\.workers: the worker count cannot change on reload/);
  assert.equal((await get(undefined, gh.port, '/echo')).upstream, 'a');
  await gh.stop();
});

function connects(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

test('listeners added by a reload open on every worker; removed ones close', async () => {
  // The new listener's port is the kernel's choice at bind (127.0.0.2:0, another address, so
  // another listener): a port picked before the reload could be taken by then.
  const gh = await startGatehouse(config('a'));
  const two = config('b').replace('listen: [ { address: 127.0.0.1:0 } ]',
    'listen: [ { address: 127.0.0.1:0 }, { address: 127.0.0.2:0 } ]');
  fs.writeFileSync(gh.file, two);
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reloaded'), 3000, 'reload');
  const extra = Number(/listening on http:\/\/127\.0\.0\.2:(\d+)/.exec(gh.stderr)?.[1]);
  assert.ok(extra > 0, gh.stderr);
  // Both workers accept on the new port: many fresh connections all get answers.
  for (let i = 0; i < 20; i++) assert.equal((await get(new http.Agent(), extra, '/echo', '127.0.0.2')).upstream, 'b');
  assert.equal((await get(undefined, gh.port, '/echo')).upstream, 'b');
  fs.writeFileSync(gh.file, config('a'));
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.split('reloaded').length === 3, 3000, 'second reload');
  await waitFor(async () => !(await connects(extra, '127.0.0.2')), 2000, 'the removed listener closes');
  assert.equal((await get(undefined, gh.port, '/echo')).upstream, 'a', gh.stderr);
  await gh.stop();
});

test('a reload whose new listener cannot bind is rejected whole', async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const busy = blocker.address().port;
  const gh = await startGatehouse(config('a'));
  fs.writeFileSync(gh.file, config('b').replace('listen: [ { address: 127.0.0.1:0 } ]',
    `listen: [ { address: 127.0.0.1:0 }, { address: 127.0.0.1:${busy} } ]`));
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reload rejected'), 3000, 'rejection');
  assert.match(gh.stderr, /server\.listen\[1\]: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  assert.equal((await get(undefined, gh.port, '/echo')).upstream, 'a');
  blocker.close();
  await gh.stop();
});

test('--watch reloads when the file is rewritten or replaced', async () => {
  const gh = await startGatehouse(config('a'), { args: ['--watch'] });
  fs.writeFileSync(gh.file, config('b'));
  await waitFor(async () => (await get(undefined, gh.port, '/echo')).upstream === 'b', 3000, 'rewrite picked up');
  // An editor's save: write elsewhere, rename over the file.
  fs.writeFileSync(`${gh.file}.tmp`, config('a'));
  fs.renameSync(`${gh.file}.tmp`, gh.file);
  await waitFor(async () => (await get(undefined, gh.port, '/echo')).upstream === 'a', 3000, 'rename picked up');
  await gh.stop();
});

test('a reload keeps the idle pools of targets that stay and closes those of targets that left', async () => {
  // Config "ab": both upstreams in use; then "a" only.
  const both = config('a').replace('- name: to-a', '- name: to-b\n    match: { path: /b/* }\n    rewrite: { strip_prefix: /b }\n    to: b\n  - name: to-a');
  const gh = await startGatehouse(both);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await get(agent, gh.port, '/echo')).upstream, 'a');
  assert.equal((await get(agent, gh.port, '/b/echo')).upstream, 'b');
  await waitFor(() => a.state.open >= 1 && b.state.open >= 1, 2000, 'pooled connections');
  const aOpened = a.state.connections;
  const withoutB = config('a').replace('to-a', 'renamed').split('\n').filter((l) => !l.startsWith('  b:')).join('\n');
  fs.writeFileSync(gh.file, withoutB);
  gh.proc.kill('SIGHUP');
  await waitFor(() => gh.stderr.includes('reloaded'), 3000, 'reload');
  // b left the configuration: its idle connection is closed at once.
  await waitFor(() => b.state.open === 0, 2000, "b's pooled connection closes");
  // a stayed: its pooled connection serves the next requests, no new connection is opened.
  for (let i = 0; i < 5; i++) assert.equal((await get(agent, gh.port, '/echo')).upstream, 'a');
  assert.equal(a.state.connections, aOpened, 'no reconnect to a target that stayed');
  agent.destroy();
  await gh.stop();
});
