// The response cache end to end (RFC 9111 as a shared cache, RFC 9110 conditional requests, RFC
// 5861, RFC 9211): a test-controlled origin says what each path answers and counts what reaches
// it, so every test can tell a hit (no upstream request) from a miss.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGatehouse, curl, httpGet, waitFor } from './harness.mjs';

// path -> (req, res, n) where n counts that path's requests (from 1)
const handlers = new Map();
const seen = new Map();  // path -> requests that reached the origin (with their headers)
let origin, gh;
let lone;  // an origin of its own, for stopping

function answer(status, headers, body = '') {
  return (req, res) => {
    res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
function hits(path) { return (seen.get(path) || []).length; }
function lastSeen(path) { const s = seen.get(path) || []; return s[s.length - 1]; }
// The one Cache-Status field (a second one would be a bug).
function cacheStatus(r) {
  const v = r.headers['cache-status'] || [''];
  assert.equal(v.length, 1, `one Cache-Status field: ${v}`);
  return v[0];
}

before(async () => {
  origin = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const list = seen.get(path) || [];
    list.push({ method: req.method, headers: req.headers, url: req.url });
    seen.set(path, list);
    const h = handlers.get(path);
    if (!h) { res.writeHead(404, { 'content-length': 0 }); res.end(); return; }
    req.resume();
    req.on('end', () => h(req, res, list.length));
  });
  // Idle connections are kept past any test's length (as startUpstream() does): with node's
  // default of 5 s the origin may close one just as the gateway reuses it, and the gateway's safe
  // retry of the GET then reaches the origin twice, which a test counting its requests would read
  // as a second miss or refresh.
  origin.keepAliveTimeout = 30000;
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  const port = origin.address().port;
  lone = http.createServer((req, res) => answer(200, { 'cache-control': 'max-age=1, stale-if-error=60' }, 'from the lone origin')(req, res));
  await new Promise((r) => lone.listen(0, '127.0.0.1', r));
  gh = await startGatehouse(`
server:
  listen: [ { address: 127.0.0.1:0 } ]
cache: { max_size: 16MiB, max_object_size: 64KiB }
upstreams:
  o: { targets: [ { address: 127.0.0.1:${port} } ] }
  lone: { targets: [ { address: 127.0.0.1:${lone.address().port} } ] }
  fragile:
    targets: [ { address: 127.0.0.1:${port} } ]
    circuit_breaker: { consecutive_failures: 1, open_for: 30s }
routes:
  - { name: fragile, match: { path: /fragile/* }, to: fragile, plugins: { cache: {} } }
  - { name: lone, match: { path: /lone/* }, to: lone, plugins: { cache: {} } }
  - { name: ttl, match: { path: /ttl/* }, to: o, plugins: { cache: { ttl: 60s } } }
  - { name: override, match: { path: /override/* }, to: o, plugins: { cache: { ttl: 60s, override: true } } }
  - { name: cookies, match: { path: /cookies/* }, to: o, plugins: { cache: { share_set_cookie: true } } }
  - { name: keyed, match: { path: /keyed/* }, to: o, plugins: { cache: { key: [header:x-tenant] } } }
  - { name: quick, match: { path: /quick/* }, to: o, plugins: { cache: { coalesce_timeout: 200ms } } }
  - { name: alone, match: { path: /alone/* }, to: o, plugins: { cache: { coalesce: false } } }
  - { name: c, match: { path: /* }, to: o, plugins: { cache: {} } }
`);
});
after(async () => {
  await gh?.stop();
  origin?.close();
  if (lone?.listening) lone.close();  // a test stops it; a run that skips that test must too
});
beforeEach(() => { handlers.clear(); });

let unique = 0;
const fresh = (name) => `/${name}-${++unique}`;

test('a fresh stored response is served without reaching the origin, with Age and Cache-Status', async () => {
  const p = fresh('hit');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', etag: '"a"' }, 'hello'));
  const first = await curl([gh.url(p)]);
  assert.equal(first.status, 200);
  assert.equal(first.body, 'hello');
  assert.match(cacheStatus(first), /^gatehouse; fwd=uri-miss; fwd-status=200; ttl=(60|59); stored$/);
  const second = await curl([gh.url(p)]);
  assert.equal(second.status, 200);
  assert.equal(second.body, 'hello');
  assert.equal(second.headers['content-type'][0], 'text/plain');
  assert.equal(second.headers.etag[0], '"a"');
  assert.equal(second.headers['content-length'][0], '5');
  assert.match(second.headers.age[0], /^\d+$/);
  assert.match(cacheStatus(second), /^gatehouse; hit; ttl=(60|59)$/);
  assert.equal(hits(p), 1, 'the hit reached no origin');
  assert.ok(second.headers['x-request-id'], 'a hit has its own request id');
});

test('Age counts the origin\'s Age and the time in the cache (RFC 9111 4.2.3)', async () => {
  const p = fresh('age');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=600', age: '100' }, 'x'));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p)]);
  assert.ok(Number(r.headers.age[0]) >= 100, r.headers.age[0]);
  assert.match(cacheStatus(r), /hit; ttl=(500|499)/);
});

