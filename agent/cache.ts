// The agent's memory on disk: the last target it verified and applied, so that it keeps running
// it (and says so) when the reconciler is unreachable or the agent restarts. Every write is
// atomic (a temp file in the same directory, fsync, rename, fsync of the directory), and a read
// checks a checksum and the Target shape, so a torn or edited file is ignored, never trusted.

import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Target } from '../core/target/model.ts';
import { AgentError, describe } from './errors.ts';
import { checkTarget } from './target.ts';

export const CACHE_FORMAT = 'fleetwave-agent-cache/v1';
export const TARGET_FILE = 'target.json';

/** What the agent remembers: the target it runs, where its artifact is, and since when. */
export interface CachedState {
  target: Target;
  /** The verified artifact on disk (inside the cache directory's artifacts/). */
  artifactPath: string;
  /** ms since the epoch. */
  appliedAt: number;
  /** The target that ran before, kept so the installer can switch back to it after a crash. */
  previous?: { target: Target; artifactPath: string } | undefined;
}

/** Writes `data` to `path` so that a reader, even after a crash, sees the old or the new file. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const dir = join(path, '..');
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  let handle;
  try {
    handle = await open(temp, 'wx', 0o600);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (e) {
    await handle?.close().catch(() => {});
    await rm(temp, { force: true }).catch(() => {});
    throw e;
  }
  await syncDirectory(dir);
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The file's text: a header line with the format and checksum, then the state as JSON. */
export function encodeState(state: CachedState): string {
  const body = JSON.stringify(state);
  return `${CACHE_FORMAT} sha256=${checksum(body)}\n${body}\n`;
}

/** The state in a cache file's text, or why it is not trusted. */
export function decodeState(
  text: string,
): { ok: true; state: CachedState } | { ok: false; problem: string } {
  const newline = text.indexOf('\n');
  const header = newline < 0 ? text : text.slice(0, newline);
  const m = /^(\S+) sha256=([0-9a-f]{64})$/.exec(header);
  if (!m || m[1] !== CACHE_FORMAT) return { ok: false, problem: 'no cache header' };
  const body = text.slice(newline + 1).replace(/\n$/, '');
  if (checksum(body) !== m[2]) return { ok: false, problem: 'checksum mismatch (a torn file?)' };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
  const v = value as Partial<CachedState>;
  const checked = checkTarget(v?.target);
  if (!checked.ok) return { ok: false, problem: checked.problem };
  if (typeof v.artifactPath !== 'string' || typeof v.appliedAt !== 'number')
    return { ok: false, problem: 'artifactPath or appliedAt missing' };
  const state: CachedState = {
    target: checked.target,
    artifactPath: v.artifactPath,
    appliedAt: v.appliedAt,
  };
  // An unreadable previous entry only costs the rollback after a restart: the state stands.
  const previous = v.previous;
  if (previous !== undefined && typeof previous?.artifactPath === 'string') {
    const prior = checkTarget(previous.target);
    if (prior.ok) state.previous = { target: prior.target, artifactPath: previous.artifactPath };
  }
  return { ok: true, state };
}

export class TargetCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  get artifactsDir(): string {
    return join(this.dir, 'artifacts');
  }

  /** Creates the directories and proves they are writable, or throws CACHE_UNWRITABLE. */
  async prepare(): Promise<void> {
    try {
      await mkdir(this.artifactsDir, { recursive: true, mode: 0o700 });
      await access(this.dir, constants.W_OK);
      await access(this.artifactsDir, constants.W_OK);
      await writeFileAtomic(join(this.dir, '.probe'), 'ok\n');
      await rm(join(this.dir, '.probe'), { force: true });
    } catch (e) {
      throw new AgentError(
        'CACHE_UNWRITABLE',
        `the cache directory ${this.dir} is not writable: ${describe(e)}; give the agent a directory it owns (--cache-dir)`,
        { cause: e },
      );
    }
  }

  /** The last applied state, or undefined when there is none or the file is not trusted. */
  async read(): Promise<
    { state: CachedState | undefined; problem?: undefined } | { state: undefined; problem: string }
  > {
    let text: string;
    try {
      text = await readFile(join(this.dir, TARGET_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: undefined };
      return { state: undefined, problem: describe(e) };
    }
    const decoded = decodeState(text);
    return decoded.ok ? { state: decoded.state } : { state: undefined, problem: decoded.problem };
  }

  async write(state: CachedState): Promise<void> {
    try {
      await writeFileAtomic(join(this.dir, TARGET_FILE), encodeState(state));
    } catch (e) {
      throw new AgentError(
        'CACHE_UNWRITABLE',
        `cannot write ${join(this.dir, TARGET_FILE)}: ${describe(e)}`,
        { cause: e },
      );
    }
  }
}
