// The gateway for the memory scripts (cache-entry-memory.mjs, composite-memory.mjs): started from
// `config` with its stderr read for the port it listens on, and its resident memory on demand.
import fs from 'node:fs';
import { spawn } from 'node:child_process';

export const BIN = process.env.GATEHOUSE_BIN || new URL('../build/gatehouse', import.meta.url).pathname;

export async function startGateway(config) {
  const gh = spawn(BIN, ['run', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let err = '';
    gh.stderr.on('data', (d) => {
      err += d;
      const m = /listening on http:\/\/[^\s]*:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    gh.on('exit', () => reject(new Error(err)));
  });
  const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gh.pid}/status`, 'utf8'))[1]);
  return { gh, port, rssKiB };
}
