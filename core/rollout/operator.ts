// What a person asks of the rollout, decided purely so that the reconciler's operator API and
// the promote action decide, and word their commits, exactly alike: `pause` and `resume` set
// `paused`; `promote` moves the candidate to the next wave (or completes it) and `rollback`
// rejects it, both without evaluating gates; a promotion into a wave marked `approval: manual`
// is itself an approval only where the shell says its operators approve.

import { applyDecision, type Decision, type RolloutPolicy } from './decide.ts';
import { sameState, type RolloutState } from './state.ts';
import { waveName, type Step } from './step.ts';

export const OPERATOR_ACTIONS = ['pause', 'resume', 'promote', 'rollback'] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];

export type OperatorDecision = Extract<Decision, { kind: 'promote' | 'complete' | 'reject' }>;

export interface OperatorRequest {
  action: OperatorAction;
  /** Who asked (an operator's name, a GitHub actor). */
  actor: string;
  /** Why, when they said. */
  reason?: string;
  /**
   * Whether this request approves a wave marked `approval: manual`: the reconciler's admin
   * token does (`fleetwave promote` is the approval); a workflow run opens a pull request.
   */
  approves: boolean;
}

/**
 * `by` says who and why, as people read it in the state branch's log: "by dana@ops: all good".
 * Undefined when nothing is rolling out.
 */
export function operatorDecision(
  action: 'promote' | 'rollback',
  state: RolloutState,
  policy: RolloutPolicy,
  by: string,
): OperatorDecision | undefined {
  const c = state.candidate;
  if (!c) return undefined;
  const wave = policy.waves[c.wave]?.name ?? String(c.wave);
  const what = action === 'rollback' ? 'rolled back' : 'promoted';
  const evidence = {
    wave,
    gates: [
      {
        gate: 'operator',
        verdict: action === 'rollback' ? ('fail' as const) : ('pass' as const),
        message: `${what} ${by}; gates not evaluated`,
      },
    ],
  };
  if (action === 'rollback') {
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

export function byWhom(request: Pick<OperatorRequest, 'actor' | 'reason'>): string {
  return request.reason ? `by ${request.actor}: ${request.reason}` : `by ${request.actor}`;
}

/** The commit message of an operator's decision: what, marked as a person's, and who and why. */
export function describeOperatorDecision(
  decision: OperatorDecision,
  policy: RolloutPolicy,
): string {
  const short = decision.revision.slice(0, 12);
  const subject =
    decision.kind === 'reject'
      ? `fleetwave: roll back ${short} at wave ${decision.evidence.wave} (operator)`
      : decision.kind === 'complete'
        ? `fleetwave: ${short} is stable (operator promote)`
        : `fleetwave: promote ${short} to wave ${waveName(policy, decision.wave)} (operator)`;
  return `${subject}\n\n${decision.evidence.gates.map((g) => g.message).join('\n')}\n`;
}

/**
 * The step of an operator's request on `state`. `decided` is the decision of the request's first
 * try: a retry after another writer moved the rollout carries out the same decision (or nothing),
 * never a second promotion. `replaces` is the state branch's tip when it could not be served:
 * the step then writes (the last good state, changed as asked) even when nothing changes.
 */
export function operatorStep(
  request: OperatorRequest,
  state: RolloutState,
  policy: RolloutPolicy,
  now: number,
  options: { decided?: OperatorDecision; replaces?: string } = {},
): Step & { from?: OperatorDecision } {
  const { action } = request;
  const by = byWhom(request);
  const current = waveName(policy, state.candidate?.wave);
  const note = options.replaces
    ? `\nThe state branch's tip ${options.replaces} could not be served; this replaces it with the last good state, changed as above.\n`
    : '';
  if (action === 'pause' || action === 'resume') {
    const paused = action === 'pause';
    if (state.paused === paused && !options.replaces) {
      return {
        kind: 'none',
        decision: 'wait',
        wave: current,
        reason: `the rollout is already ${paused ? 'paused' : 'running'}`,
      };
    }
    return {
      kind: 'write',
      decision: action,
      wave: current,
      state: { ...state, paused },
      message: `fleetwave: ${action} the rollout (operator)\n\n${paused ? 'paused' : 'resumed'} ${by}\n${note}`,
    };
  }
  const decision = options.decided ?? operatorDecision(action, state, policy, by);
  if (!decision) {
    return {
      kind: 'none',
      decision: 'wait',
      wave: '',
      reason: `nothing to ${action}: no candidate is rolling out`,
      conflict: true,
    };
  }
  const message = describeOperatorDecision(decision, policy) + note;
  const next = applyDecision(state, decision, now);
  if (sameState(next, state) && !options.replaces) {
    return {
      kind: 'none',
      decision: 'wait',
      wave: current,
      reason: 'the rollout already is as asked',
      from: decision,
    };
  }
  const into = decision.kind === 'promote' ? policy.waves[decision.wave] : undefined;
  if (decision.kind === 'promote' && into?.approval === 'manual' && !request.approves) {
    // A promotion into a manual wave is a review: it goes through a pull request.
    return {
      kind: 'approval',
      decision: 'approval',
      wave: into.name,
      revision: decision.revision,
      state: next,
      message,
      reason: `${current}: promoted ${by}; wave ${into.name} needs manual approval`,
      from: decision,
    };
  }
  const kind = decision.kind;
  return {
    kind: 'write',
    decision: kind,
    wave:
      kind === 'complete'
        ? waveName(policy, policy.waves.length - 1)
        : waveName(policy, decision.wave),
    state: next,
    message,
    from: decision,
  };
}
