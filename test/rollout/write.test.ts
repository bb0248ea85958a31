// The one writer of the state branch (rollout/write.ts, rollout/state.ts) against a real bare
// origin with a second writer, another mirror of the same remote, that moves the branch between
// a read and its push: the refused push is decided again from the other writer's state, nothing
// is lost, and a writer that keeps losing gives up at the one limit with a clear error.

import assert from 'node:assert/strict';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isFleetwaveError } from '../../core/errors.ts';
import { parseRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import type { Step } from '../../core/rollout/step.ts';
import { Mirror } from '../../rollout/mirror.ts';
import { createState, readState, writeState, type StateBase } from '../../rollout/state.ts';
import {
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  MAX_WRITE_ATTEMPTS,
  backoffMs,
} from '../../rollout/write.ts';
import { exampleFleetRepo, git } from '../helpers/git.ts';

const STATE = 'fleetwave/state';

/** A writer: its own mirror (its own data directory) of the shared origin. */
async function writer(root: string, name: string, origin: string): Promise<Mirror> {
  return Mirror.open({
    dataDir: join(root, name),
    remote: origin,
    branch: 'main',
    stateBranch: STATE,
    fleetDir: 'fleet',
  });
}

/** Fetch and read the state branch's tip: what each try of a write starts from. */
async function read(mirror: Mirror): Promise<StateBase> {
  const tips = await mirror.fetch();
  assert.ok(tips.state, 'the state branch exists');
  const loaded = await readState(mirror, tips.state);
  assert.ok(loaded.ok);
  return { parent: tips.state, state: loaded.state };
}

const rejection = (revision: string) => ({
  revision,
  at: '2026-11-27T10:00:00.000Z',
  wave: 0,
  reason: `canary: ${revision.slice(0, 4)} failed`,
});

/** A write step that adds one rejection to whatever state it is given. */
function reject(revision: string) {
  return (base: StateBase): Step => ({
    kind: 'write',
    decision: 'reject',
    wave: 'canary',
    state: { ...base.state, rejected: [...base.state.rejected, rejection(revision)] },
    message: `test: reject ${revision.slice(0, 4)}\n`,
  });
}

describe('the one writer of the state branch', () => {
  let root: string;
  let origin: string;
  let ours: Mirror;
  let theirs: Mirror;
  let other = 0;

  const remoteState = (): RolloutState => {
    const parsed = parseRolloutState(git(origin, 'show', `${STATE}:rollout.yaml`));
    assert.ok(parsed.ok);
    return parsed.state;
  };
  const subjects = (): string[] =>
    git(origin, 'log', '--first-parent', '--format=%s', STATE).trim().split('\n');

  /** The other writer wins a race: one commit of its own on the state branch. */
  async function theyWrite(): Promise<void> {
    const n = ++other;
    const written = await writeState(theirs, {
      read: () => read(theirs),
      decide: reject(String(n).repeat(40)),
      now: () => Date.UTC(2026, 10, 27, 10, 0, n),
    });
    assert.ok(written.commit);
  }

  before(async () => {
    const work = await exampleFleetRepo();
    root = await mkdtemp(join(tmpdir(), 'fw-writer-'));
    origin = join(root, 'origin.git');
    git(root, 'init', '-q', '--bare', origin);
    git(work, 'push', '-q', origin, 'HEAD:refs/heads/main');
    await rm(work, { recursive: true, force: true });
    ours = await writer(root, 'ours', origin);
    theirs = await writer(root, 'theirs', origin);
    const tips = await ours.fetch();
    assert.ok(await createState(ours, tips.branch!, 'main', new Date(Date.UTC(2026, 10, 27))));
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('writes one commit on the tip it read, and nothing when the step writes nothing', async () => {
    const before = git(origin, 'rev-parse', STATE).trim();
    const none = await writeState(ours, {
      read: () => read(ours),
      decide: () => ({ kind: 'none', decision: 'wait', wave: '', reason: 'nothing to do' }),
      now: Date.now,
    });
    assert.deepEqual([none.commit, none.attempts], [undefined, 1]);
    assert.equal(git(origin, 'rev-parse', STATE).trim(), before);

    const written = await writeState(ours, {
      read: () => read(ours),
      decide: reject('a'.repeat(40)),
      now: Date.now,
      trailer: '\nworkflow run: https://ci.example/1\n',
    });
    assert.equal(written.attempts, 1);
    assert.equal(git(origin, 'rev-parse', STATE).trim(), written.commit);
    assert.equal(git(origin, 'rev-parse', `${STATE}^`).trim(), before, 'a fast-forward');
    assert.equal(
      git(origin, 'log', '-1', '--format=%B', STATE).trim(),
      'test: reject aaaa\n\nworkflow run: https://ci.example/1',
    );
    assert.equal(await ours.repo.readRef(ours.stateRef), written.commit, 'the mirror follows');
  });

  it('a push refused because another writer won is decided again from their state', async () => {
    const refused: number[] = [];
    const written = await writeState(ours, {
      read: async (attempt) => {
        const base = await read(ours);
        // Between our read and our push, the other writer commits.
        if (attempt === 1) await theyWrite();
        return base;
      },
      decide: reject('b'.repeat(40)),
      now: Date.now,
      random: () => 0,
      onRefused: (attempt) => refused.push(attempt),
    });
    assert.equal(written.attempts, 2);
    assert.deepEqual(refused, [1]);
    assert.equal(git(origin, 'rev-parse', STATE).trim(), written.commit);
    assert.deepEqual(subjects().slice(0, 2), ['test: reject bbbb', 'test: reject 1111']);
    // Both writes are in the state: ours was decided again on top of theirs, nothing is lost.
    assert.deepEqual(
      remoteState().rejected.map((r) => r.revision[0]),
      ['a', '1', 'b'],
    );
    assert.equal(
      git(origin, 'log', '--merges', '--format=%H', STATE).trim(),
      '',
      'a linear history',
    );
  });

  it(`gives up after ${MAX_WRITE_ATTEMPTS} refused pushes with ROLLOUT_WRITE_FAILED, writing nothing`, async () => {
    const reads: number[] = [];
    const refused: number[] = [];
    const before = subjects().length;
    await assert.rejects(
      writeState(ours, {
        read: async (attempt) => {
          reads.push(attempt);
          const base = await read(ours);
          await theyWrite(); // the other writer wins every race
          return base;
        },
        decide: reject('c'.repeat(40)),
        now: Date.now,
        random: () => 0,
        onRefused: (attempt) => refused.push(attempt),
      }),
      (e: unknown) => {
        assert.ok(isFleetwaveError(e, 'ROLLOUT_WRITE_FAILED'), String(e));
        assert.equal(e.kind, 'transient');
        assert.match(
          e.message,
          /^the state branch \(refs\/heads\/fleetwave\/state\) moved under each of 6 writes: another writer kept winning the race; nothing was written$/,
        );
        assert.ok(isFleetwaveError(e.cause, 'GIT_PUSH_REJECTED'), 'the last refusal is the cause');
        return true;
      },
    );
    assert.deepEqual(reads, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(refused, [1, 2, 3, 4, 5], 'no backoff after the last');
    assert.equal(subjects().length, before + MAX_WRITE_ATTEMPTS, 'only theirs landed');
    assert.ok(!remoteState().rejected.some((r) => r.revision.startsWith('c')));
  });

  it('a remote that does not answer the push is ROLLOUT_WRITE_FAILED (transient), not a crash', async () => {
    const moved = `${origin}.away`;
    await assert.rejects(
      writeState(ours, {
        read: async () => {
          const base = await read(ours);
          await rename(origin, moved); // the remote goes away between the read and the push
          return base;
        },
        decide: reject('d'.repeat(40)),
        now: Date.now,
      }),
      (e: unknown) => {
        assert.ok(isFleetwaveError(e, 'ROLLOUT_WRITE_FAILED'), String(e));
        assert.equal(e.kind, 'transient');
        assert.match(
          e.message,
          /could not be pushed: the remote did not answer; nothing was written$/,
        );
        assert.ok(!e.message.includes(origin), 'the remote is not named in the answer');
        assert.ok(isFleetwaveError(e.cause, 'GIT_FETCH_FAILED'), 'git says why, in the cause');
        return true;
      },
    );
    await rename(moved, origin);
    assert.ok(!remoteState().rejected.some((r) => r.revision.startsWith('d')));
  });

  it('backs off with full jitter, capped', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const ms = backoffMs(attempt, () => r);
          const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
          return ms >= 0 && ms <= ceiling;
        },
      ),
    );
    assert.equal(
      backoffMs(1, () => 0.999999),
      100,
    );
    assert.equal(
      backoffMs(10, () => 0.999999),
      BACKOFF_CAP_MS,
    );
  });
});