test('what a shared cache must not store is not stored', async () => {
  const cases = [
    ['no-store', { 'cache-control': 'no-store, max-age=60' }, 'no-store'],
    ['private', { 'cache-control': 'private, max-age=60' }, 'private'],
    ['qualified-private', { 'cache-control': 'private="set-cookie", max-age=60' }, 'private'],
    ['no-freshness', {}, 'no-freshness'],
    ['set-cookie', { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, 'set-cookie'],
    ['vary-star', { 'cache-control': 'max-age=60', vary: '*' }, 'vary-star'],
  ];
  for (const [name, headers, detail] of cases) {
    const p = fresh(name);
    handlers.set(p, answer(200, headers, name));
    const first = await curl([gh.url(p)]);
    assert.match(cacheStatus(first), new RegExp(`fwd=uri-miss; fwd-status=200; detail=${detail}$`), name);
    const second = await curl([gh.url(p)]);
    assert.equal(second.body, name);
    assert.equal(hits(p), 2, `${name}: not stored, both reached the origin`);
  }
});

test('any final status with explicit freshness is stored (a 404, a 301, a 500); a 206 is not', async () => {
  for (const [status, stored] of [[404, true], [301, true], [500, true], [206, false]]) {
    const p = fresh(`status${status}`);
    handlers.set(p, answer(status, { 'cache-control': 'max-age=60', location: '/x' }, `s${status}`));
    await curl([gh.url(p)]);
    const second = await curl([gh.url(p)]);
    assert.equal(second.status, status);
    assert.equal(hits(p), stored ? 1 : 2, `status ${status}`);
  }
});

test('heuristic freshness only with Last-Modified, and only for heuristically cacheable statuses', async () => {
  const old = new Date(Date.now() - 1000 * 1000).toUTCString();
  const p = fresh('heuristic');
  handlers.set(p, answer(200, { 'last-modified': old, date: new Date().toUTCString() }, 'h'));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p)]);
  assert.equal(hits(p), 1);
  // 10% of 1000 s
  assert.match(cacheStatus(r), /hit; ttl=(100|99|98)$/);
  const q = fresh('heuristic-201');
  handlers.set(q, answer(201, { 'last-modified': old }, 'h'));
  await curl([gh.url(q)]);
  await curl([gh.url(q)]);
  assert.equal(hits(q), 2, 'a 201 is not heuristically cacheable');
});

test('s-maxage wins over max-age, max-age over Expires', async () => {
  const p = fresh('smaxage');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=10, s-maxage=300' }, 's'));
  await curl([gh.url(p)]);
  assert.match(cacheStatus(await curl([gh.url(p)])), /ttl=(300|299)$/);
  const q = fresh('expires');
  const now = Date.now();
  handlers.set(q, answer(200, { 'cache-control': 'max-age=20', date: new Date(now).toUTCString(), expires: new Date(now + 500e3).toUTCString() }, 'e'));
  await curl([gh.url(q)]);
  assert.match(cacheStatus(await curl([gh.url(q)])), /ttl=(20|19)$/);
  const e = fresh('expires-only');
  handlers.set(e, answer(200, { date: new Date(now).toUTCString(), expires: new Date(now + 500e3).toUTCString() }, 'e'));
  await curl([gh.url(e)]);
  assert.match(cacheStatus(await curl([gh.url(e)])), /hit; ttl=(500|499|498)$/);
  const bad = fresh('expires-invalid');
  handlers.set(bad, answer(200, { expires: '0' }, 'e'));
  await curl([gh.url(bad)]);
  await curl([gh.url(bad)]);
  assert.equal(hits(bad), 2, 'an invalid Expires is already expired');
});

test('the route ttl applies to responses without freshness; override makes it win', async () => {
  const p = '/ttl/a';
  handlers.set(p, answer(200, {}, 'no freshness of its own'));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p)]);
  assert.equal(hits(p), 1);
  assert.match(cacheStatus(r), /hit; ttl=(60|59)$/);
  const q = '/ttl/b';
  handlers.set(q, answer(200, { 'cache-control': 'max-age=0' }, 'origin says stale'));
  await curl([gh.url(q)]);
  await curl([gh.url(q)]);
  assert.equal(hits(q), 2, 'without override the origin\'s max-age=0 wins');
  const o = '/override/c';
  handlers.set(o, answer(200, { 'cache-control': 'max-age=0' }, 'overridden'));
  await curl([gh.url(o)]);
  const ro = await curl([gh.url(o)]);
  assert.equal(hits(o), 1);
  assert.match(cacheStatus(ro), /hit; ttl=(60|59)$/);
  const ns = '/override/nostore';
  handlers.set(ns, answer(200, { 'cache-control': 'no-store' }, 'never'));
  await curl([gh.url(ns)]);
  await curl([gh.url(ns)]);
  assert.equal(hits(ns), 2, 'override gives freshness; it never stores what must not be stored');
});

test('Set-Cookie responses are shared only on a route that says so', async () => {
  const p = '/cookies/a';
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, 'c'));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p)]);
  assert.equal(hits(p), 1);
  assert.equal(r.headers['set-cookie'][0], 'a=b');
});

