// What the engine observes for decide(): git's history and the same-target rule (through
// rollout/history.ts, as the promote action observes them), the candidate's cohorts over the
// whole fleet from the store of agent reports, and the wave's Prometheus queries. The cohorts
// are kept as `rollout.observation` in GET /v1/status, which the promote action decides on.

import {
  policyOf,
  silentAfterMs,
  type Observations,
  type RolloutPolicy,
} from '../core/rollout/decide.ts';
import type { FleetObservation } from '../core/rollout/observations.ts';
import { branchObservations } from '../rollout/history.ts';
import { runPrometheusGates } from '../rollout/prometheus.ts';
import type { Reconciler } from './context.ts';
import type { Base, EngineStatus, RolloutObservation } from './engine.ts';
import type { ServedRollout } from './sync.ts';

export class Observer {
  private readonly ctx: Reconciler;
  /** The engine's published status, whose `observation` this keeps. */
  private readonly status: Pick<EngineStatus, 'observation'>;
  /** How long the last evaluation's observation is published as is: the evaluate interval. */
  private readonly freshMs: number;

  constructor(ctx: Reconciler, status: Pick<EngineStatus, 'observation'>, freshMs: number) {
    this.ctx = ctx;
    this.status = status;
    this.freshMs = freshMs;
  }

  /** Observe: git's history and same-target rule, the candidate's cohorts, Prometheus answers. */
  async observe(base: Base): Promise<Observations> {
    const observations: Observations = await branchObservations(
      this.ctx.mirror,
      base.branchTip,
      base.state,
      base.served.stable.model,
    );
    let fleet: FleetObservation | undefined;
    try {
      fleet = await this.observeCandidate(base.served, base.policy);
    } catch (e) {
      observations.unavailable = `the store of agent reports is unavailable (${(e as Error).message})`;
      return observations;
    }
    if (!fleet) return observations;
    observations.fleet = fleet;
    const wave = base.policy.waves[fleet.wave]!;
    const queries = wave.gates?.prometheus ?? [];
    const url = this.ctx.config.prometheusUrl;
    if (queries.length > 0) {
      observations.prometheus = url
        ? await runPrometheusGates(url, queries)
        : Object.fromEntries(
            queries.map((q) => [q.name, { ok: false, error: 'no --prometheus-url is configured' }]),
          );
    }
    return observations;
  }

  /**
   * The served candidate's cohorts at its wave, now, over every agent in the store (whichever
   * replica it talks to), with the tallies of every check-in since the wave started. Kept as
   * status.observation.
   */
  private async observeCandidate(
    served: ServedRollout,
    policy: RolloutPolicy,
  ): Promise<FleetObservation | undefined> {
    const candidate = served.state.candidate;
    const wave = candidate ? policy.waves[candidate.wave] : undefined;
    if (!candidate || !wave || served.candidate?.commit !== candidate.revision) {
      this.status.observation = null;
      return undefined;
    }
    let aggregate;
    try {
      aggregate = await this.ctx.reports.cohorts({
        candidate: candidate.revision,
        stable: served.stable.commit,
        wave: candidate.wave,
        silentBefore: this.ctx.now() - silentAfterMs(policy, wave),
      });
    } catch (e) {
      this.status.observation = null;
      throw e;
    }
    const fleet: FleetObservation = {
      revision: candidate.revision,
      wave: candidate.wave,
      candidate: aggregate.candidate,
      stable: aggregate.stable,
      tally: aggregate.tally,
    };
    this.status.observation = { ...fleet, at: new Date(this.ctx.now()).toISOString() };
    return fleet;
  }

  /**
   * The observation GET /v1/status publishes: the last evaluation's while it is younger than
   * the evaluate interval, else one made now (always, when the engine does not evaluate on its
   * own and the promote action decides on what it reads here).
   */
  async published(): Promise<RolloutObservation | null> {
    const served = this.ctx.sync.served;
    if (!served) return null;
    const last = this.status.observation;
    const c = served.state.candidate;
    if (
      last &&
      c &&
      last.revision === c.revision &&
      last.wave === c.wave &&
      this.ctx.now() - Date.parse(last.at) < this.freshMs
    ) {
      return last;
    }
    await this.observeCandidate(served, policyOf(served.stable.model)).catch(() => undefined);
    return this.status.observation;
  }
}
