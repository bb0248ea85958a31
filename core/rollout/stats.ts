// Statistics for compareToStable: an always-valid one-sided test that the candidate's rate of
// bad events exceeds the stable cohort's by more than a tolerance.
//
// Method: the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh,
// "Always valid inference: continuous monitoring of A/B tests" (Operations Research, 2022), on
// the normal approximation of the difference of two proportions. With
//   θ̂ = p̂_candidate − p̂_stable − tolerance   (raw proportions)
//   V  = p̃c(1−p̃c)/n_c + p̃s(1−p̃s)/n_s        (Agresti–Caffo p̃ = (x+1)/(n+2), never 0)
// and a normal mixing distribution N(0, τ²) over the effect, the mixture likelihood ratio is
//   Λ = sqrt(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²))).
// The gate fires when θ̂ > 0 and Λ ≥ 1/α. Under H0 (candidate no worse than stable + tolerance)
// P(Λ ever reaches 1/α) ≤ α however often it is looked at (Ville's inequality), so evaluating
// every 10 s does not inflate false alarms; 1/Λ is the always-valid p-value at this look.
// τ = max(2 × tolerance, 0.01): effects of about the tolerance's size are detected fastest.
// Counts accumulate over the rollout (every check-in is one trial); fewer than MIN_TRIALS
// trials on either side answer `wait`.

export interface Counts {
  /** Bad events: failed reports, or errors. */
  events: number;
  /** Trials: reports, or requests. */
  trials: number;
}

export const MIN_TRIALS = 30;
export const DEFAULT_ALPHA = 0.01;

export interface Comparison {
  candidate: number;
  stable: number;
  /** p̂_candidate − p̂_stable. */
  difference: number;
  tolerance: number;
  alpha: number;
  tau: number;
  /** log Λ; the test fires at log(1/α). */
  logLikelihoodRatio: number;
  /** min(1, 1/Λ): the always-valid p-value of this look. */
  pValue: number;
  /** True when the candidate is worse than stable + tolerance at level α. */
  worse: boolean;
}

export function mixtureTau(tolerance: number): number {
  return Math.max(2 * tolerance, 0.01);
}

export function compareProportions(
  candidate: Counts,
  stable: Counts,
  tolerance: number,
  alpha = DEFAULT_ALPHA,
): Comparison {
  const tau = mixtureTau(tolerance);
  const pc = candidate.trials > 0 ? candidate.events / candidate.trials : 0;
  const ps = stable.trials > 0 ? stable.events / stable.trials : 0;
  const ac = (candidate.events + 1) / (candidate.trials + 2);
  const as = (stable.events + 1) / (stable.trials + 2);
  const v =
    (ac * (1 - ac)) / Math.max(candidate.trials, 1) + (as * (1 - as)) / Math.max(stable.trials, 1);
  const theta = pc - ps - tolerance;
  const t2 = tau * tau;
  const logLr = 0.5 * Math.log(v / (v + t2)) + (t2 * theta * theta) / (2 * v * (v + t2));
  const worse = theta > 0 && logLr >= Math.log(1 / alpha);
  return {
    candidate: pc,
    stable: ps,
    difference: pc - ps,
    tolerance,
    alpha,
    tau,
    logLikelihoodRatio: logLr,
    pValue: Math.min(1, Math.exp(-logLr)),
    worse,
  };
}
