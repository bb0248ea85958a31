// GET /v1/status: what is served (stable, candidate and its wave), per-wave agent counts,
// and the health of the git source: last applied and last attempted revision with its errors,
// the remote's reachability, force pushes, the state branch's last error. The shape is the
// wire's (wire/status.ts); the engine's status is published in it, its observation with
// `waveIndex`.

import type { FastifyInstance } from 'fastify';
import type { FleetModel } from '../../core/fleet/model.ts';
import { DEFAULT_SILENT_POLLS } from '../../core/rollout/decide.ts';
import {
  publishObservation,
  type EngineStatus,
  type HistoryEntry,
  type Status,
  type WaveCounts,
} from '../../wire/status.ts';
import type { Reconciler } from '../context.ts';
import type { RolloutEngine } from '../engine.ts';
import type { ServedRevision } from '../sync.ts';

export type { WaveCounts };

/**
 * Silence in counts and the inventory (not gates, which use their wave's silentAfter): no
 * report for three poll intervals.
 */
export function fleetSilentAfterMs(model: FleetModel): number {
  return DEFAULT_SILENT_POLLS * model.fleet.spec.pollIntervalSeconds * 1000;
}

function release(revision: ServedRevision): { version: string; subject: string } {
  return { version: revision.model.fleet.spec.version, subject: revision.subject ?? '' };
}

/** Counts are fleet-wide, from the store: the same on every replica. */
export async function rolloutStatus(ctx: Reconciler): Promise<Status> {
  const targets = ctx.targets;
  const rollout = targets?.rollout;
  const waves: WaveCounts[] = [];
  if (targets && rollout) {
    targets.waveNames.forEach((name, index) => {
      const counts: WaveCounts = {
        index,
        name,
        revision:
          rollout.candidate && index <= rollout.candidate.wave
            ? rollout.candidate.commit
            : rollout.stable.commit,
        agents: 0,
        running: { candidate: 0, stable: 0, other: 0 },
        health: { ok: 0, degraded: 0, failed: 0, silent: 0, unknown: 0 },
      };
      waves.push(counts);
    });
    const silentBefore = ctx.now() - fleetSilentAfterMs(rollout.stable.model);
    for (const row of await ctx.reports.counts(silentBefore).catch(() => [])) {
      const counts = row.wave === null ? undefined : waves[row.wave];
      if (!counts) continue;
      counts.agents += row.agents;
      if (row.revision !== null && row.revision === rollout.candidate?.commit)
        counts.running.candidate += row.agents;
      else if (row.revision === rollout.stable.commit) counts.running.stable += row.agents;
      else counts.running.other += row.agents;
      // retrying: the old target runs and its health is not known from this report.
      const status = row.status === null || row.status === 'retrying' ? 'unknown' : row.status;
      counts.health[row.silent ? 'silent' : status] += row.agents;
    }
  }
  const state = rollout?.state;
  const candidate = rollout?.candidate;
  return {
    ready: targets !== undefined,
    stable: rollout?.stable.commit ?? null,
    // What people recognize a revision by: the release it rolls out and its commit's subject.
    stableRelease: rollout ? release(rollout.stable) : null,
    candidate: candidate
      ? {
          revision: candidate.commit,
          // Served only while its wave is one of the stable policy's (reconciler/sync.ts).
          wave: targets!.waveNames[candidate.wave]!,
          waveIndex: candidate.wave,
          waveStartedAt: state?.candidate?.waveStartedAt ?? null,
          ...release(candidate),
        }
      : null,
    paused: state?.paused ?? false,
    // rollout.yaml's `wave` is an index; on the wire that is `waveIndex`. Its name is not known
    // here: the stable policy may have changed since.
    rejected: (state?.rejected ?? []).map((r) => ({
      revision: r.revision,
      at: r.at,
      waveIndex: r.wave,
      reason: r.reason,
    })),
    stateCommit: rollout?.stateCommit ?? null,
    servedSince: rollout ? new Date(rollout.since).toISOString() : null,
    waves,
    agents: {
      known: waves.reduce((n, w) => n + w.agents, 0),
      here: ctx.agents.size,
      waiting: ctx.longpoll.size,
    },
    store: ctx.reports.status,
    git: ctx.sync.status,
  };
}

export async function statusRoutes(
  app: FastifyInstance,
  { ctx, engine }: { ctx: Reconciler; engine?: RolloutEngine },
): Promise<void> {
  app.get('/v1/status', async (): Promise<Status> => {
    const status = await rolloutStatus(ctx);
    if (engine) {
      // The last evaluation (decision, reason, gate values), reverts, and the state branch's
      // recent commits: what happened and why. The candidate's observation is what the promote
      // action decides on (actions/promote/src/observe.ts).
      const observed = await engine.observation();
      const rollout: EngineStatus = {
        ...engine.status,
        observation: observed && publishObservation(observed, observed.at),
      };
      status.rollout = rollout;
      // The engine reads them from `git log` in exactly this shape.
      status.history = (await engine.history()) as HistoryEntry[];
    }
    return status;
  });
}
