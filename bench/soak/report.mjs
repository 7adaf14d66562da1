// bench/soak.sh's summary: reads what the run left in its temp dir and prints the verdict.
//
//   node report.mjs DIR
//
// DIR holds: settings.json (the load generator's), report.json (the script's: warm-up, limits,
// crash, ports), stats.json and anomalies.jsonl (load.mjs), events.log (the script's timeline:
// "MS flap-down MS_AFTER", "MS flap-up", "MS reload a|b", "MS redis-down", "MS redis-up"),
// samples.tsv ("MS RSS_KB FDS THREADS CPU_TICKS", one a second) and metrics.txt (the last /metrics scrape).
// Exit status: 0 pass, 1 fail (a crash, an unexpected answer, growth over the limit).
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const read = (f, d = '') => { try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch { return d; } };
const R = JSON.parse(read('report.json'));
const stats = JSON.parse(read('stats.json', '{"counts":{}}'));
const anomalies = read('anomalies.jsonl').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const events = read('events.log').split('\n').filter(Boolean).map((l) => {
  const [t, kind, ...rest] = l.split(' ');
  return { t: Number(t), kind, rest };
});
const samples = read('samples.tsv').split('\n').filter(Boolean).map((l) => l.split(/\s+/).map(Number))
  .map(([t, rss, fds, threads, ticks]) => ({ t, rss, fds, threads, ticks }));
const metrics = read('metrics.txt');

const fail = [];
const out = (s = '') => console.log(s);

// ---- requests by class and outcome ----------------------------------------------------------
out('requests by class and outcome (expected outcomes in [brackets]):');
const expectOf = stats.expect || {};
let total = 0;
for (const [cls, outcomes] of Object.entries(stats.counts)) {
  const n = Object.values(outcomes).reduce((a, b) => a + b, 0);
  total += n;
  const parts = Object.entries(outcomes).sort((a, b) => b[1] - a[1]).map(([o, k]) => {
    const exp = (expectOf[cls] || []).map(String).includes(o);
    return exp ? `[${o}] ${k}` : `${o} ${k}`;
  });
  const lat = stats.latencyMs?.[cls];
  const skipped = stats.skipped?.[cls] ? `, skipped ${stats.skipped[cls]}` : '';
  out(`  ${cls.padEnd(12)} ${String(n).padStart(8)}  ${parts.join(', ')}` +
    `${lat ? `  (mean ${(lat.sum / lat.n).toFixed(1)} ms, max ${lat.max} ms${skipped})` : ''}`);
}
const secs = ((stats.endedAt || Date.now()) - stats.startedAt) / 1000;
out(`  ${'total'.padEnd(12)} ${String(total).padStart(8)}  in ${secs.toFixed(0)} s = ${(total / secs).toFixed(0)} req/s;` +
  ` ${(stats.bytesUp / 2 ** 20).toFixed(0)} MiB up, ${(stats.bytesDown / 2 ** 20).toFixed(0)} MiB down`);
if (!stats.finished) {
  out(`  (the load generator did not finish cleanly: ${stats.unfinished ?? '?'} request(s) still in flight)`);
}
const skippedTotal = Object.values(stats.skipped || {}).reduce((a, b) => a + b, 0);
if (skippedTotal) out(`  skipped ticks (a class had all its requests in flight): ${skippedTotal}`);
out(`  answers by config (x-soak-config): ${JSON.stringify(stats.configSeen)}; pool GETs by target: ${JSON.stringify(stats.targetSeen)}`);

