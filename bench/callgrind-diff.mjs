// Where two proxies' instructions per request differ, function by function: reads the callgrind
// files an INSTRUCTIONS=1 KEEP_TMP=1 bench/run.sh run leaves (one per proxy), divides each
// function's own instructions (exclusive, as callgrind counts them) by the proxy's requests, and
// prints the functions whose share differs most.
//   node bench/callgrind-diff.mjs BASE_FILE BASE_REQUESTS OTHER_FILE OTHER_REQUESTS [ROWS=40]
// e.g., after
//   CACHE_MIB=4 KEEP_TMP=1 INSTRUCTIONS=1 UNIQUE_URLS=1 BODY_BYTES=1024 \
//     PROXIES="gatehouse gatehouse-cache" DURATION=8s bench/run.sh
// with the requests it printed for each proxy, and the largest callgrind.PID* file in each
// proxy's directory of the kept run (/tmp/gatehouse-bench.*/gatehouse, .../gatehouse-cache).
import fs from 'node:fs';

const [baseFile, baseRequests, otherFile, otherRequests, rows = '40'] = process.argv.slice(2);
if (!otherRequests) {
  console.error('usage: node bench/callgrind-diff.mjs BASE_FILE BASE_REQUESTS OTHER_FILE OTHER_REQUESTS [ROWS]');
  process.exit(2);
}

// Exclusive instructions by function name. Callgrind compresses names: "(id) name" defines an id,
// "(id)" alone refers to it. The cost line after a `calls=` line is the call's inclusive cost,
// which belongs to the callee, so it is skipped here.
function exclusive(file) {
  const names = new Map();
  const costs = new Map();
  const name = (token) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(token);
    if (!m) return token;
    if (m[2] !== undefined) names.set(m[1], m[2]);
    return names.get(m[1]) ?? token;
  };
  let fn = '';
  let afterCalls = false;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fn=')) {
      fn = name(line.slice(3));
    } else if (/^c?(fn|fl|fi|fe|ob)=/.test(line)) {
      const value = line.slice(line.indexOf('=') + 1);
      if (value.startsWith('(')) name(value);  // defines an id other lines may use
    } else if (line.startsWith('calls=')) {
      afterCalls = true;
    } else if (/^[0-9+\-*]/.test(line)) {
      const parts = line.split(/\s+/);
      if (parts.length >= 2) {
        if (afterCalls) afterCalls = false;
        else costs.set(fn, (costs.get(fn) ?? 0) + Number(parts[1]));
      }
    }
  }
  return costs;
}

const base = exclusive(baseFile);
const other = exclusive(otherFile);
const perRequest = (costs, requests, fn) => (costs.get(fn) ?? 0) / Number(requests);
const all = new Set([...base.keys(), ...other.keys()]);
const diffs = [...all].map((fn) => {
  const b = perRequest(base, baseRequests, fn);
  const o = perRequest(other, otherRequests, fn);
  return { fn, b, o, d: o - b };
});
const total = diffs.reduce((sum, x) => sum + x.d, 0);
console.log(`instructions per request, other minus base: ${total.toFixed(0)}`);
console.log(`${'diff'.padStart(8)} ${'base'.padStart(8)} ${'other'.padStart(8)}  function`);
diffs.sort((x, y) => Math.abs(y.d) - Math.abs(x.d));
for (const { fn, b, o, d } of diffs.slice(0, Number(rows))) {
  console.log(`${d.toFixed(1).padStart(8)} ${b.toFixed(1).padStart(8)} ${o.toFixed(1).padStart(8)}  ${fn.slice(0, 140)}`);
}