test('requests with Authorization use stored responses only when the response allows it (RFC 9111 3.5)', async () => {
  const p = fresh('auth-plain');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60' }, 'for anyone'));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p), '-H', 'Authorization: Bearer x']);
  assert.equal(hits(p), 2, 'not served to an authorized request');
  assert.match(cacheStatus(r), /detail=authorization$/);
  const q = fresh('auth-public');
  handlers.set(q, answer(200, { 'cache-control': 'public, max-age=60' }, 'public'));
  await curl([gh.url(q), '-H', 'Authorization: Bearer x']);
  const rq = await curl([gh.url(q), '-H', 'Authorization: Bearer y']);
  assert.equal(hits(q), 1, 'public: stored from and served to authorized requests');
  assert.match(cacheStatus(rq), /hit/);
});

test('Vary: each set of the named request fields is its own stored variant', async () => {
  const p = fresh('vary');
  handlers.set(p, (req, res) => answer(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' },
    `lang=${req.headers['accept-language']}`)(req, res));
  const en = await curl([gh.url(p), '-H', 'Accept-Language: en']);
  const fr = await curl([gh.url(p), '-H', 'Accept-Language: fr']);
  assert.equal(en.body, 'lang=en');
  assert.equal(fr.body, 'lang=fr');
  assert.match(cacheStatus(fr), /fwd=vary-miss/);
  const en2 = await curl([gh.url(p), '-H', 'Accept-Language:   en  ']);
  const fr2 = await curl([gh.url(p), '-H', 'Accept-Language: fr']);
  assert.equal(en2.body, 'lang=en');
  assert.equal(fr2.body, 'lang=fr');
  assert.match(cacheStatus(en2), /hit/);
  assert.equal(hits(p), 2, 'two variants, two origin requests');
});

test('configured key extras: a header splits the key', async () => {
  const p = '/keyed/a';
  handlers.set(p, (req, res) => answer(200, { 'cache-control': 'max-age=60' }, `t=${req.headers['x-tenant']}`)(req, res));
  assert.equal((await curl([gh.url(p), '-H', 'X-Tenant: one'])).body, 't=one');
  assert.equal((await curl([gh.url(p), '-H', 'X-Tenant: two'])).body, 't=two');
  assert.equal((await curl([gh.url(p), '-H', 'X-Tenant: one'])).body, 't=one');
  assert.equal(hits(p), 2);
});

test('HEAD is answered from a stored GET, with the GET\'s length', async () => {
  const p = fresh('head');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60' }, 'twelve bytes'));
  await curl([gh.url(p)]);
  const r = await curl(['-I', '-o', '/dev/null', gh.url(p)]);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'][0], '12');
  assert.equal(r.body, '');
  assert.match(cacheStatus(r), /hit/);
  assert.equal(hits(p), 1);
});

test('the client\'s own conditional requests are answered 304 from a fresh entry', async () => {
  const lm = new Date(Date.now() - 3600e3).toUTCString();
  const p = fresh('cond');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': lm }, 'body'));
  await curl([gh.url(p)]);
  const inm = await curl([gh.url(p), '-H', 'If-None-Match: "x", W/"v1"']);
  assert.equal(inm.status, 304, 'weak comparison');
  assert.equal(inm.body, '');
  assert.equal(inm.headers.etag[0], '"v1"');
  assert.equal(inm.headers['content-length'], undefined);
  const other = await curl([gh.url(p), '-H', 'If-None-Match: "v2"']);
  assert.equal(other.status, 200);
  assert.equal(other.body, 'body');
  const ims = await curl([gh.url(p), '-H', `If-Modified-Since: ${new Date().toUTCString()}`]);
  assert.equal(ims.status, 304);
  const ignored = await curl([gh.url(p), '-H', 'If-None-Match: "v2"', '-H', `If-Modified-Since: ${new Date().toUTCString()}`]);
  assert.equal(ignored.status, 200, 'If-None-Match decides alone');
  assert.equal(hits(p), 1);
});

test('a stale entry is revalidated; a 304 refreshes it and updates its stored fields', async () => {
  const p = fresh('reval');
  handlers.set(p, (req, res, n) => {
    if (n === 1) return answer(200, { 'cache-control': 'max-age=1', etag: '"e1"', 'x-version': 'one' }, 'stored body')(req, res);
    if (req.headers['if-none-match'] === '"e1"')
      return answer(304, { 'cache-control': 'max-age=60', etag: '"e1"', 'x-version': 'two' })(req, res);
    return answer(200, { 'cache-control': 'max-age=60' }, 'full again')(req, res);
  });
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));  // max-age=1 runs out (whole seconds)
  const r = await curl([gh.url(p), '-H', 'If-None-Match: "client-own"']);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'stored body');
  assert.equal(r.headers['x-version'][0], 'two', 'the 304\'s fields replace the stored ones');
  assert.match(cacheStatus(r), /fwd=stale; fwd-status=304; ttl=(60|59)$/);
  assert.equal(lastSeen(p).headers['if-none-match'], '"e1"', 'the cache\'s validator, not the client\'s');
  const again = await curl([gh.url(p)]);
  assert.match(cacheStatus(again), /hit; ttl=(60|59)$/);
  assert.equal(again.headers['x-version'][0], 'two');
  assert.equal(hits(p), 2);
});

