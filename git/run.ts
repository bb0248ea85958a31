// Starting git processes. From a large process (the reconciler: hundreds of MB, thousands of
// sockets) each start is slow and holds its event loop: libuv forks it, copying the page
// tables, and waits for the exec. A GitLauncher is a small long-lived Node process that starts
// them instead; the large one only sends it a message.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The last line a git command printed that is not blank (its error, usually). */
export function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.at(-1) ?? 'no output';
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one git command from this process; never throws on exit codes, nor when git cannot
 * even start (EMFILE, ENOENT: code 127 and the reason in stderr).
 */
export function runGit(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: string[],
  input?: string | Buffer,
): Promise<GitResult> {
  return new Promise((resolve) => {
    const failed = (e: Error) =>
      resolve({ code: 127, stdout: '', stderr: `cannot run git: ${e.message}` });
    let child: ChildProcess;
    try {
      child = spawn('git', args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      failed(e as Error);
      return;
    }
    // First, before touching any stream: when the spawn fails (EMFILE with every descriptor
    // taken, ENOENT) node emits 'error' on the next tick and the child has no stdio at all;
    // an 'error' without a listener would end the whole process.
    child.on('error', failed);
    const { stdin, stdout, stderr } = child;
    if (!stdin || !stdout || !stderr) return; // 'error' follows
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (c: Buffer) => out.push(c));
    stderr.on('data', (c: Buffer) => err.push(c));
    child.on('close', (code) => {
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    // git exiting early closes its stdin; the exit code reports that, not an EPIPE crash.
    stdin.on('error', () => {});
    stdin.end(input ?? '');
  });
}

/** A command for the launcher, and its answer. */
export interface LaunchJob {
  id: number;
  cwd: string;
  env: NodeJS.ProcessEnv;
  args: string[];
  input?: string | Buffer;
}
export type LaunchResult = GitResult & { id: number };

// The entry point beside this file: .ts in the sources, .js once built.
const ENTRY = new URL(`./launcher${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/**
 * Runs git commands through the launcher process (git/launcher.ts), as runGit does: same
 * results, code 127 when git (or the launcher) cannot start. The launcher starts on the first
 * command, again after it died, ends with close(), and keeps nothing running while idle.
 */
export class GitLauncher {
  private child: ChildProcess | undefined;
  private next = 0;
  private readonly pending = new Map<number, (r: GitResult) => void>();

  run(cwd: string, env: NodeJS.ProcessEnv, args: string[], input?: string | Buffer) {
    return new Promise<GitResult>((resolve) => {
      let child: ChildProcess;
      try {
        child = this.child ?? this.start();
      } catch (e) {
        // fork can throw at once (EMFILE): a command that could not start, as with runGit.
        resolve({ code: 127, stdout: '', stderr: `cannot run git: ${(e as Error).message}` });
        return;
      }
      const id = this.next++;
      this.pending.set(id, resolve);
      if (this.pending.size === 1) setRef(child, true);
      const job: LaunchJob = { id, cwd, env, args, ...(input === undefined ? {} : { input }) };
      // A launcher that is gone answers every pending command in its 'exit'.
      if (child.connected) child.send(job, (e) => e && this.end(child, e));
    });
  }

  /** Ends the launcher (commands in flight fail); a later command starts another. */
  close(): void {
    if (this.child) this.end(this.child, new Error('the git launcher was closed'));
  }

  private start(): ChildProcess {
    const child = fork(ENTRY, [], {
      execArgv: [],
      serialization: 'advanced', // Buffers as they are
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    child.on('error', (e) => this.end(child, e));
    child.on('exit', (code, signal) =>
      this.end(child, new Error(`the git launcher ended (${signal ?? `exit code ${code}`})`)),
    );
    child.on('message', (m: LaunchResult) => {
      const resolve = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) setRef(child, false);
      resolve?.({ code: m.code, stdout: m.stdout, stderr: m.stderr });
    });
    setRef(child, false);
    return child;
  }

  private end(child: ChildProcess, e: Error): void {
    if (this.child !== child) return;
    this.child = undefined;
    if (child.connected) child.disconnect();
    for (const resolve of this.pending.values()) {
      resolve({ code: 127, stdout: '', stderr: `cannot run git: ${e.message}` });
    }
    this.pending.clear();
  }
}

/** Whether the launcher keeps Node running: only while answers are awaited. */
function setRef(child: ChildProcess, ref: boolean): void {
  if (ref) {
    child.ref();
    child.channel?.ref();
  } else {
    child.unref();
    child.channel?.unref();
  }
}
