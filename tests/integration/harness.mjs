// Test harness: starts the real gatehouse binary on loopback from a YAML string and talks to it
// with real clients (curl, raw TCP sockets, Node's http client).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

export const BIN = process.env.GATEHOUSE_BIN ||
  path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../build/gatehouse');

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-it-'));
let fileCounter = 0;
export function tempFile(name, content) {
  const p = path.join(tmpRoot, `${fileCounter++}-${name}`);
  if (content !== undefined) fs.writeFileSync(p, content);
  return p;
}

// Test certificates, made with the openssl command line in `dir`: a CA (NAME.key, NAME.pem), and
// certificates it signs for subjectAltName entries ("DNS:x", "IP:1.2.3.4"), with an EC P-256 key
// or (key 'rsa') an RSA 2048 one.
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
export function makeCa(dir, name, cn = name) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`);
}
export function makeCert(dir, name, ca, sans, cn = name, key = 'ec') {
  const file = (n) => path.join(dir, n);
  fs.writeFileSync(file(`${name}.ext`), `subjectAltName=${sans.join(',')}\n`);
  const newkey = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl('req', ...newkey, '-nodes',
    '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`);
  openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`),
    '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`));
}

// A program a test needs (redis-server, testssl, promtool, ...) must be on PATH; otherwise the test
// fails, naming it. No test skips for a missing tool: `make test` (and CI) must not pass without
// one (scripts/install-deps.sh installs them all).
export function requireTool(name) {
  const found = (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir || '.', name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  assert.ok(found, `${name} is not installed (not found on PATH); this test needs it (scripts/install-deps.sh installs it)`);
}

// The processes a test file started (gateways, redis-server, the blackhole). One a failing test
// left running would hold this file's process open, so the run would hang instead of reporting
// the failure: whatever is still running when the file's tests end is killed, by its own PID.
const children = new Set();
export function ownChild(proc) {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}
after(() => {
  for (const proc of children) proc.kill('SIGKILL');
});

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Starts gatehouse with the given YAML; resolves once every listener is up.
// `configFile`: start from that file instead (for configs with paths relative to it).
// `prefix`: a command that execs the gateway (e.g. prlimit with its options and `--`).
export async function startGatehouse(yaml, { env = {}, expectListeners = 1, args = [], configFile = null, prefix = [] } = {}) {
  const file = configFile || tempFile('gatehouse.yaml', yaml);
  const [cmd, ...argv] = [...prefix, BIN, 'run', '-c', file, ...args];
  const proc = ownChild(spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  const ports = [];
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  // After the exit: its stdout and stderr have ended too, so all it wrote is in stdout and stderr.
  const closed = new Promise((resolve) => proc.on('close', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gatehouse did not start:\n${stderr}`)), 10000);
    proc.stderr.on('data', (d) => {
      stderr += d;
      for (const m of stderr.matchAll(/listening on https?:\/\/[^\s]*:(\d+)/g)) {
        if (!ports.includes(Number(m[1]))) ports.push(Number(m[1]));
      }
      if (ports.length >= expectListeners) { clearTimeout(timer); resolve(); }
    });
    proc.on('exit', () => { clearTimeout(timer); reject(new Error(`gatehouse exited:\n${stderr}`)); });
  });
  const gh = {
    proc, file, port: ports[0], ports, exited, closed,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    url: (p = '/') => `http://127.0.0.1:${ports[0]}${p}`,
    // The access log lines written so far (stdout sink), parsed.
    accessLog: () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)),
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  return gh;
}

// Waits until fn() is truthy (polling), or throws after ms.
export async function waitFor(fn, ms = 3000, what = 'condition') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Runs curl (asynchronously: the test upstreams live in this process and must keep serving);
// resolves { status, headers (lower-case names -> array of values), body, code }.
export function curl(args, { input } = {}) {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '-D', '-', '--max-time', '20', ...args]);
    const out = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { err += d; });
    if (input !== undefined) p.stdin.end(input); else p.stdin.end();
    p.on('close', (code) => resolve(parseCurl(Buffer.concat(out).toString('latin1'), code, err)));
  });
}

function parseCurl(out, code, stderr) {
  // Skip interim (1xx) heads.
  let rest = out;
  let head = '';
  while (true) {
    const idx = rest.indexOf('\r\n\r\n');
    if (idx < 0) { head = rest; rest = ''; break; }
    head = rest.slice(0, idx);
    rest = rest.slice(idx + 4);
    if (!/^HTTP\/[\d.]+ 1\d\d/.test(head)) break;
  }
  const lines = head.split('\r\n');
  const status = Number((lines[0] || '').split(' ')[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i < 0) continue;
    const k = l.slice(0, i).toLowerCase();
    (headers[k] ||= []).push(l.slice(i + 1).trim());
  }
  return { status, headers, body: rest, code, stderr };
}