test('a 304 whose Vary names other fields re-keys the entry by them (RFC 9111 4.1, 4.3.4)', async () => {
  // Stored with Vary: Accept-Language (or with no Vary), always validated (no-cache); the 304
  // says Vary: Accept-Encoding. The freshened response may then serve only requests whose
  // Accept-Encoding matches the one that was validated, whatever their language.
  for (const before of ['Accept-Language', null]) {
    const p = fresh('vary-change');
    handlers.set(p, (req, res, n) => {
      if (n === 1) {
        const headers = { 'cache-control': 'no-cache', etag: '"v1"' };
        if (before) headers.vary = before;
        return answer(200, headers, 'first')(req, res);
      }
      if (req.headers['if-none-match'] === '"v1"')
        return answer(304, { 'cache-control': 'max-age=60', etag: '"v1"', vary: 'Accept-Encoding' })(req, res);
      return answer(200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }, `for ${req.headers['accept-encoding']}`)(req, res);
    });
    const get = (...h) => curl([gh.url(p), ...h.flatMap((x) => ['-H', x])]);
    await get('Accept-Language: en', 'Accept-Encoding: gzip');
    const validated = await get('Accept-Language: en', 'Accept-Encoding: gzip');
    assert.equal(validated.body, 'first', `${before}: the stored body, freshened`);
    assert.match(cacheStatus(validated), /fwd-status=304/);
    const br = await get('Accept-Language: en', 'Accept-Encoding: br');
    assert.equal(br.body, 'for br', `${before}: another Accept-Encoding is not given the gzip variant`);
    assert.match(cacheStatus(br), /fwd=(vary|uri)-miss/);
    const fr = await get('Accept-Language: fr', 'Accept-Encoding: gzip');
    assert.equal(fr.body, 'first', `${before}: the language no longer selects`);
    assert.match(cacheStatus(fr), /hit/);
    assert.equal(hits(p), 3, `${before}: stored, validated, the br variant`);
  }
});

test('a revalidation answered 200 replaces the entry', async () => {
  const p = fresh('replace');
  handlers.set(p, (req, res, n) => answer(200, { 'cache-control': n === 1 ? 'max-age=1' : 'max-age=60', etag: `"e${n}"` }, `v${n}`)(req, res));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  const r = await curl([gh.url(p)]);
  assert.equal(r.body, 'v2');
  assert.match(cacheStatus(r), /fwd=stale; fwd-status=200; ttl=(60|59); stored$/);
  assert.equal((await curl([gh.url(p)])).body, 'v2');
  assert.equal(hits(p), 2);
});

test('no-cache responses are stored and validated on every use', async () => {
  const p = fresh('nocache');
  handlers.set(p, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'no-cache, max-age=60', etag: '"n"' }, 'nc')
    : answer(304, { etag: '"n"' }))(req, res));
  await curl([gh.url(p)]);
  const r = await curl([gh.url(p)]);
  assert.equal(r.body, 'nc');
  assert.match(cacheStatus(r), /fwd-status=304/);
  assert.equal(hits(p), 2);
});

test('request directives: no-cache and max-age=0 revalidate, max-stale accepts stale, min-fresh asks for more', async () => {
  const p = fresh('reqdir');
  handlers.set(p, (req, res) => (req.headers['if-none-match']
    ? answer(304, { 'cache-control': 'max-age=30', etag: '"r"' })
    : answer(200, { 'cache-control': 'max-age=30', etag: '"r"' }, 'rd'))(req, res));
  await curl([gh.url(p)]);
  const nc = await curl([gh.url(p), '-H', 'Cache-Control: no-cache']);
  assert.match(cacheStatus(nc), /fwd=request; fwd-status=304/);
  await new Promise((r) => setTimeout(r, 1100));  // max-age=0 accepts an age of 0 s
  const ma = await curl([gh.url(p), '-H', 'Cache-Control: max-age=0']);
  assert.match(cacheStatus(ma), /fwd=request; fwd-status=304/);
  const mf = await curl([gh.url(p), '-H', 'Cache-Control: min-fresh=100']);
  assert.match(cacheStatus(mf), /fwd=request/);
  const ok = await curl([gh.url(p), '-H', 'Cache-Control: min-fresh=5']);
  assert.match(cacheStatus(ok), /hit/);
  assert.equal(hits(p), 4);

  const s = fresh('maxstale');
  handlers.set(s, answer(200, { 'cache-control': 'max-age=1' }, 'ms'));
  await curl([gh.url(s)]);
  await new Promise((r) => setTimeout(r, 2100));
  const stale = await curl([gh.url(s), '-H', 'Cache-Control: max-stale=60']);
  assert.equal(stale.body, 'ms');
  assert.match(cacheStatus(stale), /hit; ttl=-\d+$/);
  assert.equal(hits(s), 1);
});

test('only-if-cached: 504 when nothing stored can answer', async () => {
  const p = fresh('oic');
  const r = await curl([gh.url(p), '-H', 'Cache-Control: only-if-cached']);
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.body).error, 'not_cached');
  assert.equal(hits(p), 0);
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60' }, 'now stored'));
  await curl([gh.url(p)]);
  const again = await curl([gh.url(p), '-H', 'Cache-Control: only-if-cached']);
  assert.equal(again.status, 200);
  assert.equal(again.body, 'now stored');
});

