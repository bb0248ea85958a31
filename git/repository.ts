// The one door to git. Every git command fleetwave runs goes through here: arguments are
// arrays (never a shell), user-controlled revisions are verified before use and paths follow
// `--`, and credentials travel in per-command environment, never in .git/config.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
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

// git runs with an allowlisted environment, never the whole of ours: variables such as
// GIT_DIR (set by hooks) would point it at another repository, and EDITOR, GIT_ASKPASS or
// GIT_SSH_COMMAND (npm run sets EDITOR, for one) would make it run programs; simple-git
// refuses most of those anyway. What git legitimately needs from the operator passes.
const PASSED_VARIABLES = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'TMPDIR',
  'LANG',
  'XDG_CONFIG_HOME',
  'SSH_AUTH_SOCK',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'GIT_SSL_CAINFO',
  'GIT_SSL_CAPATH',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_CONFIG_COUNT',
  'GIT_AUTHOR_NAME',
  'GIT_AUTHOR_EMAIL',
  'GIT_COMMITTER_NAME',
  'GIT_COMMITTER_EMAIL',
]);

function passed(name: string): boolean {
  return PASSED_VARIABLES.has(name) || /^GIT_CONFIG_(KEY|VALUE)_\d+$/.test(name);
}

/** The environment of every git command: allowlisted operator variables, then `extra`. */
export function gitEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && passed(name)) env[name] = value;
  }
  Object.assign(env, { GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }, extra);
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  return env;
}

function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return (
    message
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'unknown error'
  );
}

