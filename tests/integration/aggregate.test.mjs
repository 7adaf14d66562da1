// Aggregation (a route's `aggregate`): one client call, several upstream calls ("legs") made in
// parallel, one composed JSON answer, end to end through the real binary. The legs go to small
// node:http servers of this file that record every request they got (method, url as received,
// headers, when it came, when it was answered) and answer per path what each test set (status,
// JSON or text body, content-type, a delay, or a hold the test releases).
// - the product page: three legs' JSON composed into one object keyed by leg, content-type
//   application/json, no `errors` key; each leg got its path with the route's capture and the
//   client's query substituted and percent-encoded (a space in the id, a slash and `&`/`=` in a
//   query value), an absent query parameter as an empty value; every leg got the composite's
//   x-request-id (generated, or the client's own);
// - parallelism: three legs of 200 ms each answer in under 300 ms together, and all three
//   arrived before the first one answered;
// - dependencies: seller's path takes `seller_id` from product's JSON; seller starts only after
//   product answered, and while an unrelated slow leg is still out (not after all the others);
//   a chain a -> b -> c (dotted paths, a number and a bool substituted), declared in reverse order;
//   a slash in a value from a leg's JSON encoded as %2F in the dependent's path;
// - optional legs that fail: a leg timeout (null, errors.stock: 504 upstream_timeout, the composite
//   200 well before the slow upstream would answer; 206 with `partial_status: 206`, and 200 there
//   when nothing failed), a 503 (leg_status), a text/plain answer (not_json), a connect failure
//   (upstream_connect_failed); a `raw` leg's text (and JSON) embedded as a string;
// - required legs that fail: 503 -> 502 aggregate_leg_failed naming the leg, the route's timeout
//   and a leg's own timeout -> 504 aggregate_leg_timeout (on a new connection and on a pooled one,
//   the timed-out leg sent once, never replayed past the deadline), a closed port -> 502, a 404 -> 502
//   without pass_status, 404 with `pass_status: [404]` (aggregate_leg_status), a 503 not in it -> 502;
//   all in the gateway's JSON error format with the request id;
// - the dependents of a failed leg are never called: a required leg's (the composite fails) and
//   an optional leg's (null, dependency_failed);
// - headers to legs: no Authorization or Cookie by default, both to the one leg with
//   `credentials: true`; the `headers` allow-list; `add_headers`; traceparent; a `{header.NAME}`
//   template;
// - max_leg_bytes: a leg answer over it (with a length, or chunked) fails that leg (too_large):
//   optional -> null, required -> 502; one under it is embedded;
// - config errors through `gatehouse validate` (FILE:LINE:COL: yaml.path: message): a cycle of two
//   and of three legs (naming them), an unknown capture and an unknown leg in a template, an
//   unknown upstream, `to` with `aggregate`, 17 legs; the contract's example route and 16 legs
//   are valid;
// - the access log: one line for the composite (route product-page) and one per leg
//   (product-page.LEG) with the leg's own status;
// - HTTP/2 (h2c, curl --http2-prior-knowledge): the same composite answer as over HTTP/1.1.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { startGatehouse, runGatehouse, tempFile, httpGet, curl, waitFor, freePort, parseMetrics, sampleOf } from './harness.mjs';
import { within } from './grpc_client.mjs';

// --- the leg upstreams ---------------------------------------------------------------------------

// A gate a held answer waits on: open() releases it (the test's event, never a timer).
function gate() {
  let open;
  const promise = new Promise((r) => { open = r; });
  return { promise, open };
}

// A leg upstream. answer(path, spec) sets how requests for `path` (the raw path as received,
// before any `?`) are answered: { status (200), json, text, type, delay (ms), hold (a gate),
// chunked (no content-length) }; a function (record) -> spec; unset paths answer 200
// { leg: NAME, path }. requests: every request received, as records { method, url, path,
// headers (lower-case names), at, answeredAt, closed, answered } (times from performance.now()).
// mark() / since(mark): the requests received after a point. arrival(mark, pred): resolves the
// first record after `mark` (already received, or the next ones) that pred accepts.
async function startLegServer(name) {
  const up = { name, requests: [], answers: new Map(), events: new EventEmitter() };
  up.events.setMaxListeners(0);
  const server = http.createServer((req, res) => {
    const rec = {
      method: req.method, url: req.url, path: req.url.split('?')[0], headers: req.headers,
      at: performance.now(), answeredAt: null, closed: false, answered: false, body: '',
    };
    up.requests.push(rec);
    res.on('close', () => { rec.closed = true; up.events.emit('closed', rec); });
    req.setEncoding('utf8');
    req.on('data', (d) => { rec.body += d; });
    req.on('end', async () => {
      let spec = up.answers.get(rec.path) ?? { json: { leg: name, path: rec.path } };
      if (typeof spec === 'function') spec = spec(rec);
      up.events.emit('request', rec);
      if (spec.hold) await spec.hold.promise;
      if (spec.delay) {
        await new Promise((resolve) => {
          const t = setTimeout(resolve, spec.delay);
          res.on('close', () => { clearTimeout(t); resolve(); });
        });
      }
      if (rec.closed || res.destroyed) return;
      const body = Buffer.from(spec.json !== undefined ? JSON.stringify(spec.json) : (spec.text ?? ''));
      const type = spec.type ?? (spec.json !== undefined ? 'application/json' : 'text/plain');
      const headers = { 'content-type': type, 'x-leg': name, ...(spec.headers ?? {}) };
      rec.answeredAt = performance.now();
      rec.answered = true;
      if (spec.chunked) {
        res.writeHead(spec.status ?? 200, headers);
        for (let i = 0; i < body.length; i += 512) res.write(body.subarray(i, i + 512));
        res.end();
      } else {
        res.writeHead(spec.status ?? 200, { ...headers, 'content-length': body.length });
        res.end(body);
      }
    });
  });
  up.answer = (p, spec) => up.answers.set(p, spec);
  up.mark = () => up.requests.length;
  up.since = (mark) => up.requests.slice(mark);
  up.arrival = (mark, pred, ms = 5000) => within(new Promise((resolve) => {
    const found = up.requests.slice(mark).find(pred);
    if (found) return resolve(found);
    const on = (rec) => { if (pred(rec)) { up.events.off('request', on); resolve(rec); } };
    up.events.on('request', on);
    return undefined;
  }), ms, `a request to ${name} (${pred})`);
  up.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  up.port = server.address().port;
  return up;
}

// --- the gateway ---------------------------------------------------------------------------------

// A composite route: GET `path`, its aggregate settings (YAML lines, as `timeout: 800ms`) and its
// legs (YAML lines under `calls:`).
const composite = (name, path, legs, opts = ['timeout: 800ms']) => `
  - name: ${name}
    match: { path: "${path}", methods: [GET] }
    aggregate:
${opts.map((l) => `      ${l}\n`).join('')}      calls:
${legs.map((l) => `        ${l}\n`).join('')}`;

// The product page's legs (the contract's example).
const PRODUCT = 'product: { upstream: products, path: "/products/{id}" }';
const PAGE_LEGS = [
  PRODUCT,
  'reviews: { upstream: reviews, path: "/reviews?product={id}&lang={query.lang}", optional: true }',
  'stock:   { upstream: inventory, path: "/stock/{id}", optional: true, timeout: 300ms }',
];
const PRODUCT_PAGE = composite('product-page', '/api/product-page/{id}', PAGE_LEGS);

