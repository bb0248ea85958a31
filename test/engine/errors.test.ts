// What an evaluation's error does next follows its kind (core/errors.ts): a transient one (the
// remote down at the push) is recorded and retried at the next evaluation; a stalled one (a
// state branch edited into nonsense) stops automatic writes until a person acts; a waiting one
// (nothing served yet) is a wait, neither an error nor a stall. Real git daemon, real server.

import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { isFleetwaveError } from '../../core/errors.ts';
import { parseRolloutState } from '../../core/rollout/state.ts';
import {
  GitDaemon,
  freePort,
  startServer,
  testConfig,
  type FleetRepo,
  type Running,
} from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { EngineRig, change, stateLog } from './sim.ts';

interface Status {
  candidate: { revision: string } | null;
  rollout: {
    stalled: string | null;
    lastError: { message: string } | null;
    lastEvaluation: { at: string; decision: string; reason: string | null } | null;
  };
}

describe('an evaluation error does what its kind says', () => {
  let rig: EngineRig;
  let repo: FleetRepo;
  let server: Running;
  const status = () => rig.status<Status>();

  before(async () => {
    rig = await EngineRig.start({ agents: 6 });
    ({ repo, server } = rig);
  });

  after(() => rig?.stop());

  it('transient: the remote is down when the decision is pushed; the next evaluation writes it', async () => {
    const c = await change(repo, 'a change');
    await server.app.reconciler.sync.sync(); // fetched: the engine has something to start
    const before = stateLog(repo);
    await rig.daemon.stop();
    rig.clock += 2000;
    await assert.rejects(server.app.rollout.evaluate(), (e: unknown) => {
      assert.ok(isFleetwaveError(e, 'ROLLOUT_WRITE_FAILED'), String(e));
      assert.equal(e.kind, 'transient');
      assert.ok(isFleetwaveError(e.cause, 'GIT_FETCH_FAILED'), 'git says why, in the cause');
      return true;
    });
    let s = await status();
    assert.match(
      s.rollout.lastError?.message ?? '',
      /could not be pushed: the remote did not answer/,
    );
    assert.equal(s.rollout.stalled, null, 'transient is not a stall');
    assert.equal(s.candidate, null);
    await rig.daemon.start();
    rig.clock += 2000;
    const decision = await server.app.rollout.evaluate();
    assert.equal(decision?.kind, 'start');
    s = await status();
    assert.equal(s.rollout.lastError, null);
    assert.equal(s.candidate?.revision, c);
    assert.deepEqual(stateLog(repo), [
      ...before,
      `fleetwave: start ${c.slice(0, 12)} on wave canary`,
    ]);
  });

  it('stalled: a state branch tip that cannot be served stops automatic writes until a person acts', async () => {
    const good = git(repo.origin, 'show', 'fleetwave/state:rollout.yaml');
    repo.writeState('apiVersion: fleetwave.dev/v1\nkind: RolloutState\nstable: nonsense\n', 'oops');
    rig.clock += 2000;
    assert.equal(await server.app.rollout.evaluate(), undefined, 'a stall does not throw');
    let s = await status();
    assert.match(s.rollout.stalled ?? '', /is not a rollout state that can be served/);
    assert.equal(s.rollout.lastError, null, 'a stall is not an error to retry');
    const evaluated = s.rollout.lastEvaluation?.at;
    // Evaluations go on, and write nothing: the stall holds while nobody acts.
    const tip = repo.stateTip();
    for (let i = 0; i < 2; i++) {
      rig.clock += 2000;
      assert.equal(await server.app.rollout.evaluate(), undefined);
    }
    s = await status();
    assert.match(s.rollout.stalled ?? '', /is not a rollout state that can be served/);
    assert.equal(s.rollout.lastEvaluation?.at, evaluated, 'no decision was made');
    assert.equal(repo.stateTip(), tip);
    // A person pushes the last good state back: automatic decisions go on from it.
    const fixed = parseRolloutState(good);
    assert.ok(fixed.ok);
    repo.writeState(fixed.state, 'fix the state by hand');
    rig.clock += 2000;
    const decision = await server.app.rollout.evaluate();
    assert.ok(decision, 'decided again');
    s = await status();
    assert.equal(s.rollout.stalled, null);
    assert.notEqual(s.rollout.lastEvaluation?.at, evaluated);
  });

  it('waiting: nothing served yet (the remote never answered) is a wait, not an error or a stall', async () => {
    const dead = new GitDaemon(repo.root, await freePort()); // never started
    const dataDir = `${repo.root}/data-waiting`;
    const waiting = await startServer(testConfig({ repo: dead.url('origin.git'), dataDir }));
    try {
      assert.equal(await waiting.app.rollout.evaluate(), undefined);
      const s = waiting.app.rollout.status;
      assert.equal(s.lastEvaluation?.decision, 'wait');
      assert.match(s.lastEvaluation?.reason ?? '', /^no valid rollout state is served yet/);
      assert.equal(s.stalled, null);
      assert.equal(s.lastError, null);
    } finally {
      await waiting.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
