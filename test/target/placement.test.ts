import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Wave } from '../../core/fleet/model.ts';
import { matches } from '../../core/fleet/selector.ts';
import { validateFleet } from '../../core/fleet/validate.ts';
import { TargetCache } from '../../core/target/cache.ts';
import {
  BUCKETS,
  assertPlaceable,
  bucketOf,
  place,
  waveIndex,
  waveThreshold,
} from '../../core/target/placement.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { EVERYONE, agentArb, fleetArb, fleetModel, labelsArb, wavesArb } from './fleets.ts';
import { syntheticAgents } from '../../simulate/labels.ts';

const exampleModel = async () => {
  const model = validateFleet(await readFleetDirectory('fleet', { cwd: REPO_ROOT })).model;
  assert.ok(model, 'the example fleet validates');
  return model;
};

describe('bucketOf', () => {
  // Computed outside Node: printf 'acme-metrics\0web-iad1-13' | sha256sum → 172990cb…;
  // 0x172990cb mod 10000 = 11. These must never change: they are every fleet's waves.
  for (const [salt, id, bucket] of [
    ['acme-metrics', 'web-iad1-13', 11],
    ['acme-metrics', 'build-ams1-02', 16],
    ['acme-metrics', 'web-fra1-03', 231],
  ] as const) {
    it(`puts ${id} of ${salt} in bucket ${bucket}`, () => {
      assert.equal(bucketOf(salt, id), bucket);
    });
  }

  it('is the documented formula: uint32be(sha256(salt \\0 id)[0..4]) mod 10000', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ unit: 'grapheme' }), (salt, id) => {
        const digest = createHash('sha256')
          .update(Buffer.from(`${salt}\u0000${id}`, 'utf8'))
          .digest();
        const expected = digest.readUInt32BE(0) % 10000;
        const bucket = bucketOf(salt, id);
        return bucket === expected && Number.isInteger(bucket) && bucket >= 0 && bucket < BUCKETS;
      }),
    );
  });

  it('depends on the salt: another salt reshuffles the buckets', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `host-${i}`);
    const moved = ids.filter((id) => bucketOf('fleet-a', id) !== bucketOf('fleet-b', id));
    assert.ok(moved.length > 190, `only ${moved.length} of 200 buckets changed`);
  });

  it('spreads ids uniformly over the buckets (chi-square over 100 bins)', () => {
    const bins = new Array<number>(100).fill(0);
    const n = 100_000;
    for (const a of syntheticAgents(n, 7))
      bins[Math.floor(bucketOf('acme-metrics', a.id) / 100)]!++;
    const expected = n / 100;
    const chi2 = bins.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    // 99 degrees of freedom: P(chi2 > 148.2) = 0.001 for a uniform hash.
    assert.ok(chi2 < 148.2, `chi-square ${chi2.toFixed(1)} says the buckets are not uniform`);
  });
});

describe('waveThreshold', () => {
  for (const [percent, threshold] of [
    [0, 0],
    [5, 500],
    [100, 10_000],
    [12.5, 1250],
    [0.07, 7], // 0.07 × 100 = 7.000000000000001 in floating point: still 7 buckets
    [0.29, 29], // 28.999999999999996
    [0.005, 1], // half a bucket admits bucket 0, as bucket < 0.5 does
    [33.333, 3334],
  ] as const) {
    it(`${percent}% admits buckets below ${threshold}`, () => {
      assert.equal(waveThreshold(percent), threshold);
    });
  }

  it('never decreases as the percent rises', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (a, b) =>
          a <= b ? waveThreshold(a) <= waveThreshold(b) : waveThreshold(a) >= waveThreshold(b),
      ),
    );
  });
});

