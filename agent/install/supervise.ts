// Runs the managed software as the agent's child (--run CMD): `/bin/sh -c CMD` in the version's
// directory, in its own process group; restarted with backoff when it exits, stopped (SIGTERM,
// then SIGKILL) on an upgrade and when the agent stops. Its output is passed through as JSON
// lines. The group's pid and start time are kept in a file, so an agent that was SIGKILLed
// stops the child it left behind before starting another.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { backoffDelay, type BackoffPolicy } from '../backoff.ts';

export interface SuperviseOptions {
  command: string;
  /** Where the pid of the running group is kept (in the install directory). */
  pidFile: string;
  /**
   * An environment entry (`NAME=value`) every child is started with: a group led by a process
   * that carries it and that no live agent runs is an orphan, pid file or not.
   */
  tag?: string;
  /** Each line of output, already a JSON line. */
  log: (line: string) => void;
  backoff?: BackoffPolicy;
  /** How long a stopped child may take before SIGKILL, in ms (default 10 s). */
  stopTimeoutMs?: number;
  random?: () => number;
}

/** One run of the child: what it ran, and how it ended. */
export interface RunInfo {
  version: string;
  pid: number | undefined;
  startedAt: number;
  exitedAt?: number;
  /** Stopped by the supervisor (an upgrade, the agent stopping): not a crash. */
  stopped?: boolean;
  code?: number | null;
  signal?: NodeJS.Signals | null;
}

const DEFAULT_RESTART_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 30_000, retryAfterCapMs: 0 };
/** A run that lasted this long resets the backoff: it was not a crash loop. */
const STEADY_MS = 60_000;

/** The start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone. */
async function startTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function startTimeSync(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The process group of a process (field 5 of /proc/PID/stat), or undefined when it is gone. */
async function groupOf(pid: number | 'self'): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

async function carries(pid: number, tag: string): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0').includes(tag);
  } catch {
    return false;
  }
}

/**
 * The groups a killed agent's children lead: processes that carry `tag` whose group leader
 * carries it too (a group this supervisor started, never the agent's own or a shell's).
 */
async function taggedGroups(tag: string): Promise<number[]> {
  const own = await groupOf('self');
  const groups = new Set<number>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!Number.isSafeInteger(pid) || pid <= 1 || pid === process.pid) continue;
    if (!(await carries(pid, tag))) continue;
    const group = await groupOf(pid);
    if (group === undefined || group <= 1 || group === own || groups.has(group)) continue;
    if (await carries(group, tag)) groups.add(group);
  }
  return [...groups];
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class Supervisor {
  private readonly options: SuperviseOptions;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private spec: { version: string; cwd: string; env: NodeJS.ProcessEnv } | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Every exit, newest last (bounded): the health report reads crash loops from it. */
  readonly runs: RunInfo[] = [];

  constructor(options: SuperviseOptions) {
    this.options = options;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** Exits it did not ask for, of runs started at `since` (ms) or later. */
  crashesSince(since: number): RunInfo[] {
    return this.runs.filter((r) => r.startedAt >= since && r.exitedAt !== undefined && !r.stopped);
  }

  /**
   * Stops what an earlier agent process left running (it was killed without stopping it): the
   * group its pid file names, and any other group led by a process carrying the tag (a kill can
   * land between a spawn and the pid file's write). Call it before the first start.
   */
  async reapOrphan(): Promise<void> {
    let text: string | undefined;
    try {
      text = await readFile(this.options.pidFile, 'utf8');
    } catch {
      // no pid file: nothing was running, or the kill came before it was written
    }
    if (text !== undefined) {
      const [pidText, started] = text.trim().split(' ');
      const pid = Number(pidText);
      if (Number.isSafeInteger(pid) && pid > 1 && started && (await startTime(pid)) === started)
        await this.killGroup(pid);
    }
    if (this.options.tag !== undefined && this.child === undefined)
      for (const group of await taggedGroups(this.options.tag)) await this.killGroup(group);
    await rm(this.options.pidFile, { force: true });
  }

  /** Runs `command` for `version` in `cwd` (stopping what ran before), and keeps it running. */
  async start(version: string, cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
    await this.stop();
    this.spec = { version, cwd, env };
    this.failures = 0;
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const spec = this.spec;
    if (!spec) return;
    const info: RunInfo = { version: spec.version, pid: undefined, startedAt: Date.now() };
    const child = spawn('/bin/sh', ['-c', this.options.command], {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    info.pid = child.pid;
    this.child = child;
    this.runs.push(info);
    if (this.runs.length > 100) this.runs.shift();
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[stream] }).on('line', (line) =>
        this.options.log(
          JSON.stringify({
            time: new Date().toISOString(),
            version: spec.version,
            pid: child.pid,
            stream,
            line,
          }),
        ),
      );
    }
    this.exited = new Promise((resolve) => {
      child.once('error', () => {});
      child.once('close', (code, signal) => {
        info.exitedAt = Date.now();
        info.code = code;
        info.signal = signal;
        if (this.child === child) this.child = undefined;
        resolve();
        if (this.spec === spec) this.scheduleRestart(info);
      });
    });
    // At once and synchronously: an agent killed right after the spawn must still leave the
    // pid behind for the next one to stop.
    if (child.pid !== undefined) {
      const started = startTimeSync(child.pid);
      if (started) {
        const temp = `${this.options.pidFile}.tmp`;
        writeFileSync(temp, `${child.pid} ${started}\n`, { mode: 0o600 });
        renameSync(temp, this.options.pidFile);
      }
    }
  }

  private scheduleRestart(info: RunInfo): void {
    if (Date.now() - info.startedAt >= STEADY_MS) this.failures = 0;
    const delay = backoffDelay(
      this.options.backoff ?? DEFAULT_RESTART_BACKOFF,
      this.failures++,
      this.options.random ?? Math.random,
    );
    this.restartTimer = setTimeout(() => void this.spawn().catch(() => {}), delay);
  }

  /** Stops the child (its whole group) and does not restart it. */
  async stop(): Promise<void> {
    this.spec = undefined;
    clearTimeout(this.restartTimer);
    const child = this.child;
    const run = this.runs.at(-1);
    if (run && run.exitedAt === undefined) run.stopped = true;
    if (child?.pid !== undefined && this.running) {
      const exited = this.exited;
      await this.killGroup(child.pid, exited);
    }
    this.child = undefined;
    await rm(this.options.pidFile, { force: true }).catch(() => {});
  }

  /** SIGTERM to the group, SIGKILL after the stop timeout. */
  private async killGroup(pid: number, exited?: Promise<void>): Promise<void> {
    const signal = (s: NodeJS.Signals): void => {
      try {
        process.kill(-pid, s);
      } catch {
        // already gone
      }
    };
    let done = false;
    void exited?.then(() => (done = true));
    const gone = (): boolean => done || (exited === undefined && !alive(pid));
    signal('SIGTERM');
    const deadline = Date.now() + (this.options.stopTimeoutMs ?? 10_000);
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (gone()) return;
    signal('SIGKILL');
    for (let i = 0; i < 20 && !gone(); i++) await new Promise((r) => setTimeout(r, 50));
  }
}
