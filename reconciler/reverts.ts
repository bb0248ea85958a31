// The revert of every rejected revision still on the fleet branch (DESIGN §1): pushed on top of
// the branch through the one writer (rollout/write.ts), or, with `rollback.revert:
// pull-request`, pushed to `fleetwave/revert-<sha12>` with one pull request. Reconciled after
// every evaluation, so a writer killed between the rejection and its revert loses nothing.

import { isFleetwaveError } from '../core/errors.ts';
import { makeRevert, hasRevert, revertMessage, subjectOf } from '../rollout/revert.ts';
import { writeBranch, type Plan } from '../rollout/write.ts';
import type { Reconciler } from './context.ts';
import type { RevertStatus } from '../wire/status.ts';
import { ensurePullRequest } from './github.ts';
import type { Logger } from './sync.ts';

/** Rejections whose revert is checked on each evaluation (the newest). */
const MAX_REVERT_CHECKS = 20;

/** What one try found on the fleet branch for a rejected revision. */
type Found =
  /** Not on the branch (force-pushed away), or reverted already: nothing to undo. */
  | { kind: 'gone' }
  | { kind: 'reverted' }
  | { kind: 'conflict'; conflict: string }
  | { kind: 'made'; commit: string; message: string };

export class Reverts {
  private readonly ctx: Reconciler;
  private readonly log: Logger;
  /** The published list (EngineStatus.reverts), newest last. */
  private readonly status: { reverts: RevertStatus[] };
  /** Evidence of rejections decided here, for the revert's message. */
  readonly evidence = new Map<string, string>();
  /** Rejected revisions whose revert is known to be on the fleet branch (or opened). */
  private readonly reverted = new Set<string>();

  constructor(ctx: Reconciler, log: Logger, status: { reverts: RevertStatus[] }) {
    this.ctx = ctx;
    this.log = log;
    this.status = status;
  }

  private iso(): string {
    return new Date(this.ctx.now()).toISOString();
  }

  private mode(): RevertStatus['mode'] {
    return this.ctx.sync.served?.stable.model.fleet.spec.rollback?.revert ?? 'push';
  }

  /** Every recent rejection that is on the fleet branch without its revert gets one. */
  async reconcile(): Promise<void> {
    const served = this.ctx.sync.served;
    if (!served) return;
    for (const rejection of served.state.rejected.slice(-MAX_REVERT_CHECKS)) {
      if (this.reverted.has(rejection.revision)) continue;
      try {
        await this.revert(rejection.revision, rejection.reason);
      } catch (e) {
        this.set({
          revision: rejection.revision,
          mode: this.mode(),
          state: 'failed',
          at: this.iso(),
          message: (e as Error).message,
        });
        this.log.error(
          { revision: rejection.revision, err: (e as Error).message },
          'REVERT FAILED: the rejected revision is still on the fleet branch; retrying on the next evaluation',
        );
      }
    }
  }

  private set(status: RevertStatus): void {
    const list = this.status.reverts.filter((r) => r.revision !== status.revision);
    list.push(status);
    this.status.reverts = list.slice(-MAX_REVERT_CHECKS);
  }

  private async revert(revision: string, reason: string): Promise<void> {
    const mirror = this.ctx.mirror;
    const mode = this.mode();
    const written = await writeBranch(mirror, {
      ref: mirror.branchRef,
      what: 'the fleet branch',
      random: this.ctx.random,
      read: async (attempt) => {
        if (attempt > 1) await this.ctx.sync.sync(); // someone pushed: revert on top of theirs
        return mirror.repo.readRef(mirror.branchRef);
      },
      plan: (tip) => this.find(revision, reason, tip, mode),
    });
    const found = written.value;
    switch (found.kind) {
      case 'gone':
        this.reverted.add(revision);
        return;
      case 'reverted':
        this.reverted.add(revision);
        if (!this.status.reverts.some((r) => r.revision === revision)) {
          this.set({
            revision,
            mode,
            state: 'done',
            at: this.iso(),
            message: 'the revert is on the fleet branch',
          });
        }
        return;
      case 'conflict':
        this.set({ revision, mode, state: 'conflict', at: this.iso(), message: found.conflict });
        this.log.error(
          { revision, conflict: found.conflict },
          'REVERT CONFLICT: the rejected revision cannot be reverted mechanically; a person must revert it',
        );
        this.reverted.add(revision);
        return;
      case 'made':
        if (written.commit === undefined) {
          await this.openPullRequest(revision, found.commit, found.message);
          return;
        }
        this.reverted.add(revision);
        this.set({
          revision,
          mode,
          state: 'pushed',
          at: this.iso(),
          commit: found.commit,
          message: found.message.split('\n')[0]!,
        });
        this.log.warn(
          { revision, commit: found.commit },
          'pushed the revert of a rejected revision',
        );
        // The revert is a new revision: fetch it and evaluate it like any other.
        void this.ctx.sync.sync();
    }
  }

  /** What the fleet branch at `tip` needs for `revision`: the revert commit to push, or nothing. */
  private async find(
    revision: string,
    reason: string,
    tip: string | undefined,
    mode: RevertStatus['mode'],
  ): Promise<Plan<Found>> {
    const mirror = this.ctx.mirror;
    const repo = mirror.repo;
    if (
      tip === undefined ||
      !(await mirror.has(revision)) ||
      !(await repo.isAncestor(revision, tip))
    ) {
      return { value: { kind: 'gone' } };
    }
    if (await hasRevert(repo, revision, tip)) return { value: { kind: 'reverted' } };
    const evidence =
      this.evidence.get(revision) ?? `fleetwave rejected ${revision.slice(0, 12)}: ${reason}`;
    const message = revertMessage(await subjectOf(repo, revision), revision, evidence);
    const made = await makeRevert(repo, {
      revision,
      onto: tip,
      message,
      now: new Date(this.ctx.now()),
    });
    if (!made.ok) return { value: { kind: 'conflict', conflict: made.conflict } };
    const value: Found = { kind: 'made', commit: made.commit, message };
    // A pull request carries the revert instead of the branch: nothing is pushed onto it.
    return mode === 'pull-request' ? { value } : { value, push: made.commit };
  }

  private async openPullRequest(revision: string, commit: string, message: string): Promise<void> {
    const mirror = this.ctx.mirror;
    const head = `fleetwave/revert-${revision.slice(0, 12)}`;
    try {
      await mirror.repo.pushCommit(mirror.remote, commit, `refs/heads/${head}`);
    } catch (e) {
      // Another writer pushed the branch first: its pull request is the one.
      if (!isFleetwaveError(e, 'GIT_PUSH_REJECTED')) throw e;
    }
    const [title, ...rest] = message.split('\n');
    const branch = mirror.branchRef.slice('refs/heads/'.length);
    const pull = await ensurePullRequest(
      this.ctx.config.github ?? { apiUrl: 'https://api.github.com' },
      {
        head,
        base: branch,
        title: title!,
        body:
          rest.join('\n').trim() + '\n\nOpened by fleetwave (`rollback.revert: pull-request`).\n',
      },
    );
    this.reverted.add(revision);
    this.set({
      revision,
      mode: 'pull-request',
      state: 'pull-request',
      at: this.iso(),
      commit,
      pullRequest: { number: pull.number, url: pull.url },
      message: `${pull.created ? 'opened' : 'found'} pull request #${pull.number} from ${head}`,
    });
    this.log.warn({ revision, pull: pull.number, url: pull.url }, 'revert pull request');
  }
}
