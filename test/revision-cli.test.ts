// `fleetwave validate --revision`: the CLI reading a fleet at a revision of a real repository
// with history (revision-repo.ts), its exit codes and messages.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, fleetwave } from './helpers/cli.ts';
import { revisionRepo, type RevisionRepo } from './revision-repo.ts';

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

describe('fleetwave validate --revision', () => {
  it('validates the fleet at a revision of another repository', () => {
    const r = fleetwave(['validate', 'fleet', '--revision', commits.v240, '--repo', work], {
      cwd: scratch,
    });
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /^fleet: valid \(1 Fleet, 3 Releases, 7 ConfigLayers; 4 waves, version 2\.4\.0\)/,
    );
    assert.equal(r.status, 0);
  });

  it('reports problems at a revision with paths from the repository root, and exits 1', () => {
    const r = fleetwave(['validate', '--revision', commits.hostile, '--repo', bare]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^fleet\/config\/90-big\.yaml: error: file is 1\.00 MiB/m);
    assert.match(r.stdout, /^fleet\/config\/91-latin1\.yaml:2:7: error: file is not valid UTF-8/m);
  });

  it('exits 2 on a revision or repository that does not exist, or an option for a revision', () => {
    const missing = fleetwave(['validate', '--revision', 'nope', '--repo', work]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^fleetwave validate: revision "nope" does not exist in /);
    const option = fleetwave(['validate', '--revision=--output=x', '--repo', work]);
    assert.equal(option.status, 2);
    assert.match(option.stderr, /"--output=x" is not a revision/);
    const notRepo = fleetwave(['validate', '--revision', 'HEAD', '--repo', scratch]);
    assert.equal(notRepo.status, 2);
    assert.match(notRepo.stderr, /is not a git repository/);
    const gone = fleetwave(['validate', '--revision', 'HEAD', '--repo', join(scratch, 'gone')]);
    assert.equal(gone.status, 2);
    assert.match(gone.stderr, /gone is not a git repository \(no such directory\)/);
    const noDir = fleetwave(['validate', 'fleet', '--revision', commits.empty, '--repo', work]);
    assert.equal(noDir.status, 2);
    assert.match(noDir.stderr, /fleet does not exist at /);
    for (const r of [missing, option, notRepo, gone, noDir])
      assert.doesNotMatch(r.stderr, /^\s+at /m);
  });

  it('reads the repository it was given even when git variables in the environment say otherwise', () => {
    // Git hooks export GIT_DIR; a CI runner may export GIT_SSL_CAINFO and friends.
    const r = spawnSync(
      process.execPath,
      [CLI, 'validate', '--revision', commits.v250, '--repo', work],
      {
        cwd: scratch,
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          ...process.env,
          GIT_DIR: join(scratch, 'not-a-repo'),
          GIT_WORK_TREE: scratch,
          GIT_SSL_CAINFO: '/nonexistent/ca.pem',
        },
      },
    );
    assert.match(r.stderr, /^fleet: valid .*version 2\.5\.0\)/);
    assert.equal(r.status, 0);
  });
});
