// Gates must not be fooled: one agent's report moves a gate toward pass by at most its own
// share of the cohort, whatever numbers it claims; numbers that are not numbers never pass.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { agentGates } from '../../core/rollout/gates/agents.ts';
import { compareGate } from '../../core/rollout/gates/compare.ts';
import type { GateResult } from '../../core/rollout/gates/gate.ts';
import {
  addReport,
  emptyTally,
  observeCohorts,
  type AgentSample,
  type HealthStatus,
} from '../../core/rollout/observations.ts';
import { ctx, fleet } from './fixtures.ts';

const NOW = 1_000_000;
const GATES = { maxErrorRate: 0.02, maxFailedRatio: 0.1, maxSilentRatio: 0.1 };

const agent = (id: string, over: Partial<AgentSample> = {}): AgentSample => ({
  id,
  wave: 0,
  candidateEtag: 'cand',
  stableEtag: 'stab',
  current: 'cand',
  status: 'ok',
  at: NOW - 1_000,
  ...over,
});

function judge(samples: AgentSample[]): GateResult[] {
  const cohorts = observeCohorts(samples, { wave: 0, now: NOW, silentAfterMs: 30_000 });
  return agentGates(ctx({ gates: GATES }, { now: NOW, fleet: fleet(cohorts) }));
}

const verdict = (rs: GateResult[], gate: string) => rs.find((r) => r.gate === gate)?.verdict;

describe('maxErrorRate against one loud report', () => {
  // Ten agents at 50% errors: the candidate is plainly bad.
  const bad = Array.from({ length: 10 }, (_, i) => agent(`a${i}`, { errors: 50, requests: 100 }));

  it('still fails when one agent claims 1e308 requests without errors', () => {
    const rs = judge([...bad, agent('loud', { errors: 0, requests: 1e308 })]);
    assert.equal(verdict(rs, 'maxErrorRate'), 'fail');
  });

  it('never passes when the claimed numbers make the pooled rate NaN', () => {
    const rs = judge([
      ...bad,
      agent('x', { errors: 1e308, requests: 1e308 }),
      agent('y', { errors: 1e308, requests: 1e308 }),
    ]);
    assert.notEqual(verdict(rs, 'maxErrorRate'), 'pass');
  });
});

const count = fc.oneof(
  fc.nat(1000),
  fc.double(),
  fc.constantFrom(Infinity, -Infinity, NaN, 1e308, -1, 0, Number.MAX_VALUE),
);
const status = fc.constantFrom<HealthStatus>('ok', 'degraded', 'failed');
const report = fc.record({
  status,
  errors: fc.option(count, { nil: undefined }),
  requests: fc.option(count, { nil: undefined }),
  silent: fc.boolean(),
});
type Report = typeof report extends fc.Arbitrary<infer R> ? R : never;

function sample(id: string, r: Report): AgentSample {
  const s = agent(id, { status: r.status, at: r.silent ? NOW - 60_000 : NOW - 1_000 });
  if (r.errors !== undefined) s.errors = r.errors;
  if (r.requests !== undefined) s.requests = r.requests;
  return s;
}

describe('every agent gate, one report at a time (property)', () => {
  it('no report moves a gate toward pass by more than its share, nor makes it pass on NaN', () => {
    fc.assert(
      fc.property(fc.array(report, { minLength: 1, maxLength: 30 }), report, (others, lie) => {
        const honest = others.map((r, i) => sample(`a${i}`, r));
        // The same agent, first with an honest report, then with any report at all.
        const before = judge([...honest, sample('z', others[0]!)]);
        const after = judge([...honest, sample('z', lie)]);
        for (const gate of Object.keys(GATES)) {
          const b = before.find((r) => r.gate === gate)!;
          const a = after.find((r) => r.gate === gate)!;
          if (a.verdict === 'pass') assert.ok(Number.isFinite(a.value), `${gate} passed on NaN`);
          if (a.value === undefined || b.value === undefined) continue;
          // Every agent gate is a "max" gate: toward pass is down. One report is one of the
          // `sample` agents the value rests on (on both sides).
          const share = 1 / Math.min(a.sample!, b.sample!);
          assert.ok(
            a.value >= b.value - share - 1e-12,
            `${gate} moved from ${b.value} to ${a.value}, more than 1/${1 / share}`,
          );
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('compareToStable on counts that are not numbers', () => {
  it('waits instead of passing', () => {
    const huge = addReport(emptyTally(), agent('x', { errors: 1e308, requests: 1e308 }));
    const nan = {
      reports: 100,
      failed: NaN,
      errors: NaN,
      requests: NaN,
      rated: NaN,
      errorRates: NaN,
    };
    for (const metric of ['errorRate', 'failedRatio'] as const) {
      const rs = compareGate(
        ctx(
          { gates: { compareToStable: { metric, tolerance: 0.01 } } },
          {
            fleet: fleet({
              tally: {
                candidate: nan,
                stable: {
                  reports: 100,
                  failed: 1,
                  errors: 1,
                  requests: 100,
                  rated: 100,
                  errorRates: 1,
                },
              },
            }),
          },
        ),
      );
      assert.equal(rs[0]!.verdict, 'wait', `${metric}: ${rs[0]!.message}`);
    }
    assert.ok(Number.isFinite(huge.requests) && huge.requests <= 1e9);
  });
});
