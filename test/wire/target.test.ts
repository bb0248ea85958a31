// The agent checks a served target by hand (agent/target.ts: its etag is recomputed, its
// URLs must be http(s)); what it accepts is always a Target of the wire schema, and every
// target the core renders passes both.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkTarget } from '../../agent/target.ts';
import { etagOf } from '../../core/target/etag.ts';
import { compileWire, wireAjv } from '../../wire/schema.ts';
import { TARGET_SCHEMA } from '../../wire/target.ts';
import { makeTarget } from '../agent/fixtures/targets.ts';

const valid = compileWire(wireAjv(), TARGET_SCHEMA);

/** Mostly what a reconciler serves, sometimes anything: each field is odd one time in ten. */
const mostly = <T, U>(good: fc.Arbitrary<T>, odd: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 9 }, { arbitrary: odd, weight: 1 });

/** A target whose etag is right for its content, which may be broken in any field. */
const candidate = fc
  .record({
    version: mostly(fc.string({ minLength: 1 }), fc.constant('')),
    url: mostly(fc.webUrl(), fc.oneof(fc.constant('ftp://x/y'), fc.string())),
    sha256: mostly(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string()),
    signature: fc.option(
      fc.record({
        url: mostly(fc.webUrl(), fc.string()),
        keyRef: mostly(fc.string({ minLength: 1 }), fc.constant('')),
      }),
      { nil: undefined },
    ),
    config: fc.dictionary(fc.string(), fc.jsonValue()),
    pollAfterSeconds: mostly(
      fc.integer({ min: 1, max: 86_400 }),
      fc.oneof(fc.integer(), fc.double()),
    ),
    revision: mostly(fc.string({ minLength: 1 }), fc.constant('')),
    wave: mostly(fc.string({ minLength: 1 }), fc.constant('')),
  })
  .map((t) => {
    const content = {
      version: t.version,
      artifact: {
        url: t.url,
        sha256: t.sha256,
        ...(t.signature === undefined ? {} : { signature: t.signature }),
      },
      config: t.config,
      pollAfterSeconds: t.pollAfterSeconds,
    };
    return { ...content, etag: etagOf(content as never), revision: t.revision, wave: t.wave };
  });

describe('targets on the wire', () => {
  it('the agent accepts only what the wire schema accepts', () => {
    let accepted = 0;
    fc.assert(
      fc.property(candidate, (target) => {
        const body = JSON.parse(JSON.stringify(target)) as unknown;
        const checked = checkTarget(body);
        if (!checked.ok) return;
        accepted++;
        assert.ok(valid(checked.target), JSON.stringify(valid.errors));
      }),
      { numRuns: 2000 },
    );
    // The property rests on many accepted targets, not a vacuous few.
    assert.ok(accepted > 200, `${accepted} accepted`);
  });

  it('both accept a well-formed target, and the schema refuses a broken one', () => {
    const target = JSON.parse(JSON.stringify(makeTarget('wire'))) as Record<string, unknown>;
    assert.ok(checkTarget(target).ok);
    assert.ok(valid(target));
    assert.equal(valid({ ...target, wave: 1 }), false);
    assert.equal(valid({ ...target, etag: 'nope' }), false);
    assert.equal(valid({ ...target, extra: true }), false);
  });
});
