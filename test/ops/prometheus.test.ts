// The operations pack against the real thing: Debian's Prometheus scrapes a running
// reconciler every second while a simulated fleet of 100 agents talks to it, with the alert
// rules loaded. A bad change is rejected on the canary (failures, a rejection, a revert), a
// good one waits out a long bake on the second wave (gates with values). Then every dashboard
// query and every alert expression must evaluate without error, the dashboard's with data,
// and every rule group must be loaded and healthy.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startSimulation, type Simulation } from '../../simulate/fleet.ts';
import { change, engineRepo } from '../engine/sim.ts';
import {
  ENROLL_TOKEN,
  call,
  freePort,
  startServer,
  testConfig,
  type FleetRepo,
  type Running,
} from '../reconciler/helpers.ts';
import { until } from '../helpers/until.ts';
import { RULES, concrete, dashboardQueries, ruleGroups, ruleQueries } from './promql.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

const hasPrometheus = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;

const AGENTS = 100;
const FLEET = `# yaml-language-server: $schema=../schemas/fleet.schema.json
apiVersion: fleetwave.dev/v1
kind: Fleet
metadata:
  name: ops-test-fleet
spec:
  version: 2.4.0
  pollIntervalSeconds: 5
  rollback:
    revert: push
  waves:
    - name: canary
      percent: 20
      bake: 1s
      gates:
        minAgents: 3
        maxFailedRatio: 0.2
    - name: half
      percent: 50
      bake: 1h
      gates:
        minAgents: 5
        maxFailedRatio: 0.5
        maxSilentRatio: 0.5
    - name: everyone
      percent: 100
      bake: 1s
`;

/** Dashboard panels that read counters which only exist once something went wrong. */
const MAY_BE_EMPTY = new Set(['Render errors (A)', 'Revisions refused (A)']);

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

interface RevertSeen {
  revision: string;
  state: string;
}

interface PromAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: unknown[] };
}

/** Prometheus scrapes every second: look every 250 ms, for a minute and a half at most. */
const POLL = { timeoutMs: 90_000, intervalMs: 250 };

