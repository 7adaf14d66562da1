// A raw HTTP/2 client for tests (RFC 9113 framing, RFC 7541 HPACK encoding), written here so that
// tests can send what no well-behaved client would: bad fields, bad stream ids, floods. It speaks
// cleartext h2c with prior knowledge: the preface, a SETTINGS frame, then whatever frames a test
// writes. It keeps every frame the server sends as { type, flags, streamId, payload }, ACKs the
// server's SETTINGS (while the socket is read), and never decodes HPACK: a test that needs a
// response's status uses node:http2 instead.
import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const Type = {
  DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6,
  GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9,
};
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 };
export const Setting = {
  HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6, ENABLE_CONNECT_PROTOCOL: 8, NO_RFC7540_PRIORITIES: 9,
};
// A SETTINGS payload as { id: value } (6.5.1: 16-bit identifier, 32-bit value).
export function decodeSettings(payload) {
  const out = {};
  for (let at = 0; at + 6 <= payload.length; at += 6) out[payload.readUInt16BE(at)] = payload.readUInt32BE(at + 2);
  return out;
}
// PRIORITY (RFC 9113 6.3, deprecated with RFC 7540's scheme): a dependency and a weight.
export function priority(streamId, dependsOn, weight = 16) {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(dependsOn & 0x7fffffff, 0);
  p[4] = weight - 1;
  return frame(Type.PRIORITY, 0, streamId, p);
}
// RFC 9113 7.
export const ErrorCode = {
  NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10, ENHANCE_YOUR_CALM: 11, INADEQUATE_SECURITY: 12, HTTP_1_1_REQUIRED: 13,
};
export const errorName = (code) =>
  Object.keys(ErrorCode).find((k) => ErrorCode[k] === code) ?? `UNKNOWN(${code})`;
const typeName = (type) => Object.keys(Type).find((k) => Type[k] === type) ?? `TYPE${type}`;

// --- frames (RFC 9113 4.1: 24-bit length, type, flags, 31-bit stream id, payload) ------------

export function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

export const data = (streamId, payload, { endStream = false } = {}) =>
  frame(Type.DATA, endStream ? Flag.END_STREAM : 0, streamId, Buffer.from(payload));

export const headers = (streamId, block, { endStream = true, endHeaders = true } = {}) =>
  frame(Type.HEADERS, (endStream ? Flag.END_STREAM : 0) | (endHeaders ? Flag.END_HEADERS : 0),
    streamId, block);

export const continuation = (streamId, block, { endHeaders = false } = {}) =>
  frame(Type.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block);

export function rstStream(streamId, code) {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(Type.RST_STREAM, 0, streamId, p);
}

// `entries`: { INITIAL_WINDOW_SIZE: 0, ... } (names of Setting).
export function settings(entries = {}, { ack = false } = {}) {
  const list = Object.entries(entries);
  const p = Buffer.alloc(6 * list.length);
  list.forEach(([name, value], i) => {
    if (!(name in Setting)) throw new Error(`unknown setting ${name}`);
    p.writeUInt16BE(Setting[name], 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(Type.SETTINGS, ack ? Flag.ACK : 0, 0, p);
}

export const ping = (opaque = Buffer.alloc(8), { ack = false } = {}) =>
  frame(Type.PING, ack ? Flag.ACK : 0, 0, opaque);

export function decodeRstStream(payload) {
  const code = payload.readUInt32BE(0);
  return { code, name: errorName(code) };
}

export function decodeGoaway(payload) {
  const code = payload.readUInt32BE(4);
  return {
    lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code, name: errorName(code),
    debug: payload.subarray(8).toString('latin1'),
  };
}

// One line per frame, for assertion messages: "HEADERS(1) flags=0x4 len=57".
export function describe(frames, max = 20) {
  const line = (f) => {
    let s = `${typeName(f.type)}(${f.streamId}) flags=0x${f.flags.toString(16)} len=${f.payload.length}`;
    if (f.type === Type.RST_STREAM) s += ` ${decodeRstStream(f.payload).name}`;
    if (f.type === Type.GOAWAY) {
      const g = decodeGoaway(f.payload);
      s += ` ${g.name} last=${g.lastStreamId}${g.debug ? ` "${g.debug}"` : ''}`;
    }
    return s;
  };
  const shown = frames.slice(0, max).map(line);
  if (frames.length > max) shown.push(`... ${frames.length - max} more`);
  return shown.join('\n') || '(no frames)';
}

// --- HPACK (RFC 7541), encoding only, never Huffman --------------------------------------------

// 5.1: an integer in a prefix of `bits` bits, `pattern` in the first byte's high bits.
export function hpackInt(value, bits, pattern = 0) {
  const max = (1 << bits) - 1;
  if (value < max) return Buffer.from([pattern | value]);
  const out = [pattern | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return Buffer.from(out);
}

// 5.2 with H = 0.
const hpackString = (s) => {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0x00), b]);
};

// 6.2.2: literal header field without indexing, new name (leaves the dynamic table alone).
export const literal = (name, value) =>
  Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]);
