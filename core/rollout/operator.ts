// The decision a person makes: `promote` moves the candidate to the next wave (or completes
// it) and `rollback` rejects it, both without evaluating gates. Pure, so the reconciler's
// operator API and the promote action decide exactly alike.

import type { Decision, RolloutPolicy } from './decide.ts';
import type { RolloutState } from './state.ts';

export type OperatorDecision = Extract<Decision, { kind: 'promote' | 'complete' | 'reject' }>;

/**
 * `by` says who and why, as people read it in the state branch's log: "by dana@ops: all good".
 * Undefined when nothing is rolling out.
 */
export function operatorDecision(
  command: 'promote' | 'rollback',
  state: RolloutState,
  policy: RolloutPolicy,
  by: string,
): OperatorDecision | undefined {
  const c = state.candidate;
  if (!c) return undefined;
  const wave = policy.waves[c.wave]?.name ?? String(c.wave);
  const what = command === 'rollback' ? 'rolled back' : 'promoted';
  const evidence = {
    wave,
    gates: [
      {
        gate: 'operator',
        verdict: command === 'rollback' ? ('fail' as const) : ('pass' as const),
        message: `${what} ${by}; gates not evaluated`,
      },
    ],
  };
  if (command === 'rollback') {
    return {
      kind: 'reject',
      revision: c.revision,
      wave: c.wave,
      reason: `${wave}: rolled back ${by}`,
      evidence,
    };
  }
  if (c.wave >= policy.waves.length - 1)
    return { kind: 'complete', revision: c.revision, evidence };
  return { kind: 'promote', revision: c.revision, wave: c.wave + 1, evidence };
}
