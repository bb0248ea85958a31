// nginx as the yardstick: its own instance on a free loopback port with a temporary config,
// serving one static JSON file with an ETag. One worker process, as the reconciler is one Node
// process on one core. Undefined when nginx is not installed (the comparison is skipped).

import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNginx } from '../../test/helpers/nginx.ts';
import { freePort } from '../../test/reconciler/helpers.ts';
import { pin } from './load.ts';

export interface Nginx {
  url: string;
  /** The master's pid; the worker is its child. */
  pids: number[];
  version: string;
  stop(): Promise<void>;
}

export async function startNginx(options: {
  /** The file served at /target.json. */
  body: string;
  workerProcesses: number | 'auto';
  cpus?: string;
}): Promise<Nginx | undefined> {
  const found = findNginx();
  if (!found) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-bench-nginx-'));
  // Run as root, nginx's workers drop to an unprivileged user: they must read the file.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'html'));
  await mkdir(join(dir, 'tmp'));
  await writeFile(join(dir, 'html', 'target.json'), options.body);
  const port = await freePort();
  const tmp = join(dir, 'tmp');
  const conf = `
daemon off;
master_process on;
worker_processes ${options.workerProcesses};
worker_rlimit_nofile 19000;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  types { application/json json; }
  server {
    listen 127.0.0.1:${port};
    root ${join(dir, 'html')};
    etag on;
    location = /target.json { add_header Cache-Control no-cache; }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(found.bin, ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGQUIT'); // graceful: the master stops its workers
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/target.json`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i >= 100 || child.exitCode !== null) {
      await stop();
      throw new Error('nginx did not start in 10 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // Pin the master and its workers (children) to the same CPUs as the reconciler.
  const children = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l !== '')
    .map(Number);
  const pids = [child.pid!, ...children];
  for (const pid of pids) pin(pid, options.cpus);
  return { url, pids, version: found.version, stop };
}
