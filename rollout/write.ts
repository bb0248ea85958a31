// The one writer of the remote (DESIGN §2): compare-and-swap through git's fast-forward check.
// Each try reads what a decision rests on (fetching first), decides, and pushes one commit whose
// parent is the tip it read, without force. A refused push means another writer moved the branch
// first: back off (full jitter, capped), read again, decide again from their state, up to one
// limit. Every write goes through here: the engine's evaluations, operator actions and revert
// pushes, and the promote action's decisions.

import { FleetwaveError, isFleetwaveError } from '../core/errors.ts';
import type { Mirror } from './mirror.ts';

/** Tries of one write before it gives up (each after reading again). */
export const MAX_WRITE_ATTEMPTS = 6;
/** The backoff after the nth refused push is random in [0, min(cap, base·2ⁿ)] ms. */
export const BACKOFF_BASE_MS = 50;
export const BACKOFF_CAP_MS = 2000;

/** Full jitter: writers that collided do not collide again in step. */
export function backoffMs(attempt: number, random: () => number): number {
  return Math.round(random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
}

/** What one try decided: `push`, a commit on the tip that was read, or nothing to push. */
export interface Plan<T> {
  value: T;
  push?: string;
}

export interface Written<B, T> {
  /** What the last try read. */
  base: B;
  value: T;
  /** The commit pushed; undefined when there was nothing to push. */
  commit?: string;
  /** Tries made (1 when the first push went through). */
  attempts: number;
}

export interface RetryOptions<B> {
  random?: () => number;
  /** MAX_WRITE_ATTEMPTS unless set. */
  attempts?: number;
  /** Called after each refused push, before the backoff. */
  onRefused?: (attempt: number, base: B) => void;
}

// Not unref'd: in a process with nothing else to do (the promote action) the backoff is the work.
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Writes `ref` of the mirror's remote: `read(attempt)` fetches and reads, `plan(base)` decides
 * (and makes the commit to push). Returns what the last try decided and pushed; throws
 * ROLLOUT_WRITE_FAILED when every try was refused, or when the remote did not take the push.
 */
export async function writeBranch<B, T>(
  mirror: Mirror,
  options: RetryOptions<B> & {
    ref: string;
    /** The branch, as the error names it: "the state branch". */
    what: string;
    read: (attempt: number) => Promise<B>;
    plan: (base: B) => Plan<T> | Promise<Plan<T>>;
  },
): Promise<Written<B, T>> {
  const attempts = options.attempts ?? MAX_WRITE_ATTEMPTS;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    const base = await options.read(attempt);
    const { value, push } = await options.plan(base);
    if (push === undefined) return { base, value, attempts: attempt };
    try {
      await mirror.repo.pushCommit(mirror.remote, push, options.ref);
    } catch (e) {
      if (isFleetwaveError(e, 'GIT_FETCH_FAILED')) {
        // The remote did not take the push (down, unreachable): git's words may name the remote,
        // so they stay in the cause (logged), not in the answer.
        throw new FleetwaveError(
          'ROLLOUT_WRITE_FAILED',
          `${options.what} (${options.ref}) could not be pushed: the remote did not answer; ` +
            'nothing was written',
          { cause: e },
        );
      }
      if (!isFleetwaveError(e, 'GIT_PUSH_REJECTED')) throw e;
      if (attempt >= attempts) {
        throw new FleetwaveError(
          'ROLLOUT_WRITE_FAILED',
          `${options.what} (${options.ref}) moved under each of ${attempts} writes: another ` +
            'writer kept winning the race; nothing was written',
          { cause: e },
        );
      }
      options.onRefused?.(attempt, base);
      await sleep(backoffMs(attempt, random));
      continue;
    }
    await mirror.repo.updateRef(options.ref, push);
    return { base, value, commit: push, attempts: attempt };
  }
}