describe(
  'a real Prometheus scraping a reconciler with a simulated fleet',
  {
    timeout: 240_000,
    skip: hasPrometheus
      ? false
      : 'the prometheus binary is not installed (Debian: apt-get install prometheus)',
  },
  () => {
    let repo: FleetRepo;
    let server: Running;
    let simulation: Simulation;
    let prometheus: ChildProcess | undefined;
    let dir = '';
    let promUrl = '';

    const status = async (): Promise<Status> =>
      (await call(`${server.url}/v1/status`)).body as Status;
    /** What the rollout did, for a failure's message. */
    const rollout = async (): Promise<unknown> => {
      const s = (await call(`${server.url}/v1/status`)).body as Record<string, unknown>;
      return { candidate: s.candidate, rejected: s.rejected, rollout: s.rollout, waves: s.waves };
    };
    const showingRollout = { ...POLL, diagnose: async () => JSON.stringify(await rollout()) };
    async function prom(path: string, params: Record<string, string> = {}): Promise<PromAnswer> {
      const res = await request(`${promUrl}${path}?${new URLSearchParams(params)}`, {
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      return (await res.body.json()) as PromAnswer;
    }
    const query = (expr: string) => prom('/api/v1/query', { query: expr });
    /** A query's result once Prometheus has it (non-empty), else undefined. */
    async function scraped(expr: string): Promise<unknown[] | undefined> {
      const a = await query(expr);
      return a.status === 'success' && (a.data?.result.length ?? 0) > 0
        ? a.data!.result
        : undefined;
    }

    before(async () => {
      repo = await engineRepo(FLEET);
      server = await startServer(
        testConfig({
          repo: repo.origin,
          dataDir: `${repo.root}/data`,
          fetchIntervalSeconds: 1,
          evaluateIntervalSeconds: 1,
          maxWaitSeconds: 5,
        }),
      );
      simulation = startSimulation({
        url: server.url,
        agents: AGENTS,
        enrollToken: ENROLL_TOKEN,
        seed: 7,
        // Agents that take the bad change fail; on any target a few fail and see request errors.
        faults: [
          { match: { configPath: 'bad' }, failureRate: 1 },
          { match: { version: '2.4.0' }, failureRate: 0.05, errorRate: 0.01 },
        ],
        waitSeconds: 5,
        backoff: { baseMs: 10, capMs: 200 },
      });
      dir = await mkdtemp(join(tmpdir(), 'fleetwave-ops-prom-'));
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      await writeFile(
        join(dir, 'prometheus.yml'),
        [
          'global:',
          '  scrape_interval: 1s',
          '  evaluation_interval: 1s',
          'rule_files:',
          `  - ${JSON.stringify(RULES)}`,
          'scrape_configs:',
          '  - job_name: fleetwave',
          '    static_configs:',
          `      - targets: ['${new URL(server.url).host}']`,
          '',
        ].join('\n'),
      );
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      );
      await until(
        async () => ((await status()).agents.known >= AGENTS ? true : undefined),
        'every agent checked in',
        POLL,
      );
    });

    after(async () => {
      await simulation?.stop();
      await server?.close();
      if (prometheus && prometheus.exitCode === null) {
        const exited = new Promise((r) => prometheus!.once('exit', r));
        prometheus.kill('SIGTERM');
        await exited;
      }
      if (dir) await rm(dir, { recursive: true, force: true });
      await repo?.cleanup();
    });

    it('scrapes the reconciler while a bad change is rejected and a good one bakes', async () => {
      const up = await until(
        async () => {
          const a = (await prom('/api/v1/targets')) as unknown as {
            data: { activeTargets: Array<{ health: string; labels: { job: string } }> };
          };
          const t = a.data.activeTargets.find((t) => t.labels.job === 'fleetwave');
          return t?.health === 'up' ? t : undefined;
        },
        'the reconciler target is up',
        POLL,
      );
      assert.equal(up.health, 'up');

      const bad = await change(repo, 'a change that fails every agent', 'bad');
      const rejection = await until(
        async () => (await status()).rejected.find((r) => r.revision === bad),
        'the bad change is rejected',
        showingRollout,
      );
      assert.equal(rejection.waveIndex, 0);
      // The revert goes on main first: a change pushed before it would be reverted on top of.
      await until(
        async () => {
          const reverts = ((await status()) as unknown as { rollout: { reverts: RevertSeen[] } })
            .rollout.reverts;
          return reverts.find((r) => r.revision === bad && r.state === 'pushed');
        },
        'the revert of the bad change is on main',
        showingRollout,
      );
      const good = await change(repo, 'a healthy change', 'good');
      await until(
        async () => {
          const c = (await status()).candidate;
          return c?.revision === good && c.waveIndex === 1 ? c : undefined;
        },
        'the good change bakes on wave 1',
        showingRollout,
      );

      // What the queries below must find, once scraped.
      await until(
        () => scraped('fleetwave_rollout_rejections_total{wave="canary"} >= 1'),
        'Prometheus has the rejection',
        POLL,
      );
      await until(
        () =>
          scraped(
            'fleetwave_rollout_candidate_wave == 1 and on () fleetwave_gate_verdict{wave="half",gate="bake",verdict="wait"} == 1',
          ),
        'Prometheus has the candidate on wave 1',
        POLL,
      );
      await until(
        () => scraped('fleetwave_checkin_duration_seconds_count > 0'),
        'Prometheus has check-in latencies',
        POLL,
      );
      const failed = await until(
        () => scraped('sum(fleetwave_agents{health="failed"}) > 0'),
        'Prometheus has failed agents',
        POLL,
      );
      assert.equal(failed.length, 1);
    });

    it('answers every dashboard query with data', async () => {
      const queries = dashboardQueries();
      assert.ok(queries.length >= 20);
      const problems: string[] = [];
      for (const q of queries) {
        const expr = concrete(q.expr);
        assert.doesNotMatch(expr, /\$/, `${q.where}: a Grafana variable is left in ${expr}`);
        const a = await query(expr);
        if (a.status !== 'success') problems.push(`${q.where}: ${a.error} in ${expr}`);
        else if (a.data!.result.length === 0 && !MAY_BE_EMPTY.has(q.where))
          problems.push(`${q.where}: no data for ${expr}`);
      }
      assert.deepEqual(problems, []);
    });

    it('evaluates every alert expression without error', async () => {
      const queries = ruleQueries();
      assert.ok(queries.length >= 6);
      for (const q of queries) {
        const a = await query(q.expr);
        assert.equal(a.status, 'success', `${q.where}: ${a.error}`);
        assert.ok(Array.isArray(a.data?.result), q.where);
      }
    });

    it('loads every rule group, each rule evaluated and healthy', async () => {
      const expected = ruleGroups();
      const groups = await until(
        async () => {
          const a = (await prom('/api/v1/rules')) as unknown as {
            data: {
              groups: Array<{
                name: string;
                rules: Array<{ name: string; health: string; lastError?: string }>;
              }>;
            };
          };
          const all = a.data.groups.flatMap((g) => g.rules);
          return all.length > 0 && all.every((r) => r.health !== 'unknown')
            ? a.data.groups
            : undefined;
        },
        'every rule evaluated',
        POLL,
      );
      assert.deepEqual(groups.map((g) => g.name).sort(), expected.map((g) => g.name).sort());
      for (const g of groups) {
        const want = expected.find((e) => e.name === g.name)!;
        assert.deepEqual(
          g.rules.map((r) => r.name),
          want.rules.map((r) => r.alert ?? r.record),
        );
        for (const r of g.rules)
          assert.equal(r.health, 'ok', `${g.name}/${r.name}: ${r.lastError}`);
      }
    });
  },
);