describe('waveIndex', () => {
  const waves: Wave[] = [
    { name: 'canary', selector: { matchLabels: { env: 'internal' } }, percent: 5, bake: '1h' },
    {
      name: 'early',
      selector: { matchExpressions: [{ key: 'region', operator: 'In', values: ['eu'] }] },
      percent: 10,
      bake: '1h',
    },
    { name: 'half', percent: 50, bake: '1h' },
    EVERYONE,
  ];
  const table: Array<[string, number, Record<string, string>, string]> = [
    ['internal, low bucket', 499, { env: 'internal' }, 'canary'],
    ['internal, at the canary threshold', 500, { env: 'internal' }, 'half'],
    ['prod, low bucket: canary does not select it', 100, { env: 'prod' }, 'half'],
    ['internal in eu, bucket 700', 700, { env: 'internal', region: 'eu' }, 'early'],
    ['eu, bucket 999', 999, { region: 'eu' }, 'early'],
    ['eu, bucket 1000', 1000, { region: 'eu' }, 'half'],
    ['anyone, bucket 4999', 4999, {}, 'half'],
    ['anyone, bucket 5000', 5000, {}, 'everyone'],
    ['anyone, bucket 9999', 9999, { env: 'internal', region: 'eu' }, 'everyone'],
  ];
  for (const [name, bucket, labels, wave] of table) {
    it(`${name} → ${wave}`, () => {
      assert.equal(waves[waveIndex(waves, bucket, labels)]!.name, wave);
    });
  }

  it('is -1 when no wave admits the agent, and such a fleet is refused', () => {
    assert.equal(waveIndex([{ ...EVERYONE, percent: 50 }], 7000, {}), -1);
    assert.throws(
      () => assertPlaceable(fleetModel({ waves: [{ name: 'half', percent: 50 }] })),
      /last wave must select every agent/,
    );
    assert.throws(
      () => new TargetCache(fleetModel({ waves: [{ name: 'half', percent: 50 }] }), 'r'),
      (e: Error & { code?: string }) => e.code === 'FLEET_INVALID',
    );
  });
});

describe('placement on the example fleet', () => {
  it('places the example inventory as its comments say', async () => {
    const model = await exampleModel();
    const table: Array<[string, Record<string, string>, string]> = [
      ['build-dub1-01', { env: 'internal', region: 'eu-west-1' }, 'canary'],
      ['build-iad1-01', { env: 'internal', region: 'us-east-1' }, 'everyone'],
      ['web-dub1-07', { env: 'prod', region: 'eu-west-1' }, 'early'],
      ['web-fra1-10', { env: 'prod', region: 'eu-central-1' }, 'europe'],
      ['web-fra1-21', { env: 'staging', region: 'eu-central-1' }, 'europe'],
      ['web-iad1-01', { env: 'prod', region: 'us-east-1' }, 'everyone'],
    ];
    for (const [id, labels, wave] of table) {
      assert.equal(place(model, { id, labels }).wave, wave, id);
    }
  });

  it('matches the percentages within sampling error on 100,000 agents', async () => {
    const model = await exampleModel();
    const waves = model.fleet.spec.waves;
    const agents = syntheticAgents(100_000);
    // The expected share of each wave for one agent: its buckets are those below the wave's
    // threshold and not already taken by an earlier wave that selects the agent.
    const expected = new Array<number>(waves.length).fill(0);
    const variance = new Array<number>(waves.length).fill(0);
    const observed = new Array<number>(waves.length).fill(0);
    const cache = new TargetCache(model, 'r');
    for (const agent of agents) {
      let taken = 0;
      waves.forEach((wave, i) => {
        if (!matches(wave.selector, agent.labels)) return;
        const t = waveThreshold(wave.percent);
        const p = Math.max(0, t - taken) / BUCKETS;
        taken = Math.max(taken, t);
        expected[i]! += p;
        variance[i]! += p * (1 - p);
      });
      observed[cache.place(agent).index]!++;
    }
    waves.forEach((wave, i) => {
      const sd = Math.sqrt(variance[i]!);
      const z = (observed[i]! - expected[i]!) / sd;
      assert.ok(
        Math.abs(z) < 4,
        `${wave.name}: ${observed[i]} agents, expected ${expected[i]!.toFixed(0)} ± ${sd.toFixed(1)} (z = ${z.toFixed(2)})`,
      );
    });
    // Each wave's share of the agents its selector picks, where no earlier wave competes.
    const internal = agents.filter((a) => a.labels['env'] === 'internal');
    const canary = internal.filter((a) => cache.place(a).wave === 'canary').length;
    const share = canary / internal.length;
    const se = Math.sqrt((0.05 * 0.95) / internal.length);
    assert.ok(
      Math.abs(share - 0.05) < 4 * se,
      `canary holds ${(share * 100).toFixed(2)}% of internal`,
    );
  });
});

