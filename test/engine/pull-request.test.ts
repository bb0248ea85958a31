// `rollback.revert: pull-request`: the revert goes to a branch and a pull request on a local fake
// GitHub, once; a commit that descends from the rejected revision waits until the revert is in
// its history. Also the operator CLI against the same server.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { run } from '../../cli/run.ts';
import { BOT_TOKEN, FakeGitHub } from '../actions/fake-github.ts';
import { ADMIN_TOKEN, type FleetRepo, type Running } from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { EngineRig, SimFleet, TEST_FLEET, change } from './sim.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    cwd: process.cwd(),
    env,
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  });
  return { code, stdout, stderr };
}

describe('rollout engine (pull-request reverts) and the operator CLI', () => {
  let rig: EngineRig;
  let repo: FleetRepo;
  let server: Running;
  let github: FakeGitHub;
  let sim: SimFleet;

  const rounds = (done: (s: Status) => boolean, max?: number) => rig.until<Status>(done, max);

  before(async () => {
    github = new FakeGitHub('acme', 'fleet');
    await github.start();
    rig = await EngineRig.start({
      fleetYaml: TEST_FLEET({ revert: 'pull-request' }),
      config: { github: { apiUrl: github.url, token: BOT_TOKEN, repo: 'acme/fleet' } },
    });
    ({ repo, server, sim } = rig);
  });

  after(async () => {
    await rig?.stop();
    await github?.stop();
  });

  it('opens one pull request with the revert; a descendant of the rejected revision waits for it', async () => {
    const bad = await change(repo, 'bad change');
    sim.bad.add(bad);
    const s = await rounds((s) => s.rejected.some((r) => r.revision === bad));
    const head = `fleetwave/revert-${bad.slice(0, 12)}`;
    const opened = github.pulls.filter((p) => p.head === head);
    assert.equal(opened.length, 1);
    assert.equal(opened[0]!.base, 'main');
    assert.match(opened[0]!.title, /^Revert "bad change"/);
    assert.ok(opened[0]!.body.includes(`This reverts commit ${bad}.`));
    assert.match(opened[0]!.body, /maxFailedRatio: fail/);
    assert.equal(s.rollout.reverts.find((r) => r.revision === bad)?.state, 'pull-request');
    // The revert is on its branch, not on main.
    assert.equal(git(repo.origin, 'rev-parse', 'main'), bad);
    assert.ok(
      git(repo.origin, 'log', '-1', '--format=%B', head).includes(`This reverts commit ${bad}.`),
    );

    // A commit on top of the bad one is not a candidate while the revert is missing.
    const descendant = await change(repo, 'unrelated change on top', 'other');
    const waiting = await rounds((s) => s.rollout.lastEvaluation?.decision === 'wait', 2);
    assert.equal(waiting.candidate, null);
    assert.match(
      waiting.rollout.lastEvaluation!.reason!,
      new RegExp(`${descendant.slice(0, 12)} descends from rejected ${bad}`),
    );
    // Still one pull request after more evaluations.
    await rounds(() => false, 2).catch(() => {});
    assert.equal(github.pulls.filter((p) => p.head === head).length, 1);

    // A person merges the pull request: the merge carries the revert and becomes the candidate.
    git(repo.work, 'fetch', '-q', 'origin', head);
    git(repo.work, 'merge', '-q', '--no-edit', 'FETCH_HEAD');
    git(repo.work, 'push', '-q', 'origin', 'main');
    const merged = repo.head();
    const started = await rounds((s) => s.candidate?.revision === merged, 3);
    assert.equal(started.candidate?.revision, merged);
  });

  it('fleetwave status and the action commands talk to the reconciler', async () => {
    const denied = await cli(['pause', '--url', server.url, '--reason', 'x']);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /UNAUTHENTICATED|admin token|set --token/);
    const paused = await cli(['pause', '--url', server.url, '--reason', 'freeze'], {
      FLEETWAVE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /fleetwave: pause the rollout \(operator\)/);
    const text = await cli(['status', '--url', server.url]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /paused:\s+yes/);
    assert.match(text.stdout, /history \(newest first\):\n.*fleetwave: pause the rollout/);
    const json = await cli(['status', '--url', server.url, '--format', 'json']);
    assert.equal((JSON.parse(json.stdout) as { paused: boolean }).paused, true);
    const resumed = await cli([
      'resume',
      '--url',
      server.url,
      '--token',
      ADMIN_TOKEN,
      '--format',
      'json',
    ]);
    assert.equal((JSON.parse(resumed.stdout) as { changed: boolean }).changed, true);
    const down = await cli(['status', '--url', 'http://127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the reconciler/);
  });
});
