// The bundled promote action, run as the runner runs it, against a real bare origin holding a
// fleet branch and the state branch, a fake reconciler status and a fake GitHub.

import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  parseRolloutState,
  serializeRolloutState,
  type RolloutState,
} from '../../core/rollout/state.ts';
import type { RolloutObservation } from '../../wire/status.ts';
import { git, gitWithInput } from '../helpers/git.ts';
import { BOT_TOKEN, FakeGitHub } from './fake-github.ts';
import { fleetFiles, type FleetSpec } from './fleets.ts';
import { runAction, writeFiles, type ActionRun } from './harness.ts';

const GATES = ['minAgents: 3', 'maxFailedRatio: 0.05'];
const KESTREL: FleetSpec = {
  name: 'kestrel-shipper',
  version: '3.0.0',
  versions: ['3.0.0', '3.1.0'],
  waves: [
    { name: 'pilot', labels: { env: 'staging' }, percent: 50, bake: '10m', gates: GATES },
    { name: 'early', labels: { env: 'prod' }, percent: 10, bake: '10m', gates: GATES },
    {
      name: 'europe',
      labels: { region: 'eu' },
      percent: 50,
      bake: '10m',
      gates: GATES,
      approval: 'manual',
    },
    { name: 'rest', percent: 100, bake: '10m', gates: ['maxFailedRatio: 0.05'] },
  ],
};
const STATE = 'refs/heads/fleetwave/state';

class Origin {
  readonly root: string;
  readonly work: string;
  readonly bare: string;
  constructor(root: string) {
    this.root = root;
    this.work = join(root, 'work');
    this.bare = join(root, 'origin.git');
  }
  static async create(): Promise<Origin> {
    const o = new Origin(await mkdtemp(join(tmpdir(), 'fw-promote-')));
    await mkdir(o.work);
    git(o.work, 'init', '-q', '-b', 'main');
    git(o.root, 'init', '-q', '--bare', 'origin.git');
    await o.commit(fleetFiles('fleet', KESTREL), 'kestrel 3.0.0');
    return o;
  }
  async commit(files: Record<string, string | null>, message: string): Promise<string> {
    await writeFiles(this.work, files);
    git(this.work, 'add', '-A');
    git(this.work, 'commit', '-q', '-m', message);
    git(this.work, 'push', '-q', this.bare, 'HEAD:refs/heads/main');
    return git(this.work, 'rev-parse', 'HEAD');
  }
  tip(ref = STATE): string | undefined {
    try {
      return git(this.bare, 'rev-parse', '--verify', '--quiet', ref);
    } catch {
      return undefined;
    }
  }
  state(ref = STATE): RolloutState {
    const parsed = parseRolloutState(git(this.bare, 'show', `${ref}:rollout.yaml`));
    assert.ok(parsed.ok);
    return parsed.state;
  }
  message(ref = STATE): string {
    return git(this.bare, 'log', '-1', '--format=%B', ref);
  }
  /** Writes rollout.yaml on the state branch as another writer would. */
  setState(state: RolloutState, message: string): string {
    const blob = gitWithInput(
      this.bare,
      serializeRolloutState(state),
      'hash-object',
      '-w',
      '--stdin',
    );
    const tree = gitWithInput(this.bare, `100644 blob ${blob}\trollout.yaml\n`, 'mktree');
    const parent = this.tip();
    const commit = git(
      this.bare,
      'commit-tree',
      ...(parent ? ['-p', parent] : []),
      '-m',
      message,
      tree,
    );
    git(this.bare, 'update-ref', STATE, commit);
    return commit;
  }
}

const github = new FakeGitHub();
let statusServer: Server;
let statusUrl = '';
let observation: RolloutObservation | undefined;
const cleanup: string[] = [];

