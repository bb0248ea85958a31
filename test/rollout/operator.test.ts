// The operator rules (core/rollout/operator.ts) and the steps decisions lead to (step.ts): table
// tests, since both shells (the reconciler's admin routes and the promote action) carry out
// exactly these steps and write exactly these messages.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutPolicy } from '../../core/rollout/decide.ts';
import {
  operatorDecision,
  operatorStep,
  type OperatorAction,
  type OperatorRequest,
} from '../../core/rollout/operator.ts';
import type { RolloutState } from '../../core/rollout/state.ts';
import { stepOf, type Step } from '../../core/rollout/step.ts';
import { C, MIN, POLICY, state, T0 } from './fixtures.ts';

const at = (wave: number, over: Partial<RolloutState> = {}) =>
  state({ candidate: { revision: C, wave, waveStartedAt: new Date(T0).toISOString() }, ...over });
const short = C.slice(0, 12);
const NOW = T0 + 5 * MIN;
const NOW_ISO = new Date(NOW).toISOString();

/** POLICY with its middle wave `early` marked `approval: manual`. */
const MANUAL: RolloutPolicy = {
  ...POLICY,
  waves: POLICY.waves.map((w) => (w.name === 'early' ? { ...w, approval: 'manual' } : w)),
};

describe('operatorDecision', () => {
  it('promote moves the candidate to the next wave, without evaluating gates', () => {
    const d = operatorDecision('promote', at(0), POLICY, 'by dana: looks good');
    assert.deepEqual(d, {
      kind: 'promote',
      revision: C,
      wave: 1,
      evidence: {
        wave: 'canary',
        gates: [
          {
            gate: 'operator',
            verdict: 'pass',
            message: 'promoted by dana: looks good; gates not evaluated',
          },
        ],
      },
    });
  });

  it('promote on the last wave completes the rollout', () => {
    assert.equal(operatorDecision('promote', at(2), POLICY, 'by dana')?.kind, 'complete');
  });

  it('rollback rejects the candidate at its wave, with who and why as the reason', () => {
    const d = operatorDecision('rollback', at(1), POLICY, 'by carol: customer reports');
    assert.equal(d?.kind, 'reject');
    assert.equal(d?.kind === 'reject' && d.reason, 'early: rolled back by carol: customer reports');
    assert.equal(d?.kind === 'reject' && d.wave, 1);
    assert.equal(d?.evidence.gates[0]?.verdict, 'fail');
  });

  it('has nothing to decide when nothing is rolling out', () => {
    assert.equal(operatorDecision('promote', state(), POLICY, 'by dana'), undefined);
    assert.equal(operatorDecision('rollback', state(), POLICY, 'by dana'), undefined);
  });
});

/** The parts of a step a table compares: what it writes and says, not the whole state. */
function shape(step: Step): Record<string, unknown> {
  const out: Record<string, unknown> = {
    kind: step.kind,
    decision: step.decision,
    wave: step.wave,
  };
  if (step.kind === 'none') {
    out.reason = step.reason;
    if (step.conflict) out.conflict = true;
  } else {
    out.message = step.message;
    out.paused = step.state.paused;
    out.candidate = step.state.candidate
      ? `${step.state.candidate.wave}@${step.state.candidate.waveStartedAt}`
      : null;
    out.stable = step.state.stable === C ? 'C' : 'S';
    out.rejected = step.state.rejected.map((r) => `${r.wave}: ${r.reason}`);
  }
  if (step.kind === 'approval') out.reason = step.reason;
  return out;
}

const request = (action: OperatorAction, over: Partial<OperatorRequest> = {}): OperatorRequest => ({
  action,
  actor: 'alice',
  reason: 'change freeze',
  approves: true,
  ...over,
});

