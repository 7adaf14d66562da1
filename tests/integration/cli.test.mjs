// The command line and process contract (docs/cli-contract.md): validate, version, help,
// start-up errors, graceful drain on SIGTERM, the access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { BIN, SANITIZED, requireTool, runGatehouse, startGatehouse, tempFile, curl, waitFor, freePort, makeCa, makeCert } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// The contract's example config, copied into the repository (examples/contract.yaml).
const contractExample = path.resolve(here, '../../examples/contract.yaml');

// examples/protos/reviews.proto compiled to DIR/protos/reviews.pb, as scripts/demo.sh does.
function compileReviews(dir) {
  requireTool('protoc');
  const protos = path.resolve(here, '../../examples/protos');
  fs.mkdirSync(path.join(dir, 'protos'), { recursive: true });
  execFileSync('protoc', ['-I', protos, '--include_imports',
    `--descriptor_set_out=${path.join(dir, 'protos/reviews.pb')}`, path.join(protos, 'reviews.proto')]);
}

let up;
before(async () => { up = await startUpstream({ name: 'echo' }); });
after(() => up.close());

const minimal = (port = 0, extra = '') => `
server:
  listen: [ { address: 127.0.0.1:${port} } ]
${extra}
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - match: { path: /* }
    to: echo
`;

test('validate: a good config exits 0 with a one-line summary', () => {
  const file = tempFile('good.yaml', minimal());
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  assert.match(r.stdout, /ok \(1 listener\(s\), 1 upstream\(s\), 1 route\(s\)\)/);
});

test('validate: every error, each as FILE:LINE:COL: yaml.path: message, in file order', () => {
  const file = tempFile('bad.yaml', `server:
  listen: [ { address: "127.0.0.1:99999" } ]
  timeouts: { idle: 10 }
  colour: blue
upstreams:
  a:
    targets: [ { address: 127.0.0.1:1 } ]
    balance: fastest
routes:
  - match: { path_regex: "([a-" }
    to: a
  - match: { path: /x }
    to: nowhere
`);
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith(`${file}:`) && /:\d+:\d+: /.test(l));
  const expected = [
    [2, 24, 'server.listen[0].address', /invalid port '99999'/],
    [3, 21, 'server.timeouts.idle', /invalid duration '10'/],
    [4, 3, 'server.colour', /unknown key 'colour'/],
    [8, 14, 'upstreams.a.balance', /unknown balance 'fastest'/],
    [10, 26, 'routes[0].match.path_regex', /invalid regex: missing \]/],
    [13, 9, 'routes[1].to', /unknown upstream 'nowhere'/],
  ];
  assert.equal(lines.length, expected.length, r.stderr);
  expected.forEach(([line, col, yamlPath, msg], i) => {
    const prefix = `${file}:${line}:${col}: ${yamlPath}: `;
    assert.ok(lines[i].startsWith(prefix), `line ${i}: ${lines[i]}\n expected prefix ${prefix}`);
    assert.match(lines[i], msg);
  });
});

