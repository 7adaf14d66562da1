// A real OTLP/HTTP trace receiver for the tests: a node:http server on loopback that takes
// `POST /v1/traces` (protobuf, gzip or not), decodes each body with OpenTelemetry's own protocol
// definitions (@opentelemetry/otlp-transformer's generated protobufjs root), and keeps every
// request (its headers, its decoded spans, what it was answered) and the spans it accepted.
//
// Its answers are the test's to choose: `respond(request, index)` returns { status, headers } or
// 'hang' (the request is read and never answered: a collector that stalls).
import http from 'node:http';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { waitFor } from './harness.mjs';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };
export const STATUS = { UNSET: 0, OK: 1, ERROR: 2 };

const hex = (b64) => (b64 ? Buffer.from(b64, 'base64').toString('hex') : '');

// An AnyValue as a plain value (int64 as a Number: the tests' values are small).
function anyValue(v) {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values || []).map(anyValue);
  if (v.kvlistValue !== undefined) return attributes(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return undefined;
}

// KeyValue list -> { key: value }; a repeated key is kept as `__dup_KEY` so tests can see it.
function attributes(list = []) {
  const out = {};
  for (const kv of list) {
    if (Object.prototype.hasOwnProperty.call(out, kv.key)) out[`__dup_${kv.key}`] = anyValue(kv.value);
    else out[kv.key] = anyValue(kv.value);
  }
  return out;
}

// An ExportTraceServiceRequest body -> { resources: [...], spans: [...] }, each span flattened
// with its resource's and scope's identity, ids in lower-case hex.
export function decodeExport(buf) {
  const msg = ExportTraceServiceRequest.decode(buf);
  const obj = ExportTraceServiceRequest.toObject(msg, { longs: String, bytes: String, enums: Number });
  const spans = [];
  const resources = [];
  for (const rs of obj.resourceSpans || []) {
    const resource = attributes(rs.resource?.attributes);
    resources.push({ resource, scopes: (rs.scopeSpans || []).map((ss) => ss.scope?.name) });
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        spans.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState || '',
          flags: s.flags,
          name: s.name,
          kind: s.kind ?? 0,
          start: BigInt(s.startTimeUnixNano || 0),
          end: BigInt(s.endTimeUnixNano || 0),
          attrs: attributes(s.attributes),
          events: (s.events || []).map((e) => ({ name: e.name, time: BigInt(e.timeUnixNano || 0), attrs: attributes(e.attributes) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message || '' },
          resource,
          scope: { name: ss.scope?.name, version: ss.scope?.version },
        });
      }
    }
  }
  return { resources, spans, raw: obj };
}

export function startCollector({ respond = () => ({ status: 200 }), path = '/v1/traces' } = {}) {
  const requests = [];  // every request: { at, method, url, headers, body, gzipped, decoded, error, status }
  const spans = [];     // spans of the requests answered 2xx
  const hanging = new Set();
  const c = {
    requests, spans, respond, port: 0,
    get url() { return `http://127.0.0.1:${c.port}${path}`; },
    // Spans as they are now, or waited for.
    serverSpan: (requestId, ms = 5000) => waitFor(() => spans.find((s) => s.kind === SPAN_KIND.SERVER &&
      s.attrs['gatehouse.request_id'] === requestId), ms, `the server span of request ${requestId}`),
    findServer: (requestId) => spans.find((s) => s.kind === SPAN_KIND.SERVER && s.attrs['gatehouse.request_id'] === requestId),
    clientSpansOf: (server) => spans.filter((s) => s.kind === SPAN_KIND.CLIENT && s.traceId === server.traceId &&
      s.parentSpanId === server.spanId).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0)),
    close: () => new Promise((r) => {
      for (const res of hanging) res.socket?.destroy();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry = { at: performance.now(), method: req.method, url: req.url, headers: req.headers, body,
        gzipped: req.headers['content-encoding'] === 'gzip', decoded: null, error: null, status: 0 };
      try {
        const payload = entry.gzipped ? zlib.gunzipSync(body) : body;
        entry.decoded = decodeExport(payload);
      } catch (e) {
        entry.error = String(e);
      }
      const index = requests.length;
      requests.push(entry);
      const answer = req.method === 'POST' && req.url === path ? c.respond(entry, index) : { status: 404 };
      if (answer === 'hang') {
        entry.status = 'hang';
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      entry.status = answer.status;
      if (answer.status >= 200 && answer.status < 300 && entry.decoded) spans.push(...entry.decoded.spans);
      // An ExportTraceServiceResponse with nothing in it is an empty protobuf message.
      res.writeHead(answer.status, { 'content-type': 'application/x-protobuf', 'content-length': 0, ...(answer.headers || {}) });
      res.end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      c.port = server.address().port;
      resolve(c);
    });
  });
}
