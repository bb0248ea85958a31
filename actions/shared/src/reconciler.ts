// Reads the reconciler's GET /v1/status: the served rollout and, per wave, how many agents are
// connected and what they run. Used for live counts (validate) and observations (promote).

import { FleetwaveError } from '../../../core/errors.ts';
import type { Status, WaveCounts } from '../../../wire/status.ts';

/** One wave as the reconciler's GET /v1/status reports it (wire/status.ts). */
export type LiveWave = WaveCounts;

/** What the actions read of GET /v1/status (wire/status.ts); the rest is not relied on. */
export interface ReconcilerStatus extends Pick<Status, 'ready' | 'stable' | 'candidate' | 'waves'> {
  /**
   * The engine's status; `rollout.observation` is the candidate's cohorts at its wave as the
   * reconciler observes them (a RolloutObservation of wire/status.ts, checked by promote).
   */
  rollout?: { observation?: unknown };
}

const TIMEOUT_MS = 10_000;

export async function fetchStatus(base: URL, timeoutMs = TIMEOUT_MS): Promise<ReconcilerStatus> {
  const url = new URL('v1/status', base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
  } catch (e) {
    const why = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `the reconciler at ${url.origin} is unreachable (${why})`,
      {
        cause: e,
      },
    );
  }
  const text = await res.text();
  if (!res.ok) {
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `the reconciler at ${url.origin} answered ${res.status} on /v1/status`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `the reconciler at ${url.origin} answered /v1/status with something that is not JSON`,
    );
  }
  const b = body as Partial<ReconcilerStatus>;
  if (typeof b !== 'object' || b === null || !Array.isArray(b.waves)) {
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `the reconciler at ${url.origin} answered /v1/status without per-wave counts`,
    );
  }
  return {
    ready: b.ready === true,
    stable: typeof b.stable === 'string' ? b.stable : null,
    candidate: b.candidate ?? null,
    waves: b.waves,
    ...(typeof b.rollout === 'object' && b.rollout !== null
      ? { rollout: { observation: b.rollout.observation } }
      : {}),
  };
}
