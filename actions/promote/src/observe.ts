// What promote observes for the gates: the candidate's cohorts as the reconciler aggregates them
// (its /v1/status `rollout.observation`), and the wave's Prometheus queries, run here like the
// reconciler runs them (rollout/prometheus.ts).

import type { Wave } from '../../../core/fleet/model.ts';
import type { FleetObservation } from '../../../core/rollout/observations.ts';
import { runPrometheusGates } from '../../../rollout/prometheus.ts';
import { compileWire, wireAjv } from '../../../wire/schema.ts';
import { ROLLOUT_OBSERVATION_SCHEMA, fleetObservationOf } from '../../../wire/status.ts';
import { fetchStatus } from '../../shared/src/reconciler.ts';
import type { Observations } from '../../../core/rollout/decide.ts';

const validObservation = compileWire(wireAjv(), ROLLOUT_OBSERVATION_SCHEMA);

/**
 * The reconciler's `rollout.observation` (wire/status.ts, untrusted JSON) as the core's
 * FleetObservation, or undefined when it is not one: a reconciler that publishes none, or an
 * older or broken one, makes the gates wait rather than decide on a guess.
 */
export function observationOf(value: unknown): FleetObservation | undefined {
  return validObservation(value) ? fleetObservationOf(value) : undefined;
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
