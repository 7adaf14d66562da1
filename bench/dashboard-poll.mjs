// What an open dashboard asks of the gateway (src/admin/dashboard/app.js): GET /status and
// GET /metrics once a second, for the benchmark's gatehouse-dashboard (bench/run.sh), so that the
// cost of a dashboard left open during the load is measured.
// Usage: node bench/dashboard-poll.mjs ADMIN_PORT
import http from 'node:http';

const port = Number(process.argv[2]);
const get = (path) => new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port, path }, (res) => { res.resume(); res.on('end', resolve); })
    .on('error', resolve);
});
setInterval(() => { get('/status'); get('/metrics'); }, 1000);
