// Object reads go through one long-lived `git cat-file --batch-command` per repository
// (git/cat-file.ts). Against real repositories: trees read from tree objects list what
// `git ls-tree` lists; objects and refs a fetch brings after the reader started are found
// (loose, in a new pack, after a repack); the reader is one process, started again when it
// dies, and it does not keep Node running.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { GitRepository } from '../git/repository.ts';
import { REPO_ROOT } from './helpers/cli.ts';
import { commitAll, exampleFleetRepo, git } from './helpers/git.ts';
import { until } from './helpers/until.ts';

/** The pids of this process's `git cat-file --batch-command` children. */
function catFiles(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      if (ppid === process.pid && cmdline.startsWith('git cat-file --batch-command')) {
        pids.push(Number(name));
      }
    } catch {
      // it ended while we looked
    }
  }
  return pids;
}

/** `git ls-tree -r -z --long --full-tree`'s entries, as listTree returns them. */
function lsTree(dir: string, commit: string, path: string) {
  return git(dir, 'ls-tree', '-r', '-z', '--long', '--full-tree', commit, '--', path)
    .split('\0')
    .filter((r) => r !== '')
    .map((record) => {
      const tab = record.indexOf('\t');
      const [mode, type, oid, size] = record.slice(0, tab).split(/\s+/);
      return {
        mode,
        type,
        oid,
        size: size === '-' ? -1 : Number(size),
        path: record.slice(tab + 1),
      };
    });
}

