// The reconciler against real git: a bare origin served by `git daemon` on loopback, commits
// pushed while the server runs, the remote taken away and brought back.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bucketOf } from '../../core/target/placement.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
import {
  FleetRepo,
  GitDaemon,
  LINUX_PROD,
  WEBHOOK_SECRET,
  call,
  enroll,
  freePort,
  metric,
  startServer,
  testConfig,
  type Running,
} from './helpers.ts';
import type { Status as WireStatus } from '../../wire/status.ts';
import { git } from '../helpers/git.ts';
import { until } from '../helpers/until.ts';

interface Target {
  etag: string;
  revision: string;
  wave: string;
  version: string;
  config: Record<string, unknown>;
}

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

function signed(body: string, delivery: string): { raw: string; headers: Record<string, string> } {
  const sig = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  return {
    raw: body,
    headers: {
      'content-type': 'application/json',
      'x-hub-signature-256': `sha256=${sig}`,
      'x-github-delivery': delivery,
      'x-github-event': 'push',
    },
  };
}

/** An agent id that the example fleet places in `canary` (env=internal, bucket < 500). */
function canaryId(): string {
  for (let i = 0; ; i++) if (bucketOf('acme-metrics', `host-${i}`) < 500) return `host-${i}`;
}

const INTERNAL = { env: 'internal', os: 'linux', arch: 'amd64', region: 'us-east-1' };

