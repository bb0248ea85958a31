// The fleet branch's first-parent history as data for selectCandidate (core/rollout/candidate):
// git plumbing shared by the reconciler's engine and the promote action, so both see the same
// candidates. For each commit newer than stable: whether its fleet validates, which rejected
// revisions it carries, and which of those it also reverts (revert.ts's `This reverts` line).
// Also the state branch's log, as people read it in status.

import { FleetwaveError } from '../core/errors.ts';
import type { FleetModel } from '../core/fleet/model.ts';
import { selectCandidate, type BranchCommit } from '../core/rollout/candidate.ts';
import type { Observations } from '../core/rollout/decide.ts';
import type { RolloutState } from '../core/rollout/state.ts';
import { sameTargets } from '../core/target/same.ts';
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

/**
 * What git says for decide(): the fleet branch's history since stable and whether the
 * candidate gives every agent stable's target (then it completes at once, without waves). Both
 * writers observe through this, so they see the same candidates.
 */
export async function branchObservations(
  mirror: Mirror,
  tip: string,
  state: RolloutState,
  stable: FleetModel,
): Promise<Pick<Observations, 'history' | 'sameTargets'>> {
  const observations: Pick<Observations, 'history' | 'sameTargets'> = {
    history: await branchHistory(mirror, tip, state),
  };
  if (state.candidate) {
    const candidate = await mirror.load(state.candidate.revision);
    if (candidate.valid) observations.sameTargets = sameTargets(candidate.model, stable);
  }
  return observations;
}

export interface LogEntry {
  commit: string;
  at: string;
  author: string;
  subject: string;
  body: string;
}

/** The first-parent log of `tip`, newest first: `limit` commits with their messages. */
export async function branchLog(mirror: Mirror, tip: string, limit: number): Promise<LogEntry[]> {
  const r = await mirror.repo.exec([
    'log',
    '--first-parent',
    `--max-count=${limit}`,
    '--format=%H%x1f%cI%x1f%an%x1f%B%x1e',
    tip,
    '--',
  ]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\x1e')
    .map((e) => e.replace(/^\n/, ''))
    .filter((e) => e.includes('\x1f'))
    .map((e) => {
      const [commit, at, author, body] = e.split('\x1f') as [string, string, string, string];
      const [subject, ...rest] = body.trim().split('\n');
      return { commit, at, author, subject: subject ?? '', body: rest.join('\n').trim() };
    });
}
