// The admin dashboard (GET /dashboard, src/admin/dashboard/): the real page in headless Chromium
// (driven by playwright-core) against the real binary and real upstreams: live numbers and charts,
// health, reloads, the admin token, 500 routes, and a screenshot kept as an artefact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startGatehouse, curl, freePort, waitFor, requireTool, tempFile, httpGet } from './harness.mjs';
import { startUpstream } from './upstream.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const POLL_MS = 250;          // the page's poll interval in these tests (?interval=)
const UI_TIMEOUT = 10000;     // how long the page may take to show what is awaited

// Chromium as found on PATH (resolved, so playwright launches the same binary a user would).
function chromiumOnPath() {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir || '.', 'chromium');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.realpathSync(p);
    } catch { /* next */ }
  }
  return null;
}

let browser;
let up;
before(async () => {
  requireTool('chromium');
  browser = await chromium.launch({ executablePath: chromiumOnPath(), args: ['--no-sandbox'] });
  up = await startUpstream({ name: 'echo' });
});
after(async () => {
  await browser?.close();
  await up?.close();
});

// A gateway with an admin listener; `body` is the YAML from `upstreams:` on.
async function startWithAdmin(body, { token, configFile = null, workers = 2 } = {}) {
  const adminPort = await freePort();
  const yaml = `
server:
  workers: ${workers}
  listen: [ { address: 127.0.0.1:0 } ]
admin:
  listen: 127.0.0.1:${adminPort}
${token ? '  token_env: GH_DASHBOARD_TOKEN' : ''}
${body}`;
  if (configFile) fs.writeFileSync(configFile, yaml);
  const gh = await startGatehouse(yaml, { configFile, env: token ? { GH_DASHBOARD_TOKEN: token } : {} });
  gh.admin = (p) => `http://127.0.0.1:${adminPort}${p}`;
  gh.dashboard = gh.admin(`/dashboard?interval=${POLL_MS}`);
  gh.yaml = yaml;
  return gh;
}

