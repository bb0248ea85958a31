// What every gate answers (DESIGN §4): pass, fail or wait, with the numbers it rests on.

import type { Wave } from '../../fleet/model.ts';
import type { FleetObservation } from '../observations.ts';
import type { QueryOutcome } from './prometheus.ts';

export type Verdict = 'pass' | 'fail' | 'wait';

export interface GateResult {
  /** The gate's name as in the fleet file: `bake`, `maxFailedRatio`, `prometheus:NAME`, … */
  gate: string;
  verdict: Verdict;
  /** One line for people, with the numbers: "failed ratio 0.31 > 0.02 (48 agents)". */
  message: string;
  value?: number;
  threshold?: number;
  /** How many agents (or trials) the value rests on. */
  sample?: number;
}

/** Everything a gate may read. Times are clock ms. */
export interface GateContext {
  wave: Wave;
  waveStartedAt: number;
  now: number;
  pollIntervalMs: number;
  fleet: FleetObservation;
  prometheus: Readonly<Record<string, QueryOutcome>>;
}

/** Numbers in messages: short, stable, no float noise. */
export function num(n: number): string {
  return Number.isInteger(n) ? String(n) : String(+n.toPrecision(3));
}
