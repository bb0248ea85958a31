// Reading a fleet at a git revision (source/revision.ts): readFleetAtRevision + validateFleet on a
// real repository with history and on its bare clone (revision-repo.ts), against what the
// directory reader reads from a checkout.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isFleetwaveError } from '../core/errors.ts';
import { DEFAULT_LIMITS } from '../core/fleet/source.ts';
import { validateFleet } from '../core/fleet/validate.ts';
import { GitRepository } from '../git/repository.ts';
import { readFleetDirectory } from '../source/directory.ts';
import { readFleetAtRevision } from '../source/revision.ts';
import { git } from './helpers/git.ts';
import { MARKER, revisionRepo, type RevisionRepo } from './revision-repo.ts';

async function rejects(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isFleetwaveError(e), `a FleetwaveError, not ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

let scratch: string;
let work: string;
let bare: string;
let commits: RevisionRepo['commits'];

before(async () => {
  ({ scratch, work, bare, commits } = await revisionRepo());
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('readFleetAtRevision', () => {
  it('reads the fleet of the commit, not the work tree', async () => {
    const repo = await GitRepository.open(work);
    for (const [rev, version] of [
      [commits.v250, '2.5.0'],
      [commits.v240, '2.4.0'],
      ['first', '2.4.0'],
      ['main~3', '2.4.0'],
    ] as const) {
      const source = await readFleetAtRevision(repo, rev);
      const result = validateFleet(source);
      assert.deepEqual(result.diagnostics, [], rev);
      assert.equal(result.model?.fleet.spec.version, version, rev);
      assert.equal(result.model?.layers.length, 7);
      assert.equal(source.root, 'fleet');
      assert.ok(source.files.every((f) => f.display === `fleet/${f.name}`));
    }
    const head = await readFleetAtRevision(repo, 'HEAD');
    assert.equal(head.commit, commits.hostile);
    assert.ok(!head.files.some((f) => f.name.includes('uncommitted')));
  });

  it('reads the same from a bare clone', async () => {
    const repo = await GitRepository.open(bare);
    const atV240 = validateFleet(await readFleetAtRevision(repo, commits.v240));
    assert.equal(atV240.model?.fleet.spec.version, '2.4.0');
    const atMain = await readFleetAtRevision(repo, 'main');
    assert.equal(atMain.commit, commits.hostile);
  });

  it('refuses a revision that does not exist, with a clear message', async () => {
    const repo = await GitRepository.open(work);
    await rejects(
      readFleetAtRevision(repo, 'no-such-branch'),
      'GIT_REVISION_NOT_FOUND',
      /^revision "no-such-branch" does not exist in /,
    );
    await rejects(
      readFleetAtRevision(repo, '0123456789abcdef0123456789abcdef01234567'),
      'GIT_REVISION_NOT_FOUND',
      /does not exist/,
    );
    await rejects(readFleetAtRevision(repo, ''), 'GIT_REVISION_NOT_FOUND', /does not exist/);
  });

  it('refuses a revision that looks like an option, before git sees it', async () => {
    const repo = await GitRepository.open(work);
    for (const rev of ['--output=x', '-n', '--all']) {
      await rejects(
        readFleetAtRevision(repo, rev),
        'GIT_REVISION_NOT_FOUND',
        /is not a revision \(a revision cannot start with "-"\)/,
      );
    }
    assert.equal(spawnSync('test', ['-e', join(work, 'x')]).status, 1, 'no file "x" was written');
  });

  it('says when the fleet directory does not exist at the revision', async () => {
    const repo = await GitRepository.open(work);
    await rejects(
      readFleetAtRevision(repo, commits.empty),
      'FLEET_NOT_FOUND',
      new RegExp(`^fleet does not exist at ${commits.empty} \\(${commits.empty.slice(0, 12)}\\)$`),
    );
    await rejects(
      readFleetAtRevision(repo, 'main', 'fleet/fleet.yaml'),
      'FLEET_NOT_FOUND',
      /fleet\/fleet\.yaml is not a directory at main/,
    );
    await rejects(
      readFleetAtRevision(repo, 'main', '../elsewhere'),
      'USAGE',
      /inside the repository/,
    );
  });

  it('follows symlinks that stay inside the fleet and refuses the others', async () => {
    const repo = await GitRepository.open(work);
    let read: string[] = [];
    const readBlobs = repo.readBlobs.bind(repo);
    repo.readBlobs = async (oids) => {
      const blobs = await readBlobs(oids);
      read = read.concat([...blobs.values()].map((b) => b.toString('utf8')));
      return blobs;
    };
    const source = await readFleetAtRevision(repo, commits.symlinks);
    const result = validateFleet(source);
    assert.deepEqual(
      result.diagnostics.map((d) => `${d.file}: ${d.message}`),
      [
        'fleet/config/80-passwd.yaml: symlink points outside the fleet directory (to ../../outside/passwd); fleet files must live inside it',
        'fleet/config/81-absolute.yaml: symlink points outside the fleet directory (to /etc/passwd); fleet files must live inside it',
        'fleet/config/82-out-and-back.yaml: symlink points outside the fleet directory (to ../links/../../outside/../fleet/windows.layer); fleet files must live inside it',
        `fleet/config/83-dangling.yaml: symlink points to nowhere.yaml, which does not exist at ${commits.symlinks} (${commits.symlinks.slice(0, 12)})`,
      ],
    );
    // The chain config/30-windows.yaml -> links/windows.link -> windows.layer is followed, once.
    const windows = source.files.filter((f) => f.name === 'config/30-windows.yaml');
    assert.equal(windows.length, 1);
    assert.match(Buffer.from(windows[0]!.bytes).toString('utf8'), /kind: ConfigLayer/);
    assert.equal(source.files.length, 11);
    assert.ok(
      !read.some((text) => text.includes(MARKER)),
      'the blob outside the fleet is never read',
    );
  });

  it('reads a commit the way the directory reader reads its checkout', async () => {
    const checkout = join(scratch, 'checkout');
    git(scratch, 'clone', '--quiet', '--no-checkout', work, checkout);
    git(checkout, 'checkout', '--quiet', commits.symlinks);
    const repo = await GitRepository.open(checkout);
    const fromGit = await readFleetAtRevision(repo, 'HEAD');
    const fromDisk = await readFleetDirectory('fleet', { cwd: checkout });
    // One difference, on purpose: from git, a symlink whose path leaves the fleet is refused
    // even when it comes back in, because what lies outside the fleet is never read.
    const outAndBack = 'fleet/config/82-out-and-back.yaml';
    const summary = (s: typeof fromGit | typeof fromDisk) => ({
      files: s.files
        .filter((f) => f.display !== outAndBack)
        .map((f) => [f.name, f.display, Buffer.from(f.bytes).toString('base64')]),
      problems: s.diagnostics.filter((d) => d.file !== outAndBack).map((d) => [d.file, d.code]),
    });
    assert.ok(fromDisk.files.some((f) => f.display === outAndBack));
    assert.ok(fromGit.diagnostics.some((d) => d.file === outAndBack && d.code === 'symlink'));
    assert.deepEqual(summary(fromGit), summary(fromDisk));
  });

  it('refuses a blob over the size limit by the size in the tree, without reading it', async () => {
    const repo = await GitRepository.open(work);
    const requested: string[] = [];
    const readBlobs = repo.readBlobs.bind(repo);
    repo.readBlobs = (oids) => {
      requested.push(...oids);
      return readBlobs(oids);
    };
    const bigOid = git(work, 'rev-parse', `${commits.hostile}:fleet/config/90-big.yaml`);
    const result = validateFleet(await readFleetAtRevision(repo, commits.hostile));
    const size = DEFAULT_LIMITS.maxFileBytes + 1;
    assert.ok(!requested.includes(bigOid), 'the big blob is not read');
    assert.deepEqual(
      result.diagnostics.filter((d) => d.file === 'fleet/config/90-big.yaml'),
      [
        {
          file: 'fleet/config/90-big.yaml',
          line: 0,
          col: 0,
          severity: 'error',
          code: 'too-large',
          message: `file is 1.00 MiB (${size} bytes); a fleet file may be at most 1 MiB`,
        },
      ],
    );
  });

  it('passes blobs on as bytes, so bytes that are not UTF-8 are reported where they are', async () => {
    const repo = await GitRepository.open(work);
    const result = validateFleet(await readFleetAtRevision(repo, commits.hostile));
    const latin1 = result.diagnostics.filter((d) => d.file === 'fleet/config/91-latin1.yaml');
    assert.deepEqual(
      latin1.map((d) => [d.line, d.col, d.code, d.message]),
      [[2, 7, 'not-utf8', 'file is not valid UTF-8 (byte 0xe9 at offset 11); save it as UTF-8']],
    );
  });

  it('applies the file-count and total-size limits', async () => {
    const repo = await GitRepository.open(work);
    const few = await readFleetAtRevision(repo, commits.v240, 'fleet', {
      ...DEFAULT_LIMITS,
      maxFiles: 4,
    });
    assert.equal(few.files.length, 4);
    assert.deepEqual(
      few.diagnostics.map((d) => [d.file, d.code]),
      [['fleet', 'too-many-files']],
    );
    const small = await readFleetAtRevision(repo, commits.v240, 'fleet', {
      ...DEFAULT_LIMITS,
      maxTotalBytes: 2000,
    });
    assert.deepEqual(
      small.diagnostics.map((d) => [d.file, d.message]),
      [['fleet', 'the fleet is larger than 1.95 KiB in total']],
    );
  });
});
