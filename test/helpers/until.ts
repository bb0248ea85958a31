// Waiting on real parts (a server, a child process, Prometheus) for something to happen, bounded,
// and saying on timeout what was awaited and what the parts looked like then.

export interface UntilOptions {
  /** How long to wait in all: a guard against hanging, generous on a loaded machine. Default 60 s. */
  timeoutMs?: number;
  /** The pause between two checks. Default 10 ms. */
  intervalMs?: number;
  /** What to add to the failure: logs, the state at the time. Called once, on failure only. */
  diagnose?: () => string | Promise<string>;
  /** A reason to stop waiting at once (a process that exited), or undefined to go on. */
  stopIf?: () => string | undefined;
}

/**
 * Calls `check` until it returns something other than false, undefined or null, and returns that.
 * A check that throws counts as not yet (a server not listening yet, a branch not written yet);
 * when the last check threw, its error is in the failure's message.
 */
export async function until<T>(
  check: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  what: string,
  options: UntilOptions = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 10, diagnose, stopIf } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let stopped: string | undefined;
  for (;;) {
    try {
      const value = await check();
      if (value !== false && value !== undefined && value !== null) return value;
      last = undefined;
    } catch (e) {
      last = e;
    }
    stopped = stopIf?.();
    if (stopped !== undefined || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const why = stopped ?? `gave up after ${timeoutMs} ms`;
  let message = `${why} waiting until ${what}`;
  if (last !== undefined)
    message += `\nlast error: ${last instanceof Error ? last.message : String(last)}`;
  if (diagnose) {
    try {
      message += `\n${await diagnose()}`;
    } catch (e) {
      message += `\n(diagnose failed: ${String(e)})`;
    }
  }
  throw new Error(message);
}
