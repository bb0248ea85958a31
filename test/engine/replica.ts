// One `fleetwave serve` process for the multi-replica tests: started on a port with its own data
// directory, waited for until ready, SIGKILLed at will and started again.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, ENROLL_TOKEN, call } from '../reconciler/helpers.ts';
import { until } from '../helpers/until.ts';

const MAIN = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
/** The seed of the kill moments: FLEETWAVE_TEST_SEED repeats a failing run. */
export const SEED = Number(process.env.FLEETWAVE_TEST_SEED ?? 20261127);

export class Replica {
  readonly port: number;
  readonly dataDir: string;
  readonly remote: string;
  child: ChildProcess | undefined;
  log = '';
  kills = 0;

  /** More `serve` flags (--store, --replica…). */
  readonly extra: string[];

  constructor(port: number, dataDir: string, remote: string, extra: string[] = []) {
    this.port = port;
    this.dataDir = dataDir;
    this.remote = remote;
    this.extra = extra;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  async start(): Promise<void> {
    this.child = spawn(
      process.execPath,
      [
        MAIN,
        'serve',
        '--repo',
        this.remote,
        '--port',
        String(this.port),
        '--data-dir',
        this.dataDir,
        '--fetch-interval',
        '1',
        '--evaluate-interval',
        '1',
        '--log-level',
        'warn',
        ...this.extra,
      ],
      {
        env: {
          ...process.env,
          FLEETWAVE_ENROLL_TOKEN: ENROLL_TOKEN,
          FLEETWAVE_ADMIN_TOKEN: ADMIN_TOKEN,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (d: Buffer) => (this.log = (this.log + d.toString()).slice(-8000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    await until(
      async () => ((await call(`${this.url}/v1/status`)).body as { ready?: boolean }).ready,
      `the replica on ${this.port} is ready`,
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        diagnose: () => this.log,
        stopIf: () => (this.alive ? undefined : 'the replica exited'),
      },
    );
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.kills++;
  }
}
