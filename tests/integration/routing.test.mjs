// Routing: host, path (exact, prefix, template, regex), methods (405 + Allow), headers, query,
// precedence, rewrites, weighted splits, BFF routing by header, load balancing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatehouse, curl, curlHeaderOfEach, json } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const ups = {};
let gh;
before(async () => {
  for (const n of ['a', 'b', 'c', 'v1', 'v2', 'mobile', 'web', 'h1', 'h2', 'h3', 'r1', 'r2', 'r3']) {
    ups[n] = await startUpstream({ name: n });
  }
  const t = (n) => `{ address: 127.0.0.1:${ups[n].port} }`;
  // One worker: split and round-robin sequences are then exact.
  gh = await startGatehouse(`
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
upstreams:
  a: { targets: [ ${t('a')} ] }
  b: { targets: [ ${t('b')} ] }
  c: { targets: [ ${t('c')} ] }
  v1: { targets: [ ${t('v1')} ] }
  v2: { targets: [ ${t('v2')} ] }
  mobile: { targets: [ ${t('mobile')} ] }
  web: { targets: [ ${t('web')} ] }
  hashed:
    targets: [ ${t('h1')}, ${t('h2')}, ${t('h3')} ]
    balance: consistent_hash
    hash_on: "header:x-user-id"
  rr:
    targets: [ ${t('r1')}, { address: 127.0.0.1:${ups.r2.port}, weight: 2 }, ${t('r3')} ]
    balance: round_robin
routes:
  - name: catch-all
    match: { path: /* }
    to: c
  - name: regex-orders
    match: { path_regex: "^/orders/(?P<num>[0-9]+)$", methods: [POST] }
    rewrite: { path: "/echo/order/{num}" }
    to: a
  - name: prefix-api
    match: { path: /api/* }
    rewrite: { strip_prefix: /api }
    to: a
  - name: longer-prefix
    match: { path: /api/special/* }
    to: b
  - name: exact
    match: { path: /api/exact }
    to: b
  - name: template
    match: { path: "/items/{id}/parts/{part}", methods: [GET, HEAD] }
    rewrite: { path: "/echo/part/{part}/of/{id}" }
    to: a
  - name: items-delete
    match: { path: "/items/{id}/parts/{part}", methods: [DELETE] }
    to: a
  - name: host-exact
    match: { host: api.example.com, path: /* }
    to: a
  - name: host-wild
    match: { host: "*.example.org", path: /* }
    rewrite: { host: backend.internal }
    to: b
  - name: replace
    match: { path: /old/* }
    rewrite: { replace_prefix: { from: /old, to: /echo/new } }
    to: a
  - name: bff-mobile
    match: { path: /bff/*, headers: { x-client: mobile } }
    to: mobile
  - name: bff-web
    match: { path: /bff/* }
    to: web
  - name: header-regex
    match: { path: /hdr/*, headers: { x-version: { regex: "v[23]" } } }
    to: b
  - name: header-absent
    match: { path: /hdr/*, headers: { x-debug: { present: false } } }
    to: a
  - name: query
    match: { path: /q/*, query: { flag: "on" } }
    to: b
  - name: canary
    match: { path: /canary/* }
    to: [ { upstream: v2, weight: 1 }, { upstream: v1, weight: 3 } ]
  - name: hashed
    match: { path: /hash/* }
    to: hashed
  - name: rr
    match: { path: /rr/* }
    to: rr
`);
});
after(async () => { await gh.stop(); for (const u of Object.values(ups)) await u.close(); });

const upstreamOf = (r) => r.headers['x-upstream']?.[0];

test('prefix route with strip_prefix', async () => {
  const r = await curl([gh.url('/api/echo/1?z=2')]);
  assert.equal(upstreamOf(r), 'a');
  assert.equal(json(r).url, '/echo/1?z=2');
});

test('precedence: exact beats prefix, longer prefix beats shorter, whatever the file order', async () => {
  assert.equal(upstreamOf(await curl([gh.url('/api/exact')])), 'b');
  assert.equal(upstreamOf(await curl([gh.url('/api/special/x')])), 'b');
  assert.equal(upstreamOf(await curl([gh.url('/api/other')])), 'a');
  assert.equal(upstreamOf(await curl([gh.url('/elsewhere')])), 'c', 'the catch-all takes the rest');
});

