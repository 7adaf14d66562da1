// Distributed tracing, end to end through the real binary: W3C Trace Context (and B3) read from
// clients and written to upstreams, parent-based and ratio sampling, the spans exported with
// OTLP/HTTP (protobuf) to a real receiver in this process (otlp_collector.mjs, decoding with
// OpenTelemetry's own protocol definitions), their attributes and events, the trace id in error
// bodies and the access log, and the export's behaviour against collectors that are dead, stall,
// ask for a retry or refuse.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { startGatehouse, curl, freePort, httpGet, waitFor, sleep, parseMetrics, sampleOf, tempFile,
  runGatehouse, requireTool, ownChild } from './harness.mjs';
import { startCollector, SPAN_KIND, STATUS } from './otlp_collector.mjs';

// ---------------------------------------------------------------------------------------------
// A test upstream that records every request it gets (raw headers, in order) and answers, per
// path, from a plan the test sets (a status, or 'reset' for a TCP RST without an answer); without
// a plan: /.../status/CODE answers CODE, anything else 200 with a small JSON body.
function startRecorder() {
  const seen = [];
  const plans = new Map();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const raw = req.rawHeaders;
    const record = {
      url: req.url, path: url.pathname, raw,
      // Every value of a header, in order (names compared case-insensitively).
      get: (name) => raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name.toLowerCase() ? [raw[i + 1]] : [])),
    };
    seen.push(record);
    const plan = plans.get(url.pathname);
    const step = plan && plan.length ? plan.shift() : undefined;
    req.resume();
    if (step === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    const m = /\/status\/(\d{3})$/.exec(url.pathname);
    const status = step ?? (m ? Number(m[1]) : 200);
    req.on('end', () => {
      const body = JSON.stringify({ path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, seen,
    plan: (path, steps) => plans.set(path, [...steps]),
    byId: (id) => seen.filter((r) => r.get('x-request-id')[0] === id),
    byPath: (p) => seen.filter((r) => r.path === p),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  })));
}

// ---------------------------------------------------------------------------------------------
const TP = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const hexId = (bytes) => crypto.randomBytes(bytes).toString('hex');
let counter = 0;
const rid = (tag) => `${tag}-${process.pid}-${++counter}`;

async function metricsOf(adminPort) {
  const samples = parseMetrics((await curl([`http://127.0.0.1:${adminPort}/metrics`])).body);
  return {
    exported: sampleOf(samples, 'gatehouse_tracing_spans_exported_total', {}),
    queueFull: sampleOf(samples, 'gatehouse_tracing_spans_dropped_total', { reason: 'queue_full' }),
    failed: sampleOf(samples, 'gatehouse_tracing_spans_dropped_total', { reason: 'export_failed' }),
    retries: sampleOf(samples, 'gatehouse_tracing_export_retries_total', {}),
  };
}

// The one upstream request a client request (by its x-request-id) made, and its traceparent.
function onlyUpstreamRequest(rec, id) {
  const seen = rec.byId(id);
  assert.equal(seen.length, 1, `one upstream request for ${id} (got ${seen.length})`);
  return seen[0];
}
function traceparentOf(record) {
  const tps = record.get('traceparent');
  assert.equal(tps.length, 1, `exactly one traceparent upstream (got ${JSON.stringify(tps)})`);
  const m = TP.exec(tps[0]);
  assert.ok(m, `a well-formed traceparent upstream: ${tps[0]}`);
  return { value: tps[0], version: m[1], traceId: m[2], spanId: m[3], flags: m[4] };
}

let coll, rec, g, adminPort, deadPort;
before(async () => {
  coll = await startCollector();
  rec = await startRecorder();
  adminPort = await freePort();
  deadPort = await freePort();  // nothing listens there: connections are refused
  g = await startGatehouse(`
server:
  workers: 2
  listen: [ { address: 127.0.0.1:0, protocols: [http1, h2c] } ]
admin: { listen: 127.0.0.1:${adminPort} }
cache: { max_size: 16MiB, max_object_size: 64KiB }
observability:
  tracing:
    otlp_endpoint: ${coll.url}
    sample_ratio: 1.0
    propagation: [tracecontext]
    service_name: gh-tracing-test
    resource: { deployment.environment: test }
    export: { interval: 100ms, compression: gzip, headers: { x-api-key: secret } }
consumers:
  - name: alice
    api_keys: [ { env: TRACING_TEST_ALICE_KEY } ]
  - name: bob
    api_keys: [ { env: TRACING_TEST_BOB_KEY } ]
upstreams:
  rec: { targets: [ { address: 127.0.0.1:${rec.port} } ] }
  dead: { targets: [ { address: 127.0.0.1:${deadPort} } ] }
routes:
  - { name: api, match: { path: "/api/{id}" }, to: rec }
  - { name: plain, match: { path: /plain/* }, to: rec }
  - name: retry
    match: { path: /retry/* }
    retry: { attempts: 2, backoff: 1ms, on: [503] }
    to: rec
  - name: retry-reset
    match: { path: /retry-reset/* }
    retry: { attempts: 1, backoff: 1ms, on: [reset] }
    to: rec
  - { name: dead, match: { path: /dead/* }, to: dead }
  - name: keyed
    match: { path: /keyed/* }
    plugins: { key_auth: {} }
    to: rec
  - name: denied
    match: { path: /denied/* }
    plugins: { key_auth: {}, acl: { allow_consumers: [bob] } }
    to: rec
  - name: limited
    match: { path: /limited/* }
    plugins: { rate_limit: { limits: ["1/m"], key: route } }
    to: rec
  - name: cached
    match: { path: /cached/* }
    plugins: { cache: { ttl: 60s } }
    to: rec
`, { env: { TRACING_TEST_ALICE_KEY: 'alice-key', TRACING_TEST_BOB_KEY: 'bob-key' } });
});
after(async () => {
  await g?.stop();
  await rec?.close();
  await coll?.close();
});

const get = (path, headers = {}, port = g.port) => httpGet(port, path, { headers });

// ---------------------------------------------------------------------------------------------
test('export: protobuf POSTed to the endpoint, gzipped as asked, with export.headers; one resource, one scope', async () => {
  const id = rid('export');
  assert.equal((await get('/plain/export', { 'x-request-id': id })).status, 200);
  const server = await coll.serverSpan(id);
  const req = coll.requests.find((r) => r.decoded?.spans.some((s) => s.spanId === server.spanId));
  assert.ok(req, 'the export request that carried the span');
  assert.equal(req.method, 'POST');
  assert.equal(req.url, '/v1/traces');
  assert.equal(req.headers['content-type'], 'application/x-protobuf');
  assert.equal(req.headers['content-encoding'], 'gzip');
  assert.deepEqual([...req.body.subarray(0, 2)], [0x1f, 0x8b], 'a gzip member');
  assert.equal(req.headers['x-api-key'], 'secret', 'export.headers are sent');
  assert.equal(req.error, null, 'the body gunzips and decodes as an ExportTraceServiceRequest');
  // Every export so far: one ResourceSpans holding one ScopeSpans, scope "gatehouse".
  for (const r of coll.requests) {
    assert.equal(r.decoded.resources.length, 1);
    assert.deepEqual(r.decoded.resources[0].scopes, ['gatehouse']);
  }
  const res = server.resource;
  assert.equal(res['service.name'], 'gh-tracing-test');
  assert.equal(res['deployment.environment'], 'test');
  assert.equal(typeof res['service.version'], 'string');
  assert.ok(res['service.version'].length > 0);
  assert.equal(typeof res['service.instance.id'], 'string');
  assert.ok(res['service.instance.id'].length > 0);
  assert.equal(server.scope.name, 'gatehouse');
});

