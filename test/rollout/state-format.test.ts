// The rollout state file (core/rollout/state.ts): the DESIGN §2 example parsed and written back,
// any valid state round-tripped, and what is wrong with a bad one said.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  initialRolloutState,
  parseRolloutState,
  revisionForWave,
  serializeRolloutState,
  type RolloutState,
} from '../../core/rollout/state.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

describe('rollout state (core/rollout)', () => {
  it('parses the DESIGN §2 example and serializes it back to the same state', () => {
    const text = `apiVersion: fleetwave.dev/v1
kind: RolloutState
stable: ${A}
candidate:
  revision: ${B}
  wave: 1
  waveStartedAt: 2026-11-27T10:00:00Z
rejected:
  - revision: ${C}
    at: 2026-11-27T09:12:00Z
    wave: 0
    reason: "canary: error rate 0.31 > 0.02 (48 agents)"
paused: false
`;
    const parsed = parseRolloutState(text);
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.equal(parsed.state.candidate?.wave, 1);
    assert.equal(parsed.state.rejected[0]?.reason, 'canary: error rate 0.31 > 0.02 (48 agents)');
    const again = parseRolloutState(serializeRolloutState(parsed.state));
    assert.deepEqual(again, parsed);
    assert.equal(revisionForWave(parsed.state, 0), B);
    assert.equal(revisionForWave(parsed.state, 1), B);
    assert.equal(revisionForWave(parsed.state, 2), A);
  });

  it('round-trips any valid state', () => {
    const sha = fc.stringMatching(/^[0-9a-f]{40}$/);
    const time = fc
      .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    fc.assert(
      fc.property(
        sha,
        fc.option(fc.record({ revision: sha, wave: fc.nat(20), waveStartedAt: time })),
        fc.boolean(),
        fc.array(fc.record({ revision: sha, at: time, wave: fc.nat(20), reason: fc.string() }), {
          maxLength: 3,
        }),
        (stable, candidate, paused, rejected) => {
          const state: RolloutState = {
            ...initialRolloutState(stable),
            paused,
            rejected: rejected.map((r) => ({ ...r })),
          };
          if (candidate) state.candidate = { ...candidate };
          const parsed = parseRolloutState(serializeRolloutState(state));
          const valid =
            !candidate ||
            (candidate.revision !== stable &&
              !rejected.some((r) => r.revision === candidate.revision));
          assert.equal(parsed.ok, valid);
          if (parsed.ok) assert.deepEqual(parsed.state, state);
        },
      ),
    );
  });

  it('says what is wrong with a bad state', () => {
    const cases: Array<[string, RegExp]> = [
      [
        `kind: RolloutState\napiVersion: fleetwave.dev/v1\nstable: main\n`,
        /stable: must be a full commit id/,
      ],
      [
        `kind: RolloutState\napiVersion: fleetwave.dev/v1\nstable: ${A}\nstabel: x\n`,
        /unknown key "stabel"/,
      ],
      [
        `kind: RolloutState\napiVersion: fleetwave.dev/v1\nstable: ${A}\ncandidate: {revision: ${A}, wave: 0, waveStartedAt: 2026-01-01T00:00:00Z}\n`,
        /cannot be the stable/,
      ],
      [
        `kind: RolloutState\napiVersion: fleetwave.dev/v1\nstable: ${A}\ncandidate: {revision: ${B}, wave: 0, waveStartedAt: yesterday}\n`,
        /RFC 3339/,
      ],
      [`stable: [`, /not valid YAML/],
    ];
    for (const [text, reason] of cases) {
      const parsed = parseRolloutState(text);
      assert.equal(parsed.ok, false, text);
      if (!parsed.ok) assert.match(parsed.errors.join('\n'), reason);
    }
  });
});
