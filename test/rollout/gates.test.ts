// Table tests for each gate: pass, fail or wait, and the numbers in the message.

import assert from 'node:assert/strict';
import { emptyTally, tallyReport, type Tally } from '../../core/rollout/observations.ts';
import { describe, it } from 'node:test';
import { evaluateGates } from '../../core/rollout/decide.ts';
import { agentGates } from '../../core/rollout/gates/agents.ts';
import { bakeGate } from '../../core/rollout/gates/bake.ts';
import { compareGate } from '../../core/rollout/gates/compare.ts';
import type { GateResult } from '../../core/rollout/gates/gate.ts';
import { parseQueryResponse, prometheusGates } from '../../core/rollout/gates/prometheus.ts';
import { MIN, POLICY, T0, ctx, fleet, snapshot } from './fixtures.ts';

const verdicts = (rs: GateResult[]) => Object.fromEntries(rs.map((r) => [r.gate, r.verdict]));

describe('bake', () => {
  for (const [minutes, verdict] of [
    [0, 'wait'],
    [14.9, 'wait'],
    [15, 'pass'],
    [60, 'pass'],
  ] as const) {
    it(`after ${minutes}m of 15m: ${verdict}`, () => {
      assert.equal(
        bakeGate({ wave: ctx({}).wave, waveStartedAt: T0, now: T0 + minutes * MIN }).verdict,
        verdict,
      );
    });
  }
});

describe('agent gates', () => {
  const cases: Array<{
    name: string;
    gates: NonNullable<Parameters<typeof ctx>[0]['gates']>;
    candidate: Parameters<typeof snapshot>[0];
    minutes?: number;
    expect: Record<string, string>;
    message?: RegExp;
  }> = [
    {
      name: 'minAgents met',
      gates: { minAgents: 10 },
      candidate: { agents: 50, applied: 10 },
      expect: { minAgents: 'pass' },
    },
    {
      name: 'minAgents not met waits',
      gates: { minAgents: 10 },
      candidate: { agents: 50, applied: 3 },
      expect: { minAgents: 'wait' },
    },
    {
      name: 'ratio gates wait below minAgents (no verdict on 3 machines)',
      gates: { minAgents: 10, maxFailedRatio: 0.1, maxSilentRatio: 0.1 },
      candidate: { agents: 50, applied: 3, failed: 3 },
      expect: { minAgents: 'wait', maxFailedRatio: 'wait', maxSilentRatio: 'wait' },
    },
    {
      name: 'applied ratio reached',
      gates: { minAppliedRatio: 0.9, applyDeadline: '10m' },
      candidate: { agents: 100, applied: 90 },
      expect: { minAppliedRatio: 'pass' },
    },
    {
      name: 'applied ratio short before the deadline waits',
      gates: { minAppliedRatio: 0.9, applyDeadline: '10m' },
      candidate: { agents: 100, applied: 80 },
      minutes: 9,
      expect: { minAppliedRatio: 'wait' },
    },
    {
      name: 'applied ratio short after the deadline fails',
      gates: { minAppliedRatio: 0.9, applyDeadline: '10m' },
      candidate: { agents: 100, applied: 80 },
      minutes: 10,
      expect: { minAppliedRatio: 'fail' },
      message: /80 of 100 agents applied \(0\.8\) < 0\.9 after the apply deadline 10m/,
    },
    {
      name: 'failed ratio over the max fails',
      gates: { maxFailedRatio: 0.02 },
      candidate: { agents: 50, applied: 48, failed: 15 },
      expect: { maxFailedRatio: 'fail' },
      message: /failed ratio 0\.313 > 0\.02 \(48 agents\)/,
    },
    {
      name: 'failed ratio at the max passes',
      gates: { maxFailedRatio: 0.1 },
      candidate: { agents: 50, applied: 50, failed: 5 },
      expect: { maxFailedRatio: 'pass' },
    },
    {
      name: 'silent agents count as failures',
      gates: { maxFailedRatio: 0.1 },
      candidate: { agents: 50, applied: 50, failed: 2, silent: 4 },
      expect: { maxFailedRatio: 'fail' },
    },
    {
      name: 'silent ratio over the max fails',
      gates: { maxSilentRatio: 0.05 },
      candidate: { agents: 50, applied: 50, silent: 10 },
      expect: { maxSilentRatio: 'fail' },
      message: /silent ratio 0\.2 > 0\.05/,
    },
    {
      name: 'silent ratio under the max passes',
      gates: { maxSilentRatio: 0.05 },
      candidate: { agents: 50, applied: 50, silent: 2 },
      expect: { maxSilentRatio: 'pass' },
    },
    {
      name: 'error rate over the max fails',
      gates: { maxErrorRate: 0.02 },
      candidate: {
        agents: 50,
        applied: 48,
        errors: 31,
        requests: 100,
        reporting: 1,
        errorRates: 0.31,
      },
      expect: { maxErrorRate: 'fail' },
      message: /error rate 0\.31 > 0\.02/,
    },
    {
      name: 'error rate under the max passes',
      gates: { maxErrorRate: 0.02 },
      candidate: {
        agents: 50,
        applied: 48,
        errors: 1,
        requests: 100,
        reporting: 1,
        errorRates: 0.01,
      },
      expect: { maxErrorRate: 'pass' },
    },
    {
      name: 'a ratio of no agents (minAgents 0) waits: 0/0 is not a pass',
      gates: { minAgents: 0, maxSilentRatio: 0.1, maxFailedRatio: 0.1 },
      candidate: { agents: 50, applied: 0 },
      expect: { minAgents: 'pass', maxSilentRatio: 'wait', maxFailedRatio: 'wait' },
    },
    {
      name: 'error rate without requests waits',
      gates: { maxErrorRate: 0.02 },
      candidate: { agents: 50, applied: 48 },
      expect: { maxErrorRate: 'wait' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rs = agentGates(
        ctx(
          { gates: c.gates },
          { now: T0 + (c.minutes ?? 20) * MIN, fleet: fleet({ candidate: snapshot(c.candidate) }) },
        ),
      );
      assert.deepEqual(verdicts(rs), c.expect);
      if (c.message) assert.match(rs.map((r) => r.message).join('\n'), c.message);
    });
  }
});

