// Which revision of the fleet branch should be the candidate (DESIGN §1): the newest valid one
// that is not rejected and does not carry a rejected revision whose revert it lacks. Git facts
// arrive as data, computed by the shell from the branch's first-parent history.

import type { RolloutState } from './state.ts';

/** One commit of the fleet branch's first-parent history, as the shell found it. */
export interface BranchCommit {
  revision: string;
  /** Whether the fleet at this commit validates. */
  valid: boolean;
  /** Rejected revisions that are in this commit's history (itself included). */
  contains: readonly string[];
  /** Rejected revisions whose revert commit is in this commit's history. */
  reverts: readonly string[];
}

export interface Skipped {
  revision: string;
  why: string;
}

export interface CandidateSelection {
  /** The revision that should be rolling out; undefined when none newer than stable qualifies. */
  revision?: string;
  /** Newer commits passed over, newest first, and why. */
  skipped: Skipped[];
}

/**
 * Walks `history` (newest first) down to the stable revision and returns the newest commit
 * that may be the candidate.
 */
export function selectCandidate(
  history: readonly BranchCommit[],
  state: Pick<RolloutState, 'stable' | 'rejected'>,
): CandidateSelection {
  const rejected = new Set(state.rejected.map((r) => r.revision));
  const skipped: Skipped[] = [];
  for (const commit of history) {
    if (commit.revision === state.stable) break;
    if (rejected.has(commit.revision)) {
      skipped.push({ revision: commit.revision, why: 'rejected' });
      continue;
    }
    if (!commit.valid) {
      skipped.push({ revision: commit.revision, why: 'not a valid fleet' });
      continue;
    }
    const reverted = new Set(commit.reverts);
    const unreverted = commit.contains.filter((r) => rejected.has(r) && !reverted.has(r));
    if (unreverted.length > 0) {
      skipped.push({
        revision: commit.revision,
        why: `descends from rejected ${unreverted.join(', ')}; waits until the revert is in its history`,
      });
      continue;
    }
    return { revision: commit.revision, skipped };
  }
  return { skipped };
}
