// --metric-labels: which agent labels the metrics break agents down by (reconciler/config.ts),
// and the breakdown itself (reconciler/metrics.ts) on a store of agents.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { SqliteStore } from '../../reconciler/store/sqlite.ts';
import type { AgentRow } from '../../reconciler/store/store.ts';
import { readServeConfig } from '../../reconciler/config.ts';
import { Metrics } from '../../reconciler/metrics.ts';

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