test('stale-if-error: a stale entry answers when the origin fails', async () => {
  const p = fresh('sie');
  handlers.set(p, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'max-age=1, stale-if-error=60', etag: '"s"' }, 'still good')
    : answer(503, {}, 'origin broken'))(req, res));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  const r = await curl([gh.url(p)]);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'still good');
  assert.match(cacheStatus(r), /fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error$/);
  const q = fresh('no-sie');
  handlers.set(q, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'max-age=1' }, 'gone stale')
    : answer(503, {}, 'origin broken'))(req, res));
  await curl([gh.url(q)]);
  await new Promise((r) => setTimeout(r, 2100));
  const rq = await curl([gh.url(q)]);
  assert.equal(rq.status, 503, 'without stale-if-error the error goes through');
  const rr = await curl([gh.url(q), '-H', 'Cache-Control: stale-if-error=60']);
  assert.equal(rr.status, 200, 'the request may allow it too');
  assert.equal(rr.body, 'gone stale');
});

test('stale-if-error: a stale entry answers when the origin is down (connection refused)', async () => {
  const first = await curl([gh.url('/lone/a')]);
  assert.equal(first.body, 'from the lone origin');
  lone.closeAllConnections();
  await new Promise((r) => lone.close(r));
  await new Promise((r) => setTimeout(r, 2100));
  const r = await curl([gh.url('/lone/a')]);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'from the lone origin');
  assert.match(cacheStatus(r), /fwd=stale; fwd-status=502; ttl=-\d+; detail=stale-if-error$/);
  const miss = await curl([gh.url('/lone/never-stored')]);
  assert.equal(miss.status, 502, 'nothing stored: the gateway\'s own error');
  assert.match(cacheStatus(miss), /fwd=uri-miss$/);
});

test('stale-if-error: a stale entry answers while the upstream\'s circuit breaker is open', async () => {
  const p = '/fragile/x';
  handlers.set(p, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'max-age=1, stale-if-error=60' }, 'kept through the outage')
    : answer(500, {}, 'broken'))(req, res));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  const first = await curl([gh.url(p)]);
  assert.equal(first.body, 'kept through the outage');
  assert.match(cacheStatus(first), /fwd-status=500; ttl=-\d+; detail=stale-if-error$/);
  // The 500 opened the breaker: the gateway itself refuses (503), and the stale entry answers.
  const second = await curl([gh.url(p)]);
  assert.equal(second.status, 200);
  assert.equal(second.body, 'kept through the outage');
  assert.match(cacheStatus(second), /fwd-status=503; ttl=-\d+; detail=stale-if-error$/);
  assert.equal(hits(p), 2, 'the open breaker kept the request from the origin');
});

test('invalidation: a successful POST drops the stored target, and its Location', async () => {
  const p = fresh('inval');
  const other = fresh('inval-loc');
  handlers.set(p, (req, res) => (req.method === 'POST'
    ? answer(201, { location: other }, 'created')
    : answer(200, { 'cache-control': 'max-age=60' }, `get ${hits(p)}`))(req, res));
  handlers.set(other, answer(200, { 'cache-control': 'max-age=60' }, 'other'));
  await curl([gh.url(p)]);
  await curl([gh.url(other)]);
  assert.match(cacheStatus(await curl([gh.url(p)])), /hit/);
  const post = await curl([gh.url(p), '-X', 'POST', '-d', 'x']);
  assert.equal(post.status, 201);
  const after = await curl([gh.url(p)]);
  assert.match(cacheStatus(after), /fwd=uri-miss/);
  assert.match(cacheStatus(await curl([gh.url(other)])), /fwd=uri-miss/, 'same-origin Location invalidated');
  const q = fresh('inval-fail');
  handlers.set(q, (req, res) => (req.method === 'DELETE'
    ? answer(500, {}, 'no')
    : answer(200, { 'cache-control': 'max-age=60' }, 'kept'))(req, res));
  await curl([gh.url(q)]);
  await curl([gh.url(q), '-X', 'DELETE']);
  assert.match(cacheStatus(await curl([gh.url(q)])), /hit/, 'an error response invalidates nothing');
});

test('a chunked response is stored whole; one above max_object_size streams through unstored', async () => {
  const p = fresh('chunked');
  handlers.set(p, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.write('part one, ');
    setTimeout(() => res.end('part two'), 20);
  });
  const first = await curl([gh.url(p)]);
  assert.equal(first.headers['transfer-encoding'][0], 'chunked', 'the relay keeps the origin\'s framing');
  const r = await curl([gh.url(p)]);
  assert.equal(r.body, 'part one, part two');
  assert.equal(r.headers['content-length'][0], '18');
  assert.equal(hits(p), 1);

  const big = 'x'.repeat(100 * 1024);
  const q = fresh('big-cl');
  handlers.set(q, answer(200, { 'cache-control': 'max-age=60' }, big));
  const bq = await curl([gh.url(q)]);
  assert.equal(bq.body.length, big.length);
  assert.match(cacheStatus(bq), /detail=too-large/);
  await curl([gh.url(q)]);
  assert.equal(hits(q), 2);
  const c = fresh('big-chunked');
  handlers.set(c, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    for (let i = 0; i < 10; i++) res.write(big.slice(0, 10 * 1024));
    res.end();
  });
  assert.equal((await curl([gh.url(c)])).body.length, 100 * 1024);
  assert.equal((await curl([gh.url(c)])).body.length, 100 * 1024);
  assert.equal(hits(c), 2, 'a chunked body that outgrew the limit is not stored');
});

