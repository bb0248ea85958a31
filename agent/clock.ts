// Time as the agent and the simulator see it, injectable so tests and the fast simulation
// need not wait for real seconds.

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/**
 * A clock whose sleeps take no real time: each only yields to the event loop (setImmediate),
 * so thousands of loops stay fair and I/O still runs; `now` moves when the caller advances it.
 * For fast simulations and tests; a real server still holds long-polls in real time.
 */
export function virtualClock(start = Date.now()): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += Math.max(0, ms);
    },
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        void ms;
        setImmediate(resolve);
      }),
  };
}