test('a valid traceparent is continued: same trace upstream, a new span id that is the client span\'s, never the client\'s header', async () => {
  const id = rid('continue');
  const trace = hexId(16);
  const parent = hexId(8);
  const incoming = `00-${trace}-${parent}-01`;
  assert.equal((await get('/plain/continue', { 'x-request-id': id, traceparent: incoming })).status, 200);
  const up = traceparentOf(onlyUpstreamRequest(rec, id));
  assert.notEqual(up.value, incoming, 'the client\'s traceparent does not reach the upstream');
  assert.equal(up.version, '00');
  assert.equal(up.traceId, trace);
  assert.notEqual(up.spanId, parent);
  assert.equal(up.flags, '01');
  const server = await coll.serverSpan(id);
  assert.equal(server.traceId, trace);
  assert.equal(server.parentSpanId, parent, 'the server span is the caller\'s child');
  assert.notEqual(server.spanId, parent);
  const clients = coll.clientSpansOf(server);
  assert.equal(clients.length, 1);
  assert.equal(clients[0].spanId, up.spanId, 'the upstream\'s parent is the client span');
  assert.notEqual(clients[0].spanId, server.spanId);
});

test('a new trace: a fresh trace id, no parent on the server span; gatehouse.request_id is the id the upstream saw', async () => {
  const path = `/plain/new-${rid('n')}`;
  // No traceparent and no x-request-id: the gateway makes both.
  assert.equal((await get(path)).status, 200);
  const [seen] = rec.byPath(path);
  const up = traceparentOf(seen);
  assert.equal(up.flags, '01', 'sample_ratio 1.0 samples every new trace');
  const server = await waitFor(() => coll.spans.find((s) => s.kind === SPAN_KIND.SERVER && s.traceId === up.traceId),
    5000, 'the server span of the new trace');
  assert.equal(server.parentSpanId, '', 'a root span');
  assert.equal(server.attrs['gatehouse.request_id'], seen.get('x-request-id')[0]);
  assert.equal(coll.clientSpansOf(server)[0].spanId, up.spanId);
});

test('server span: name from the route template, HTTP semantic-convention attributes, status unset for a 200', async () => {
  const id = rid('attrs');
  const res = await get('/api/42?secret=1', { 'x-request-id': id, 'user-agent': 'tracing-test/1.0',
    traceparent: `00-${hexId(16)}-${hexId(8)}-01` });
  assert.equal(res.status, 200);
  const seen = onlyUpstreamRequest(rec, id);
  const s = await coll.serverSpan(id);
  assert.equal(s.kind, SPAN_KIND.SERVER);
  assert.equal(s.name, 'GET /api/{id}');
  assert.equal(s.attrs['http.request.method'], 'GET');
  assert.equal(s.attrs['url.path'], '/api/42', 'the path, without the query');
  assert.equal(s.attrs['url.scheme'], 'http');
  assert.equal(s.attrs['http.route'], '/api/{id}');
  assert.equal(s.attrs['http.response.status_code'], 200);
  assert.equal(s.attrs['server.address'], '127.0.0.1');
  assert.equal(s.attrs['server.port'], g.port);
  assert.equal(s.attrs['network.protocol.version'], '1.1');
  assert.equal(s.attrs['user_agent.original'], 'tracing-test/1.0');
  assert.equal(s.attrs['client.address'], '127.0.0.1');
  assert.equal(s.attrs['gatehouse.route'], 'api');
  assert.equal(s.attrs['gatehouse.upstream'], 'rec');
  assert.equal(s.attrs['gatehouse.request_id'], seen.get('x-request-id')[0]);
  assert.equal(s.attrs['gatehouse.request_id'], id);
  assert.equal(s.attrs['error.type'], undefined);
  assert.equal(s.attrs['gatehouse.consumer'], undefined, 'no consumer without auth');
  assert.equal(s.status.code, STATUS.UNSET);
  assert.ok(s.start > 0n && s.end >= s.start, 'start and end times');
  assert.ok(Object.keys(s.attrs).every((k) => !k.startsWith('__dup_')), `no attribute twice: ${Object.keys(s.attrs)}`);
});

test('client span: one per try, the server span\'s child, with the target\'s address and the answer\'s status', async () => {
  const id = rid('client');
  assert.equal((await get('/api/7', { 'x-request-id': id })).status, 200);
  const up = traceparentOf(onlyUpstreamRequest(rec, id));
  const s = await coll.serverSpan(id);
  const clients = coll.clientSpansOf(s);
  assert.equal(clients.length, 1);
  const c = clients[0];
  assert.equal(c.kind, SPAN_KIND.CLIENT);
  assert.equal(c.traceId, s.traceId);
  assert.equal(c.parentSpanId, s.spanId);
  assert.equal(c.spanId, up.spanId);
  assert.equal(c.attrs['http.request.method'], 'GET');
  assert.equal(c.attrs['server.address'], '127.0.0.1');
  assert.equal(c.attrs['server.port'], rec.port);
  assert.equal(c.attrs['http.response.status_code'], 200);
  assert.equal(c.attrs['http.request.resend_count'], undefined, 'absent on the first try');
  assert.equal(c.attrs['error.type'], undefined);
  assert.equal(c.status.code, STATUS.UNSET);
  assert.ok(c.start >= s.start && c.end <= s.end, 'the try lies within the request');
});

// W3C Trace Context level 1, sections 3.2 (traceparent) and 3.3 (tracestate): what the upstream
// gets and what the server span says, for each kind of incoming context.
test('W3C Trace Context edge cases', async (t) => {
  const T = '4bf92f3577b34da6a3ce929d0e0e4736';
  const P = '00f067aa0ba902b7';
  const short = (i) => `s${i}=${'a'.repeat(40)}`;  // 43 characters
  const cases = [
    { name: 'valid, with a tracestate', headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'congo=t61rcWkgMzE' },
      keep: true, state: 'congo=t61rcWkgMzE' },
    { name: 'tracestate normalised: spaces trimmed, empty members dropped',
      headers: { traceparent: `00-${T}-${P}-01`, tracestate: ' rojo=00f067aa0ba902b7 ,,  , congo=t61rcWkgMzE\t' },
      keep: true, state: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' },
    { name: 'tracestate over two fields, joined', headers: { traceparent: `00-${T}-${P}-01`, tracestate: ['a=1', 'b=2'] },
      keep: true, state: 'a=1,b=2' },
    { name: 'multi-tenant key', headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'fw529a3039@dt=d4cda95b652f4a1592b449d5929fda1b' },
      keep: true, state: 'fw529a3039@dt=d4cda95b652f4a1592b449d5929fda1b' },
    { name: 'uppercase hex', headers: { traceparent: `00-${T.toUpperCase()}-${P}-01`, tracestate: 'a=1' }, keep: false },
    { name: 'all-zero trace id', headers: { traceparent: `00-${'0'.repeat(32)}-${P}-01`, tracestate: 'a=1' }, keep: false },
    { name: 'all-zero parent id', headers: { traceparent: `00-${T}-${'0'.repeat(16)}-01`, tracestate: 'a=1' }, keep: false },
    { name: 'version ff', headers: { traceparent: `ff-${T}-${P}-01`, tracestate: 'a=1' }, keep: false },
    { name: 'version 00 with an extra field', headers: { traceparent: `00-${T}-${P}-01-xx`, tracestate: 'a=1' }, keep: false },
    { name: 'wrong length (15-digit parent id)', headers: { traceparent: `00-${T}-${P.slice(1)}-01`, tracestate: 'a=1' }, keep: false },
    { name: 'two traceparent fields', headers: { traceparent: [`00-${T}-${P}-01`, `00-${T}-${P}-01`], tracestate: 'a=1' }, keep: false },
    { name: 'a future version with an extra field is read as 00', headers: { traceparent: `01-${T}-${P}-01-extra`, tracestate: 'a=1' },
      keep: true, state: 'a=1' },
    { name: 'unknown flag bits: only sampled is written', headers: { traceparent: `00-${T}-${P}-03` }, keep: true },
    { name: 'field names in another case', headers: { TraceParent: `00-${T}-${P}-01`, TraceState: 'a=1' },
      keep: true, state: 'a=1' },
    { name: 'tracestate without a traceparent', headers: { tracestate: 'a=1' }, keep: false },
    { name: 'malformed tracestate member drops it all', headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'a=1,novalue' },
      keep: true },
    { name: 'uppercase tracestate key drops it all', headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'a=1,Bad=2' },
      keep: true },
    { name: 'duplicate tracestate key drops it all', headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'a=1,b=2,a=3' },
      keep: true },
    { name: '32 tracestate members pass', headers: { traceparent: `00-${T}-${P}-01`,
      tracestate: Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',') },
    keep: true, state: Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',') },
    { name: '33 tracestate members drop it all', headers: { traceparent: `00-${T}-${P}-01`,
      tracestate: Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',') }, keep: true },
    { name: 'over 512 characters: a member over 128 goes first',
      headers: { traceparent: `00-${T}-${P}-01`,
        tracestate: [short(0), short(1), short(2), `big=${'b'.repeat(146)}`, ...Array.from({ length: 7 }, (_, i) => short(i + 3))].join(',') },
      keep: true, state: Array.from({ length: 10 }, (_, i) => short(i)).join(',') },
    { name: 'over 512 characters: then members from the end',
      headers: { traceparent: `00-${T}-${P}-01`, tracestate: Array.from({ length: 14 }, (_, i) => short(i)).join(',') },
      keep: true, state: Array.from({ length: 11 }, (_, i) => short(i)).join(',') },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      // Each case its own trace id, so that its spans are told apart from the others'.
      const trace = hexId(16);
      const headers = JSON.parse(JSON.stringify(c.headers).replaceAll(T, trace).replaceAll(T.toUpperCase(), trace.toUpperCase()));
      const id = rid('w3c');
      const res = await get('/plain/w3c', { 'x-request-id': id, ...headers });
      assert.equal(res.status, 200);
      const seen = onlyUpstreamRequest(rec, id);
      const up = traceparentOf(seen);
      const sent = [headers.traceparent ?? headers.TraceParent ?? []].flat();
      for (const v of sent) assert.notEqual(up.value, v, 'the client\'s own traceparent never reaches the upstream');
      assert.equal(up.version, '00');
      assert.equal(up.flags, '01');
      if (c.keep) {
        assert.equal(up.traceId, trace, 'the trace is continued');
      } else {
        assert.notEqual(up.traceId, trace, 'a new trace is started');
        assert.notEqual(up.traceId, '0'.repeat(32));
      }
      assert.deepEqual(seen.get('tracestate'), c.state === undefined ? [] : [c.state], 'the tracestate passed on');
      const server = await coll.serverSpan(id);
      assert.equal(server.traceId, up.traceId);
      assert.equal(server.parentSpanId, c.keep ? P : '');
      assert.equal(server.traceState, c.state ?? '');
      const clients = coll.clientSpansOf(server);
      assert.equal(clients.length, 1);
      assert.equal(clients[0].spanId, up.spanId);
      assert.equal(clients[0].traceState, c.state ?? '');
    });
  }
});