describe('compareToStable', () => {
  const run = (cand: [number, number], stab: [number, number], tolerance = 0.01) =>
    compareGate(
      ctx(
        { gates: { compareToStable: { metric: 'failedRatio', tolerance } } },
        {
          fleet: fleet({
            tally: {
              candidate: { ...emptyTally(), reports: cand[1], failed: cand[0] },
              stable: { ...emptyTally(), reports: stab[1], failed: stab[0] },
            },
          }),
        },
      ),
    )[0]!;

  it('waits on too few trials', () => assert.equal(run([5, 20], [100, 10000]).verdict, 'wait'));
  it('passes when the candidate is like stable', () =>
    assert.equal(run([20, 1000], [200, 10000]).verdict, 'pass'));
  it('passes on noise within the tolerance', () =>
    assert.equal(run([28, 1000], [200, 10000]).verdict, 'pass'));
  it('fails when the candidate is clearly worse', () => {
    const r = run([90, 1000], [200, 10000]);
    assert.equal(r.verdict, 'fail');
    assert.match(r.message, /failedRatio 0\.09 vs stable 0\.02 .*always-valid p/);
  });
  it('does not fire on a difference it cannot tell from noise (small sample)', () => {
    assert.equal(run([4, 40], [200, 10000]).verdict, 'pass');
  });
  it("compares error rates as the mean of each check-in's own rate", () => {
    const tally = (reports: number[][]) => {
      const t = emptyTally();
      for (const [errors, requests] of reports) tallyReport(t, { errors, requests });
      return t;
    };
    const judge = (candidate: Tally, stable: Tally) =>
      compareGate(
        ctx(
          { gates: { compareToStable: { metric: 'errorRate', tolerance: 0.01 } } },
          { fleet: fleet({ tally: { candidate, stable } }) },
        ),
      )[0]!;
    const stable = tally(Array.from({ length: 1000 }, () => [2, 1000]));
    // 300 check-ins at 10% errors: worse than stable's 0.2%.
    const bad = Array.from({ length: 300 }, () => [100, 1000]);
    assert.equal(judge(tally(bad), stable).verdict, 'fail');
    // One check-in claiming a billion clean requests is one check-in among 301, not a
    // dilution of every other's errors.
    assert.equal(judge(tally([...bad, [0, 1e9]]), stable).verdict, 'fail');
  });
});

