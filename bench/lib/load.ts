// A small closed-loop HTTP load generator, the same for every server a benchmark compares:
// `workers` processes, each holding its share of `connections` undici Clients (pipelining 1),
// each connection sending its next request as soon as the last answer's body has arrived.
// Requests cycle through a list (one per agent for the reconciler), statuses are counted and
// latencies recorded; only answers that complete inside the measured window count.

import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { histogramPercentile, merge, newHistogram, wallMs, type Histogram } from './stats.ts';

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  /** http://127.0.0.1:PORT */
  origin: string;
  requests: readonly LoadRequest[];
  connections: number;
  workers: number;
  /** Measured window. */
  durationMs: number;
  /** Sent before the window opens (connections, JIT, caches). */
  warmupMs: number;
  /** taskset CPU list for the worker processes, e.g. "1"; undefined to leave them free. */
  cpus?: string;
  /** The server's processes: their CPU time inside the window is reported. */
  serverPids?: number[];
}

export interface LoadResult {
  requests: number;
  perSecond: number;
  statuses: Record<string, number>;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU seconds (user + system) the server's processes spent inside the window. */
  serverCpuSeconds?: number;
  /** Answers per CPU second of the server: its efficiency whatever else the machine runs. */
  perCpuSecond?: number;
}

/** What a worker is sent. */
export interface WorkerJob {
  origin: string;
  requests: LoadRequest[];
  connections: number;
  /** Wall-clock ms (stats.wallMs) at which the measured window opens and closes. */
  windowStart: number;
  windowEnd: number;
}

/** What a worker answers. */
export interface WorkerReport {
  requests: number;
  statuses: Record<string, number>;
  errors: number;
  histogram: Histogram;
  maxMs: number;
}

const WORKER = fileURLToPath(new URL('./load-worker.ts', import.meta.url));
/** No run may outlast its window by more than this. */
const GRACE_MS = 30_000;

let ticksPerSecond: number | undefined;

/** CPU seconds (user + system) that processes have used so far, from /proc. */
export function cpuSeconds(pids: readonly number[]): number {
  ticksPerSecond ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  }
  return ticks / ticksPerSecond;
}

/** Pins a process to CPUs with taskset; returns whether it worked. */
export function pin(pid: number, cpus: string | undefined): boolean {
  if (cpus === undefined) return false;
  return spawnSync('taskset', ['-cp', cpus, String(pid)], { stdio: 'ignore' }).status === 0;
}

function reportOf(child: ChildProcess, timeoutMs: number): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('a load worker did not report in time'));
    }, timeoutMs);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as WorkerReport);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`a load worker exited (${code}) before reporting`));
    });
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { workers, connections, requests } = options;
  if (workers < 1 || connections < workers) throw new Error('need connections >= workers >= 1');
  const start = wallMs() + 300; // time to fork
  const windowStart = start + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;
  const children: ChildProcess[] = [];
  const reports: Promise<WorkerReport>[] = [];
  try {
    for (let w = 0; w < workers; w++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      pin(child.pid!, options.cpus);
      // Each worker cycles through its own slice, so every request of the list is used.
      const share = requests.filter((_, i) => i % workers === w);
      const job: WorkerJob = {
        origin: options.origin,
        requests: share.length > 0 ? share : [...requests],
        connections: Math.floor(connections / workers) + (w < connections % workers ? 1 : 0),
        windowStart,
        windowEnd,
      };
      reports.push(reportOf(child, windowEnd - start + GRACE_MS));
      child.send(job);
    }
    // The server's CPU time, sampled when the window opens and closes.
    const pids = options.serverPids;
    const cpu = pids
      ? Promise.all(
          [windowStart, windowEnd].map(
            (at) =>
              new Promise<number>((resolve) =>
                setTimeout(() => resolve(cpuSeconds(pids)), Math.max(0, at - wallMs())),
              ),
          ),
        )
      : undefined;
    const done = await Promise.all(reports);
    const [cpuStart, cpuEnd] = cpu ? await cpu : [];
    const histogram = newHistogram();
    const statuses: Record<string, number> = {};
    let total = 0;
    let errors = 0;
    let maxMs = 0;
    for (const r of done) {
      merge(histogram, r.histogram);
      for (const [status, n] of Object.entries(r.statuses))
        statuses[status] = (statuses[status] ?? 0) + n;
      total += r.requests;
      errors += r.errors;
      maxMs = Math.max(maxMs, r.maxMs);
    }
    const serverCpuSeconds =
      cpuStart === undefined || cpuEnd === undefined ? undefined : cpuEnd - cpuStart;
    return {
      ...(serverCpuSeconds === undefined
        ? {}
        : { serverCpuSeconds, perCpuSecond: total / Math.max(0.01, serverCpuSeconds) }),
      requests: total,
      perSecond: total / (options.durationMs / 1000),
      statuses,
      errors,
      p50Ms: histogramPercentile(histogram, 50),
      p99Ms: histogramPercentile(histogram, 99),
      maxMs,
    };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
}
