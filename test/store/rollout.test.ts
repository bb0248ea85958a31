// The fleet's observed state in a shared store, end to end with real processes: three
// `fleetwave serve` replicas on one git remote and one real PostgreSQL, behind real nginx
// round-robin (no sticky sessions), and the same story on SQLite with one replica. A healthy
// change becomes stable although a replica is SIGKILLed mid-rollout (no false silence, no
// report lost); a release failing on 30% of machines is rejected in the first wave and reverted
// once; `fleetwave agents --health failed` lists exactly the agents whose last report failed.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { parseRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { Replica } from '../engine/replica.ts';
import { SimFleet, TEST_FLEET, change, engineRepo } from '../engine/sim.ts';
import { fleetwave } from '../helpers/cli.ts';
import { startBalancer, type Balancer } from '../helpers/nginx.ts';
import { Postgres } from '../helpers/postgres.ts';
import {
  ADMIN_TOKEN,
  GitDaemon,
  LINUX_PROD,
  call,
  freePort,
  type FleetRepo,
} from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import type { AgentView } from '../../reconciler/routes/inventory.ts';

const AGENTS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  replicas: Replica[];
  /** Where agents and operators talk: nginx, or the one replica. */
  url: string;
  stop(): Promise<void>;
}

class Story {
  repo!: FleetRepo;
  daemon!: GitDaemon;
  setup!: Setup;
  sim!: SimFleet;

  state(): RolloutState {
    const parsed = parseRolloutState(git(this.repo.origin, 'show', 'fleetwave/state:rollout.yaml'));
    assert.ok(parsed.ok, 'the state branch tip is a valid state');
    return parsed.state;
  }

