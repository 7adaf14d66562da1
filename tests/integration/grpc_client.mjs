// Client-side helpers the gRPC suites share (grpc.test.mjs, grpc_features.test.mjs): test ids in
// metadata, bounded waits, a streaming call read message by message, grpc-message decoded.
import grpc from '@grpc/grpc-js';

let idSeq = 0;
// An id for one call, which the test servers key what they saw by (metadata x-test-id).
export const newId = (name) => `${name}-${process.pid}-${++idSeq}`;
export function md(id, entries = {}) {
  const m = new grpc.Metadata();
  m.set('x-test-id', id);
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
}

// `promise`, or a failure naming `what` after `ms`: a gateway that holds something back fails the
// test instead of hanging it.
export function within(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(t));
}

// A streaming call's messages one at a time (bounded waits): next() resolves the next message, or
// null once the call has ended; all() the rest; `status` resolves its status; `initial` is its
// initial metadata, once it came.
export function reader(call) {
  const items = [];
  const waiters = [];
  let ended = false;
  const r = { initial: null, call };
  call.on('metadata', (m) => { r.initial = m; });
  call.on('data', (m) => { if (waiters.length) waiters.shift()(m); else items.push(m); });
  call.on('error', () => {});
  r.status = within(new Promise((resolve) => call.on('status', (s) => {
    ended = true;
    while (waiters.length) waiters.shift()(null);
    resolve(s);
  })), 15000, 'the call\'s status');
  r.status.catch(() => {});
  r.next = (ms = 5000) => {
    if (items.length) return Promise.resolve(items.shift());
    if (ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
      waiters.push((m) => { clearTimeout(t); resolve(m); });
    });
  };
  r.all = async () => {
    const out = [];
    for (let m = await r.next(); m; m = await r.next()) out.push(m);
    return out;
  };
  return r;
}

// grpc-message is percent-encoded (gRPC's HTTP/2 protocol): printable ASCII only on the wire.
export function decodeGrpcMessage(s) {
  const bytes = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
