// A seeded simulation of rollouts through the pure core: a fleet shaped like the example
// fleet's waves, agents reporting every 10 s, a simulated clock. Cohorts are simulated as
// counts (apply, silence and failure events per agent, failure draws per tick) so that
// thousands of rollouts take seconds.

import type { Wave } from '../../core/fleet/model.ts';
import { applyDecision, decide, type RolloutPolicy } from '../../core/rollout/decide.ts';
import type { FleetObservation, Tally } from '../../core/rollout/observations.ts';
import { initialRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { prng } from '../../simulate/labels.ts';

/** Binomial(n, p) by inversion: exact, O(np). */
export function binomial(random: () => number, n: number, p: number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  const r = p / (1 - p);
  let pr = Math.pow(1 - p, n);
  if (pr === 0) {
    // n·p far beyond anything simulated here; a normal approximation is plenty.
    const z = Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random());
    return Math.min(n, Math.max(0, Math.round(n * p + z * Math.sqrt(n * p * (1 - p)))));
  }
  let f = pr;
  let x = 0;
  const u = random();
  while (u > f && x < n) {
    pr *= (r * (n - x)) / (x + 1);
    f += pr;
    x++;
  }
  return x;
}

export const TICK_MS = 10_000;
/** Agents per wave, like the example fleet: canary, early, europe, everyone. */
export const WAVE_SIZES = [60, 300, 1200, 3440];

const gates = (bake: string, extra: Wave['gates']): Pick<Wave, 'bake' | 'gates'> => ({
  bake,
  gates: extra,
});

export const SIM_POLICY: RolloutPolicy = {
  pollIntervalSeconds: 10,
  waves: [
    {
      name: 'canary',
      percent: 5,
      ...gates('15m', {
        minAgents: 20,
        minAppliedRatio: 0.9,
        applyDeadline: '10m',
        maxFailedRatio: 0.25,
        maxSilentRatio: 0.05,
        compareToStable: { metric: 'failedRatio', tolerance: 0.005 },
      }),
    },
    {
      name: 'early',
      percent: 10,
      ...gates('30m', {
        minAgents: 50,
        minAppliedRatio: 0.95,
        applyDeadline: '20m',
        maxFailedRatio: 0.15,
        maxSilentRatio: 0.02,
        compareToStable: { metric: 'failedRatio', tolerance: 0.01 },
      }),
    },
    {
      name: 'europe',
      percent: 25,
      ...gates('1h', {
        minAgents: 200,
        minAppliedRatio: 0.95,
        maxFailedRatio: 0.1,
        maxSilentRatio: 0.02,
        compareToStable: { metric: 'failedRatio', tolerance: 0.01 },
      }),
    },
    {
      name: 'everyone',
      percent: 100,
      ...gates('2h', { minAppliedRatio: 0.98, maxFailedRatio: 0.1 }),
    },
  ],
};

export type CandidateKind = 'healthy' | 'failing' | 'silent';

export interface RolloutOutcome {
  result: 'complete' | 'reject' | 'unfinished';
  /** Wave index of the rejection, or of the last wave reached. */
  wave: number;
  /** Agent-minutes run on the candidate (silent ones included) until the end. */
  agentMinutes: number;
  reason?: string;
}

const STABLE = 'a'.repeat(40);
const CANDIDATE = 'b'.repeat(40);
/** Healthy agents stop reporting now and then (a machine dies): per agent per tick. */
const BACKGROUND_SILENCE = 2e-6;
const MAX_TICKS = 6 * 360; // 6 simulated hours

/** Sorted event times and how many have happened: counters that only go up. */
class Events {
  private times: number[] = [];
  private sorted = true;
  private passed = 0;
  add(t: number): void {
    this.times.push(t);
    this.sorted = false;
  }
  countUntil(t: number): number {
    if (!this.sorted) {
      this.times.sort((a, b) => a - b);
      this.sorted = true;
    }
    while (this.passed < this.times.length && this.times[this.passed]! <= t) this.passed++;
    return this.passed;
  }
}