describe('reconciler against a git daemon remote', () => {
  let repo: FleetRepo;
  let daemon: GitDaemon;
  let server: Running;
  let first: string;
  let deliveries = 0;

  const status = async (): Promise<Status> =>
    (await call(`${server.url}/v1/status`)).body as Status;
  const push = async (): Promise<void> => {
    // What GitHub does on a push: a signed webhook, which triggers a fetch at once.
    const res = await call(
      `${server.url}/v1/webhooks/github`,
      signed('{"ref":"refs/heads/main"}', `d-${++deliveries}`),
    );
    assert.equal(res.status, 202);
    await server.app.reconciler.sync.sync();
  };

  before(async () => {
    repo = await FleetRepo.create();
    first = repo.head();
    daemon = new GitDaemon(repo.root, await freePort());
    await daemon.start();
    server = await startServer(
      testConfig({ repo: daemon.url('origin.git'), dataDir: `${repo.root}/data` }),
    );
  });

  after(async () => {
    await server?.close();
    await daemon?.stop();
    await repo?.cleanup();
  });

  it('creates the state branch on first start with stable = the newest valid revision', async () => {
    const tip = repo.stateTip();
    assert.ok(tip, 'the state branch exists on the remote');
    const rollout = git(repo.origin, 'show', `${tip}:rollout.yaml`);
    assert.match(rollout, new RegExp(`stable: ${first}`));
    const s = await status();
    assert.equal(s.ready, true);
    assert.equal(s.stable, first);
    assert.equal(s.candidate, null);
  });

  it('serves a target with its etag, then 304 for the same etag', async () => {
    const token = await enroll(server.url, 'web-1');
    const body = { id: 'web-1', labels: LINUX_PROD, health: { status: 'ok' } };
    const res = await call(`${server.url}/v1/checkin`, { token, body });
    assert.equal(res.status, 200);
    const target = res.body as Target;
    assert.equal(target.revision, first);
    assert.equal(target.version, '2.4.0');
    assert.equal(res.headers.etag, `"${target.etag}"`);
    const again = await call(`${server.url}/v1/checkin`, {
      token,
      body,
      headers: { 'if-none-match': `"${target.etag}"` },
    });
    assert.equal(again.status, 304);
    const plain = await call(`${server.url}/v1/agents/web-1/target`, { token });
    assert.equal(plain.status, 200);
    assert.equal((plain.body as Target).etag, target.etag);
  });

  it('releases a waiting long-poll when a pushed commit becomes stable', async () => {
    const token = await enroll(server.url, 'web-2');
    const body = { id: 'web-2', labels: LINUX_PROD, health: { status: 'ok' } };
    const current = (await call(`${server.url}/v1/checkin`, { token, body })).body as Target;
    const waiting = call(`${server.url}/v1/checkin?wait=50`, {
      token,
      body: { ...body, current: { etag: current.etag, version: current.version } },
      headers: { 'if-none-match': `"${current.etag}"` },
    });
    // Wait until the server holds it, then change the fleet and the rollout.
    await until(() => server.app.reconciler.longpoll.size > 0, 'the server holds the check-in');
    const base = await repo.read('fleet/config/00-base.yaml');
    const changed = await repo.commit(
      { 'fleet/config/00-base.yaml': base.replace('interval: 30s', 'interval: 15s') },
      'collect every 15s',
    );
    assert.notEqual(
      base,
      await repo.read('fleet/config/00-base.yaml'),
      'the test changed the config',
    );
    await push();
    assert.equal((await status()).git.branch.lastApplied?.revision, changed);
    repo.writeState(initialRolloutState(changed), 'test: make the change stable');
    await push();
    const res = await waiting;
    assert.equal(res.status, 200);
    const target = res.body as Target;
    assert.equal(target.revision, changed);
    assert.notEqual(target.etag, current.etag);
    assert.equal((target.config.agent as { interval: string }).interval, '15s');
  });

  it('does not wake a waiting agent whose content did not change', async () => {
    const token = await enroll(server.url, 'web-6');
    const body = { id: 'web-6', labels: LINUX_PROD };
    const current = (await call(`${server.url}/v1/checkin`, { token, body })).body as Target;
    // A change that prod agents do not see: the prod layer sets its own logLevel.
    const base = await repo.read('fleet/config/00-base.yaml');
    const changed = await repo.commit(
      { 'fleet/config/00-base.yaml': base.replace('logLevel: info', 'logLevel: debug') },
      'debug logs where nothing overrides them',
    );
    const waiting = call(`${server.url}/v1/checkin?wait=50`, {
      token,
      body,
      headers: { 'if-none-match': `"${current.etag}"` },
    });
    await until(() => server.app.reconciler.longpoll.size > 0, 'the server holds the check-in');
    repo.writeState(initialRolloutState(changed), 'test: make it stable');
    await push();
    assert.equal((await status()).stable, changed);
    const longpoll = server.app.reconciler.longpoll;
    while (longpoll.pending > 0) await new Promise((r) => setImmediate(r));
    assert.equal(longpoll.size, 1, 'the change passed over the waiter');
    longpoll.drain(); // end the wait now (what shutdown does): a 304
    const res = await waiting;
    assert.equal(res.status, 304, 'the same content is not a change');
    assert.equal(res.headers.etag, `"${current.etag}"`);
  });

  it('serves the candidate to waves 0..k by the stable policy and stable to the rest', async () => {
    const stable = (await status()).stable;
    const fleet = await repo.read('fleet/fleet.yaml');
    const candidate = await repo.commit(
      { 'fleet/fleet.yaml': fleet.replace('version: 2.4.0', 'version: 2.5.0') },
      'agent 2.5.0',
    );
    repo.writeState({
      ...initialRolloutState(stable!),
      candidate: { revision: candidate, wave: 0, waveStartedAt: '2026-11-27T10:00:00Z' },
    });
    await push();
    const s = await status();
    assert.equal(s.candidate?.revision, candidate);
    assert.equal(s.candidate?.wave, 'canary');
    assert.equal(s.candidate?.waveIndex, 0);

    const id = canaryId();
    const canaryToken = await enroll(server.url, id, INTERNAL);
    const inCanary = await call(`${server.url}/v1/checkin`, {
      token: canaryToken,
      body: { id, labels: INTERNAL },
    });
    assert.equal(inCanary.status, 200);
    assert.equal((inCanary.body as Target).wave, 'canary');
    assert.equal((inCanary.body as Target).revision, candidate);
    assert.equal((inCanary.body as Target).version, '2.5.0');

    const token = await enroll(server.url, 'web-3');
    const rest = await call(`${server.url}/v1/checkin`, {
      token,
      body: { id: 'web-3', labels: LINUX_PROD },
    });
    assert.equal((rest.body as Target).revision, stable);
    assert.equal((rest.body as Target).version, '2.4.0');
  });

  it('never serves an invalid revision, and status shows its errors', async () => {
    const before = await status();
    const fleet = await repo.read('fleet/fleet.yaml');
    const bad = await repo.commit(
      { 'fleet/fleet.yaml': fleet.replace('percent: 5', 'percnt: 5') },
      'typo',
    );
    await push();
    let s = await status();
    assert.equal(s.git.branch.lastAttempted?.revision, bad);
    assert.equal(s.git.branch.lastAttempted?.valid, false);
    assert.ok(
      s.git.branch.lastAttempted?.errors.some((e) => /percnt/.test(e)),
      JSON.stringify(s.git.branch.lastAttempted),
    );
    assert.notEqual(s.git.branch.lastApplied?.revision, bad);

    // Even when the rollout state names it, it is not served: the last good state stays.
    repo.writeState(initialRolloutState(bad), 'test: try to make an invalid revision stable');
    await push();
    s = await status();
    assert.equal(s.stable, before.stable);
    assert.ok(
      s.git.state.lastError?.errors.some((e) => /invalid/.test(e)),
      JSON.stringify(s.git.state.lastError),
    );
    const token = await enroll(server.url, 'web-4');
    const res = await call(`${server.url}/v1/checkin`, {
      token,
      body: { id: 'web-4', labels: LINUX_PROD },
    });
    assert.equal(res.status, 200);
    assert.notEqual((res.body as Target).revision, bad);
    const metrics = (await call(`${server.url}/metrics`)).text;
    assert.ok((metric(metrics, 'fleetwave_revisions_refused_total', { kind: 'fleet' }) ?? 0) >= 1);

    // Repair for the next tests: a valid commit on top, made stable.
    const fixed = await repo.commit({ 'fleet/fleet.yaml': fleet }, 'fix the typo');
    repo.writeState(initialRolloutState(fixed), 'test: stable again');
    await push();
    assert.equal((await status()).stable, fixed);
  });

  it('reports a force push loudly', async () => {
    const applied = (await status()).git.branch.lastApplied!.revision;
    git(repo.work, 'reset', '-q', '--hard', 'HEAD~1');
    git(repo.work, 'commit', '-q', '--allow-empty', '-m', 'rewritten history');
    git(repo.work, 'push', '-q', '--force', 'origin', 'main');
    const rewritten = repo.head();
    await push();
    const s = await status();
    assert.deepEqual(s.git.branch.forcePush, {
      ...s.git.branch.forcePush,
      from: applied,
      to: rewritten,
    });
    const metrics = (await call(`${server.url}/metrics`)).text;
    assert.equal(metric(metrics, 'fleetwave_git_force_pushes_total'), 1);
  });

  it('keeps serving the last good rollout while the remote is away, and recovers', async () => {
    const token = await enroll(server.url, 'web-5');
    const body = { id: 'web-5', labels: LINUX_PROD };
    const served = (await call(`${server.url}/v1/checkin`, { token, body })).body as Target;
    await daemon.stop();
    await server.app.reconciler.sync.sync();
    let s = await status();
    assert.equal(s.git.remote.reachable, false);
    assert.ok(s.git.remote.lastError);
    assert.ok(s.git.remote.consecutiveFailures >= 1);
    let metrics = (await call(`${server.url}/metrics`)).text;
    assert.equal(metric(metrics, 'fleetwave_git_remote_up'), 0);
    assert.ok((metric(metrics, 'fleetwave_git_fetches_total', { result: 'failed' }) ?? 0) >= 1);
    const res = await call(`${server.url}/v1/checkin`, { token, body });
    assert.equal(res.status, 200);
    assert.equal((res.body as Target).etag, served.etag);
    assert.equal((await call(`${server.url}/readyz`)).status, 200);

    await daemon.start();
    await server.app.reconciler.sync.sync();
    s = await status();
    assert.equal(s.git.remote.reachable, true);
    assert.equal(s.git.remote.consecutiveFailures, 0);
    metrics = (await call(`${server.url}/metrics`)).text;
    assert.equal(metric(metrics, 'fleetwave_git_remote_up'), 1);
  });

  it('counts agents by wave without per-agent labels', async () => {
    const metrics = (await call(`${server.url}/metrics`)).text;
    assert.ok(!/web-\d|host-\d/.test(metrics), 'no agent id appears in the metrics');
    const everyone = [...metrics.matchAll(/^fleetwave_agents\{([^}]*)\} (\d+)$/gm)]
      .filter((m) => /wave="everyone"/.test(m[1]!))
      .reduce((n, m) => n + Number(m[2]), 0);
    assert.ok(everyone >= 4, metrics);
    const s = await status();
    assert.ok(s.waves.find((w) => w.name === 'everyone')!.agents >= 4);
  });
});
