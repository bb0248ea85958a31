// The rollout state as the reconciler sees it: `rollout.yaml` on the state branch of the
// mirror, parsed and checked by core/rollout; created on first start. Writes are commits
// pushed without force, so concurrent writers (replicas, the promote action) race safely.

import { FleetwaveError, isFleetwaveError } from '../core/errors.ts';
import {
  ROLLOUT_FILE,
  initialRolloutState,
  parseRolloutState,
  serializeRolloutState,
  type RolloutState,
} from '../core/rollout/state.ts';
import type { Mirror } from './mirror.ts';

export type StateRead =
  | { ok: true; commit: string; state: RolloutState }
  | { ok: false; commit: string; errors: string[] };

export const ROBOT = { name: 'fleetwave', email: 'fleetwave@users.noreply.fleetwave.dev' };

export async function readState(mirror: Mirror, commit: string): Promise<StateRead> {
  const text = await mirror.readStateFile(commit, ROLLOUT_FILE);
  if (text === undefined) {
    return { ok: false, commit, errors: [`${ROLLOUT_FILE} does not exist on the state branch`] };
  }
  const parsed = parseRolloutState(text);
  return parsed.ok
    ? { ok: true, commit, state: parsed.state }
    : { ok: false, commit, errors: parsed.errors };
}

/**
 * Commits `state` on the state branch (after `parent`, or as its first commit) and pushes it.
 * Returns the new commit; throws GIT_PUSH_REJECTED when someone else wrote first.
 */
export async function writeState(
  mirror: Mirror,
  state: RolloutState,
  options: { parent?: string; message: string; now: Date },
): Promise<string> {
  const commit = await mirror.repo.commitTree({
    files: { [ROLLOUT_FILE]: serializeRolloutState(state) },
    message: options.message,
    ...(options.parent === undefined ? {} : { parent: options.parent }),
    author: ROBOT,
    date: options.now,
  });
  await mirror.repo.pushCommit(mirror.remote, commit, mirror.stateRef);
  await mirror.repo.updateRef(mirror.stateRef, commit);
  return commit;
}

/**
 * First start: no state branch on the remote. Creates it with `stable` = the newest valid
 * revision of the fleet branch. Returns the state branch's commit, ours or (when another
 * writer won the race) undefined so the caller fetches theirs.
 */
export async function createState(
  mirror: Mirror,
  branchTip: string,
  branch: string,
  now: Date,
): Promise<string | undefined> {
  const stable = await mirror.newestValid(branchTip);
  if (!stable) {
    throw new FleetwaveError(
      'ROLLOUT_STATE_INVALID',
      `no valid revision among the last 100 commits of ${branch}: nothing can be stable yet`,
    );
  }
  try {
    return await writeState(mirror, initialRolloutState(stable.commit), {
      message:
        `fleetwave: start the rollout state\n\n` +
        `stable: ${stable.commit}, the newest valid revision of ${branch}` +
        (stable.commit === branchTip ? '' : ` (the tip ${branchTip} is not valid)`) +
        '\n',
      now,
    });
  } catch (e) {
    if (isFleetwaveError(e, 'GIT_PUSH_REJECTED')) return undefined;
    throw e;
  }
}