// A page in a fresh context, with every console error or warning and uncaught exception kept.
async function openPage({ viewport = { width: 1400, height: 1000 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, problems };
}

// Requests to the gateway: `perTick` every 50 ms for `ms`, over keep-alive connections; resolves
// the statuses once all are answered.
async function traffic(port, paths, { ms = 2000, perTick = 5 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const pending = [];
  const end = Date.now() + ms;
  let i = 0;
  await new Promise((resolve) => {
    const tick = () => {
      for (let k = 0; k < perTick; k++) {
        pending.push(httpGet(port, paths[i++ % paths.length], { agent }).then((r) => r.status, () => 0));
      }
      if (Date.now() >= end) resolve(); else setTimeout(tick, 50);
    };
    tick();
  });
  const statuses = await Promise.all(pending);
  agent.destroy();
  return statuses;
}

const testid = (page, id) => page.locator(`[data-testid="${id}"]`);
const escapeRe = (s) => s.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&');
const number = (s) => Number.parseFloat(String(s).replace(/,/g, ''));

// Waits until the page shows the version of /status.
async function waitForVersion(page, version) {
  await page.waitForFunction((v) => document.querySelector('[data-testid="config-version"]')?.textContent === String(v),
    version, { timeout: UI_TIMEOUT });
}

test('the page loads without console errors and shows the config version of /status', async () => {
  const gh = await startWithAdmin(`
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: echo, match: { path: /echo/* }, to: echo }
`);
  const { context, page, problems } = await openPage();
  try {
    const res = await page.goto(gh.dashboard);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'], /default-src 'self'/);
    const status = JSON.parse((await curl([gh.admin('/status')])).body);
    await waitForVersion(page, status.version);
    assert.match(await testid(page, 'loaded-at').textContent(), /\d/);
    assert.match(await testid(page, 'last-reload').textContent(), /none/);
    await page.locator('tr[data-route="echo"]').waitFor({ timeout: UI_TIMEOUT });
    await page.locator(`tr[data-target="echo/127.0.0.1:${up.port}"]`).waitFor({ timeout: UI_TIMEOUT });
    // A few polls more, so that errors of later polls (rates, charts) would show too.
    await page.waitForFunction(() => document.querySelector('[data-testid="chart-rps-line"]'), null, { timeout: UI_TIMEOUT });
    await waitFor(async () => (await testid(page, 'rps').textContent()) === '0', UI_TIMEOUT, 'a rate of 0');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('charts move when traffic flows: the rps tile, the chart line and the route row', async () => {
  const gh = await startWithAdmin(`
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: echo, match: { path: /echo/* }, to: echo }
  - { name: idle, match: { path: /idle/* }, to: echo }
`);
  const { context, page, problems } = await openPage();
  try {
    await page.goto(gh.dashboard);
    const line = testid(page, 'chart-rps-line');
    await line.waitFor({ state: 'attached', timeout: UI_TIMEOUT });
    const before = await line.getAttribute('d');
    const sent = traffic(gh.port, ['/echo/a', '/echo/b'], { ms: 2000, perTick: 5 });
    await waitFor(async () => number(await testid(page, 'rps').textContent()) > 0, UI_TIMEOUT, 'the rps tile > 0');
    // The line leaves its baseline: some point is higher (a smaller y) than the lowest one.
    await waitFor(async () => {
      const d = await line.getAttribute('d');
      const ys = [...d.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
      return d !== before && ys.length > 1 && Math.min(...ys) < Math.max(...ys);
    }, UI_TIMEOUT, 'the chart line to rise');
    const row = page.locator('tr[data-route="echo"]');
    await waitFor(async () => number(await row.locator('td').nth(1).textContent()) > 0, UI_TIMEOUT, 'the route row req/s > 0');
    assert.ok(number(await row.locator('td').nth(4).textContent()) > 0, 'the route row has a p99');
    assert.equal(await page.locator('tr[data-route="idle"] td').nth(1).textContent(), '0');
    const statuses = await sent;
    assert.ok(statuses.length >= 150, `sent ${statuses.length}`);
    assert.deepEqual([...new Set(statuses)], [200]);
    assert.match(await testid(page, 'p99').textContent(), /\d+(\.\d+)? (ms|s)$/);
    assert.equal(await testid(page, 'error-rate').textContent(), '0%');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('a target the test kills turns unhealthy on the page', async () => {
  const doomed = await startUpstream({ name: 'doomed' });
  const gh = await startWithAdmin(`
upstreams:
  pool:
    targets: [ { address: 127.0.0.1:${up.port} }, { address: 127.0.0.1:${doomed.port} } ]
    health_check: { path: /healthz, interval: 200ms, timeout: 200ms, unhealthy_after: 1, healthy_after: 1 }
routes:
  - { name: pool, match: { path: /* }, to: pool }
`);
  const { context, page, problems } = await openPage();
  try {
    await page.goto(gh.dashboard);
    const health = page.locator(`tr[data-target="pool/127.0.0.1:${doomed.port}"] [data-testid="health"]`);
    await waitFor(async () => (await health.textContent({ timeout: UI_TIMEOUT })) === 'healthy', UI_TIMEOUT, 'healthy');
    await doomed.close();
    await waitFor(async () => (await health.textContent()) === 'unhealthy', UI_TIMEOUT, 'the killed target shown unhealthy');
    const other = page.locator(`tr[data-target="pool/127.0.0.1:${up.port}"] [data-testid="health"]`);
    assert.equal(await other.textContent(), 'healthy');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('a failed reload shows its errors with FILE:LINE:COL; a fixed file reloads to a new version', async () => {
  const file = tempFile('dashboard-reload.yaml');
  const good = (name) => `
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: ${name}, match: { path: /echo/* }, to: echo }
`;
  const gh = await startWithAdmin(good('first'), { configFile: file });
  const { context, page, problems } = await openPage();
  try {
    await page.goto(gh.dashboard);
    await waitForVersion(page, 1);
    fs.writeFileSync(file, gh.yaml.replace(good('first'), good('broken').replace('to: echo', 'to: nowhere')));
    await testid(page, 'reload-button').click();
    const result = testid(page, 'reload-result');
    await waitFor(async () => /unknown upstream/.test(await result.textContent()), UI_TIMEOUT, 'the reload errors');
    const text = await result.textContent();
    assert.ok(text.includes(`${file}:`), text);
    assert.match(text, new RegExp(`${escapeRe(file)}:\\d+:\\d+: routes\\[0\\]\\.to: unknown upstream 'nowhere'`));
    await waitFor(async () => /failed/.test(await testid(page, 'last-reload').textContent()), UI_TIMEOUT, 'last reload: failed');
    assert.equal(await testid(page, 'config-version').textContent(), '1', 'still serving version 1');
    assert.match(await page.locator('#last-reload-errors').textContent(), /\d+:\d+: routes\[0\]\.to: unknown upstream 'nowhere'/);

    fs.writeFileSync(file, gh.yaml.replace(good('first'), good('second')));
    await testid(page, 'reload-button').click();
    await waitFor(async () => /version 2/.test(await result.textContent()), UI_TIMEOUT, 'the new version in the result');
    await waitForVersion(page, 2);
    await waitFor(async () => /^ok/.test(await testid(page, 'last-reload').textContent()), UI_TIMEOUT, 'last reload: ok');
    await page.locator('tr[data-route="second"]').waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.locator('tr[data-route="first"]').count(), 0);
    assert.ok(await page.locator('#last-reload-errors').isHidden());
    // The browser reports the 400 answer to POST /reload as a failed resource load; nothing else.
    assert.deepEqual(problems.filter((p) => !/status of 400 .*\/reload\)$/.test(p)), []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('the token is required when set: 401 and the login form without it, the dashboard with it', async () => {
  const token = 'open sesame; 100% (really)';
  const gh = await startWithAdmin(`
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
  - { name: echo, match: { path: /echo/* }, to: echo }
`, { token });
  const plain = await curl([gh.admin('/dashboard')]);
  assert.equal(plain.status, 401);
  assert.match(plain.body, /<form method="post" action="\/dashboard\/login">/);
  assert.match(plain.body, /name="token"/);
  assert.equal((await curl([gh.admin('/status')])).status, 401);
  assert.equal((await curl([gh.admin('/metrics')])).status, 401);
  const { context, page, problems } = await openPage();
  try {
    let res = await page.goto(gh.dashboard);
    assert.equal(res.status(), 401);
    await page.locator('input[name="token"]').fill('not it');
    [res] = await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
    assert.equal(res.status(), 401);
    assert.equal(await page.locator('form[action="/dashboard/login"]').count(), 1, 'the login form again');
    assert.equal(await testid(page, 'config-version').count(), 0);

    await page.locator('input[name="token"]').fill(token);
    [res] = await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/dashboard');
    await waitForVersion(page, 1);
    const sent = traffic(gh.port, ['/echo/x'], { ms: 1500, perTick: 3 });
    await waitFor(async () => number(await testid(page, 'rps').textContent()) > 0, UI_TIMEOUT, 'live rps');
    await sent;
    assert.equal(await page.evaluate(() => document.cookie), '', 'the cookie is HttpOnly');
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, 'gatehouse_admin');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.locator('#banner').isHidden(), true);

    // A session that loses its cookie is told, on its next poll, to sign in again.
    await context.clearCookies();
    const banner = page.locator('#banner');
    await waitFor(async () => /needs the admin token/.test(await banner.textContent()), UI_TIMEOUT, 'the sign-in banner');
    assert.equal(await banner.locator('a').getAttribute('href'), '/dashboard');
    // The 401 answers (the form before signing in and after the wrong token, the polls without
    // the cookie) are failed loads to the browser; nothing else may complain.
    assert.deepEqual(problems.filter((p) => !/status of 401 .*\/(dashboard(\/login|\?interval=\d+)?|status|metrics)\)$/.test(p)), []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('500 routes: the search box narrows the rows, the headers sort them', async () => {
  const names = Array.from({ length: 500 }, (_, i) => `r${String(i).padStart(3, '0')}`);
  const gh = await startWithAdmin(`
upstreams:
  echo: { targets: [ { address: 127.0.0.1:${up.port} } ] }
routes:
${names.map((n) => `  - { name: ${n}, match: { path: /${n}/* }, to: echo }`).join('\n')}
`);
  const { context, page, problems } = await openPage();
  try {
    await page.goto(gh.dashboard);
    const rows = page.locator('[data-testid="routes-table"] tbody tr[data-route]');
    await waitFor(async () => (await rows.count()) === 500, UI_TIMEOUT, '500 rows');
    const sent = traffic(gh.port, ['/r007/x', '/r042/x', '/r499/x'], { ms: 1500, perTick: 3 });
    await waitFor(async () => number(await page.locator('tr[data-route="r042"] td').nth(1).textContent()) > 0,
      UI_TIMEOUT, 'r042 with traffic');
    await sent;

    await testid(page, 'route-search').fill('r04');
    const shown = async () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.route));
    await waitFor(async () => (await rows.count()) === 10, UI_TIMEOUT, 'the rows filtered');
    assert.deepEqual(await shown(), names.filter((n) => n.startsWith('r04')));
    // The filter holds across polls (rows are updated in place, not redrawn unfiltered).
    const polls = async () => Number(await page.evaluate(() => document.documentElement.dataset.polls));
    const now = await polls();
    await waitFor(async () => (await polls()) >= now + 2, UI_TIMEOUT, 'two polls more');
    assert.deepEqual(await shown(), names.filter((n) => n.startsWith('r04')));

    await testid(page, 'route-search').fill('');
    await waitFor(async () => (await rows.count()) === 500, UI_TIMEOUT, 'all rows again');
    const byName = page.locator('th[data-sort="name"]');
    assert.equal((await shown())[0], 'r000', 'ascending by name at first');
    await byName.click();
    await waitFor(async () => (await shown())[0] === 'r499', UI_TIMEOUT, 'r499 first');
    assert.equal(await byName.getAttribute('aria-sort'), 'descending');
    assert.deepEqual((await shown()).slice(0, 3), ['r499', 'r498', 'r497']);
    await byName.click();
    await waitFor(async () => (await shown())[0] === 'r000', UI_TIMEOUT, 'r000 first again');

    // By req/s, busiest first: the three routes with traffic lead.
    await page.locator('th[data-sort="rps"]').click();
    await waitFor(async () => (await shown()).slice(0, 3).sort().join() === 'r007,r042,r499', UI_TIMEOUT, 'busy routes first');

    // Usable: a keystroke in the search box redraws 500 rows quickly.
    const ms = await page.evaluate(async () => {
      const input = document.querySelector('[data-testid="route-search"]');
      const t0 = performance.now();
      for (const v of ['r1', 'r', '', 'r2', '']) {
        input.value = v;
        input.dispatchEvent(new Event('input'));
      }
      return performance.now() - t0;
    });
    assert.ok(ms < 500, `5 filter changes over 500 rows took ${ms} ms`);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await gh.stop();
  }
});

test('a screenshot of the dashboard with traffic is saved as an artefact', async () => {
  const second = await startUpstream({ name: 'second' });
  const slow = await startUpstream({ name: 'slow', echoDelayMs: 40 });
  const gh = await startWithAdmin(`
upstreams:
  catalog:
    targets: [ { address: 127.0.0.1:${up.port} }, { address: 127.0.0.1:${second.port} } ]
    health_check: { path: /healthz, interval: 1s }
  search: { targets: [ { address: 127.0.0.1:${slow.port} } ] }
  gone: { targets: [ { address: 127.0.0.1:1 } ] }
routes:
  - { name: products, match: { path: /products/* }, to: catalog }
  - { name: search, match: { path: /search/* }, to: search }
  - { name: cached, match: { path: /cached/* }, to: catalog, rewrite: { strip_prefix: /cached }, plugins: { cache: { ttl: 30s } } }
  - { name: limited, match: { path: /limited/* }, to: catalog, plugins: { rate_limit: { limits: ["5/s"], key: route } } }
  - { name: legacy, match: { path: /legacy/* }, to: gone }
`);
  const { context, page, problems } = await openPage({ viewport: { width: 1440, height: 900 } });
  try {
    await page.goto(gh.dashboard);
    await waitForVersion(page, 1);
    const polls = async () => Number(await page.evaluate(() => document.documentElement.dataset.polls));
    const start = await polls();
    const sent = traffic(gh.port, ['/products/1', '/products/2', '/search/a', '/cached/echo/a', '/cached/echo/b',
      '/limited/x', '/products/3', '/legacy/x', '/products/4', '/limited/y'], { ms: 6000, perTick: 6 });
    // Some seconds of history drawn while the traffic still flows.
    await waitFor(async () => (await polls()) >= start + 18, UI_TIMEOUT, 'polls with traffic');
    assert.ok(number(await testid(page, 'rps').textContent()) > 0);
    assert.ok(number(await testid(page, 'limited').textContent()) > 0, 'rate-limited/s');
    await page.locator('#tile-cache').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    const dir = path.join(here, 'artifacts');
    fs.mkdirSync(dir, { recursive: true });
    const png = await page.screenshot({ path: path.join(dir, 'dashboard.png'), fullPage: true });
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    if (process.env.DASHBOARD_SCREENSHOT_FOR_DOCS === '1') {
      const docs = path.resolve(here, '../../docs/images');
      fs.mkdirSync(docs, { recursive: true });
      fs.writeFileSync(path.join(docs, 'dashboard.png'), png);
    }
    await sent;
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await gh.stop();
    await second.close();
    await slow.close();
  }
});