export function simulateRollout(seed: number, kind: CandidateKind): RolloutOutcome {
  const random = prng(seed);
  const policy = SIM_POLICY;
  const silentAfter = 3 * TICK_MS;
  const stableRate = 0.01 + 0.02 * random(); // each rollout its own base failure rate
  const candidateRate = kind === 'failing' ? 3 * stableRate : stableRate;
  const total = WAVE_SIZES.reduce((a, b) => a + b, 0);
  const history = [
    { revision: CANDIDATE, valid: true, contains: [], reverts: [] },
    { revision: STABLE, valid: true, contains: [], reverts: [] },
  ];

  let now = Date.UTC(2026, 10, 27, 10, 0, 0);
  let state: RolloutState = initialRolloutState(STABLE);
  const applied = new Events();
  const stoppedReporting = new Events();
  const tally = { candidate: emptyTally(), stable: emptyTally() };
  let agentMs = 0;

  const enterWave = (wave: number, at: number): void => {
    for (let i = 0; i < WAVE_SIZES[wave]!; i++) {
      const t = at + random() * 6 * TICK_MS; // next poll plus download and restart
      applied.add(t);
      if (kind === 'silent' && random() < 0.2) stoppedReporting.add(t);
      else {
        const life = -Math.log(1 - random()) / BACKGROUND_SILENCE; // ticks until it dies
        if (life < MAX_TICKS) stoppedReporting.add(t + life * TICK_MS);
      }
    }
  };

  for (let tick = 0; tick < MAX_TICKS; tick++, now += TICK_MS) {
    let fleet: FleetObservation | undefined;
    if (state.candidate) {
      const k = state.candidate.wave;
      const agents = WAVE_SIZES.slice(0, k + 1).reduce((a, b) => a + b, 0);
      const took = applied.countUntil(now);
      const gone = stoppedReporting.countUntil(now);
      const silent = stoppedReporting.countUntil(now - silentAfter);
      const reporting = took - gone;
      const failedC = binomial(random, reporting, candidateRate);
      const onStable = total - took;
      const failedS = binomial(random, onStable, stableRate);
      tally.candidate = add(tally.candidate, reporting, failedC);
      tally.stable = add(tally.stable, onStable, failedS);
      agentMs += took * TICK_MS;
      fleet = {
        revision: state.candidate.revision,
        wave: k,
        candidate: {
          agents,
          applied: took,
          silent,
          failed: failedC,
          degraded: 0,
          errors: 0,
          requests: 0,
          reporting: 0,
          errorRates: 0,
        },
        stable: {
          agents: total - agents,
          applied: onStable,
          silent: 0,
          failed: failedS,
          degraded: 0,
          errors: 0,
          requests: 0,
          reporting: 0,
          errorRates: 0,
        },
        tally: { candidate: tally.candidate, stable: tally.stable },
      };
    }
    const decision = decide(policy, state, { history, ...(fleet ? { fleet } : {}) }, now);
    if (decision.kind === 'complete' || decision.kind === 'reject') {
      return {
        result: decision.kind,
        wave: state.candidate!.wave,
        agentMinutes: agentMs / 60_000,
        ...(decision.kind === 'reject' ? { reason: decision.reason } : {}),
      };
    }
    const before = state.candidate?.wave;
    state = applyDecision(state, decision, now);
    if (decision.kind === 'start') enterWave(0, now);
    if (decision.kind === 'promote' && state.candidate && state.candidate.wave !== before) {
      enterWave(state.candidate.wave, now);
    }
  }
  return {
    result: 'unfinished',
    wave: state.candidate?.wave ?? -1,
    agentMinutes: agentMs / 60_000,
  };
}

function emptyTally(): Tally {
  return { reports: 0, failed: 0, errors: 0, requests: 0, rated: 0, errorRates: 0 };
}

function add(t: Tally, reports: number, failed: number): Tally {
  return { ...t, reports: t.reports + reports, failed: t.failed + failed };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
