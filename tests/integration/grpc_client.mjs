// Helpers the gRPC suites share (grpc.test.mjs, grpc_features.test.mjs, grpc_web.test.mjs): test
// ids in metadata, bounded waits, a streaming call read message by message, grpc-message decoded;
// and, for their test servers, binding and the raw HTTP/2 streams.
import assert from 'node:assert/strict';
import grpc from '@grpc/grpc-js';

// Binds a grpc.Server to a free loopback port, without TLS: resolves the port.
export function bindInsecure(server) {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0',
    grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
}

// onStream(stream, headers) for each HTTP/2 stream of a bound grpc.Server, before grpc-js sees it:
// the raw request head (grpc-js drops grpc-timeout from the metadata it hands to handlers), the
// DATA, how the stream ended.
export function onRawStreams(server, onStream) {
  const h2servers = server.http2Servers ? [...server.http2Servers.keys()] : [];
  assert.ok(h2servers.length > 0, 'grpc-js keeps its HTTP/2 servers in server.http2Servers');
  for (const s of h2servers) s.prependListener('stream', onStream);
}

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
