// Demo upstream services for examples/demo.yaml (the same test upstream the integration tests use:
// it echoes requests as JSON and misbehaves on demand).
import { startUpstream } from '../tests/integration/upstream.mjs';
import { WebSocketServer } from '../tests/integration/node_modules/ws/wrapper.mjs';

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