const ROUTES = [
  PRODUCT_PAGE,
  composite('product-seller', '/api/product-seller/{id}', [...PAGE_LEGS, 'seller:  { upstream: sellers, path: "/sellers/{product.seller_id}" }']),
  composite('parallel', '/api/parallel/{id}', [
    PRODUCT,
    'reviews: { upstream: reviews, path: "/reviews?product={id}" }',
    'stock:   { upstream: inventory, path: "/stock/{id}" }',
  ], ['timeout: 2s']),
  composite('partial', '/api/partial/{id}', [
    PRODUCT,
    'stock:   { upstream: inventory, path: "/stock/{id}", optional: true, timeout: 300ms }',
  ], ['timeout: 800ms', 'partial_status: 206']),
  composite('chain', '/api/chain/{id}', [
    'c: { upstream: inventory, path: "/chain/c/{b.deep.next}?n={b.n}&flag={a.flag}" }',
    'b: { upstream: reviews, path: "/chain/b/{a.next}" }',
    'a: { upstream: products, path: "/chain/a/{id}" }',
  ], ['timeout: 2s']),
  composite('raw-page', '/api/raw-page/{id}', [
    PRODUCT,
    'banner:  { upstream: reviews, path: "/banner/{id}", raw: true }',
  ]),
  composite('strict', '/api/strict/{id}', [
    'product: { upstream: products, path: "/products/{id}", timeout: 300ms, pass_status: [404] }',
    'stock:   { upstream: inventory, path: "/stock/{id}", optional: true }',
  ], ['timeout: 2s']),
  composite('dead-leg', '/api/dead/{id}', [
    PRODUCT,
    'offers:  { upstream: dead, path: "/offers/{id}" }',
  ], ['timeout: 2s']),
  composite('dead-optional', '/api/dead-optional/{id}', [
    PRODUCT,
    'offers:  { upstream: dead, path: "/offers/{id}", optional: true }',
  ], ['timeout: 2s']),
  composite('optional-dep', '/api/optional-dep/{id}', [
    PRODUCT,
    'reviews: { upstream: reviews, path: "/reviews?product={id}", optional: true }',
    'summary: { upstream: sellers, path: "/summary/{reviews.count}", optional: true }',
  ]),
  composite('headers-page', '/api/headers/{id}', [
    'plain: { upstream: products, path: "/h/plain/{id}" }',
    'creds: { upstream: reviews, path: "/h/creds/{id}", credentials: true }',
    'lang:',
    '  upstream: inventory',
    '  path: "/h/lang/{id}?tenant={header.x-tenant}"',
    '  headers: [accept-language]',
    '  add_headers: { x-leg-name: lang, x-api-version: "2" }',
  ]),
  composite('limits', '/api/limits/{id}', [
    PRODUCT,
    'big:     { upstream: reviews, path: "/big/{id}", optional: true }',
  ], ['timeout: 800ms', 'max_leg_bytes: 1KiB']),
].join('');

let products, reviews, inventory, sellers, gh, deadPort;
const gateways = [];
after(async () => {
  for (const g of gateways) await g.stop('SIGKILL');
  for (const up of [products, reviews, inventory, sellers]) if (up) await up.close();
});

// A gateway (one worker, HTTP/1.1 and h2c, the access log as JSON on stdout) with the four leg
// upstreams and `dead` (a closed port), serving `routes`.
async function gateway(routes, { server = '' } = {}) {
  const port = await freePort();
  const g = await startGatehouse(`server: { workers: 1, listen: [ { address: 127.0.0.1:${port}, protocols: [http1, h2c] } ]${server} }
observability: { access_log: { path: stdout, format: json } }
upstreams:
  products:  { targets: [ { address: 127.0.0.1:${products.port} } ] }
  reviews:   { targets: [ { address: 127.0.0.1:${reviews.port} } ] }
  inventory: { targets: [ { address: 127.0.0.1:${inventory.port} } ] }
  sellers:   { targets: [ { address: 127.0.0.1:${sellers.port} } ] }
  dead:      { targets: [ { address: 127.0.0.1:${deadPort} } ], timeouts: { connect: 500ms } }
routes:
${routes}`);
  gateways.push(g);
  return g;
}

before(async () => {
  [products, reviews, inventory, sellers] = await Promise.all(
    ['products', 'reviews', 'inventory', 'sellers'].map((n) => startLegServer(n)));
  deadPort = await freePort();  // bound and released: nothing listens there
  gh = await gateway(ROUTES);
});
beforeEach(() => { for (const up of [products, reviews, inventory, sellers]) up.answers.clear(); });

// --- clients and assertions ----------------------------------------------------------------------

// GET over HTTP/1.1 (node:http, a fresh connection): { status, headers, body, ms }. A failed
// request says whether the gateway is still running (a crash would fail every later test too).
const get = (p, headers = {}, g = gh) => within(httpGet(g.port, p, { headers }), 15000, `GET ${p}`).catch(async (e) => {
  // A crash's exit may be reported just after the connection's end: waited for, at most 1 s.
  const exit = await within(g.exited, 1000, 'exit').catch(() => null);
  const state = exit === null ? 'the gateway is running'
    : `the gateway exited (code ${exit.code}, signal ${exit.signal}); its stderr ends:\n${g.stderr.slice(-2000)}`;
  throw new Error(`GET ${p}: ${e.message}; ${state}`);
});

const show = (r) => `${r.status} ${JSON.stringify(r.headers['content-type'])} ${JSON.stringify(r.body.slice(0, 400))}`;

// A JSON answer with `status`: its body parsed.
function jsonAnswer(r, status) {
  assert.equal(r.status, status, `HTTP ${status} (got ${show(r)})`);
  assert.match(String(r.headers['content-type'] || ''), /^application\/json\s*(;.*)?$/i, `content-type (got ${show(r)})`);
  try {
    return JSON.parse(r.body);
  } catch (e) {
    return assert.fail(`a JSON body (got ${JSON.stringify(r.body.slice(0, 400))}: ${e.message})`);
  }
}

// The gateway's own error (the contract's format) with `status` and `error`, its message naming
// `leg`, its request_id the response's x-request-id.
function assertAggregateError(r, status, error, leg) {
  const body = jsonAnswer(r, status);
  assert.equal(body.error, error, `"error": "${error}" (got ${r.body})`);
  assert.equal(typeof body.message, 'string', `a message (got ${r.body})`);
  assert.match(body.message, new RegExp(`\\b${leg}\\b`), `the message names the leg ${leg} (got ${r.body})`);
  assert.equal(typeof body.request_id, 'string', `the request id (got ${r.body})`);
  assert.equal(body.request_id, r.headers['x-request-id'], `request_id is the response's x-request-id (got ${r.body})`);
  return body;
}

// errors.LEG of a composite: { status, error, message naming the leg }.
function assertLegError(body, leg, { status = null, error }) {
  assert.ok(body.errors && typeof body.errors === 'object', `an errors object (got ${JSON.stringify(body)})`);
  const e = body.errors[leg];
  assert.ok(e, `errors.${leg} (got ${JSON.stringify(body.errors)})`);
  assert.equal(e.error, error, `errors.${leg}.error (got ${JSON.stringify(e)})`);
  if (status !== null) assert.equal(e.status, status, `errors.${leg}.status (got ${JSON.stringify(e)})`);
  else assert.equal(typeof e.status, 'number', `errors.${leg}.status is a number (got ${JSON.stringify(e)})`);
  assert.equal(typeof e.message, 'string', `errors.${leg}.message (got ${JSON.stringify(e)})`);
  assert.match(e.message, new RegExp(`\\b${leg}\\b`), `errors.${leg}.message names the leg (got ${JSON.stringify(e)})`);
}

// The one request `up` got since `mark` (for a path starting with `prefix`).
function onlyRequest(up, mark, prefix) {
  const got = up.since(mark).filter((r) => r.path.startsWith(prefix));
  assert.equal(got.length, 1, `one request to ${up.name} for ${prefix}* (got ${JSON.stringify(got.map((r) => r.url))})`);
  return got[0];
}

// A leg that timed out was sent once: the gateway's own cancellation is not a pooled connection
// the upstream closed unanswered, to be replayed on a new one.
function assertSentOnce(up, mark, p) {
  const got = up.since(mark).filter((x) => x.path === p);
  assert.equal(got.length, 1, `${p} sent once to ${up.name}, not replayed after the timeout (got ${got.length})`);
}

// --- 1. the product page end to end --------------------------------------------------------------

