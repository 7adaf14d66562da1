// What an upstream's settings promise holds for the process, not per worker: with 2 workers, a
// circuit breaker counts every worker's outcomes in one window, lets one half-open probe through
// in all, and the retry budget's floor (min_retries_per_second) is one budget for the upstream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGatehouse, curl, freePort, json, waitFor } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const count = (text, re) => (text.match(re) || []).length;

test('a circuit breaker is one per target for the process: min_requests and half_open_requests count across workers', async () => {
  const a = await startUpstream({ name: 'a' });
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  failing:
    targets: [ { address: 127.0.0.1:${a.port} } ]
    circuit_breaker: { failure_rate: 50%, min_requests: 10, window: 10s, open_for: 1s, half_open_requests: 1 }
routes:
  - { match: { path: /* }, to: failing }
`);
  try {
    // Each curl is a new connection: the kernel spreads them over both workers.
    for (let i = 0; i < 10; i++) {
      const r = await curl([g.url('/status/503')]);
      assert.equal(r.status, 503);
      assert.equal(json(r).upstream, 'a', `request ${i + 1} reaches the target`);
    }
    for (let i = 0; i < 20; i++) {
      const r = await curl([g.url('/status/503')]);
      assert.equal(json(r).error, 'upstream_unavailable', `request ${i + 11}: the breaker is open`);
    }
    assert.equal(a.state.requests, 10, 'the 10th failure, on whichever worker, opened it');
    const status = json(await curl([`http://127.0.0.1:${admin}/status`]));
    assert.equal(status.upstreams[0].targets[0].circuit_breaker, 'open');
    assert.equal(count(g.stderr, /is now open/g), 1, 'one transition, logged once');

    // After open_for, bursts of concurrent requests on both workers: one probe in all.
    await waitFor(async () => {
      await Promise.all(Array.from({ length: 20 }, () => curl([g.url('/status/503')])));
      return a.state.requests > 10;
    }, 10000, 'the half-open probe');
    assert.equal(a.state.requests, 11, 'half_open_requests: 1 lets one probe through, not one per worker');
    assert.equal(count(g.stderr, /is now half_open/g), 1);
    assert.equal(count(g.stderr, /is now open/g), 2, 'the failed probe opened it again');
    const m = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    assert.match(m, /gatehouse_upstream_breaker_transitions_total\{upstream="failing",state="open"\} 2\n/);
  } finally {
    await g.stop();
    await a.close();
  }
});

test('the retry budget has a floor: a quiet service gets its retries (one dead target of two)', async () => {
  const live = await startUpstream({ name: 'live' });
  const dead = await freePort();
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  pair:
    targets: [ { address: 127.0.0.1:${dead} }, { address: 127.0.0.1:${live.port} } ]
    retry: { attempts: 2, on: [connect_failure, reset, 503] }
routes:
  - { match: { path: /* }, to: pair }
`);
  try {
    const statuses = [];
    for (let i = 0; i < 20; i++) statuses.push((await curl([g.url('/echo')])).status);
    assert.deepEqual(statuses, Array(20).fill(200), 'every request that met the dead target was retried');
    assert.equal(live.state.requests, 20);
  } finally {
    await g.stop();
    await live.close();
  }
});

test('the retry budget has a floor: a target that fails twice then answers, request after request', async () => {
  const a = await startUpstream({ name: 'a' });
  const g = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  one:
    targets: [ { address: 127.0.0.1:${a.port} } ]
    retry: { attempts: 2, backoff: 100ms, on: [503] }
routes:
  - { match: { path: /* }, to: one }
`);
  try {
    for (let i = 0; i < 3; i++) {
      a.failNext(2);
      const before = a.state.requests;
      const r = await curl([g.url('/echo')]);
      assert.equal(r.status, 200, `request ${i + 1}: tried three times`);
      assert.equal(a.state.requests - before, 3);
    }
  } finally {
    await g.stop();
    await a.close();
  }
});

test('the floor is one budget per upstream for the process, and a storm stays capped by it', async () => {
  const a = await startUpstream({ name: 'a' });
  const admin = await freePort();
  const g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  down:
    targets: [ { address: 127.0.0.1:${a.port} } ]
    retry: { attempts: 1, backoff: 1ms, on: [503], budget: 0%, min_retries_per_second: 5 }
routes:
  - { match: { path: /* }, to: down }
`);
  try {
    const n = 40;
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: n }, () => curl([g.url('/status/503')])));
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(answers.every((r) => r.status === 503));
    const retries = a.state.requests - n;
    // 5 to start, for both workers together, and 5 more per second of the storm.
    assert.ok(retries >= 5, `${retries} retries: the floor's 5 were taken`);
    assert.ok(retries <= 5 + Math.ceil(5 * seconds), `${retries} retries in ${seconds.toFixed(2)} s`);
    const m = (await curl([`http://127.0.0.1:${admin}/metrics`])).body;
    const exhausted = Number(m.match(/gatehouse_upstream_retry_budget_exhausted_total\{upstream="down"\} (\d+)/)[1]);
    assert.equal(exhausted, n - retries, 'every request not retried was refused by the budget');
  } finally {
    await g.stop();
    await a.close();
  }
});
