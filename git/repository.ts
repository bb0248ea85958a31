// The one door to git. Every git command fleetwave runs goes through here: arguments are
// arrays (never a shell), user-controlled revisions are verified before use and paths follow
// `--`, and credentials travel in per-command environment, never in .git/config.

import { existsSync } from 'node:fs';
import { simpleGit, type SimpleGit } from 'simple-git';
import { FleetwaveError } from '../core/errors.ts';
import { CatFile } from './cat-file.ts';
import { GitLauncher, lastLine, runGit, type GitResult } from './run.ts';

export type { GitResult } from './run.ts';

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
  /** Every object read (revisions, refs, trees, blobs) goes through this one process. */
  private readonly objects: CatFile;
  /** Where the other git commands start, when not from this process. */
  private readonly launcher: GitLauncher | undefined;

  private constructor(
    dir: string,
    git: SimpleGit,
    env: NodeJS.ProcessEnv,
    launcher: GitLauncher | undefined,
  ) {
    this.dir = dir;
    this.env = env;
    this.git = git;
    this.objects = new CatFile(dir, env);
    this.launcher = launcher;
  }

  /** Ends the repository's object reader and launcher (a later command starts them again). */
  close(): void {
    this.objects.close();
    this.launcher?.close();
  }

  /**
   * Opens an existing repository (a work tree or a bare mirror). `launcher`: its commands
   * start from a small helper process (GitLauncher), for a large long-lived process.
   */
  static async open(
    dir: string,
    env: NodeJS.ProcessEnv = {},
    options: { launcher?: boolean } = {},
  ): Promise<GitRepository> {
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
    return new GitRepository(dir, git, fullEnv, options.launcher ? new GitLauncher() : undefined);
  }

  /** The full commit id of `rev`, or a GIT_REVISION_NOT_FOUND error. */
  async resolveCommit(rev: string): Promise<string> {
    if (rev.startsWith('-') || rev.includes('\0')) {
      throw new FleetwaveError(
        'GIT_REVISION_NOT_FOUND',
        `${JSON.stringify(rev)} is not a revision (a revision cannot start with "-")`,
      );
    }
    // A line break cannot be in a revision: to the object reader it would end the line.
    const [object] = /[\n\r]/.test(rev) ? [] : await this.objects.info([`${rev}^{commit}`]);
    if (object?.type !== 'commit') {
      throw new FleetwaveError(
        'GIT_REVISION_NOT_FOUND',
        `revision "${rev}" does not exist in ${this.dir}`,
      );
    }
    return object.oid;
  }

  /** Every entry below `path` at `commit`, recursively, with blob sizes. */
  async listTree(commit: string, path: string): Promise<TreeEntry[]> {
    if (!SHA.test(commit))
      throw new FleetwaveError('GIT_FAILED', `listTree needs a full commit id, got ${commit}`);
    // What `git ls-tree -r --long --full-tree <commit> -- <path>` lists, read from the tree
    // objects: the entry at `path`, or every entry below it when it is a directory.
    const [head] = await this.objects.contents([commit]);
    if (head?.type !== 'commit') throw new FleetwaveError('GIT_FAILED', `not a commit: ${commit}`);
    const root = /^tree ([0-9a-f]+)\n/.exec(head.bytes.toString('latin1'))?.[1];
    if (root === undefined) throw new FleetwaveError('GIT_FAILED', `commit ${commit} has no tree`);
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    const dirOnly = path.endsWith('/') && parts.length > 0;
    let at: TreeEntry = { mode: '040000', type: 'tree', oid: root, size: -1, path: '' };
    for (const part of parts) {
      if (at.type !== 'tree') return [];
      const found = (await this.readTrees([at.oid])).get(at.oid)!.find((e) => e.path === part);
      if (found === undefined) return [];
      at = { ...found, path: at.path === '' ? part : `${at.path}/${part}` };
    }
    if (at.type !== 'tree') return dirOnly ? [] : this.withSizes([at]);
    // Below a directory: read a level of trees at a time, list in git's order (depth first).
    const trees = new Map<string, TreeEntry[]>();
    for (let level = [at.oid]; level.length > 0;) {
      const read = await this.readTrees(level.filter((oid) => !trees.has(oid)));
      for (const [oid, entries] of read) trees.set(oid, entries);
      level = [...read.values()].flat().flatMap((e) => (e.type === 'tree' ? [e.oid] : []));
    }
    const entries: TreeEntry[] = [];
    const list = (oid: string, prefix: string): void => {
      for (const e of trees.get(oid)!) {
        const full = prefix === '' ? e.path : `${prefix}/${e.path}`;
        if (e.type === 'tree') list(e.oid, full);
        else entries.push({ ...e, path: full });
      }
    };
    list(at.oid, at.path);
    return this.withSizes(entries);
  }

  /** The entries of each tree (paths are the entries' names), read in one batch. */
  private async readTrees(oids: string[]): Promise<Map<string, TreeEntry[]>> {
    const unique = [...new Set(oids)];
    const objects = await this.objects.contents(unique);
    const trees = new Map<string, TreeEntry[]>();
    unique.forEach((oid, i) => {
      const tree = objects[i];
      if (tree?.type !== 'tree')
        throw new FleetwaveError('GIT_FAILED', `git tree ${oid} is missing`);
      trees.set(oid, parseTree(tree.bytes, oid.length / 2));
    });
    return trees;
  }

  /** Blob entries get their sizes (one batch), as `ls-tree --long` prints them. */
  private async withSizes(entries: TreeEntry[]): Promise<TreeEntry[]> {
    const blobs = entries.filter((e) => e.type === 'blob');
    const oids = [...new Set(blobs.map((e) => e.oid))];
    const infos = await this.objects.info(oids);
    const sizes = new Map(oids.map((oid, i) => [oid, infos[i]?.size]));
    for (const e of blobs) {
      const size = sizes.get(e.oid);
      if (size === undefined)
        throw new FleetwaveError('GIT_FAILED', `git object ${e.oid} is missing`);
      e.size = size;
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
    const objects = await this.objects.contents(oids);
    oids.forEach((oid, i) => {
      const object = objects[i];
      if (object === undefined)
        throw new FleetwaveError('GIT_FAILED', `git object ${oid} is missing`);
      result.set(oid, object.bytes);
    });
    return result;
  }

  // --- Mirror and write support for the reconciler (fetch, ancestry, commits without a work
  // tree, non-forced pushes). Remote URLs are validated and follow --end-of-options.

  /** Creates (or reuses) a bare repository at `dir` and opens it. */
  static async initBare(
    dir: string,
    env: NodeJS.ProcessEnv = {},
    options: { launcher?: boolean } = {},
  ): Promise<GitRepository> {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    const fullEnv = gitEnvironment(env);
    const r = await runGit(dir, fullEnv, ['init', '--bare', '--quiet', '--end-of-options', '.']);
    if (r.code !== 0) throw new FleetwaveError('GIT_FAILED', `git init failed: ${r.stderr.trim()}`);
    return GitRepository.open(dir, env, options);
  }

  /**
   * Runs git with arguments as an array; `input` goes to stdin; never throws on exit codes,
   * nor when git cannot even start (EMFILE, ENOENT: code 127 and the reason in stderr).
   */
  exec(
    args: string[],
    options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
  ): Promise<GitResult> {
    const env = { ...this.env, ...options.env };
    if (this.launcher) return this.launcher.run(this.dir, env, args, options.input);
    return runGit(this.dir, env, args, options.input);
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
    const [object] = await this.objects.info([ref]);
    return object?.oid;
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

/**
 * A tree object's entries as `ls-tree` shows them: `<mode> <name>\0<id>` each, the mode
 * canonical (git's canon_mode: 100664 shows as 100644), with ids of `idBytes` bytes.
 */
function parseTree(bytes: Buffer, idBytes: number): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let at = 0;
  while (at < bytes.length) {
    const space = bytes.indexOf(0x20, at);
    const nul = bytes.indexOf(0, space);
    if (space === -1 || nul === -1 || nul + 1 + idBytes > bytes.length) {
      throw new FleetwaveError('GIT_FAILED', 'a git tree cannot be read');
    }
    const raw = parseInt(bytes.toString('latin1', at, space), 8);
    const path = bytes.toString('utf8', space + 1, nul);
    const oid = bytes.toString('hex', nul + 1, nul + 1 + idBytes);
    at = nul + 1 + idBytes;
    const kind = raw & 0o170000;
    const [mode, type]: [string, TreeEntry['type']] =
      kind === 0o040000
        ? ['040000', 'tree']
        : kind === 0o120000
          ? ['120000', 'blob']
          : kind === 0o100000
            ? [raw & 0o100 ? '100755' : '100644', 'blob']
            : ['160000', 'commit'];
    entries.push({ mode, type, oid, size: -1, path });
  }
  return entries;
}
