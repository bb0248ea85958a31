// Several writers at once: three `fleetwave serve` processes on one origin (git daemon on
// loopback), SIGKILLed at seeded random moments and restarted while a healthy change and then a
// bad one roll out. Afterwards the state branch must read as a clean log: no wave promoted twice
// for a revision, the rejection present once, one revert on main, every agent back on stable.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { GitDaemon, LINUX_PROD, call, freePort, type FleetRepo } from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { prng } from '../../simulate/labels.ts';
import { Replica, SEED } from './replica.ts';
import { SimFleet, change, engineRepo } from './sim.ts';

describe('three replicas, killed at random moments', () => {
  let repo: FleetRepo;
  let daemon: GitDaemon;
  const replicas: Replica[] = [];
  const random = prng(SEED);
  let sim: SimFleet;
  /** Rounds left before a dead replica is restarted. */
  const down = new Map<Replica, number>();

  function originState(): RolloutState {
    const parsed = parseRolloutState(git(repo.origin, 'show', 'fleetwave/state:rollout.yaml'));
    assert.ok(parsed.ok, 'the state branch tip is a valid state');
    return parsed.state;
  }

  /** Agents check in, replicas die and come back, until `done` (bounded in rounds and time). */
  async function chaos(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (let round = 0; round < 600 && Date.now() < deadline; round++) {
      for (const [replica, left] of down) {
        if (left > 0) down.set(replica, left - 1);
        else {
          down.delete(replica);
          await replica.start();
        }
      }
      const live = replicas.filter((r) => r.alive);
      if (live.length > 1 && random() < 0.06) {
        const victim = live[Math.floor(random() * live.length)]!;
        // A random moment: now, or a little into its next evaluation.
        await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
        await victim.kill();
        down.set(victim, 3 + Math.floor(random() * 6));
      }
      sim.urls = replicas.filter((r) => r.alive).map((r) => r.url);
      await sim.round();
      if (done()) return;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(
      `${what}: not reached; state:\n${git(repo.origin, 'show', 'fleetwave/state:rollout.yaml')}\n` +
        replicas.map((r) => `--- replica ${r.port}:\n${r.log.slice(-2000)}`).join('\n'),
    );
  }

  before(async () => {
    repo = await engineRepo();
    daemon = new GitDaemon(repo.root, await freePort());
    await daemon.start();
    for (let i = 0; i < 3; i++) {
      replicas.push(
        new Replica(await freePort(), `${repo.root}/data-${i}`, daemon.url('origin.git')),
      );
    }
    await Promise.all(replicas.map((r) => r.start()));
    sim = new SimFleet(replicas.map((r) => r.url));
    await sim.enroll(60, LINUX_PROD);
    await sim.round();
  });

  after(async () => {
    for (const r of replicas) await r.kill();
    await daemon?.stop();
    await repo?.cleanup();
  });

  it('never promotes twice, never loses a rejection, and leaves a clean log', async () => {
    const healthy = await change(repo, 'healthy change');
    await chaos(() => originState().stable === healthy, 'the healthy change completes');

    const bad = await change(repo, 'bad change');
    sim.bad.add(bad);
    await chaos(() => {
      const state = originState();
      const main = git(repo.origin, 'rev-parse', 'main');
      return (
        state.rejected.some((r) => r.revision === bad) && state.stable === main && !state.candidate
      );
    }, 'the bad change is rejected and its revert completes');
    // Every replica serves the final state (bounded wait: they fetch every second).
    const live = replicas.filter((r) => r.alive);
    const stable = originState().stable;
    for (let i = 0; i < 100; i++) {
      const all = await Promise.all(live.map((r) => call(`${r.url}/v1/status`)));
      if (
        all.every((res) => (res.body as { stable: string; candidate: unknown }).stable === stable)
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    sim.urls = live.map((r) => r.url);
    // One round per replica: each agent checks in with each of them (a restarted replica knows
    // only the agents that talked to it since).
    for (let i = 0; i < live.length; i++) await sim.round();
    // The revert's content is the healthy change's, so agents on it keep their etag (and the
    // revision they were served with): what they run is exactly stable's target.
    assert.ok(!sim.revisions().has(bad), 'no agent runs the rejected change');
    for (const a of sim.agents) {
      const res = await call(`${live[0]!.url}/v1/agents/${a.id}/target`, { token: a.token });
      const target = res.body as { etag: string; revision: string };
      assert.equal(target.revision, stable);
      assert.equal(a.etag, target.etag, `${a.id} runs stable's target`);
    }

    const subjects = git(repo.origin, 'log', '--reverse', '--format=%s', 'fleetwave/state').split(
      '\n',
    );
    const parents = git(repo.origin, 'log', '--format=%p', 'fleetwave/state').split('\n');
    assert.ok(
      parents.every((p) => p.split(' ').filter(Boolean).length <= 1),
      'a linear history',
    );
    const seen = new Set<string>();
    for (const s of subjects) {
      assert.match(
        s,
        /^fleetwave: (start the rollout state|start [0-9a-f]{12} on wave \w+|promote [0-9a-f]{12} to wave \w+|[0-9a-f]{12} is stable|reject [0-9a-f]{12} at wave \w+)$/,
        `a clean log line: ${s}`,
      );
      assert.ok(!seen.has(s), `written twice: ${s}\n${subjects.join('\n')}`);
      seen.add(s);
    }
    assert.equal(subjects[0], 'fleetwave: start the rollout state');
    assert.ok(seen.has(`fleetwave: ${healthy.slice(0, 12)} is stable`));
    assert.ok(seen.has(`fleetwave: reject ${bad.slice(0, 12)} at wave canary`));
    const state = originState();
    assert.equal(state.rejected.filter((r) => r.revision === bad).length, 1);
    const reverts = git(
      repo.origin,
      'log',
      '--format=%H',
      '--fixed-strings',
      `--grep=This reverts commit ${bad}.`,
      'main',
    )
      .split('\n')
      .filter(Boolean);
    assert.equal(reverts.length, 1, 'one revert on main');
    assert.ok(
      replicas.reduce((n, r) => n + r.kills, 0) > 0,
      `the seed ${SEED} killed no replica; the test proved nothing`,
    );
  });
});