test('parent-based sampling: flags 00 goes upstream as 00 and exports nothing; 01 is exported', async () => {
  const trace = hexId(16);
  const parent = hexId(8);
  const unsampled = rid('unsampled');
  assert.equal((await get('/plain/sampling', { 'x-request-id': unsampled, traceparent: `00-${trace}-${parent}-00` })).status, 200);
  const up = traceparentOf(onlyUpstreamRequest(rec, unsampled));
  assert.equal(up.traceId, trace);
  assert.equal(up.flags, '00');
  // A sampled request after it: once its spans are in, the unsampled one's would be too.
  const sampledTrace = hexId(16);
  const sampled = rid('sampled');
  assert.equal((await get('/plain/sampling', { 'x-request-id': sampled, traceparent: `00-${sampledTrace}-${parent}-01` })).status, 200);
  assert.equal(traceparentOf(onlyUpstreamRequest(rec, sampled)).flags, '01');
  await coll.serverSpan(sampled);
  await sleep(300);  // bounded: three export intervals more, to show that nothing else comes
  assert.equal(coll.spans.filter((s) => s.traceId === trace).length, 0, 'no span of the unsampled trace');
});

test('retries: each try has its own span id upstream, one client span each, resend_count and a retry event', async () => {
  const path = `/retry/${rid('r')}`;
  rec.plan(path, [503, 200]);
  const id = rid('retry');
  const res = await get(path, { 'x-request-id': id, traceparent: `00-${hexId(16)}-${hexId(8)}-01` });
  assert.equal(res.status, 200);
  const tries = rec.byId(id);
  assert.equal(tries.length, 2, 'the upstream saw two tries');
  const [first, second] = tries.map(traceparentOf);
  assert.equal(first.traceId, second.traceId);
  assert.notEqual(first.spanId, second.spanId, 'each try its own parent id');
  const server = await coll.serverSpan(id);
  const clients = coll.clientSpansOf(server);
  assert.equal(clients.length, 2);
  assert.deepEqual(clients.map((c) => c.spanId), [first.spanId, second.spanId]);
  assert.equal(clients[0].attrs['http.response.status_code'], 503);
  assert.equal(clients[0].attrs['http.request.resend_count'], undefined);
  assert.equal(clients[0].attrs['error.type'], '503');
  assert.equal(clients[0].status.code, STATUS.ERROR);
  assert.equal(clients[1].attrs['http.response.status_code'], 200);
  assert.equal(clients[1].attrs['http.request.resend_count'], 1);
  assert.equal(clients[1].attrs['error.type'], undefined);
  assert.equal(clients[1].status.code, STATUS.UNSET);
  const retry = server.events.filter((e) => e.name === 'gatehouse.retry');
  assert.equal(retry.length, 1, `one retry event (events: ${server.events.map((e) => e.name)})`);
  assert.equal(retry[0].attrs['error.type'], '503');
  assert.equal(server.attrs['http.response.status_code'], 200);
  assert.equal(server.status.code, STATUS.UNSET);

  // Three tries (attempts: 2): resend_count 1 then 2, a retry event before each resend.
  const path3 = `/retry/${rid('r3')}`;
  rec.plan(path3, [503, 503, 200]);
  const id3 = rid('retry3');
  assert.equal((await get(path3, { 'x-request-id': id3 })).status, 200);
  const tries3 = rec.byId(id3).map(traceparentOf);
  assert.equal(tries3.length, 3);
  const server3 = await coll.serverSpan(id3);
  const clients3 = coll.clientSpansOf(server3);
  assert.deepEqual(clients3.map((c) => c.spanId), tries3.map((t) => t.spanId));
  assert.deepEqual(clients3.map((c) => c.attrs['http.request.resend_count']), [undefined, 1, 2]);
  assert.deepEqual(clients3.map((c) => c.attrs['http.response.status_code']), [503, 503, 200]);
  assert.deepEqual(server3.events.filter((e) => e.name === 'gatehouse.retry').map((e) => e.attrs['error.type']), ['503', '503']);
});

test('a try the upstream resets: its client span says upstream_reset, and so does the retry event', async () => {
  const path = `/retry-reset/${rid('r')}`;
  rec.plan(path, ['reset', 200]);
  const id = rid('reset');
  assert.equal((await get(path, { 'x-request-id': id })).status, 200);
  const tries = rec.byId(id).map(traceparentOf);
  assert.equal(tries.length, 2);
  const server = await coll.serverSpan(id);
  const clients = coll.clientSpansOf(server);
  assert.deepEqual(clients.map((c) => c.spanId), tries.map((t) => t.spanId));
  assert.equal(clients[0].attrs['error.type'], 'upstream_reset');
  assert.equal(clients[0].attrs['http.response.status_code'], undefined, 'no answer');
  assert.equal(clients[0].status.code, STATUS.ERROR);
  assert.equal(clients[1].attrs['http.request.resend_count'], 1);
  assert.equal(clients[1].attrs['http.response.status_code'], 200);
  const retry = server.events.find((e) => e.name === 'gatehouse.retry');
  assert.ok(retry, 'a retry event');
  assert.equal(retry.attrs['error.type'], 'upstream_reset');
});

