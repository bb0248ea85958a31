// One long-lived `git cat-file --batch-command` per repository: every object read (revisions,
// refs, trees, blobs) is a line written to it and an answer read back, instead of a git
// process each. A process costs tens of ms to start from a large server (libuv forks it),
// and reads sit on the way from a push to the agents' new targets.
//
// Objects that arrive after it started (a fetch) are found: on a miss git rescans the packs,
// loose objects and refs are looked up on disk each time. The process is started on the
// first read, started again on the next read after it died, and ended by close(). While it
// has nothing to answer it does not keep the Node process alive.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { FleetwaveError } from '../core/errors.ts';
import { lastLine } from './run.ts';

export type ObjectType = 'blob' | 'tree' | 'commit' | 'tag';

export interface GitObject {
  oid: string;
  type: ObjectType;
  size: number;
}

/** `contents` answers carry the object's bytes. */
export type GitObjectBytes = GitObject & { bytes: Buffer };

/** `info`: type and size. `contents`: the bytes too. */
type Command = 'info' | 'contents';

interface Request {
  command: Command;
  count: number;
  /** One per name, in order: undefined when git has no such object. */
  answers: Array<GitObjectBytes | GitObject | undefined>;
  resolve: (answers: Array<GitObjectBytes | GitObject | undefined>) => void;
  reject: (e: Error) => void;
}

const FOUND = /^([0-9a-f]{40}|[0-9a-f]{64}) (blob|tree|commit|tag) (\d+)$/;
const NOT_FOUND = / (missing|ambiguous)$/;

/** The git process and what it is answering; a new one after each death. */
interface Running {
  child: ChildProcess;
  queue: Request[];
  /** A header line being read (it may span chunks). */
  line: Buffer[];
  /** An object's bytes being read: where they go, how many are in, and its header. */
  body: { object: GitObject; bytes: Buffer; filled: number } | undefined;
  stderr: Buffer[];
}

export class CatFile {
  private readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;
  private running: Running | undefined;

  constructor(dir: string, env: NodeJS.ProcessEnv) {
    this.dir = dir;
    this.env = env;
  }

  /** Type and size of each named object (anything git resolves: `rev^{commit}`, a ref, an id). */
  info(names: string[]): Promise<Array<GitObject | undefined>> {
    return this.ask('info', names);
  }

  /** Type, size and bytes of each named object. */
  contents(names: string[]): Promise<Array<GitObjectBytes | undefined>> {
    return this.ask('contents', names) as Promise<Array<GitObjectBytes | undefined>>;
  }

  /** Ends the process (reads in flight fail); a later read starts another. */
  close(): void {
    const running = this.running;
    if (!running) return;
    this.fail(running, new FleetwaveError('GIT_FAILED', 'git cat-file was closed'));
    running.child.stdin?.end();
  }

  /**
   * Asks the running process, or a new one. Once more when the process ended before it
   * answered: it may have died before anyone noticed, and the next one answers.
   */
  private async ask(command: Command, names: string[]): Promise<Array<GitObject | undefined>> {
    try {
      return await this.send(command, names);
    } catch (e) {
      if (!(e instanceof Ended)) throw e;
      return this.send(command, names);
    }
  }

  private send(command: Command, names: string[]): Promise<Array<GitObject | undefined>> {
    if (names.length === 0) return Promise.resolve([]);
    for (const name of names) {
      // A line is a command: a name cannot carry another one.
      if (/[\n\r\0]/.test(name)) {
        return Promise.reject(
          new FleetwaveError('GIT_FAILED', `not an object name: ${JSON.stringify(name)}`),
        );
      }
    }
    const running = this.running ?? this.start();
    return new Promise((resolve, reject) => {
      running.queue.push({ command, count: names.length, answers: [], resolve, reject });
      if (running.queue.length === 1) setRef(running.child, true);
      const text = names.map((n) => `${command} ${n}\n`).join('') + 'flush\n';
      // With no stdin the spawn failed: its 'error' fails the request.
      running.child.stdin?.write(text);
    });
  }

