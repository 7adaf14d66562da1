// The admin API: health, readiness, status, Prometheus metrics (checked by promtool), reload,
// bearer tokens; and the drain that /readyz announces.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { startGatehouse, curl, json, waitFor, freePort, tempFile, requireTool } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

let up;
before(async () => { up = await startUpstream({ name: 'echo' }); });
after(() => up.close());

async function startWithAdmin({ token, extra = '' } = {}) {
  const adminPort = await freePort();
  const yaml = (route) => `
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin:
  listen: 127.0.0.1:${adminPort}
${token ? '  token_env: GH_TEST_ADMIN_TOKEN' : ''}
${extra}
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
  dead: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
  - { name: ${route}, match: { path: /echo/* }, to: echo }
  - { name: dead, match: { path: /dead/* }, to: dead }
  - { name: delay, match: { path: /delay/* }, to: echo }
  - { name: hold, match: { path: /hold }, to: echo }
`;
  const gh = await startGatehouse(yaml('echo-route'), { env: token ? { GH_TEST_ADMIN_TOKEN: token } : {} });
  gh.admin = (p) => `http://127.0.0.1:${adminPort}${p}`;
  gh.yaml = yaml;
  return gh;
}

test('healthz, readyz, status: shape and live values', async () => {
  const gh = await startWithAdmin();
  assert.deepEqual(json(await curl([gh.admin('/healthz')])), { status: 'ok' });
  assert.deepEqual(json(await curl([gh.admin('/readyz')])), { status: 'ready' });
  // A request held by the upstream while /status is read: it is counted, then answered.
  const inflight = curl([gh.url('/hold'), '--max-time', '5']);
  await waitFor(() => up.state.held === 1, 3000, 'the request at the upstream');
  const s = json(await curl([gh.admin('/status')]));
  up.release();
  const answered = await inflight;
  assert.equal(answered.status, 200, answered.stderr);
  assert.deepEqual(json(answered), { upstream: 'echo', held: true });
  assert.equal(s.version, 1);
  assert.match(s.loaded_at, /^\d{4}-\d\d-\d\dT/);
  assert.equal(s.config_file, gh.file);
  assert.equal(s.workers, 2);
  assert.equal(s.draining, false);
  assert.deepEqual(s.listeners, [`http://127.0.0.1:${gh.port}`]);
  assert.deepEqual(s.routes.map((r) => r.name).sort(), ['dead', 'delay', 'echo-route', 'hold']);
  const echo = s.upstreams.find((u) => u.name === 'echo');
  assert.equal(echo.balance, 'round_robin');
  assert.deepEqual(Object.keys(echo.targets[0]).sort(),
    ['address', 'circuit_breaker', 'health', 'idle_connections', 'in_flight', 'weight']);
  assert.equal(echo.targets[0].address, `127.0.0.1:${up.port}`);
  assert.equal(echo.targets[0].in_flight, 1, 'the held request');
  await gh.stop();
});

test('status counts a request in flight on its target', async () => {
  const gh = await startWithAdmin();
  const inFlight = async () => json(await curl([gh.admin('/status')])).upstreams.find((u) => u.name === 'echo').targets[0].in_flight;
  assert.equal(await inFlight(), 0);
  const held = [curl([gh.url('/hold')]), curl([gh.url('/hold')])];
  await waitFor(() => up.state.held === 2, 3000, 'both requests at the upstream');
  assert.equal(await inFlight(), 2);
  up.release();
  for (const r of await Promise.all(held)) assert.equal(r.status, 200);
  await waitFor(async () => (await inFlight()) === 0, 3000, 'in_flight back to 0');
  await gh.stop();
});

