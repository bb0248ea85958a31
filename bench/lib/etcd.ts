// etcd as the yardstick for waking watchers: Debian's `etcd-server` (/usr/bin/etcd), its own
// single-member instance on free loopback ports with a temporary data dir, reached through
// its v3 HTTP/JSON gateway (`/v3/watch`, `/v3/kv/put`). Undefined when etcd is not installed.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../test/reconciler/helpers.ts';
import { until } from '../../test/helpers/until.ts';

export interface Etcd {
  url: string;
  port: number;
  pid: number;
  version: string;
  /** Writes `value` at `key` (the gateway's JSON: both base64). */
  put(key: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

export function findEtcd(): string | undefined {
  for (const path of ['/usr/bin/etcd', '/usr/local/bin/etcd']) {
    if (spawnSync(path, ['--version'], { stdio: 'ignore' }).status === 0) return path;
  }
  return undefined;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

export async function startEtcd(): Promise<Etcd | undefined> {
  const binary = findEtcd();
  if (!binary) return undefined;
  const version =
    /etcd Version: (\S+)/.exec(
      spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout,
    )?.[1] ?? '?';
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-bench-etcd-'));
  const [port, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [
      '--name=bench',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=bench=http://127.0.0.1:${peer}`,
      '--log-level=error',
      '--logger=zap',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const put = async (key: string, value: string): Promise<void> => {
    const res = await fetch(`${url}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({ key: b64(key), value: b64(value) }),
    });
    if (res.status !== 200) throw new Error(`etcd put: ${res.status} ${await res.text()}`);
  };
  await until(async () => (await fetch(`${url}/health`)).status === 200, 'etcd is healthy', {
    timeoutMs: 30_000,
    intervalMs: 100,
    stopIf: () => (child.exitCode === null ? undefined : 'etcd exited'),
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { url, port, pid: child.pid!, version, put, stop };
}

/** The request a watcher sends: a streaming `POST /v3/watch` on `key`. */
export function watchRequest(port: number, key: string): string {
  const body = JSON.stringify({ create_request: { key: b64(key) } });
  return (
    `POST /v3/watch HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}