test('a body cut short is never stored', async () => {
  const p = fresh('cut');
  handlers.set(p, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 100 });
    res.write('only part');
    setTimeout(() => res.socket.destroy(), 20);
  });
  const r = await curl([gh.url(p)]);
  assert.notEqual(r.code, 0, 'the client sees the response cut');
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60' }, 'whole'));
  const again = await curl([gh.url(p)]);
  assert.equal(again.body, 'whole');
  assert.equal(hits(p), 2);
});

// Answers after `ms`, with the given headers; counts concurrent requests.
function slow(ms, headers, body) {
  return (req, res) => setTimeout(() => answer(200, headers, body)(req, res), ms);
}
const together = (n, path, headers) => Promise.all(Array.from({ length: n }, () => httpGet(gh.port, path, { headers })));

test('coalescing: 100 concurrent misses for one key make exactly one upstream request', async () => {
  const p = fresh('herd');
  handlers.set(p, slow(300, { 'cache-control': 'max-age=60' }, 'one answer for all'));
  const all = await together(100, p);
  assert.equal(hits(p), 1);
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.equal(r.body, 'one answer for all');
  }
  const collapsed = all.filter((r) => /collapsed/.test(r.headers['cache-status']));
  assert.equal(collapsed.length, 99, 'every request but the leader waited for its response');
  for (const r of collapsed) assert.match(r.headers['cache-status'], /^gatehouse; hit; ttl=\d+; collapsed$/);
});

test('coalescing: a response that turns out uncacheable releases the waiters at once', async () => {
  const p = fresh('herd-private');
  handlers.set(p, slow(200, { 'cache-control': 'private' }, 'for one'));
  const t0 = Date.now();
  const all = await together(10, p);
  // The waiters go upstream themselves as soon as the leader's head says "private", well
  // before the 5 s coalesce_timeout.
  assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
  assert.equal(hits(p), 10);
  for (const r of all) assert.equal(r.body, 'for one');
});

test('coalescing: a revalidation is coalesced too', async () => {
  const p = fresh('herd-reval');
  handlers.set(p, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'max-age=1', etag: '"h"' }, 'herd body')(req, res)
    : slow(200, { 'cache-control': 'max-age=60', etag: '"h"' }, 'herd body')(req, res)));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  const all = await together(20, p);
  assert.equal(hits(p), 2);
  for (const r of all) assert.equal(r.body, 'herd body');
});

test('coalescing: waiters stop waiting after coalesce_timeout and go upstream themselves', async () => {
  const p = '/quick/slow';
  handlers.set(p, slow(1000, { 'cache-control': 'max-age=60' }, 'slow'));
  const t0 = Date.now();
  const all = await together(3, p);
  assert.equal(hits(p), 3);
  assert.ok(Date.now() - t0 < 2000);
  const timedOut = all.filter((r) => /detail=coalesce-timeout/.test(r.headers['cache-status']));
  assert.equal(timedOut.length, 2);
});

test('coalescing off: each concurrent miss goes upstream', async () => {
  const p = '/alone/a';
  handlers.set(p, slow(200, { 'cache-control': 'max-age=60' }, 'alone'));
  await together(5, p);
  assert.equal(hits(p), 5);
});

// A GET whose body is watched as it comes: `first` settles with the first body bytes, `done`
// when the response ends or breaks off (complete: whether all its Content-Length came).
function streamGet(path, headers = {}) {
  let first;
  const firstBytes = new Promise((r) => { first = r; });
  const done = new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: gh.port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d) => { body += d; first(); });
      res.on('error', () => {});
      res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, body, complete: res.complete }));
    });
    req.on('error', () => resolve({ status: 0, body: '', complete: false }));
  });
  return { firstBytes, done };
}

// n streaming clients on `p` while the origin holds its first response part-sent: start(res)
// sends the head and the first part, finish(res) the rest once the test calls release(); a later
// request gets later(req, res). Resolves once every client has bytes of the body.
async function holdHerd(p, n, start, finish, later) {
  let release;
  const released = new Promise((r) => { release = r; });
  handlers.set(p, (req, res, k) => {
    if (k > 1 && later) return later(req, res);
    start(res);
    released.then(() => finish(res));
  });
  const clients = Array.from({ length: n }, () => streamGet(p));
  await Promise.all(clients.map((c) => c.firstBytes));
  return { release, done: () => Promise.all(clients.map((c) => c.done)) };
}