describe('operatorStep', () => {
  const cases: Array<{
    name: string;
    request: OperatorRequest;
    state: RolloutState;
    policy?: RolloutPolicy;
    options?: { replaces?: string };
    step: Record<string, unknown>;
  }> = [
    {
      name: 'pause a running rollout',
      request: request('pause'),
      state: at(1),
      step: {
        kind: 'write',
        decision: 'pause',
        wave: 'early',
        message: 'fleetwave: pause the rollout (operator)\n\npaused by alice: change freeze\n',
        paused: true,
        candidate: `1@${new Date(T0).toISOString()}`,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'pause, asked by a workflow run (no reason given)',
      request: request('pause', { actor: 'octocat', reason: undefined, approves: false }),
      state: state(),
      step: {
        kind: 'write',
        decision: 'pause',
        wave: '',
        message: 'fleetwave: pause the rollout (operator)\n\npaused by octocat\n',
        paused: true,
        candidate: null,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'pause a paused rollout: nothing to write',
      request: request('pause'),
      state: at(0, { paused: true }),
      step: {
        kind: 'none',
        decision: 'wait',
        wave: 'canary',
        reason: 'the rollout is already paused',
      },
    },
    {
      name: 'resume a paused rollout',
      request: request('resume', { reason: 'freeze over' }),
      state: state({ paused: true }),
      step: {
        kind: 'write',
        decision: 'resume',
        wave: '',
        message: 'fleetwave: resume the rollout (operator)\n\nresumed by alice: freeze over\n',
        paused: false,
        candidate: null,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'resume a running rollout: nothing to write',
      request: request('resume'),
      state: state(),
      step: { kind: 'none', decision: 'wait', wave: '', reason: 'the rollout is already running' },
    },
    {
      name: 'resume over a state branch tip that could not be served: written all the same',
      request: request('resume', { reason: 'repair' }),
      state: state(),
      options: { replaces: 'f'.repeat(40) },
      step: {
        kind: 'write',
        decision: 'resume',
        wave: '',
        message:
          'fleetwave: resume the rollout (operator)\n\nresumed by alice: repair\n\n' +
          `The state branch's tip ${'f'.repeat(40)} could not be served; this replaces it with the last good state, changed as above.\n`,
        paused: false,
        candidate: null,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'promote to the next wave: its bake starts now',
      request: request('promote', { reason: 'urgent fix' }),
      state: at(0),
      step: {
        kind: 'write',
        decision: 'promote',
        wave: 'early',
        message: `fleetwave: promote ${short} to wave early (operator)\n\npromoted by alice: urgent fix; gates not evaluated\n`,
        paused: false,
        candidate: `1@${NOW_ISO}`,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'promote on the last wave: the candidate is stable',
      request: request('promote', { reason: 'urgent fix' }),
      state: at(2),
      step: {
        kind: 'write',
        decision: 'complete',
        wave: 'everyone',
        message: `fleetwave: ${short} is stable (operator promote)\n\npromoted by alice: urgent fix; gates not evaluated\n`,
        paused: false,
        candidate: null,
        stable: 'C',
        rejected: [],
      },
    },
    {
      name: 'promote into a manual wave by an operator who approves: written',
      request: request('promote'),
      state: at(0),
      policy: MANUAL,
      step: {
        kind: 'write',
        decision: 'promote',
        wave: 'early',
        message: `fleetwave: promote ${short} to wave early (operator)\n\npromoted by alice: change freeze; gates not evaluated\n`,
        paused: false,
        candidate: `1@${NOW_ISO}`,
        stable: 'S',
        rejected: [],
      },
    },
    {
      name: 'promote into a manual wave by a workflow run: a pull request holds it',
      request: request('promote', { actor: 'octocat', reason: undefined, approves: false }),
      state: at(0),
      policy: MANUAL,
      step: {
        kind: 'approval',
        decision: 'approval',
        wave: 'early',
        message: `fleetwave: promote ${short} to wave early (operator)\n\npromoted by octocat; gates not evaluated\n`,
        paused: false,
        candidate: `1@${NOW_ISO}`,
        stable: 'S',
        rejected: [],
        reason: 'canary: promoted by octocat; wave early needs manual approval',
      },
    },
    {
      name: 'promote with nothing rolling out: a conflict',
      request: request('promote'),
      state: state(),
      step: {
        kind: 'none',
        decision: 'wait',
        wave: '',
        reason: 'nothing to promote: no candidate is rolling out',
        conflict: true,
      },
    },
    {
      name: 'roll back: rejected at its wave, who and why in the reason',
      request: request('rollback', { actor: 'carol', reason: 'customer reports' }),
      state: at(1),
      step: {
        kind: 'write',
        decision: 'reject',
        wave: 'early',
        message: `fleetwave: roll back ${short} at wave early (operator)\n\nrolled back by carol: customer reports; gates not evaluated\n`,
        paused: false,
        candidate: null,
        stable: 'S',
        rejected: ['1: early: rolled back by carol: customer reports'],
      },
    },
    {
      name: 'roll back a paused rollout: still rejected, still paused',
      request: request('rollback', { actor: 'carol', reason: 'bad' }),
      state: at(0, { paused: true }),
      step: {
        kind: 'write',
        decision: 'reject',
        wave: 'canary',
        message: `fleetwave: roll back ${short} at wave canary (operator)\n\nrolled back by carol: bad; gates not evaluated\n`,
        paused: true,
        candidate: null,
        stable: 'S',
        rejected: ['0: canary: rolled back by carol: bad'],
      },
    },
    {
      name: 'roll back with nothing rolling out: a conflict',
      request: request('rollback'),
      state: state(),
      step: {
        kind: 'none',
        decision: 'wait',
        wave: '',
        reason: 'nothing to rollback: no candidate is rolling out',
        conflict: true,
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const step = operatorStep(c.request, c.state, c.policy ?? POLICY, NOW, c.options);
      assert.deepEqual(shape(step), c.step);
    });
  }

  it('a retry carries out the first try’s decision: it never promotes twice', () => {
    const first = operatorStep(request('promote'), at(0), POLICY, NOW);
    assert.equal(first.kind, 'write');
    // Another writer promoted the same candidate meanwhile: the retry finds nothing to do.
    const moved = at(1);
    const again = operatorStep(request('promote'), moved, POLICY, NOW, { decided: first.from });
    assert.deepEqual(shape(again), {
      kind: 'none',
      decision: 'wait',
      wave: 'early',
      reason: 'the rollout already is as asked',
    });
    // Deciding afresh on the moved state would have promoted a second time.
    const afresh = operatorStep(request('promote'), moved, POLICY, NOW);
    assert.deepEqual([afresh.decision, afresh.wave], ['promote', 'everyone']);
  });

  it('a rollback retried after another writer rejected the candidate writes nothing', () => {
    const first = operatorStep(request('rollback'), at(0), POLICY, NOW);
    const rejected = first.kind === 'write' ? first.state : at(0);
    const again = operatorStep(request('rollback'), rejected, POLICY, NOW, {
      decided: first.from,
    });
    assert.equal(again.kind, 'none');
    assert.equal(again.kind === 'none' && again.conflict, undefined, 'not a conflict: done');
  });
});

describe('stepOf', () => {
  const baked = T0 + 60 * MIN;
  it('writes start, promote, complete and reject with describeDecision’s message', () => {
    const start = stepOf({ kind: 'start', revision: C, skipped: [] }, POLICY, state(), baked);
    assert.equal(start.kind, 'write');
    assert.equal(start.decision, 'start');
    assert.equal(start.wave, 'canary');
    assert.match(
      start.kind === 'write' ? start.message : '',
      /^fleetwave: start c{12} on wave canary/,
    );
    const evidence = { wave: 'early', gates: [] };
    const complete = stepOf({ kind: 'complete', revision: C, evidence }, POLICY, at(2), baked);
    assert.deepEqual(
      [complete.kind, complete.decision, complete.wave],
      ['write', 'complete', 'everyone'],
    );
    const reject = stepOf(
      { kind: 'reject', revision: C, wave: 1, reason: 'early: bad', evidence },
      POLICY,
      at(1),
      baked,
    );
    assert.deepEqual([reject.kind, reject.decision, reject.wave], ['write', 'reject', 'early']);
  });

  it('a wait writes nothing and says why', () => {
    const step = stepOf({ kind: 'wait', reason: 'canary: bake' }, POLICY, at(0), baked);
    assert.deepEqual(shape(step), {
      kind: 'none',
      decision: 'wait',
      wave: 'canary',
      reason: 'canary: bake',
    });
  });

  it('gates that pass before a manual wave ask for approval with the promoted state', () => {
    const step = stepOf(
      {
        kind: 'wait',
        reason: 'canary: gates pass; wave early needs manual approval',
        evidence: { wave: 'canary', gates: [] },
        approval: { wave: 1 },
      },
      MANUAL,
      at(0),
      baked,
    );
    assert.equal(step.kind, 'approval');
    assert.equal(step.wave, 'early');
    assert.equal(step.kind === 'approval' && step.state.candidate?.wave, 1);
    assert.match(
      step.kind === 'approval' ? step.message : '',
      /^fleetwave: promote c{12} to wave early\n/,
    );
  });

  it('a decision the state already carries writes nothing', () => {
    const step = stepOf(
      { kind: 'promote', revision: C, wave: 1, evidence: { wave: 'canary', gates: [] } },
      POLICY,
      at(1),
      baked,
    );
    assert.deepEqual(shape(step), {
      kind: 'none',
      decision: 'wait',
      wave: 'early',
      reason: 'the rollout already is as asked',
    });
  });
});