export class GitRepository {
  readonly dir: string;
  readonly git: SimpleGit;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string, git: SimpleGit, env: NodeJS.ProcessEnv) {
    this.dir = dir;
    this.env = env;
    this.git = git;
  }

  /** Opens an existing repository (a work tree or a bare mirror). */
  static async open(dir: string, env: NodeJS.ProcessEnv = {}): Promise<GitRepository> {
    const fullEnv = gitEnvironment(env);
    let git: SimpleGit;
    try {
      // simple-git refuses GIT_* variables it was not told about; these are ours, chosen here.
      // GIT_CONFIG_GLOBAL / GIT_CONFIG_COUNT come from the operator's own environment (e.g. a
      // private HOME or url.insteadOf for credentials), never from a fleet or a request.
      const configFromEnv = Object.keys(fullEnv).some((k) => k.startsWith('GIT_CONFIG'));
      git = simpleGit({
        baseDir: dir,
        trimmed: false,
        allowEnvironment: Object.keys(fullEnv),
        ...(configFromEnv
          ? { unsafe: { allowUnsafeConfigPaths: true, allowUnsafeConfigEnvCount: true } }
          : {}),
      }).env(fullEnv);
      const r = await runGit(dir, fullEnv, ['rev-parse', '--git-dir']);
      if (r.code !== 0) throw new Error(r.stderr);
    } catch (e) {
      const why = existsSync(dir) ? firstLine(e) : 'no such directory';
      throw new FleetwaveError('GIT_FAILED', `${dir} is not a git repository (${why})`, {
        cause: e,
      });
    }
    return new GitRepository(dir, git, fullEnv);
  }

  /** The full commit id of `rev`, or a GIT_REVISION_NOT_FOUND error. */
  async resolveCommit(rev: string): Promise<string> {
    if (rev.startsWith('-') || rev.includes('\0')) {
      throw new FleetwaveError(
        'GIT_REVISION_NOT_FOUND',
        `${JSON.stringify(rev)} is not a revision (a revision cannot start with "-")`,
      );
    }
    // Through exec, not simple-git: simple-git reads the child's stdout before it listens for
    // 'error', so a spawn that fails (EMFILE) would crash the process.
    const r = await this.exec([
      'rev-parse',
      '--verify',
      '--quiet',
      '--end-of-options',
      `${rev}^{commit}`,
    ]);
    const sha = r.stdout.trim();
    if (r.code === 127) {
      throw new FleetwaveError('GIT_FAILED', `cannot resolve "${rev}": ${lastLine(r.stderr)}`);
    }
    if (r.code !== 0 || !SHA.test(sha)) {
      throw new FleetwaveError(
        'GIT_REVISION_NOT_FOUND',
        `revision "${rev}" does not exist in ${this.dir}`,
      );
    }
    return sha;
  }

  /** Every entry below `path` at `commit`, recursively, with blob sizes. */
  async listTree(commit: string, path: string): Promise<TreeEntry[]> {
    if (!SHA.test(commit))
      throw new FleetwaveError('GIT_FAILED', `listTree needs a full commit id, got ${commit}`);
    const r = await this.exec(['ls-tree', '-r', '-z', '--long', '--full-tree', commit, '--', path]);
    if (r.code !== 0) {
      throw new FleetwaveError('GIT_FAILED', `git ls-tree failed: ${lastLine(r.stderr)}`);
    }
    const out = r.stdout;
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
    const r = await this.exec(['cat-file', '--batch'], { input: oids.join('\n') + '\n' }, true);
    if (r.code !== 0) {
      throw new FleetwaveError('GIT_FAILED', `git cat-file failed: ${r.stderr.trim()}`);
    }
    const all = r.bytes;
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

  // --- Mirror and write support for the reconciler (fetch, ancestry, commits without a work
  // tree, non-forced pushes). Remote URLs are validated and follow --end-of-options.

  /** Creates (or reuses) a bare repository at `dir` and opens it. */
  static async initBare(dir: string, env: NodeJS.ProcessEnv = {}): Promise<GitRepository> {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    const fullEnv = gitEnvironment(env);
    const r = await runGit(dir, fullEnv, ['init', '--bare', '--quiet', '--end-of-options', '.']);
    if (r.code !== 0) throw new FleetwaveError('GIT_FAILED', `git init failed: ${r.stderr.trim()}`);
    return GitRepository.open(dir, env);
  }

  /**
   * Runs git with arguments as an array; `input` goes to stdin; never throws on exit codes,
   * nor when git cannot even start (EMFILE, ENOENT: code 127 and the reason in stderr).
   */
  exec(
    args: string[],
    options?: { input?: string | Buffer; env?: NodeJS.ProcessEnv },
  ): Promise<GitResult>;
  exec(
    args: string[],
    options: { input?: string | Buffer; env?: NodeJS.ProcessEnv },
    binary: true,
  ): Promise<GitResult & { bytes: Buffer }>;
  async exec(
    args: string[],
    options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
    binary = false,
  ): Promise<GitResult> {
    return runGit(this.dir, { ...this.env, ...options.env }, args, options.input, binary);
  }

  /** The commit ids of `refs` (full names like refs/heads/main) on `remote`; missing ones are absent. */
  async lsRemote(remote: string, refs: string[]): Promise<Map<string, string>> {
    checkRemote(remote);
    const r = await this.exec(['ls-remote', '--end-of-options', remote, ...refs]);
    if (r.code !== 0) {
      throw new FleetwaveError(
        'GIT_FETCH_FAILED',
        `git ls-remote failed: ${wholeMessage(r.stderr)}`,
      );
    }
    const found = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (sha && ref && SHA.test(sha) && refs.includes(ref)) found.set(ref, sha);
    }
    return found;
  }

  /** Fetches exactly `refspecs` (e.g. `+refs/heads/main:refs/heads/main`) from `remote`. */
  async fetchRefspecs(remote: string, refspecs: string[]): Promise<void> {
    checkRemote(remote);
    if (refspecs.length === 0) return;
    for (const spec of refspecs) {
      if (spec.startsWith('-') || spec.includes('\0')) {
        throw new FleetwaveError('GIT_FAILED', `not a refspec: ${spec}`);
      }
    }
    const r = await this.exec([
      'fetch',
      '--quiet',
      '--no-tags',
      '--no-write-fetch-head',
      '--end-of-options',
      remote,
      ...refspecs,
    ]);
    if (r.code !== 0) {
      throw new FleetwaveError('GIT_FETCH_FAILED', `git fetch failed: ${wholeMessage(r.stderr)}`);
    }
  }

  /** The commit a local ref points to, or undefined when it does not exist. */
  async readRef(ref: string): Promise<string | undefined> {
    if (!ref.startsWith('refs/')) throw new FleetwaveError('GIT_FAILED', `not a full ref: ${ref}`);
    const r = await this.exec(['rev-parse', '--verify', '--quiet', '--end-of-options', ref]);
    const sha = r.stdout.trim();
    return r.code === 0 && SHA.test(sha) ? sha : undefined;
  }

  /** Whether `ancestor` is `descendant` or one of its ancestors. */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    for (const c of [ancestor, descendant]) {
      if (!SHA.test(c)) throw new FleetwaveError('GIT_FAILED', `isAncestor needs commit ids: ${c}`);
    }
    const r = await this.exec(['merge-base', '--is-ancestor', ancestor, descendant]);
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new FleetwaveError('GIT_FAILED', `git merge-base failed: ${lastLine(r.stderr)}`);
  }

  /** The best common ancestor of two commits, or undefined when their histories never meet. */
  async mergeBase(a: string, b: string): Promise<string | undefined> {
    for (const c of [a, b]) {
      if (!SHA.test(c)) throw new FleetwaveError('GIT_FAILED', `mergeBase needs commit ids: ${c}`);
    }
    const r = await this.exec(['merge-base', a, b]);
    const sha = r.stdout.trim();
    if (r.code === 0 && SHA.test(sha)) return sha;
    if (r.code === 1 && r.stderr.trim() === '') return undefined;
    throw new FleetwaveError('GIT_FAILED', `git merge-base failed: ${lastLine(r.stderr)}`);
  }

  /** Up to `max` commits from `commit` following first parents, newest first. */
  async firstParents(commit: string, max: number): Promise<string[]> {
    if (!SHA.test(commit)) throw new FleetwaveError('GIT_FAILED', `not a commit id: ${commit}`);
    const r = await this.exec(['rev-list', '--first-parent', `--max-count=${max}`, commit]);
    if (r.code !== 0)
      throw new FleetwaveError('GIT_FAILED', `git rev-list failed: ${lastLine(r.stderr)}`);
    return r.stdout.split('\n').filter((l) => SHA.test(l));
  }

  /** One file's bytes at `commit`, or undefined when the path is not a file there. */
  async readFileAt(commit: string, path: string): Promise<Buffer | undefined> {
    const entry = (await this.listTree(commit, path)).find(
      (e) => e.path === path && e.type === 'blob',
    );
    if (!entry) return undefined;
    return (await this.readBlobs([entry.oid])).get(entry.oid);
  }

  /**
   * Writes a commit whose tree holds exactly `files` (top-level names only), without a work
   * tree or index: hash-object, mktree, commit-tree. Returns the new commit id; no ref moves.
   */
  async commitTree(options: {
    files: Record<string, string | Buffer>;
    message: string;
    parent?: string;
    author: { name: string; email: string };
    date: Date;
  }): Promise<string> {
    const entries: string[] = [];
    for (const [name, content] of Object.entries(options.files).sort(([a], [b]) =>
      a < b ? -1 : 1,
    )) {
      if (name === '' || name.includes('/') || name.includes('\0') || name.includes('\n')) {
        throw new FleetwaveError('GIT_FAILED', `not a top-level file name: ${name}`);
      }
      const blob = await this.exec(['hash-object', '-w', '--stdin'], { input: content });
      if (blob.code !== 0)
        throw new FleetwaveError('GIT_FAILED', `git hash-object failed: ${lastLine(blob.stderr)}`);
      entries.push(`100644 blob ${blob.stdout.trim()}\t${name}`);
    }
    const tree = await this.exec(['mktree'], { input: entries.join('\n') + '\n' });
    if (tree.code !== 0)
      throw new FleetwaveError('GIT_FAILED', `git mktree failed: ${lastLine(tree.stderr)}`);
    if (options.parent !== undefined && !SHA.test(options.parent)) {
      throw new FleetwaveError('GIT_FAILED', `not a commit id: ${options.parent}`);
    }
    const when = `${Math.floor(options.date.getTime() / 1000)} +0000`;
    const commit = await this.exec(
      [
        'commit-tree',
        ...(options.parent ? ['-p', options.parent] : []),
        '-F',
        '-',
        tree.stdout.trim(),
      ],
      {
        input: options.message,
        env: {
          GIT_AUTHOR_NAME: options.author.name,
          GIT_AUTHOR_EMAIL: options.author.email,
          GIT_AUTHOR_DATE: when,
          GIT_COMMITTER_NAME: options.author.name,
          GIT_COMMITTER_EMAIL: options.author.email,
          GIT_COMMITTER_DATE: when,
        },
      },
    );
    const sha = commit.stdout.trim();
    if (commit.code !== 0 || !SHA.test(sha)) {
      throw new FleetwaveError('GIT_FAILED', `git commit-tree failed: ${lastLine(commit.stderr)}`);
    }
    return sha;
  }

  /** Moves a local ref (no checks: the mirror's refs follow the remote). */
  async updateRef(ref: string, commit: string): Promise<void> {
    if (!ref.startsWith('refs/') || !SHA.test(commit)) {
      throw new FleetwaveError('GIT_FAILED', `updateRef needs a full ref and a commit id`);
    }
    const r = await this.exec(['update-ref', '--end-of-options', ref, commit]);
    if (r.code !== 0)
      throw new FleetwaveError('GIT_FAILED', `git update-ref failed: ${lastLine(r.stderr)}`);
  }

  /**
   * Pushes `commit` to branch `ref` of `remote` without forcing: git refuses anything that is
   * not a fast-forward (or a creation), which is how concurrent writers race safely.
   */
  async pushCommit(remote: string, commit: string, ref: string): Promise<void> {
    checkRemote(remote);
    if (!ref.startsWith('refs/heads/') || !SHA.test(commit)) {
      throw new FleetwaveError('GIT_FAILED', 'pushCommit needs a commit id and a refs/heads/ ref');
    }
    const r = await this.exec([
      'push',
      '--porcelain',
      '--quiet',
      '--end-of-options',
      remote,
      `${commit}:${ref}`,
    ]);
    if (r.code === 0) return;
    const out = `${r.stdout}\n${r.stderr}`;
    if (/\[rejected\]|non-fast-forward|fetch first|\[remote rejected\]/.test(out)) {
      throw new FleetwaveError('GIT_PUSH_REJECTED', `push to ${ref} was refused: ${lastLine(out)}`);
    }
    throw new FleetwaveError('GIT_FETCH_FAILED', `git push failed: ${lastLine(r.stderr)}`);
  }
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runGit(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: string[],
  input?: string | Buffer,
  binary = false,
): Promise<GitResult & { bytes: Buffer }> {
  return new Promise((resolve) => {
    const failed = (e: Error) =>
      resolve({ code: 127, stdout: '', stderr: `cannot run git: ${e.message}`, bytes: EMPTY });
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
      const bytes = Buffer.concat(out);
      resolve({
        code: code ?? 1,
        stdout: binary ? '' : bytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        bytes,
      });
    });
    // git exiting early closes its stdin; the exit code reports that, not an EPIPE crash.
    stdin.on('error', () => {});
    stdin.end(input ?? '');
  });
}

const EMPTY = Buffer.alloc(0);

function checkRemote(remote: string): void {
  if (remote === '' || remote.startsWith('-') || /[\0\n]/.test(remote)) {
    throw new FleetwaveError('GIT_FAILED', `not a git remote: ${JSON.stringify(remote)}`);
  }
}

/**
 * git's whole message on one line, for a remote that cannot be read: its last line alone says
 * "and the repository exists." Credentials in URLs are masked, since the message reaches
 * logs and /v1/status.
 */
function wholeMessage(text: string): string {
  const message = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ')
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s']*@/gi, '$1***@');
  if (message === '') return 'no output';
  return message.length > 1000 ? `${message.slice(0, 1000)}…` : message;
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.at(-1) ?? 'no output';
}