test('a dead upstream: 502, the server span is an ERROR with the gateway\'s error code, the try upstream_connect_failed', async () => {
  const id = rid('dead');
  const res = await get('/dead/x', { 'x-request-id': id });
  assert.equal(res.status, 502);
  const body = JSON.parse(res.body);
  assert.equal(body.error, 'upstream_connect_failed');
  const server = await coll.serverSpan(id);
  assert.equal(server.status.code, STATUS.ERROR);
  assert.equal(server.attrs['http.response.status_code'], 502);
  assert.equal(server.attrs['error.type'], 'upstream_connect_failed');
  assert.equal(server.attrs['gatehouse.upstream'], 'dead');
  const clients = coll.clientSpansOf(server);
  assert.ok(clients.length >= 1, 'a client span for the try');
  for (const c of clients) {
    assert.equal(c.attrs['error.type'], 'upstream_connect_failed');
    assert.equal(c.attrs['server.port'], deadPort);
    assert.equal(c.attrs['http.response.status_code'], undefined);
    assert.equal(c.status.code, STATUS.ERROR);
  }
  assert.equal(body.trace_id, server.traceId);
});

test('statuses relayed from the upstream: a 500 makes both spans errors; a 404 only the client span', async () => {
  const id500 = rid('s500');
  assert.equal((await get('/plain/status/500', { 'x-request-id': id500 })).status, 500);
  const id404 = rid('s404');
  assert.equal((await get('/plain/status/404', { 'x-request-id': id404 })).status, 404);
  const s500 = await coll.serverSpan(id500);
  assert.equal(s500.status.code, STATUS.ERROR);
  assert.equal(s500.attrs['http.response.status_code'], 500);
  assert.equal(s500.attrs['error.type'], '500');
  const [c500] = coll.clientSpansOf(s500);
  assert.equal(c500.attrs['http.response.status_code'], 500);
  assert.equal(c500.attrs['error.type'], '500');
  assert.equal(c500.status.code, STATUS.ERROR);
  const s404 = await coll.serverSpan(id404);
  assert.equal(s404.status.code, STATUS.UNSET, 'a 4xx is the client\'s doing');
  assert.equal(s404.attrs['http.response.status_code'], 404);
  assert.equal(s404.attrs['error.type'], undefined);
  const [c404] = coll.clientSpansOf(s404);
  assert.equal(c404.attrs['http.response.status_code'], 404);
  assert.equal(c404.status.code, STATUS.ERROR, 'the call did not do what was asked');
  assert.equal(c404.attrs['error.type'], '404');
});

test('no route: the 404 body has trace_id beside request_id; the span is named by the method alone', async () => {
  const id = rid('noroute');
  const trace = hexId(16);
  const res = await get('/nowhere/at/all', { 'x-request-id': id, traceparent: `00-${trace}-${hexId(8)}-01` });
  assert.equal(res.status, 404);
  const body = JSON.parse(res.body);
  assert.equal(body.error, 'no_route');
  assert.equal(body.request_id, id);
  assert.equal(body.trace_id, trace, 'the trace the request belongs to');
  // A new trace: the body names it too.
  const fresh = JSON.parse((await get('/nowhere/else')).body);
  assert.match(fresh.trace_id, /^[0-9a-f]{32}$/);
  assert.notEqual(fresh.trace_id, trace);
  const server = await coll.serverSpan(id);
  assert.equal(server.name, 'GET');
  assert.equal(server.attrs['http.route'], undefined);
  assert.equal(server.attrs['gatehouse.route'], undefined);
  assert.equal(server.attrs['error.type'], 'no_route');
  assert.equal(server.attrs['http.response.status_code'], 404);
  assert.equal(server.status.code, STATUS.UNSET);
  assert.equal(coll.clientSpansOf(server).length, 0);
  await waitFor(() => coll.spans.some((s) => s.kind === SPAN_KIND.SERVER && s.traceId === fresh.trace_id), 5000, 'the new trace\'s span');
});

test('the access log line has trace_id and the server span\'s span_id', async () => {
  const id = rid('log');
  const trace = hexId(16);
  assert.equal((await get('/plain/log', { 'x-request-id': id, traceparent: `00-${trace}-${hexId(8)}-01` })).status, 200);
  const idErr = rid('logerr');
  assert.equal((await get('/nowhere', { 'x-request-id': idErr })).status, 404);
  const server = await coll.serverSpan(id);
  const serverErr = await coll.serverSpan(idErr);
  const line = await waitFor(() => g.accessLog().find((l) => l.request_id === id), 3000, 'the access log line');
  assert.equal(line.trace_id, trace);
  assert.equal(line.span_id, server.spanId);
  const lineErr = await waitFor(() => g.accessLog().find((l) => l.request_id === idErr), 3000, 'the 404\'s log line');
  assert.equal(lineErr.trace_id, serverErr.traceId);
  assert.equal(lineErr.span_id, serverErr.spanId);
});

test('key_auth and acl: the consumer on the span; 401 and 403 are events', async () => {
  const ok = rid('auth-ok');
  assert.equal((await get('/keyed/x', { 'x-request-id': ok, 'x-api-key': 'alice-key' })).status, 200);
  const noKey = rid('auth-401');
  const r401 = await get('/keyed/x', { 'x-request-id': noKey });
  assert.equal(r401.status, 401);
  const denied = rid('auth-403');
  assert.equal((await get('/denied/x', { 'x-request-id': denied, 'x-api-key': 'alice-key' })).status, 403);

  const sOk = await coll.serverSpan(ok);
  assert.equal(sOk.attrs['gatehouse.consumer'], 'alice');
  assert.deepEqual(sOk.events.filter((e) => e.name.startsWith('gatehouse.a')), [], 'no auth event when it passed');

  const s401 = await coll.serverSpan(noKey);
  assert.ok(s401.events.some((e) => e.name === 'gatehouse.auth_failed'), `auth_failed event (got ${s401.events.map((e) => e.name)})`);
  assert.equal(s401.attrs['http.response.status_code'], 401);
  assert.equal(s401.attrs['error.type'], 'unauthorized');
  assert.equal(s401.status.code, STATUS.UNSET);
  assert.equal(coll.clientSpansOf(s401).length, 0, 'nothing went upstream');
  assert.equal(JSON.parse(r401.body).trace_id, s401.traceId, 'the 401 body names the trace');

  const s403 = await coll.serverSpan(denied);
  assert.ok(s403.events.some((e) => e.name === 'gatehouse.access_denied'), `access_denied event (got ${s403.events.map((e) => e.name)})`);
  assert.equal(s403.attrs['http.response.status_code'], 403);
  assert.equal(s403.attrs['gatehouse.consumer'], 'alice');
  for (const s of [s401, s403]) for (const e of s.events) assert.ok(e.time >= s.start && e.time <= s.end, 'events within their span');
});

test('rate_limit: the 429 is a gatehouse.rate_limited event', async () => {
  const first = rid('rl1');
  assert.equal((await get('/limited/x', { 'x-request-id': first })).status, 200);
  const second = rid('rl2');
  const r429 = await get('/limited/x', { 'x-request-id': second });
  assert.equal(r429.status, 429);
  const s1 = await coll.serverSpan(first);
  assert.equal(s1.events.some((e) => e.name === 'gatehouse.rate_limited'), false);
  const s2 = await coll.serverSpan(second);
  assert.ok(s2.events.some((e) => e.name === 'gatehouse.rate_limited'), `rate_limited event (got ${s2.events.map((e) => e.name)})`);
  assert.equal(s2.attrs['http.response.status_code'], 429);
  assert.equal(s2.attrs['error.type'], 'rate_limited');
  assert.equal(JSON.parse(r429.body).trace_id, s2.traceId, 'the 429 body names the trace');
  assert.equal(coll.clientSpansOf(s2).length, 0);
});

