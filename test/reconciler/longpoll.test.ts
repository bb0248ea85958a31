// The long-poll registry (reconciler/longpoll.ts): chunked release, waiters whose client went
// away, capped and jittered waits, room for waiters.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LongPoll, WAIT_JITTER, type Waiter } from '../../reconciler/longpoll.ts';

describe('long-poll registry', () => {
  interface W extends Waiter {
    id: number;
    answer?: string;
  }
  it('releases every changed waiter in chunks, yielding between them', async () => {
    let turns = 0;
    const changedIds = new Set<number>();
    const poll = new LongPoll<W>({
      maxWaiters: 10_000,
      maxWaitSeconds: 60,
      now: () => 0,
      random: () => 0.5,
      chunk: 100,
      evaluate: (w) => {
        if (!changedIds.has(w.id)) return false;
        w.answer = 'target';
        return true;
      },
      expire: (w) => (w.answer = '304'),
    });
    const waiters: W[] = [];
    for (let i = 0; i < 1000; i++) {
      const w: W = { id: i, done: false, slot: 0 };
      waiters.push(w);
      poll.add(w, 30);
      if (i % 2 === 0) changedIds.add(i);
    }
    let over = 0;
    poll.changed(() => over++);
    // The first chunk ran synchronously; the rest wait for later turns of the event loop.
    assert.equal(waiters.filter((w) => w.answer).length, 50);
    assert.equal(over, 0);
    while (poll.pending > 0) {
      turns++;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(turns >= 9, `released over ${turns} turns`);
    assert.equal(over, 1, 'then runs once, when the pass is over');
    assert.equal(waiters.filter((w) => w.answer === 'target').length, 500);
    assert.equal(poll.size, 500);
    poll.drain();
    assert.equal(waiters.filter((w) => w.answer === '304').length, 500);
    assert.equal(poll.size, 0);
  });

  it('runs what waits for a pass once, also when a newer pass takes over', async () => {
    const poll = new LongPoll<W>({
      maxWaiters: 1000,
      maxWaitSeconds: 60,
      now: () => 0,
      random: () => 0.5,
      chunk: 10,
      evaluate: () => false,
      expire: () => {},
    });
    for (let i = 0; i < 100; i++) poll.add({ id: i, done: false, slot: 0 }, 30);
    const over: string[] = [];
    poll.changed(() => over.push('first'));
    poll.changed(() => over.push('second'));
    while (poll.pending > 0) await new Promise((r) => setImmediate(r));
    assert.deepEqual(over.sort(), ['first', 'second']);
    poll.drain();
  });

  it('forgets a waiter whose client went away: it is never answered', async () => {
    let clock = 0;
    const expired: number[] = [];
    const poll = new LongPoll<W>({
      maxWaiters: 10,
      maxWaitSeconds: 60,
      now: () => clock,
      random: () => 0,
      evaluate: () => true,
      expire: (w) => expired.push(w.id),
    });
    const gone: W = { id: 1, done: false, slot: 0 };
    const stays: W = { id: 2, done: false, slot: 0 };
    poll.add(gone, 1);
    poll.add(stays, 1);
    poll.remove(gone);
    assert.equal(poll.size, 1);
    assert.equal(gone.done, true);
    clock = 5000; // both slots are due at the next tick of the wheel (every second)
    for (let i = 0; i < 40 && expired.length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(expired, [2]);
    let over = false;
    poll.changed(() => (over = true)); // nothing left to evaluate: over at once
    assert.equal(over, true);
    assert.equal(poll.size, 0);
    poll.drain();
  });

  it('caps and jitters waits, and has no room past maxWaiters', () => {
    fc.assert(
      fc.property(
        fc.nat(100_000),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        fc.integer({ min: 1, max: 3600 }),
        (asked, r, max) => {
          const poll = new LongPoll<W>({
            maxWaiters: 1,
            maxWaitSeconds: max,
            now: () => 0,
            random: () => r,
            evaluate: () => false,
            expire: () => {},
          });
          const granted = poll.grantedWait(asked);
          assert.ok(
            granted >= 1 && granted <= Math.max(1, Math.min(asked, max)),
            `${asked} ${max} -> ${granted}`,
          );
          if (Math.min(asked, max) > 1)
            assert.ok(granted >= Math.floor(Math.min(asked, max) * (1 - WAIT_JITTER)));
          const retry = poll.retryAfterSeconds();
          assert.ok(retry >= 1 && Number.isInteger(retry));
        },
      ),
    );
    const poll = new LongPoll<W>({
      maxWaiters: 1,
      maxWaitSeconds: 60,
      now: () => 0,
      random: () => 0,
      evaluate: () => false,
      expire: () => {},
    });
    assert.equal(poll.hasRoom(), true);
    poll.add({ id: 1, done: false, slot: 0 }, 5);
    assert.equal(poll.hasRoom(), false);
    poll.drain();
  });
});