  private start(): Running {
    const child = spawn('git', ['cat-file', '--batch-command', '--buffer'], {
      cwd: this.dir,
      env: this.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const running: Running = { child, queue: [], line: [], body: undefined, stderr: [] };
    this.running = running;
    // First, before touching any stream: a spawn that fails (EMFILE, ENOENT) emits 'error'
    // and may have no stdio; without a listener that would end the whole process.
    child.on('error', (e) => this.fail(running, new Ended(`cannot run git: ${e.message}`)));
    child.on('close', (code, signal) => {
      const why = lastLine(Buffer.concat(running.stderr).toString('utf8'));
      this.fail(
        running,
        new Ended(`git cat-file ended (${signal ?? `exit code ${code}`}): ${why}`),
      );
    });
    child.stdin?.on('error', () => {}); // a dead git closes its stdin: 'close' reports it
    child.stdout?.on('data', (chunk: Buffer) => {
      try {
        this.read(running, chunk);
      } catch (e) {
        this.fail(running, e as Error);
        child.kill();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (running.stderr.length < 64) running.stderr.push(chunk);
    });
    setRef(child, false);
    return running;
  }

  /** Fails what `running` was asked and forgets it: the next read starts a new process. */
  private fail(running: Running, e: Error): void {
    if (this.running === running) this.running = undefined;
    for (const request of running.queue.splice(0)) request.reject(e);
    setRef(running.child, false);
  }

  /** Takes git's answers from `chunk`: headers, and each object's bytes after its header. */
  private read(running: Running, chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const body = running.body;
      if (body) {
        // The object's bytes, then the LF git puts after them.
        const want = body.bytes.length + 1 - body.filled;
        const take = Math.min(want, chunk.length - at);
        chunk.copy(body.bytes, body.filled, at, at + Math.min(take, want - 1));
        body.filled += take;
        at += take;
        if (body.filled === body.bytes.length + 1) {
          running.body = undefined;
          this.answer(running, { ...body.object, bytes: body.bytes });
        }
        continue;
      }
      const nl = chunk.indexOf(0x0a, at);
      if (nl === -1) {
        running.line.push(chunk.subarray(at));
        return;
      }
      running.line.push(chunk.subarray(at, nl));
      at = nl + 1;
      const header = Buffer.concat(running.line).toString('utf8');
      running.line = [];
      const request = running.queue[0];
      if (!request) throw new FleetwaveError('GIT_FAILED', `git cat-file said: ${header}`);
      const found = FOUND.exec(header);
      if (found) {
        const object = { oid: found[1]!, type: found[2] as ObjectType, size: Number(found[3]) };
        if (request.command === 'contents') {
          running.body = { object, bytes: Buffer.allocUnsafe(object.size), filled: 0 };
        } else this.answer(running, object);
      } else if (NOT_FOUND.test(header)) this.answer(running, undefined);
      else throw new FleetwaveError('GIT_FAILED', `git cat-file said: ${header}`);
    }
  }

  private answer(running: Running, answer: GitObjectBytes | GitObject | undefined): void {
    const request = running.queue[0]!;
    request.answers.push(answer);
    if (request.answers.length < request.count) return;
    running.queue.shift();
    if (running.queue.length === 0) setRef(running.child, false);
    request.resolve(request.answers);
  }
}

/** The process ended (or never started) before it answered. */
class Ended extends FleetwaveError {
  constructor(message: string) {
    super('GIT_FAILED', message);
  }
}

/** Whether the process and its pipes keep Node running: only while answers are awaited. */
function setRef(child: ChildProcess, ref: boolean): void {
  for (const handle of [child, child.stdin, child.stdout, child.stderr] as Array<
    ChildProcess | Socket | null
  >) {
    if (ref) handle?.ref();
    else handle?.unref();
  }
}