test('prefix /api/* also takes /api itself but not /apix', async () => {
  assert.equal(upstreamOf(await curl([gh.url('/api')])), 'a');
  assert.equal(upstreamOf(await curl([gh.url('/apix')])), 'c');
});

test('template captures feed a path rewrite', async () => {
  const r = await curl([gh.url('/items/42/parts/wheel')]);
  assert.equal(json(r).url, '/echo/part/wheel/of/42');
});

test('regex route with a named capture; methods enforced', async () => {
  const r = await curl(['-X', 'POST', gh.url('/orders/77')]);
  assert.equal(upstreamOf(r), 'a');
  assert.equal(json(r).url, '/echo/order/77');
  // Not a POST: the regex route does not apply; the catch-all takes it.
  assert.equal(upstreamOf(await curl([gh.url('/orders/77')])), 'c');
});

test('host: exact and wildcard (port ignored, case-insensitive), with host rewrite', async () => {
  assert.equal(upstreamOf(await curl(['-H', 'Host: API.Example.com:8080', gh.url('/x')])), 'a');
  const w = await curl(['-H', 'Host: shop.example.org', gh.url('/echo')]);
  assert.equal(upstreamOf(w), 'b');
  assert.ok(json(w).headers.includes('backend.internal'), 'Host rewritten');
  assert.equal(upstreamOf(await curl(['-H', 'Host: example.org', gh.url('/x')])), 'c', 'wildcard needs a subdomain');
});

test('replace_prefix rewrite', async () => {
  assert.equal(json(await curl([gh.url('/old/thing')])).url, '/echo/new/thing');
});

test('BFF: a header sends a client type to its own backend', async () => {
  assert.equal(upstreamOf(await curl(['-H', 'x-client: mobile', gh.url('/bff/home')])), 'mobile');
  assert.equal(upstreamOf(await curl([gh.url('/bff/home')])), 'web');
});

test('header regex and absence; query match', async () => {
  assert.equal(upstreamOf(await curl(['-H', 'x-version: v3', gh.url('/hdr/x')])), 'b');
  assert.equal(upstreamOf(await curl(['-H', 'x-version: v1', gh.url('/hdr/x')])), 'a');
  assert.equal(upstreamOf(await curl(['-H', 'x-version: v1', '-H', 'x-debug: 1', gh.url('/hdr/x')])), 'c');
  assert.equal(upstreamOf(await curl([gh.url('/q/x?a=1&flag=on')])), 'b');
  assert.equal(upstreamOf(await curl([gh.url('/q/x?flag=off')])), 'c');
});

function tally(names) {
  return names.reduce((m, n) => ({ ...m, [n]: (m[n] || 0) + 1 }), {});
}

test('weighted split: 1:3 divides 400 requests exactly 100/300 on one worker', async () => {
  const names = [];
  for (let i = 0; i < 4; i++) {
    names.push(...await curlHeaderOfEach(Array.from({ length: 100 }, () => gh.url('/canary/echo')), 'x-upstream'));
  }
  assert.deepEqual(tally(names), { v1: 300, v2: 100 });
});

test('round robin honours weights (1:2:1)', async () => {
  const names = await curlHeaderOfEach(Array.from({ length: 40 }, () => gh.url('/rr/echo')), 'x-upstream');
  assert.deepEqual(tally(names), { r1: 10, r2: 20, r3: 10 });
});

test('consistent hash on a header: the same user always lands on the same target', async () => {
  const seen = new Map();
  for (let u = 0; u < 30; u++) {
    const targets = new Set();
    for (let k = 0; k < 3; k++) {
      targets.add(upstreamOf(await curl(['-H', `x-user-id: user-${u}`, gh.url('/hash/echo')])));
    }
    assert.equal(targets.size, 1, `user-${u} went to ${[...targets]}`);
    seen.set(u, [...targets][0]);
  }
  assert.ok(new Set(seen.values()).size >= 2, 'keys spread over more than one target');
});