test('product page: three legs composed; capture and query substituted and percent-encoded; the request id reaches every leg', async () => {
  const product = { id: 'a b', name: 'Desk lamp', price: 39.5, seller_id: 's1', tags: ['light', 'desk'] };
  const review = { count: 2, items: [{ stars: 5, text: 'bright' }, { stars: 3, text: 'ok' }] };
  const stock = { available: 7, warehouse: null, active: true };
  products.answer('/products/a%20b', { json: product });
  reviews.answer('/reviews', { json: review });
  inventory.answer('/stock/a%20b', { json: stock });

  const marks = [products.mark(), reviews.mark(), inventory.mark()];
  // The id "a b"; the query value "fr/CA&x=1" (a slash, and characters that would add a parameter).
  const r = await get('/api/product-page/a%20b?lang=fr%2FCA%26x%3D1');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body, { product, reviews: review, stock }, 'one key per leg, its parsed JSON; no errors key');

  const p = onlyRequest(products, marks[0], '/products/');
  const rv = onlyRequest(reviews, marks[1], '/reviews');
  const s = onlyRequest(inventory, marks[2], '/stock/');
  assert.equal(p.method, 'GET');
  assert.equal(p.url, '/products/a%20b', 'the capture percent-encoded into the path');
  assert.equal(s.url, '/stock/a%20b');
  assert.match(rv.url, /^\/reviews\?product=a%20b&lang=fr%2FCA%26x%3D1$/i,
    `capture and query parameter percent-encoded into the query (got ${rv.url})`);
  const q = new URL(rv.url, 'http://x').searchParams;
  assert.deepEqual([...q.keys()], ['product', 'lang'], 'no parameter injected by the values');
  assert.equal(q.get('lang'), 'fr/CA&x=1');

  const rid = r.headers['x-request-id'];
  assert.ok(rid, 'the composite has an x-request-id');
  for (const leg of [p, rv, s]) assert.equal(leg.headers['x-request-id'], rid, `${leg.path} got the composite's request id`);

  // The client's own request id is kept and reaches the legs; an absent query parameter is empty.
  const marks2 = [products.mark(), reviews.mark(), inventory.mark()];
  const r2 = await get('/api/product-page/a%20b', { 'x-request-id': 'agg-client-id-1' });
  assert.deepEqual(jsonAnswer(r2, 200), { product, reviews: review, stock });
  assert.equal(r2.headers['x-request-id'], 'agg-client-id-1');
  const rv2 = onlyRequest(reviews, marks2[1], '/reviews');
  assert.equal(rv2.url, '/reviews?product=a%20b&lang=', 'an absent query parameter is an empty value');
  for (const [up, m, prefix] of [[products, marks2[0], '/products/'], [reviews, marks2[1], '/reviews'], [inventory, marks2[2], '/stock/']]) {
    assert.equal(onlyRequest(up, m, prefix).headers['x-request-id'], 'agg-client-id-1', `${up.name} got the client's request id`);
  }
});

// --- 2. parallelism ------------------------------------------------------------------------------

test('parallelism: three legs of 200 ms each answer together in under 300 ms', async () => {
  // The one place a delay is the point: each leg takes 200 ms; one after the other would be 600.
  products.answer('/products/par', { json: { leg: 'product' }, delay: 200 });
  reviews.answer('/reviews', { json: { leg: 'reviews' }, delay: 200 });
  inventory.answer('/stock/par', { json: { leg: 'stock' }, delay: 200 });
  const expected = { product: { leg: 'product' }, reviews: { leg: 'reviews' }, stock: { leg: 'stock' } };
  const times = [];
  // The best of three (a loaded machine may stretch one run; a serial gateway can never get under 600 ms).
  for (let i = 0; i < 3; i++) {
    const marks = [products.mark(), reviews.mark(), inventory.mark()];
    const r = await get('/api/parallel/par');
    assert.deepEqual(jsonAnswer(r, 200), expected);
    times.push(r.ms);
    const legs = [onlyRequest(products, marks[0], '/products/'), onlyRequest(reviews, marks[1], '/reviews'),
      onlyRequest(inventory, marks[2], '/stock/')];
    const firstAnswer = Math.min(...legs.map((l) => l.answeredAt));
    for (const l of legs) {
      assert.ok(l.at < firstAnswer, `every leg arrived before the first answered (${l.path} at ${l.at.toFixed(1)}, first answer ${firstAnswer.toFixed(1)})`);
    }
    assert.ok(r.ms >= 195, `the composite waited for its 200 ms legs (${r.ms.toFixed(1)} ms)`);
  }
  assert.ok(Math.min(...times) < 300, `the composite answered in under 300 ms (runs: ${times.map((t) => t.toFixed(1)).join(', ')} ms)`);
});

// --- 3. dependent legs ---------------------------------------------------------------------------

test('dependency: seller takes product.seller_id and starts only once product answered', async () => {
  const hold = gate();
  const product = { id: 'dep1', seller_id: 's 1' };
  products.answer('/products/dep1', { json: product, hold });
  sellers.answer('/sellers/s%201', { json: { name: 'ACME' } });
  const sellerMark = sellers.mark();
  const [pm, rm, im] = [products.mark(), reviews.mark(), inventory.mark()];
  const pending = get('/api/product-seller/dep1?lang=en');
  pending.catch(() => {});  // awaited below; a failed assertion before that must not leave it unhandled
  // Every independent leg is out (product held) and seller is not.
  await products.arrival(pm, (r) => r.path === '/products/dep1');
  await reviews.arrival(rm, (r) => r.url.startsWith('/reviews?product=dep1'));
  await inventory.arrival(im, (r) => r.path === '/stock/dep1');
  assert.deepEqual(sellers.since(sellerMark).map((r) => r.url), [], 'seller not called before product answered');
  hold.open();
  const r = await pending;
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.product, product);
  assert.deepEqual(body.seller, { name: 'ACME' });
  assert.deepEqual(Object.keys(body).sort(), ['product', 'reviews', 'seller', 'stock']);
  assert.equal(body.errors, undefined, `no errors (got ${r.body})`);
  const s = onlyRequest(sellers, sellerMark, '/sellers/');
  assert.equal(s.url, '/sellers/s%201', 'the value from product\'s JSON, percent-encoded');
  const p = onlyRequest(products, pm, '/products/dep1');
  assert.ok(s.at > p.answeredAt, 'seller arrived after product answered');
  assert.equal(s.headers['x-request-id'], r.headers['x-request-id'], 'the dependent leg has the request id too');
});

test('dependency: seller starts as soon as product answered, while an unrelated leg is still out', async () => {
  const hold = gate();
  products.answer('/products/dep2', { json: { id: 'dep2', seller_id: 7 } });
  inventory.answer('/stock/dep2', { json: { available: 1 }, hold });
  sellers.answer('/sellers/7', { json: { name: 'Seven' } });
  const [sm, im] = [sellers.mark(), inventory.mark()];
  const pending = get('/api/product-seller/dep2');
  pending.catch(() => {});
  const s = await sellers.arrival(sm, (r) => r.path === '/sellers/7');
  const stock = inventory.since(im).find((r) => r.path === '/stock/dep2');
  assert.ok(stock, 'stock was called');
  assert.ok(!stock.answered && !stock.closed, 'seller started while stock (held by the test) was still out');
  hold.open();
  const body = jsonAnswer(await pending, 200);
  assert.equal(s.url, '/sellers/7', 'a number substituted');
  assert.deepEqual(body.stock, { available: 1 });
  assert.deepEqual(body.seller, { name: 'Seven' });
  assert.equal(body.errors, undefined);
});

test('dependency: a chain a -> b -> c (dotted paths, a number and a bool), whatever the order of declaration', async () => {
  const a = { next: 'x y', flag: true };
  const b = { deep: { next: 'z 1' }, n: 42 };
  const c = { done: true };
  products.answer('/chain/a/k1', { json: a });
  reviews.answer('/chain/b/x%20y', { json: b });
  inventory.answer('/chain/c/z%201', { json: c });
  const marks = [products.mark(), reviews.mark(), inventory.mark()];
  const r = await get('/api/chain/k1');
  assert.deepEqual(jsonAnswer(r, 200), { a, b, c });
  const ra = onlyRequest(products, marks[0], '/chain/');
  const rb = onlyRequest(reviews, marks[1], '/chain/');
  const rc = onlyRequest(inventory, marks[2], '/chain/');
  assert.equal(ra.url, '/chain/a/k1');
  assert.equal(rb.url, '/chain/b/x%20y');
  assert.equal(rc.url, '/chain/c/z%201?n=42&flag=true', 'a nested field, a number and a bool substituted');
  assert.ok(rb.at > ra.answeredAt, 'b after a answered');
  assert.ok(rc.at > rb.answeredAt, 'c after b answered');
});

