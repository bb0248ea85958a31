// sameTargets: fleets that give every agent the same target content, and fleets that do not.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FleetModel } from '../../core/fleet/model.ts';
import { TargetCache } from '../../core/target/cache.ts';
import { sameTargets } from '../../core/target/same.ts';
import { validateFleet } from '../../core/fleet/validate.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { FLEET_DIR } from '../reconciler/helpers.ts';
import { syntheticAgents } from '../../simulate/labels.ts';

async function example(): Promise<FleetModel> {
  const result = validateFleet(await readFleetDirectory(FLEET_DIR));
  assert.ok(result.model);
  return result.model;
}

const clone = <T>(v: T): T => structuredClone(v);

describe('sameTargets', () => {
  it('says same when only placement changes, and then every etag is indeed the same', async () => {
    const a = await example();
    const b = clone(a);
    b.fleet.spec.waves = b.fleet.spec.waves.map((w) => ({ ...w, percent: w.percent }));
    b.fleet.spec.waves[0]!.bake = '1h';
    b.fleet.metadata.annotations = { note: 'a comment-like change' };
    assert.equal(sameTargets(a, b), true);
    const ca = new TargetCache(a, 'a');
    const cb = new TargetCache(b, 'b');
    for (const agent of syntheticAgents(500, 7)) {
      const ra = ca.render(agent);
      const rb = cb.render(agent);
      assert.equal(ra.ok && ra.target.etag, rb.ok && rb.target.etag);
    }
  });

  it('says different for a config value, a layer order, a version, a poll interval', async () => {
    const a = await example();
    const value = clone(a);
    (value.layers[0]!.spec.values as Record<string, unknown>)['extra'] = 1;
    assert.equal(sameTargets(a, value), false);
    const order = clone(a);
    order.layers.reverse();
    assert.equal(sameTargets(a, order), false);
    const poll = clone(a);
    poll.fleet.spec.pollIntervalSeconds += 1;
    assert.equal(sameTargets(a, poll), false);
    const version = clone(a);
    version.fleet.spec.version = a.releases.find(
      (r) => r.spec.version !== a.fleet.spec.version,
    )!.spec.version;
    assert.equal(sameTargets(a, version), false);
  });
});
