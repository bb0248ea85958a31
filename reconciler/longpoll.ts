// The long-poll waiter registry. Held check-ins are plain records in a Set plus a timer wheel
// of one-second slots driven by one shared interval: no timer and no closure per waiter. A
// change re-evaluates every waiter in chunks yielded with setImmediate, so releasing tens of
// thousands never stalls the event loop; waits are capped and jittered so reconnects spread
// out, and past `maxWaiters` a check-in that would wait is told to come back later (429).

export interface Waiter {
  /** Set once the waiter was answered or its client went away. */
  done: boolean;
  /** The wheel slot (whole seconds of the clock) at which it times out. */
  slot: number;
}

export interface LongPollOptions<W extends Waiter> {
  maxWaiters: number;
  maxWaitSeconds: number;
  now: () => number;
  random: () => number;
  /** Answers the waiter if its target changed; returns whether it did. */
  evaluate: (waiter: W) => boolean;
  /** Answers a waiter whose wait ended (a 304); also used when draining. */
  expire: (waiter: W) => void;
  /** Waiters released per event-loop turn. */
  chunk?: number;
}

/** Share of the wait taken off at random, so a fleet that connected together spreads out. */
export const WAIT_JITTER = 0.2;

export class LongPoll<W extends Waiter> {
  private readonly waiters = new Set<W>();
  private readonly wheel = new Map<number, W[]>();
  private readonly options: Required<LongPollOptions<W>>;
  private timer: NodeJS.Timeout | undefined;
  private lastSlot: number;
  /** Bumped by every change; a release pass stops when a newer one has started. */
  private generation = 0;
  private releasing = 0;
  /** Called once no release pass is in progress (idle()). */
  private idlers: (() => void)[] = [];

  constructor(options: LongPollOptions<W>) {
    this.options = { chunk: 1000, ...options };
    this.lastSlot = this.slotOf(this.options.now());
  }

  get size(): number {
    return this.waiters.size;
  }

  /** Release passes in progress (for tests and status). */
  get pending(): number {
    return this.releasing;
  }

  /** The wait actually granted for a requested one: capped, jittered, at least one second. */
  grantedWait(requestedSeconds: number): number {
    const capped = Math.min(requestedSeconds, this.options.maxWaitSeconds);
    if (capped <= 1) return Math.max(1, capped);
    return Math.max(1, Math.round(capped * (1 - WAIT_JITTER * this.options.random())));
  }

  /** Seconds a refused check-in should wait before trying again. */
  retryAfterSeconds(): number {
    const base = Math.min(30, this.options.maxWaitSeconds);
    return Math.max(1, Math.round(base * (0.5 + this.options.random())));
  }

  /** Whether one more waiter fits. */
  hasRoom(): boolean {
    return this.waiters.size < this.options.maxWaiters;
  }

  /** Holds `waiter` for `seconds`; its transport calls remove() when the client goes away. */
  add(waiter: W, seconds: number): void {
    waiter.slot = this.slotOf(this.options.now()) + seconds;
    this.waiters.add(waiter);
    const slot = this.wheel.get(waiter.slot);
    if (slot) slot.push(waiter);
    else this.wheel.set(waiter.slot, [waiter]);
    if (!this.timer) {
      this.lastSlot = this.slotOf(this.options.now());
      this.timer = setInterval(() => this.tick(), 1000).unref();
    }
  }

  /** Forgets a waiter (answered elsewhere, or its client left). */
  remove(waiter: W | Waiter): void {
    waiter.done = true;
    this.waiters.delete(waiter as W);
  }

  /**
   * The targets may have changed: re-evaluate every waiter, a chunk per event-loop turn;
   * `then` runs once the pass is over (every waiter evaluated, or a newer pass took over), so
   * work that can wait does not slow the release down.
   */
  changed(then?: () => void): void {
    const generation = ++this.generation;
    if (this.waiters.size === 0) {
      then?.();
      return;
    }
    const batch = [...this.waiters];
    this.releasing++;
    const over = (): void => {
      this.releasing--;
      then?.();
      if (this.releasing === 0) for (const idler of this.idlers.splice(0)) idler();
    };
    const step = (from: number): void => {
      if (generation !== this.generation) {
        over();
        return; // a newer pass covers every waiter
      }
      const end = Math.min(batch.length, from + this.options.chunk);
      for (let i = from; i < end; i++) {
        const waiter = batch[i]!;
        if (waiter.done) continue;
        if (this.options.evaluate(waiter)) this.remove(waiter);
      }
      if (end < batch.length) setImmediate(step, end);
      else over();
    };
    step(0);
  }

  /** Settles once no release pass is in progress: at once when none is. */
  idle(): Promise<void> {
    if (this.releasing === 0) return Promise.resolve();
    return new Promise((resolve) => this.idlers.push(resolve));
  }

  /** Answers every waiter now (shutdown): they come back to another replica or later. */
  drain(): void {
    this.generation++;
    for (const waiter of [...this.waiters]) {
      this.remove(waiter);
      this.options.expire(waiter);
    }
    this.wheel.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private slotOf(ms: number): number {
    return Math.floor(ms / 1000);
  }

  /** Expires every slot up to now; large slots are answered in chunks too. */
  private tick(): void {
    const now = this.slotOf(this.options.now());
    const due: W[][] = [];
    if (now - this.lastSlot <= 3600) {
      for (let s = this.lastSlot; s <= now; s++) {
        const slot = this.wheel.get(s);
        if (slot) {
          due.push(slot);
          this.wheel.delete(s);
        }
      }
    } else {
      // The clock jumped far ahead: sweep the wheel rather than walk every second.
      for (const [s, slot] of this.wheel) {
        if (s <= now) {
          due.push(slot);
          this.wheel.delete(s);
        }
      }
    }
    this.lastSlot = now + 1;
    const expired = due.flat();
    const step = (from: number): void => {
      const end = Math.min(expired.length, from + this.options.chunk);
      for (let i = from; i < end; i++) {
        const waiter = expired[i]!;
        if (waiter.done) continue;
        this.remove(waiter);
        this.options.expire(waiter);
      }
      if (end < expired.length) setImmediate(step, end);
    };
    if (expired.length > 0) step(0);
    if (this.waiters.size === 0 && this.wheel.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