// A value is one path segment: a '/' in it goes as %2F, which the gateway's path policy
// (server.path_normalization.encoded_slashes) governs for a leg's path as for a client's: refused
// by default (backends disagree on what %2F means), passed with `keep`. A dot segment is refused
// always: it would change the path.
test('dependency: a slash in a value from a leg\'s JSON: refused under the default path policy, %2F with encoded_slashes: keep', async () => {
  const product = { id: 'slash1', seller_id: 'eu/42' };
  products.answer('/products/slash1', { json: product });
  sellers.answer('/sellers/eu%2F42', { json: { name: 'EU 42' } });
  let sm = sellers.mark();
  const refused = await get('/api/product-seller/slash1');
  const err = jsonAnswer(refused, 502);
  assert.equal(err.error, 'aggregate_leg_failed');
  assert.match(err.message, /leg 'seller'.*encoded '\/'/);
  assert.equal(sellers.since(sm).length, 0, 'sellers never called');

  const keep = await gateway(ROUTES, { server: ', path_normalization: { encoded_slashes: keep }' });
  sm = sellers.mark();
  const r = await get('/api/product-seller/slash1', {}, keep);
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.seller, { name: 'EU 42' });
  assert.match(onlyRequest(sellers, sm, '/sellers/').url, /^\/sellers\/eu%2F42$/i, 'the slash encoded, one path segment');
});

test('dependency: a value that is a dot segment (..) fails the leg instead of changing its path', async () => {
  products.answer('/products/dots1', { json: { id: 'dots1', seller_id: '..' } });
  const sm = sellers.mark();
  const r = await get('/api/product-seller/dots1');
  const err = jsonAnswer(r, 502);
  assert.equal(err.error, 'aggregate_leg_failed');
  assert.match(err.message, /leg 'seller'.*\.\./);
  assert.equal(sellers.since(sm).length, 0, 'sellers never called');
});

// --- 4. an optional leg timing out ---------------------------------------------------------------

test('optional leg timeout: stock (300 ms) against a 2 s upstream is null with errors.stock; the composite 200 at once; 206 with partial_status', async () => {
  products.answer('/products/slow-stock', { json: { id: 'slow-stock' } });
  reviews.answer('/reviews', { json: { count: 0 } });
  jsonAnswer(await get('/api/product-page/warm-stock'), 200);  // pooled connections for the legs
  inventory.answer('/stock/slow-stock', { json: { available: 1 }, delay: 2000 });
  const im = inventory.mark();
  const r = await get('/api/product-page/slow-stock');
  const body = jsonAnswer(r, 200);
  assert.ok(r.ms < 1000, `answered well before the slow upstream (${r.ms.toFixed(0)} ms)`);
  assert.deepEqual(body.product, { id: 'slow-stock' });
  assert.deepEqual(body.reviews, { count: 0 });
  assert.equal(body.stock, null, `stock is null (got ${r.body})`);
  assert.deepEqual(Object.keys(body.errors), ['stock'], `only stock failed (got ${r.body})`);
  assertLegError(body, 'stock', { status: 504, error: 'upstream_timeout' });
  assertSentOnce(inventory, im, '/stock/slow-stock');

  const r206 = await get('/api/partial/slow-stock');
  const b206 = jsonAnswer(r206, 206);
  assert.ok(r206.ms < 1000, `answered well before the slow upstream (${r206.ms.toFixed(0)} ms)`);
  assert.deepEqual(b206.product, { id: 'slow-stock' });
  assert.equal(b206.stock, null);
  assertLegError(b206, 'stock', { status: 504, error: 'upstream_timeout' });

  // Nothing failed: 200 on the partial_status route too, and no errors key.
  products.answer('/products/fast-stock', { json: { id: 'fast-stock' } });
  inventory.answer('/stock/fast-stock', { json: { available: 2 } });
  assert.deepEqual(jsonAnswer(await get('/api/partial/fast-stock'), 200),
    { product: { id: 'fast-stock' }, stock: { available: 2 } });
});

// --- 5. optional legs failing otherwise; raw legs ------------------------------------------------

test('optional leg: a 503 is null with errors.reviews (status 503, leg_status)', async () => {
  products.answer('/products/rev503', { json: { id: 'rev503' } });
  reviews.answer('/reviews', { status: 503, json: { error: 'overloaded' } });
  inventory.answer('/stock/rev503', { json: { available: 3 } });
  const r = await get('/api/product-page/rev503');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.product, { id: 'rev503' });
  assert.deepEqual(body.stock, { available: 3 });
  assert.equal(body.reviews, null, `reviews is null (got ${r.body})`);
  assert.deepEqual(Object.keys(body.errors), ['reviews']);
  assertLegError(body, 'reviews', { status: 503, error: 'leg_status' });
});

test('optional leg: a text/plain answer is null with errors.reviews not_json', async () => {
  products.answer('/products/revtext', { json: { id: 'revtext' } });
  reviews.answer('/reviews', { text: 'hello', type: 'text/plain' });
  const r = await get('/api/product-page/revtext');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.product, { id: 'revtext' });
  assert.equal(body.reviews, null, `reviews is null (got ${r.body})`);
  assertLegError(body, 'reviews', { error: 'not_json' });
});

test('optional leg: a connect failure is null with errors.offers upstream_connect_failed (502)', async () => {
  products.answer('/products/deadopt', { json: { id: 'deadopt' } });
  const r = await get('/api/dead-optional/deadopt');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.product, { id: 'deadopt' });
  assert.equal(body.offers, null);
  assertLegError(body, 'offers', { status: 502, error: 'upstream_connect_failed' });
});

test('raw leg: a text answer is embedded as a JSON string, and so is a JSON one', async () => {
  const text = 'hello <b>world</b>\n"quoted" \\ ünï';
  products.answer('/products/raw1', { json: { id: 'raw1' } });
  reviews.answer('/banner/raw1', { text, type: 'text/html; charset=utf-8' });
  const body = jsonAnswer(await get('/api/raw-page/raw1'), 200);
  assert.deepEqual(body, { product: { id: 'raw1' }, banner: text });

  products.answer('/products/raw2', { json: { id: 'raw2' } });
  reviews.answer('/banner/raw2', { text: '{"a":1}', type: 'application/json' });
  const body2 = jsonAnswer(await get('/api/raw-page/raw2'), 200);
  assert.deepEqual(body2, { product: { id: 'raw2' }, banner: '{"a":1}' });
});

// --- 6. a required leg failing -------------------------------------------------------------------

test('required leg: a 503 is a 502 aggregate_leg_failed naming product', async () => {
  products.answer('/products/req503', { status: 503, json: { error: 'down' } });
  assertAggregateError(await get('/api/product-page/req503'), 502, 'aggregate_leg_failed', 'product');
});

test('required leg: the route timeout (800 ms) against a 2 s product is a 504 aggregate_leg_timeout naming product (a new gateway: new connections)', async () => {
  const g = await gateway(PRODUCT_PAGE);
  products.answer('/products/reqslow', { json: { id: 'reqslow' }, delay: 2000 });
  const pm = products.mark();
  const r = await get('/api/product-page/reqslow', {}, g);
  assertAggregateError(r, 504, 'aggregate_leg_timeout', 'product');
  assert.ok(r.ms < 1800, `answered at the route's timeout, before the upstream (${r.ms.toFixed(0)} ms)`);
  assertSentOnce(products, pm, '/products/reqslow');
  await g.stop();
});

test('required leg: the route timeout holds when the leg goes on a pooled keep-alive connection (no replay past it)', async () => {
  // A first composite leaves a connection to products in the gateway's pool; the slow leg takes it.
  products.answer('/products/warm-route', { json: { id: 'warm-route' } });
  jsonAnswer(await get('/api/product-page/warm-route'), 200);
  products.answer('/products/reqslow2', { json: { id: 'reqslow2' }, delay: 2000 });
  const pm = products.mark();
  const r = await get('/api/product-page/reqslow2');
  assertAggregateError(r, 504, 'aggregate_leg_timeout', 'product');
  assert.ok(r.ms < 1800, `answered at the route's timeout, before the upstream (${r.ms.toFixed(0)} ms)`);
  assertSentOnce(products, pm, '/products/reqslow2');
});

