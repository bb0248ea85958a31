// Shared builders for the rollout tests.

import type { Wave } from '../../core/fleet/model.ts';
import type { RolloutPolicy } from '../../core/rollout/decide.ts';
import type { GateContext } from '../../core/rollout/gates/gate.ts';
import {
  emptySnapshot,
  emptyTally,
  type CohortSnapshot,
  type FleetObservation,
} from '../../core/rollout/observations.ts';
import type { RolloutState } from '../../core/rollout/state.ts';

export const sha = (c: string): string => c.repeat(40).slice(0, 40);
export const S = sha('a');
export const C = sha('c');
export const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
export const MIN = 60_000;

export const POLICY: RolloutPolicy = {
  pollIntervalSeconds: 10,
  waves: [
    {
      name: 'canary',
      percent: 5,
      bake: '15m',
      gates: { minAgents: 10, maxFailedRatio: 0.1 },
    },
    { name: 'early', percent: 10, bake: '30m', gates: { minAgents: 20 } },
    { name: 'everyone', percent: 100, bake: '1h' },
  ],
};

export function state(over: Partial<RolloutState> = {}): RolloutState {
  return {
    apiVersion: 'fleetwave.dev/v1',
    kind: 'RolloutState',
    stable: S,
    rejected: [],
    paused: false,
    ...over,
  };
}

export function snapshot(over: Partial<CohortSnapshot> = {}): CohortSnapshot {
  return { ...emptySnapshot(), ...over };
}

export function fleet(over: Partial<FleetObservation> = {}): FleetObservation {
  return {
    revision: C,
    wave: 0,
    candidate: snapshot({ agents: 50, applied: 50 }),
    stable: snapshot({ agents: 950, applied: 950 }),
    tally: { candidate: emptyTally(), stable: emptyTally() },
    ...over,
  };
}

export function ctx(wave: Partial<Wave>, over: Partial<GateContext> = {}): GateContext {
  return {
    wave: { name: 'canary', percent: 5, bake: '15m', ...wave },
    waveStartedAt: T0,
    now: T0 + 20 * MIN,
    pollIntervalMs: 10_000,
    fleet: fleet(),
    prometheus: {},
    ...over,
  };
}