describe('placement properties', () => {
  it('is sticky: the same agent lands in the same wave every time, whoever computes it', () => {
    fc.assert(
      fc.property(fleetArb, agentArb, (model, agent) => {
        const first = place(model, agent);
        // A copy of the labels in another key order, and two independent caches.
        const shuffled = {
          id: `${agent.id}`,
          labels: Object.fromEntries(Object.entries(agent.labels).reverse()),
        };
        const again = [
          place(model, shuffled),
          new TargetCache(model, 'a').place(agent),
          new TargetCache(model, 'b').place(shuffled),
        ];
        return again.every(
          (p) => p.wave === first.wave && p.bucket === first.bucket && p.index === first.index,
        );
      }),
    );
  });

  it('is monotone: raising a percentage moves agents only into that wave, never later', () => {
    fc.assert(
      fc.property(
        wavesArb,
        fc.nat(),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.array(fc.record({ id: fc.string({ minLength: 1 }), labels: labelsArb }), {
          minLength: 1,
          maxLength: 30,
        }),
        (waves, pick, raiseTo, agents) => {
          const i = pick % waves.length;
          const before = fleetModel({ waves });
          const raised = waves.map((w, j) =>
            j === i ? { ...w, percent: Math.max(w.percent, raiseTo) } : w,
          );
          const after = fleetModel({ waves: raised });
          for (const agent of agents) {
            const a = place(before, agent).index;
            const b = place(after, agent).index;
            // Either it stays, or it moved earlier, into the raised wave.
            if (!(b === a || (b === i && i < a))) return false;
          }
          return true;
        },
      ),
    );
  });

  it('raising a percentage only adds agents to that wave (100,000 agents, example fleet)', async () => {
    const model = await exampleModel();
    const agents = syntheticAgents(100_000, 3);
    const members = (percent: number) => {
      const waves = model.fleet.spec.waves.map((w) =>
        w.name === 'europe' ? { ...w, percent } : w,
      );
      const m = { ...model, fleet: { ...model.fleet, spec: { ...model.fleet.spec, waves } } };
      const cache = new TargetCache(m, 'r');
      return agents.map((a) => cache.place(a).wave);
    };
    const steps = [0, 25, 26.5, 50, 100].map(members);
    for (let s = 1; s < steps.length; s++) {
      let added = 0;
      steps[s]!.forEach((wave, k) => {
        const was = steps[s - 1]![k]!;
        if (was === wave) return;
        assert.equal(wave, 'europe', `agent ${agents[k]!.id} moved from ${was} to ${wave}`);
        assert.equal(was, 'everyone', `agent ${agents[k]!.id} left ${was}`);
        added++;
      });
      assert.ok(added > 0, `step ${s} added no agent to europe`);
    }
  });

  it('is deterministic: a pure function of salt, id and labels', () => {
    fc.assert(
      fc.property(fleetArb, agentArb, (model, agent) => {
        const p = place(model, agent);
        const salt = model.fleet.spec.salt ?? model.fleet.metadata.name;
        return (
          p.bucket === bucketOf(salt, agent.id) &&
          p.index === waveIndex(model.fleet.spec.waves, p.bucket, agent.labels) &&
          model.fleet.spec.waves[p.index]!.name === p.wave
        );
      }),
    );
  });
});
