// A simulated fleet of a few hundred agents against the real reconciler: every agent gets its
// target, their reports show in /v1/status, and a fault keyed by version makes about the
// configured share report failures.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fateOf, matches, checkFaults, type Fault } from '../../simulate/faults.ts';
import { startSimulation, type Simulation } from '../../simulate/fleet.ts';
import { makeTarget } from '../agent/fixtures/targets.ts';
import { CLI } from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
import {
  ENROLL_TOKEN,
  FleetRepo,
  call,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';

const AGENTS = 300;
const FAULTS: Fault[] = [
  { match: { version: '9.9.9' }, failureRate: 1 },
  { match: { version: '2.4.0' }, failureRate: 0.3, errorRate: 0.05 },
];

describe('fault model', () => {
  it('matches by version and by config path and value', () => {
    const t = makeTarget('m');
    assert.equal(matches({ version: t.version }, t), true);
    assert.equal(matches({ version: 'other' }, t), false);
    assert.equal(matches({ configPath: 'mark' }, t), true);
    assert.equal(matches({ configPath: 'mark', configValue: 'm' }, t), true);
    assert.equal(matches({ configPath: 'mark', configValue: 'n' }, t), false);
    assert.equal(matches({ configPath: 'nope.deeper' }, t), false);
  });

  it('gives each agent the same fate on every run, in about the configured share', () => {
    const t = makeTarget('m');
    const faults: Fault[] = [{ match: {}, failureRate: 0.3 }];
    let failing = 0;
    for (let i = 0; i < 2000; i++) {
      const fate = fateOf(faults, 7, `a-${i}`, t);
      assert.deepEqual(fateOf(faults, 7, `a-${i}`, t), fate);
      if (fate.fails) failing++;
    }
    assert.ok(failing > 500 && failing < 700, `${failing} of 2000`);
  });

  it('explains a malformed fault file', () => {
    const r = checkFaults([{ match: { version: 2 }, failureRate: 3, bogus: 1 }]);
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.problems, [
      'faults[0].match.version: not a string',
      'faults[0].bogus: unknown key',
      'faults[0].failureRate: a number from 0 to 1',
    ]);
  });
});

describe('simulated fleet against a real reconciler', { timeout: 120_000 }, () => {
  let repo: FleetRepo;
  let server: Running;
  let simulation: Simulation;

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }));
    simulation = startSimulation({
      url: server.url,
      agents: AGENTS,
      enrollToken: ENROLL_TOKEN,
      seed: 42,
      faults: FAULTS,
      waitSeconds: 5,
      backoff: { baseMs: 10, capMs: 200 },
    });
  });
  after(async () => {
    await simulation?.stop();
    await server?.close();
    await repo?.cleanup();
  });

  it('every agent gets its target and reports it; /v1/status shows them', async () => {
    await until(() => simulation.stats().versions['2.4.0'] === AGENTS, 'every agent runs 2.4.0');
    const agents = server.app.reconciler.agents;
    await until(
      () => [...agents.values()].filter((a) => a.current?.version === '2.4.0').length === AGENTS,
      'every report names 2.4.0',
    );
    // Counts come from the store, written every second: write what is here now.
    await server.app.reconciler.reports.flush();
    const status = (await call(`${server.url}/v1/status`)).body as {
      agents: { known: number };
      waves: Array<{ agents: number; running: { stable: number }; health: Record<string, number> }>;
    };
    assert.equal(status.agents.known, AGENTS);
    const sum = (f: (w: (typeof status.waves)[number]) => number) =>
      status.waves.reduce((s, w) => s + f(w), 0);
    assert.equal(
      sum((w) => w.agents),
      AGENTS,
    );
    assert.equal(
      sum((w) => w.running.stable),
      AGENTS,
    );
    // Several waves are populated: the label mix is a real fleet's.
    assert.ok(status.waves.filter((w) => w.agents > 0).length >= 2);

    // The fault keyed by 2.4.0: about 30% report failed, the rest ok with errors counted.
    const stats = simulation.stats();
    const failed = sum((w) => w.health.failed ?? 0);
    assert.equal(failed, stats.health.failed);
    assert.equal(
      sum((w) => w.health.ok ?? 0),
      AGENTS - failed,
    );
    assert.ok(failed >= 0.2 * AGENTS && failed <= 0.4 * AGENTS, `${failed} of ${AGENTS} failed`);
    const healthy = [...agents.values()].filter((a) => a.health?.status === 'ok');
    assert.ok(
      healthy.every((a) => a.health?.requests === 100 && typeof a.health.errors === 'number'),
    );
    const errors = healthy.reduce((s, a) => s + (a.health!.errors as number), 0);
    const rate = errors / (healthy.length * 100);
    assert.ok(rate > 0.03 && rate < 0.07, `error rate ${rate}`);
    assert.equal(stats.errors, 0, stats.lastError);
  });
});

describe('fleetwave simulate against a reconciler that wants an enrollment token', () => {
  let repo: FleetRepo;
  let server: Running;
  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }));
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  // The reconciler runs in this process: the CLI must not block it (no spawnSync).
  function simulate(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.FLEETWAVE_ENROLL_TOKEN;
    const child = spawn(process.execPath, [CLI, 'simulate', '--url', server.url, ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    return new Promise((resolve) =>
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      }),
    );
  }

  it('without a token: stops with a clear error instead of retrying for ever', async () => {
    const r = await simulate(['--agents', '3', '--ramp', '0']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /the reconciler refused to enroll agents without an enrollment token \(.*401.*\): give it with --enroll-token or FLEETWAVE_ENROLL_TOKEN/,
    );
  });

  it('with a wrong token: says the token was refused', async () => {
    const r = await simulate(['--agents', '3', '--ramp', '0', '--enroll-token', 'x'.repeat(24)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the reconciler refused the enrollment token/);
  });
});