test('required leg: its own timeout (300 ms) against a 2 s product is a 504 aggregate_leg_timeout naming product', async () => {
  products.answer('/products/warm-leg', { json: { id: 'warm-leg' } });
  jsonAnswer(await get('/api/strict/warm-leg'), 200);  // a pooled connection for the slow leg
  products.answer('/products/legslow', { json: { id: 'legslow' }, delay: 2000 });
  const pm = products.mark();
  const r = await get('/api/strict/legslow');
  assertAggregateError(r, 504, 'aggregate_leg_timeout', 'product');
  assert.ok(r.ms < 1500, `answered at the leg's timeout, before the route's 2 s (${r.ms.toFixed(0)} ms)`);
  assertSentOnce(products, pm, '/products/legslow');
});

test('required leg: a connect failure (closed port) is a 502 naming offers', async () => {
  products.answer('/products/dead1', { json: { id: 'dead1' } });
  assertAggregateError(await get('/api/dead/dead1'), 502, 'aggregate_leg_failed', 'offers');
});

test('required leg: a 404 is a 502 without pass_status, the 404 itself with pass_status: [404]; a 503 not listed is a 502', async () => {
  products.answer('/products/nf1', { status: 404, json: { error: 'no such product' } });
  assertAggregateError(await get('/api/product-page/nf1'), 502, 'aggregate_leg_failed', 'product');
  assertAggregateError(await get('/api/strict/nf1'), 404, 'aggregate_leg_status', 'product');
  products.answer('/products/su1', { status: 503, json: { error: 'down' } });
  assertAggregateError(await get('/api/strict/su1'), 502, 'aggregate_leg_failed', 'product');
});

// --- 7. dependents of a failed leg ---------------------------------------------------------------

test('a failed required leg: its dependent (seller) is never called', async () => {
  products.answer('/products/depfail', { status: 503, json: { error: 'down', seller_id: 'never' } });
  const sm = sellers.mark();
  assertAggregateError(await get('/api/product-seller/depfail'), 502, 'aggregate_leg_failed', 'product');
  // A later composite that does call seller: once it is answered, only its own seller call came.
  products.answer('/products/depok', { json: { id: 'depok', seller_id: 'after' } });
  sellers.answer('/sellers/after', { json: { name: 'After' } });
  const ok = jsonAnswer(await get('/api/product-seller/depok'), 200);
  assert.deepEqual(ok.seller, { name: 'After' });
  assert.deepEqual(sellers.since(sm).map((r) => r.url), ['/sellers/after'], 'the failed product\'s dependent was not called');
});

test('a failed optional leg: its optional dependent is null with dependency_failed and never called', async () => {
  products.answer('/products/optdep', { json: { id: 'optdep' } });
  reviews.answer('/reviews', { status: 503, json: { error: 'down', count: 3 } });
  const sm = sellers.mark();
  const r = await get('/api/optional-dep/optdep');
  const body = jsonAnswer(r, 200);
  assert.deepEqual(body.product, { id: 'optdep' });
  assert.equal(body.reviews, null);
  assert.equal(body.summary, null);
  assertLegError(body, 'reviews', { status: 503, error: 'leg_status' });
  assertLegError(body, 'summary', { error: 'dependency_failed' });
  assert.deepEqual(sellers.since(sm).map((x) => x.url), [], 'summary was not called');

  // The same route with reviews answering: summary gets its count.
  reviews.answer('/reviews', { json: { count: 3 } });
  sellers.answer('/summary/3', { json: { stars: 4.5 } });
  assert.deepEqual(jsonAnswer(await get('/api/optional-dep/optdep'), 200),
    { product: { id: 'optdep' }, reviews: { count: 3 }, summary: { stars: 4.5 } });
});

// --- 8. headers to the legs ----------------------------------------------------------------------

test('headers: no Authorization or Cookie by default; credentials: true sends both to that leg only; allow-list, add_headers, traceparent, {header.NAME}', async () => {
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const [pm, rm, im] = [products.mark(), reviews.mark(), inventory.mark()];
  const r = await get('/api/headers/h1', {
    authorization: 'Bearer secret-token', cookie: 'sid=abc; theme=dark', 'accept-language': 'fr-CA',
    traceparent, 'x-tenant': 'acme corp/eu', 'x-custom': 'not-allowed', 'x-request-id': 'agg-headers-1',
  });
  const body = jsonAnswer(r, 200);
  assert.deepEqual(Object.keys(body).sort(), ['creds', 'lang', 'plain']);
  const plain = onlyRequest(products, pm, '/h/plain/');
  const creds = onlyRequest(reviews, rm, '/h/creds/');
  const lang = onlyRequest(inventory, im, '/h/lang/');

  for (const [leg, rec] of [['plain', plain], ['lang', lang]]) {
    assert.equal(rec.headers.authorization, undefined, `${leg}: no Authorization`);
    assert.equal(rec.headers.cookie, undefined, `${leg}: no Cookie`);
  }
  assert.equal(creds.headers.authorization, 'Bearer secret-token', 'creds (credentials: true) got Authorization');
  assert.equal(creds.headers.cookie, 'sid=abc; theme=dark', 'creds (credentials: true) got Cookie');

  assert.equal(lang.headers['accept-language'], 'fr-CA', 'the allow-listed header reached lang');
  assert.equal(plain.headers['accept-language'], undefined, 'a header not in plain\'s allow-list did not reach it');
  assert.equal(creds.headers['accept-language'], undefined);
  for (const rec of [plain, creds, lang]) {
    assert.equal(rec.headers['x-custom'], undefined, `${rec.path}: no client header outside the allow-list`);
    assert.equal(rec.headers['x-request-id'], 'agg-headers-1', `${rec.path}: the request id`);
    assert.match(String(rec.headers.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-0[01]$/,
      `${rec.path}: the client's trace (got ${rec.headers.traceparent})`);
  }
  assert.equal(lang.headers['x-leg-name'], 'lang', 'add_headers');
  assert.equal(lang.headers['x-api-version'], '2', 'add_headers');
  assert.equal(plain.headers['x-leg-name'], undefined, 'add_headers only on its leg');
  assert.match(lang.url, /^\/h\/lang\/h1\?tenant=acme%20corp%2Feu$/i, `{header.x-tenant} percent-encoded (got ${lang.url})`);
});

// --- 9. max_leg_bytes ----------------------------------------------------------------------------

test('max_leg_bytes (1KiB): an optional leg over it is null (too_large), with a length or chunked; one under it is embedded; a required one is a 502', async () => {
  const big = { filler: 'x'.repeat(4096) };
  const small = { filler: 'y'.repeat(500) };
  products.answer('/products/lim1', { json: { id: 'lim1' } });
  reviews.answer('/big/lim1', { json: big });
  let body = jsonAnswer(await get('/api/limits/lim1'), 200);
  assert.deepEqual(body.product, { id: 'lim1' });
  assert.equal(body.big, null);
  assertLegError(body, 'big', { error: 'too_large' });

  reviews.answer('/big/lim1', { json: big, chunked: true });
  body = jsonAnswer(await get('/api/limits/lim1'), 200);
  assert.equal(body.big, null, 'a chunked answer over the limit too');
  assertLegError(body, 'big', { error: 'too_large' });

  reviews.answer('/big/lim1', { json: small });
  assert.deepEqual(jsonAnswer(await get('/api/limits/lim1'), 200), { product: { id: 'lim1' }, big: small });

  products.answer('/products/lim2', { json: big });
  assertAggregateError(await get('/api/limits/lim2'), 502, 'aggregate_leg_failed', 'product');
  products.answer('/products/lim3', { json: big, chunked: true });
  assertAggregateError(await get('/api/limits/lim3'), 502, 'aggregate_leg_failed', 'product');
});

// --- a cache per leg ------------------------------------------------------------------------------

// A leg's plugins run on its sub-request: with the cache plugin, its upstream is asked once over
// several composite calls, while the uncached leg is asked every time.
test('a leg with the cache plugin reaches its upstream once over several composite calls', async () => {
  const g = await gateway(`
  - name: cached-page
    match: { path: "/api/cached-page/{id}", methods: [GET] }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}", plugins: { cache: { ttl: 1h } } }
        stock: { upstream: inventory, path: "/stock/{id}" }
`);
  products.answer('/products/c1', { json: { id: 'c1' } });
  inventory.answer('/stock/c1', { json: { n: 1 } });
  const pm = products.mark();
  const im = inventory.mark();
  for (let i = 0; i < 3; i++) {
    const body = jsonAnswer(await get('/api/cached-page/c1', {}, g), 200);
    assert.deepEqual(body, { product: { id: 'c1' }, stock: { n: 1 } });
  }
  assert.equal(products.since(pm).length, 1, 'the cached leg\'s upstream asked once');
  assert.equal(inventory.since(im).length, 3, 'the other leg\'s every time');
});

test('validate: a leg takes the cache plugin only', () => {
  const { file } = configFile('agg-plugins.yaml', `
  - name: p
    match: { path: "/p/{id}" }
    aggregate:
      calls:
        a: { upstream: products, path: "/a/{id}", plugins: { key_auth: { header: x-key } } }
`);
  assertConfigError(validate(file), file, [`${file}:`], [/'key_auth' is not a plugin here \(these are: cache\)/], 'key_auth on a leg');
});

// --- the client's body ----------------------------------------------------------------------------

// The one leg with `body: true` gets the client's request body, whole, with its length and
// Content-Type, whatever its framing; the other legs get none. A body over the limit is 413.
test('body: the client\'s request body goes to the one leg that takes it, with its length and type', async () => {
  const g = await gateway(`
  - name: order
    match: { path: "/api/order/{id}", methods: [POST] }
    aggregate:
      calls:
        order: { upstream: products, path: "/orders/{id}", method: POST, body: true }
        stock: { upstream: inventory, path: "/stock/{id}" }
`, { server: ', limits: { max_body_bytes: 1KiB }' });
  products.answer('/orders/o1', (rec) => ({ json: { got: rec.body, type: rec.headers['content-type'], length: rec.headers['content-length'] } }));
  inventory.answer('/stock/o1', (rec) => ({ json: { body: rec.body, method: rec.method } }));
  const sent = JSON.stringify({ sku: 'a', qty: 2 });
  for (const chunked of [false, true]) {
    const r = await curl(['-s', '-X', 'POST', '-H', 'content-type: application/json',
      ...(chunked ? ['-H', 'transfer-encoding: chunked'] : []), '--data-binary', '@-',
      `http://127.0.0.1:${g.port}/api/order/o1`], { input: sent });
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body);
    assert.deepEqual(body.order, { got: sent, type: 'application/json', length: String(sent.length) }, `chunked=${chunked}`);
    assert.deepEqual(body.stock, { body: '', method: 'GET' }, 'the other leg gets no body');
  }
  const tooLarge = await curl(['-s', '-X', 'POST', '--data-binary', '@-', `http://127.0.0.1:${g.port}/api/order/o1`],
    { input: 'x'.repeat(2048) });
  assert.equal(tooLarge.status, 413, tooLarge.body);
});

