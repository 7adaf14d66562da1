// The access log's fields about the upstream call (its connect, first byte and total times, the
// retries), the client's TLS version, the consumer, and the configurable field list.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { curl, makeCa, makeCert, runGatehouse, startGatehouse, tempFile, waitFor } from './harness.mjs';

process.env.ACCESS_LOG_TEST_KEY = 'alice-key';  // alice's API key, for every gateway here

// An upstream whose answers the test scripts by path: /slow-body sends its head at once and its
// body 150 ms later; /flaky/... answers 503 the first time each path is asked, then 200.
let up;
const asked = new Map();
before(async () => {
  up = http.createServer((req, res) => {
    req.resume();
    const n = (asked.get(req.url) || 0) + 1;
    asked.set(req.url, n);
    if (req.url === '/slow-body') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4 });
      res.flushHeaders();
      setTimeout(() => res.end('late'), 150);
    } else if (req.url.startsWith('/flaky/') && n === 1) {
      res.writeHead(503, { 'content-length': 0 });
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    }
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
});
after(() => up?.close());

const config = (extra = '', listener = 'address: 127.0.0.1:0') => `
server:
  listen: [ { ${listener} } ]
${extra}
consumers:
  - { name: alice, api_keys: [ { env: ACCESS_LOG_TEST_KEY } ] }
upstreams:
  u: { targets: [ { address: 127.0.0.1:${up.address().port} } ], retry: { attempts: 1, backoff: 1ms, on: [503] } }
routes:
  - { name: keyed, match: { path: /keyed }, to: u, plugins: { key_auth: {} } }
  - { name: all, match: { path: /* }, to: u }
`;

const lineFor = async (gh, id) => {
  let line;
  await waitFor(() => (line = gh.accessLog().find((l) => l.request_id === id)), 3000, `the line of ${id}`);
  return line;
};

test('the upstream call split: connect on a new connection only, first byte, and the whole response', async () => {
  const gh = await startGatehouse(config('  workers: 1'));
  try {
    assert.equal((await curl(['-H', 'x-request-id: first', gh.url('/slow-body')])).status, 200);
    assert.equal((await curl(['-H', 'x-request-id: second', gh.url('/fast')])).status, 200);
    const first = await lineFor(gh, 'first');
    assert.ok(first.upstream_connect_ms >= 0, 'a new connection: its connect is timed');
    assert.ok(first.upstream_ms >= first.upstream_connect_ms);
    assert.ok(first.upstream_ms < 120, `the head came at once (${first.upstream_ms} ms)`);
    assert.ok(first.upstream_total_ms >= 140, `the body came 150 ms later (${first.upstream_total_ms} ms)`);
    assert.ok(first.duration_ms >= first.upstream_total_ms);
    const second = await lineFor(gh, 'second');
    assert.equal(second.upstream_connect_ms, undefined, 'a pooled connection: no connect');
    assert.ok(second.upstream_total_ms >= second.upstream_ms);
    assert.equal(second.retries, undefined, 'no retry: no field');
    assert.equal(second.tls_version, undefined, 'plain HTTP: no TLS version');
  } finally {
    await gh.stop();
  }
});

test('retries: the count of retries made; an answer of the gateway has no upstream times', async () => {
  // One worker: the refused request is served by the exchange the retried one left behind.
  const gh = await startGatehouse(config('  workers: 1'));
  try {
    assert.equal((await curl(['-H', 'x-request-id: retried', gh.url('/flaky/1')])).status, 200);
    assert.equal((await lineFor(gh, 'retried')).retries, 1);
    assert.equal((await curl(['-H', 'x-request-id: refused', gh.url('/keyed')])).status, 401);
    const refused = await lineFor(gh, 'refused');
    assert.equal(refused.error, 'unauthorized');
    for (const f of ['upstream_connect_ms', 'upstream_ms', 'upstream_total_ms', 'retries', 'consumer'])
      assert.equal(refused[f], undefined, f);
  } finally {
    await gh.stop();
  }
});

test('consumer: who key_auth said the client is', async () => {
  const gh = await startGatehouse(config());
  try {
    const r = await curl(['-H', 'x-request-id: keyed', '-H', 'x-api-key: alice-key', gh.url('/keyed')]);
    assert.equal(r.status, 200);
    assert.equal((await lineFor(gh, 'keyed')).consumer, 'alice');
  } finally {
    await gh.stop();
  }
});

test('tls_version: the version the client and the listener agreed on', async () => {
  const dir = fs.mkdtempSync(path.join(path.dirname(tempFile('x')), 'tls-'));
  makeCa(dir, 'ca');
  makeCert(dir, 'site', 'ca', ['DNS:site.test']);
  const listener = `address: 127.0.0.1:0, tls: { certificates: [ { cert: ${dir}/site.pem, key: ${dir}/site.key } ] }`;
  const gh = await startGatehouse(config('', listener));
  try {
    for (const [id, version] of [['tls13', '--tlsv1.3'], ['tls12', '--tls-max']]) {
      const args = ['--cacert', `${dir}/ca.pem`, '--resolve', `site.test:${gh.port}:127.0.0.1`,
        '-H', `x-request-id: ${id}`, version];
      if (version === '--tls-max') args.push('1.2');
      args.push(`https://site.test:${gh.port}/x`);
      assert.equal((await curl(args)).status, 200);
    }
    assert.equal((await lineFor(gh, 'tls13')).tls_version, 'TLSv1.3');
    assert.equal((await lineFor(gh, 'tls12')).tls_version, 'TLSv1.2');
  } finally {
    await gh.stop();
  }
});

test('fields: only the listed ones, in the log\'s own order; an unknown one is a config error', async () => {
  const gh = await startGatehouse(config('observability:\n  access_log: { fields: [status, request_id, upstream_ms] }'));
  try {
    assert.equal((await curl(['-H', 'x-request-id: few', gh.url('/x')])).status, 200);
    const line = await lineFor(gh, 'few');
    assert.deepEqual(Object.keys(line), ['request_id', 'status', 'upstream_ms']);
  } finally {
    await gh.stop();
  }
  const bad = tempFile('bad.yaml', config('observability:\n  access_log: { fields: [status, latency] }'));
  const r = runGatehouse(['validate', '-c', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /:\d+:\d+: observability\.access_log\.fields: unknown field 'latency' \(expected: time, request_id, /);
});
