// A test upstream with misbehaviours on demand, chosen by path:
//   /echo...            200 JSON: the request as received (method, url, raw headers, body size)
//   /delay/MS           answers after MS milliseconds
//   /stream/BYTES       streams BYTES bytes (chunked; ?cl=1 sends Content-Length instead)
//   /sink               reads the whole body, answers its size and a checksum (each is also kept
//                       in state.sunk); the options sinkStatus (answer that status instead of 200)
//                       and sinkResetAfter (reset the connection once that many body bytes came)
//                       make a target that fails bodies
//   /garbage            answers bytes that are not HTTP, then closes
//   /close-early        sends half a status line, then closes
//   /reset              resets the connection (TCP RST) without answering
//   /reset-mid-body     sends a head and part of the body, then resets
//   /status/CODE        answers CODE with a small JSON body
//   /until-close        body delimited by closing the connection (no length, no chunking)
//   /hang               reads the request and never answers
//   /hold               answers once the test calls release() (state.held: requests waiting)
// Failures on command, for any path: failNext(n, how) fails the next n requests, failPercent(p, how)
// p% of them, spread evenly (3 of every 4 for 75) so that tests of rates are exact, not lucky.
// `how` is a status code to answer (default 503), 'reset' (TCP RST) or 'hang' (never answer).
// Also runnable: node upstream.mjs --port 9001 --name products
import http from 'node:http';
import crypto from 'node:crypto';

// echoDelayMs makes every echo answer late (a slow target for load-balancing tests).
export function startUpstream({ name = 'upstream', port = 0, host = '127.0.0.1', keepAliveTimeout = 30000,
  echoDelayMs = 0, sinkStatus = 200, sinkResetAfter = Infinity } = {}) {
  // connections: ever opened; open: now; incomplete: requests whose body never came in full
  const state = { requests: 0, connections: 0, open: 0, incomplete: 0, sunk: [] };
  const failures = { next: 0, percent: 0, status: 503, seen: 0 };
  const held = [];  // answers of /hold requests, sent by release()
  state.held = 0;
  const server = http.createServer((req, res) => {
    state.requests++;
    req.on('close', () => { if (!req.complete) state.incomplete++; });
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;
    const send = (code, obj, headers = {}) => {
      const body = JSON.stringify(obj);
      res.writeHead(code, { 'content-type': 'application/json', 'x-upstream': name,
        'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    const n = failures.seen++;
    const failByPercent = Math.floor((n + 1) * failures.percent / 100) > Math.floor(n * failures.percent / 100);
    if (failures.next > 0 || failByPercent) {
      if (failures.next > 0) failures.next--;
      state.failed = (state.failed || 0) + 1;
      req.resume();
      if (failures.status === 'reset') req.socket.resetAndDestroy();
      else if (failures.status !== 'hang') send(failures.status, { upstream: name, failed: true });
      return;
    }
    if (path === '/hang') {
      req.resume();
      return;
    }
    if (path === '/hold') {
      req.resume();
      state.held++;
      const answer = () => { state.held--; send(200, { upstream: name, held: true }); };
      held.push(answer);
      req.socket.on('close', () => { const i = held.indexOf(answer); if (i >= 0) { held.splice(i, 1); state.held--; } });
      return;
    }
    if (path.startsWith('/delay/')) {
      const ms = Number(path.split('/')[2]);
      const t = setTimeout(() => send(200, { upstream: name, delayed: ms }), ms);
      req.socket.on('close', () => clearTimeout(t));
      req.resume();
      return;
    }
    if (path.startsWith('/stream/')) {
      let left = Number(path.split('/')[2]);
      const headers = { 'content-type': 'application/octet-stream', 'x-upstream': name };
      if (url.searchParams.get('cl')) headers['content-length'] = left;
      res.writeHead(200, headers);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      req.resume();
      pump();
      return;
    }
    if (path === '/sink') {
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      req.on('data', (d) => {
        bytes += d.length;
        hash.update(d);
        if (bytes >= sinkResetAfter && !req.socket.destroyed) {
          state.sunk.push({ bytes, reset: true });
          req.socket.resetAndDestroy();
        }
      });
      req.on('end', () => {
        const sunk = { bytes, sha256: hash.digest('hex') };
        state.sunk.push(sunk);
        send(sinkStatus, { upstream: name, ...sunk });
      });
      return;
    }
    if (path === '/garbage') {
      req.socket.end('SURPRISE this is not HTTP at all\r\n\r\n');
      return;
    }
    if (path === '/close-early') {
      req.socket.end('HTTP/1.1 200 O');
      return;
    }
    if (path.startsWith('/reset-mid-body')) {
      req.resume();
      req.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial body');
      setTimeout(() => req.socket.resetAndDestroy(), 50);
      return;
    }
    if (path === '/reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (path === '/until-close') {
      req.resume();
      req.socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of this until the close');
      return;
    }
    if (path.startsWith('/status/')) {
      const retryAfter = url.searchParams.get('retry_after');
      send(Number(path.split('/')[2]), { upstream: name, status: Number(path.split('/')[2]) },
        retryAfter ? { 'retry-after': retryAfter } : {});
      return;
    }
    // echo
    let bytes = 0;
    req.on('data', (d) => { bytes += d.length; });
    req.on('end', () => setTimeout(() => send(200, {
      upstream: name, method: req.method, url: req.url, httpVersion: req.httpVersion,
      headers: req.rawHeaders, body_bytes: bytes,
    }), echoDelayMs));
  });
  server.keepAliveTimeout = keepAliveTimeout;
  server.on('connection', (socket) => {
    state.connections++;
    state.open = (state.open || 0) + 1;
    socket.on('close', () => { state.open--; });
  });
  return new Promise((resolve) => {
    server.listen(port, host, () => {
      resolve({
        name, port: server.address().port, state,
        failNext: (count, status = 503) => Object.assign(failures, { next: count, status }),
        failPercent: (percent, status = 503) => Object.assign(failures, { percent, status, seen: 0 }),
        release: () => { for (const answer of held.splice(0)) answer(); },
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
  const up = await startUpstream({ name: arg('--name', 'demo'), port: Number(arg('--port', 0)) });
  console.log(`upstream ${up.name} listening on 127.0.0.1:${up.port}`);
}