// 6.2.1: literal with incremental indexing, new name (the field becomes dynamic index 62).
export const literalIndexed = (name, value) =>
  Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
// 6.1: indexed header field (62 = the newest dynamic table entry).
export const indexed = (index) => hpackInt(index, 7, 0x80);

// A header block of literals without indexing, from [[name, value], ...].
export const encodeFields = (fields) => Buffer.concat(fields.map(([n, v]) => literal(n, v)));

// A GET request's fields; `extra` come after the pseudo-header fields.
export const requestFields = (path = '/echo', extra = [], method = 'GET') => [
  [':method', method], [':scheme', 'http'], [':authority', '127.0.0.1'], [':path', path], ...extra,
];

// --- the connection ----------------------------------------------------------------------------

// Connects to a cleartext h2c listener and sends `preface` and a SETTINGS frame with `settings`
// (sendSettings false: the preface alone). Resolves once connected with:
//   frames            every frame received so far, in order (bytesReceived: all bytes)
//   send(bytes)       write; resolves true once the kernel took them, false if the socket failed
//   waitFor(pred, ms) the first frame (received already or later) matching pred; rejects when the
//                     socket closes or `ms` pass first, listing the frames received
//   closed            a promise of { error } once the socket has closed; isClosed
//   waitForClose(ms)  the same within ms, or rejects
//   pause(), resume() stop and start reading the socket (a client that never reads)
//   destroy()
export function connectH2(port, { settings: entries = {}, preface = PREFACE, sendSettings = true } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  const frames = [];
  const waiters = new Set();
  let buf = Buffer.alloc(0);
  let isClosed = false;
  let resolveClosed;
  const closed = new Promise((r) => { resolveClosed = r; });

  sock.on('data', (d) => {
    c.bytesReceived += d.length;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const f = { type: buf[3], flags: buf[4], streamId: buf.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(buf.subarray(9, 9 + len)) };
      buf = buf.subarray(9 + len);
      frames.push(f);
      if (f.type === Type.SETTINGS && !(f.flags & Flag.ACK) && !isClosed) sock.write(settings({}, { ack: true }));
      for (const w of waiters) if (w.pred(f)) w.resolve(f);
    }
  });
  let error = null;
  sock.on('error', (e) => { error = e; });
  sock.on('close', () => {
    isClosed = true;
    for (const w of waiters) w.reject(new Error(`the connection closed (${error?.code ?? 'end'}) before ${w.what}`));
    resolveClosed({ error });
  });

  const c = {
    sock, frames, closed, bytesReceived: 0,
    get isClosed() { return isClosed; },
    send: (bytes) => new Promise((resolve) => {
      if (isClosed || sock.destroyed) return resolve(false);
      sock.write(bytes, (err) => resolve(!err));
    }),
    waitFor(pred, ms = 5000, what = 'the frame awaited') {
      const found = frames.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = {
          pred, what,
          resolve: (f) => { done(); resolve(f); },
          reject: (e) => { done(); reject(new Error(`${e.message}; frames received:\n${describe(frames)}`)); },
        };
        const timer = setTimeout(() => w.reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        const done = () => { clearTimeout(timer); waiters.delete(w); };
        if (isClosed) return w.reject(new Error(`the connection closed before ${what}`));
        waiters.add(w);
      });
    },
    waitForClose(ms = 5000) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(
          `the connection was still open after ${ms} ms; frames received:\n${describe(frames)}`)), ms);
      });
      return Promise.race([closed, timeout]).finally(() => clearTimeout(timer));
    },
    pause: () => sock.pause(),
    resume: () => sock.resume(),
    destroy: () => sock.destroy(),
  };
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.off('error', reject);
      sock.write(sendSettings ? Buffer.concat([preface, settings(entries)]) : preface);
      resolve(c);
    });
  });
}

// Predicates for waitFor.
export const isType = (type, streamId) => (f) => f.type === type && (streamId === undefined || f.streamId === streamId);
export const onStream = (streamId) => (f) => f.streamId === streamId;