test('metrics: values match the traffic sent, and promtool accepts the exposition', async () => {
  requireTool('promtool');
  const gh = await startWithAdmin();
  for (let i = 0; i < 7; i++) await curl([gh.url('/echo/a'), '-o', '/dev/null']);
  for (let i = 0; i < 3; i++) await curl([gh.url('/echo/b'), '-X', 'POST', '-d', 'x', '-o', '/dev/null']);
  for (let i = 0; i < 2; i++) await curl([gh.url('/dead/x'), '-o', '/dev/null']);
  await curl([gh.url('/nowhere'), '-o', '/dev/null']);
  const m = await curl([gh.admin('/metrics')]);
  assert.equal(m.status, 200);
  assert.match(m.headers['content-type'][0], /^text\/plain; version=0\.0\.4/);
  const text = m.body;
  const value = (re) => { const x = re.exec(text); return x ? Number(x[1]) : undefined; };
  assert.equal(value(/^gatehouse_requests_total\{route="echo-route",method="GET",code="200"\} (\d+)$/m), 7);
  assert.equal(value(/^gatehouse_requests_total\{route="echo-route",method="POST",code="200"\} (\d+)$/m), 3);
  assert.equal(value(/^gatehouse_requests_total\{route="dead",method="GET",code="502"\} (\d+)$/m), 2);
  assert.equal(value(/^gatehouse_requests_total\{route="",method="GET",code="404"\} (\d+)$/m), 1);
  assert.equal(value(/^gatehouse_request_duration_seconds_count\{route="echo-route"\} (\d+)$/m), 10);
  assert.equal(value(/^gatehouse_request_duration_seconds_bucket\{route="echo-route",le="\+Inf"\} (\d+)$/m), 10);
  assert.equal(value(new RegExp(`^gatehouse_upstream_requests_total\\{upstream="echo",target="127.0.0.1:${up.port}",outcome="ok"\\} (\\d+)$`, 'm')), 10);
  assert.equal(value(/^gatehouse_upstream_requests_total\{upstream="dead",target="127.0.0.1:1",outcome="connect_error"\} (\d+)$/m), 2);
  assert.ok(value(/^gatehouse_received_bytes_total (\d+)$/m) > 13 * 60);
  assert.ok(value(/^gatehouse_sent_bytes_total (\d+)$/m) > 13 * 100);
  assert.equal(value(/^gatehouse_config_info\{version="1"\} (\d+)$/m), 1);
  assert.ok(value(/^process_resident_memory_bytes (\d+)$/m) > 1e6);
  assert.ok(value(/^process_open_fds (\d+)$/m) > 3);
  const file = tempFile('metrics.txt', text);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: fs.readFileSync(file), encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  await gh.stop();
});

test('POST /reload: 200 with the new version; 400 with every error, old config kept', async () => {
  const gh = await startWithAdmin();
  fs.writeFileSync(gh.file, gh.yaml('renamed'));
  const ok = await curl(['-X', 'POST', gh.admin('/reload')]);
  assert.equal(ok.status, 200);
  assert.deepEqual(json(ok), { version: 2 });
  await curl([gh.url('/echo/x'), '-o', '/dev/null']);
  fs.writeFileSync(gh.file, gh.yaml('broken').replace('to: echo', 'to: nowhere').replace('workers: 2', 'workers: 2\n  bogus: 1'));
  const bad = await curl(['-X', 'POST', gh.admin('/reload')]);
  assert.equal(bad.status, 400);
  const body = json(bad);
  assert.equal(body.error, 'invalid_config');
  assert.equal(body.errors.length, 2);
  assert.match(body.errors[0], /:\d+:\d+: server\.bogus: unknown key 'bogus'/);
  assert.match(body.errors[1], /routes\[0\]\.to: unknown upstream 'nowhere'/);
  const r = await curl([gh.url('/echo/x')]);
  assert.equal(r.status, 200, 'still serving');
  const m = (await curl([gh.admin('/metrics')])).body;
  assert.match(m, /^gatehouse_config_reloads_total\{result="ok"\} 1$/m);
  assert.match(m, /^gatehouse_config_reloads_total\{result="error"\} 1$/m);
  assert.match(m, /^gatehouse_config_info\{version="2"\} 1$/m);
  assert.match(m, /^gatehouse_requests_total\{route="renamed",method="GET",code="200"\} 2$/m);
  const s = json(await curl([gh.admin('/status')]));
  assert.deepEqual(s.reloads, { ok: 1, error: 1 });
  // The last reload's time and result, with its errors (the dashboard shows them).
  assert.equal(s.last_reload.ok, false);
  assert.deepEqual(s.last_reload.errors, body.errors);
  assert.ok(Math.abs(Date.parse(s.last_reload.at) - Date.now()) < 10000, s.last_reload.at);
  assert.equal((await curl([gh.admin('/reload')])).status, 405);
  await gh.stop();
});

test('status: last_reload is absent until a reload is asked for, then says when and that it took', async () => {
  const gh = await startWithAdmin();
  assert.equal(json(await curl([gh.admin('/status')])).last_reload, undefined);
  assert.equal((await curl(['-X', 'POST', gh.admin('/reload')])).status, 200);
  const s = json(await curl([gh.admin('/status')]));
  assert.equal(s.last_reload.ok, true);
  assert.deepEqual(s.last_reload.errors, []);
  await gh.stop();
});