test('validate: YAML syntax errors carry their position', () => {
  const file = tempFile('syntax.yaml', 'server:\n  listen: [ { address: 1\n');
  const r = runGatehouse(['validate', '-c', file]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+:\\d+: \\(syntax\\): `, 'm'));
});

test('validate: the contract example is valid, every key of it built', () => {
  assert.ok(fs.existsSync(contractExample), `${contractExample} is missing`);
  // Its TLS listener names certs/api.example.com.pem and .key beside it: made for a copy of it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-contract-'));
  const example = path.join(dir, 'contract.yaml');
  fs.copyFileSync(contractExample, example);
  fs.mkdirSync(path.join(dir, 'certs'));
  compileReviews(dir);  // the descriptor set its review-json route transcodes with
  makeCa(path.join(dir, 'certs'), 'ca');
  makeCert(path.join(dir, 'certs'), 'api.example.com', 'ca', ['DNS:api.example.com']);
  // The example takes one consumer's API key from ACME_API_KEY.
  const r = runGatehouse(['validate', '-c', example], { env: { ...process.env, ACME_API_KEY: 'k' } });
  assert.equal(r.status, 0, r.stderr);
  const unset = runGatehouse(['validate', '-c', example], { env: { ...process.env, ACME_API_KEY: '' } });
  assert.match(unset.stderr, /:54:\d+: consumers\[1\]\.api_keys\[0\]\.env: environment variable ACME_API_KEY is not set/);
});

test('validate: the demo config (make demo) is valid', () => {
  // A copy, beside the descriptor set scripts/demo.sh compiles for it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-'));
  fs.copyFileSync(path.join(here, '../../examples/demo.yaml'), path.join(dir, 'demo.yaml'));
  compileReviews(dir);
  const r = runGatehouse(['validate', '-c', path.join(dir, 'demo.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /ok \(1 listener\(s\), 9 upstream\(s\), 15 route\(s\)\)/);
});

test('validate: an unreadable file is an error, not a crash', () => {
  const r = runGatehouse(['validate', '-c', '/nonexistent/gatehouse.yaml']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot read the config file/);
});

test('version and help', () => {
  const v = runGatehouse(['version']);
  assert.equal(v.status, 0);
  // The version is the project's (CMakeLists.txt), then the build type in parentheses.
  const version = /project\(gatehouse VERSION (\d+\.\d+\.\d+)[\s)]/.exec(
    fs.readFileSync(path.resolve(here, '../../CMakeLists.txt'), 'utf8'))[1];
  assert.match(v.stdout, new RegExp(`^gatehouse ${version.replaceAll('.', '\\.')} \\((Release|Debug|RelWithDebInfo|MinSizeRel)\\)\n`));
  assert.match(v.stdout, /boost 1\.\d+/);
  assert.match(v.stdout, /OpenSSL 3/);
  for (const args of [['--help'], ['run', '--help'], ['validate', '--help']]) {
    const h = runGatehouse(args);
    assert.equal(h.status, 0, args.join(' '));
    assert.match(h.stdout, /Usage/);
  }
  const bad = runGatehouse(['frobnicate']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown command 'frobnicate'/);
});

// The allocator (CMakeLists.txt, GATEHOUSE_JEMALLOC): jemalloc, except under a sanitizer, which
// brings its own; what `version` says is what the serving process has mapped.
test('version names the allocator, and the serving process runs on it', async () => {
  const v = runGatehouse(['version']);
  const allocator = /\n {2}allocator (jemalloc \d+\.\d+\.\d+\S*|glibc malloc)\n/.exec(v.stdout);
  assert.ok(allocator, v.stdout);
  const jemalloc = allocator[1].startsWith('jemalloc');
  assert.equal(jemalloc, !SANITIZED, allocator[1]);
  const gh = await startGatehouse(minimal());
  try {
    const maps = fs.readFileSync(`/proc/${gh.proc.pid}/maps`, 'utf8');
    assert.equal(/\/libjemalloc\.so/.test(maps), jemalloc);
  } finally {
    await gh.stop();
  }
});

test('run: a bad config exits 1 with the errors and never listens', () => {
  const file = tempFile('bad-run.yaml', minimal(0, 'colour: red'));
  const r = runGatehouse(['run', '-c', file], { timeout: 5000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown key 'colour'/);
  assert.doesNotMatch(r.stderr, /listening on/);
});

test('run: a port in use is one clear line and exit 1', async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const port = blocker.address().port;
  const r = runGatehouse(['run', '-c', tempFile('busy.yaml', minimal(port))], { timeout: 5000 });
  blocker.close();
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`));
});

test('SIGTERM: requests in flight finish, then exit 0', async () => {
  const gh = await startGatehouse(minimal());
  const inflight = new Promise((resolve) => http.get(gh.url('/hold'), (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => resolve({ status: res.statusCode, body }));
  }));
  // In flight: the upstream holds the request until the drain has begun.
  await waitFor(() => up.state.held === 1, 3000, 'the request at the upstream');
  gh.proc.kill('SIGTERM');
  await waitFor(() => /draining/.test(gh.stderr), 3000, 'the drain to begin');
  up.release();
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { upstream: 'echo', held: true });
  const { code } = await gh.exited;
  assert.equal(code, 0);
  assert.match(gh.stderr, /draining/);
});