describe('prometheus gate', () => {
  const wave = {
    gates: {
      prometheus: [
        { name: 'ingest', query: 'x', max: 0.001 },
        { name: 'up', query: 'y', min: 1 },
      ],
    },
  };
  const table: Array<
    [
      string,
      Record<string, import('../../core/rollout/gates/prometheus.ts').QueryOutcome>,
      Record<string, string>,
    ]
  > = [
    [
      'in bounds passes',
      { ingest: { ok: true, value: 0.0005 }, up: { ok: true, value: 3 } },
      { 'prometheus:ingest': 'pass', 'prometheus:up': 'pass' },
    ],
    [
      'over max and under min fail',
      { ingest: { ok: true, value: 0.01 }, up: { ok: true, value: 0 } },
      { 'prometheus:ingest': 'fail', 'prometheus:up': 'fail' },
    ],
    [
      'errors wait',
      { ingest: { ok: false, error: 'timed out' }, up: { ok: false, error: 'empty result' } },
      { 'prometheus:ingest': 'wait', 'prometheus:up': 'wait' },
    ],
    [
      'NaN waits, missing waits',
      { ingest: { ok: true, value: NaN } },
      { 'prometheus:ingest': 'wait', 'prometheus:up': 'wait' },
    ],
  ];
  for (const [name, outcomes, expect] of table) {
    it(name, () =>
      assert.deepEqual(verdicts(prometheusGates(ctx(wave, { prometheus: outcomes }))), expect),
    );
  }

  it('a wait turns into a fail once failAfter has elapsed since the wave started', () => {
    const w = { ...wave, bake: '15m', gates: { ...wave.gates, failAfter: '20m' } };
    const down = {
      ingest: { ok: false as const, error: 'connection refused' },
      up: { ok: true as const, value: 1 },
    };
    const at = (m: number) =>
      verdicts(evaluateGates(POLICY, ctx(w, { now: T0 + m * MIN, prometheus: down })));
    assert.equal(at(19)['prometheus:ingest'], 'wait');
    assert.equal(at(20)['prometheus:ingest'], 'fail');
    assert.equal(at(20).bake, 'pass');
  });

  it('never passes on an error, whatever the bounds', () => {
    for (const outcome of [
      { ok: false as const, error: 'x' },
      { ok: true as const, value: Infinity },
    ]) {
      const r = prometheusGates(
        ctx({ gates: { prometheus: [{ name: 'q', query: 'q' }] } }, { prometheus: { q: outcome } }),
      );
      assert.notEqual(r[0]!.verdict, 'pass');
    }
  });
});

describe('parseQueryResponse', () => {
  const ok = (data: unknown) => JSON.stringify({ status: 'success', data });
  const table: Array<[string, number, string, number | RegExp]> = [
    [
      'one sample',
      200,
      ok({ resultType: 'vector', result: [{ metric: {}, value: [1, '0.5'] }] }),
      0.5,
    ],
    ['a scalar', 200, ok({ resultType: 'scalar', result: [1, '2'] }), 2],
    ['empty vector', 200, ok({ resultType: 'vector', result: [] }), /empty result/],
    [
      'two series',
      200,
      ok({ resultType: 'vector', result: [{ value: [1, '1'] }, { value: [1, '2'] }] }),
      /2 series/,
    ],
    [
      'NaN',
      200,
      ok({ resultType: 'vector', result: [{ value: [1, 'NaN'] }] }),
      /not a finite number/,
    ],
    ['+Inf', 200, ok({ resultType: 'scalar', result: [1, '+Inf'] }), /not a finite number/],
    [
      'a number, not a string',
      200,
      ok({ resultType: 'scalar', result: [1, 2] }),
      /not \[time, "value"\]/,
    ],
    ['a matrix', 200, ok({ resultType: 'matrix', result: [] }), /result type "matrix"/],
    ['garbage', 200, '<html>oops', /not JSON/],
    [
      'an error',
      400,
      JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }),
      /HTTP 400: query failed: bad_data: parse error/,
    ],
    ['a 500 claiming success', 500, ok({ resultType: 'scalar', result: [1, '1'] }), /HTTP 500/],
  ];
  for (const [name, status, body, expect] of table) {
    it(name, () => {
      const r = parseQueryResponse(status, body);
      if (typeof expect === 'number') assert.deepEqual(r, { ok: true, value: expect });
      else {
        assert.equal(r.ok, false);
        assert.match((r as { error: string }).error, expect);
      }
    });
  }
});
