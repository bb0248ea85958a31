// Real nginx for tests (Debian nginx-light): a load balancer on a free loopback port that sends
// each request to the next of several upstreams, round-robin, no sticky sessions — what the
// production guide says any balancer may do. Its own temp dir and config; stop() removes both.

import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../reconciler/helpers.ts';
import { until } from './until.ts';

const CANDIDATES = ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx'];

export function findNginx(): { bin: string; version: string } | undefined {
  for (const bin of CANDIDATES) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) return { bin, version: (r.stderr || r.stdout).trim() };
  }
  return undefined;
}

export interface Balancer {
  url: string;
  stop(): Promise<void>;
}

/** nginx round-robin over `ports` on 127.0.0.1; a refused upstream passes the request on. */
export async function startBalancer(ports: number[]): Promise<Balancer> {
  const found = findNginx();
  if (!found) throw new Error('nginx is not installed (.ci/run installs Debian nginx-light)');
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-nginx-'));
  await chmod(dir, 0o755);
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const port = await freePort();
  const conf = `
daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  upstream reconcilers {
${ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=1s;`).join('\n')}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://reconcilers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503;
      proxy_read_timeout 120s;
    }
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
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await until(
      async () => {
        await fetch(`${url}/healthz`);
        return true;
      },
      'nginx answers',
      {
        timeoutMs: 20_000,
        intervalMs: 100,
        stopIf: () => (child.exitCode !== null ? `nginx exited with ${child.exitCode}` : undefined),
      },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}
