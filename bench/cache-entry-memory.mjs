// The response cache's memory per stored entry: starts the gateway (1 worker) in front of an
// origin that answers every path with a small cacheable body, stores N distinct entries, and
// compares the gateway's resident memory before and after with what the store counts
// (gatehouse_cache_stored_bytes, Entry::cost()).
//   node bench/cache-entry-memory.mjs [N=20000] [BODY_BYTES=100]
// Needs build/gatehouse (or GATEHOUSE_BIN). Prints one line of figures.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGateway } from './gateway.mjs';

const n = Number(process.argv[2] || 20000);
const bodyBytes = Number(process.argv[3] || 100);

const body = 'x'.repeat(bodyBytes);
const origin = http.createServer((req, res) => {
  res.writeHead(200, {
    'content-type': 'text/plain', 'cache-control': 'max-age=3600', etag: '"v1"',
    'content-length': body.length,
  });
  res.end(body);
});
await new Promise((r) => origin.listen(0, '127.0.0.1', r));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cache-mem-'));
const admin = 20000 + Math.floor(Math.random() * 20000);
const config = path.join(dir, 'gatehouse.yaml');
fs.writeFileSync(config, `
server:
  workers: 1
  listen: [ { address: 127.0.0.1:0 } ]
admin: { listen: 127.0.0.1:${admin} }
observability: { access_log: { path: "off" } }
cache: { max_size: 1GiB }
upstreams:
  o: { targets: [ { address: 127.0.0.1:${origin.address().port} } ] }
routes:
  - { match: { path: /* }, to: o, plugins: { cache: {} } }
`);
const { gh, port, rssKiB } = await startGateway(config);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const get = (p, host = port) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port: host, path: p, agent }, (res) => {
    let b = '';
    res.on('data', (d) => { b += d; });
    res.on('end', () => resolve(b));
  }).on('error', reject);
});

// Warm: buffers, pools and the allocator's arenas exist before the first reading.
for (let i = 0; i < 2000; i++) await get(`/warm/${i}`);
const before = rssKiB();
for (let i = 0; i < n; i += 64)
  await Promise.all(Array.from({ length: Math.min(64, n - i) }, (_, j) => get(`/items/${i + j}?page=1`)));
const after = rssKiB();
const metrics = await get('/metrics', admin);
const stored = Number(/^gatehouse_cache_stored_bytes (\d+)$/m.exec(metrics)[1]);
const entries = Number(/^gatehouse_cache_stored_entries (\d+)$/m.exec(metrics)[1]);
const perEntryRss = ((after - before) * 1024) / n;
const perEntryCost = stored / entries;
console.log(`entries=${entries} body=${bodyBytes}B rss_per_entry=${perEntryRss.toFixed(0)}B ` +
  `cost_per_entry=${perEntryCost.toFixed(0)}B (cost counts the body, fields and bookkeeping)`);
agent.destroy();
gh.kill('SIGTERM');
origin.close();
fs.rmSync(dir, { recursive: true, force: true });
