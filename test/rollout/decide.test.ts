// decide(): table tests for candidate selection and each decision, and properties of applying
// decisions (no double promotion, rejected revisions never return).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { selectCandidate, type BranchCommit } from '../../core/rollout/candidate.ts';
import {
  applyDecision,
  decide,
  describeDecision,
  type Decision,
  type RolloutPolicy,
} from '../../core/rollout/decide.ts';
import type { RolloutState } from '../../core/rollout/state.ts';
import { C, MIN, POLICY, S, T0, fleet, sha, snapshot, state } from './fixtures.ts';

const commit = (revision: string, over: Partial<BranchCommit> = {}): BranchCommit => ({
  revision,
  valid: true,
  contains: [],
  reverts: [],
  ...over,
});
const A = sha('1');
const B = sha('2');
const R = sha('3'); // rejected
const REVERT = sha('4');
const rejected = (revision: string) => ({
  revision,
  at: '2026-11-27T09:00:00Z',
  wave: 0,
  reason: 'canary: x',
});
const candidateAt = (revision: string, wave: number, minutesAgo: number) => ({
  revision,
  wave,
  waveStartedAt: new Date(T0 - minutesAgo * MIN).toISOString(),
});

describe('selectCandidate', () => {
  const table: Array<[string, BranchCommit[], Partial<RolloutState>, string | undefined]> = [
    ['the newest valid revision', [commit(B), commit(A), commit(S)], {}, B],
    ['skips an invalid tip', [commit(B, { valid: false }), commit(A), commit(S)], {}, A],
    ['nothing newer than stable', [commit(S), commit(A)], {}, undefined],
    [
      'a rejected revision never returns',
      [commit(R, { contains: [R] }), commit(S)],
      { rejected: [rejected(R)] },
      undefined,
    ],
    [
      'a descendant of a rejected revision waits for its revert',
      [commit(B, { contains: [R] }), commit(R, { contains: [R] }), commit(S)],
      { rejected: [rejected(R)] },
      undefined,
    ],
    [
      'the descendant qualifies once the revert is in its history',
      [
        commit(REVERT, { contains: [R], reverts: [R] }),
        commit(B, { contains: [R] }),
        commit(R, { contains: [R] }),
        commit(S),
      ],
      { rejected: [rejected(R)] },
      REVERT,
    ],
    [
      'an older good commit between stable and a rejected one may roll out',
      [commit(B, { contains: [R] }), commit(R, { contains: [R] }), commit(A), commit(S)],
      { rejected: [rejected(R)] },
      A,
    ],
  ];
  for (const [name, history, over, expect] of table) {
    it(name, () => assert.equal(selectCandidate(history, state(over)).revision, expect));
  }

  it('says why it passed over commits', () => {
    const s = selectCandidate(
      [commit(B, { contains: [R] }), commit(S)],
      state({ rejected: [rejected(R)] }),
    );
    assert.match(
      s.skipped[0]!.why,
      /descends from rejected .*waits until the revert is in its history/,
    );
  });
});