// ---- anomalies: explained or unexpected -----------------------------------------------------
// A target kill can break exactly two things no retry can save: a non-idempotent upload (POST,
// no Idempotency-Key) whose body was going to the killed target, and a download whose head had
// already been relayed when the target died (the status was sent; the gateway can only cut the
// connection). Both must have been in flight at the moment of a kill, and (when the answer says)
// on the killed target.
const kills = events.filter((e) => e.kind === 'flap-down').map((e) => ({ from: e.t, to: Number(e.rest[0]) || e.t }));
const flapAddr = `127.0.0.1:${R.flapPort}`;
const inFlightAtKill = (a) => kills.some((k) => a.t0 <= k.to + 20 && a.t1 >= k.from);
function explain(a) {
  if (!inFlightAtKill(a)) return null;
  const o = String(a.outcome);
  if (a.class === 'upload-post') {
    if (o === '502' && /upstream_reset|upstream_bad_response/.test(a.body || '') && (a.body || '').includes(flapAddr)) {
      return 'POST upload in flight on the killed target (not idempotent: not retried)';
    }
    if (/^ERR:(ECONNRESET|EPIPE)$/.test(o)) {
      return 'POST upload in flight on the killed target: the gateway answered 502 and closed while the client was still sending';
    }
  }
  if (a.class === 'download' && /^200-(aborted|short)$/.test(o) && (a.upstream === undefined || a.upstream === 'flap')) {
    return 'download whose head was relayed before its target was killed (cut mid-body)';
  }
  return null;
}
const explained = {};
const unexpected = [];
for (const a of anomalies) {
  const why = explain(a);
  if (why) explained[why] = (explained[why] || 0) + 1;
  else unexpected.push(a);
}
const missing = stats.anomalies - anomalies.length;  // not written (over the cap): unexplained
out();
out(`answers outside the expected set: ${stats.anomalies}`);
for (const [why, n] of Object.entries(explained)) out(`  explained ${String(n).padStart(5)}  ${why}`);
const unexpected5xx = unexpected.filter((a) => /^5\d\d$/.test(String(a.outcome))).length;
out(`  UNEXPECTED ${unexpected.length + missing} (5xx: ${unexpected5xx})`);
const byKind = {};
for (const a of unexpected) {
  let err = '';
  try { err = JSON.parse(a.body).error || ''; } catch { err = a.error || ''; }
  const k = `${a.class} ${a.outcome}${err ? ` ${err}` : ''}`;
  (byKind[k] ??= []).push(a);
}
for (const [k, list] of Object.entries(byKind).sort((x, y) => y[1].length - x[1].length)) {
  const ex = list[0];
  const t = ((ex.t0 - stats.startedAt) / 1000).toFixed(1);
  out(`    ${String(list.length).padStart(5)} x ${k}`);
  out(`          first at +${t} s (${ex.t1 - ex.t0} ms): ${ex.method} ${ex.scheme} ${ex.path}` +
    `${ex.body ? ` -> ${ex.body.replace(/\s+/g, ' ').slice(0, 240)}` : ''}${inFlightAtKill(ex) ? ' [during a kill]' : ''}`);
}
if (missing > 0) out(`    ${missing} more not written (cap reached)`);
if (unexpected5xx > 0) fail.push(`${unexpected5xx} unexpected 5xx`);
if (unexpected.length - unexpected5xx + missing > 0) fail.push(`${unexpected.length - unexpected5xx + missing} other unexpected answers`);
if (total === 0) fail.push('no requests were made');

// ---- what the script did, and what the gateway says it saw ----------------------------------
const count = (k) => events.filter((e) => e.kind === k).length;
out();
out(`events: ${count('flap-down')} target kills, ${count('flap-up')} restarts, ${count('reload')} reloads (SIGHUP),` +
  ` ${count('redis-down')} Redis kill(s), ${count('redis-up')} Redis restart(s)`);
const metric = (name, labels = '') => {
  let sum = 0; let seen = false;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? (\S+)$/);
    if (!m || m[1] !== name || (labels && !(m[2] || '').includes(labels))) continue;
    sum += Number(m[3]); seen = true;
  }
  return seen ? sum : null;
};
if (metrics) {
  out('gateway metrics at the end:');
  out(`  reloads ok ${metric('gatehouse_config_reloads_total', 'result="ok"')}, error ${metric('gatehouse_config_reloads_total', 'result="error"')};` +
    ` health transitions ${metric('gatehouse_upstream_health_transitions_total')}, breaker transitions ${metric('gatehouse_upstream_breaker_transitions_total')}`);
  out(`  retries: connect_failure ${metric('gatehouse_upstream_retries_total', 'reason="connect_failure"')}, reset ${metric('gatehouse_upstream_retries_total', 'reason="reset"')};` +
    ` budget exhausted ${metric('gatehouse_upstream_retry_budget_exhausted_total')}`);
  out(`  upstream outcomes (last try of each request): ${['ok', 'connect_error', 'reset', 'timeout', '5xx'].map((o) => `${o} ${metric('gatehouse_upstream_requests_total', `outcome="${o}"`) ?? 0}`).join(', ')}`);
  out(`  rate limit: decisions by Redis ${metric('gatehouse_rate_limit_redis_duration_seconds_count')}, fallbacks to on_error while Redis was down ${metric('gatehouse_rate_limit_fallbacks_total') ?? 0}`);
  const reloadErrors = metric('gatehouse_config_reloads_total', 'result="error"');
  if (reloadErrors) fail.push(`${reloadErrors} reload(s) rejected`);
  const ok = metric('gatehouse_config_reloads_total', 'result="ok"');
  if (ok !== null && !R.crashed && ok < count('reload')) fail.push(`${count('reload')} reloads sent, ${ok} applied`);
} else {
  out('gateway metrics at the end: none (no scrape)');
}

