// The mirror's fetch after a push webhook (rollout/mirror.ts `fetch(true)`), against a real bare
// origin: it goes straight for both branches (no `git ls-remote` first), lands exactly where
// the usual fetch would (new commits, force pushes), falls back to the usual way while the
// state branch does not exist, and fails once, with the usual error, when the remote is down.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { isFleetwaveError } from '../../core/errors.ts';
import { Mirror } from '../../rollout/mirror.ts';
import { createState } from '../../rollout/state.ts';
import { commitAll, exampleFleetRepo, git } from '../helpers/git.ts';

const STATE = 'fleetwave/state';

describe('the mirror’s fetch after a push', () => {
  let root: string;
  let work: string;
  let origin: string;
  let mirror: Mirror;
  /** A second mirror that fetches the usual way: where the remote says the branches are. */
  let usual: Mirror;

  const open = (name: string, remote = origin): Promise<Mirror> =>
    Mirror.open({
      dataDir: join(root, name),
      remote,
      branch: 'main',
      stateBranch: STATE,
      fleetDir: 'fleet',
    });

  /** fetch(true), counting the `git ls-remote`s it asked. */
  async function pushedFetch(m = mirror) {
    const lsRemote = mock.method(m.repo, 'lsRemote');
    try {
      const tips = await m.fetch(true);
      return { tips, lsRemotes: lsRemote.mock.callCount() };
    } finally {
      lsRemote.mock.restore();
    }
  }

  before(async () => {
    work = await exampleFleetRepo();
    root = await mkdtemp(join(tmpdir(), 'fw-mirror-fetch-'));
    origin = join(root, 'origin.git');
    git(root, 'init', '-q', '--bare', origin);
    git(work, 'push', '-q', origin, 'HEAD:refs/heads/main');
    mirror = await open('pushed');
    usual = await open('usual');
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('before the first rollout (no state branch on the remote): the usual way answers', async () => {
    const { tips, lsRemotes } = await pushedFetch();
    assert.deepEqual(tips, { branch: git(origin, 'rev-parse', 'main') });
    assert.equal(lsRemotes, 1, 'fell back to asking the remote');
    assert.deepEqual(await usual.fetch(), tips);
  });

  it('with both branches on the remote: one fetch, no ls-remote, the same tips', async () => {
    assert.ok(await createState(usual, git(origin, 'rev-parse', 'main'), 'main', new Date()));
    git(work, 'commit', '-q', '--allow-empty', '-m', 'a change');
    git(work, 'push', '-q', origin, 'HEAD:refs/heads/main');
    const { tips, lsRemotes } = await pushedFetch();
    assert.equal(lsRemotes, 0);
    const expected = {
      branch: git(origin, 'rev-parse', 'main'),
      state: git(origin, 'rev-parse', STATE),
    };
    assert.deepEqual(tips, expected);
    assert.deepEqual(await usual.fetch(), expected);
    // The mirror's own refs moved: what is read next is the new revision.
    assert.equal(await mirror.repo.readRef('refs/heads/main'), expected.branch);
    assert.equal(await mirror.repo.readRef(`refs/heads/${STATE}`), expected.state);
    // Nothing moved: the same answer again.
    assert.deepEqual((await pushedFetch()).tips, expected);
  });

  it('follows a force push', async () => {
    git(work, 'reset', '-q', '--hard', 'HEAD~1');
    await writeFile(join(work, 'NOTES'), 'rewritten\n');
    const rewritten = commitAll(work, 'history rewritten');
    git(work, 'push', '-q', '--force', origin, 'HEAD:refs/heads/main');
    const { tips, lsRemotes } = await pushedFetch();
    assert.equal(lsRemotes, 0);
    assert.equal(tips.branch, rewritten);
    assert.deepEqual(await usual.fetch(), tips);
  });

  it('a remote that cannot be reached fails once, as the usual fetch does', async () => {
    const gone = await open('gone', join(root, 'no-such-origin.git'));
    const failed = await pushedFetch(gone).then(
      () => assert.fail('fetched from a remote that does not exist'),
      (e: unknown) => e,
    );
    assert.ok(isFleetwaveError(failed) && failed.code === 'GIT_FETCH_FAILED', String(failed));
    const lsRemote = mock.method(gone.repo, 'lsRemote');
    await gone.fetch(true).catch(() => {});
    assert.equal(lsRemote.mock.callCount(), 0, 'no second attempt the usual way');
    lsRemote.mock.restore();
  });
});