test('coalescing: the waiters are answered from the leader\'s response as it arrives, not when it ends', async () => {
  const p = fresh('herd-stream');
  const half = 'a'.repeat(30000), rest = 'b'.repeat(30000);
  const herd = await holdHerd(p, 5, (res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 60000 });
    res.write(half);
  }, (res) => res.end(rest));
  // Every client has bytes of the body while the origin still holds its second half: the
  // waiters were not made to wait for the whole response (nor sent upstream on their own).
  assert.equal(hits(p), 1);
  herd.release();
  const all = await herd.done();
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.ok(r.complete);
    assert.equal(r.body, half + rest);
    assert.equal(r.headers['content-length'], '60000');
  }
  const collapsed = all.filter((r) => /collapsed/.test(r.headers['cache-status']));
  assert.equal(collapsed.length, 4);
  for (const r of collapsed) assert.match(r.headers['cache-status'], /^gatehouse; hit; ttl=\d+; collapsed$/);
  const later = await curl([gh.url(p)]);
  assert.equal(later.body, half + rest, 'and it was stored whole');
  assert.match(cacheStatus(later), /^gatehouse; hit;/);
  assert.equal(hits(p), 1);
});

test('coalescing: when the leader\'s response breaks off, the waiters\' responses break off too', async () => {
  const p = fresh('herd-broken');
  const herd = await holdHerd(p, 4, (res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 60000 });
    res.write('x'.repeat(20000));
  }, (res) => res.destroy(), answer(200, { 'cache-control': 'max-age=60' }, 'whole'));
  assert.equal(hits(p), 1);
  herd.release();
  const all = await herd.done();
  for (const r of all) {
    assert.equal(r.complete, false, 'no client takes a part for the whole');
    assert.ok(r.body.length < 60000);
  }
  const next = await curl([gh.url(p)]);
  assert.equal(next.body, 'whole', 'nothing of the broken response was stored');
  assert.equal(hits(p), 2);
});

test('coalescing: a waiter whose Vary values differ from the leader\'s is not given its response', async () => {
  const p = fresh('herd-vary');
  handlers.set(p, (req, res) => slow(300, { 'cache-control': 'max-age=60', vary: 'accept-language' },
    `for ${req.headers['accept-language']}`)(req, res));
  const en = httpGet(gh.port, p, { headers: { 'accept-language': 'en' } });
  await waitFor(() => hits(p) === 1, 5000, 'the leader upstream');
  const [fr, en2] = [httpGet(gh.port, p, { headers: { 'accept-language': 'fr' } }),
    httpGet(gh.port, p, { headers: { 'accept-language': 'en' } })];
  const [a, b, c] = await Promise.all([en, fr, en2]);
  assert.equal(a.body, 'for en');
  assert.equal(c.body, 'for en', 'the same variant follows the leader');
  assert.match(c.headers['cache-status'], /collapsed/);
  assert.equal(b.body, 'for fr', 'another variant goes upstream itself');
  assert.equal(hits(p), 2);
});

test('stale-while-revalidate: the stale response is served at once, and one refresh goes in the background', async () => {
  const p = fresh('swr');
  handlers.set(p, (req, res, n) => {
    if (n === 1) return answer(200, { 'cache-control': 'max-age=1, stale-while-revalidate=30', etag: '"w1"' }, 'old')(req, res);
    // The refresh: slow, and conditional on the stored validator.
    setTimeout(() => answer(200, { 'cache-control': 'max-age=60', etag: '"w2"' }, `new (asked with ${req.headers['if-none-match']})`)(req, res), 300);
  });
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  const all = await together(10, p);
  for (const r of all) {
    assert.equal(r.body, 'old', 'served stale at once, not after the 300 ms refresh');
    assert.match(r.headers['cache-status'], /^gatehouse; hit; ttl=-\d+; detail=stale-while-revalidate$/);
  }
  await waitFor(async () => /^new/.test((await curl([gh.url(p)])).body), 3000, 'the refreshed entry');
  const r = await curl([gh.url(p)]);
  assert.equal(r.body, 'new (asked with "w1")');
  assert.match(cacheStatus(r), /hit; ttl=(60|59)$/);
  assert.equal(hits(p), 2, 'one refresh for ten stale requests');
});

test('stale-while-revalidate: a 304 to the refresh freshens the entry', async () => {
  const p = fresh('swr304');
  handlers.set(p, (req, res, n) => (n === 1
    ? answer(200, { 'cache-control': 'max-age=1, stale-while-revalidate=30', etag: '"s"' }, 'kept body')
    : answer(304, { 'cache-control': 'max-age=60', etag: '"s"' }))(req, res));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 2100));
  assert.match(cacheStatus(await curl([gh.url(p)])), /stale-while-revalidate/);
  await waitFor(async () => /hit; ttl=(60|59)$/.test(cacheStatus(await curl([gh.url(p)]))), 3000, 'freshened');
  assert.equal((await curl([gh.url(p)])).body, 'kept body');
  assert.equal(hits(p), 2);
});

