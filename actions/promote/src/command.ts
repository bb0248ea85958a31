// What a promote command does to the rollout state, decided purely: `evaluate` asks decide()
// (the reconciler's own decision), the operator commands build the decision a person made.
// The shell writes the result as one commit, or opens a pull request for a manual approval.

import type { Decision, RolloutPolicy } from '../../../core/rollout/decide.ts';
import { applyDecision, describeDecision } from '../../../core/rollout/decide.ts';
import { operatorDecision } from '../../../core/rollout/operator.ts';
import type { RolloutState } from '../../../core/rollout/state.ts';
import type { Command } from './inputs.ts';

export type Step =
  /** One commit on the state branch. */
  | { kind: 'write'; decision: string; wave: string; state: RolloutState; message: string }
  /** The next wave needs a person: a pull request holding the promoted state. */
  | {
      kind: 'approval';
      decision: 'approval';
      wave: string;
      revision: string;
      state: RolloutState;
      message: string;
      reason: string;
    }
  /** Nothing to write. */
  | { kind: 'none'; decision: string; wave: string; reason: string };

function waveName(policy: RolloutPolicy, index: number | undefined): string {
  return index === undefined ? '' : (policy.waves[index]?.name ?? String(index));
}

/** The step a decision leads to. */
export function stepFor(
  decision: Decision,
  policy: RolloutPolicy,
  state: RolloutState,
  now: number,
): Step {
  const current = state.candidate?.wave;
  switch (decision.kind) {
    case 'wait': {
      if (decision.approval && state.candidate) {
        const promote: Decision = {
          kind: 'promote',
          revision: state.candidate.revision,
          wave: decision.approval.wave,
          evidence: decision.evidence ?? { wave: waveName(policy, current), gates: [] },
        };
        return {
          kind: 'approval',
          decision: 'approval',
          wave: waveName(policy, decision.approval.wave),
          revision: state.candidate.revision,
          state: applyDecision(state, promote, now),
          message: describeDecision(promote, policy),
          reason: decision.reason,
        };
      }
      return {
        kind: 'none',
        decision: 'wait',
        wave: waveName(policy, current),
        reason: decision.reason,
      };
    }
    case 'start':
      return write(decision, 'start', waveName(policy, 0));
    case 'promote':
      return write(decision, 'promote', waveName(policy, decision.wave));
    case 'complete':
      return write(decision, 'complete', waveName(policy, policy.waves.length - 1));
    case 'reject':
      return write(decision, 'reject', waveName(policy, decision.wave));
  }
  function write(d: Decision, kind: string, wave: string): Step {
    const next = applyDecision(state, d, now);
    if (next === state)
      return { kind: 'none', decision: 'wait', wave, reason: 'the state already says so' };
    return {
      kind: 'write',
      decision: kind,
      wave,
      state: next,
      message: describeDecision(d, policy),
    };
  }
}

/** The step of an operator command (everything but `evaluate`). */
export function operatorStep(
  command: Exclude<Command, 'evaluate'>,
  policy: RolloutPolicy,
  state: RolloutState,
  actor: string,
  now: number,
): Step {
  const current = waveName(policy, state.candidate?.wave);
  if (command === 'pause' || command === 'resume') {
    const paused = command === 'pause';
    if (state.paused === paused) {
      return {
        kind: 'none',
        decision: 'wait',
        wave: current,
        reason: `the rollout is already ${paused ? 'paused' : 'running'}`,
      };
    }
    return {
      kind: 'write',
      decision: command,
      wave: current,
      state: { ...state, paused },
      message: `fleetwave: ${command} the rollout\n\n${paused ? 'paused' : 'resumed'} by ${actor}\n`,
    };
  }
  const decision = operatorDecision(command, state, policy, `by ${actor}`);
  if (!decision)
    return {
      kind: 'none',
      decision: 'wait',
      wave: '',
      reason: `nothing is rolling out: no candidate to ${command}`,
    };
  const next = decision.kind === 'promote' ? policy.waves[decision.wave] : undefined;
  if (decision.kind === 'promote' && next?.approval === 'manual') {
    // A promotion into a manual wave is a review, whoever asks: it goes through a pull request.
    return stepFor(
      {
        kind: 'wait',
        reason: `${current}: promoted by ${actor}; wave ${next.name} needs manual approval`,
        evidence: decision.evidence,
        approval: { wave: decision.wave },
      },
      policy,
      state,
      now,
    );
  }
  return stepFor(decision, policy, state, now);
}
