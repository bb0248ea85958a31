// The rollout's one decision (DESIGN §1, §4): from the stable revision's policy, the rollout
// state, what was observed and the clock, say what happens next — start a candidate, promote
// it to the next wave, complete it, reject it, or wait — with the evidence it rests on.
// Pure: the shell (reconciler/engine.ts, the promote action) carries the decision out.

import { formatDuration, parseDuration } from '../fleet/duration.ts';
import type { FleetModel, Wave } from '../fleet/model.ts';
import { selectCandidate, type BranchCommit, type Skipped } from './candidate.ts';
import { agentGates } from './gates/agents.ts';
import { bakeGate } from './gates/bake.ts';
import { compareGate } from './gates/compare.ts';
import type { GateContext, GateResult } from './gates/gate.ts';
import { prometheusGates, type QueryOutcome } from './gates/prometheus.ts';
import type { CohortSnapshot, FleetObservation, Tally } from './observations.ts';
import type { RolloutState } from './state.ts';

/** The stable revision's policy: a change rolls out under the rules in force before it. */
export interface RolloutPolicy {
  pollIntervalSeconds: number;
  waves: readonly Wave[];
}

/** The policy a fleet sets: pass the stable revision's. */
export function policyOf(model: FleetModel): RolloutPolicy {
  return {
    pollIntervalSeconds: model.fleet.spec.pollIntervalSeconds,
    waves: model.fleet.spec.waves,
  };
}

export interface Observations {
  /** The fleet branch's first-parent history, newest first (see candidate.ts). */
  history: readonly BranchCommit[];
  /** The cohorts of the current candidate at its wave; ignored when it names another. */
  fleet?: FleetObservation;
  /** Outcomes of the wave's prometheus queries, by query name. */
  prometheus?: Readonly<Record<string, QueryOutcome>>;
  /** Why there are no fresh observations of the fleet (its store is down): gates wait. */
  unavailable?: string;
  /**
   * The candidate gives every agent the same target as stable (core/target/same.ts): nothing
   * to watch, so it completes at once, without waves, bakes or approvals.
   */
  sameTargets?: boolean;
}

export interface Evidence {
  wave: string;
  gates: GateResult[];
  candidate?: CohortSnapshot;
  stable?: CohortSnapshot;
  tally?: { candidate: Tally; stable: Tally };
}

export type Decision =
  | { kind: 'start'; revision: string; supersedes?: string; skipped: Skipped[] }
  | { kind: 'promote'; revision: string; wave: number; evidence: Evidence }
  | { kind: 'complete'; revision: string; evidence: Evidence; unchanged?: true }
  | { kind: 'reject'; revision: string; wave: number; reason: string; evidence: Evidence }
  | { kind: 'wait'; reason: string; evidence?: Evidence; approval?: { wave: number } };

/** How long a gate may stay inconclusive when the wave sets no failAfter: bake + 30m. */
export const DEFAULT_FAIL_AFTER_EXTRA_MS = 30 * 60_000;
/** silentAfter when the wave sets none: three poll intervals. */
export const DEFAULT_SILENT_POLLS = 3;

export function silentAfterMs(policy: RolloutPolicy, wave: Wave): number {
  const set = wave.gates?.silentAfter ? parseDuration(wave.gates.silentAfter) : undefined;
  return set ?? DEFAULT_SILENT_POLLS * policy.pollIntervalSeconds * 1000;
}

export function failAfterMs(wave: Wave): number {
  const set = wave.gates?.failAfter ? parseDuration(wave.gates.failAfter) : undefined;
  return set ?? (parseDuration(wave.bake) ?? 0) + DEFAULT_FAIL_AFTER_EXTRA_MS;
}

/** Every gate of `wave`, bake first; waits that outlast failAfter become failures. */
export function evaluateGates(policy: RolloutPolicy, ctx: GateContext): GateResult[] {
  const results = [bakeGate(ctx), ...agentGates(ctx), ...compareGate(ctx), ...prometheusGates(ctx)];
  const failAfter = failAfterMs(ctx.wave);
  if (ctx.now - ctx.waveStartedAt < failAfter) return results;
  return results.map((r) =>
    r.verdict === 'wait' && r.gate !== 'bake'
      ? {
          ...r,
          verdict: 'fail',
          message: `${r.message}; still inconclusive ${formatDuration(failAfter)} after the wave started`,
        }
      : r,
  );
}