test('dashboard: the login form sets an HttpOnly, SameSite=Strict cookie that stands for the token', async () => {
  const gh = await startWithAdmin({ token: 'correct horse;=%' });
  const page = await curl([gh.admin('/dashboard')]);
  assert.equal(page.status, 401, 'no token: the login form');
  assert.match(page.headers['content-type'][0], /^text\/html/);
  assert.match(page.body, /<form method="post" action="\/dashboard\/login">/);
  assert.match(page.headers['content-security-policy'][0], /default-src 'self'/);
  assert.equal((await curl([gh.admin('/dashboard/app.js')])).status, 401, 'the script needs the token too');
  const wrong = await curl(['-X', 'POST', '--data-urlencode', 'token=correct horse', gh.admin('/dashboard/login')]);
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['set-cookie'], undefined);
  const login = await curl(['-X', 'POST', '--data-urlencode', 'token=correct horse;=%', gh.admin('/dashboard/login')]);
  assert.equal(login.status, 303);
  assert.equal(login.headers.location[0], '/dashboard');
  const cookie = login.headers['set-cookie'][0];
  assert.match(cookie, /^gatehouse_admin=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
  const pair = cookie.split(';')[0];
  for (const p of ['/dashboard', '/dashboard/app.js', '/status', '/metrics'])
    assert.equal((await curl(['-H', `Cookie: other=1; ${pair}`, gh.admin(p)])).status, 200, p);
  assert.equal((await curl(['-X', 'POST', '-H', `Cookie: ${pair}`, gh.admin('/reload')])).status, 200);
  assert.equal((await curl(['-H', 'Cookie: gatehouse_admin=correct%20horse', gh.admin('/status')])).status, 401);
  await gh.stop();
});

test('dashboard: without a token, the page and its script are served at once', async () => {
  const gh = await startWithAdmin();
  const page = await curl([gh.admin('/dashboard')]);
  assert.equal(page.status, 200);
  assert.match(page.body, /<script src="\/dashboard\/app.js"><\/script>/);
  const js = await curl([gh.admin('/dashboard/app.js')]);
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'][0], /^text\/javascript/);
  const post = await curl(['-X', 'POST', gh.admin('/dashboard')]);
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow[0], 'GET, HEAD');
  assert.equal((await curl([gh.admin('/dashboard/login')])).headers.allow[0], 'POST');
  const login = await curl(['-X', 'POST', '--data-urlencode', 'token=x', gh.admin('/dashboard/login')]);
  assert.equal(login.status, 303, 'nothing to sign in to');
  assert.equal(login.headers['set-cookie'], undefined);
  await gh.stop();
});

test('token: everything but /healthz needs the bearer token', async () => {
  const gh = await startWithAdmin({ token: 'correct horse' });
  assert.equal((await curl([gh.admin('/healthz')])).status, 200);
  for (const p of ['/readyz', '/status', '/metrics']) {
    assert.equal((await curl([gh.admin(p)])).status, 401, p);
    assert.equal((await curl(['-H', 'Authorization: Bearer wrong', gh.admin(p)])).status, 401, p);
    assert.equal((await curl(['-H', 'Authorization: Bearer correct hors', gh.admin(p)])).status, 401, p);
    assert.equal((await curl(['-H', 'Authorization: Bearer correct horse', gh.admin(p)])).status, 200, p);
  }
  assert.equal((await curl(['-X', 'POST', gh.admin('/reload')])).status, 401);
  assert.equal((await curl(['-X', 'POST', '-H', 'Authorization: Bearer correct horse', gh.admin('/reload')])).status, 200);
  await gh.stop();
});

test('SIGTERM with 20 slow requests in flight: readyz 503 at once, new connections refused, all 20 complete, exit 0', async () => {
  const gh = await startWithAdmin({ extra: '' });
  // Keep-alive clients: a Connection: close on their responses can only come from the drain.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
  const slow = Array.from({ length: 20 }, () => new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port: gh.port, path: '/delay/2000', agent }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, connection: res.headers.connection }));
    }).on('error', (e) => resolve({ status: 0, error: e.code }));
  }));
  await waitFor(async () => json(await curl([gh.admin('/status')])).connections >= 20, 3000, '20 connections');
  // An idle keep-alive connection (its request done) is closed as soon as the drain begins.
  const idle = await new Promise((resolve) => {
    const s = net.connect(gh.port, '127.0.0.1', () => s.write('GET /echo/x HTTP/1.1\r\nHost: t\r\n\r\n'));
    s.once('data', () => resolve(s));
  });
  const idleClosed = new Promise((resolve) => idle.on('close', () => resolve(Date.now())));
  const t0 = Date.now();
  gh.proc.kill('SIGTERM');
  await waitFor(async () => (await curl([gh.admin('/readyz')])).status === 503, 1000, 'readyz 503');
  assert.equal(json(await curl([gh.admin('/status')])).draining, true);
  const refused = await new Promise((resolve) => {
    const s = net.connect(gh.port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
  assert.ok(refused, 'a new connection is refused while draining');
  assert.ok((await idleClosed) - t0 < 1000, 'the idle connection closed at once');
  const results = await Promise.all(slow);
  assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
  // Busy connections are told, on their last response, that the gateway closes them.
  assert.deepEqual(results.map((r) => r.connection), Array(20).fill('close'));
  agent.destroy();
  const { code } = await gh.exited;
  assert.equal(code, 0);
});
