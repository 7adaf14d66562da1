// Resilience against real test upstreams that fail on command: bulkheads and their queue, circuit
// breakers and passive ejection, route deadlines, retries (with body replay and a budget) and active
// health checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startGatehouse, curl, freePort, json, waitFor, httpGet, tempFile, sleep } from './harness.mjs';
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

const get = (path, port = gh.port) => httpGet(port, path);

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

test('max_pending: a full bulkhead queues a bounded number of requests, each for at most timeouts.queue', async () => {
  const up = await startUpstream({ name: 'queued' });
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  queued:
    targets: [ { address: 127.0.0.1:${up.port} } ]
    max_concurrent_requests: 2
    max_pending: 2
    timeouts: { queue: 300ms }
routes:
  - { match: { path: /* }, to: queued }
`);
  try {
    // Two slow requests hold both slots; two more wait; the fifth finds the queue full.
    const slow = [get('/delay/250', g.port), get('/delay/250', g.port)];
    await sleep(100);
    const waiting = [get('/delay/10', g.port), get('/delay/10', g.port)];
    await sleep(50);
    const fifth = await get('/delay/10', g.port);
    assert.equal(fifth.status, 503);
    assert.ok(fifth.ms < 100, `refused at once (${fifth.ms.toFixed(0)} ms)`);
    assert.match(JSON.parse(fifth.body).message, /2 waiting \(max_pending\)/);
    // Visible while it lasts: /status and gauges.
    const status = json(await curl([`http://127.0.0.1:${admin}/status`]));
    assert.deepEqual(status.upstreams[0].bulkhead, { max_concurrent_requests: 2, in_flight: 2, max_pending: 2, waiting: 2 });
    const gauges = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    assert.match(gauges, /gatehouse_upstream_bulkhead_in_flight\{upstream="queued"\} 2\n/);
    assert.match(gauges, /gatehouse_upstream_bulkhead_waiting\{upstream="queued"\} 2\n/);
    const served = await Promise.all([...slow, ...waiting]);
    assert.deepEqual(served.map((r) => r.status), [200, 200, 200, 200], 'the waiting ones got the freed slots');

    // A wait longer than timeouts.queue ends in 503, close to 300 ms.
    const long = [get('/delay/1000', g.port), get('/delay/1000', g.port)];
    await sleep(100);
    const late = await get('/delay/10', g.port);
    assert.equal(late.status, 503);
    assert.ok(late.ms >= 250 && late.ms < 800, `waited ${late.ms.toFixed(0)} ms`);
    assert.match(JSON.parse(late.body).message, /freed no request slot within 300ms \(timeouts.queue\)/);

    // A client that gives up while waiting leaves no slot taken.
    const gone = http.get({ host: '127.0.0.1', port: g.port, path: '/delay/10', agent: false });
    gone.on('error', () => {});
    await sleep(50);
    gone.destroy();
    assert.deepEqual((await Promise.all(long)).map((r) => r.status), [200, 200]);
    const again = await Promise.all([get('/delay/200', g.port), get('/delay/200', g.port)]);
    assert.deepEqual(again.map((r) => r.status), [200, 200], 'both slots free again');
    const m = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    assert.match(m, /gatehouse_upstream_queued_total\{upstream="queued"\} [3-9]\b/);
    assert.match(m, /gatehouse_upstream_rejected_total\{upstream="queued"\} [2-9]\b/);
  } finally {
    await g.stop();
    await up.close();
  }
});

test('circuit breakers: open after failures, fast 503s while open, half-open probe, closed after recovery', async () => {
  const a = await startUpstream({ name: 'a' });
  const healthy = await startUpstream({ name: 'healthy' });
  const dead = await freePort();
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  flaky:
    targets: [ { address: 127.0.0.1:${a.port} } ]
    circuit_breaker: { failure_rate: 50%, min_requests: 4, window: 10s, open_for: 1s, half_open_requests: 1 }
  mixed:
    targets: [ { address: 127.0.0.1:${dead} }, { address: 127.0.0.1:${healthy.port} } ]
    circuit_breaker: { failure_rate: 50%, min_requests: 2, window: 10s, open_for: 30s }
routes:
  - { match: { path: /flaky/* }, rewrite: { strip_prefix: /flaky }, to: flaky }
  - { match: { path: /mixed/* }, rewrite: { strip_prefix: /mixed }, to: mixed }
`);
  const hit = (path) => {
    const t0 = performance.now();
    return curl([g.url(path)]).then((r) => ({ ...r, ms: performance.now() - t0 }));
  };
  try {
    for (let i = 0; i < 4; i++) assert.equal((await hit('/flaky/status/500')).status, 500);
    const before = a.state.requests;
    const open = await hit('/flaky/echo');
    assert.equal(open.status, 503);
    assert.equal(json(open).error, 'upstream_unavailable');
    assert.ok(Number(open.headers['retry-after'][0]) >= 1);
    // Fast: no connect, no wait (timed with Node's client; curl's own start-up is not the gateway).
    for (let i = 0; i < 5; i++) {
      const fast = await get('/flaky/echo', g.port);
      assert.equal(fast.status, 503);
      assert.ok(fast.ms < 10, `503 in ${fast.ms.toFixed(1)} ms`);
    }
    assert.equal(a.state.requests, before, 'nothing reaches a target whose breaker is open');
    const status = json(await curl([`http://127.0.0.1:${admin}/status`]));
    assert.equal(status.upstreams.find((u) => u.name === 'flaky').targets[0].circuit_breaker, 'open');
    assert.equal(status.upstreams.find((u) => u.name === 'mixed').targets[1].circuit_breaker, 'closed');
    assert.match(g.stderr, /circuit breaker of flaky target 127\.0\.0\.1:\d+ is now open/);

    await new Promise((r) => setTimeout(r, 1100));
    const probe = await hit('/flaky/echo');
    assert.equal(probe.status, 200, 'the half-open probe goes through');
    assert.equal((await hit('/flaky/echo')).status, 200, 'closed again after the probe succeeded');
    assert.match(g.stderr, /is now half_open[\s\S]*is now closed/);

    // A dead target's breaker opens; from then on every request goes to the healthy one.
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await hit('/mixed/echo')).status);
    const after = statuses.slice(6);
    assert.deepEqual(after, Array(6).fill(200), `${statuses}`);
  } finally {
    await g.stop();
    await a.close();
    await healthy.close();
  }
});

test('a route timeout bounds the whole exchange: 504 at the deadline, the upstream connection closed', async () => {
  const up = await startUpstream({ name: 'late' });
  const g = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  late:
    targets: [ { address: 127.0.0.1:${up.port} } ]
    timeouts: { response: 5s }
routes:
  - { match: { path: /quick/* }, rewrite: { strip_prefix: /quick }, to: late, timeout: 300ms }
  - { match: { path: /patient/* }, rewrite: { strip_prefix: /patient }, to: late }
`);
  try {
    const t0 = performance.now();
    const r = await curl([g.url('/quick/delay/2000')]);
    const ms = performance.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(json(r).error, 'upstream_timeout');
    assert.match(json(r).message, /the route's timeout of 300ms/);
    assert.ok(ms >= 280 && ms < 1000, `answered after ${ms.toFixed(0)} ms`);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(up.state.open, 0, 'the upstream request was cancelled: its connection closed');
    const fine = await curl([g.url('/quick/delay/50')]);
    assert.equal(fine.status, 200, 'within the timeout');
    assert.equal((await curl([g.url('/patient/delay/600')])).status, 200, 'no route timeout: the upstream one applies');
  } finally {
    await g.stop();
    await up.close();
  }
});

test('retries: only where safe, to another target, with jittered backoff and a budget', async () => {
  const good = await startUpstream({ name: 'good' });
  const bad = await startUpstream({ name: 'bad' });
  const dead = await freePort();
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  half-dead:
    targets: [ { address: 127.0.0.1:${dead} }, { address: 127.0.0.1:${good.port} } ]
    retry: { attempts: 1, on: [connect_failure] }
  failing:
    targets: [ { address: 127.0.0.1:${bad.port} } ]
    retry: { attempts: 2, backoff: 50ms, max_backoff: 100ms, on: [503], budget: 20% }
routes:
  - { match: { path: /half/* }, rewrite: { strip_prefix: /half }, to: half-dead }
  - { match: { path: /failing/* }, rewrite: { strip_prefix: /failing }, to: failing }
  - match: { path: /never/* }
    rewrite: { strip_prefix: /never }
    to: failing
    retry: { attempts: 0 }
`);
  try {
    // A connect failure on the dead target is retried on the live one: no request fails.
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await curl([g.url('/half/echo')])).status);
    assert.deepEqual(statuses, Array(6).fill(200));
    // So is a POST (nothing of it was sent), its body (larger than max_replay_body: no copy
    // kept) streamed whole to the live target.
    const posted = crypto.randomBytes(100000);
    const postFile = tempFile('post', posted);
    good.state.sunk.length = 0;
    for (let i = 0; i < 4; i++) {
      const r = await curl(['-X', 'POST', '--data-binary', `@${postFile}`, g.url('/half/sink')]);
      assert.equal(r.status, 200, r.body);
      assert.equal(json(r).sha256, crypto.createHash('sha256').update(posted).digest('hex'));
    }
    assert.equal(good.state.sunk.length, 4);

    // A GET answered 503 is tried 1 + 2 times, within the backoff bounds; the last answer is relayed.
    let before = bad.state.requests;
    const t0 = performance.now();
    const r = await curl([g.url('/failing/status/503')]);
    const ms = performance.now() - t0;
    assert.equal(r.status, 503);
    assert.equal(json(r).upstream, 'bad', 'the upstream\'s own answer, not the gateway\'s');
    assert.equal(bad.state.requests - before, 3);
    assert.ok(ms < 50 + 100 + 400, `two backoffs of at most 50 and 100 ms: ${ms.toFixed(0)} ms`);

    // A POST without Idempotency-Key is never retried; with one it is.
    before = bad.state.requests;
    assert.equal((await curl(['-X', 'POST', g.url('/failing/status/503')])).status, 503);
    assert.equal(bad.state.requests - before, 1, 'a POST is sent once');
    before = bad.state.requests;
    await curl(['-X', 'POST', '-H', 'Idempotency-Key: k-1', g.url('/failing/status/503')]);
    assert.equal(bad.state.requests - before, 3, 'with an Idempotency-Key it is retried');

    // A route can turn retries off.
    before = bad.state.requests;
    await curl([g.url('/never/status/503')]);
    assert.equal(bad.state.requests - before, 1);

    // A 100% failure storm: the budget keeps retries under 20% of requests (and the one earned
    // before it) plus the floor: at most its 10 to start and 10 per second of the storm.
    before = bad.state.requests;
    const n = 100;
    const t0s = performance.now();
    await Promise.all(Array.from({ length: n }, () => curl([g.url('/failing/status/503')])));
    const seconds = (performance.now() - t0s) / 1000;
    const sent = bad.state.requests - before;
    assert.ok(sent <= n * 1.2 + 1 + 10 + Math.ceil(10 * seconds), `${sent} upstream requests for ${n} in ${seconds.toFixed(2)} s`);
    const m = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    assert.match(m, /gatehouse_upstream_retries_total\{upstream="failing",reason="status"\} [1-9]/);
    assert.match(m, /gatehouse_upstream_retries_total\{upstream="half-dead",reason="connect_failure"\} [1-9]/);
    assert.match(m, /gatehouse_upstream_retry_budget_exhausted_total\{upstream="failing"\} [1-9]/);
  } finally {
    await g.stop();
    await good.close();
    await bad.close();
  }
});

test('targets that fail once, reset or hang: each GET is retried on the other target and succeeds', async () => {
  const x = await startUpstream({ name: 'x' });
  const y = await startUpstream({ name: 'y' });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  pair:
    targets: [ { address: 127.0.0.1:${x.port} }, { address: 127.0.0.1:${y.port} } ]
    timeouts: { response: 200ms }
    retry: { attempts: 1, backoff: 1ms, on: [reset, timeout, 503], budget: 100% }
routes:
  - { match: { path: /* }, to: pair }
`);
  try {
    for (const how of [503, 'reset', 'hang']) {
      x.failNext(1, how);
      const before = x.state.requests + y.state.requests;
      // Round robin: one of the two requests meets x's failure first; its retry goes to y.
      const answers = [await curl([g.url('/echo')]), await curl([g.url('/echo')])];
      assert.deepEqual(answers.map((r) => r.status), [200, 200], `${how}`);
      assert.equal(x.state.requests + y.state.requests - before, 3, `${how}: two requests and one retry`);
    }
  } finally {
    await g.stop();
    await x.close();
    await y.close();
  }
});

test('a retry goes back through the balancer: retries follow the weights and skip unhealthy targets', async () => {
  // `failing` answers 503 to every request (its health check expects that, so it stays in);
  // `sick` answers 500, which its health check does not expect, so it is taken out at once. Nearly
  // every first try goes to `failing` (weight 60); its retry must be chosen by the balancer among
  // the rest, by weight (heavy 3 : light 1), never on the unhealthy target (weight 12).
  const failing = await startUpstream({ name: 'failing' });
  const heavy = await startUpstream({ name: 'heavy' });
  const light = await startUpstream({ name: 'light' });
  const sick = await startUpstream({ name: 'sick' });
  failing.failPercent(100, 503);
  sick.failPercent(100, 500);
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  weighted:
    balance: random
    targets:
      - { address: 127.0.0.1:${failing.port}, weight: 60 }
      - { address: 127.0.0.1:${heavy.port}, weight: 3 }
      - { address: 127.0.0.1:${light.port}, weight: 1 }
      - { address: 127.0.0.1:${sick.port}, weight: 12 }
    health_check: { path: /echo, expected_statuses: [200, 503], interval: 1h, unhealthy_after: 1 }
    retry: { attempts: 1, backoff: 1ms, on: [503], budget: 100% }
routes:
  - { match: { path: /* }, to: weighted }
`);
  try {
    await waitFor(() => new RegExp(`health: weighted target 127.0.0.1:${sick.port} is unhealthy`).test(g.stderr), 3000, 'sick out');
    await waitFor(() => heavy.state.requests === 1 && light.state.requests === 1, 3000, 'the first checks done');
    const before = { heavy: heavy.state.requests, light: light.state.requests, sick: sick.state.requests };
    const statuses = [];
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => httpGet(g.port, '/echo')));
      statuses.push(...answers.map((r) => r.status));
    }
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every request succeeds, first try or retry');
    const toHeavy = heavy.state.requests - before.heavy;
    const toLight = light.state.requests - before.light;
    assert.equal(sick.state.requests - before.sick, 0, 'nothing goes to the unhealthy target');
    assert.equal(toHeavy + toLight, 400, 'each request reached a live target once');
    // Binomial, 400 draws at p = 3/4: the ratio lies in [2, 5] with a margin of over 3.8 standard
    // deviations on each side; a retry that ignored weights (uniform over the others) gives about 1.
    const ratio = toHeavy / toLight;
    assert.ok(ratio >= 2 && ratio <= 5, `heavy:light = ${toHeavy}:${toLight}, expected about 3:1`);
  } finally {
    await g.stop();
    for (const u of [failing, heavy, light, sick]) await u.close();
  }
});

test('an open breaker stays open over a reload, for a target that stays', async () => {
  const healthy = await startUpstream({ name: 'healthy' });
  const dead = await freePort();
  const admin = await freePort();
  const config = (extraRoute) => `
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  mixed:
    targets: [ { address: 127.0.0.1:${dead} }, { address: 127.0.0.1:${healthy.port} } ]
    circuit_breaker: { failure_rate: 50%, min_requests: 2, open_for: 30s }
routes:
  - { match: { path: /* }, to: mixed }
${extraRoute}`;
  const g = await startGatehouse(config(''));
  try {
    for (let i = 0; i < 6; i++) await curl([g.url('/echo')]);  // the dead target's breaker opens
    const breakers = async () => json(await curl([`http://127.0.0.1:${admin}/status`])).upstreams[0].targets.map((t) => t.circuit_breaker);
    assert.deepEqual(await breakers(), ['open', 'closed']);
    fs.writeFileSync(g.file, config('  - { match: { path: /other }, to: mixed }'));
    g.proc.kill('SIGHUP');
    await waitFor(() => g.stderr.includes('reloaded'), 3000, 'reload');
    assert.deepEqual(await breakers(), ['open', 'closed'], 'the state came through the reload');
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await curl([g.url('/echo')])).status);
    assert.deepEqual(statuses, Array(8).fill(200), 'nothing sent to the dead target after the reload');
  } finally {
    await g.stop();
    await healthy.close();
  }
});

test('a breaker opens on a target failing 75% of requests and never on one failing 25%', async () => {
  const bad = await startUpstream({ name: 'bad' });
  const meh = await startUpstream({ name: 'meh' });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  bad: { targets: [ { address: 127.0.0.1:${bad.port} } ], circuit_breaker: { failure_rate: 50%, min_requests: 8, open_for: 30s } }
  meh: { targets: [ { address: 127.0.0.1:${meh.port} } ], circuit_breaker: { failure_rate: 50%, min_requests: 8, open_for: 30s } }
routes:
  - { match: { path: /bad/* }, rewrite: { strip_prefix: /bad }, to: bad }
  - { match: { path: /meh/* }, rewrite: { strip_prefix: /meh }, to: meh }
`);
  try {
    bad.failPercent(75);
    meh.failPercent(25);
    const codes = { bad: [], meh: [] };
    for (let i = 0; i < 40; i++) {
      for (const u of ['bad', 'meh']) {
        const r = await curl([g.url(`/${u}/echo`)]);
        codes[u].push(r.status === 503 && json(r).error === 'upstream_unavailable' ? 'open' : r.status);
      }
    }
    assert.equal(bad.state.requests, 8, 'open once 8 requests had a failure rate of 75%');
    assert.deepEqual(codes.bad.slice(8), Array(32).fill('open'));
    assert.equal(meh.state.requests, 40, 'a 25% failure rate never opens it');
    assert.equal(codes.meh.filter((c) => c === 503).length, 10);
  } finally {
    await g.stop();
    await bad.close();
    await meh.close();
  }
});

test('passive outlier detection: consecutive 5xx eject a target; the others carry the traffic', async () => {
  const x = await startUpstream({ name: 'x' });
  const y = await startUpstream({ name: 'y' });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  pair:
    targets: [ { address: 127.0.0.1:${x.port} }, { address: 127.0.0.1:${y.port} } ]
    circuit_breaker: { consecutive_failures: 3, min_requests: 1000, open_for: 30s }
routes:
  - { match: { path: /* }, to: pair }
`);
  try {
    x.failNext(3, 502);
    const first = [];
    for (let i = 0; i < 6; i++) first.push(json(await curl([g.url('/echo')])).upstream);
    assert.deepEqual(first.sort(), ['x', 'x', 'x', 'y', 'y', 'y'], 'round robin until the third failure in a row');
    const later = [];
    for (let i = 0; i < 10; i++) later.push(json(await curl([g.url('/echo')])).upstream);
    assert.deepEqual(later, Array(10).fill('y'), 'x ejected, though its failure rate is under min_requests');
    assert.equal(x.state.requests, 3);
    assert.match(g.stderr, /circuit breaker of pair target 127\.0\.0\.1:\d+ is now open/);
  } finally {
    await g.stop();
    await x.close();
    await y.close();
  }
});

test('request bodies up to max_replay_body are sent again on retry; larger ones are sent once', async () => {
  const bad = await startUpstream({ name: 'bad', sinkStatus: 503 });
  const cut = await startUpstream({ name: 'cut', sinkResetAfter: 1000 });
  const good = await startUpstream({ name: 'good' });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  flaky:
    targets: [ { address: 127.0.0.1:${bad.port} }, { address: 127.0.0.1:${good.port} } ]
    retry: { attempts: 1, on: [503], budget: 100% }
  cutting:
    targets: [ { address: 127.0.0.1:${cut.port} }, { address: 127.0.0.1:${good.port} } ]
    retry: { attempts: 1, on: [reset], budget: 100% }
  only-bad:
    targets: [ { address: 127.0.0.1:${bad.port} } ]
    retry: { attempts: 2, on: [503], budget: 100%, max_replay_body: 16KiB }
routes:
  - { match: { path: /flaky/* }, rewrite: { strip_prefix: /flaky }, to: flaky }
  - { match: { path: /cutting/* }, rewrite: { strip_prefix: /cutting }, to: cutting }
  - { match: { path: /only-bad/* }, rewrite: { strip_prefix: /only-bad }, to: only-bad }
`);
  const body = (n) => crypto.randomBytes(n);
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  const upload = (path, data, extra = []) =>
    curl(['-X', 'PUT', '--data-binary', `@${tempFile('body', data)}`, ...extra, g.url(path)]);
  try {
    // A 20 KB PUT, with Content-Length and then chunked, and a chunked POST with an
    // Idempotency-Key: round robin sends one of each pair to the failing target first; its 503 is
    // not relayed, and the other target receives the same bytes.
    for (const [label, extra] of [['content-length', []], ['chunked', ['-H', 'Transfer-Encoding: chunked']],
      ['POST with Idempotency-Key', ['-X', 'POST', '-H', 'Transfer-Encoding: chunked', '-H', 'Idempotency-Key: k-7']]]) {
      const data = body(20000);
      bad.state.sunk.length = good.state.sunk.length = 0;
      for (let i = 0; i < 2; i++) {
        const r = await upload('/flaky/sink', data, extra);
        assert.equal(r.status, 200, `${label}: ${r.body}`);
        assert.deepEqual([json(r).upstream, json(r).sha256], ['good', sha(data)], label);
      }
      assert.deepEqual(bad.state.sunk, [{ bytes: 20000, sha256: sha(data) }], `${label}: the failed try had the whole body`);
      assert.equal(good.state.sunk.length, 2);
    }

    // A POST without Idempotency-Key is not retried, body or not: the 503 goes to the client.
    bad.state.sunk.length = 0;
    const posts = [];
    for (let i = 0; i < 2; i++) posts.push((await upload('/flaky/sink', body(100), ['-X', 'POST'])).status);
    assert.deepEqual(posts.sort(), [200, 503]);
    assert.equal(bad.state.sunk.length, 1);

    // Over max_replay_body (16KiB here) a body is sent once; under it, 1 + 2 times.
    for (const [size, extra, tries] of [[10000, [], 3], [20000, [], 1], [10000, ['-H', 'Transfer-Encoding: chunked'], 3],
      [20000, ['-H', 'Transfer-Encoding: chunked'], 1]]) {
      const data = body(size);
      bad.state.sunk.length = 0;
      const r = await upload('/only-bad/sink', data, extra);
      assert.equal(r.status, 503);
      assert.deepEqual(bad.state.sunk, Array(tries).fill({ bytes: size, sha256: sha(data) }), `${size} bytes ${extra}`);
    }

    // A target that resets in the middle of a slow upload: the retry sends what was read of the
    // body again, then the rest as it comes from the client.
    cut.state.sunk.length = good.state.sunk.length = 0;
    for (let i = 0; i < 2; i++) {
      const data = body(40000);
      const r = await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: g.port, path: '/cutting/sink', method: 'PUT', agent: false,
          headers: { 'content-length': data.length } }, (res) => {
          let text = '';
          res.on('data', (d) => { text += d; });
          res.on('end', () => resolve({ status: res.statusCode, body: text }));
        });
        req.on('error', reject);
        req.write(data.subarray(0, 20000));
        sleep(150).then(() => req.end(data.subarray(20000)));
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual([JSON.parse(r.body).upstream, JSON.parse(r.body).sha256], ['good', sha(data)]);
    }
    assert.equal(cut.state.sunk.length, 1, 'one of the two uploads went to the resetting target first');
    assert.ok(cut.state.sunk[0].reset);
  } finally {
    await g.stop();
    await bad.close();
    await cut.close();
    await good.close();
  }
});

test('active health checks take a dead target out within interval x threshold and bring it back', async () => {
  const live = await startUpstream({ name: 'live' });
  const port = await freePort();
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  checked:
    targets: [ { address: 127.0.0.1:${port} }, { address: 127.0.0.1:${live.port} } ]
    health_check: { path: /echo, interval: 100ms, timeout: 100ms, unhealthy_after: 2, healthy_after: 1 }
routes:
  - { match: { path: /* }, to: checked }
`);
  let back;
  try {
    const t0 = performance.now();
    await waitFor(() => /health: checked target 127\.0\.0\.1:\d+ is unhealthy/.test(g.stderr), 2000, 'the dead target marked unhealthy');
    assert.ok(performance.now() - t0 < 2 * 100 + 400, 'within interval x unhealthy_after (plus slack)');
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await curl([g.url('/echo')])).status);
    assert.deepEqual(statuses, Array(8).fill(200), 'no request goes to the dead target');
    let status = json(await curl([`http://127.0.0.1:${admin}/status`]));
    assert.deepEqual(status.upstreams[0].targets.map((t) => t.health), ['unhealthy', 'healthy']);

    back = await startUpstream({ name: 'back', port });
    await waitFor(() => /health: checked target 127\.0\.0\.1:\d+ is healthy again/.test(g.stderr), 2000, 'the target back');
    const seen = new Set();
    for (let i = 0; i < 8; i++) seen.add(json(await curl([g.url('/echo')])).upstream);
    assert.ok(seen.has('back'), 'traffic reaches the recovered target');
    status = json(await curl([`http://127.0.0.1:${admin}/status`]));
    assert.deepEqual(status.upstreams[0].targets.map((t) => t.health), ['healthy', 'healthy']);
    const m = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    assert.match(m, new RegExp(`gatehouse_upstream_health_transitions_total\\{upstream="checked",target="127.0.0.1:${port}"\\} 2`));
    assert.match(m, new RegExp(`gatehouse_upstream_target_healthy\\{upstream="checked",target="127.0.0.1:${port}"\\} 1`));
  } finally {
    await g.stop();
    await live.close();
    await back?.close();
  }
});

test('health checks: expected_statuses decide; with initial_state unhealthy a target gets traffic only once a check passed', async () => {
  const live = await startUpstream({ name: 'live' });
  const dead = await freePort();
  // A server whose status line has no reason phrase (nor the space before it).
  const terse = net.createServer((sock) => sock.on('data', () => sock.end('HTTP/1.1 204\r\n\r\n')));
  await new Promise((r) => terse.listen(0, '127.0.0.1', r));
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  teapot:
    targets: [ { address: 127.0.0.1:${live.port} } ]
    health_check: { path: /status/418, expected_statuses: [418], interval: 100ms, unhealthy_after: 1 }
  picky:
    targets: [ { address: 127.0.0.1:${live.port} } ]
    health_check: { path: /status/204, expected_statuses: [200, 3xx], interval: 100ms, unhealthy_after: 1 }
  terse:
    targets: [ { address: 127.0.0.1:${terse.address().port} } ]
    health_check: { path: /, expected_statuses: [204], interval: 100ms, unhealthy_after: 1 }
  cautious:
    targets: [ { address: 127.0.0.1:${dead} }, { address: 127.0.0.1:${live.port} } ]
    health_check: { path: /echo, interval: 5s, unhealthy_after: 3, healthy_after: 3, initial_state: unhealthy }
routes:
  - { match: { path: /teapot/* }, rewrite: { strip_prefix: /teapot }, to: teapot }
  - { match: { path: /picky/* }, rewrite: { strip_prefix: /picky }, to: picky }
  - { match: { path: /cautious/* }, rewrite: { strip_prefix: /cautious }, to: cautious }
`);
  try {
    // The live target passes its first check at once (one success suffices for a target never
    // checked, not healthy_after = 3 checks 5 s apart); the dead one never gets a request, where a
    // target that starts healthy would take 3 failed checks (15 s) to leave.
    const t0 = performance.now();
    await waitFor(() => new RegExp(`health: cautious target 127.0.0.1:${live.port} is healthy`).test(g.stderr), 2000, 'the live target in');
    assert.ok(performance.now() - t0 < 1000);
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await curl([g.url('/cautious/echo')])).status);
    assert.deepEqual(statuses, Array(8).fill(200), 'nothing sent to the dead target');
    assert.doesNotMatch(g.stderr, new RegExp(`cautious target 127.0.0.1:${dead} is healthy`));

    // 418 is healthy where it is expected; 204 is not where only 200 and 3xx are.
    await waitFor(() => /health: picky target \S+ is unhealthy/.test(g.stderr), 2000, 'picky out');
    assert.equal((await curl([g.url('/teapot/echo')])).status, 200);
    assert.doesNotMatch(g.stderr, /health: teapot target/);
    assert.equal(json(await curl([g.url('/picky/echo')])).error, 'upstream_unavailable');
    assert.doesNotMatch(g.stderr, /health: terse target/, '"HTTP/1.1 204" with no reason phrase is a 204');
  } finally {
    await g.stop();
    terse.close();
    await live.close();
  }
});

test("an upstream's Retry-After is honoured within the deadline, and beyond it the answer is relayed", async () => {
  const up = await startUpstream({ name: 'busy' });
  const g = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  busy:
    targets: [ { address: 127.0.0.1:${up.port} } ]
    retry: { attempts: 1, on: [503], backoff: 1ms, max_backoff: 1ms }
routes:
  - { match: { path: /wait/* }, rewrite: { strip_prefix: /wait }, to: busy }
  - { match: { path: /hurry/* }, rewrite: { strip_prefix: /hurry }, to: busy, timeout: 500ms }
`);
  try {
    let before = up.state.requests;
    const t0 = performance.now();
    const r = await curl([g.url('/wait/status/503?retry_after=1')]);
    const ms = performance.now() - t0;
    assert.equal(up.state.requests - before, 2);
    assert.ok(ms >= 950, `the retry waited for Retry-After: ${ms.toFixed(0)} ms`);
    assert.equal(r.status, 503);

    // An HTTP-date is honoured too: two seconds ahead (whole seconds: 1 to 2 s from now).
    before = up.state.requests;
    const when = new Date(Date.now() + 2000).toUTCString();  // IMF-fixdate
    const t1 = performance.now();
    await curl([g.url(`/wait/status/503?retry_after=${encodeURIComponent(when)}`)]);
    const dated = performance.now() - t1;
    assert.equal(up.state.requests - before, 2);
    assert.ok(dated >= 900 && dated < 2600, `waited ${dated.toFixed(0)} ms for ${when}`);

    before = up.state.requests;
    const hurried = await curl([g.url('/hurry/status/503?retry_after=1')]);
    assert.equal(up.state.requests - before, 1, 'Retry-After beyond the route deadline: no retry');
    assert.equal(hurried.status, 503);
    assert.deepEqual(hurried.headers['retry-after'], ['1'], "the upstream's answer, relayed");
  } finally {
    await g.stop();
    await up.close();
  }
});
