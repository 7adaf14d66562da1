// A WebSocket client for the demo: sends MESSAGE to URL, prints the answer, closes.
// Usage: node examples/ws-echo.mjs ws://localhost:8080/ws/echo 'hello'
import { WebSocket } from '../tests/integration/node_modules/ws/wrapper.mjs';

const [url = 'ws://localhost:8080/ws/echo', message = 'hello'] = process.argv.slice(2);
const ws = new WebSocket(url);
ws.on('open', () => ws.send(message));
ws.on('message', (m) => {
  console.log(m.toString());
  ws.close(1000);
});
ws.on('unexpected-response', (req, res) => {
  console.error(`ws-echo: ${url} answered ${res.statusCode}, not 101`);
  process.exit(1);
});
ws.on('error', (e) => {
  console.error(`ws-echo: ${e.message}`);
  process.exit(1);
});
