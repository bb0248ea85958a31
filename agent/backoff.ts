// When to try again: full-jitter exponential backoff with a cap (AWS "Exponential Backoff And
// Jitter"), with a server's Retry-After as a floor. Pure: the randomness is passed in.

export interface BackoffPolicy {
  /** The ceiling of the first retry, in ms. */
  baseMs: number;
  /** No retry waits longer than this, in ms (except as Retry-After asks, up to retryAfterCapMs). */
  capMs: number;
  /** A Retry-After longer than this is read as this: a hostile server cannot park the agent. */
  retryAfterCapMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: 1_000,
  capMs: 5 * 60_000,
  retryAfterCapMs: 60 * 60_000,
};

/** min(cap, base·2^attempt): the largest delay of the attempt-th retry (attempt from 0). */
export function backoffCeiling(policy: BackoffPolicy, attempt: number): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity past ~1023; min() still gives the cap.
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(n, 1024));
}

/**
 * The delay before the attempt-th retry, in ms: uniform in [0, ceiling] (full jitter), so a
 * fleet that lost its reconciler at once does not come back at once. With a Retry-After it
 * waits at least that long, plus up to 10% more so a herd told the same seconds spreads out.
 */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number,
  retryAfterMs?: number,
): number {
  const r = Math.min(Math.max(random(), 0), 1);
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0) {
    const floor = Math.min(retryAfterMs, policy.retryAfterCapMs);
    return Math.round(floor + r * floor * 0.1);
  }
  return Math.floor(r * backoffCeiling(policy, attempt));
}

/**
 * A Retry-After header (delay-seconds or an HTTP-date) as ms from `nowMs`; undefined when it is
 * absent or malformed (then plain backoff applies).
 */
export function parseRetryAfter(header: unknown, nowMs: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  if (text.length > 64 || !/^[A-Za-z]{3}, /.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * How long to wait after a 304 before the next check-in: check-ins start at most once per
 * pollAfter, so a long-poll that was held that long comes back at once, and one answered
 * early (a server shutting down answers every held poll) does not turn into a tight loop.
 * Up to 10% jitter spreads agents that were released together.
 */
export function pollDelay(pollAfterMs: number, elapsedMs: number, random: () => number): number {
  const remaining = Math.max(0, pollAfterMs - Math.max(0, elapsedMs));
  if (remaining === 0) return 0;
  return Math.round(remaining + Math.min(Math.max(random(), 0), 1) * remaining * 0.1);
}
