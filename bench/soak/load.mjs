// bench/soak.sh's load generator: mixed traffic classes at fixed rates, all at once, for a given
// time, against one gatehouse. Node built-ins only.
//
//   node load.mjs SETTINGS.json
//
// SETTINGS (written by soak.sh): durationMs, http and https (base URLs), ca (PEM file of the
// listener's self-signed certificate), apiKey, jwt (a valid token), rates ({class: requests/s}),
// timeoutMs, statsFile, anomaliesFile.
//
// Each class fires open-loop at its rate (ticks every 20 ms), with at most `conc` requests in
// flight; a tick that finds them all busy is counted as skipped (the gateway fell behind). Every
// answer is counted as class -> outcome, where the outcome is the status code, "200-short" (a body
// shorter than expected, or an upload the upstream did not receive whole), "200-aborted" (the
// connection died mid-body) or "ERR:<code>" (no answer at all, e.g. ERR:ECONNRESET, ERR:TIMEOUT).
// Outcomes outside the class's `expect` list are also written, one JSON line each, to
// anomaliesFile with the times they started and ended, for report.mjs to classify against the
// script's event log (target kills, reloads, the Redis restart).
//
// Stats are written to statsFile every 5 s (and at the end, or on SIGTERM/SIGINT).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const S = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ca = fs.readFileSync(S.ca);
const MiB = 1 << 20;
const bigBody = Buffer.alloc(5 * MiB, 'u');  // uploads send a prefix of it

// Keep-alive agents, one per scheme; new-connection classes use agent: false (Connection: close).
// An idle connection is closed by the client after 10 s, well before the gateway's idle timeout
// (60 s): a request sent just as the server closes an idle connection fails without an answer,
// a race of the client's making that no server can avoid.
const agentOpts = { keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: 10000 };
const agents = {
  http: new http.Agent(agentOpts),
  https: new https.Agent({ ...agentOpts, ca }),
};

const randSize = () => MiB + Math.floor(Math.random() * 4 * MiB);  // 1..5 MiB

// The traffic classes. path() may return { path, upload, download } for bodies to check.
const classes = [
  { name: 'ka-get', scheme: 'http', keepAlive: true, conc: 16, expect: [200], req: () => ({ path: '/pool/echo' }) },
  { name: 'new-get', scheme: 'http', keepAlive: false, conc: 16, expect: [200], req: () => ({ path: '/pool/echo' }) },
  { name: 'tls-ka-get', scheme: 'https', keepAlive: true, conc: 16, expect: [200], req: () => ({ path: '/pool/echo' }) },
  { name: 'tls-new-get', scheme: 'https', keepAlive: false, conc: 16, expect: [200], req: () => ({ path: '/pool/echo' }) },
  // 1-5 MiB up, POST (not idempotent: never retried by the gateway) and PUT (retried, the body
  // replayed from the gateway's copy); every other one over HTTPS.
  { name: 'upload-post', scheme: 'mixed', keepAlive: true, conc: 8, expect: [200],
    req: () => ({ method: 'POST', path: '/pool/sink', upload: randSize() }) },
  { name: 'upload-put', scheme: 'mixed', keepAlive: true, conc: 8, expect: [200],
    req: () => ({ method: 'PUT', path: '/pool/sink', upload: randSize() }) },
  // 1-5 MiB down, Content-Length and chunked alternately, every other one over HTTPS.
  { name: 'download', scheme: 'mixed', keepAlive: true, conc: 8, expect: [200],
    req: (n) => { const size = randSize(); return { path: `/pool/stream/${size}${n % 4 < 2 ? '?cl=1' : ''}`, download: size }; } },
  { name: 'unrouted', scheme: 'http', keepAlive: true, conc: 8, expect: [404], req: (n) => ({ path: `/nowhere/${n}` }) },
  { name: 'no-key', scheme: 'http', keepAlive: true, conc: 8, expect: [401], req: () => ({ path: '/key/echo' }) },
  { name: 'no-jwt', scheme: 'https', keepAlive: true, conc: 8, expect: [401], req: () => ({ path: '/jwt/echo' }) },
  { name: 'key-ok', scheme: 'http', keepAlive: true, conc: 8, expect: [200],
    req: () => ({ path: '/key/echo', headers: { 'x-api-key': S.apiKey } }) },
  { name: 'jwt-ok', scheme: 'https', keepAlive: true, conc: 8, expect: [200],
    req: () => ({ path: '/jwt/echo', headers: { authorization: `Bearer ${S.jwt}` } }) },
  { name: 'rate-local', scheme: 'http', keepAlive: true, conc: 8, expect: [200, 429], req: () => ({ path: '/limited/echo' }) },
  { name: 'rate-redis', scheme: 'http', keepAlive: true, conc: 8, expect: [200, 429], req: () => ({ path: '/climited/echo' }) },
];
for (const c of classes) c.rate = Number(S.rates[c.name] ?? 0);

const stats = {
  startedAt: Date.now(), endedAt: null, finished: false,
  counts: {},    // class -> outcome -> n
  skipped: {},   // class -> ticks that found `conc` requests in flight
  configSeen: {},  // x-soak-config of the answers (which config answered): proves reloads apply
  targetSeen: {},  // x-upstream of 2xx answers from the pool
  latencyMs: {},   // class -> { n, sum, max }
  bytesUp: 0, bytesDown: 0, anomalies: 0, anomaliesWritten: 0,
  expect: Object.fromEntries(classes.filter((c) => c.rate).map((c) => [c.name, c.expect])),
};
const bump = (obj, k, by = 1) => { obj[k] = (obj[k] || 0) + by; };
const inFlight = new Map();

