// Demo upstream services for examples/demo.yaml (the same test upstream the integration tests use:
// it echoes requests as JSON and misbehaves on demand).
import { startUpstream } from '../tests/integration/upstream.mjs';
import { WebSocketServer } from '../tests/integration/node_modules/ws/wrapper.mjs';
import grpc from '../tests/integration/node_modules/@grpc/grpc-js/build/src/index.js';
import protoLoader from '../tests/integration/node_modules/@grpc/proto-loader/build/src/index.js';
import http2 from 'node:http2';

// A port taken (scripts/demo.sh checks first, but another program may take one in between): one
// line, not a stack trace.
process.on('uncaughtException', (e) => {
  console.error(`demo services: ${e.code === 'EADDRINUSE' ? `${e.address}:${e.port} is already in use` : e.stack}`);
  process.exit(1);
});

const services = [
  ['products-1', 9001], ['products-2', 9002], ['products-v2', 9003], ['mobile-bff', 9010],
];
for (const [name, port] of services) {
  await startUpstream({ name, port });
  console.log(`demo service ${name} on 127.0.0.1:${port}`);
}
// A WebSocket echo service: each message comes back prefixed.
const wss = new WebSocketServer({ port: 9020, host: '127.0.0.1' });
wss.on('connection', (s) => s.on('message', (m, binary) => s.send(binary ? m : `echo: ${m}`)));
await new Promise((r) => wss.on('listening', r));
console.log('demo service ws-echo on 127.0.0.1:9020');
// An HTTP/2-only service (cleartext, prior knowledge): it says which protocol the gateway spoke
// and what it asked for.
const h2 = http2.createServer();
h2.on('stream', (stream, headers) => {
  stream.resume();
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ upstream: 'stock-h2', protocol: 'HTTP/2', method: headers[':method'],
      path: headers[':path'], authority: headers[':authority'] }));
  });
});
await new Promise((r) => h2.listen(9030, '127.0.0.1', r));
console.log('demo service stock-h2 (HTTP/2 only) on 127.0.0.1:9030');
// A gRPC service (examples/protos/reviews.proto): shop.Reviews, with gRPC's health service.
const reviewsProto = new URL('protos/reviews.proto', import.meta.url).pathname;
const shop = grpc.loadPackageDefinition(protoLoader.loadSync(reviewsProto, { keepCase: true })).shop;
const review = (id, n = 0) => ({ id: `${id}`, text: `review ${n + 1} of ${id}: works as described`, stars: 4 + (n % 2) });
const reviews = new grpc.Server();
reviews.addService(shop.Reviews.service, {
  GetReview: ({ request }, done) => (request.id === '404'
    ? done({ code: grpc.status.NOT_FOUND, details: `no review ${request.id}` })
    : done(null, review(request.id))),
  ListReviews: (call) => {
    for (let n = 0; n < Math.min(call.request.limit || 3, 10); n++) call.write(review(call.request.product_id, n));
    call.end();
  },
});
await new Promise((resolve, reject) => reviews.bindAsync('127.0.0.1:9040', grpc.ServerCredentials.createInsecure(),
  (e) => (e ? reject(Object.assign(e, { code: 'EADDRINUSE', address: '127.0.0.1', port: 9040 })) : resolve())));
console.log('demo service reviews-grpc (gRPC) on 127.0.0.1:9040');
