import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { operatorDecision } from '../../core/rollout/operator.ts';
import { C, POLICY, state, T0 } from './fixtures.ts';

const at = (wave: number) =>
  state({ candidate: { revision: C, wave, waveStartedAt: new Date(T0).toISOString() } });

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
