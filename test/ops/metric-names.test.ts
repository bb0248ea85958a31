// Every metric name the Grafana dashboard and the alert rules read is one the reconciler
// really serves: a real server with the rollout engine on, agents that enrolled and checked
// in, its /metrics parsed into families, and the names scanned out of every expression.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  FleetRepo,
  LINUX_PROD,
  call,
  enroll,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';
import { dashboardQueries, familyOf, families, metricNames, ruleQueries } from './promql.ts';

describe('the PromQL scanner', () => {
  const table: Array<[string, string[]]> = [
    ['up', ['up']],
    ['sum by (wave, health) (fleetwave_agents{health="failed"})', ['fleetwave_agents']],
    [
      'histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{job=~"$job"}[$__rate_interval])))',
      ['x_seconds_bucket'],
    ],
    ['a / on (wave) group_left (gate) b offset 5m', ['a', 'b']],
    ['max without (instance) (x) > bool 1e3 and y unless z', ['x', 'y', 'z']],
    ['time() - max(t{label="sum(not_a_metric)"}) or vector(0)', ['t']],
    ['label_replace(m, "dst", "$1", "src", "(.*)")', ['m']],
    ['sum(rate(c_total[5m])) by (result)', ['c_total']],
  ];
  for (const [expr, names] of table) {
    it(expr, () => assert.deepEqual(metricNames(expr), names));
  }
});

describe('metric names of the dashboard and the rules', { timeout: 60_000 }, () => {
  let repo: FleetRepo;
  let server: Running;
  let exposition = '';

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, evaluateIntervalSeconds: 1 }),
    );
    await server.app.rollout.evaluate();
    for (const id of ['ops-a', 'ops-b', 'ops-c']) {
      const token = await enroll(server.url, id);
      const res = await call(`${server.url}/v1/checkin`, {
        token,
        body: { id, labels: LINUX_PROD, health: { status: 'ok' } },
      });
      assert.equal(res.status, 200, res.text);
    }
    const res = await call(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    exposition = res.text;
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('serves the agents, check-in and rollout metrics the queries rest on', () => {
    const served = families(exposition);
    assert.equal(served.get('fleetwave_checkin_duration_seconds'), 'histogram');
    assert.equal(served.get('fleetwave_agents'), 'gauge');
    assert.match(
      exposition,
      /^fleetwave_agents_by_label\{label="region",value="us-east-1",health="ok"\} 3$/m,
    );
    assert.match(exposition, /^fleetwave_checkin_duration_seconds_count 3$/m);
    assert.match(exposition, /^fleetwave_branch_tip_valid 1$/m);
    assert.match(exposition, /^fleetwave_rollout_candidate_wave -1$/m);
  });

  for (const [what, queries] of [
    ['dashboard', dashboardQueries()],
    ['rules', ruleQueries()],
  ] as const) {
    it(`every metric the ${what} reads is served by /metrics`, () => {
      const served = families(exposition);
      assert.ok(queries.length >= (what === 'dashboard' ? 20 : 6), `${queries.length} queries`);
      const missing: string[] = [];
      let names = 0;
      for (const q of queries) {
        const used = metricNames(q.expr);
        assert.ok(used.length > 0, `${q.where} reads no metric: ${q.expr}`);
        for (const name of used) {
          names++;
          if (familyOf(name, served) === undefined) missing.push(`${q.where}: ${name}`);
        }
      }
      assert.deepEqual(missing, []);
      assert.ok(names >= queries.length);
    });
  }
});
