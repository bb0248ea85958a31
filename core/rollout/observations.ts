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
  /** Agents whose latest report counts requests (> 0): the ones the error rate rests on. */
  reporting: number;
  /** The sum of those agents' own error rates (errors / requests, each in [0, 1]). */
  errorRates: number;
}

/** Counts accumulated over the rollout, one trial per check-in: what compareToStable tests. */
export interface Tally {
  reports: number;
  failed: number;
  errors: number;
  requests: number;
  /** Check-ins that counted requests (> 0), and the sum of their own error rates: the error
   * rate compareToStable tests is their mean, so one report weighs one check-in, however many
   * requests it claims. */
  rated: number;
  errorRates: number;
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
  return {
    agents: 0,
    applied: 0,
    silent: 0,
    failed: 0,
    degraded: 0,
    errors: 0,
    requests: 0,
    reporting: 0,
    errorRates: 0,
  };
}

export function emptyTally(): Tally {
  return { reports: 0, failed: 0, errors: 0, requests: 0, rated: 0, errorRates: 0 };
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

/**
 * The most errors or requests one report may count (since the agent's previous report). The
 * check-in schema refuses more; the gates clamp again, so no number from anywhere can make a
 * sum infinite or a rate NaN.
 */
export const MAX_REPORT_COUNT = 1_000_000_000;

function count(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.min(n, MAX_REPORT_COUNT) : 0;
}

/** Counts one check-in into `into` (in place: the reconciler does it on every check-in). */
export function tallyReport(
  into: Tally,
  report: { status?: HealthStatus | undefined; errors?: unknown; requests?: unknown },
): void {
  const requests = count(report.requests);
  const errors = Math.min(count(report.errors), requests);
  into.reports++;
  if (report.status === 'failed') into.failed++;
  into.errors += errors;
  into.requests += requests;
  if (requests > 0) {
    into.rated++;
    into.errorRates += errors / requests;
  }
}

/** Adds `more` into `into` (in place). */
export function addTally(into: Tally, more: Tally): void {
  into.reports += more.reports;
  into.failed += more.failed;
  into.errors += more.errors;
  into.requests += more.requests;
  into.rated += more.rated;
  into.errorRates += more.errorRates;
}

/** Adds one check-in to a cohort's tally (a new object; tallies are values). */
export function addReport(tally: Tally, sample: AgentSample): Tally {
  const out = { ...tally };
  tallyReport(out, sample);
  return out;
}

/**
 * Which revision an agent runs, from the etags it reports and its targets' etags under the
 * candidate and stable: the candidate when it is on waves 0..k and reports its candidate etag,
 * else stable when it reports its stable etag (equal targets count where they are served),
 * else the candidate when it reports that etag anyway; null when neither. The failed
 * revision is the one whose target's etag the agent says it could not apply.
 */
export function runningRevision(agent: {
  inWaves: boolean;
  etag: string | undefined;
  failedEtag: string | undefined;
  candidate?: { revision: string; etag: string | undefined } | undefined;
  stable: { revision: string; etag: string | undefined };
}): { revision: string | null; failedRevision: string | null } {
  const { etag, failedEtag, candidate, stable } = agent;
  let revision: string | null = null;
  if (etag !== undefined) {
    if (candidate && agent.inWaves && etag === candidate.etag) revision = candidate.revision;
    else if (etag === stable.etag) revision = stable.revision;
    else if (candidate && etag === candidate.etag) revision = candidate.revision;
  }
  const failedRevision =
    failedEtag === undefined
      ? null
      : candidate && failedEtag === candidate.etag
        ? candidate.revision
        : failedEtag === stable.etag
          ? stable.revision
          : null;
  return { revision, failedRevision };
}

/** What the store keeps of an agent to place it in a cohort: judged once, when written. */
export interface JudgedAgent {
  /** Its wave index under the stable policy; null when not placed. */
  wave: number | null;
  /** The revision whose target it reports running (see reconciler/targets.ts judge). */
  revision: string | null;
  /** The revision of the target it reports it failed to apply. */
  failedRevision: string | null;
  status: HealthStatus | null | undefined;
}

/**
 * cohortOf for an agent whose etags were already matched to revisions: the candidate's cohort
 * when it is on waves 0..wave and runs (or failed to apply) the candidate, stable's when it runs
 * stable. The store's aggregation and the reconciler's tallies both place agents with this.
 */
export function cohortOfJudged(
  agent: JudgedAgent,
  rollout: { candidate: string; stable: string; wave: number },
): Cohort {
  if (
    agent.wave !== null &&
    agent.wave <= rollout.wave &&
    (agent.revision === rollout.candidate ||
      (agent.status === 'failed' && agent.failedRevision === rollout.candidate))
  ) {
    return 'candidate';
  }
  return agent.revision === rollout.stable ? 'stable' : 'neither';
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
  const errors = Math.min(count(sample.errors), requests);
  s.requests += requests;
  s.errors += errors;
  // The error rate gate averages agents' own rates: an agent is one agent, however many
  // requests it claims, so one report cannot dilute the others' errors.
  if (requests > 0) {
    s.reporting++;
    s.errorRates += errors / requests;
  }
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

/** The mean of the reporting agents' own error rates; NaN when none reports requests. */
export function errorRate(s: CohortSnapshot): number {
  return s.reporting > 0 ? s.errorRates / s.reporting : NaN;
}
