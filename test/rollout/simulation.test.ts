// Decision quality: at least 500 seeded rollouts per kind through decide(). Healthy candidates
// (same failure rate as stable) complete; bad ones (3x the failure rate, or 20% of updated
// agents going silent) are rejected before they leave the first wave.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, simulateRollout, type CandidateKind } from './sim.ts';

const RUNS = 500;

function run(kind: CandidateKind, seedBase: number) {
  const outcomes = Array.from({ length: RUNS }, (_, i) => simulateRollout(seedBase + i, kind));
  return {
    outcomes,
    completed: outcomes.filter((o) => o.result === 'complete').length / RUNS,
    rejectedInCanary: outcomes.filter((o) => o.result === 'reject' && o.wave === 0).length / RUNS,
    medianAgentMinutes: median(outcomes.map((o) => o.agentMinutes)),
  };
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`;

describe('rollout simulation (seeded)', () => {
  it(`completes at least 99% of ${RUNS} healthy candidates`, (t) => {
    const r = run('healthy', 1_000);
    const failures = r.outcomes.filter((o) => o.result !== 'complete').map((o) => o.reason);
    t.diagnostic(`healthy: ${pct(r.completed)} completed of ${RUNS}`);
    console.log(`simulation: healthy completed ${pct(r.completed)} of ${RUNS}`);
    assert.ok(
      r.completed >= 0.99,
      `only ${pct(r.completed)} completed: ${failures.slice(0, 3).join(' | ')}`,
    );
  });

  for (const [kind, seedBase, label] of [
    ['failing', 100_000, 'failure rate 3x stable'],
    ['silent', 200_000, '20% of updated agents go silent'],
  ] as const) {
    it(`rejects at least 99% of ${RUNS} bad candidates (${label}) in the first wave`, (t) => {
      const r = run(kind, seedBase);
      const escaped = r.outcomes.filter((o) => !(o.result === 'reject' && o.wave === 0));
      const line =
        `bad (${label}): ${pct(r.rejectedInCanary)} rejected in the canary of ${RUNS}; ` +
        `median ${r.medianAgentMinutes.toFixed(1)} agent-minutes exposed`;
      t.diagnostic(line);
      console.log(`simulation: ${line}`);
      assert.ok(
        r.rejectedInCanary >= 0.99,
        `${escaped.length} escaped: ${escaped
          .slice(0, 3)
          .map((o) => `${o.result}@${o.wave}`)
          .join(', ')}`,
      );
    });
  }
});