test('cache: a gatehouse.cache event says miss, then hit; a hit makes no client span', async () => {
  const path = `/cached/${rid('c')}`;
  const miss = rid('miss');
  assert.equal((await get(path, { 'x-request-id': miss })).status, 200);
  const hit = rid('hit');
  assert.equal((await get(path, { 'x-request-id': hit })).status, 200);
  assert.equal(rec.byPath(path).length, 1, 'the second came from the cache');
  const sMiss = await coll.serverSpan(miss);
  const sHit = await coll.serverSpan(hit);
  const result = (s) => s.events.filter((e) => e.name === 'gatehouse.cache').map((e) => e.attrs['gatehouse.cache.result']);
  assert.deepEqual(result(sMiss), ['miss']);
  assert.deepEqual(result(sHit), ['hit']);
  assert.equal(coll.clientSpansOf(sMiss).length, 1);
  assert.equal(coll.clientSpansOf(sHit).length, 0);
});

test('HTTP/2 (h2c): the server span says network.protocol.version 2', async () => {
  requireTool('curl');
  const id = rid('h2');
  const trace = hexId(16);
  const parent = hexId(8);
  const res = await curl(['--http2-prior-knowledge', '-w', '\n%{http_version}', '-H', `x-request-id: ${id}`,
    '-H', `traceparent: 00-${trace}-${parent}-01`, '-H', 'tracestate: a=1, b=2', g.url('/api/h2')]);
  assert.equal(res.status, 200, res.stderr);
  assert.match(res.body, /\n2$/, 'the client spoke HTTP/2');
  const seen = onlyUpstreamRequest(rec, id);
  const up = traceparentOf(seen);
  assert.equal(up.traceId, trace, 'continued over HTTP/2 too');
  assert.deepEqual(seen.get('tracestate'), ['a=1,b=2']);
  const s = await coll.serverSpan(id);
  assert.equal(s.attrs['network.protocol.version'], '2');
  assert.equal(s.traceId, up.traceId);
  assert.equal(s.parentSpanId, parent);
  assert.equal(s.name, 'GET /api/{id}');
  assert.equal(coll.clientSpansOf(s)[0].spanId, up.spanId);
  // The gateway's own answer over HTTP/2 names the trace too.
  const trace404 = hexId(16);
  const nf = await curl(['--http2-prior-knowledge', '-H', `traceparent: 00-${trace404}-${parent}-01`, g.url('/nowhere/h2')]);
  assert.equal(nf.status, 404);
  assert.equal(JSON.parse(nf.body).trace_id, trace404);
});

test('tracecontext only: a client\'s b3 headers pass through untouched and are not read', async () => {
  const id = rid('b3pass');
  const b3 = `80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1`;
  const res = await get('/plain/b3pass', { 'x-request-id': id, b3, 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
    'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': '1' });
  assert.equal(res.status, 200);
  const seen = onlyUpstreamRequest(rec, id);
  assert.deepEqual(seen.get('b3'), [b3]);
  assert.deepEqual(seen.get('x-b3-traceid'), ['80f198ee56343ba864fe8b2a57d3eff7']);
  assert.deepEqual(seen.get('x-b3-spanid'), ['e457b5a2e4d86bd1']);
  assert.deepEqual(seen.get('x-b3-sampled'), ['1']);
  const up = traceparentOf(seen);
  assert.notEqual(up.traceId, '80f198ee56343ba864fe8b2a57d3eff7', 'b3 is not read');
  assert.equal((await coll.serverSpan(id)).parentSpanId, '');
});

// A gateway of its own, tracing as `tracing` says (YAML lines under observability.tracing).
async function tracedGateway(tracing, { routes = '', admin = false, workers = 2 } = {}) {
  const adm = admin ? await freePort() : 0;
  const gw = await startGatehouse(`
server:
  workers: ${workers}
  listen: [ { address: 127.0.0.1:0 } ]
${admin ? `admin: { listen: 127.0.0.1:${adm} }` : ''}
observability:
  tracing:
${tracing.trim().split('\n').map((l) => `    ${l}`).join('\n')}
upstreams:
  rec: { targets: [ { address: 127.0.0.1:${rec.port} } ] }
  dead: { targets: [ { address: 127.0.0.1:${deadPort} } ] }
routes:
  - { name: plain, match: { path: /plain/* }, to: rec }
  - { name: dead, match: { path: /dead/* }, to: dead }
${routes}`);
  gw.adminPort = adm;
  return gw;
}

test('b3 (single header): read and written as {trace32}-{span}-{1|0}', async () => {
  const gw = await tracedGateway(`
otlp_endpoint: ${coll.url}
propagation: [b3]
export: { interval: 100ms }`);
  try {
    const B3 = /^([0-9a-f]{32})-([0-9a-f]{16})-([01])$/;
    const upB3 = (id) => {
      const v = onlyUpstreamRequest(rec, id).get('b3');
      assert.equal(v.length, 1, `one b3 upstream (got ${JSON.stringify(v)})`);
      const m = B3.exec(v[0]);
      assert.ok(m, `a well-formed b3 upstream: ${v[0]}`);
      return { value: v[0], trace: m[1], span: m[2], sampled: m[3] };
    };
    // 128-bit trace id, sampled.
    const trace = hexId(16);
    const span = hexId(8);
    const a = rid('b3a');
    assert.equal((await get('/plain/b3', { 'x-request-id': a, b3: `${trace}-${span}-1` }, gw.port)).status, 200);
    const ua = upB3(a);
    assert.equal(ua.trace, trace);
    assert.notEqual(ua.span, span);
    assert.equal(ua.sampled, '1');
    const sa = await coll.serverSpan(a);
    assert.equal(sa.traceId, trace);
    assert.equal(sa.parentSpanId, span);
    assert.equal(coll.clientSpansOf(sa)[0].spanId, ua.span, 'the upstream\'s span is the client span');

    // 64-bit trace id: the low half of a 128-bit one; debug means sampled.
    const trace64 = hexId(8);
    const b = rid('b3b');
    assert.equal((await get('/plain/b3', { 'x-request-id': b, b3: `${trace64}-${span}-d` }, gw.port)).status, 200);
    const ub = upB3(b);
    assert.equal(ub.trace, `${'0'.repeat(16)}${trace64}`);
    assert.equal(ub.sampled, '1');
    const sb = await coll.serverSpan(b);
    assert.equal(sb.traceId, `${'0'.repeat(16)}${trace64}`);
    assert.equal(sb.parentSpanId, span);

    // Not sampled: 0 upstream, nothing exported.
    const trace0 = hexId(16);
    const c = rid('b3c');
    assert.equal((await get('/plain/b3', { 'x-request-id': c, b3: `${trace0}-${span}-0` }, gw.port)).status, 200);
    const uc = upB3(c);
    assert.equal(uc.trace, trace0);
    assert.equal(uc.sampled, '0');

    // Invalid (uppercase): a new trace.
    const d = rid('b3d');
    assert.equal((await get('/plain/b3', { 'x-request-id': d, b3: `${trace.toUpperCase()}-${span}-1` }, gw.port)).status, 200);
    const ud = upB3(d);
    assert.notEqual(ud.trace, trace);
    assert.equal((await coll.serverSpan(d)).parentSpanId, '');
    await sleep(300);  // bounded: the unsampled request's spans would have come with d's
    assert.equal(coll.spans.filter((s) => s.traceId === trace0).length, 0, 'the unsampled trace is not exported');
  } finally {
    await gw.stop();
  }
});

