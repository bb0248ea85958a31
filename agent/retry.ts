// What the agent does after a failed exchange with the reconciler, decided by the kind of the
// failure (core/errors.ts): `transient` backs off with full jitter, exponentially from short
// (a reset, a 5xx: it passes); `waiting` waits as long as the server asked (Retry-After) or, when
// it did not say, one poll interval (too many waiters, not ready yet); `stalled` needs a person
// (a wrong enrollment token, labels no target can be rendered for): retrying soon changes
// nothing, so it is retried only at a long, fixed interval, and says what to fix. Pure: the
// randomness is passed in. Shared by the reference agent and the simulator.

import type { ErrorKind } from '../core/errors.ts';
import { DEFAULT_BACKOFF, backoffDelay, pollDelay, type BackoffPolicy } from './backoff.ts';
import type { AgentError } from './errors.ts';

export interface RetryPolicy extends BackoffPolicy {
  /** The interval of retries after a refusal (stalled), in ms; up to 10% is added as jitter. */
  stalledMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { ...DEFAULT_BACKOFF, stalledMs: 5 * 60_000 };

export interface Failure {
  kind: ErrorKind;
  /** What the server asked (Retry-After), in ms. */
  retryAfterMs?: number | undefined;
}

/** When to try again and why: the decision, carried out by the agent's loop. */
export type Retry =
  | { kind: 'backoff'; delayMs: number }
  | { kind: 'wait'; delayMs: number; asked: boolean }
  | { kind: 'stalled'; delayMs: number };

/**
 * The retry after a failure. `attempt` counts the failures in a row before this one (backoff
 * grows with it); `pollAfterMs` is the pace check-ins keep (a waiting failure without
 * Retry-After waits that long).
 */
export function retryAfter(
  policy: RetryPolicy,
  failure: Failure,
  attempt: number,
  pollAfterMs: number,
  random: () => number,
): Retry {
  switch (failure.kind) {
    case 'transient':
      // A Retry-After on a passing failure is a floor, as everywhere.
      return {
        kind: 'backoff',
        delayMs: backoffDelay(policy, attempt, random, failure.retryAfterMs),
      };
    case 'waiting':
      return failure.retryAfterMs === undefined
        ? { kind: 'wait', delayMs: pollDelay(pollAfterMs, 0, random), asked: false }
        : {
            kind: 'wait',
            delayMs: backoffDelay(policy, attempt, random, failure.retryAfterMs),
            asked: true,
          };
    case 'stalled':
      // Jittered too: a fleet refused at once (a rotated enrollment token) must not come back
      // in step once it is fixed.
      return { kind: 'stalled', delayMs: pollDelay(policy.stalledMs, 0, random) };
  }
}

/**
 * The kind a failed exchange counts as. A 401 to a check-in means the server no longer knows
 * the credential (its key changed): enrolling again is the fix, at once, so it passes as
 * transient; a refused enrollment is stalled.
 */
export function failureOf(error: AgentError, hadCredential: boolean): Failure {
  if (error.status === 401 && hadCredential) return { kind: 'transient' };
  return { kind: error.kind, retryAfterMs: error.retryAfterMs };
}

/** What a person must fix after a refusal, by its HTTP status: for the log line. */
export function refusalHint(status: number | undefined): string {
  switch (status) {
    case 401:
      return 'check the enrollment token (--enroll-token, FLEETWAVE_ENROLL_TOKEN)';
    case 403:
      return 'the credential is not for this agent id';
    case 422:
      return 'give the agent the labels the message names, or add an artifact for its os/arch to the release';
    case 400:
    case 413:
      return "fix the agent's id, labels or health report as the message says";
    default:
      return 'see the message';
  }
}