before(async () => {
  await github.start();
  statusServer = createServer((req, res) => {
    if (req.url !== '/v1/status') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ready: true,
        stable: null,
        candidate: null,
        waves: [],
        rollout: { observation: observation ?? null },
      }),
    );
  });
  await new Promise<void>((r) => statusServer.listen(0, '127.0.0.1', r));
  statusUrl = `http://127.0.0.1:${(statusServer.address() as { port: number }).port}`;
});
after(async () => {
  await github.stop();
  await new Promise((r) => statusServer.close(r));
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

function promote(origin: Origin, inputs: Record<string, string>): Promise<ActionRun> {
  return runAction('promote', {
    workspace: origin.work,
    inputs: { remote: origin.bare, token: BOT_TOKEN, ...inputs },
    eventName: 'schedule',
    event: { schedule: '*/10 * * * *' },
    apiUrl: github.url,
    env: { GITHUB_ACTOR: 'octocat', GITHUB_RUN_ID: '4242' },
  });
}

function cohorts(revision: string, wave: number, failed: number): RolloutObservation {
  const snap = (agents: number, bad: number) => ({
    agents,
    applied: agents,
    silent: 0,
    failed: bad,
    degraded: 0,
    errors: 0,
    requests: agents * 100,
    reporting: agents,
    errorRates: 0,
  });
  return {
    revision,
    waveIndex: wave,
    at: new Date().toISOString(),
    candidate: snap(40, failed),
    stable: snap(400, 4),
    tally: {
      candidate: {
        reports: 400,
        failed: failed * 10,
        errors: 0,
        requests: 40_000,
        rated: 400,
        errorRates: 0,
      },
      stable: {
        reports: 4000,
        failed: 40,
        errors: 0,
        requests: 400_000,
        rated: 4000,
        errorRates: 0,
      },
    },
  };
}

const hourAgo = () => new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');

describe('actions/promote', () => {
  let origin: Origin;
  let stable: string;
  let candidate: string;

  before(async () => {
    origin = await Origin.create();
    cleanup.push(origin.root);
    stable = origin.tip('refs/heads/main')!;
  });

  it('creates the state branch on its first run and waits: nothing newer than stable', async () => {
    const run = await promote(origin, {});
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.outputs.decision, 'wait');
    assert.deepEqual(origin.state().stable, stable);
    assert.match(origin.message(), /^fleetwave: start the rollout state/);
  });

  it('starts a new commit of the fleet branch on the first wave, as one commit on the state branch', async () => {
    candidate = await origin.commit(
      fleetFiles('fleet', { ...KESTREL, version: '3.1.0' }),
      'kestrel 3.1.0',
    );
    const before = origin.tip()!;
    const run = await promote(origin, {});
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.outputs.decision, 'start');
    assert.equal(run.outputs.wave, 'pilot');
    assert.equal(run.outputs['state-commit'], origin.tip());
    assert.equal(
      git(origin.bare, 'rev-parse', `${STATE}^`),
      before,
      'a fast-forward of the old tip',
    );
    assert.equal(origin.state().candidate?.revision, candidate);
    assert.equal(origin.state().candidate?.wave, 0);
    assert.match(
      origin.message(),
      new RegExp(`^fleetwave: start ${candidate.slice(0, 12)} on wave pilot`),
    );
    assert.match(
      origin.message(),
      /workflow run: https:\/\/github\.com\/acme\/fleet-config\/actions\/runs\/4242/,
    );
  });

  it('waits without observations, and writes nothing', async () => {
    const tip = origin.tip();
    const run = await promote(origin, {});
    assert.equal(run.outputs.decision, 'wait');
    assert.equal(origin.tip(), tip);
  });

  it('promotes when the gates of the wave pass, with the gate values in the message', async () => {
    origin.setState(
      { ...origin.state(), candidate: { revision: candidate, wave: 0, waveStartedAt: hourAgo() } },
      'test: baked',
    );
    observation = cohorts(candidate, 0, 0);
    const run = await promote(origin, { 'reconciler-url': statusUrl });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.deepEqual([run.outputs.decision, run.outputs.wave], ['promote', 'early'], run.stdout);
    assert.equal(origin.state().candidate?.wave, 1);
    assert.match(origin.message(), /^fleetwave: promote \w{12} to wave early/);
    assert.match(origin.message(), /maxFailedRatio: pass/);
  });

  it('opens one pull request instead of pushing when the next wave needs manual approval', async () => {
    origin.setState(
      { ...origin.state(), candidate: { revision: candidate, wave: 1, waveStartedAt: hourAgo() } },
      'test: baked',
    );
    observation = cohorts(candidate, 1, 0);
    const tip = origin.tip();
    const run = await promote(origin, { 'reconciler-url': statusUrl });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.deepEqual([run.outputs.decision, run.outputs.wave], ['approval', 'europe']);
    assert.equal(origin.tip(), tip, 'the state branch is not pushed');
    const branch = `fleetwave/approve-europe-${candidate.slice(0, 12)}`;
    assert.equal(origin.state(`refs/heads/${branch}`).candidate?.wave, 2);
    assert.equal(git(origin.bare, 'rev-parse', `refs/heads/${branch}^`), tip);
    assert.equal(github.pulls.length, 1);
    assert.deepEqual([github.pulls[0]!.head, github.pulls[0]!.base], [branch, 'fleetwave/state']);
    assert.equal(run.outputs['pull-request'], 'https://github.com/acme/fleet-config/pull/1');

    const again = await promote(origin, { 'reconciler-url': statusUrl });
    assert.equal(again.outputs.decision, 'approval');
    assert.equal(github.pulls.length, 1, 'never a second pull request');
  });

  it('rejects at once when a gate fails', async () => {
    observation = cohorts(candidate, 1, 20);
    const run = await promote(origin, { 'reconciler-url': statusUrl });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.deepEqual([run.outputs.decision, run.outputs.wave], ['reject', 'early']);
    const state = origin.state();
    assert.equal(state.candidate, undefined);
    assert.equal(state.rejected[0]?.revision, candidate);
    assert.match(state.rejected[0]!.reason, /^early: .*failed/);
    assert.match(origin.message(), /^fleetwave: reject/);
  });

  it('fails with a clear message and writes nothing when the reconciler is unreachable', async () => {
    const next = await origin.commit(
      fleetFiles('fleet', { ...KESTREL, version: '3.1.0', pollIntervalSeconds: 45 }),
      'poll slower',
    );
    origin.setState(
      { ...origin.state(), candidate: { revision: next, wave: 0, waveStartedAt: hourAgo() } },
      'test',
    );
    const tip = origin.tip();
    const run = await promote(origin, { 'reconciler-url': 'http://127.0.0.1:9' });
    assert.equal(run.status, 1);
    assert.match(run.stdout, /::error::the reconciler at http:\/\/127\.0\.0\.1:9 is unreachable/);
    assert.doesNotMatch(run.stdout + run.stderr, /^\s+at /m);
    assert.equal(origin.tip(), tip);
  });

  it('pauses, resumes and rolls back on command', async () => {
    const paused = await promote(origin, { command: 'pause' });
    assert.equal(paused.outputs.decision, 'pause');
    assert.equal(origin.state().paused, true);
    assert.match(
      origin.message(),
      /^fleetwave: pause the rollout \(operator\)\n\npaused by octocat\n/,
    );
    const waiting = await promote(origin, { command: 'evaluate', 'reconciler-url': statusUrl });
    assert.equal(waiting.outputs.decision, 'wait');
    const resumed = await promote(origin, { command: 'resume' });
    assert.equal(resumed.outputs.decision, 'resume');
    assert.equal(origin.state().paused, false);
    const rolled = await promote(origin, { command: 'rollback' });
    assert.equal(rolled.outputs.decision, 'reject');
    assert.match(origin.state().rejected.at(-1)!.reason, /rolled back by octocat/);
  });

  it('completes a candidate that changes no agent’s target at once, without walking the waves', async () => {
    const origin = await Origin.create();
    cleanup.push(origin.root);
    assert.equal((await promote(origin, {})).status, 0);
    // A comment: every agent's target stays stable's (core/target/same.ts), as the reconciler
    // decides it (test/engine/engine.test.ts, the revert of a rejected change).
    const files = fleetFiles('fleet', KESTREL);
    const comment = await origin.commit(
      { 'fleet/fleet.yaml': `${files['fleet/fleet.yaml']}# owned by the platform team\n` },
      'a comment',
    );
    const started = await promote(origin, {});
    assert.deepEqual([started.outputs.decision, started.outputs.wave], ['start', 'pilot']);
    // No observations at all (no reconciler-url): nothing to watch, so nothing to wait for.
    const done = await promote(origin, {});
    assert.equal(done.status, 0, done.stdout + done.stderr);
    assert.deepEqual([done.outputs.decision, done.outputs.wave], ['complete', 'rest']);
    assert.equal(origin.state().stable, comment);
    assert.equal(origin.state().candidate, undefined);
    assert.match(origin.message(), /same target as stable: no wave to walk/);
  });

  it('decides again from the new state when its push is refused', async () => {
    const origin = await Origin.create();
    cleanup.push(origin.root);
    assert.equal((await promote(origin, {})).status, 0);
    const next = await origin.commit(
      fleetFiles('fleet', { ...KESTREL, version: '3.1.0' }),
      'kestrel 3.1.0',
    );
    // The first push is refused after another writer paused the rollout.
    const mark = join(origin.root, 'refused-once');
    const hook = join(origin.bare, 'hooks', 'pre-receive');
    await writeFile(
      hook,
      [
        '#!/bin/sh',
        `[ -e '${mark}' ] && exit 0`,
        `touch '${mark}'`,
        'unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES',
        `old=$(git rev-parse ${STATE})`,
        `blob=$(git show "$old:rollout.yaml" | sed 's/^paused: false$/paused: true/' | git hash-object -w --stdin)`,
        `tree=$(printf '100644 blob %s\\trollout.yaml\\n' "$blob" | git mktree)`,
        `new=$(git -c user.name=other -c user.email=o@o commit-tree -p "$old" -m 'other: pause' "$tree")`,
        `git update-ref ${STATE} "$new" "$old"`,
        'exit 1',
        '',
      ].join('\n'),
    );
    await chmod(hook, 0o755);
    const run = await promote(origin, {});
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /the push was refused \(attempt 1\)/);
    assert.equal(run.outputs.decision, 'wait', 'paused by the other writer: nothing started');
    assert.equal(origin.state().paused, true);
    assert.notEqual(origin.state().candidate?.revision, next);
    assert.equal(origin.message().trim(), 'other: pause');
  });
});