describe('decide', () => {
  const history = [commit(C), commit(S)];

  it('starts the newest valid revision when nothing rolls out', () => {
    assert.deepEqual(decide(POLICY, state(), { history }, T0), {
      kind: 'start',
      revision: C,
      skipped: [],
    });
  });

  it('a newer revision supersedes the candidate (from wave 0 again)', () => {
    const d = decide(
      POLICY,
      state({ candidate: candidateAt(C, 1, 5) }),
      { history: [commit(B), ...history] },
      T0,
    );
    assert.deepEqual(d, { kind: 'start', revision: B, supersedes: C, skipped: [] });
    const next = applyDecision(state({ candidate: candidateAt(C, 1, 5) }), d, T0);
    assert.deepEqual(next.candidate, {
      revision: B,
      wave: 0,
      waveStartedAt: new Date(T0).toISOString(),
    });
  });

  it('a paused rollout waits, even for a new revision', () => {
    const d = decide(
      POLICY,
      state({ paused: true, candidate: candidateAt(C, 0, 60) }),
      { history: [commit(B), ...history], fleet: fleet() },
      T0,
    );
    assert.deepEqual(d, { kind: 'wait', reason: 'the rollout is paused' });
  });

  it('waits with nothing to roll out, saying why', () => {
    const d = decide(POLICY, state({ rejected: [rejected(C)] }), { history }, T0);
    assert.equal(d.kind, 'wait');
    assert.match((d as { reason: string }).reason, /no candidate: .* rejected/);
  });

  it('waits while baking', () => {
    const d = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 5) }),
      { history, fleet: fleet() },
      T0,
    );
    assert.equal(d.kind, 'wait');
    assert.match((d as { reason: string }).reason, /^canary: baking: 5m of 15m/);
  });

  it('completes at once a candidate that changes no agent, even while baking, without observations', () => {
    const d = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 0) }),
      { history, sameTargets: true },
      T0,
    );
    assert.equal(d.kind, 'complete');
    assert.equal((d as { unchanged?: true }).unchanged, true);
    assert.match(describeDecision(d, POLICY), /is stable\n\nit gives every agent the same target/);
    const paused = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 0), paused: true }),
      { history, sameTargets: true },
      T0,
    );
    assert.equal(paused.kind, 'wait', 'a paused rollout still waits');
    const changed = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 0) }),
      { history, sameTargets: false, fleet: fleet() },
      T0,
    );
    assert.equal(changed.kind, 'wait', 'a change walks the waves');
  });

  it('waits without observations of this candidate at this wave', () => {
    const d = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 60) }),
      { history, fleet: fleet({ wave: 1 }) },
      T0,
    );
    assert.equal(d.kind, 'wait');
  });

  it('promotes to the next wave when every gate passes, with the evidence', () => {
    const d = decide(
      POLICY,
      state({ candidate: candidateAt(C, 0, 16) }),
      { history, fleet: fleet() },
      T0,
    );
    assert.equal(d.kind, 'promote');
    const p = d as Extract<Decision, { kind: 'promote' }>;
    assert.equal(p.wave, 1);
    assert.deepEqual(
      p.evidence.gates.map((g) => [g.gate, g.verdict]),
      [
        ['bake', 'pass'],
        ['minAgents', 'pass'],
        ['maxFailedRatio', 'pass'],
      ],
    );
    assert.match(
      describeDecision(d, POLICY),
      /^fleetwave: promote cccccccccccc to wave early\n\ngates of wave canary passed:\n\n- bake: pass/,
    );
  });

  it('rejects at once when a gate fails, even while baking', () => {
    const f = fleet({ candidate: snapshot({ agents: 50, applied: 48, failed: 15 }) });
    const d = decide(POLICY, state({ candidate: candidateAt(C, 0, 2) }), { history, fleet: f }, T0);
    assert.equal(d.kind, 'reject');
    const r = d as Extract<Decision, { kind: 'reject' }>;
    assert.equal(r.reason, 'canary: failed ratio 0.313 > 0.1 (48 agents)');
    const after = applyDecision(state({ candidate: candidateAt(C, 0, 2) }), d, T0);
    assert.equal(after.candidate, undefined);
    assert.deepEqual(
      after.rejected.map((x) => [x.revision, x.wave, x.reason]),
      [[C, 0, r.reason]],
    );
    // and it never returns
    assert.equal(decide(POLICY, after, { history }, T0 + MIN).kind, 'wait');
  });

  it('completes after the last wave; the candidate becomes stable', () => {
    const st = state({ candidate: candidateAt(C, 2, 61) });
    const d = decide(POLICY, st, { history, fleet: fleet({ wave: 2 }) }, T0);
    assert.equal(d.kind, 'complete');
    const after = applyDecision(st, d, T0);
    assert.equal(after.stable, C);
    assert.equal(after.candidate, undefined);
  });

  it('uses the policy it is given (the stable revision’s), not the candidate’s', () => {
    const strict: RolloutPolicy = {
      ...POLICY,
      waves: [{ ...POLICY.waves[0]!, bake: '2h' }, ...POLICY.waves.slice(1)],
    };
    const st = state({ candidate: candidateAt(C, 0, 16) });
    assert.equal(decide(POLICY, st, { history, fleet: fleet() }, T0).kind, 'promote');
    assert.equal(decide(strict, st, { history, fleet: fleet() }, T0).kind, 'wait');
  });

  it('asks for approval before a manual wave', () => {
    const manual: RolloutPolicy = {
      ...POLICY,
      waves: [POLICY.waves[0]!, { ...POLICY.waves[1]!, approval: 'manual' }, POLICY.waves[2]!],
    };
    const d = decide(
      manual,
      state({ candidate: candidateAt(C, 0, 16) }),
      { history, fleet: fleet() },
      T0,
    );
    assert.equal(d.kind, 'wait');
    assert.deepEqual((d as Extract<Decision, { kind: 'wait' }>).approval, { wave: 1 });
  });
});

describe('applying decisions (properties)', () => {
  const arbState = fc.record({
    wave: fc.integer({ min: 0, max: 2 }),
    minutesAgo: fc.integer({ min: 0, max: 200 }),
    applied: fc.integer({ min: 0, max: 50 }),
    failed: fc.integer({ min: 0, max: 50 }),
  });

  it('no double promotion: applying the same decision twice never skips a wave', () => {
    fc.assert(
      fc.property(
        arbState,
        fc.integer({ min: 0, max: 100 }),
        ({ wave, minutesAgo, applied, failed }, later) => {
          const st = state({ candidate: candidateAt(C, wave, minutesAgo) });
          const f = fleet({
            wave,
            candidate: snapshot({ agents: 50, applied, failed: Math.min(failed, applied) }),
          });
          const d = decide(POLICY, st, { history: [commit(C), commit(S)], fleet: f }, T0);
          const once = applyDecision(st, d, T0);
          const twice = applyDecision(once, d, T0 + later * 1000);
          assert.deepEqual(twice, once);
          if (once.candidate) assert.ok(once.candidate.wave <= wave + 1);
        },
      ),
    );
  });

  it('a rejected revision never becomes the candidate again, whatever the history', () => {
    const revs = [A, B, C, R, REVERT];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            revision: fc.constantFrom(...revs),
            valid: fc.boolean(),
            reverted: fc.boolean(),
          }),
          { maxLength: 6 },
        ),
        fc.subarray(revs),
        (rows, rejectedRevs) => {
          const history = [
            ...rows.map((r) =>
              commit(r.revision, {
                valid: r.valid,
                contains: rejectedRevs,
                reverts: r.reverted ? rejectedRevs : [],
              }),
            ),
            commit(S),
          ];
          const st = state({ rejected: rejectedRevs.map(rejected) });
          const d = decide(POLICY, st, { history }, T0);
          if (d.kind === 'start') assert.ok(!rejectedRevs.includes(d.revision));
          assert.equal(
            applyDecision(st, { kind: 'start', revision: rejectedRevs[0] ?? S, skipped: [] }, T0)
              .candidate,
            undefined,
          );
        },
      ),
    );
  });
});
