// A gRPC client for the demo (examples/protos/reviews.proto): calls shop.Reviews at ADDRESS and
// prints what comes back, or the gRPC status when the call fails.
// Usage: node examples/grpc-call.mjs [ADDRESS] [get ID | list PRODUCT_ID]
import grpc from '../tests/integration/node_modules/@grpc/grpc-js/build/src/index.js';
import protoLoader from '../tests/integration/node_modules/@grpc/proto-loader/build/src/index.js';

const [address = 'localhost:8080', what = 'get', id = '1'] = process.argv.slice(2);
const proto = new URL('protos/reviews.proto', import.meta.url).pathname;
const shop = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true })).shop;
const client = new shop.Reviews(address, grpc.credentials.createInsecure());
const failed = (e) => {
  console.error(`grpc-call: ${grpc.status[e.code]} (${e.code}): ${e.details}`);
  process.exit(1);
};
if (what === 'list') {
  const call = client.ListReviews({ product_id: id, limit: 3 });
  call.on('data', (r) => console.log(JSON.stringify(r)));
  call.on('error', failed);
  call.on('end', () => client.close());
} else {
  client.GetReview({ id }, { deadline: Date.now() + 5000 }, (e, r) => {
    if (e) failed(e);
    console.log(JSON.stringify(r));
    client.close();
  });
}
