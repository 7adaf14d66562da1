// Gatehouse dashboard: polls /status and /metrics (same origin, the admin cookie) while the tab is
// visible, parses the Prometheus text here, keeps the last 5 minutes in memory, draws plain SVG.
'use strict';
(() => {
  const params = new URLSearchParams(location.search);
  const INTERVAL = Math.max(100, Number(params.get('interval')) || 1000);
  const HISTORY_MS = 5 * 60 * 1000;   // charts
  const WINDOW_MS = 10 * 1000;        // the routes table's rates
  const MIN_SPAN_MS = 10 * 1000;      // a chart's time axis grows with its history, from this

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs = {}, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };

  // ---- Prometheus text format 0.0.4 ----

  // Samples { name, labels, value } of an exposition; comments and malformed lines are skipped.
  function parseProm(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      let i = 0;
      while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
      const name = line.slice(0, i);
      const labels = {};
      if (line[i] === '{') {
        i++;
        while (i < line.length && line[i] !== '}') {
          while (line[i] === ' ' || line[i] === ',') i++;
          if (line[i] === '}') break;
          const eq = line.indexOf('=', i);
          if (eq < 0 || line[eq + 1] !== '"') return out;
          const key = line.slice(i, eq).trim();
          let v = '';
          let j = eq + 2;
          for (; j < line.length && line[j] !== '"'; j++) {
            if (line[j] === '\\' && j + 1 < line.length) {
              j++;
              v += line[j] === 'n' ? '\n' : line[j];
            } else {
              v += line[j];
            }
          }
          labels[key] = v;
          i = j + 1;
        }
        i++;
      }
      const rest = line.slice(i).trim().split(/\s+/);
      const value = parseValue(rest[0]);
      if (name && !Number.isNaN(value)) out.push({ name, labels, value });
    }
    return out;
  }
  function parseValue(s) {
    if (s === '+Inf' || s === 'Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    if (s === undefined || s === '') return NaN;
    return Number(s);
  }

  // One poll's counters, by route: requests, 5xx, limited, histogram buckets (le -> cumulative).
  function snapshotOf(samples, t) {
    const routes = new Map();
    const r = (name) => {
      let x = routes.get(name);
      if (!x) routes.set(name, x = { req: 0, err: 0, limited: 0, buckets: new Map() });
      return x;
    };
    const cache = { hit: 0, all: 0, seen: false };
    for (const s of samples) {
      switch (s.name) {
        case 'gatehouse_requests_total': {
          const x = r(s.labels.route ?? '');
          x.req += s.value;
          if (/^5/.test(s.labels.code || '')) x.err += s.value;
          break;
        }
        case 'gatehouse_request_duration_seconds_bucket': {
          const b = r(s.labels.route ?? '').buckets;
          const le = parseValue(s.labels.le);
          b.set(le, (b.get(le) || 0) + s.value);
          break;
        }
        case 'gatehouse_rate_limit_decisions_total':
          if (s.labels.result === 'limited') r(s.labels.route ?? '').limited += s.value;
          break;
        case 'gatehouse_cache_requests_total':
          cache.seen = true;
          cache.all += s.value;
          if (s.labels.result === 'hit') cache.hit += s.value;
          break;
        default:
      }
    }
    return { t, routes, cache };
  }

  // A counter's increase between two readings; a reset (the gateway restarted) starts from 0.
  const inc = (now, before) => (now >= before ? now - before : now);

  // Bucket increases (le -> count, cumulative) of one route between two snapshots.
  function bucketDelta(now, before, into = new Map()) {
    for (const [le, c] of now.buckets) {
      const d = inc(c, before ? before.buckets.get(le) || 0 : 0);
      into.set(le, (into.get(le) || 0) + d);
    }
    return into;
  }

  // histogram_quantile as Prometheus computes it: linear interpolation within the bucket where the
  // rank falls; the +Inf bucket answers the highest finite bound. NaN without observations.
  function quantile(q, buckets) {
    const bs = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    if (bs.length < 2 || bs[bs.length - 1][0] !== Infinity) return NaN;
    // Cumulative counts must not decrease (they can, a little, across workers read at different times).
    for (let i = 1; i < bs.length; i++) if (bs[i][1] < bs[i - 1][1]) bs[i][1] = bs[i - 1][1];
    const total = bs[bs.length - 1][1];
    if (!(total > 0)) return NaN;
    let rank = q * total;
    let i = bs.findIndex((b) => b[1] >= rank);
    if (i === bs.length - 1) return bs[bs.length - 2][0];
    if (i === 0 && bs[0][0] <= 0) return bs[0][0];
    const start = i === 0 ? 0 : bs[i - 1][0];
    const below = i === 0 ? 0 : bs[i - 1][1];
    const end = bs[i][0];
    const count = bs[i][1] - below;
    rank -= below;
    return count > 0 ? start + (end - start) * (rank / count) : end;
  }

  // Rates between two snapshots: totals, and by route when `byRoute`.
  function ratesBetween(now, before, byRoute) {
    const dt = (now.t - before.t) / 1000;
    const total = { req: 0, err: 0, limited: 0, buckets: new Map() };
    const routes = byRoute ? new Map() : null;
    for (const [name, x] of now.routes) {
      const b = before.routes.get(name);
      const req = inc(x.req, b ? b.req : 0);
      const err = inc(x.err, b ? b.err : 0);
      const limited = inc(x.limited, b ? b.limited : 0);
      total.req += req; total.err += err; total.limited += limited;
      bucketDelta(x, b, total.buckets);
      if (byRoute) {
        const bk = bucketDelta(x, b);
        routes.set(name, {
          rps: req / dt, errors: req > 0 ? err / req : NaN, limited: limited / dt,
          p50: quantile(0.5, bk), p95: quantile(0.95, bk), p99: quantile(0.99, bk),
        });
      }
    }
    const cache = now.cache.seen ? {
      hit: inc(now.cache.hit, before.cache.hit), all: inc(now.cache.all, before.cache.all),
    } : null;
    return {
      t: now.t, dt,
      rps: total.req / dt,
      errorRate: total.req > 0 ? total.err / total.req : NaN,
      limited: total.limited / dt,
      p50: quantile(0.5, total.buckets), p95: quantile(0.95, total.buckets), p99: quantile(0.99, total.buckets),
      cacheHit: cache && cache.all > 0 ? cache.hit / cache.all : NaN,
      cacheSeen: Boolean(cache),
      routes,
    };
  }

  // ---- formatting ----
  const fmtRate = (v) => (!Number.isFinite(v) ? '\u2013' : v === 0 ? '0' : v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : Math.round(v).toLocaleString());
  const fmtPct = (v) => (!Number.isFinite(v) ? '\u2013' : v === 0 ? '0%' : v < 0.001 ? (v * 100).toFixed(3) + '%' : (v * 100).toFixed(v < 0.1 ? 2 : 1) + '%');
  function fmtSec(v) {
    if (!Number.isFinite(v)) return '\u2013';
    const ms = v * 1000;
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return v.toFixed(2) + ' s';
  }
  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const today = d.toDateString() === new Date().toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }
  function fmtAgo(iso) {
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!Number.isFinite(s)) return '';
    if (s < 60) return `${Math.max(0, s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  // ---- state ----
  const snapshots = [];   // the last WINDOW_MS of snapshots (and one before), for the table
  const history = [];     // per-poll rates for the charts, HISTORY_MS of them
  let lastStatus = null;
  let timer = null;
  let inFlight = false;
  let polls = 0;
  let stopped = false;    // after a 401: the session needs the token

  function showBanner(node) {
    const b = $('banner');
    b.replaceChildren(...(node ? [node] : []));
    b.hidden = !node;
  }
  function needToken() {
    stopped = true;
    clearTimeout(timer);
    const p = el('span');
    p.append('This session needs the admin token. ', el('a', { href: '/dashboard' }, 'Sign in again'), '.');
    showBanner(p);
    setLive('off', 'signed out');
  }
  function setLive(cls, text) {
    const l = $('live');
    l.className = 'live ' + cls;
    setText($('live-text'), text);
  }

  async function getJson(url) {
    const res = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
    return res;
  }

  async function poll() {
    if (stopped || inFlight || document.visibilityState === 'hidden') return;
    inFlight = true;
    try {
      const [st, mt] = await Promise.all([getJson('/status'), getJson('/metrics')]);
      if (st.status === 401 || mt.status === 401) { needToken(); return; }
      if (!st.ok || !mt.ok) throw new Error(`the admin API answered ${st.ok ? mt.status : st.status}`);
      const [status, text] = await Promise.all([st.json(), mt.text()]);
      const snap = snapshotOf(parseProm(text), performance.now());
      showBanner(null);
      setLive('on', 'live');
      update(status, snap);
      document.documentElement.dataset.polls = String(++polls);  // for tests: polls drawn
    } catch (e) {
      showBanner(el('span', {}, `Cannot reach the gateway's admin API: ${e.message || e}. Retrying.`));
      setLive('off', 'offline');
    } finally {
      inFlight = false;
      schedule();
    }
  }
  function schedule() {
    clearTimeout(timer);
    if (!stopped && document.visibilityState !== 'hidden') timer = setTimeout(poll, INTERVAL);
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') {
      clearTimeout(timer);
      setLive('', 'paused (tab hidden)');
    } else {
      poll();
    }
  });

  function update(status, snap) {
    const prev = snapshots[snapshots.length - 1];
    // A gap (the tab was hidden) makes no chart point; the next poll starts again.
    const gap = prev && snap.t - prev.t > Math.max(5000, INTERVAL * 5);
    if (gap) snapshots.length = 0;
    if (prev && !gap) history.push(ratesBetween(snap, prev, false));
    else if (gap) history.push({ t: snap.t, gap: true });
    snapshots.push(snap);
    while (snapshots.length > 2 && snap.t - snapshots[1].t >= WINDOW_MS) snapshots.shift();
    while (history.length && snap.t - history[0].t > HISTORY_MS) history.shift();
    lastStatus = status;
    const oldest = snapshots[0];
    const windowRates = oldest !== snap ? ratesBetween(snap, oldest, true) : null;
    renderHeader(status);
    renderTiles(history[history.length - 1], windowRates);
    renderCharts();
    renderRoutes(status, windowRates);
    renderTargets(status);
  }

  // ---- header ----
  function renderHeader(s) {
    setText($('config-version'), String(s.version));
    setText($('loaded-at'), `${fmtTime(s.loaded_at)} (${fmtAgo(s.loaded_at)})`);
    $('loaded-at').title = s.config_file ? `from ${s.config_file}` : '';
    setText($('workers'), String(s.workers));
    setText($('connections'), String(s.connections));
    setText($('state'), s.draining ? 'draining' : 'serving');
    $('state').style.color = s.draining ? 'var(--warn)' : '';
    const lr = s.last_reload;
    const errBox = $('last-reload-errors');
    if (!lr) {
      setText($('last-reload'), 'none since start');
      errBox.hidden = true;
    } else {
      setText($('last-reload'), `${lr.ok ? 'ok' : 'failed'} at ${fmtTime(lr.at)} (${fmtAgo(lr.at)})`);
      $('last-reload').style.color = lr.ok ? 'var(--ok)' : 'var(--bad)';
      const key = JSON.stringify([lr.at, lr.errors]);
      if (!lr.ok && lr.errors && lr.errors.length) {
        if (errBox.dataset.key !== key) {
          errBox.dataset.key = key;
          errBox.replaceChildren(el('strong', {}, `The last reload failed (${fmtTime(lr.at)}); still serving version ${s.version}:`),
            listOf(lr.errors));
        }
        errBox.hidden = false;
      } else {
        errBox.hidden = true;
      }
    }
  }
  function listOf(errors) {
    const ul = el('ul');
    for (const e of errors) { const li = el('li'); li.append(el('code', {}, e)); ul.append(li); }
    return ul;
  }

  $('reload-button').addEventListener('click', async () => {
    const btn = $('reload-button');
    const out = $('reload-result');
    btn.disabled = true;
    try {
      const res = await fetch('/reload', { method: 'POST', cache: 'no-store', credentials: 'same-origin' });
      if (res.status === 401) { needToken(); return; }
      const body = await res.json().catch(() => ({}));
      if (res.ok) {
        out.className = 'result ok';
        out.replaceChildren(`Reloaded: now serving config version ${body.version}.`);
      } else {
        out.className = 'result bad';
        out.replaceChildren(el('strong', {}, `Reload refused (${res.status}): ${body.message || body.error || 'error'}`),
          listOf(body.errors || []));
      }
    } catch (e) {
      out.className = 'result bad';
      out.replaceChildren(`Reload failed: ${e.message || e}`);
    } finally {
      out.hidden = false;
      btn.disabled = false;
      if (!stopped) { clearTimeout(timer); poll(); }
    }
  });

  // ---- tiles ----
  function renderTiles(h, windowRates) {
    const ok = h && !h.gap;
    $('rps').textContent = ok ? fmtRate(h.rps) : '\u2013';
    $('error-rate').textContent = ok ? fmtPct(h.errorRate) : '\u2013';
    $('tile-error').classList.toggle('bad', ok && h.errorRate > 0.01);
    $('p50').textContent = ok ? fmtSec(h.p50) : '\u2013';
    $('p95').textContent = ok ? fmtSec(h.p95) : '\u2013';
    $('p99').textContent = ok ? fmtSec(h.p99) : '\u2013';
    $('limited').textContent = ok ? fmtRate(h.limited) : '\u2013';
    // The cache's hit ratio over the table's window, not one poll: lookups are few on a quiet route.
    if (windowRates && windowRates.cacheSeen) {
      $('tile-cache').hidden = false;
      $('cache-hit-ratio').textContent = fmtPct(windowRates.cacheHit);
    }
  }

  // ---- charts ----
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function drawChart(svg, series, { fmt, minMax = 0, area = false }) {
    const W = Math.max(200, svg.clientWidth || 600);
    const H = Math.max(100, svg.clientHeight || 170);
    const L = 56, R = 10, T = 8, B = 22;
    const now = performance.now();
    const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, history.length ? now - history[0].t : 0));
    const t0 = now - span;
    let max = minMax;
    for (const s of series) for (const h of history) { const v = s.get(h); if (Number.isFinite(v) && v > max) max = v; }
    max = niceMax(max);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    const nodes = [];
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      nodes.push(svgEl('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      nodes.push(svgEl('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, i === 0 ? '0' : fmt(v)));
    }
    const step = span <= 20000 ? 5000 : span <= 60000 ? 15000 : span <= 150000 ? 30000 : 60000;
    for (let ago = 0; ago <= span; ago += step) {
      const xt = x(now - ago);
      const label = ago === 0 ? 'now' : ago < 60000 ? `-${ago / 1000}s` : `-${Math.floor(ago / 60000)}m${ago % 60000 ? `${(ago % 60000) / 1000}s` : ''}`;
      if (ago > 0 && x(now - ago) < L + 12) continue;
      nodes.push(svgEl('text', { class: 'axis', x: xt, y: H - 6, 'text-anchor': ago === 0 ? 'end' : 'middle' }, label));
    }
    nodes.push(svgEl('line', { class: 'grid', x1: L, x2: L, y1: T, y2: H - B }));
    for (const s of series) {
      let d = '';
      let pen = false;
      const segs = [];
      let seg = [];
      for (const h of history) {
        const v = h.gap ? NaN : s.get(h);
        if (!Number.isFinite(v)) { pen = false; if (seg.length) segs.push(seg); seg = []; continue; }
        const px = x(h.t).toFixed(1), py = y(Math.min(v, max)).toFixed(1);
        d += `${pen ? 'L' : 'M'}${px},${py}`;
        seg.push([px, py]);
        pen = true;
      }
      if (seg.length) segs.push(seg);
      if (area) {
        let a = '';
        for (const sg of segs) a += `M${sg[0][0]},${y(0)}` + sg.map(([px, py]) => `L${px},${py}`).join('') + `L${sg[sg.length - 1][0]},${y(0)}Z`;
        nodes.push(svgEl('path', { d: a || 'M0,0', fill: s.color, 'fill-opacity': 0.15, stroke: 'none' }));
      }
      const attrs = { class: 'line', d: d || `M${L},${y(0)}`, stroke: s.color };
      if (s.testid) attrs['data-testid'] = s.testid;
      nodes.push(svgEl('path', attrs));
    }
    if (!history.some((h) => !h.gap)) {
      nodes.push(svgEl('text', { class: 'empty', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' }, 'waiting for data\u2026'));
    }
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren(...nodes);
  }
  function renderCharts() {
    const css = getComputedStyle(document.documentElement);
    const c = (n) => css.getPropertyValue(n).trim();
    drawChart($('chart-rps'), [{ get: (h) => h.rps, color: c('--accent'), testid: 'chart-rps-line' }],
      { fmt: (v) => fmtRate(v), area: true });
    drawChart($('chart-latency'), [
      { get: (h) => h.p50, color: c('--p50'), testid: 'chart-latency-p50' },
      { get: (h) => h.p95, color: c('--p95'), testid: 'chart-latency-p95' },
      { get: (h) => h.p99, color: c('--p99'), testid: 'chart-latency-p99' },
    ], { fmt: (v) => fmtSec(v), minMax: 0.001 });
    drawChart($('chart-errors'), [{ get: (h) => h.errorRate, color: c('--bad'), testid: 'chart-errors-line' }],
      { fmt: (v) => `${+(v * 100).toPrecision(3)}%`, minMax: 0.01, area: true });
    const span = history.length ? performance.now() - history[0].t : 0;
    setText($('span-rps'), span > 0 ? `last ${span >= 60000 ? Math.round(span / 60000) + ' min' : Math.round(span / 1000) + ' s'}` : '');
  }

  // ---- routes table ----
  const routeRows = new Map();   // name -> { tr, cells, data }
  let sortKey = 'name';
  let sortDir = 1;               // 1 ascending, -1 descending
  let filter = '';
  let shownOrder = '';           // the names shown, in order, joined: re-attach rows only on change
  const COLS = ['name', 'rps', 'p50', 'p95', 'p99', 'errors', 'limited'];

  function renderRoutes(status, rates) {
    const names = new Set(status.routes.map((r) => r.name));
    for (const [name, row] of routeRows) if (!names.has(name)) routeRows.delete(name);
    for (const name of names) {
      let row = routeRows.get(name);
      if (!row) {
        const tr = el('tr', { 'data-route': name });
        const cells = COLS.map((c) => tr.appendChild(el('td', c === 'name' ? { class: 'name' } : {})));
        cells[0].textContent = name;
        row = { tr, cells, data: { name } };
        routeRows.set(name, row);
      }
      const r = rates && rates.routes.get(name);
      const d = row.data;
      d.rps = r ? r.rps : 0;
      d.p50 = r ? r.p50 : NaN; d.p95 = r ? r.p95 : NaN; d.p99 = r ? r.p99 : NaN;
      d.errors = r ? r.errors : NaN;
      d.limited = r ? r.limited : 0;
      setText(row.cells[1], fmtRate(d.rps));
      setText(row.cells[2], fmtSec(d.p50));
      setText(row.cells[3], fmtSec(d.p95));
      setText(row.cells[4], fmtSec(d.p99));
      setText(row.cells[5], fmtPct(d.errors));
      setText(row.cells[6], fmtRate(d.limited));
      row.cells[1].className = d.rps > 0 ? '' : 'dim';
      row.cells[5].className = d.errors > 0 ? 'bad' : 'dim';
      row.cells[6].className = d.limited > 0 ? '' : 'dim';
    }
    drawRouteOrder();
  }
  function drawRouteOrder() {
    const f = filter.toLowerCase();
    const rows = [...routeRows.values()].filter((r) => !f || r.data.name.toLowerCase().includes(f));
    const key = sortKey;
    const num = (v) => (Number.isFinite(v) ? v : -1);
    rows.sort((a, b) => {
      const c = key === 'name' ? (a.data.name < b.data.name ? -1 : a.data.name > b.data.name ? 1 : 0)
        : num(a.data[key]) - num(b.data[key]) || (a.data.name < b.data.name ? -1 : 1);
      return c * sortDir;
    });
    const order = rows.map((r) => r.data.name).join('\n');
    if (order !== shownOrder) {
      shownOrder = order;
      const frag = document.createDocumentFragment();
      for (const r of rows) frag.append(r.tr);
      const tbody = $('routes-table').tBodies[0];
      tbody.replaceChildren(frag);
      if (!rows.length) {
        const tr = el('tr', { class: 'none' });
        tr.append(el('td', { colspan: COLS.length, class: 'dim' }, routeRows.size ? 'No route matches the filter.' : 'No routes.'));
        tbody.append(tr);
      }
    }
    setText($('route-count'), f ? `${rows.length} of ${routeRows.size}` : `${routeRows.size} route${routeRows.size === 1 ? '' : 's'}`);
    for (const th of $('routes-table').querySelectorAll('th[data-sort]')) {
      if (th.dataset.sort === sortKey) th.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }
  $('routes-table').querySelector('thead').addEventListener('click', (ev) => {
    const th = ev.target.closest('th[data-sort]');
    if (!th) return;
    const k = th.dataset.sort;
    if (k === sortKey) sortDir = -sortDir;
    else { sortKey = k; sortDir = k === 'name' ? 1 : -1; }
    drawRouteOrder();
  });
  $('route-search').addEventListener('input', (ev) => {
    filter = ev.target.value.trim();
    drawRouteOrder();
  });

  // ---- targets table ----
  const targetRows = new Map();
  // A cell holding one state word, with a coloured dot (its text is the word alone).
  function badge(td, state, text) {
    let span = td.firstElementChild;
    if (!span) td.append(span = el('span'));
    span.className = `badge ${state}`;
    setText(span, text);
  }
  function renderTargets(status) {
    const tbody = $('targets-table').tBodies[0];
    const seen = new Set();
    const order = [];
    let count = 0;
    for (const u of status.upstreams || []) {
      for (const t of u.targets) {
        const id = `${u.name}/${t.address}`;
        seen.add(id);
        order.push(id);
        count++;
        let row = targetRows.get(id);
        if (!row) {
          const tr = el('tr', { 'data-target': id });
          const cells = [el('td', {}, u.name), el('td', { class: 'name' }, t.address), el('td', { 'data-testid': 'health' }),
            el('td', { 'data-testid': 'circuit-breaker' }), el('td', { 'data-testid': 'in-flight' }), el('td'), el('td')];
          tr.append(...cells);
          row = { tr, cells };
          targetRows.set(id, row);
        }
        const [, , health, breaker, inflight, idle, weight] = row.cells;
        badge(health, t.health, t.health);
        badge(breaker, t.circuit_breaker, t.circuit_breaker.replace('_', '-'));
        setText(inflight, String(t.in_flight));
        setText(idle, String(t.idle_connections));
        setText(weight, String(t.weight));
      }
    }
    for (const id of [...targetRows.keys()]) if (!seen.has(id)) targetRows.delete(id);
    const current = [...tbody.rows].map((r) => r.dataset.target).join('\n');
    if (current !== order.join('\n')) tbody.replaceChildren(...order.map((id) => targetRows.get(id).tr));
    setText($('target-count'), `${count} target${count === 1 ? '' : 's'} in ${(status.upstreams || []).length} upstream${(status.upstreams || []).length === 1 ? '' : 's'}`);
  }

  window.addEventListener('resize', () => { if (lastStatus) renderCharts(); });
  poll();
})();
