// An OTLP/HTTP collector for the tracing benchmark (bench/run.sh, gatehouse-traced*): takes every
// export (POST /v1/traces) and answers 200 at once without decoding it, so that what the
// benchmark measures is the gateway's cost of tracing, not a collector's. GET /stats tells how
// many exports and bytes came (the run prints it, to show that spans really went out).
// Usage: node bench/otlp-sink.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2]);
let exports = 0, bytes = 0;
http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ exports, bytes }));
    return;
  }
  req.on('data', (d) => { bytes += d.length; });
  req.on('end', () => {
    exports++;
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
    res.end();
  });
}).listen(port, '127.0.0.1');
