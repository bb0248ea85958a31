// Starts a floor server (floor-server.ts) in its own process, pinned like the reconciler, and
// waits until it answers.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/reconciler/helpers.ts';
import { until } from '../../test/helpers/until.ts';
import { pin } from './load.ts';

const SERVER = fileURLToPath(new URL('./floor-server.ts', import.meta.url));

export type FloorKind = 'node-http' | 'net';

export interface Floor {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startFloor(options: {
  kind: FloorKind;
  /** The 200 answer's body: the reconciler's own sample target. */
  body: string;
  /** Node/V8 flags, as the reconciler's. */
  nodeArgs?: string[];
  cpus?: string;
}): Promise<Floor> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), SERVER, options.kind, String(port)],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, FLOOR_BODY: options.body },
    },
  );
  pin(child.pid!, options.cpus);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  await until(
    async () =>
      (
        await fetch(`${url}/`, {
          method: 'POST',
          body: '{}',
          headers: { 'content-type': 'application/json' },
        })
      ).status === 304,
    `the ${options.kind} floor answers`,
    {
      timeoutMs: 30_000,
      intervalMs: 100,
      stopIf: () => (child.exitCode === null ? undefined : `the ${options.kind} floor exited`),
    },
  ).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { url, pid: child.pid!, stop };
}
