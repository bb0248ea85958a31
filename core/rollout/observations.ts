// Agent reports turned into cohort statistics for the gates. The candidate cohort is the
// agents of waves 0..k whose latest report names their candidate target's etag; the stable
// cohort is the agents whose latest report names their stable target's etag. Evidence counts
// nothing else: an agent reporting an etag of neither revision is still on its way.

export type HealthStatus = 'ok' | 'degraded' | 'failed' | 'retrying';

/** One agent's latest report, reduced to what the gates read. */
export interface AgentSample {
  id: string;
  /** Its wave index under the stable policy. */
  wave: number;
  /** The etag the agent reports it runs. */
  current?: string;
  /**
   * The etag of a target the agent received but could not apply (`health.failedTarget`). It
   * keeps running, and reporting, its previous target: without this the failure would count
   * against that target's cohort instead of the one that caused it.
   */
  failedEtag?: string;
  /** The etag of its target at the candidate revision (defined for waves 0..k). */
  candidateEtag?: string;
  /** The etag of its target at the stable revision. */
  stableEtag?: string;
  status?: HealthStatus;
  /** Errors and requests since its previous report (`health.errors` / `health.requests`). */
  errors?: number;
  requests?: number;
  /** Clock ms of the report. */
  at: number;
}

/** The latest state of one cohort. */
export interface CohortSnapshot {
  /** Agents the cohort could hold: for the candidate, every known agent of waves 0..k. */
  agents: number;
  /** Latest report names the cohort's etag (silent ones included). */
  applied: number;
  /** Applied, then no report for longer than silentAfter. */
  silent: number;
  /** Applied, not silent, and reporting `failed`. */
  failed: number;
  degraded: number;
  /** Sums over reporting agents' latest reports; requests 0 means no error-rate data. */
  errors: number;
  requests: number;
}

/** Counts accumulated over the rollout, one trial per check-in: what compareToStable tests. */
export interface Tally {
  reports: number;
  failed: number;
  errors: number;
  requests: number;
}

/** What was observed of the fleet for one candidate at one wave. */
export interface FleetObservation {
  revision: string;
  wave: number;
  candidate: CohortSnapshot;
  stable: CohortSnapshot;
  tally: { candidate: Tally; stable: Tally };
}

export function emptySnapshot(): CohortSnapshot {
  return { agents: 0, applied: 0, silent: 0, failed: 0, degraded: 0, errors: 0, requests: 0 };
}

export function emptyTally(): Tally {
  return { reports: 0, failed: 0, errors: 0, requests: 0 };
}

export type Cohort = 'candidate' | 'stable' | 'neither';

/** Which cohort a report belongs to while the candidate runs on waves 0..wave. */
export function cohortOf(sample: AgentSample, wave: number): Cohort {
  if (
    sample.wave <= wave &&
    sample.failedEtag !== undefined &&
    sample.failedEtag === sample.candidateEtag &&
    sample.status === 'failed'
  ) {
    return 'candidate';
  }
  if (sample.current === undefined) return 'neither';
  if (sample.wave <= wave && sample.current === sample.candidateEtag) return 'candidate';
  if (sample.current === sample.stableEtag) return 'stable';
  return 'neither';
}

function count(n: number | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : 0;
}

/** Adds one check-in to a cohort's tally (a new object; tallies are values). */
export function addReport(tally: Tally, sample: AgentSample): Tally {
  const requests = count(sample.requests);
  return {
    reports: tally.reports + 1,
    failed: tally.failed + (sample.status === 'failed' ? 1 : 0),
    errors: tally.errors + Math.min(count(sample.errors), requests),
    requests: tally.requests + requests,
  };
}

function add(s: CohortSnapshot, sample: AgentSample, now: number, silentAfterMs: number): void {
  s.applied++;
  if (now - sample.at > silentAfterMs) {
    s.silent++;
    return;
  }
  if (sample.status === 'failed') s.failed++;
  if (sample.status === 'degraded') s.degraded++;
  const requests = count(sample.requests);
  s.requests += requests;
  s.errors += Math.min(count(sample.errors), requests);
}

/** The candidate and stable cohorts at `now`, from every agent's latest report. */
export function observeCohorts(
  samples: Iterable<AgentSample>,
  options: { wave: number; now: number; silentAfterMs: number },
): { candidate: CohortSnapshot; stable: CohortSnapshot } {
  const candidate = emptySnapshot();
  const stable = emptySnapshot();
  for (const sample of samples) {
    if (sample.wave <= options.wave) candidate.agents++;
    else stable.agents++;
    const cohort = cohortOf(sample, options.wave);
    if (cohort === 'candidate') add(candidate, sample, options.now, options.silentAfterMs);
    else if (cohort === 'stable') add(stable, sample, options.now, options.silentAfterMs);
  }
  return { candidate, stable };
}

/** failed + silent over applied: agents that took the candidate and went silent are failures. */
export function failedRatio(s: CohortSnapshot): number {
  return s.applied === 0 ? 0 : (s.failed + s.silent) / s.applied;
}
