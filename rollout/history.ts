// The fleet branch's first-parent history as data for selectCandidate (core/rollout/candidate):
// git plumbing shared by the reconciler's engine and the promote action, so both see the same
// candidates. For each commit newer than stable: whether its fleet validates, which rejected
// revisions it carries, and which of those it also reverts (revert.ts's `This reverts` line).

import { FleetwaveError } from '../core/errors.ts';
import { selectCandidate, type BranchCommit } from '../core/rollout/candidate.ts';
import type { RolloutState } from '../core/rollout/state.ts';
import type { Mirror } from './mirror.ts';
import { hasRevert } from './revert.ts';

/** First-parent commits of the fleet branch looked at for a candidate. */
export const MAX_HISTORY = 50;
/** Rejections (the newest) checked for being carried, and reverted, by those commits. */
export const MAX_REJECTIONS = 100;

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * The first-parent history of `tip` newer than `state.stable`, newest first, as far as the first
 * commit that may be the candidate (selectCandidate picks the same one from this prefix as from
 * the whole walk). Validity comes from the mirror's per-revision cache.
 */
export async function branchHistory(
  mirror: Mirror,
  tip: string,
  state: Pick<RolloutState, 'stable' | 'rejected'>,
  maxCommits = MAX_HISTORY,
): Promise<BranchCommit[]> {
  const repo = mirror.repo;
  for (const c of [tip, state.stable]) {
    if (!SHA.test(c))
      throw new FleetwaveError('GIT_FAILED', `branchHistory needs commit ids: ${c}`);
  }
  const r = await repo.exec([
    'rev-list',
    '--first-parent',
    `--max-count=${maxCommits}`,
    tip,
    `^${state.stable}`,
  ]);
  if (r.code !== 0)
    throw new FleetwaveError('GIT_FAILED', `git rev-list failed: ${r.stderr.trim()}`);
  const commits = r.stdout.split('\n').filter((l) => SHA.test(l));
  // Only rejections on this branch can be carried by its commits.
  const onBranch: string[] = [];
  for (const rejected of state.rejected.slice(-MAX_REJECTIONS)) {
    if ((await mirror.has(rejected.revision)) && (await repo.isAncestor(rejected.revision, tip))) {
      onBranch.push(rejected.revision);
    }
  }
  const history: BranchCommit[] = [];
  for (const commit of commits) {
    const loaded = await mirror.load(commit);
    const contains: string[] = [];
    const reverts: string[] = [];
    for (const rejected of onBranch) {
      if (!(await repo.isAncestor(rejected, commit))) continue;
      contains.push(rejected);
      if (rejected !== commit && (await hasRevert(repo, rejected, commit))) reverts.push(rejected);
    }
    history.push({ revision: commit, valid: loaded.valid, contains, reverts });
    if (selectCandidate(history, state).revision !== undefined) break;
  }
  return history;
}
