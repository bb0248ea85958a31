// compareToStable: is the candidate worse than the stable cohort by more than a tolerance?
// An always-valid mixture SPRT over the check-ins accumulated during the rollout (stats.ts),
// so it may be evaluated every 10 s without inflating false alarms. It passes while there is
// no evidence of harm at level alpha, fails when there is, waits on too little data.

import { MIN_TRIALS, compareProportions, DEFAULT_ALPHA, type Counts } from '../stats.ts';
import { num, type GateContext, type GateResult } from './gate.ts';

export function compareGate(ctx: GateContext): GateResult[] {
  const spec = ctx.wave.gates?.compareToStable;
  if (!spec) return [];
  const { candidate: c, stable: s } = ctx.fleet.tally;
  const counts = (t: typeof c): Counts =>
    spec.metric === 'failedRatio'
      ? { events: t.failed, trials: t.reports }
      : // Each check-in's own error rate, one trial each: a report claiming a billion
        // requests weighs what any other check-in weighs (the mean of rates, as maxErrorRate).
        { events: t.errorRates, trials: t.rated };
  const cand = counts(c);
  const stab = counts(s);
  const gate = 'compareToStable';
  const numbers = [cand.events, cand.trials, stab.events, stab.trials];
  if (!numbers.every((n) => Number.isFinite(n) && n >= 0)) {
    // NaN compares false with everything, so the test would find "no evidence of harm".
    return [
      {
        gate,
        verdict: 'wait',
        message: `${spec.metric}: the counts are not numbers to compare (candidate ${cand.events}/${cand.trials}, stable ${stab.events}/${stab.trials})`,
        threshold: spec.tolerance,
      },
    ];
  }
  if (cand.trials < MIN_TRIALS || stab.trials < MIN_TRIALS) {
    return [
      {
        gate,
        verdict: 'wait',
        message: `${spec.metric}: too few trials to compare (candidate ${cand.trials}, stable ${stab.trials}; need ${MIN_TRIALS} each)`,
        threshold: spec.tolerance,
        sample: cand.trials,
      },
    ];
  }
  const r = compareProportions(cand, stab, spec.tolerance, spec.alpha ?? DEFAULT_ALPHA);
  const shown =
    `${spec.metric} ${num(r.candidate)} vs stable ${num(r.stable)} ` +
    `(difference ${num(r.difference)}, tolerance ${num(spec.tolerance)}, ` +
    `always-valid p ${num(r.pValue)}, alpha ${num(r.alpha)}; ${cand.trials} vs ${stab.trials} trials)`;
  return [
    {
      gate,
      verdict: r.worse ? 'fail' : 'pass',
      message: r.worse ? `candidate worse than stable: ${shown}` : `no evidence of harm: ${shown}`,
      value: r.difference,
      threshold: spec.tolerance,
      sample: cand.trials,
    },
  ];
}
