// What a decision does to the state branch, decided purely: one commit (the next state and the
// message that says what and why), a pull request holding the promoted state for a person to
// approve (the next wave is marked `approval: manual`), or nothing. Both writers, the
// reconciler's engine and the promote action, carry out the same steps.

import { applyDecision, describeDecision, type Decision, type RolloutPolicy } from './decide.ts';
import { sameState, type RolloutState } from './state.ts';

export type Step =
  /** One commit on the state branch. */
  | {
      kind: 'write';
      /** What the commit records (the promote action's `decision` output). */
      decision: 'start' | 'promote' | 'complete' | 'reject' | 'pause' | 'resume';
      /** The wave it is about: started on, promoted to, completed on, rejected at, current. */
      wave: string;
      state: RolloutState;
      message: string;
      /** The decision it carries out; none for pause and resume. */
      from?: Decision;
    }
  /** The next wave needs a person: the promoted state, for a pull request to hold. */
  | {
      kind: 'approval';
      decision: 'approval';
      wave: string;
      revision: string;
      state: RolloutState;
      message: string;
      reason: string;
      from: Decision;
    }
  /** Nothing to write. */
  | {
      kind: 'none';
      decision: 'wait';
      wave: string;
      reason: string;
      from?: Decision;
      /** An operator command that does not fit the rollout (nothing to promote). */
      conflict?: true;
    };

export function waveName(policy: RolloutPolicy, index: number | undefined): string {
  return index === undefined ? '' : (policy.waves[index]?.name ?? String(index));
}

/** The step `decision` (from decide(), or an operator's) leads to from `state` at `now`. */
export function stepOf(
  decision: Decision,
  policy: RolloutPolicy,
  state: RolloutState,
  now: number,
): Step & { from: Decision } {
  const current = waveName(policy, state.candidate?.wave);
  switch (decision.kind) {
    case 'wait': {
      if (decision.approval && state.candidate) {
        const promote: Decision = {
          kind: 'promote',
          revision: state.candidate.revision,
          wave: decision.approval.wave,
          evidence: decision.evidence ?? { wave: current, gates: [] },
        };
        return {
          kind: 'approval',
          decision: 'approval',
          wave: waveName(policy, decision.approval.wave),
          revision: state.candidate.revision,
          state: applyDecision(state, promote, now),
          message: describeDecision(promote, policy),
          reason: decision.reason,
          from: decision,
        };
      }
      return {
        kind: 'none',
        decision: 'wait',
        wave: current,
        reason: decision.reason,
        from: decision,
      };
    }
    case 'start':
      return write('start', waveName(policy, 0));
    case 'promote':
      return write('promote', waveName(policy, decision.wave));
    case 'complete':
      return write('complete', waveName(policy, policy.waves.length - 1));
    case 'reject':
      return write('reject', waveName(policy, decision.wave));
  }
  function write(
    kind: 'start' | 'promote' | 'complete' | 'reject',
    wave: string,
  ): Step & { from: Decision } {
    const next = applyDecision(state, decision, now);
    if (sameState(next, state)) {
      return {
        kind: 'none',
        decision: 'wait',
        wave,
        reason: 'the rollout already is as asked',
        from: decision,
      };
    }
    return {
      kind: 'write',
      decision: kind,
      wave,
      state: next,
      message: describeDecision(decision, policy),
      from: decision,
    };
  }
}