test('validate: one leg at most takes the client\'s body', () => {
  const { file } = configFile('agg-body.yaml', `
  - name: p
    match: { path: "/p/{id}" }
    aggregate:
      calls:
        a: { upstream: products, path: "/a/{id}", body: true }
        b: { upstream: products, path: "/b/{id}", body: true }
`);
  assertConfigError(validate(file), file, [`${file}:`], [/one leg at most takes the client's body/], 'two body legs');
});

// The cache plugin on the composite route keeps the composed answer under the Cache-Control the
// legs allow it: the next call is a hit, which no leg sees; a partial answer (no-store) is not kept.
test('the cache plugin on a composite route keeps its answer: a hit calls no leg; a partial answer is not kept', async () => {
  const g = await gateway(`
  - name: cached-composite
    match: { path: "/api/cc/{id}", methods: [GET] }
    plugins: { cache: { ttl: 1h } }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}" }
        stock: { upstream: inventory, path: "/stock/{id}", optional: true }
`);
  products.answer('/products/k1', { json: { id: 'k1' }, headers: { 'cache-control': 'max-age=60' } });
  inventory.answer('/stock/k1', { json: { n: 1 }, headers: { 'cache-control': 'max-age=30' } });
  const pm = products.mark();
  const first = await get('/api/cc/k1', {}, g);
  assert.deepEqual(jsonAnswer(first, 200), { product: { id: 'k1' }, stock: { n: 1 } });
  assert.match(first.headers['cache-status'], /fwd=uri-miss; fwd-status=200; ttl=30; stored/, 'kept for the stalest leg\'s 30 s');
  const second = await get('/api/cc/k1', {}, g);
  assert.equal(second.body, first.body);
  assert.match(second.headers['cache-status'], /^gatehouse; hit/);
  assert.equal(products.since(pm).length, 1, 'the hit called no leg');
  // A partial answer: no-store, so every call composes anew.
  products.answer('/products/k2', { json: { id: 'k2' }, headers: { 'cache-control': 'max-age=60' } });
  inventory.answer('/stock/k2', { status: 503, json: {} });
  const pm2 = products.mark();
  for (let i = 0; i < 2; i++) {
    const r = await get('/api/cc/k2', {}, g);
    assert.equal(jsonAnswer(r, 200).stock, null);
    assert.doesNotMatch(r.headers['cache-status'], /hit/);
  }
  assert.equal(products.since(pm2).length, 2, 'a partial answer is not kept');
});

// --- an HTTP/2 leg, and the metrics --------------------------------------------------------------

// A leg to an HTTP/2 upstream (protocol: http2) beside an HTTP/1.1 one; each leg counted in the
// metrics under its own route (ROUTE.LEG), as any request is.
test('an HTTP/2 leg beside an HTTP/1.1 one; the metrics count each leg under ROUTE.LEG', async () => {
  const h2 = http2.createServer();
  const sessions = new Set();
  h2.on('session', (session) => sessions.add(session));
  const seen = [];
  h2.on('stream', (stream, headers) => {
    seen.push(headers[':path']);
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ via: 'h2', path: headers[':path'] }));
  });
  await new Promise((resolve) => h2.listen(0, '127.0.0.1', resolve));
  const port = await freePort();
  const admin = await freePort();
  const g = await startGatehouse(`server: { workers: 1, listen: [ { address: 127.0.0.1:${port} } ] }
admin: { listen: 127.0.0.1:${admin} }
upstreams:
  products: { targets: [ { address: 127.0.0.1:${products.port} } ] }
  stock-h2: { protocol: http2, targets: [ { address: 127.0.0.1:${h2.address().port} } ] }
routes:
  - name: mixed
    match: { path: "/api/mixed/{id}", methods: [GET] }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}" }
        stock: { upstream: stock-h2, path: "/stock/{id}" }
`);
  gateways.push(g);
  try {
    products.answer('/products/m1', { json: { id: 'm1' } });
    for (let i = 0; i < 2; i++) {
      const body = jsonAnswer(await within(httpGet(port, '/api/mixed/m1'), 15000, 'GET /api/mixed/m1'), 200);
      assert.deepEqual(body, { product: { id: 'm1' }, stock: { via: 'h2', path: '/stock/m1' } });
    }
    assert.deepEqual(seen, ['/stock/m1', '/stock/m1']);
    const m = await curl([`http://127.0.0.1:${admin}/metrics`]);
    const samples = parseMetrics(m.body);
    const requests = (route) => sampleOf(samples, 'gatehouse_requests_total', { route, method: 'GET', code: '200' });
    assert.equal(requests('mixed'), 2, 'the composite');
    assert.equal(requests('mixed.product'), 2, 'each leg, under ROUTE.LEG');
    assert.equal(requests('mixed.stock'), 2);
  } finally {
    for (const session of sessions) session.destroy();  // the gateway's pooled connection
    await new Promise((resolve) => h2.close(resolve));
  }
});

// --- shaping --------------------------------------------------------------------------------------

