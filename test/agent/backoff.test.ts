// Backoff and pacing are pure: their bounds hold for every attempt, policy and random draw.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_BACKOFF,
  backoffCeiling,
  backoffDelay,
  parseRetryAfter,
  pollDelay,
} from '../../agent/backoff.ts';

const policy = fc.record({
  baseMs: fc.integer({ min: 1, max: 60_000 }),
  capMs: fc.integer({ min: 1, max: 3_600_000 }),
  retryAfterCapMs: fc.integer({ min: 1, max: 86_400_000 }),
});
const unit = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

describe('backoff', () => {
  it('always waits within [0, min(cap, base·2^n)]', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 0, max: 5000 }), unit, (p, n, r) => {
        const delay = backoffDelay(p, n, () => r);
        const ceiling = Math.min(p.capMs, p.baseMs * 2 ** n);
        assert.ok(delay >= 0 && delay <= ceiling, `${delay} within [0, ${ceiling}]`);
        assert.equal(backoffCeiling(p, n), ceiling);
      }),
    );
  });

  it('is full jitter: the whole range is reachable', () => {
    const p = { ...DEFAULT_BACKOFF, baseMs: 100, capMs: 10_000 };
    assert.equal(
      backoffDelay(p, 3, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(p, 3, () => 0.999999),
      799,
    );
    assert.equal(
      backoffDelay(p, 30, () => 0.999999),
      9999,
    );
  });

  it('never waits less than Retry-After (up to its cap), and at most 10% more', () => {
    fc.assert(
      fc.property(
        policy,
        fc.integer({ min: 0, max: 50 }),
        unit,
        fc.nat(10_000_000),
        (p, n, r, ra) => {
          const delay = backoffDelay(p, n, () => r, ra);
          const floor = Math.min(ra, p.retryAfterCapMs);
          assert.ok(
            delay >= floor && delay <= Math.ceil(floor * 1.1),
            `${delay} for Retry-After ${ra}`,
          );
        },
      ),
    );
  });

  it('reads Retry-After as seconds or an HTTP date, and ignores garbage', () => {
    const now = Date.parse('2026-11-27T10:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter(['12'], now), 12_000);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 10:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 09:00:00 GMT', now), 0);
    for (const bad of [undefined, '', '-1', '1.5', 'soon', 'x'.repeat(100), '99999999999'])
      assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  });

  it('paces check-ins: at most one per wait, at once after a full long-poll', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600_000 }),
        fc.nat(1_000_000),
        unit,
        (wait, elapsed, r) => {
          const d = pollDelay(wait, elapsed, () => r);
          if (elapsed >= wait) assert.equal(d, 0);
          else assert.ok(d >= wait - elapsed && d <= Math.ceil((wait - elapsed) * 1.1));
        },
      ),
    );
  });
});
