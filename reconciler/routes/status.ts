// GET /v1/status: what is served (stable, candidate and its wave), per-wave agent counts,
// and the health of the git source: last applied and last attempted revision with its errors,
// the remote's reachability, force pushes, the state branch's last error.

import type { FastifyInstance } from 'fastify';
import type { Reconciler } from '../context.ts';
import type { RolloutEngine } from '../engine.ts';

/** One wave in GET /v1/status (the shape the status page, the demo and the actions read). */
export interface WaveCounts {
  index: number;
  name: string;
  /** The revision this wave is served: the candidate for waves 0..k, else stable. */
  revision: string;
  agents: number;
  running: { candidate: number; stable: number; other: number };
  health: { ok: number; degraded: number; failed: number; unknown: number };
}

export function rolloutStatus(ctx: Reconciler): object {
  const targets = ctx.targets;
  const rollout = targets?.rollout;
  const waves: WaveCounts[] = [];
  const byName = new Map<string, WaveCounts>();
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
        health: { ok: 0, degraded: 0, failed: 0, unknown: 0 },
      };
      waves.push(counts);
      byName.set(name, counts);
    });
    for (const agent of ctx.agents.values()) {
      const counts = agent.wave === undefined ? undefined : byName.get(agent.wave);
      if (!counts) continue;
      counts.agents++;
      const running = ctx.agents.runningRevision(agent);
      if (running !== undefined && running === rollout.candidate?.commit)
        counts.running.candidate++;
      else if (running === rollout.stable.commit) counts.running.stable++;
      else counts.running.other++;
      // retrying: the old target runs and its health is not known from this report.
      const status = agent.health?.status;
      counts.health[status === undefined || status === 'retrying' ? 'unknown' : status]++;
    }
  }
  const state = rollout?.state;
  const candidate = rollout?.candidate;
  return {
    ready: targets !== undefined,
    stable: rollout?.stable.commit ?? null,
    candidate: candidate
      ? {
          revision: candidate.commit,
          wave: candidate.wave,
          waveName: targets!.waveNames[candidate.wave] ?? null,
          waveStartedAt: state?.candidate?.waveStartedAt ?? null,
        }
      : null,
    paused: state?.paused ?? false,
    rejected: state?.rejected ?? [],
    stateCommit: rollout?.stateCommit ?? null,
    servedSince: rollout ? new Date(rollout.since).toISOString() : null,
    waves,
    agents: { known: ctx.agents.size, waiting: ctx.longpoll.size },
    git: ctx.sync.status,
  };
}

export async function statusRoutes(
  app: FastifyInstance,
  { ctx, engine }: { ctx: Reconciler; engine?: RolloutEngine },
): Promise<void> {
  app.get('/v1/status', async () => {
    const status = rolloutStatus(ctx) as Record<string, unknown>;
    if (engine) {
      // The last evaluation (decision, reason, gate values), reverts, and the state branch's
      // recent commits: what happened and why. The candidate's observation is what the promote
      // action decides on (actions/promote/src/observe.ts).
      engine.observation();
      status.rollout = engine.status;
      status.history = await engine.history();
    }
    return status;
  });
}