function writeStats() {
  const tmp = `${S.statsFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(stats));
  fs.renameSync(tmp, S.statsFile);
}

function record(c, outcome, t0, extra) {
  const t1 = Date.now();
  bump(stats.counts[c.name] ??= {}, String(outcome));
  const l = stats.latencyMs[c.name] ??= { n: 0, sum: 0, max: 0 };
  l.n++; l.sum += t1 - t0; l.max = Math.max(l.max, t1 - t0);
  if (!c.expect.includes(outcome)) {
    stats.anomalies++;
    if (stats.anomaliesWritten < 20000) {  // a broken gateway must not fill the disk
      stats.anomaliesWritten++;
      fs.appendFileSync(S.anomaliesFile, `${JSON.stringify({ t0, t1, class: c.name, outcome, ...extra })}\n`);
    }
  }
}

let seq = 0;
function fire(c) {
  const n = seq++;
  const spec = c.req(n);
  const scheme = c.scheme === 'mixed' ? (n % 2 ? 'https' : 'http') : c.scheme;
  const mod = scheme === 'https' ? https : http;
  const url = new URL(spec.path, S[scheme]);
  const headers = { ...(spec.headers || {}) };
  if (spec.upload !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    headers['content-length'] = spec.upload;
  }
  const opts = { method: spec.method || 'GET', headers, timeout: S.timeoutMs };
  if (c.keepAlive) opts.agent = agents[scheme];
  else { opts.agent = false; if (scheme === 'https') opts.ca = ca; }
  const t0 = Date.now();
  inFlight.set(c.name, (inFlight.get(c.name) || 0) + 1);
  let done = false;
  const extra = { method: opts.method, scheme, path: spec.path, size: spec.upload ?? spec.download };
  const finish = (outcome, more = {}) => {
    if (done) return;
    done = true;
    inFlight.set(c.name, inFlight.get(c.name) - 1);
    record(c, outcome, t0, { ...extra, ...more });
  };
  const req = mod.request(url, opts, (res) => {
    const chunks = [];
    let got = 0;
    res.on('data', (d) => {
      got += d.length;
      if (spec.download === undefined || chunks.length < 4) chunks.push(d);
    });
    res.on('end', () => {
      stats.bytesDown += got;
      const cfg = res.headers['x-soak-config'];
      if (cfg) bump(stats.configSeen, cfg);
      const body = spec.download === undefined ? Buffer.concat(chunks).toString('utf8') : '';
      const more = { upstream: res.headers['x-upstream'], config: cfg };
      let outcome = res.statusCode;
      if (res.statusCode === 200 && spec.download !== undefined && got !== spec.download) {
        outcome = '200-short';
        more.got = got;
      }
      if (res.statusCode === 200 && spec.upload !== undefined) {
        let sunk = -1;
        try { sunk = JSON.parse(body).bytes; } catch { /* not JSON */ }
        if (sunk !== spec.upload) { outcome = '200-short'; more.sunk = sunk; }
      }
      if (res.statusCode < 300 && res.headers['x-upstream'] && c.name.endsWith('get')) bump(stats.targetSeen, res.headers['x-upstream']);
      if (!c.expect.includes(outcome)) more.body = body.slice(0, 400);
      finish(outcome, more);
    });
    res.on('aborted', () => finish(`${res.statusCode}-aborted`, { got, upstream: res.headers['x-upstream'] }));
    res.on('error', (e) => finish(`${res.statusCode}-aborted`, { got, error: e.code || e.message }));
  });
  req.on('timeout', () => { req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })); });
  req.on('error', (e) => finish(`ERR:${e.code || e.message}`, { error: e.message }));
  if (spec.upload !== undefined) {
    stats.bytesUp += spec.upload;
    req.end(bigBody.subarray(0, spec.upload));
  } else {
    req.end();
  }
}

// Open-loop ticks: each class accumulates rate * dt requests and fires the whole ones.
const TICK = 20;
const credit = new Map(classes.map((c) => [c.name, Math.random()]));
let last = Date.now();
const endAt = stats.startedAt + S.durationMs;
const ticker = setInterval(() => {
  const now = Date.now();
  const dt = (now - last) / 1000;
  last = now;
  if (now >= endAt) { stop(); return; }
  for (const c of classes) {
    if (!c.rate) continue;
    let k = credit.get(c.name) + c.rate * dt;
    while (k >= 1) {
      k -= 1;
      if ((inFlight.get(c.name) || 0) >= c.conc) bump(stats.skipped, c.name);
      else fire(c);
    }
    credit.set(c.name, k);
  }
}, TICK);
const saver = setInterval(writeStats, 5000);

// After the last tick: wait for what is in flight (bounded by the request timeout), then exit.
let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  const deadline = Date.now() + S.timeoutMs + 2000;
  const wait = setInterval(() => {
    const busy = [...inFlight.values()].reduce((a, b) => a + b, 0);
    if (busy === 0 || Date.now() > deadline) {
      clearInterval(wait);
      clearInterval(saver);
      stats.endedAt = Date.now();
      stats.finished = busy === 0;
      stats.unfinished = busy;
      writeStats();
      agents.http.destroy();
      agents.https.destroy();
      process.exit(0);
    }
  }, 50);
}
process.on('SIGTERM', () => { stats.interrupted = true; stop(); });
process.on('SIGINT', () => { stats.interrupted = true; stop(); });
writeStats();