export function decide(
  policy: RolloutPolicy,
  state: RolloutState,
  observations: Observations,
  now: number,
): Decision {
  if (state.paused) return { kind: 'wait', reason: 'the rollout is paused' };

  const current = state.candidate;
  const selection = selectCandidate(observations.history, state);
  if (selection.revision !== undefined && selection.revision !== current?.revision) {
    return {
      kind: 'start',
      revision: selection.revision,
      ...(current ? { supersedes: current.revision } : {}),
      skipped: selection.skipped,
    };
  }
  if (!current) {
    const why = selection.skipped.map((s) => `${s.revision.slice(0, 12)} ${s.why}`).join('; ');
    return {
      kind: 'wait',
      reason: why ? `no candidate: ${why}` : 'no candidate: stable is the newest revision',
    };
  }

  const k = current.wave;
  const wave = policy.waves[k];
  if (!wave) {
    return {
      kind: 'wait',
      reason: `candidate wave ${k} is past the stable policy's ${policy.waves.length} waves`,
    };
  }
  if (observations.sameTargets === true) {
    return {
      kind: 'complete',
      revision: current.revision,
      evidence: { wave: wave.name, gates: [] },
      unchanged: true,
    };
  }
  const fleet = observations.fleet;
  if (!fleet || fleet.revision !== current.revision || fleet.wave !== k) {
    return {
      kind: 'wait',
      reason: observations.unavailable
        ? `${wave.name}: observations are stale, gates wait: ${observations.unavailable}`
        : `${wave.name}: no observations of ${current.revision.slice(0, 12)} at this wave yet`,
    };
  }

  const gates = evaluateGates(policy, {
    wave,
    waveStartedAt: Date.parse(current.waveStartedAt),
    now,
    pollIntervalMs: policy.pollIntervalSeconds * 1000,
    fleet,
    prometheus: observations.prometheus ?? {},
  });
  const evidence: Evidence = {
    wave: wave.name,
    gates,
    candidate: fleet.candidate,
    stable: fleet.stable,
    tally: fleet.tally,
  };

  const failed = gates.filter((g) => g.verdict === 'fail');
  if (failed.length > 0) {
    return {
      kind: 'reject',
      revision: current.revision,
      wave: k,
      reason: `${wave.name}: ${failed.map((g) => g.message).join('; ')}`,
      evidence,
    };
  }
  const waiting = gates.filter((g) => g.verdict === 'wait');
  if (waiting.length > 0) {
    return {
      kind: 'wait',
      reason: `${wave.name}: ${waiting.map((g) => g.message).join('; ')}`,
      evidence,
    };
  }
  if (k === policy.waves.length - 1)
    return { kind: 'complete', revision: current.revision, evidence };
  const next = policy.waves[k + 1]!;
  if (next.approval === 'manual') {
    return {
      kind: 'wait',
      reason: `${wave.name}: gates pass; wave ${next.name} needs manual approval`,
      evidence,
      approval: { wave: k + 1 },
    };
  }
  return { kind: 'promote', revision: current.revision, wave: k + 1, evidence };
}

/**
 * The state after carrying out `decision` at `now`. A decision that no longer fits the state
 * (a promote to a wave the candidate is not right before, another revision) changes nothing:
 * applying the same decision twice is applying it once.
 */
export function applyDecision(state: RolloutState, decision: Decision, now: number): RolloutState {
  const c = state.candidate;
  const at = () => new Date(now).toISOString();
  switch (decision.kind) {
    case 'wait':
      return state;
    case 'start': {
      if (c?.revision === decision.revision) return state;
      if (state.rejected.some((r) => r.revision === decision.revision)) return state;
      if (decision.revision === state.stable) return state;
      return { ...state, candidate: { revision: decision.revision, wave: 0, waveStartedAt: at() } };
    }
    case 'promote': {
      if (c?.revision !== decision.revision || c.wave !== decision.wave - 1) return state;
      return { ...state, candidate: { ...c, wave: decision.wave, waveStartedAt: at() } };
    }
    case 'complete': {
      if (c?.revision !== decision.revision) return state;
      const rest = withoutCandidate(state);
      return { ...rest, stable: decision.revision };
    }
    case 'reject': {
      if (c?.revision !== decision.revision) return state;
      const rest = withoutCandidate(state);
      return {
        ...rest,
        rejected: [
          ...state.rejected,
          { revision: decision.revision, at: at(), wave: decision.wave, reason: decision.reason },
        ],
      };
    }
  }
}

function withoutCandidate(state: RolloutState): RolloutState {
  const rest = { ...state };
  delete rest.candidate;
  return rest;
}

function gateLines(evidence: Evidence | undefined): string {
  if (!evidence) return '';
  return (
    '\n' + evidence.gates.map((g) => `- ${g.gate}: ${g.verdict}: ${g.message}`).join('\n') + '\n'
  );
}

/** The commit message that records `decision` on the state branch: what, and why. */
export function describeDecision(decision: Decision, policy: RolloutPolicy): string {
  const short = (r: string) => r.slice(0, 12);
  switch (decision.kind) {
    case 'start':
      return (
        `fleetwave: start ${short(decision.revision)} on wave ${policy.waves[0]?.name ?? 0}\n\n` +
        `candidate: ${decision.revision}\n` +
        (decision.supersedes ? `supersedes: ${decision.supersedes}\n` : '') +
        decision.skipped.map((s) => `skipped ${s.revision}: ${s.why}\n`).join('')
      );
    case 'promote':
      return (
        `fleetwave: promote ${short(decision.revision)} to wave ${policy.waves[decision.wave]?.name ?? decision.wave}\n\n` +
        `gates of wave ${decision.evidence.wave} passed:\n` +
        gateLines(decision.evidence)
      );
    case 'complete':
      if (decision.unchanged) {
        return (
          `fleetwave: ${short(decision.revision)} is stable\n\n` +
          `it gives every agent the same target as stable: no wave to walk, nothing to watch\n`
        );
      }
      return (
        `fleetwave: ${short(decision.revision)} is stable\n\n` +
        `gates of the last wave ${decision.evidence.wave} passed:\n` +
        gateLines(decision.evidence)
      );
    case 'reject':
      return (
        `fleetwave: reject ${short(decision.revision)} at wave ${decision.evidence.wave}\n\n` +
        `${decision.reason}\n` +
        gateLines(decision.evidence)
      );
    case 'wait':
      return `fleetwave: wait\n\n${decision.reason}\n${gateLines(decision.evidence)}`;
  }
}
