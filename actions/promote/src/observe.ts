// What promote observes for the gates: the candidate's cohorts as the reconciler aggregates them
// (its /v1/status `rollout.observation`), and the wave's Prometheus queries, run here like the
// reconciler runs them (rollout/prometheus.ts).

import type { Wave } from '../../../core/fleet/model.ts';
import type { RolloutObservation } from '../../../reconciler/engine.ts';
import { runPrometheusGates } from '../../../rollout/prometheus.ts';
import { fetchStatus } from '../../shared/src/reconciler.ts';
import type { Observations } from '../../../core/rollout/decide.ts';

const SNAPSHOT = [
  'agents',
  'applied',
  'silent',
  'failed',
  'degraded',
  'errors',
  'requests',
] as const;
const TALLY = ['reports', 'failed', 'errors', 'requests'] as const;

function counts(value: unknown, keys: readonly string[]): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    keys.every((k) => {
      const n = (value as Record<string, unknown>)[k];
      return typeof n === 'number' && Number.isFinite(n) && n >= 0;
    })
  );
}

/** A RolloutObservation from untrusted JSON, or undefined when it is not one. */
export function observationOf(value: unknown): RolloutObservation | undefined {
  const o = value as Partial<RolloutObservation> | null | undefined;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.revision !== 'string' ||
    typeof o.at !== 'string' ||
    typeof o.wave !== 'number' ||
    !counts(o.candidate, SNAPSHOT) ||
    !counts(o.stable, SNAPSHOT) ||
    !counts(o.tally?.candidate, TALLY) ||
    !counts(o.tally?.stable, TALLY)
  ) {
    return undefined;
  }
  return o as RolloutObservation;
}

export async function observe(options: {
  reconcilerUrl?: URL;
  prometheusUrl?: URL;
  wave?: Wave;
  notes: string[];
}): Promise<Pick<Observations, 'fleet' | 'prometheus'>> {
  const out: Pick<Observations, 'fleet' | 'prometheus'> = {};
  if (options.reconcilerUrl) {
    // Unreachable: the error stops the action before anything is written.
    const status = await fetchStatus(options.reconcilerUrl);
    const fleet = observationOf(status.rollout?.observation);
    if (fleet) out.fleet = fleet;
    else
      options.notes.push(
        `the reconciler at ${options.reconcilerUrl.origin} publishes no observation of the candidate in /v1/status`,
      );
  }
  const queries = options.wave?.gates?.prometheus ?? [];
  if (options.prometheusUrl && queries.length > 0) {
    out.prometheus = await runPrometheusGates(options.prometheusUrl.href, queries);
  } else if (queries.length > 0) {
    options.notes.push(
      `wave ${options.wave!.name} has prometheus gates but no prometheus-url is set: they wait`,
    );
  }
  return out;
}
