// Memory per in-flight composite call (aggregation, docs/aggregation.md): starts the gateway
// (1 worker) with a composite route of three legs in front of an upstream that holds every
// request until told, opens N client connections that each make one composite call, waits until
// the upstream holds all 3N leg requests, and compares the gateway's resident memory then with
// before. The same N plain proxied calls held the same way give the baseline: what one client
// request in flight costs anyway.
//   node bench/composite-memory.mjs [N=2000]
// Needs build/gatehouse (or GATEHOUSE_BIN). Prints one line of figures.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGateway } from './gateway.mjs';

const n = Number(process.argv[2] || 2000);

// The upstream: holds each request until release() (then answers a small JSON body).
const held = [];
let waiting = null;
const upstream = http.createServer((req, res) => {
  held.push(res);
  if (waiting && held.length >= waiting.count) waiting.resolve();
});
upstream.maxConnections = 100000;
await new Promise((r) => upstream.listen(0, '127.0.0.1', 4096, r));
const heldCount = (count) => new Promise((resolve) => {
  if (held.length >= count) return resolve();
  waiting = { count, resolve };
  return undefined;
});
const release = () => {
  for (const res of held.splice(0)) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    res.end('{}');
  }
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-composite-mem-'));
const config = path.join(dir, 'gatehouse.yaml');
fs.writeFileSync(config, `
server:
  workers: 1
  limits: { max_connections: ${4 * n + 100} }
  listen: [ { address: 127.0.0.1:0 } ]
observability: { access_log: { path: "off" } }
upstreams:
  o: { targets: [ { address: 127.0.0.1:${upstream.address().port} } ], max_idle_per_target: ${3 * n} }
routes:
  - name: page
    match: { path: "/page/{id}" }
    aggregate:
      calls:
        a: { upstream: o, path: "/a/{id}" }
        b: { upstream: o, path: "/b/{id}" }
        c: { upstream: o, path: "/c/{id}" }
  - { name: plain, match: { path: "/plain/*" }, to: o }
`);
// `count` client connections, one request each; resolves when every answer came.
function calls(port, prefix, count) {
  return Promise.all(Array.from({ length: count }, (_, i) => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('connect', () => s.write(`GET ${prefix}/${i} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => { got += d; });
    s.on('end', () => (got.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(got.slice(0, 400)))));
    s.on('error', reject);
  })));
}

// Warmed with a few calls, then N held at once: the RSS growth per call in flight.
async function perCall(prefix, legs) {
  const g = await startGateway(config);  // a fresh one per figure: no memory another run left
  // Resolves once the upstream holds every leg request, with the calls' own promise (in an
  // object: an async function returning a promise would wait for it).
  const hold = async (count) => {
    const done = calls(g.port, prefix, count);
    await heldCount(count * legs);
    return { done };
  };
  const warm = await hold(100);
  release();
  await warm.done;
  const before = g.rssKiB();
  const held = await hold(n);
  await new Promise((r) => setTimeout(r, 200));  // the last requests' buffers settle
  const during = g.rssKiB();
  release();
  await held.done;
  g.gh.kill('SIGTERM');
  return ((during - before) * 1024) / n;
}

const plain = await perCall('/plain', 1);
const composite = await perCall('/page', 3);
console.log(`n=${n} in flight: plain call ${plain.toFixed(0)} B, composite of three legs ` +
  `${composite.toFixed(0)} B (the composite beyond one plain call: ${(composite - plain).toFixed(0)} B)`);

upstream.close();
for (const res of held) res.destroy();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