test('b3multi: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled read and written', async () => {
  const gw = await tracedGateway(`
otlp_endpoint: ${coll.url}
propagation: [b3multi]
export: { interval: 100ms }`);
  try {
    const trace = hexId(16);
    const span = hexId(8);
    const a = rid('b3m');
    assert.equal((await get('/plain/b3m', { 'x-request-id': a, 'X-B3-TraceId': trace, 'X-B3-SpanId': span, 'X-B3-Sampled': '1' }, gw.port)).status, 200);
    const seen = onlyUpstreamRequest(rec, a);
    assert.deepEqual(seen.get('x-b3-traceid'), [trace]);
    const [upSpan] = seen.get('x-b3-spanid');
    assert.equal(seen.get('x-b3-spanid').length, 1);
    assert.match(upSpan, /^[0-9a-f]{16}$/);
    assert.notEqual(upSpan, span);
    assert.deepEqual(seen.get('x-b3-sampled'), ['1']);
    const s = await coll.serverSpan(a);
    assert.equal(s.traceId, trace);
    assert.equal(s.parentSpanId, span);
    assert.equal(coll.clientSpansOf(s)[0].spanId, upSpan);

    // A 64-bit trace id becomes 128 bits; X-B3-Sampled: 0 stays unsampled.
    const trace64 = hexId(8);
    const b = rid('b3m0');
    assert.equal((await get('/plain/b3m', { 'x-request-id': b, 'X-B3-TraceId': trace64, 'X-B3-SpanId': span, 'X-B3-Sampled': '0' }, gw.port)).status, 200);
    const seen0 = onlyUpstreamRequest(rec, b);
    assert.deepEqual(seen0.get('x-b3-traceid'), [`${'0'.repeat(16)}${trace64}`]);
    assert.deepEqual(seen0.get('x-b3-sampled'), ['0']);
    const c = rid('b3m1');
    assert.equal((await get('/plain/b3m', { 'x-request-id': c }, gw.port)).status, 200);
    await coll.serverSpan(c);
    await sleep(300);  // bounded: the unsampled request's spans would have come with c's
    assert.equal(coll.findServer(b), undefined, 'X-B3-Sampled: 0 is not exported');
  } finally {
    await gw.stop();
  }
});

