// The bundled promote action against a real `fleetwave serve` (its own process, a real bare
// origin, its engine off with --evaluate-interval 0, so the action is the only writer) and 60
// agents checking in over HTTP. The action reads the reconciler's `rollout.observation` from
// /v1/status; each of its decisions is compared with decide() on the same state, history and
// observation: it promotes a healthy change wave by wave and rejects a bad one, as the
// reconciler would.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseDuration } from '../../core/fleet/duration.ts';
import { decide, policyOf, type Decision, type RolloutPolicy } from '../../core/rollout/decide.ts';
import { parseRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { branchHistory } from '../../rollout/history.ts';
import { Mirror } from '../../rollout/mirror.ts';
import { observationOf } from '../../actions/promote/src/observe.ts';
import { SimFleet, change, engineRepo } from '../engine/sim.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  LINUX_PROD,
  call,
  freePort,
  type FleetRepo,
} from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { until } from '../helpers/until.ts';
import { BOT_TOKEN } from './fake-github.ts';
import { runAction, type ActionRun } from './harness.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const STATE = 'fleetwave/state';

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('actions/promote against a real fleetwave serve', () => {
  let repo: FleetRepo;
  let serve: ChildProcess;
  let log = '';
  let url = '';
  let sim: SimFleet;
  let mirror: Mirror;
  let scratch: string;

  const status = async (): Promise<Status> => (await call(`${url}/v1/status`)).body as Status;
  const originState = (): RolloutState => {
    const parsed = parseRolloutState(git(repo.origin, 'show', `${STATE}:rollout.yaml`));
    assert.ok(parsed.ok);
    return parsed.state;
  };

  /** Until the server serves the origin's state branch tip (it fetches every second). */
  async function served(): Promise<Status> {
    const tip = git(repo.origin, 'rev-parse', STATE);
    return until(
      async () => {
        const s = await status();
        return s.stateCommit === tip ? s : undefined;
      },
      `the server serves ${tip}`,
      { timeoutMs: 30_000, intervalMs: 50, diagnose: () => log },
    );
  }

  /** Agents take what they are served, then report running it. */
  async function agentsCatchUp(): Promise<void> {
    await sim.round();
    await sim.round();
  }

  /** Until the candidate's wave has baked: its gates then do not turn on the clock. */
  async function baked(state: RolloutState, policy: RolloutPolicy): Promise<void> {
    const c = state.candidate;
    if (!c) return;
    const bake = parseDuration(policy.waves[c.wave]!.bake) ?? 0;
    const at = Date.parse(c.waveStartedAt) + bake + 100;
    while (Date.now() < at) await sleep(at - Date.now());
  }

  /** What decide() says on the origin's state, the branch history and the server's observation. */
  async function expected(): Promise<{ decision: Decision; policy: RolloutPolicy }> {
    const tips = await mirror.fetch();
    const state = originState();
    const stable = await mirror.load(state.stable);
    assert.ok(stable.valid);
    const policy = policyOf(stable.model);
    await baked(state, policy);
    const history = await branchHistory(mirror, tips.branch!, state);
    const published = (await status()).rollout.observation;
    const fleet = observationOf(published);
    assert.equal(fleet === undefined, published === null, 'a published observation is well formed');
    const decision = decide(policy, state, { history, ...(fleet ? { fleet } : {}) }, Date.now());
    return { decision, policy };
  }

  function promote(): Promise<ActionRun> {
    return runAction('promote', {
      workspace: repo.work,
      inputs: { remote: repo.origin, token: BOT_TOKEN, 'reconciler-url': url },
      eventName: 'schedule',
      event: { schedule: '*/5 * * * *' },
      apiUrl: 'http://127.0.0.1:9', // no manual wave: GitHub is never called
      env: { GITHUB_ACTOR: 'octocat', GITHUB_RUN_ID: '7' },
    });
  }

  /** The gates' verdicts in a state commit's message (`- gate: verdict: message`). */
  function verdicts(message: string): string[] {
    return [...message.matchAll(/^- (\w+): (pass|wait|fail):/gm)].map((m) => `${m[1]}:${m[2]}`);
  }

  /**
   * One scheduled run: decide() on what the action will see, then the action itself; they must
   * agree on the decision, its wave and every gate's verdict. Returns the decision.
   */
  async function step(): Promise<Decision> {
    await served();
    await agentsCatchUp();
    const { decision, policy } = await expected();
    const before = git(repo.origin, 'rev-parse', STATE);
    const run = await promote();
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.outputs.decision, decision.kind, `${run.stdout}\nexpected ${decision.kind}`);
    const wave =
      decision.kind === 'start'
        ? policy.waves[0]!.name
        : decision.kind === 'complete'
          ? policy.waves.at(-1)!.name
          : decision.kind === 'wait'
            ? (policy.waves[originState().candidate?.wave ?? -1]?.name ?? '')
            : policy.waves[decision.wave]!.name;
    assert.equal(run.outputs.wave, wave);
    const after = git(repo.origin, 'rev-parse', STATE);
    if (decision.kind === 'wait') {
      assert.equal(after, before, 'a wait writes nothing');
    } else {
      assert.equal(run.outputs['state-commit'], after);
      assert.equal(git(repo.origin, 'rev-parse', `${after}^`), before, 'one fast-forward commit');
      const message = git(repo.origin, 'log', '-1', '--format=%B', STATE);
      if (decision.kind !== 'start') {
        assert.deepEqual(
          verdicts(message),
          decision.evidence.gates.map((g) => `${g.gate}:${g.verdict}`),
          message,
        );
      }
    }
    return decision;
  }

  before(async () => {
    repo = await engineRepo();
    scratch = await mkdtemp(join(tmpdir(), 'fw-promote-serve-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    serve = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--repo',
        repo.origin,
        '--port',
        String(port),
        '--data-dir',
        join(scratch, 'data'),
        '--fetch-interval',
        '1',
        '--evaluate-interval',
        '0',
        '--log-level',
        'warn',
      ],
      {
        env: {
          ...process.env,
          FLEETWAVE_ENROLL_TOKEN: ENROLL_TOKEN,
          FLEETWAVE_ADMIN_TOKEN: ADMIN_TOKEN,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (d: Buffer) => (log = (log + d.toString()).slice(-8000));
    serve.stdout!.on('data', keep);
    serve.stderr!.on('data', keep);
    await until(async () => (await status()).stateCommit, 'serve starts', {
      timeoutMs: 60_000,
      intervalMs: 100,
      diagnose: () => log,
      stopIf: () => (serve.exitCode !== null ? `serve exited with ${serve.exitCode}` : undefined),
    });
    mirror = await Mirror.open({
      dataDir: join(scratch, 'mirror'),
      remote: repo.origin,
      branch: 'main',
      stateBranch: STATE,
      fleetDir: 'fleet',
    });
    sim = new SimFleet([url]);
    await sim.enroll(60, LINUX_PROD);
    await sim.round();
  });

  after(async () => {
    if (serve && serve.exitCode === null) {
      const exited = new Promise((r) => serve.once('exit', r));
      serve.kill('SIGTERM');
      await exited;
    }
    await repo?.cleanup();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('publishes the candidate observation in /v1/status only while a candidate rolls out', async () => {
    const s = await status();
    assert.equal(s.rollout.evaluateIntervalSeconds, 0);
    assert.equal(s.candidate, null);
    assert.equal(s.rollout.observation, null);
  });

  it('promotes a healthy change wave by wave to stable, deciding as decide() does', async () => {
    const healthy = await change(repo, 'healthy change');
    const kinds: string[] = [];
    for (let i = 0; i < 12 && originState().stable !== healthy; i++) {
      const d = await step();
      kinds.push(d.kind === 'promote' ? `promote ${d.wave}` : d.kind);
      if (d.kind === 'promote') {
        // The observation the promotion rested on counted the agents of the waves it covers.
        const s = await status();
        const seen = d.evidence.candidate!;
        const covered = s.waves.slice(0, d.wave).reduce((n, w) => n + w.agents, 0);
        assert.equal(seen.agents, covered);
        assert.equal(seen.applied, covered, 'every agent of those waves ran the candidate');
      }
    }
    assert.deepEqual(kinds, ['start', 'promote 1', 'promote 2', 'complete']);
    assert.equal(originState().stable, healthy);
    assert.equal(originState().candidate, undefined);
    await served();
    await agentsCatchUp();
    assert.deepEqual([...sim.revisions().keys()], [healthy], 'every agent runs the new stable');
  });

  it('rejects a bad change on the canary; every agent goes back to stable', async () => {
    const stable = originState().stable;
    const bad = await change(repo, 'bad change');
    sim.bad.add(bad);
    assert.equal((await step()).kind, 'start');
    // The canary's agents take the bad change and report failing: published, then rejected.
    await served();
    await agentsCatchUp();
    const s = await status();
    const observed = s.rollout.observation!;
    assert.equal(observed.revision, bad);
    assert.equal(observed.waveIndex, 0);
    assert.equal(observed.candidate.agents, s.waves[0]!.agents);
    assert.ok(observed.candidate.applied >= 3, `minAgents reached: ${observed.candidate.applied}`);
    assert.equal(observed.candidate.failed, observed.candidate.applied);
    assert.ok(observed.tally.candidate.failed > 0);

    const d = await step();
    assert.equal(d.kind, 'reject');
    assert.equal(d.kind === 'reject' && d.wave, 0);
    const state = originState();
    assert.equal(state.candidate, undefined);
    assert.equal(state.stable, stable);
    const rejection = state.rejected.find((r) => r.revision === bad);
    assert.match(rejection?.reason ?? '', /^canary: failed ratio/);
    assert.match(
      git(repo.origin, 'log', '-1', '--format=%s', STATE),
      new RegExp(`^fleetwave: reject ${bad.slice(0, 12)} at wave canary`),
    );
    // The server serves the rejection: every agent's next check-in brings it back to stable.
    const after = await served();
    assert.equal(after.candidate, null);
    assert.equal(after.rollout.observation, null);
    await sim.round();
    assert.deepEqual([...sim.revisions().keys()], [stable]);
  });
});
