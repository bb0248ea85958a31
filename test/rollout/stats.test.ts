// The compareToStable statistics: honest under repeated looks, powerful against real harm.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareProportions } from '../../core/rollout/stats.ts';
import { prng } from '../../simulate/labels.ts';
import { binomial } from './sim.ts';

/** Runs `runs` monitored experiments of `looks` batches each; the share that ever fired. */
function everFired(
  fire: (c: { events: number; trials: number }, s: { events: number; trials: number }) => boolean,
  pc: number,
  ps: number,
  runs = 400,
  looks = 200,
  batch = 50,
): number {
  const random = prng(42);
  let fired = 0;
  for (let r = 0; r < runs; r++) {
    const c = { events: 0, trials: 0 };
    const s = { events: 0, trials: 0 };
    for (let l = 0; l < looks; l++) {
      c.events += binomial(random, batch, pc);
      c.trials += batch;
      s.events += binomial(random, 10 * batch, ps);
      s.trials += 10 * batch;
      if (fire(c, s)) {
        fired++;
        break;
      }
    }
  }
  return fired / runs;
}

describe('mixture SPRT for the difference of two proportions', () => {
  const tolerance = 0.01;
  const alpha = 0.05;

  it('keeps false alarms within alpha at the null boundary, looked at 200 times', () => {
    const rate = everFired(
      (c, s) => compareProportions(c, s, tolerance, alpha).worse,
      0.05 + tolerance,
      0.05,
    );
    assert.ok(rate <= alpha, `fired in ${rate} of runs`);
  });

  it('where a fixed-sample z-test looked at as often fires far more than alpha', () => {
    const naive = (
      c: { events: number; trials: number },
      s: { events: number; trials: number },
    ) => {
      const pc = c.events / c.trials;
      const ps = s.events / s.trials;
      const se = Math.sqrt((pc * (1 - pc)) / c.trials + (ps * (1 - ps)) / s.trials) || 1;
      return (pc - ps - tolerance) / se > 1.645;
    };
    assert.ok(everFired(naive, 0.05 + tolerance, 0.05) > 2 * alpha);
  });

  it('detects a candidate three times worse than stable', () => {
    assert.ok(
      everFired((c, s) => compareProportions(c, s, tolerance, alpha).worse, 0.06, 0.02, 200) >=
        0.99,
    );
  });

  it('reports the always-valid p-value as min(1, 1/Λ)', () => {
    const r = compareProportions(
      { events: 90, trials: 1000 },
      { events: 200, trials: 10000 },
      0.01,
      0.01,
    );
    assert.ok(r.worse);
    assert.ok(Math.abs(r.pValue - Math.exp(-r.logLikelihoodRatio)) < 1e-12);
    assert.ok(r.pValue <= 0.01);
  });
});