test('without tracing configured: no trace_id in error bodies', async () => {
  const gw = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  rec: { targets: [ { address: 127.0.0.1:${rec.port} } ] }
routes:
  - { match: { path: /plain/* }, to: rec }
`);
  try {
    const res = await get('/nowhere', { traceparent: `00-${hexId(16)}-${hexId(8)}-01` }, gw.port);
    assert.equal(res.status, 404);
    const body = JSON.parse(res.body);
    assert.equal(body.error, 'no_route');
    assert.ok(body.request_id);
    assert.equal('trace_id' in body, false, res.body);
  } finally {
    await gw.stop();
  }
});

test('tracing without otlp_endpoint: the context is still propagated, and error bodies name the trace', async () => {
  const gw = await tracedGateway('sample_ratio: 1.0');
  try {
    const trace = hexId(16);
    const parent = hexId(8);
    const id = rid('noexport');
    const incoming = `00-${trace}-${parent}-01`;
    assert.equal((await get('/plain/noexport', { 'x-request-id': id, traceparent: incoming }, gw.port)).status, 200);
    const up = traceparentOf(onlyUpstreamRequest(rec, id));
    assert.equal(up.traceId, trace);
    assert.notEqual(up.spanId, parent);
    assert.notEqual(up.value, incoming);
    const body = JSON.parse((await get('/nowhere', { traceparent: incoming }, gw.port)).body);
    assert.equal(body.trace_id, trace);
    const line = await waitFor(() => gw.accessLog().find((l) => l.request_id === id), 3000, 'the log line');
    assert.equal(line.trace_id, trace);
    assert.match(line.span_id, /^[0-9a-f]{16}$/);
  } finally {
    await gw.stop();
  }
});

test('sample_ratio 25% samples about a quarter of new traces; a sampled parent wins over the ratio', async () => {
  const gw = await tracedGateway(`
otlp_endpoint: ${coll.url}
sample_ratio: "25%"
export: { interval: 100ms }`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    const tag = rid('ratio');
    const ids = Array.from({ length: 400 }, (_, i) => `${tag}-${i}`);
    for (let i = 0; i < ids.length; i += 8) {
      const batch = await Promise.all(ids.slice(i, i + 8).map((id) => httpGet(gw.port, '/plain/ratio', { headers: { 'x-request-id': id }, agent })));
      assert.ok(batch.every((r) => r.status === 200));
    }
    const flags = ids.map((id) => traceparentOf(onlyUpstreamRequest(rec, id)).flags);
    const sampled = ids.filter((_, i) => flags[i] === '01');
    assert.ok(flags.every((f) => f === '01' || f === '00'));
    assert.ok(sampled.length >= 60 && sampled.length <= 140, `${sampled.length} of 400 sampled (expected about 100)`);
    // Exactly those the upstream was told were sampled are exported.
    await waitFor(() => coll.spans.filter((s) => s.kind === SPAN_KIND.SERVER && s.attrs['gatehouse.request_id']?.startsWith(`${tag}-`)).length >= sampled.length,
      10000, `${sampled.length} server spans`);
    const exported = new Set(coll.spans.filter((s) => s.kind === SPAN_KIND.SERVER && s.attrs['gatehouse.request_id']?.startsWith(`${tag}-`))
      .map((s) => s.attrs['gatehouse.request_id']));
    assert.deepEqual([...exported].sort(), [...sampled].sort());

    // Parent-based: 20 requests whose caller sampled are all sampled (by the ratio alone, 0.25^20).
    const ptag = rid('ratio-parent');
    for (let i = 0; i < 20; i++) {
      const r = await httpGet(gw.port, '/plain/ratio', { headers: { 'x-request-id': `${ptag}-${i}`, traceparent: `00-${hexId(16)}-${hexId(8)}-01` }, agent });
      assert.equal(r.status, 200);
      assert.equal(traceparentOf(onlyUpstreamRequest(rec, `${ptag}-${i}`)).flags, '01');
    }
    for (let i = 0; i < 20; i++) await coll.serverSpan(`${ptag}-${i}`);
  } finally {
    agent.destroy();
    await gw.stop();
  }
});

test('always_sample_errors with sample_ratio 0: 5xx answers are exported, others are not', async () => {
  const gw = await tracedGateway(`
otlp_endpoint: ${coll.url}
sample_ratio: 0
always_sample_errors: true
export: { interval: 100ms }`);
  try {
    const ok = rid('ase-200');
    assert.equal((await get('/plain/ase', { 'x-request-id': ok }, gw.port)).status, 200);
    assert.equal(traceparentOf(onlyUpstreamRequest(rec, ok)).flags, '00', 'ratio 0: not sampled');
    const notFound = rid('ase-404');
    assert.equal((await get('/plain/status/404', { 'x-request-id': notFound }, gw.port)).status, 404);
    const relayed = rid('ase-500');
    assert.equal((await get('/plain/status/500', { 'x-request-id': relayed }, gw.port)).status, 500);
    const dead = rid('ase-502');
    assert.equal((await get('/dead/x', { 'x-request-id': dead }, gw.port)).status, 502);
    const s502 = await coll.serverSpan(dead);
    assert.equal(s502.status.code, STATUS.ERROR);
    assert.ok(coll.clientSpansOf(s502).length >= 1, 'with its client span');
    const s500 = await coll.serverSpan(relayed);
    assert.equal(s500.status.code, STATUS.ERROR);
    assert.equal(coll.clientSpansOf(s500).length, 1);
    await sleep(300);  // bounded: the earlier requests' spans would have come with the errors'
    assert.equal(coll.findServer(ok), undefined, 'the 200 is not exported');
    assert.equal(coll.findServer(notFound), undefined, 'a 4xx is not exported');
  } finally {
    await gw.stop();
  }
});

test('no compression by default (as in OTLP exporters): raw protobuf; spans_exported_total counts what the collector took', async () => {
  const own = await startCollector();
  const gw = await tracedGateway(`
otlp_endpoint: ${own.url}
service_name: raw-service
export: { interval: 100ms }`, { admin: true });
  try {
    const ids = [rid('raw'), rid('raw'), rid('raw')];
    for (const id of ids) assert.equal((await get('/plain/raw', { 'x-request-id': id }, gw.port)).status, 200);
    for (const id of ids) await own.serverSpan(id);
    for (const r of own.requests) {
      assert.equal(r.headers['content-encoding'], undefined);
      assert.equal(r.headers['content-type'], 'application/x-protobuf');
      assert.equal(r.gzipped, false);
      assert.equal(r.error, null, 'the body is an ExportTraceServiceRequest as it is');
    }
    assert.equal(own.spans.length, 6, 'a server and a client span per request');
    assert.equal(own.spans[0].resource['service.name'], 'raw-service');
    assert.equal(own.spans.filter((s) => s.kind === SPAN_KIND.SERVER).length, 3);
    await waitFor(async () => (await metricsOf(gw.adminPort)).exported === 6, 3000, 'spans_exported_total 6');
    const m = await metricsOf(gw.adminPort);
    assert.deepEqual(m, { exported: 6, queueFull: 0, failed: 0, retries: 0 });
  } finally {
    await gw.stop();
    await own.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The export's bad paths: the requests never wait for the collector.

test('a dead collector: requests answer promptly, spans are counted as export_failed', async () => {
  const closed = await freePort();
  const gw = await tracedGateway(`
otlp_endpoint: http://127.0.0.1:${closed}/v1/traces
export: { interval: 100ms, max_retries: 1 }`, { admin: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const slow = [];
    for (let i = 0; i < 50; i++) {
      const r = await httpGet(gw.port, '/plain/deadcoll', { agent });
      assert.equal(r.status, 200);
      if (r.ms > 200) slow.push(r.ms.toFixed(0));
    }
    assert.deepEqual(slow, [], 'no request waited for the collector');
    // 50 requests, a server and a client span each: every one of them fails to export.
    await waitFor(async () => (await metricsOf(gw.adminPort)).failed === 100, 15000, 'export_failed to reach 100');
    const m = await metricsOf(gw.adminPort);
    assert.equal(m.exported, 0);
    assert.equal(m.queueFull, 0);
    assert.ok(m.retries >= 1, 'a failed connection is retried (max_retries: 1)');
  } finally {
    agent.destroy();
    await gw.stop();
  }
});

test('a collector that never answers: requests stay fast, a full queue drops spans (queue_full)', async () => {
  const stall = await startCollector({ respond: () => 'hang' });
  const gw = await tracedGateway(`
otlp_endpoint: ${stall.url}
export: { interval: 100ms, max_queue: 20, timeout: 5s }`, { admin: true, workers: 1 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    // One request whose export hangs: from then on, nothing leaves the queue.
    assert.equal((await httpGet(gw.port, '/plain/stall', { agent })).status, 200);
    await waitFor(() => stall.requests.length === 1, 3000, 'the first export at the collector');
    const slow = [];
    for (let i = 0; i < 30; i++) {
      const r = await httpGet(gw.port, '/plain/stall', { agent });
      assert.equal(r.status, 200);
      if (r.ms > 200) slow.push(r.ms.toFixed(0));
    }
    assert.deepEqual(slow, [], 'no request waited for the collector');
    // 30 requests, 2 spans each; max_queue 20 holds 10 requests' worth: 40 or more dropped.
    const m = await waitFor(async () => { const x = await metricsOf(gw.adminPort); return x.queueFull >= 40 && x; }, 3000, 'queue_full drops');
    assert.ok(m.queueFull <= 60, `dropped ${m.queueFull} of 60 spans`);
    assert.equal(m.exported, 0);
    assert.equal(stall.requests.length, 1, 'one export at a time: the stalled one');
  } finally {
    agent.destroy();
    const t0 = performance.now();
    await gw.stop();
    const stopMs = performance.now() - t0;
    await stall.close();
    assert.ok(stopMs < 3000, `the gateway stops without waiting for the stalled export (${stopMs.toFixed(0)} ms)`);
  }
});

test('a collector answering 503 (with and without Retry-After) then 200: the batch is sent again and arrives', async () => {
  let refuse = 1;
  let retryAfter = '1';
  const flaky = await startCollector({
    respond: () => {
      if (refuse > 0) {
        refuse--;
        return { status: 503, headers: retryAfter ? { 'retry-after': retryAfter } : {} };
      }
      return { status: 200 };
    },
  });
  const gw = await tracedGateway(`
otlp_endpoint: ${flaky.url}
export: { interval: 100ms }`, { admin: true });
  try {
    const id = rid('flaky');
    assert.equal((await get('/plain/flaky', { 'x-request-id': id }, gw.port)).status, 200);
    const server = await flaky.serverSpan(id, 8000);
    assert.equal(flaky.requests.length, 2);
    const [refused, taken] = flaky.requests;
    assert.equal(refused.status, 503);
    assert.equal(taken.status, 200);
    assert.deepEqual(taken.decoded.spans.map((s) => s.spanId).sort(), refused.decoded.spans.map((s) => s.spanId).sort(),
      'the same spans, sent again');
    assert.ok(taken.at - refused.at >= 900, `Retry-After: 1 was waited for (${(taken.at - refused.at).toFixed(0)} ms)`);
    assert.equal(flaky.clientSpansOf(server).length, 1);
    assert.equal(server.resource['service.name'], 'gatehouse', 'the default service.name');
    await waitFor(async () => (await metricsOf(gw.adminPort)).exported === 2, 3000, 'spans_exported_total 2');
    let m = await metricsOf(gw.adminPort);
    assert.equal(m.retries, 1);
    assert.equal(m.failed, 0);

    // Without Retry-After: the exporter's own backoff.
    refuse = 1;
    retryAfter = '';
    const id2 = rid('flaky');
    assert.equal((await get('/plain/flaky', { 'x-request-id': id2 }, gw.port)).status, 200);
    await flaky.serverSpan(id2, 8000);
    assert.equal(flaky.requests.length, 4);
    assert.deepEqual(flaky.requests.map((r) => r.status), [503, 200, 503, 200]);
    await waitFor(async () => (await metricsOf(gw.adminPort)).exported === 4, 3000, 'spans_exported_total 4');
    m = await metricsOf(gw.adminPort);
    assert.equal(m.retries, 2);
    assert.equal(m.failed, 0);
  } finally {
    await gw.stop();
    await flaky.close();
  }
});

test('a collector answering 400: the batch is not sent again; its spans count as export_failed', async () => {
  const refusing = await startCollector({ respond: () => ({ status: 400 }) });
  const gw = await tracedGateway(`
otlp_endpoint: ${refusing.url}
export: { interval: 100ms, max_retries: 3 }`, { admin: true });
  try {
    assert.equal((await get('/plain/refused', {}, gw.port)).status, 200);
    await waitFor(async () => (await metricsOf(gw.adminPort)).failed === 2, 5000, 'export_failed 2');
    await sleep(600);  // bounded: longer than the first retry's backoff, to show none comes
    assert.equal(refusing.requests.length, 1, 'exactly one request for the batch');
    assert.equal(refusing.requests[0].error, null, 'it was a well-formed export all the same');
    const m = await metricsOf(gw.adminPort);
    assert.deepEqual(m, { exported: 0, queueFull: 0, failed: 2, retries: 0 });
  } finally {
    await gw.stop();
    await refusing.close();
  }
});

test('export.timeout: a stalled export is given up after it, and its spans count as export_failed', async () => {
  const stall = await startCollector({ respond: () => 'hang' });
  const gw = await tracedGateway(`
otlp_endpoint: ${stall.url}
export: { interval: 100ms, timeout: 300ms, max_retries: 0 }`, { admin: true });
  try {
    assert.equal((await get('/plain/timeout', {}, gw.port)).status, 200);
    await waitFor(() => stall.requests.length === 1, 3000, 'the export at the collector');
    const sentAt = stall.requests[0].at;
    await waitFor(async () => (await metricsOf(gw.adminPort)).failed === 2, 3000, 'export_failed 2');
    const waited = performance.now() - sentAt;
    assert.ok(waited >= 250, `given up after the timeout, not before (${waited.toFixed(0)} ms)`);
    // The exporter is free again: the next request's spans are sent (and stall) in turn.
    assert.equal((await get('/plain/timeout', {}, gw.port)).status, 200);
    await waitFor(() => stall.requests.length === 2, 3000, 'the next export');
    const m = await metricsOf(gw.adminPort);
    assert.equal(m.exported, 0);
    assert.equal(m.retries, 0, 'max_retries: 0');
  } finally {
    await gw.stop();
    await stall.close();
  }
});

test('export.max_batch: a full batch goes at once, without waiting for the interval, and no export holds more', async () => {
  const own = await startCollector();
  const gw = await tracedGateway(`
otlp_endpoint: ${own.url}
export: { interval: 10s, max_batch: 4 }`, { workers: 1 });
  try {
    // Four requests, two spans each (a request's spans stay in one batch): two full batches of four.
    const t0 = performance.now();
    for (let i = 0; i < 2; i++) assert.equal((await get('/plain/batch', {}, gw.port)).status, 200);
    await waitFor(() => own.spans.length >= 4, 3000, 'a full batch, long before the 10s interval');
    assert.ok(performance.now() - t0 < 5000);
    const sizes = () => own.requests.map((r) => r.decoded.spans.length);
    for (let i = 0; i < 2; i++) assert.equal((await get('/plain/batch', {}, gw.port)).status, 200);
    await waitFor(() => own.spans.length === 8, 3000, 'both full batches');
    assert.deepEqual(sizes(), [4, 4], 'export requests of four spans each (max_batch: 4)');
    // A batch the next request's spans would take past max_batch goes as it is.
    const three = await startCollector();
    const gw3 = await tracedGateway(`
otlp_endpoint: ${three.url}
export: { interval: 10s, max_batch: 3 }`, { workers: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get('/plain/batch', {}, gw3.port)).status, 200);
      await waitFor(() => three.spans.length >= 4, 3000, 'two batches of two, long before the interval');
      assert.deepEqual(three.requests.map((r) => r.decoded.spans.length), [2, 2]);
    } finally {
      await gw3.stop();
      await three.close();
    }
  } finally {
    await gw.stop();
    await own.close();
  }
});

// ---------------------------------------------------------------------------------------------
test('config errors under observability.tracing: FILE:LINE:COL: path: message, and validate fails', () => {
  const config = (line) => `server:
  listen: [ { address: 127.0.0.1:0 } ]
observability:
  tracing:
    ${line}
upstreams:
  u: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
  - { match: { path: /* }, to: u }
`;
  const bad = [
    ['sample_ratio: 2', 'observability.tracing.sample_ratio'],
    ['sample_ratio: "125%"', 'observability.tracing.sample_ratio'],
    ['propagation: [zipkin]', 'observability.tracing.propagation'],
    ['otlp_endpoint: ftp://x', 'observability.tracing.otlp_endpoint'],
    ['export: { compression: brotli }', 'observability.tracing.export.compression'],
    ['export: { interval: 100 }', 'observability.tracing.export.interval'],
    ['always_sample_errors: maybe', 'observability.tracing.always_sample_errors'],
    ['sampler: always', 'observability.tracing'],
  ];
  for (const [line, yamlPath] of bad) {
    const file = tempFile('tracing-bad.yaml', config(line));
    const r = runGatehouse(['validate', '-c', file]);
    assert.notEqual(r.status, 0, `${line}: validate must fail`);
    const errors = r.stderr.trim().split('\n').filter((l) => /:\d+:\d+: /.test(l));
    assert.equal(errors.length, 1, `${line}: one error\n${r.stderr}`);
    const m = /^(.*):(\d+):(\d+): ([^:]+): (.+)$/.exec(errors[0]);
    assert.ok(m, `${line}: ${errors[0]}`);
    assert.equal(m[1], file);
    assert.equal(Number(m[2]), 5, `${line}: the line of the bad key: ${errors[0]}`);
    assert.ok(m[4] === yamlPath || m[4].startsWith(`${yamlPath}.`), `${line}: path ${m[4]}, expected ${yamlPath}`);
  }
  const good = tempFile('tracing-good.yaml', `server:
  listen: [ { address: 127.0.0.1:0 } ]
observability:
  tracing:
    otlp_endpoint: https://collector.example.com:4318/v1/traces
    sample_ratio: "25%"
    always_sample_errors: true
    propagation: [tracecontext, b3, b3multi]
    service_name: api-gateway
    resource: { deployment.environment: prod }
    export: { interval: 100ms, max_batch: 512, max_queue: 8192, timeout: 5s, max_retries: 3, compression: none, headers: { x-api-key: secret } }
upstreams:
  u: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
  - { match: { path: /* }, to: u }
`);
  const r = runGatehouse(['validate', '-c', good]);
  assert.equal(r.status, 0, r.stderr);
});

// ---------------------------------------------------------------------------------------------
// Exemplars: the latency histogram's buckets point to sampled traces, in OpenMetrics. The reader is
// a real Prometheus (Debian's), scraping the admin API with exemplar storage on: it asks for
// OpenMetrics as it always does, refuses a malformed exposition (the target goes down with the
// parse error), and answers /api/v1/query_exemplars with what it stored.
async function startPrometheus(target) {
  requireTool('prometheus');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-prom-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: gatehouse
    static_configs: [ { targets: ["${target}"] } ]
`);
  const proc = ownChild(spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--enable-feature=exemplar-storage', '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const api = async (p) => JSON.parse((await curl([`http://127.0.0.1:${port}${p}`])).body || '{}');
  await waitFor(async () => (await curl([`http://127.0.0.1:${port}/-/ready`])).status === 200, 15000, 'prometheus ready');
  return { api, stop: () => { proc.kill('SIGTERM'); return new Promise((r) => proc.on('exit', r)); } };
}

test('exemplars: OpenMetrics when the scraper asks for it, each bucket pointing to a sampled trace (read by Prometheus)', async () => {
  const gw = await tracedGateway(`
otlp_endpoint: ${coll.url}
sample_ratio: 1.0
export: { interval: 100ms }`, { admin: true, workers: 1 });
  let prom;
  try {
    const id = rid('exemplar');
    assert.equal((await get('/plain/exemplar', { 'x-request-id': id }, gw.port)).status, 200);
    const { traceId } = traceparentOf(onlyUpstreamRequest(rec, id));
    // An unsampled request leaves no exemplar.
    const unsampled = '11111111111111111111111111111111';
    assert.equal((await get('/plain/unsampled', { 'x-request-id': rid('unsampled'),
      traceparent: `00-${unsampled}-2222222222222222-00` }, gw.port)).status, 200);
    const om = await curl(['-H', 'Accept: application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5',
      `http://127.0.0.1:${gw.adminPort}/metrics`]);
    assert.equal(om.status, 200);
    assert.match(om.headers['content-type'][0], /^application\/openmetrics-text; version=1\.0\.0/);
    assert.ok(om.body.endsWith('# EOF\n'));
    assert.match(om.body, new RegExp(`gatehouse_request_duration_seconds_bucket\\{route="plain",le="[^"]+"\\} \\d+ # \\{trace_id="${traceId}"\\} [0-9.e-]+ [0-9.]+\n`));
    assert.doesNotMatch(om.body, new RegExp(unsampled));
    // Without the Accept: the Prometheus text format, without exemplars.
    const text = await curl([`http://127.0.0.1:${gw.adminPort}/metrics`]);
    assert.match(text.headers['content-type'][0], /^text\/plain; version=0\.0\.4/);
    assert.doesNotMatch(text.body, /trace_id/);

    prom = await startPrometheus(`127.0.0.1:${gw.adminPort}`);
    let stored = [];
    let scrapeErrors = '';
    await waitFor(async () => {
      const targets = (await prom.api('/api/v1/targets')).data?.activeTargets || [];
      scrapeErrors = targets.map((t) => t.lastError).join('; ');
      if (!targets.length || targets.some((t) => t.health !== 'up')) return false;
      const now = Date.now() / 1000;
      const r = await prom.api(`/api/v1/query_exemplars?query=gatehouse_request_duration_seconds_bucket&start=${now - 3600}&end=${now + 60}`);
      stored = (r.data || []).flatMap((series) => series.exemplars.map((e) => ({ series: series.seriesLabels, ...e })));
      return stored.length > 0;
    }, 15000, 'Prometheus to store the exemplar').catch((e) => {
      throw new Error(`${e.message} (the scrape's last error: ${scrapeErrors || 'none'})`);
    });
    assert.equal(stored.length, 1, JSON.stringify(stored));
    assert.equal(stored[0].labels.trace_id, traceId, 'the exemplar Prometheus stored is the sampled request\'s trace');
    assert.equal(stored[0].series.route, 'plain');
  } finally {
    await prom?.stop();
    await gw.stop();
  }
});