// A leg's answer reduced to selected fields and renamed (an array's objects one by one), merged
// into the document's keys, or placed at a path; the other legs as they came.
test('shaping: fields and rename, merge into the root, at a path; a leg that cannot be shaped fails', async () => {
  const g = await gateway(`
  - name: shaped
    match: { path: "/api/shaped/{id}", methods: [GET] }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}", fields: [id, name, price.amount], rename: { name: title } }
        user: { upstream: sellers, path: "/users/{id}", merge: true }
        stock: { upstream: inventory, path: "/stock/{id}", at: availability.stock }
        offers: { upstream: reviews, path: "/offers/{id}", fields: [sku], optional: true }
`);
  products.answer('/products/sh1', { json: { id: 'sh1', name: 'Widget', price: { amount: 9, currency: 'EUR' }, secret: 'x' } });
  sellers.answer('/users/sh1', { json: { user_name: 'Ann', tier: 'gold' } });
  inventory.answer('/stock/sh1', { json: { n: 3 } });
  reviews.answer('/offers/sh1', { json: [{ sku: 'a', cost: 1 }, { sku: 'b', cost: 2 }] });
  const r = await get('/api/shaped/sh1', {}, g);
  assert.equal(r.status, 200, r.body);
  // The document's keys in order, and its values.
  assert.equal(r.body, '{"product":{"id":"sh1","title":"Widget","price":{"amount":9}},"user_name":"Ann","tier":"gold",' +
    '"availability":{"stock":{"n":3}},"offers":[{"sku":"a"},{"sku":"b"}]}');
  // An answer that has no fields to select: the leg fails (optional: null and an entry).
  reviews.answer('/offers/sh1', { json: 'just text' });
  const bad = jsonAnswer(await get('/api/shaped/sh1', {}, g), 200);
  assert.equal(bad.offers, null);
  assert.equal(bad.errors.offers.error, 'not_shapable');
  // A merged leg's answer that is not an object fails it (required: 502 naming it).
  sellers.answer('/users/sh1', { json: [1, 2] });
  const r502 = await get('/api/shaped/sh1', {}, g);
  const err = jsonAnswer(r502, 502);
  assert.match(err.message, /leg 'user'.*not an object/);
});

test('validate: merge with at, and a raw leg with fields, are errors', () => {
  const { file } = configFile('agg-shape.yaml', `
  - name: bad
    match: { path: "/bad/{id}" }
    aggregate:
      calls:
        a: { upstream: products, path: "/a/{id}", merge: true, at: x.y }
        b: { upstream: products, path: "/b/{id}", raw: true, fields: [f] }
`);
  const r = validate(file);
  assertConfigError(r, file, [`${file}:`], [/either merged or placed 'at'/], 'merge with at');
  assertConfigError(r, file, [`${file}:`], [/raw leg's answer is a string/], 'raw with fields');
});

// --- 10. config errors (gatehouse validate) ------------------------------------------------------

// A config file with upstreams products and reviews and `routes` (YAML under `routes:`).
function configFile(name, routes) {
  const text = `server: { listen: [ { address: 127.0.0.1:0 } ] }
upstreams:
  products: { targets: [ { address: 127.0.0.1:1 } ] }
  reviews: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
${routes}`;
  return { file: tempFile(name, text), text };
}
const validate = (file) => runGatehouse(['validate', '-c', file]);
// The lines of stderr that are errors in `file` (FILE:LINE:COL: path: message).
const errorLines = (r, file) => r.stderr.split('\n').filter((l) => l.startsWith(`${file}:`) && /:\d+:\d+: /.test(l));
// Line and column (1-based) of the first `needle` in `text` (after the first `after`, if given).
function positionOf(text, needle, after = '') {
  const from = after ? text.indexOf(after) : 0;
  assert.ok(from >= 0, `${after} in the config`);
  const at = text.indexOf(needle, from);
  assert.ok(at >= 0, `${needle} in the config`);
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  return { line, col: at - before.lastIndexOf('\n') };
}
// The message of an error line (after FILE:LINE:COL: and the YAML path).
const messageOf = (line) => /^.*?:\d+:\d+: \S+: (.*)$/.exec(line)?.[1] ?? '';
// validate fails, with no "not supported yet", and has an error line starting with one of
// `prefixes` whose message matches every regex in `must`. Returns the error lines.
function assertConfigError(r, file, prefixes, must, what) {
  assert.equal(r.status, 1, `validate exits 1 (stderr:\n${r.stderr})`);
  assert.doesNotMatch(r.stderr, /not supported yet/, 'aggregate is supported');
  const errors = errorLines(r, file);
  assert.ok(errors.some((l) => prefixes.some((p) => l.startsWith(p)) && must.every((m) => m.test(messageOf(l)))),
    `${what}: an error starting with ${prefixes.join(' or ')} whose message matches ${must.join(', ')} (got:\n${r.stderr})`);
  return errors;
}

const legs = (n) => Array.from({ length: n }, (_, i) => `        leg${i + 1}: { upstream: products, path: "/l/${i + 1}/{id}" }`).join('\n');

test('validate: the contract\'s product page (with a dependent leg) and a route of 16 legs are valid', () => {
  const { file } = configFile('agg-good.yaml', `
  - name: product-page
    match: { path: "/api/product-page/{id}", methods: [GET] }
    aggregate:
      timeout: 800ms
      partial_status: 206
      max_leg_bytes: 64KiB
      max_bytes: 1MiB
      calls:
        product: { upstream: products, path: "/products/{id}", pass_status: [404, 410] }
        reviews: { upstream: reviews, path: "/reviews?product={id}&lang={query.lang}", optional: true, headers: [accept-language] }
        stock:   { upstream: products, path: "/stock/{id}", optional: true, timeout: 300ms, raw: true }
        seller:  { upstream: reviews, path: "/sellers/{product.seller_id}?t={header.x-tenant}", credentials: true, add_headers: { x-from: gatehouse } }
  - name: sixteen
    match: { path: "/api/sixteen/{id}", methods: [GET] }
    aggregate:
      calls:
${legs(16)}
`);
  const r = validate(file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(1 listener\(s\), 2 upstream\(s\), 2 route\(s\)\)/);
});

test('validate: a cycle of two legs and one of three, each named, at a leg\'s path', () => {
  const { file, text } = configFile('agg-cycle.yaml', `
  - name: two
    match: { path: "/two/{id}" }
    aggregate:
      calls:
        alpha:
          upstream: products
          path: "/alpha/{beta.x}"
        beta:
          upstream: reviews
          path: "/beta/{alpha.y}"
  - name: three
    match: { path: "/three/{id}" }
    aggregate:
      calls:
        north:
          upstream: products
          path: "/north/{south.x}"
        south:
          upstream: products
          path: "/south/{east.x}"
        east:
          upstream: reviews
          path: "/east/{north.x}"
        free:
          upstream: reviews
          path: "/free/{id}"
`);
  const r = validate(file);
  const at = (route, leg, value) => {
    const { line, col } = positionOf(text, value);
    return `${file}:${line}:${col}: routes[${route}].aggregate.calls.${leg}.path: `;
  };
  // Reported at one of the cycle's legs (any), the message naming every leg of the cycle.
  assertConfigError(r, file, [at(0, 'alpha', '"/alpha/{beta.x}"'), at(0, 'beta', '"/beta/{alpha.y}"')],
    [/\balpha\b/, /\bbeta\b/], 'the two-leg cycle');
  assertConfigError(r, file, [at(1, 'north', '"/north/{south.x}"'), at(1, 'south', '"/south/{east.x}"'), at(1, 'east', '"/east/{north.x}"')],
    [/\bnorth\b/, /\bsouth\b/, /\beast\b/], 'the three-leg cycle');
  const errors = errorLines(r, file);
  assert.ok(!errors.some((l) => /\.calls\.free\b/.test(l) || /\bfree\b/.test(messageOf(l))),
    `no error about the leg outside the cycle (got:\n${r.stderr})`);
  assert.ok(errors.every((l) => /: routes\[[01]\]\.aggregate\.calls\.(alpha|beta|north|south|east)\.path: /.test(l)),
    `only errors at the cycles' legs (got:\n${r.stderr})`);
});

test('validate: a template naming an unknown capture, or an unknown leg, is an error naming it', () => {
  const { file, text } = configFile('agg-unknown-names.yaml', `
  - name: page
    match: { path: "/page/{id}" }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}" }
        typo:
          upstream: products
          path: "/typo/{nope}"
        ghostly:
          upstream: reviews
          path: "/ghostly/{ghost.id}"
`);
  const r = validate(file);
  const p1 = positionOf(text, '"/typo/{nope}"');
  const p2 = positionOf(text, '"/ghostly/{ghost.id}"');
  assertConfigError(r, file, [`${file}:${p1.line}:${p1.col}: routes[0].aggregate.calls.typo.path: `], [/\bnope\b/], 'the unknown capture');
  assertConfigError(r, file, [`${file}:${p2.line}:${p2.col}: routes[0].aggregate.calls.ghostly.path: `], [/\bghost\b/], 'the unknown leg');
  assert.equal(errorLines(r, file).length, 2, `two errors (got:\n${r.stderr})`);
});

test('validate: an unknown upstream is an error naming it', () => {
  const { file, text } = configFile('agg-unknown-upstream.yaml', `
  - name: page
    match: { path: "/page/{id}" }
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}" }
        offers:
          upstream: nowhere
          path: "/offers/{id}"
`);
  const r = validate(file);
  const p = positionOf(text, 'nowhere');
  assertConfigError(r, file, [`${file}:${p.line}:${p.col}: routes[0].aggregate.calls.offers.upstream: `], [/\bnowhere\b/], 'the unknown upstream');
  assert.equal(errorLines(r, file).length, 1, `one error (got:\n${r.stderr})`);
});

test('validate: `to` together with `aggregate` is an error', () => {
  const { file } = configFile('agg-with-to.yaml', `
  - name: page
    match: { path: "/page/{id}" }
    to: products
    aggregate:
      calls:
        product: { upstream: products, path: "/products/{id}" }
`);
  const r = validate(file);
  assertConfigError(r, file, [`${file}:`], [/\bto\b|aggregate/], 'to with aggregate');
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\](\.to|\.aggregate)?: /.test(l)),
    `the error is at routes[0], its to or its aggregate (got:\n${r.stderr})`);
});

