// Pure parts of the reconciler: the rollout state format, agent credentials, the long-poll
// registry (chunked release, capped and jittered waits, room for waiters).

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
import {
  deriveTokenKey,
  issueAgentToken,
  secretEquals,
  verifyAgentToken,
  verifyGithubSignature,
} from '../../reconciler/auth.ts';
import { Registry } from 'prom-client';
import { SqliteStore } from '../../reconciler/store/sqlite.ts';
import type { AgentRow } from '../../reconciler/store/store.ts';
import { readServeConfig } from '../../reconciler/config.ts';
import { LongPoll, WAIT_JITTER, type Waiter } from '../../reconciler/longpoll.ts';
import { Metrics } from '../../reconciler/metrics.ts';

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

describe('agent credentials', () => {
  const key = deriveTokenKey({ enrollToken: 'enroll-token-0123456789' });

  it('verifies its own tokens and names the agent', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,60}$/), (id) => {
        assert.equal(verifyAgentToken(key, issueAgentToken(key, id)), id);
      }),
    );
  });

  it('rejects tokens of another key, another id, or any altered character', () => {
    const token = issueAgentToken(key, 'agent-1');
    const other = deriveTokenKey({ enrollToken: 'another-token-0123456789' });
    assert.equal(verifyAgentToken(other, token), undefined);
    assert.equal(
      verifyAgentToken(
        deriveTokenKey({
          tokenSecret: 'secret-0123456789abcdef',
          enrollToken: 'enroll-token-0123456789',
        }),
        token,
      ),
      undefined,
    );
    for (let i = 0; i < token.length; i++) {
      const c = token[i] === 'A' ? 'B' : 'A';
      const altered = token.slice(0, i) + c + token.slice(i + 1);
      if (altered === token) continue;
      // Canonical tokens only: any altered character is another string, never the same token.
      assert.equal(verifyAgentToken(key, altered), undefined, `altered at ${i}: ${altered}`);
    }
    assert.equal(verifyAgentToken(key, ''), undefined);
    assert.equal(verifyAgentToken(key, 'v1..'), undefined);
  });

  it('accepts only the canonical spelling: no padding, no +/ alphabet, no stray bits', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,60}$/), (id) => {
        const token = issueAgentToken(key, id);
        const [prefix, idPart, macPart] = token.split('.') as [string, string, string];
        const variants = [
          `${token}=`,
          `${prefix}.${idPart}=.${macPart}`,
          token.replace(/-/g, '+').replace(/_/g, '/'),
        ];
        // The last character of a 32-byte MAC in base64url carries 2 unused bits: flip them.
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const last = alphabet.indexOf(macPart.at(-1)!);
        for (const bits of [1, 2, 3]) {
          variants.push(`${prefix}.${idPart}.${macPart.slice(0, -1)}${alphabet[last ^ bits]}`);
        }
        for (const v of variants) {
          if (v === token) continue;
          assert.equal(verifyAgentToken(key, v), undefined, v);
        }
      }),
    );
  });

  it('derives the same key from the same enrollment token (replicas agree)', () => {
    const again = deriveTokenKey({ enrollToken: 'enroll-token-0123456789' });
    assert.equal(verifyAgentToken(again, issueAgentToken(key, 'agent-1')), 'agent-1');
  });

  it('compares secrets and webhook signatures exactly', () => {
    assert.equal(secretEquals('abc', 'abc'), true);
    assert.equal(secretEquals('abc', 'abd'), false);
    assert.equal(secretEquals('abc', 'abcd'), false);
    const body = Buffer.from('{}');
    assert.equal(verifyGithubSignature('s', body, 'sha256=' + '0'.repeat(64)), false);
    assert.equal(verifyGithubSignature('s', body, undefined), false);
  });
});

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
    poll.changed();
    // The first chunk ran synchronously; the rest wait for later turns of the event loop.
    assert.equal(waiters.filter((w) => w.answer).length, 50);
    while (poll.pending > 0) {
      turns++;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(turns >= 9, `released over ${turns} turns`);
    assert.equal(waiters.filter((w) => w.answer === 'target').length, 500);
    assert.equal(poll.size, 500);
    poll.drain();
    assert.equal(waiters.filter((w) => w.answer === '304').length, 500);
    assert.equal(poll.size, 0);
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
    poll.changed(); // nothing left to evaluate
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

describe('--metric-labels', () => {
  const base = ['--repo', '/tmp/fleet', '--insecure-local-demo'];

  it('reads distinct label keys, region by default', () => {
    assert.deepEqual(readServeConfig(base, {}, '/')!.metricLabels, ['region']);
    assert.deepEqual(
      readServeConfig([...base, '--metric-labels', 'region, os,region,team'], {}, '/')!
        .metricLabels,
      ['region', 'os', 'team'],
    );
    assert.deepEqual(readServeConfig([...base, '--metric-labels', ''], {}, '/')!.metricLabels, []);
  });

  it('refuses keys that are not label keys, and more than eight', () => {
    assert.throws(
      () => readServeConfig([...base, '--metric-labels', 'region,bad key!'], {}, '/'),
      /--metric-labels: .*label key/,
    );
    const nine = Array.from({ length: 9 }, (_, i) => `k${i}`).join(',');
    assert.throws(
      () => readServeConfig([...base, '--metric-labels', nine], {}, '/'),
      /at most 8 labels, not 9/,
    );
  });

  it('breaks agents down by each configured label, the rest of its values as other', async () => {
    const registry = new Registry();
    const store = SqliteStore.open(':memory:');
    const row = (
      id: string,
      labels: Record<string, string>,
      status: 'failed' | null,
    ): AgentRow => ({
      id,
      labels,
      wave: 0,
      waveName: 'canary',
      revision: null,
      etag: null,
      version: null,
      status,
      message: null,
      errors: 0,
      requests: 0,
      failedRevision: null,
      health: null,
      firstSeen: 0,
      lastSeen: 0,
      replica: 'r',
    });
    // Its missing region counts as the value "none", named before the other values of one agent.
    await store.upsert([
      row('w', { os: 'windows' }, 'failed'),
      ...Array.from({ length: 70 }, (_, i) => row(`a${i}`, { region: `r${i}`, os: 'linux' }, null)),
    ]);
    new Metrics(registry, {
      counts: async () => ({ rows: [], waves: [] }),
      labelCounts: (label) => store.labelCounts(label),
      waiters: () => 0,
      shortRevision: (r) => r,
      breakdownLabels: ['os', 'region'],
    });
    const text = await registry.getSingleMetricAsString('fleetwave_agents_by_label');
    assert.match(
      text,
      /^fleetwave_agents_by_label\{label="os",value="linux",health="unknown"\} 70$/m,
    );
    assert.match(
      text,
      /^fleetwave_agents_by_label\{label="os",value="windows",health="failed"\} 1$/m,
    );
    assert.match(
      text,
      /^fleetwave_agents_by_label\{label="region",value="none",health="failed"\} 1$/m,
    );
    // 64 values at most: "none" and 63 regions, then "other" for the rest.
    assert.match(
      text,
      /^fleetwave_agents_by_label\{label="region",value="other",health="unknown"\} 7$/m,
    );
    assert.equal(text.match(/label="region"/g)?.length, 65);
  });
});
