// The one door to git. Every git command fleetwave runs goes through here: arguments are
// arrays (never a shell), user-controlled revisions are verified before use and paths follow
// `--`, and credentials travel in per-command environment, never in .git/config.

import { spawn } from 'node:child_process';
import { simpleGit, type SimpleGit } from 'simple-git';
import { FleetwaveError } from '../core/errors.ts';

export interface TreeEntry {
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  oid: string;
  /** Size in bytes for blobs; -1 otherwise. */
  size: number;
  path: string;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export class GitRepository {
  readonly dir: string;
  readonly git: SimpleGit;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string, env: NodeJS.ProcessEnv) {
    this.dir = dir;
    this.env = env;
    this.git = simpleGit({ baseDir: dir, trimmed: false }).env(env);
  }

  /** Opens an existing repository (a work tree or a bare mirror). */
  static async open(dir: string, env: NodeJS.ProcessEnv = {}): Promise<GitRepository> {
    const fullEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...env };
    const repo = new GitRepository(dir, fullEnv);
    try {
      await repo.git.raw(['rev-parse', '--git-dir']);
    } catch (e) {
      throw new FleetwaveError('GIT_FAILED', `${dir} is not a git repository`, { cause: e });
    }
    return repo;
  }

  /** The full commit id of `rev`, or a GIT_REVISION_NOT_FOUND error. */
  async resolveCommit(rev: string): Promise<string> {
    if (rev.startsWith('-') || rev.includes('\0')) {
      throw new FleetwaveError('GIT_REVISION_NOT_FOUND', `"${rev}" is not a revision`);
    }
    try {
      const out = await this.git.raw([
        'rev-parse',
        '--verify',
        '--quiet',
        '--end-of-options',
        `${rev}^{commit}`,
      ]);
      const sha = out.trim();
      if (!SHA.test(sha)) throw new Error(`unexpected rev-parse output ${JSON.stringify(out)}`);
      return sha;
    } catch (e) {
      throw new FleetwaveError(
        'GIT_REVISION_NOT_FOUND',
        `revision "${rev}" does not exist in ${this.dir}`,
        {
          cause: e,
        },
      );
    }
  }

  /** Every entry below `path` at `commit`, recursively, with blob sizes. */
  async listTree(commit: string, path: string): Promise<TreeEntry[]> {
    if (!SHA.test(commit))
      throw new FleetwaveError('GIT_FAILED', `listTree needs a full commit id, got ${commit}`);
    const out = await this.git.raw([
      'ls-tree',
      '-r',
      '-z',
      '--long',
      '--full-tree',
      commit,
      '--',
      path,
    ]);
    const entries: TreeEntry[] = [];
    for (const record of out.split('\0')) {
      if (record === '') continue;
      const tab = record.indexOf('\t');
      const [mode, type, oid, size] = record.slice(0, tab).split(/\s+/);
      entries.push({
        mode: mode!,
        type: type as TreeEntry['type'],
        oid: oid!,
        size: size === '-' ? -1 : Number(size),
        path: record.slice(tab + 1),
      });
    }
    return entries;
  }

  /** Reads many blobs in one `git cat-file --batch` process, as raw bytes. */
  async readBlobs(oids: string[]): Promise<Map<string, Buffer>> {
    const result = new Map<string, Buffer>();
    if (oids.length === 0) return result;
    for (const oid of oids) {
      if (!SHA.test(oid)) throw new FleetwaveError('GIT_FAILED', `not an object id: ${oid}`);
    }
    const chunks: Buffer[] = [];
    const child = spawn('git', ['cat-file', '--batch'], {
      cwd: this.dir,
      env: this.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const done = new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code ?? 1));
    });
    child.stdin.end(oids.join('\n') + '\n');
    const code = await done;
    if (code !== 0) throw new FleetwaveError('GIT_FAILED', `git cat-file failed: ${stderr.trim()}`);
    const all = Buffer.concat(chunks);
    let at = 0;
    while (at < all.length) {
      const nl = all.indexOf(0x0a, at);
      const header = all.subarray(at, nl).toString();
      const [oid, type, size] = header.split(' ');
      if (type === 'missing' || size === undefined) {
        throw new FleetwaveError('GIT_FAILED', `git object ${oid} is missing`);
      }
      const start = nl + 1;
      const end = start + Number(size);
      result.set(oid!, all.subarray(start, end));
      at = end + 1;
    }
    return result;
  }
}
