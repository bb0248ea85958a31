// The rollout state on the remote: `rollout.yaml` on the state branch of the mirror, parsed and
// checked by core/rollout; created on first start. Writes are commits pushed without force
// (write.ts), so concurrent writers (replicas, the promote action) race safely.

import { FleetwaveError, isFleetwaveError } from '../core/errors.ts';
import {
  ROLLOUT_FILE,
  initialRolloutState,
  parseRolloutState,
  serializeRolloutState,
  type RolloutState,
} from '../core/rollout/state.ts';
import type { Step } from '../core/rollout/step.ts';
import type { Mirror } from './mirror.ts';
import { writeBranch, type Plan, type RetryOptions, type Written } from './write.ts';

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

/** The commit that records `state` on the state branch after `parent` (or as its first). */
export function commitState(
  mirror: Mirror,
  state: RolloutState,
  options: { parent?: string; message: string; now: Date },
): Promise<string> {
  return mirror.repo.commitTree({
    files: { [ROLLOUT_FILE]: serializeRolloutState(state) },
    message: options.message,
    ...(options.parent === undefined ? {} : { parent: options.parent }),
    author: ROBOT,
    date: options.now,
  });
}

/** What a write of the state branch starts from: the commit it goes on, and its state. */
export interface StateBase {
  /** The state branch's commit the next write goes on top of. */
  parent: string;
  /**
   * The state `decide` starts from: rollout.yaml at `parent`, or the last good state when the
   * parent could not be served (an operator action writes over it).
   */
  state: RolloutState;
}

/**
 * The state branch's one writer. Each try: `read` fetches and reads the base, `decide` says
 * what to do from it (pure: core/rollout/step.ts), and a `write` step becomes one commit on
 * the base's parent, pushed without force. Refused pushes are retried (write.ts).
 */
export function writeState<B extends StateBase, S extends Step = Step>(
  mirror: Mirror,
  options: RetryOptions<B> & {
    read: (attempt: number) => Promise<B>;
    decide: (base: B) => S;
    now: () => number;
    /** Appended to each commit's message (the promote action's workflow run). */
    trailer?: string;
  },
): Promise<Written<B, S>> {
  return writeBranch<B, S>(mirror, {
    ...options,
    ref: mirror.stateRef,
    what: 'the state branch',
    plan: async (base): Promise<Plan<S>> => {
      const step = options.decide(base);
      if (step.kind !== 'write') return { value: step };
      const push = await commitState(mirror, step.state, {
        parent: base.parent,
        message: step.message + (options.trailer ?? ''),
        now: new Date(options.now()),
      });
      return { value: step, push };
    },
  });
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
  const commit = await commitState(mirror, initialRolloutState(stable.commit), {
    message:
      `fleetwave: start the rollout state\n\n` +
      `stable: ${stable.commit}, the newest valid revision of ${branch}` +
      (stable.commit === branchTip ? '' : ` (the tip ${branchTip} is not valid)`) +
      '\n',
    now,
  });
  try {
    await mirror.repo.pushCommit(mirror.remote, commit, mirror.stateRef);
  } catch (e) {
    if (isFleetwaveError(e, 'GIT_PUSH_REJECTED')) return undefined;
    throw e;
  }
  await mirror.repo.updateRef(mirror.stateRef, commit);
  return commit;
}
