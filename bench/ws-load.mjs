// WebSocket echo load for bench/ws.sh: CONNECTIONS clients, each sending a MESSAGE_BYTES message
// and waiting for its echo before the next, for SECONDS. Prints one line:
//   messages=N seconds=S p50_ms=X p99_ms=Y errors=E
// Usage: node bench/ws-load.mjs URL CONNECTIONS SECONDS MESSAGE_BYTES
import { WebSocket } from '../tests/integration/node_modules/ws/wrapper.mjs';

const [url, connections = '50', seconds = '5', bytes = '64'] = process.argv.slice(2);
const message = Buffer.alloc(Number(bytes), 'm');
const end = Date.now() + Number(seconds) * 1000;
const samples = [];
let errors = 0;
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: Number(connections) }, () => new Promise((resolve) => {
  // Frames as sent: no permessage-deflate (every proxy then passes the same bytes).
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let sent;
  const send = () => {
    if (Date.now() >= end) return ws.close(1000);
    sent = process.hrtime.bigint();
    ws.send(message);
  };
  ws.on('open', send);
  ws.on('message', () => {
    samples.push(Number(process.hrtime.bigint() - sent) / 1e6);
    send();
  });
  ws.on('error', () => { errors++; resolve(); });
  ws.on('close', resolve);
})));
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
samples.sort((a, b) => a - b);
const at = (q) => (samples.length ? samples[Math.min(samples.length - 1, Math.floor(samples.length * q))] : NaN);
console.log(`messages=${samples.length} seconds=${elapsed.toFixed(3)} p50_ms=${at(0.5).toFixed(3)} p99_ms=${at(0.99).toFixed(3)} errors=${errors}`);