  async agents(query: string): Promise<AgentView[]> {
    const res = await call(`${this.setup.url}/v1/agents?limit=1000&${query}`, {
      token: ADMIN_TOKEN,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body as { agents: AgentView[] }).agents;
  }

  /** `fleetwave agents --health failed` against the setup, with `more` flags. */
  failedAgents(...more: string[]) {
    return fleetwave([
      'agents',
      '--url',
      this.setup.url,
      '--token',
      ADMIN_TOKEN,
      '--health',
      'failed',
      ...more,
    ]);
  }

  /** Rounds of check-ins (and `between` after each) until `done`, bounded in time. */
  async until(done: () => boolean, what: string, between?: (round: number) => Promise<void>) {
    const deadline = Date.now() + 90_000;
    for (let round = 0; Date.now() < deadline; round++) {
      await this.sim.round();
      if (done()) return;
      await between?.(round);
      await sleep(200);
    }
    throw new Error(
      `${what}: not reached; state:\n${git(this.repo.origin, 'show', 'fleetwave/state:rollout.yaml')}\n` +
        this.setup.replicas.map((r) => `--- replica ${r.port}:\n${r.log.slice(-3000)}`).join('\n'),
    );
  }

  async run(): Promise<void> {
    // 1. A healthy change, with a replica SIGKILLed while it rolls out and restarted later.
    const healthy = await change(this.repo, 'healthy change');
    const victim = this.setup.replicas[Math.min(1, this.setup.replicas.length - 1)]!;
    let killedAt = -1;
    let before: Map<string, number> | undefined;
    await this.until(
      () => this.state().stable === healthy,
      'the healthy change completes',
      async (round) => {
        const c = this.state().candidate;
        if (killedAt < 0 && c?.revision === healthy && c.wave >= 1) {
          before = new Map((await this.agents('')).map((a) => [a.id, Date.parse(a.lastSeen)]));
          await victim.kill();
          killedAt = round;
        } else if (killedAt >= 0 && !victim.alive && round >= killedAt + 2) {
          await victim.start();
        }
      },
    );
    assert.ok(victim.kills === 1, 'a replica was killed mid-rollout');
    if (!victim.alive) await victim.start();
    const state = this.state();
    assert.equal(state.rejected.length, 0, `no false silence: ${JSON.stringify(state.rejected)}`);
    // No report lost: every agent is in the store, none older than before the kill.
    await sleep(1500);
    const after = await this.agents('');
    assert.equal(after.length, AGENTS);
    for (const a of after) {
      assert.ok(Date.parse(a.lastSeen) >= (before?.get(a.id) ?? 0), `${a.id} lost a report`);
    }
    // Every replica answers every agent's plain target read (it knows the agent from the store).
    const fresh = this.setup.replicas[this.setup.replicas.length - 1]!;
    for (const a of this.sim.agents.slice(0, 10)) {
      const res = await call(`${fresh.url}/v1/agents/${a.id}/target`, { token: a.token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((res.body as { revision: string }).revision, healthy);
    }

    // 2. A release failing on 30% of machines (30% of the canary's among them).
    const canary = (await this.agents('wave=canary')).map((a) => a.id).sort();
    assert.ok(canary.length >= 5, `a canary of ${canary.length} agents`);
    const rest = this.sim.agents.map((a) => a.id).filter((id) => !canary.includes(id));
    this.sim.failing = new Set([
      ...canary.slice(0, Math.ceil(canary.length * 0.3)),
      ...rest.slice(0, Math.round(rest.length * 0.3)),
    ]);
    const bad = await change(this.repo, 'bad release');
    this.sim.bad.add(bad);
    await this.until(
      () => this.state().rejected.some((r) => r.revision === bad),
      'the bad release is rejected',
    );
    const rejection = this.state().rejected.find((r) => r.revision === bad)!;
    assert.equal(rejection.wave, 0, 'rejected in the first wave');
    assert.match(rejection.reason, /^canary: failed ratio/);
    // No agent reports again from here: the inventory's failing agents become exactly those whose
    // last report said failed. It is eventually consistent (each replica writes what it holds
    // every second, later on a loaded machine), so it is read until it agrees, within a bound.
    const reportedFailed = [...this.sim.reported]
      .filter(([, status]) => status === 'failed')
      .map(([id]) => id)
      .sort();
    assert.ok(reportedFailed.length > 0);
    assert.ok(reportedFailed.every((id) => canary.includes(id) && this.sim.failing!.has(id)));
    let listed: string[] = [];
    for (const deadline = Date.now() + 30_000; ;) {
      const cli = this.failedAgents('--format', 'json');
      assert.equal(cli.status, 0, cli.stderr);
      listed = (JSON.parse(cli.stdout) as AgentView[]).map((a) => a.id).sort();
      if (isDeepStrictEqual(listed, reportedFailed) || Date.now() > deadline) break;
      await sleep(500);
    }
    assert.deepEqual(listed, reportedFailed);
    const table = this.failedAgents();
    assert.equal(table.status, 0, table.stderr);
    assert.equal(table.stdout.trim().split('\n').length, reportedFailed.length + 1, table.stdout);
    assert.match(table.stdout, /^ID +WAVE +VERSION +REVISION +HEALTH/);

    // 3. Reverted once on main; everyone back on stable.
    await this.until(() => {
      const s = this.state();
      return !s.candidate && s.stable === git(this.repo.origin, 'rev-parse', 'main');
    }, 'the revert completes');
    const reverts = git(
      this.repo.origin,
      'log',
      '--format=%H',
      '--fixed-strings',
      `--grep=This reverts commit ${bad}.`,
      'main',
    )
      .split('\n')
      .filter(Boolean);
    assert.equal(reverts.length, 1, 'one revert on main');
  }

  async stop(): Promise<void> {
    await this.setup?.stop();
    await this.daemon?.stop();
    await this.repo?.cleanup();
  }
}

async function story(makeSetup: (remote: string, root: string) => Promise<Setup>): Promise<Story> {
  const s = new Story();
  // Polls every 30 s: silence (3 polls) stays far from the rounds' pace on a loaded machine.
  s.repo = await engineRepo(
    TEST_FLEET().replace('pollIntervalSeconds: 5', 'pollIntervalSeconds: 30'),
  );
  s.daemon = new GitDaemon(s.repo.root, await freePort());
  await s.daemon.start();
  s.setup = await makeSetup(s.daemon.url('origin.git'), s.repo.root);
  s.sim = new SimFleet([s.setup.url]);
  await s.sim.enroll(AGENTS, LINUX_PROD);
  await s.sim.round();
  return s;
}

describe('three replicas on PostgreSQL behind nginx round-robin', () => {
  let db: Postgres;
  let balancer: Balancer | undefined;
  let s: Story;

  before(async () => {
    db = await Postgres.start();
    const url = await db.database('fleet');
    s = await story(async (remote, root) => {
      const replicas: Replica[] = [];
      for (let i = 0; i < 3; i++) {
        replicas.push(
          new Replica(await freePort(), `${root}/data-${i}`, remote, [
            '--store',
            url,
            '--replica',
            `replica-${i}`,
          ]),
        );
      }
      await Promise.all(replicas.map((r) => r.start()));
      balancer = await startBalancer(replicas.map((r) => r.port));
      return {
        replicas,
        url: balancer.url,
        stop: async () => {
          await balancer?.stop();
          for (const r of replicas) await r.kill();
        },
      };
    });
  });

  after(async () => {
    await s?.stop();
    await db?.stop();
  });

  it('promotes a healthy change, rejects a bad release once, and lists the failing agents', async () => {
    await s.run();
    // Every replica wrote agents: the store says which replica saw each last.
    const replicas = new Set((await s.agents('')).map((a) => a.replica));
    assert.ok(replicas.size >= 2, `agents seen by ${[...replicas].join(', ')}`);
  });
});

describe('one replica on SQLite, restarted mid-rollout', () => {
  let s: Story;

  before(async () => {
    s = await story(async (remote, root) => {
      const replica = new Replica(await freePort(), `${root}/data`, remote);
      await replica.start();
      return { replicas: [replica], url: replica.url, stop: () => replica.kill() };
    });
  });

  after(async () => {
    await s?.stop();
  });

  it('keeps every report across a SIGKILL and tells the same story', async () => {
    await s.run();
  });
});
