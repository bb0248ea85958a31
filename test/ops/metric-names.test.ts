// Every metric name the Grafana dashboard and the alert rules read is one the reconciler
// really serves: a real server with the rollout engine on, agents that enrolled and checked
// in, its /metrics parsed into families, and the names scanned out of every expression.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  FleetRepo,
  LINUX_PROD,
  call,
  enroll,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';
import {
  RULE_TESTS,
  dashboardQueries,
  familyOf,
  families,
  metricNames,
  ruleQueries,
} from './promql.ts';

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
  /** /metrics before any event: no check-in, rejection, refusal or webhook yet. */
  let atStart = '';

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, evaluateIntervalSeconds: 1 }),
    );
    atStart = (await call(`${server.url}/metrics`)).text;
    await server.app.rollout.evaluate();
    for (const id of ['ops-a', 'ops-b', 'ops-c']) {
      const token = await enroll(server.url, id);
      const res = await call(`${server.url}/v1/checkin`, {
        token,
        body: { id, labels: LINUX_PROD, health: { status: 'ok' } },
      });
      assert.equal(res.status, 200, res.text);
    }
    // Agent counts come from the store, which each replica writes every second: write now.
    await server.app.reconciler.reports.flush();
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

  it('exports every known label value of the labelled counters at 0 before its first event', () => {
    for (const series of [
      'fleetwave_rollout_rejections_total{wave="canary"}',
      'fleetwave_rollout_rejections_total{wave="early"}',
      'fleetwave_rollout_rejections_total{wave="everyone"}',
      'fleetwave_revisions_refused_total{kind="fleet"}',
      'fleetwave_revisions_refused_total{kind="state"}',
      'fleetwave_render_errors_total{code="missing-label"}',
      'fleetwave_render_errors_total{code="no-artifact"}',
      'fleetwave_webhook_deliveries_total{result="accepted"}',
      'fleetwave_webhook_deliveries_total{result="bad_signature"}',
      'fleetwave_checkins_total{result="released"}',
      'fleetwave_git_fetches_total{result="failed"}',
    ]) {
      assert.ok(atStart.split('\n').includes(`${series} 0`), `${series} 0 is not exported`);
    }
  });

  it("feeds promtool's rule tests counter series the reconciler really exports: from 0", () => {
    // A series that appears only at its first event has no increase() to show; the tests
    // must start each counter at 0, as the reconciler does, or they prove alerts that never fire.
    const start = new Set(atStart.split('\n').filter((l) => l.endsWith(' 0')));
    let checked = 0;
    for (const file of readdirSync(RULE_TESTS).filter((f) => f.endsWith('.test.yaml'))) {
      const doc = parse(readFileSync(`${RULE_TESTS}/${file}`, 'utf8')) as {
        tests: Array<{ input_series?: Array<{ series: string; values: string }> }>;
      };
      for (const input of doc.tests.flatMap((t) => t.input_series ?? [])) {
        const m = /^(\w+_total)\{(.*)\}$/.exec(input.series);
        if (!m) continue;
        checked++;
        const labels = m[2]!
          .split(/,(?=\w+=)/)
          .filter((l) => !/^(job|instance)=/.test(l))
          .join(',');
        const exported = labels === '' ? `${m[1]} 0` : `${m[1]}{${labels}} 0`;
        assert.ok(start.has(exported), `${file}: ${input.series} is not exported at start`);
        assert.match(input.values, /^0(x\d+)?\b/, `${file}: ${input.series} does not start at 0`);
      }
    }
    assert.ok(checked > 0, 'no counter series in the rule tests');
  });

  it('exports the default process and Node.js metrics', () => {
    const served = families(atStart);
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(served.has(name), `${name} is not exported`);
    }
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
