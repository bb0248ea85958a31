// The fleet branch's first-parent history as data for selectCandidate (core/rollout/candidate):
// for each commit newer than stable, whether its fleet validates, which rejected revisions it
// carries and which of them it also reverts (reconciler/revert.ts's convention, shared).
// The same walk as RolloutEngine's private branchHistory: to be extracted into one function.

import type { BranchCommit } from '../../../core/rollout/candidate.ts';
import type { RolloutState } from '../../../core/rollout/state.ts';
import type { Mirror } from '../../../reconciler/mirror.ts';
import { hasRevert } from '../../../reconciler/revert.ts';

export const HISTORY_DEPTH = 100;

export async function branchHistory(
  mirror: Mirror,
  tip: string,
  state: Pick<RolloutState, 'stable' | 'rejected'>,
): Promise<BranchCommit[]> {
  const rejected: string[] = [];
  for (const r of state.rejected) if (await mirror.has(r.revision)) rejected.push(r.revision);
  const history: BranchCommit[] = [];
  for (const revision of await mirror.repo.firstParents(tip, HISTORY_DEPTH)) {
    if (revision === state.stable) {
      history.push({ revision, valid: true, contains: [], reverts: [] });
      break;
    }
    const contains: string[] = [];
    const reverts: string[] = [];
    for (const r of rejected) {
      if (!(await mirror.repo.isAncestor(r, revision))) continue;
      contains.push(r);
      if (r !== revision && (await hasRevert(mirror.repo, r, revision))) reverts.push(r);
    }
    history.push({ revision, valid: (await mirror.load(revision)).valid, contains, reverts });
  }
  return history;
}
