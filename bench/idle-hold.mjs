// Holds N idle keep-alive connections to a proxy: each sends one GET, reads the whole response,
// then stays open and quiet. Prints "held N" once every connection has had its answer, then
// waits until stdin closes (or a signal) and exits, closing them all.
//   node bench/idle-hold.mjs PORT N [PATH]
// Used by `IDLE_CONNECTIONS=N bench/run.sh` to measure each proxy's memory per idle connection.
import net from 'node:net';

const [port, count, path = '/'] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
if (!port || !count) {
  console.error('usage: node idle-hold.mjs PORT N [PATH]');
  process.exit(2);
}

// One request and its response (Content-Length framed, as the bench backend answers).
function hold() {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    s.setTimeout(30000, () => reject(new Error('no answer in 30 s')));
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed by the proxy')));
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = got.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 200 /.test(head)) return reject(new Error(`answer: ${head.split('\r\n')[0]}`));
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (got.length - end - 4 >= length) {
        s.setTimeout(0);
        s.removeAllListeners('data');
        resolve(s);
      }
    });
  });
}

// A few hundred at a time: a burst of thousands of SYNs would overflow the listen backlog.
const sockets = [];
const batch = 200;
try {
  for (let i = 0; i < count; i += batch) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, hold))));
  }
} catch (e) {
  console.error(`idle-hold: ${e.message} (after ${sockets.length} connections)`);
  process.exit(1);
}
let closed = 0;
for (const s of sockets) s.on('close', () => closed++);
console.log(`held ${sockets.length}`);
const done = () => {
  for (const s of sockets) s.destroy();
  process.exit(closed ? 1 : 0);
};
process.stdin.on('end', done).resume();
process.on('SIGTERM', done);