// ---- RSS and open fds ------------------------------------------------------------------------
// Each figure is the median of the samples in a window (windowMs) ending at the warm-up's end and
// at the run's end: a single sample of the fd count moves with the connections in flight.
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const warmEnd = stats.startedAt + R.warmupMs;
const lastT = samples.length ? samples[samples.length - 1].t : 0;
const win = (end) => samples.filter((s) => s.t > end - R.windowMs && s.t <= end);
const w0 = win(warmEnd); const w1 = win(lastT);
out();
if (w0.length && w1.length && lastT > warmEnd) {
  const pct = (a, b) => (100 * (b - a) / a);
  const rows = [['RSS KiB', 'rss'], ['open fds', 'fds'], ['threads', 'threads']];
  out(`gatehouse (pid ${R.gatehousePid}) resources, medians of ${R.windowMs / 1000} s windows (${samples.length} samples, 1/s):`);
  out(`  ${''.padEnd(9)} ${'warm-up end'.padStart(12)} ${'end'.padStart(10)} ${'growth'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}`);
  for (const [label, k] of rows) {
    const a = median(w0.map((s) => s[k])); const b = median(w1.map((s) => s[k]));
    const after = samples.filter((s) => s.t >= warmEnd).map((s) => s[k]);
    const g = pct(a, b);
    out(`  ${label.padEnd(9)} ${String(a).padStart(12)} ${String(b).padStart(10)} ${(g >= 0 ? '+' : '') + g.toFixed(1).padStart(7)}% ${String(Math.min(...after)).padStart(9)} ${String(Math.max(...after)).padStart(9)}`);
    // An fd count of about 50 moves by a few with the connections in flight: growth within
    // fdSlack descriptors is not held against it.
    const slack = k === 'fds' ? R.fdSlack : 0;
    if (k !== 'threads' && g > R.maxGrowthPct && b - a > slack) {
      fail.push(`${label} grew ${g.toFixed(1)}% after warm-up (limit ${R.maxGrowthPct}%${slack ? ` and ${slack} fds` : ''})`);
    }
  }
  for (const line of read('fds.tsv').split('\n').filter(Boolean)) {
    const [label, kinds, sockets] = line.split('\t');
    out(`  fds at ${label}: ${kinds}`);
    out(`    TCP sockets: ${sockets}`);
  }
  const s0 = samples[0]; const s1 = samples[samples.length - 1];
  out(`  CPU: ${(100 * (s1.ticks - s0.ticks) / R.clkTck / ((s1.t - s0.t) / 1000)).toFixed(0)}% of one core on average`);
  out(`  (warm-up: first ${(R.warmupMs / 1000).toFixed(0)} s; all samples in ${path.join(dir, 'samples.tsv')} while kept)`);
} else {
  out('gatehouse resources: not enough samples after warm-up to compare');
  if (!R.crashed) fail.push('not enough samples to judge RSS/fd growth');
}

// ---- crash and exit --------------------------------------------------------------------------
out();
if (R.crashed) {
  out(`gatehouse CRASHED: ${R.crashed}`);
  fail.push('gatehouse crashed');
} else {
  out(`gatehouse did not crash; drain on SIGTERM: ${R.drainExit === 0 ? 'exit 0' : `exit ${R.drainExit}`}`);
  if (R.drainExit !== 0) fail.push(`gatehouse exited ${R.drainExit} on SIGTERM (0 expected after a clean drain)`);
}
if (R.logSummary) out(`gatehouse log: ${R.logSummary}`);
out();
if (fail.length) {
  out(`SOAK FAILED: ${fail.join('; ')}`);
  process.exit(1);
}
out('SOAK PASSED');