test('stale-while-revalidate: the refresh of a varying response is stored under the client\'s variant', async () => {
  // The refresh outlives the client's request: it selects the variant by the fields it kept.
  const p = fresh('swrvary');
  handlers.set(p, (req, res, n) => answer(200, {
    'cache-control': n === 1 ? 'max-age=1, stale-while-revalidate=30' : 'max-age=60',
    vary: 'accept-language',
  }, `${n === 1 ? 'old' : 'new'} for ${req.headers['accept-language']}`)(req, res));
  const get = (lang) => curl(['-H', `accept-language: ${lang}`, gh.url(p)]);
  await get('fr');
  await new Promise((r) => setTimeout(r, 2100));
  const stale = await get('fr');
  assert.equal(stale.body, 'old for fr');
  assert.match(cacheStatus(stale), /detail=stale-while-revalidate$/);
  await waitFor(async () => (await get('fr')).body === 'new for fr', 3000, 'the refreshed fr variant');
  assert.match(cacheStatus(await get('fr')), /hit; ttl=(60|59)$/);
  assert.equal(hits(p), 2, 'one refresh');
  assert.equal((await get('de')).body, 'new for de', 'another language is not the fr variant');
  assert.equal(hits(p), 3);
});

test('stale-while-revalidate does not serve stale past its window, nor against must-revalidate', async () => {
  const p = fresh('swr-past');
  handlers.set(p, (req, res, n) => answer(200, { 'cache-control': 'max-age=1, stale-while-revalidate=1' }, `v${n}`)(req, res));
  await curl([gh.url(p)]);
  await new Promise((r) => setTimeout(r, 3100));
  const r = await curl([gh.url(p)]);
  assert.equal(r.body, 'v2', 'past max-age + stale-while-revalidate: fetched');
  const q = fresh('swr-mr');
  handlers.set(q, (req, res, n) => answer(200, { 'cache-control': 'max-age=1, stale-while-revalidate=30, must-revalidate' }, `v${n}`)(req, res));
  await curl([gh.url(q)]);
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal((await curl([gh.url(q)])).body, 'v2');
});

test('Range: a stored response answers one range (206), several (multipart/byteranges), or 416', async () => {
  const p = fresh('range');
  const body = '0123456789abcdefghij';  // 20 bytes
  handlers.set(p, answer(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', etag: '"r1"', 'last-modified': new Date(Date.now() - 3600e3).toUTCString() }, body));
  const full = await curl([gh.url(p)]);
  assert.equal(full.headers['accept-ranges'], undefined, 'the origin said nothing of ranges');
  const whole = await curl([gh.url(p)]);
  assert.equal(whole.headers['accept-ranges'][0], 'bytes', 'a stored response can be asked for ranges');

  const one = await curl([gh.url(p), '-H', 'Range: bytes=5-9']);
  assert.equal(one.status, 206);
  assert.equal(one.body, '56789');
  assert.equal(one.headers['content-range'][0], 'bytes 5-9/20');
  assert.equal(one.headers['content-length'][0], '5');
  assert.match(cacheStatus(one), /hit/);

  const suffix = await curl([gh.url(p), '-H', 'Range: bytes=-3']);
  assert.equal(suffix.body, 'hij');
  assert.equal(suffix.headers['content-range'][0], 'bytes 17-19/20');

  const many = await curl([gh.url(p), '-H', 'Range: bytes=0-1, 10-11']);
  assert.equal(many.status, 206);
  const type = many.headers['content-type'][0];
  const m = type.match(/^multipart\/byteranges; boundary=(\S+)$/);
  assert.ok(m, type);
  const b = m[1];
  assert.equal(many.body,
    `--${b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\r\n` +
    `--${b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-11/20\r\n\r\nab\r\n--${b}--\r\n`);

  const none = await curl([gh.url(p), '-H', 'Range: bytes=50-60']);
  assert.equal(none.status, 416);
  assert.equal(none.headers['content-range'][0], 'bytes */20');

  const malformed = await curl([gh.url(p), '-H', 'Range: bytes=x-y']);
  assert.equal(malformed.status, 200, 'a Range that cannot be read is ignored');
  assert.equal(malformed.body, body);

  const ifRange = await curl([gh.url(p), '-H', 'Range: bytes=0-3', '-H', 'If-Range: "r1"']);
  assert.equal(ifRange.status, 206);
  const stale = await curl([gh.url(p), '-H', 'Range: bytes=0-3', '-H', 'If-Range: "old"']);
  assert.equal(stale.status, 200, 'If-Range with another validator: the whole response');
  assert.equal(stale.body, body);

  const head = await curl(['-I', '-o', '/dev/null', gh.url(p), '-H', 'Range: bytes=0-3']);
  assert.equal(head.status, 200, 'Range is for GET only');
  assert.equal(hits(p), 1, 'every answer came from the one stored response');
});

test('Range on a miss goes to the origin as asked, and its 206 is not stored', async () => {
  const p = fresh('range-miss');
  handlers.set(p, (req, res) => (req.headers.range
    ? answer(206, { 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/4' }, 'ab')
    : answer(200, { 'cache-control': 'max-age=60' }, 'abcd'))(req, res));
  const r = await curl([gh.url(p), '-H', 'Range: bytes=0-1']);
  assert.equal(r.status, 206);
  assert.equal(lastSeen(p).headers.range, 'bytes=0-1');
  const full = await curl([gh.url(p)]);
  assert.equal(full.body, 'abcd');
  assert.equal(hits(p), 2);
  const cached = await curl([gh.url(p), '-H', 'Range: bytes=2-3']);
  assert.equal(cached.body, 'cd');
  assert.equal(hits(p), 2);
});
