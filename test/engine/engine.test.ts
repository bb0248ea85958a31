// The rollout engine against real git (a bare origin served by `git daemon`) and the real
// server, with 60 agents simulated through the HTTP API and an injected clock: a healthy change
// walks every wave, a bad one is rejected on the canary and reverted on main, a newer commit
// supersedes the candidate, operators act through the admin routes, and a state branch edited
// into nonsense keeps the last good state serving.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN, call, type Running, FleetRepo } from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { EngineRig, SimFleet, change, stateLog } from './sim.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

describe('rollout engine (push reverts)', () => {
  let rig: EngineRig;
  let repo: FleetRepo;
  let server: Running;
  let sim: SimFleet;

  const status = () => rig.status<Status>();
  const rounds = (done: (s: Status) => boolean, max?: number) => rig.until<Status>(done, max);
  const admin = (
    action: string,
    body: unknown = { reason: 'testing', actor: 'alice' },
    token = ADMIN_TOKEN,
  ) => call(`${server.url}/v1/rollout/${action}`, { token, body });

  before(async () => {
    rig = await EngineRig.start();
    ({ repo, server, sim } = rig);
  });

  after(() => rig?.stop());

  it('walks a healthy change through every wave to stable, one commit per decision', async () => {
    const before = stateLog(repo).length;
    const healthy = await change(repo, 'healthy change');
    const s = await rounds((s) => s.stable === healthy);
    assert.equal(s.candidate, null);
    assert.deepEqual(stateLog(repo).slice(before), [
      `fleetwave: start ${healthy.slice(0, 12)} on wave canary`,
      `fleetwave: promote ${healthy.slice(0, 12)} to wave half`,
      `fleetwave: promote ${healthy.slice(0, 12)} to wave everyone`,
      `fleetwave: ${healthy.slice(0, 12)} is stable`,
    ]);
    // The messages carry the gate values; status shows the same history.
    assert.match(s.history[0]!.body, /maxFailedRatio: pass/);
    assert.equal(s.history[0]!.subject, `fleetwave: ${healthy.slice(0, 12)} is stable`);
    await sim.round();
    assert.deepEqual([...sim.revisions().keys()], [healthy], 'every agent runs the new stable');
  });

  it('rejects a bad change on the canary, sends every agent back to stable and reverts it on main', async () => {
    const stable = (await status()).stable;
    const bad = await change(repo, 'bad change');
    sim.bad.add(bad);
    const s = await rounds((s) => s.rejected.some((r) => r.revision === bad));
    const rejection = s.rejected.find((r) => r.revision === bad)!;
    assert.equal(rejection.waveIndex, 0);
    assert.match(rejection.reason, /^canary: failed ratio/);
    assert.equal(s.candidate, null);
    assert.equal(s.stable, stable);
    // Every agent's next check-in returns the stable target.
    await sim.round();
    assert.deepEqual([...sim.revisions().keys()], [stable]);
    // The revert is on main, with git's line and the evidence.
    const tip = git(repo.origin, 'rev-parse', 'main');
    assert.notEqual(tip, bad);
    const message = git(repo.origin, 'log', '-1', '--format=%B', 'main');
    assert.match(message, /^Revert "bad change"/);
    assert.ok(message.includes(`This reverts commit ${bad}.`), message);
    assert.match(message, /maxFailedRatio: fail: failed ratio/);
    assert.equal(
      git(repo.origin, 'rev-parse', 'main^{tree}'),
      git(repo.origin, 'rev-parse', `${bad}^^{tree}`),
    );
    assert.equal(s.rollout.reverts.find((r) => r.revision === bad)?.state, 'pushed');
    assert.equal(stateLog(repo).at(-1), `fleetwave: reject ${bad.slice(0, 12)} at wave canary`);
    // The revert gives every agent the target it runs already: it completes at once, the
    // evaluation after its start, without walking the waves or baking.
    const clock = rig.clock;
    await server.app.reconciler.sync.sync();
    await server.app.rollout.evaluate(); // start
    await server.app.rollout.evaluate(); // complete
    const done = await status();
    assert.equal(done.stable, tip);
    assert.equal(done.candidate, null);
    assert.equal(rig.clock, clock, 'no time passed');
    assert.equal(done.rejected.length, 1);
    assert.deepEqual(stateLog(repo).slice(-2), [
      `fleetwave: start ${tip.slice(0, 12)} on wave canary`,
      `fleetwave: ${tip.slice(0, 12)} is stable`,
    ]);
    assert.match(done.history[0]!.body, /same target as stable/);
  });

  it('a newer commit supersedes the candidate', async () => {
    const a = await change(repo, 'change A');
    await rounds((s) => s.candidate?.revision === a, 3);
    const b = await change(repo, 'change B');
    const s = await rounds((s) => s.candidate?.revision === b, 3);
    assert.equal(s.candidate!.waveIndex, 0);
    assert.equal(s.history[0]!.subject, `fleetwave: start ${b.slice(0, 12)} on wave canary`);
    assert.match(s.history[0]!.body, new RegExp(`supersedes: ${a}`));
    await rounds((s) => s.stable === b);
  });

  it('admin routes: 401 without a token, 403 with an agent credential', async () => {
    assert.equal((await call(`${server.url}/v1/rollout/pause`, { body: {} })).status, 401);
    assert.equal((await admin('pause', {}, 'wrong-token-0123456789')).status, 401);
    assert.equal((await admin('pause', {}, sim.agents[0]!.token)).status, 403);
    assert.equal((await status()).paused, false, 'nothing was written');
  });

  it('pause holds the rollout, resume lets it go on; each is one commit saying who and why', async () => {
    const paused = await admin('pause', { reason: 'change freeze', actor: 'alice' });
    assert.equal(paused.status, 200, paused.text);
    assert.equal((paused.body as { changed: boolean }).changed, true);
    const c = await change(repo, 'change during freeze');
    rig.clock += 2000;
    await server.app.rollout.evaluate();
    let s = await status();
    assert.equal(s.paused, true);
    assert.equal(s.candidate, null);
    assert.equal(s.rollout.lastEvaluation?.reason, 'the rollout is paused');
    assert.equal(s.history[0]!.subject, 'fleetwave: pause the rollout (operator)');
    assert.match(s.history[0]!.body, /by alice: change freeze/);
    const again = await admin('pause');
    assert.equal((again.body as { changed: boolean }).changed, false);
    assert.equal((await admin('resume')).status, 200);
    s = await rounds((s) => s.candidate?.revision === c, 3);
    assert.equal(s.paused, false);
  });

  it('promote moves the candidate on at once; rollback rejects and reverts it', async () => {
    let s = await status();
    const c = s.candidate!.revision;
    const promoted = await admin('promote', { reason: 'urgent fix', actor: 'bob' });
    assert.equal(promoted.status, 200, promoted.text);
    s = await status();
    assert.equal(s.candidate?.waveIndex, 1);
    assert.equal(s.candidate?.wave, 'half');
    assert.equal(
      s.history[0]!.subject,
      `fleetwave: promote ${c.slice(0, 12)} to wave half (operator)`,
    );
    const rolled = await admin('rollback', { reason: 'customer reports', actor: 'carol' });
    assert.equal(rolled.status, 200, rolled.text);
    s = await status();
    assert.equal(s.candidate, null);
    const rejection = s.rejected.find((r) => r.revision === c)!;
    assert.match(rejection.reason, /rolled back by carol: customer reports/);
    assert.ok(
      git(repo.origin, 'log', '-1', '--format=%B', 'main').includes(`This reverts commit ${c}.`),
    );
    // Nothing left to act on.
    const none = await admin('promote');
    assert.equal(none.status, 409);
    assert.equal((none.body as { error: { code: string } }).error.code, 'ROLLOUT_CONFLICT');
  });

  it('a state branch edited into nonsense keeps the last good state serving, and status says why', async () => {
    const good = (await status()).stable;
    repo.writeState(
      'apiVersion: fleetwave.dev/v1\nkind: RolloutState\nstable: not-a-sha\n',
      'oops',
    );
    rig.clock += 2000;
    await server.app.rollout.evaluate();
    const s = await status();
    assert.equal(s.stable, good);
    assert.match(s.rollout.stalled ?? '', /is not a rollout state that can be served/);
    assert.match(s.git.state.lastError!.errors.join('\n'), /stable: must be a full commit id/);
    const r = await sim.round();
    assert.equal(r.failed, 0, 'agents are still served');
    // An operator action writes the last good state over it.
    assert.equal(
      (await admin('resume', { reason: 'repair the state', actor: 'dave' })).status,
      200,
    );
    const fixed = await status();
    assert.equal(fixed.git.state.lastError, null);
    assert.match(fixed.history[0]!.body, /could not be served; this replaces it/);
    rig.clock += 2000;
    await server.app.rollout.evaluate();
    assert.equal((await status()).rollout.stalled, null);
  });
});