test('validate: 17 legs are an error (16 at most)', () => {
  const { file } = configFile('agg-17.yaml', `
  - name: seventeen
    match: { path: "/api/seventeen/{id}", methods: [GET] }
    aggregate:
      calls:
${legs(17)}
`);
  const r = validate(file);
  assertConfigError(r, file, [`${file}:`], [/16/], '17 legs');
  assert.ok(errorLines(r, file).some((l) => /: routes\[0\]\.aggregate(\.calls)?: /.test(l) && /16/.test(l)),
    `the error is at routes[0].aggregate.calls and says 16 (got:\n${r.stderr})`);
});

// --- 11. the access log --------------------------------------------------------------------------

test('access log: one line for the composite (product-page) and one per leg (product-page.LEG) with its status', async () => {
  const g = await gateway(PRODUCT_PAGE);
  products.answer('/products/log1', { json: { id: 'log1' } });
  reviews.answer('/reviews', { status: 503, json: { error: 'down' } });
  inventory.answer('/stock/log1', { json: { available: 1 } });
  const r = await get('/api/product-page/log1?lang=en', { 'x-request-id': 'agg-log-1' }, g);
  const body = jsonAnswer(r, 200);
  assertLegError(body, 'reviews', { status: 503, error: 'leg_status' });
  const lines = await waitFor(() => { const l = g.accessLog(); return l.length >= 4 && l; }, 3000, 'four access log lines');
  const composite = lines.filter((l) => l.route === 'product-page');
  assert.equal(composite.length, 1, `one composite line (got ${JSON.stringify(lines)})`);
  assert.equal(composite[0].status, 200);
  assert.equal(composite[0].method, 'GET');
  assert.equal(composite[0].path, '/api/product-page/log1?lang=en');
  assert.equal(composite[0].request_id, 'agg-log-1');
  const legLines = lines.filter((l) => l !== composite[0]);
  assert.deepEqual(legLines.map((l) => l.route).sort(), ['product-page.product', 'product-page.reviews', 'product-page.stock'],
    `one line per leg (got ${JSON.stringify(lines)})`);
  const byRoute = Object.fromEntries(legLines.map((l) => [l.route, l]));
  assert.equal(byRoute['product-page.product'].status, 200);
  assert.equal(byRoute['product-page.stock'].status, 200);
  assert.equal(byRoute['product-page.reviews'].status, 503, 'the leg\'s own status');
  assert.equal(lines.length, 4, `four lines in all (got ${JSON.stringify(lines)})`);
  // The composite's line lists its legs: each one's status and time, and why it failed.
  const legs = composite[0].legs;
  assert.deepEqual(legs.map((l) => [l.leg, l.status, l.error]), [
    ['product', 200, undefined], ['reviews', 503, 'leg_status'], ['stock', 200, undefined]]);
  for (const l of legs) assert.ok(typeof l.ms === 'number' && l.ms >= 0 && l.ms <= composite[0].duration_ms, JSON.stringify(l));
  assert.equal(legLines.every((l) => l.legs === undefined), true, 'only the composite\'s line has legs');
});

// --- 12. HTTP/2 ----------------------------------------------------------------------------------

test('HTTP/2 (h2c, curl --http2-prior-knowledge): the same composite as over HTTP/1.1', async () => {
  products.answer('/products/h2', { json: { id: 'h2', name: 'Chair' } });
  reviews.answer('/reviews', { json: { count: 1 } });
  inventory.answer('/stock/h2', { json: { available: 9 } });
  const h1 = jsonAnswer(await get('/api/product-page/h2?lang=de'), 200);
  assert.deepEqual(h1, { product: { id: 'h2', name: 'Chair' }, reviews: { count: 1 }, stock: { available: 9 } });
  const rm = reviews.mark();
  const r = await curl(['--http2-prior-knowledge', gh.url('/api/product-page/h2?lang=de')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.status, 200, `HTTP/2 200 (got ${r.status} ${r.body.slice(0, 300)})`);
  assert.match(String(r.headers['content-type']), /^application\/json/i);
  assert.deepEqual(JSON.parse(r.body), h1);
  const rv = onlyRequest(reviews, rm, '/reviews');
  assert.equal(rv.url, '/reviews?product=h2&lang=de');
  assert.equal(rv.headers['x-request-id'], r.headers['x-request-id'][0], 'the leg got the composite\'s request id');
});

// --- caching headers -----------------------------------------------------------------------------

// The composite's Cache-Control is no more permissive than its most restrictive leg's, and its
// ETag is made of the legs' (the same validators, the same tag); a partial answer is not kept.
test('caching headers: the most restrictive leg\'s Cache-Control, an ETag made of the legs\', no-store when partial', async () => {
  const leg = (json, cc, etag) => ({ json, headers: { 'cache-control': cc, etag } });
  products.answer('/products/cc1', leg({ id: 'cc1' }, 'public, max-age=300', '"p1"'));
  reviews.answer('/reviews', leg([], 'private, max-age=60', '"r1"'));
  inventory.answer('/stock/cc1', leg({ n: 1 }, 'max-age=120, must-revalidate', '"s1"'));
  const r1 = await get('/api/product-page/cc1');
  jsonAnswer(r1, 200);
  assert.equal(r1.headers['cache-control'], 'private, max-age=60, must-revalidate');
  assert.match(r1.headers.etag, /^W\/"[0-9a-f]{32}"$/);
  const r2 = await get('/api/product-page/cc1');
  assert.equal(r2.headers.etag, r1.headers.etag, 'the same legs\' validators, the same tag');
  inventory.answer('/stock/cc1', leg({ n: 2 }, 'max-age=120', '"s2"'));
  const r3 = await get('/api/product-page/cc1');
  assert.notEqual(r3.headers.etag, r1.headers.etag, 'a leg changed, the tag changed');
  // A leg without a validator: no ETag; one that says no-store: no-store.
  inventory.answer('/stock/cc1', { json: { n: 3 }, headers: { 'cache-control': 'no-store' } });
  const r4 = await get('/api/product-page/cc1');
  assert.equal(r4.headers['cache-control'], 'no-store');
  assert.equal(r4.headers.etag, undefined);
  // A failed optional leg: the partial answer is not to be kept.
  inventory.answer('/stock/cc1', { status: 503, json: {} });
  const r5 = await get('/api/product-page/cc1');
  assert.equal(jsonAnswer(r5, 200).stock, null);
  assert.equal(r5.headers['cache-control'], 'no-store');
});