describe('object reads through one git cat-file', () => {
  let work: string;
  let root: string;

  before(async () => {
    work = await exampleFleetRepo();
    root = await mkdtemp(join(tmpdir(), 'fw-objects-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  });

  it('lists a tree as git ls-tree does: modes, types, sizes, order, paths', async () => {
    // Executables, symlinks, a submodule (gitlink), nested and look-alike names.
    await mkdir(join(work, 'fleet/deep/er/est'), { recursive: true });
    await writeFile(join(work, 'fleet/deep/er/est/x.yaml'), 'x: 1\n');
    await writeFile(join(work, 'fleet/deep/run.sh'), '#!/bin/sh\n');
    await chmod(join(work, 'fleet/deep/run.sh'), 0o755);
    await writeFile(join(work, 'fleet/deep.yaml'), 'sorted: after the directory in git order\n');
    await writeFile(join(work, 'fleet/deep-er'), '');
    await symlink('../fleet.yaml', join(work, 'fleet/deep/link.yaml'));
    await writeFile(join(work, 'fleetish'), 'not under fleet\n');
    git(work, 'add', '-A');
    const sub = git(work, 'rev-parse', 'HEAD');
    git(work, 'update-index', '--add', '--cacheinfo', `160000,${sub},fleet/deep/module`);
    const commit = commitAll(work, 'every kind of entry');
    const repo = await GitRepository.open(work);
    for (const path of [
      '.',
      'fleet',
      'fleet/',
      'fleet/deep',
      'fleet/deep/er/est',
      'fleet/fleet.yaml',
      'fleet/deep/link.yaml',
      'fleet/deep/module',
      'fleet/deep/run.sh',
      'fle',
      'nothing',
      'fleet/nothing/below',
      'fleet/fleet.yaml/below',
    ]) {
      assert.deepEqual(await repo.listTree(commit, path), lsTree(work, commit, path), path);
    }
    repo.close();
  });

  it('reads objects and refs that a fetch brought after the reader started', async () => {
    const mirror = await GitRepository.initBare(join(root, 'mirror.git'));
    const fetch = () => mirror.fetchRefspecs(work, ['+refs/heads/main:refs/heads/main']);
    await fetch();
    const first = git(work, 'rev-parse', 'HEAD');
    assert.equal(await mirror.readRef('refs/heads/main'), first);
    assert.equal(await mirror.resolveCommit('main'), first);
    assert.equal(await mirror.readRef('refs/heads/other'), undefined);
    const [reader] = catFiles();
    assert.ok(reader !== undefined, 'the reader runs');

    // A small fetch: loose objects.
    await writeFile(join(work, 'fleet/new.yaml'), 'new: 1\n');
    const small = commitAll(work, 'a small change');
    await fetch();
    assert.equal(await mirror.readRef('refs/heads/main'), small);
    const [entry] = await mirror.listTree(small, 'fleet/new.yaml');
    assert.equal((await mirror.readBlobs([entry!.oid])).get(entry!.oid)?.toString(), 'new: 1\n');

    // A large one: past transfer.unpackLimit, git keeps the pack it received.
    for (let i = 0; i < 150; i++) await writeFile(join(work, `fleet/many-${i}.yaml`), `i: ${i}\n`);
    const large = commitAll(work, 'a large change');
    const packs = () => readdirSync(join(root, 'mirror.git/objects/pack')).length;
    const packsBefore = packs();
    await fetch();
    assert.ok(packs() > packsBefore, 'the fetch kept a pack');
    assert.equal(await mirror.resolveCommit('refs/heads/main'), large);
    const many = await mirror.listTree(large, 'fleet');
    const last = many.find((e) => e.path === 'fleet/many-149.yaml')!;
    assert.equal((await mirror.readBlobs([last.oid])).get(last.oid)?.toString(), 'i: 149\n');

    // Everything repacked into one pack and the old ones deleted; then another commit.
    git(join(root, 'mirror.git'), 'repack', '-a', '-d', '-q');
    git(join(root, 'mirror.git'), 'pack-refs', '--all');
    await writeFile(join(work, 'fleet/after-gc.yaml'), 'after: gc\n');
    const afterGc = commitAll(work, 'after a repack');
    await fetch();
    assert.equal(await mirror.readRef('refs/heads/main'), afterGc);
    assert.equal(await mirror.resolveCommit(`${afterGc}~2`), small);
    assert.deepEqual(
      (await mirror.listTree(afterGc, 'fleet')).map((e) => e.path),
      lsTree(work, afterGc, 'fleet').map((e) => e.path),
    );
    assert.deepEqual(catFiles(), [reader], 'one reader answered all of it');
    mirror.close();
    await until(() => catFiles().length === 0, 'the reader ends once closed', {
      timeoutMs: 5000,
      intervalMs: 20,
    });
  });

  it('reads large objects and many at once, and a missing one fails alone', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'y');
    big.write('first', 0);
    big.write('last', big.length - 4);
    await writeFile(join(work, 'fleet/big.bin'), big);
    const commit = commitAll(work, 'a large blob');
    const repo = await GitRepository.open(work);
    const entries = await repo.listTree(commit, 'fleet');
    const blobs = await repo.readBlobs(entries.map((e) => e.oid));
    for (const e of entries) {
      assert.equal(blobs.get(e.oid)?.length, e.size, e.path);
      if (e.mode !== '120000') assert.deepEqual(blobs.get(e.oid), readFileSync(join(work, e.path)));
    }
    const missing = '0123456789012345678901234567890123456789';
    await assert.rejects(repo.readBlobs([entries[0]!.oid, missing]), {
      code: 'GIT_FAILED',
      message: `git object ${missing} is missing`,
    });
    // A tree is not a commit; a name cannot smuggle in a second command.
    const tree = git(work, 'rev-parse', 'HEAD^{tree}');
    await assert.rejects(repo.resolveCommit(tree), { code: 'GIT_REVISION_NOT_FOUND' });
    await assert.rejects(repo.resolveCommit(`HEAD\ncontents ${tree}`), {
      code: 'GIT_REVISION_NOT_FOUND',
    });
    assert.equal(await repo.resolveCommit('HEAD'), commit, 'the reader is still in step');
    repo.close();
  });

  it('starts the reader again after it died', async () => {
    const repo = await GitRepository.open(work);
    const head = git(work, 'rev-parse', 'HEAD');
    assert.equal(await repo.resolveCommit('HEAD'), head);
    const [first] = catFiles();
    process.kill(first!, 'SIGKILL');
    await until(() => !catFiles().includes(first!), 'the reader is gone', {
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(await repo.resolveCommit('HEAD'), head);
    const [second] = catFiles();
    assert.ok(second !== undefined && second !== first, 'a new reader');
    repo.close();
  });

  it('does not keep a process running once nothing is asked', () => {
    const script = `
      import { GitRepository } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'git/repository.ts')).href)};
      const repo = await GitRepository.open(${JSON.stringify(work)});
      process.stdout.write(await repo.resolveCommit('HEAD'));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.error, undefined, 'it ended by itself');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, git(work, 'rev-parse', 'HEAD'));
  });
});