// Fetches many URLs with one curl (one keep-alive connection); resolves the value of `header`
// in each response, in order.
export function curlHeaderOfEach(urls, header, extra = []) {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '--max-time', '20', ...extra, '-w', `%header{${header}}\\n`,
      ...urls.flatMap((u) => ['-o', '/dev/null', u])]);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stdin.end();
    p.on('close', () => resolve(out.split('\n').slice(0, urls.length)));
  });
}

export function json(res) { return JSON.parse(res.body); }

// GET with Node's own client (no process start-up, so timings are the gateway's): resolves
// { status, headers, body, ms }. `agent`: a keep-alive http.Agent, or false for a fresh connection.
export function httpGet(port, path, { headers = {}, agent = false } = {}) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, ms: performance.now() - t0 }));
    }).on('error', reject);
  });
}

// Sends raw bytes on a fresh TCP connection; resolves with everything received until the peer
// closes or `timeout` ms pass (then `closed` is false).
export function raw(port, data, { timeout = 3000, chunks = null, gap = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: buf.toString('latin1'), closed, bytes: buf });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.on('end', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      if (chunks) {
        for (const c of chunks) {
          if (done) return;
          sock.write(c);
          await sleep(gap);
        }
      } else {
        sock.write(data);
      }
    });
  });
}

// A persistent raw connection for keep-alive tests: send(), then readResponse() parses one response.
export function rawConnection(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let closed = false;
    let waiter = null;
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); if (waiter) waiter(); });
    sock.on('end', () => { closed = true; if (waiter) waiter(); });
    sock.on('error', () => { closed = true; if (waiter) waiter(); });
    sock.on('connect', () => resolve({
      send: (d) => sock.write(d),
      get closed() { return closed; },
      close: () => sock.destroy(),
      // Parses one response with a Content-Length (or no) body; headOnly for a HEAD response.
      async readResponse(timeout = 5000, headOnly = false) {
        const end = Date.now() + timeout;
        while (true) {
          const idx = buf.indexOf('\r\n\r\n');
          if (idx >= 0) {
            const head = buf.subarray(0, idx).toString('latin1');
            const m = /content-length:\s*(\d+)/i.exec(head);
            const len = m && !headOnly ? Number(m[1]) : 0;
            if (buf.length >= idx + 4 + len) {
              const body = buf.subarray(idx + 4, idx + 4 + len).toString('latin1');
              buf = buf.subarray(idx + 4 + len);
              const status = Number(head.split(' ')[1]);
              return { status, head, body };
            }
          }
          if (closed) return null;
          if (Date.now() > end) throw new Error('timed out reading a response');
          await new Promise((r) => { waiter = r; setTimeout(r, 50); });
          waiter = null;
        }
      },
    }));
    sock.on('error', reject);
  });
}

// A free loopback port (bound then released) for configs that need a fixed port.
export function freePort(port = 0) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.on('error', () => resolve(0));  // a port asked for by number is taken
    s.listen(port, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// Peak resident set size of a process in KiB, from /proc (VmHWM is the high-water mark).
// Under a sanitizer (make test-asan / test-tsan set these) the gateway's memory includes shadow
// memory and freed blocks held in quarantine, so absolute RSS bounds say nothing; tests that bound
// memory bound its growth over the sanitized gateway's own baseline instead.
export const SANITIZED = Boolean(process.env.ASAN_OPTIONS || process.env.TSAN_OPTIONS);

export function peakRssKiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)[1]);
}

export function runGatehouse(args, opts = {}) {
  return spawnSync(BIN, args, { encoding: 'utf8', ...opts });
}

// A TCP port on which connect() hangs (see tests/tools/blackhole.cc). Returns { port, close }.
export function startBlackhole() {
  const bin = process.env.BLACKHOLE_BIN || path.resolve(path.dirname(BIN), 'tests/blackhole');
  const proc = ownChild(spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'] }));
  return new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve({ port: Number(String(d).trim()), close: () => proc.kill() }));
    proc.on('error', reject);
  });
}

// The chunked body `text` (after the head) decoded: its payload and whether the last chunk came.
export function dechunk(text) {
  let payload = '';
  for (let at = 0; ;) {
    const eol = text.indexOf('\r\n', at);
    if (eol < 0) return { payload, complete: false };
    const size = parseInt(text.slice(at, eol), 16);
    if (size === 0) return { payload, complete: text.slice(eol + 2).startsWith('\r\n') };
    if (text.length < eol + 2 + size + 2) return { payload: payload + text.slice(eol + 2, eol + 2 + size), complete: false };
    payload += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

// A Prometheus text exposition as samples { name, labels, value } (comments skipped).
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
// The value of the one sample of `name` whose labels include `labels` (undefined: none).
export function sampleOf(samples, name, labels) {
  const found = samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `one sample of ${name} ${JSON.stringify(labels)} (got ${JSON.stringify(found)})`);
  return found[0]?.value;
}
