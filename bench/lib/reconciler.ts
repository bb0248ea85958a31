// The reconciler under benchmark: the real `fleetwave serve` entry point in its own process
// (so its RSS and CPU are its own, and it can be pinned to one core), on a real git fixture
// built by the reconciler tests' helpers; plus enrolling a synthetic fleet through the API.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { Agent } from '../../core/target/model.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  WEBHOOK_SECRET,
  FleetRepo,
  freePort,
} from '../../test/reconciler/helpers.ts';
import { until } from '../../test/helpers/until.ts';
import { pin } from './load.ts';

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const UNIT = fileURLToPath(
  new URL('../../deploy/systemd/fleetwave-reconciler.service', import.meta.url),
);

/**
 * The Node/V8 flags the reconciler ships with: the NODE_OPTIONS of its systemd unit, so the
 * benchmarks measure the server as it runs by default.
 */
export function shippedNodeArgs(): string[] {
  const m = /^Environment=NODE_OPTIONS=(.*)$/m.exec(readFileSync(UNIT, 'utf8'));
  return (m?.[1] ?? '').split(' ').filter((a) => a !== '');
}
/**
 * How agents' requests are read: `node`, the main port (Node's parser, raw handlers for the
 * agent routes); `agent-port`, the same server started with --agent-port, agents' requests
 * sent there (the strict hand-written HTTP/1.1 server of reconciler/agent-port.ts).
 */
export type Transport = 'node' | 'agent-port';

export interface ReconcilerProcess {
  repo: FleetRepo;
  /** The main port: status, metrics, webhooks. */
  url: string;
  /** Where agents' requests go: the agent port with `agent-port`, else the main port. */
  agentUrl: string;
  pid: number;
  /** VmRSS of the server process, in KiB. */
  rssKiB(): number;
  stop(): Promise<void>;
}

export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

export async function startReconciler(options: {
  cpus?: string;
  maxWaitSeconds?: number;
  nodeArgs?: string[];
  transport?: Transport;
}): Promise<ReconcilerProcess> {
  const repo = await FleetRepo.create();
  const port = await freePort();
  const agentPort = options.transport === 'agent-port' ? await freePort() : undefined;
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      CLI,
      'serve',
      ...(agentPort === undefined ? [] : ['--agent-port', String(agentPort)]),
      '--repo',
      repo.origin,
      '--data-dir',
      join(repo.root, 'data'),
      '--port',
      String(port),
      '--fetch-interval',
      '3600',
      '--max-wait',
      String(options.maxWaitSeconds ?? 60),
      '--max-waiters',
      '100000',
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        FLEETWAVE_ENROLL_TOKEN: ENROLL_TOKEN,
        FLEETWAVE_ADMIN_TOKEN: ADMIN_TOKEN,
        FLEETWAVE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      },
    },
  );
  const pid = child.pid!;
  pin(pid, options.cpus);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await repo.cleanup();
  };
  // Ready once it serves a rollout: bounded, 60 s.
  await until(
    async () => (await fetch(`${url}/readyz`)).status === 200,
    'the reconciler is ready',
    {
      timeoutMs: 60_000,
      intervalMs: 100,
      stopIf: () => (child.exitCode === null ? undefined : 'the reconciler exited'),
    },
  ).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  const agentUrl = agentPort === undefined ? url : `http://127.0.0.1:${agentPort}`;
  return { repo, url, agentUrl, pid, rssKiB: () => rssKiB(pid), stop };
}

export interface EnrolledAgent extends Agent {
  token: string;
  /** The etag of the target it was served at its first check-in. */
  etag: string;
  version: string;
}

/** Runs `count` tasks with at most `concurrency` at once. */
export async function inParallel(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

/** Enrolls every agent and checks it in once, so it has a token and knows its target. */
export async function enrollAll(
  url: string,
  agents: readonly Agent[],
): Promise<{ enrolled: EnrolledAgent[]; sampleTarget: string }> {
  const pool = new Pool(url, { connections: 32, pipelining: 1 });
  const enrolled = new Array<EnrolledAgent>(agents.length);
  let sampleTarget = '';
  try {
    await inParallel(agents.length, 64, async (i) => {
      const { id, labels } = agents[i]!;
      const e = await pool.request({
        method: 'POST',
        path: '/v1/enroll',
        headers: { authorization: `Bearer ${ENROLL_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id, labels }),
      });
      const { token } = (await e.body.json()) as { token: string };
      if (e.statusCode !== 200) throw new Error(`enroll ${id}: ${e.statusCode}`);
      const c = await pool.request({
        method: 'POST',
        path: '/v1/checkin',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id, labels, health: { status: 'ok' } }),
      });
      const text = await c.body.text();
      if (c.statusCode !== 200) throw new Error(`checkin ${id}: ${c.statusCode} ${text}`);
      const target = JSON.parse(text) as { etag: string; version: string };
      if (i === 0) sampleTarget = text;
      enrolled[i] = { id, labels, token, etag: target.etag, version: target.version };
    });
  } finally {
    await pool.close();
  }
  return { enrolled, sampleTarget };
}

/** The check-in an agent sends: with `etag` it claims to run that target. */
export function checkinRequest(
  agent: EnrolledAgent,
  etag: string,
  wait: number,
): { path: string; headers: Record<string, string>; body: string } {
  return {
    path: `/v1/checkin?wait=${wait}`,
    headers: {
      authorization: `Bearer ${agent.token}`,
      'content-type': 'application/json',
      'if-none-match': `"${etag}"`,
    },
    body: JSON.stringify({
      id: agent.id,
      labels: agent.labels,
      current: { etag, version: agent.version },
      health: { status: 'ok' },
    }),
  };
}