test('SIGTERM: past the drain budget the rest is closed and the exit code says so', async () => {
  const gh = await startGatehouse(minimal(0, '').replace('server:', 'server:\n  timeouts: { drain: 300ms }'));
  const inflight = new Promise((resolve) => {
    http.get(gh.url('/hold'), (res) => resolve(res.statusCode)).on('error', () => resolve('closed'));
  });
  // In flight, and never answered: the upstream holds it.
  await waitFor(() => up.state.held === 1, 3000, 'the request at the upstream');
  const t0 = Date.now();
  gh.proc.kill('SIGTERM');
  const { code } = await gh.exited;
  assert.equal(code, 2);
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(await inflight, 'closed');
});

test('access log: one JSON line per request with the documented fields, to a file', async () => {
  const logFile = tempFile('access.log');
  const gh = await startGatehouse(minimal(0, `observability:\n  access_log: { path: ${logFile} }\n  request_id_header: x-trace`));
  const ok = await curl(['-H', 'x-trace: log-me', '--data-binary', 'hello', gh.url('/echo/a?b=c')]);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['x-trace'][0], 'log-me');
  await curl(['-H', 'x-trace: log-404', gh.url('/echo/x'), '-X', 'BREW']);
  await gh.stop();
  const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const a = lines.find((l) => l.request_id === 'log-me');
  assert.ok(a, 'line for the request');
  assert.equal(a.method, 'POST');
  assert.equal(a.path, '/echo/a?b=c');
  assert.equal(a.route, 'route-0');
  assert.equal(a.upstream, 'echo');
  assert.equal(a.target, `127.0.0.1:${up.port}`);
  assert.equal(a.status, 200);
  assert.equal(a.client, '127.0.0.1');
  assert.ok(a.bytes_in > 5 && a.bytes_out > 100);
  assert.ok(a.duration_ms >= a.upstream_ms && a.upstream_ms >= 0);
  assert.match(a.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(gh.stdout, '', 'nothing on stdout when the log goes to a file');
});

test('access log off: nothing is written', async () => {
  const gh = await startGatehouse(minimal(0, 'observability:\n  access_log: { path: "off" }'));
  assert.equal((await curl([gh.url('/echo/x')])).status, 200);
  // Everything the process ever wrote: its output has ended, after the exit.
  await gh.stop();
  await gh.closed;
  assert.equal(gh.stdout, '');
});

test('access log: lines stay whole and valid JSON under concurrent load on several workers', async () => {
  const gh = await startGatehouse(minimal().replace('server:', 'server:\n  workers: 2'));
  const clients = Array.from({ length: 8 }, (_, i) => curl(
    Array.from({ length: 50 }, (_, k) => ['-o', '/dev/null', gh.url(`/echo/${i}/${k}/${'p'.repeat(300)}`)]).flat()));
  await Promise.all(clients);
  await waitFor(() => gh.accessLog().length >= 400, 3000, '400 log lines');
  await gh.stop();
  const lines = gh.stdout.trim().split('\n');
  assert.equal(lines.length, 400);
  for (const l of lines) JSON.parse(l);
});

test('run: a second gatehouse on the port of a running one refuses to start; the first keeps every request', async () => {
  const port = await freePort();
  const first = await startGatehouse(minimal(port));
  try {
    const r = runGatehouse(['run', '-c', tempFile('second.yaml', minimal(port).replace('path: /*', 'path: /other/*'))], { timeout: 5000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use \\(another process listens there\\)`));
    assert.doesNotMatch(r.stderr, /listening on/);
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await curl([first.url('/echo')])).status);
    assert.deepEqual(statuses, Array(12).fill(200), 'no connection went to a second process');
  } finally {
    await first.stop();
  }
});
