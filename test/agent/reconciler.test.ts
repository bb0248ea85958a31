// The reference agent against the real reconciler on loopback (a real git origin, the real
// server) and a real TLS artifact server: it enrolls, verifies and applies its target and keeps
// it on disk; it rides out the reconciler going away mid-rollout; it refuses a corrupted
// artifact without running --apply; it fails over between URLs.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, type AgentOptions } from '../../agent/client.ts';
import { TargetCache } from '../../agent/cache.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
import type { Target } from '../../core/target/model.ts';
import {
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  freePort,
  type Running,
} from '../reconciler/helpers.ts';
import {
  ArtifactServer,
  Events,
  loopbackCertificate,
  releaseYaml,
  sha256,
  startReconcilerOn,
} from './helpers.ts';
import { until } from '../helpers/until.ts';
import { FakeVault } from './fixtures/vault.ts';
import { formatEvent } from '../../cli/commands/agent.ts';

const V24 = Buffer.from('metrics-agent 2.4.0 binary\n'.repeat(2000));
const V25 = Buffer.from('metrics-agent 2.5.0 binary\n'.repeat(3000));

describe('agent against a real reconciler', { timeout: 120_000 }, () => {
  const tls = loopbackCertificate();
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  // The example fleet's base layer reads output.apiKey from Vault: the agents resolve it here.
  let vault: FakeVault;
  let server: Running | undefined;
  let port: number;
  let work: string;
  const agents: Agent[] = [];

  /** Makes `version` stable on the state branch (the reconciler syncs when it runs). */
  async function release(version: string, bytes: Buffer, url?: string): Promise<string> {
    const fleet = await repo.read('fleet/fleet.yaml');
    const commit = await repo.commit(
      {
        [`fleet/releases/${version}.yaml`]: releaseYaml(
          version,
          url ?? artifacts.url(`/${version}`),
          bytes,
        ),
        'fleet/fleet.yaml': fleet.replace(/^ {2}version: .*$/m, `  version: ${version}`),
      },
      `roll out ${version}`,
    );
    if (server) await server.app.reconciler.sync.sync();
    // Before the first start there is no state branch: the reconciler creates it from main.
    if (repo.stateTip() !== undefined)
      repo.writeState(initialRolloutState(commit), `test: ${version} is stable`);
    if (server) await server.app.reconciler.sync.sync();
    return commit;
  }

  function agent(
    name: string,
    overrides: Partial<AgentOptions> = {},
  ): { agent: Agent; events: Events; dir: string } {
    const events = new Events();
    const dir = join(work, name);
    const a = new Agent({
      urls: [server!.url],
      id: name,
      labels: LINUX_PROD,
      enrollToken: ENROLL_TOKEN,
      cacheDir: join(dir, 'cache'),
      // Writes what it was given where the test can see it, like an installer would.
      apply: `mkdir -p "${dir}/installed" && cat > "${dir}/installed/target.json" && cp "$FLEETWAVE_ARTIFACT" "${dir}/installed/binary" && echo "$FLEETWAVE_VERSION" > "${dir}/installed/version"`,
      dispatcher: tls.dispatcher,
      env: vault.env({ PATH: process.env.PATH }),
      waitSeconds: 1,
      timeoutMs: 5_000,
      backoff: { baseMs: 20, capMs: 300, retryAfterCapMs: 500 },
      onEvent: events.push,
      ...overrides,
    });
    agents.push(a);
    return { agent: a, events, dir };
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-agent-'));
    repo = await FleetRepo.create();
    artifacts = await new ArtifactServer(tls).start();
    artifacts.files.set('/2.4.0', V24);
    vault = await new FakeVault().start();
    // The example fleet's secret/metrics-agent/ingest#api_key: MOUNT secret, PATH metrics-agent/ingest.
    vault.secrets.set('secret/metrics-agent/ingest', { api_key: 'ingest-api-key' });
    await release('2.4.0', V24);
    port = await freePort();
    server = await startReconcilerOn(repo, port);
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await server?.close();
    await artifacts?.stop();
    await vault?.stop();
    await tls.dispatcher.close();
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  let first: { agent: Agent; events: Events; dir: string };
  let t24: Target;

  it('enrolls, verifies and applies its target, keeps it on disk and reports it', async () => {
    first = agent('web-1');
    await first.agent.start();
    const applied = await first.events.next('applied', () => true, 0);
    t24 = applied.target;
    assert.equal(t24.version, '2.4.0');
    assert.equal(t24.artifact.sha256, sha256(V24));
    // --apply saw the verified artifact and the target.
    assert.deepEqual(await readFile(join(first.dir, 'installed/binary')), V24);
    assert.equal((await readFile(join(first.dir, 'installed/version'), 'utf8')).trim(), '2.4.0');
    const given = JSON.parse(await readFile(join(first.dir, 'installed/target.json'), 'utf8'));
    assert.equal(given.etag, t24.etag);
    assert.equal(given.config.output.apiKey, 'ingest-api-key', 'resolved from Vault');
    // On disk, verified.
    const cached = await new TargetCache(join(first.dir, 'cache')).read();
    assert.equal(cached.state?.target.etag, t24.etag);
    // The reconciler hears it runs it, and healthy.
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.current?.etag === t24.etag,
      'web-1 reports its target',
    );
    assert.equal(server!.app.reconciler.agents.get('web-1')?.health?.status, 'ok');
  });

  it('keeps its target while the reconciler is down, backs off, and resumes the rollout', async () => {
    const since = first.events.all.length;
    await server!.close();
    server = undefined;
    // A release made while the reconciler is away.
    artifacts.files.set('/2.5.0', V25);
    await release('2.5.0', V25);
    // Several failed check-ins, each waiting within the backoff bounds.
    await until(() => first.events.count('error', since) >= 3, 'the agent retried');
    const errors = first.events.all.slice(since).filter((e) => e.kind === 'error');
    for (const e of errors) {
      assert.equal(e.error.code, 'AGENT_UNREACHABLE');
      assert.ok(e.retryInMs >= 0 && e.retryInMs <= 300, `backoff ${e.retryInMs} within the cap`);
    }
    assert.equal(first.agent.current?.etag, t24.etag, 'the last good target is kept');
    const cached = await new TargetCache(join(first.dir, 'cache')).read();
    assert.equal(cached.state?.target.etag, t24.etag);

    server = await startReconcilerOn(repo, port);
    const applied = await first.events.next('applied', (e) => e.target.version === '2.5.0', since);
    assert.notEqual(applied.target.etag, t24.etag);
    assert.deepEqual(await readFile(join(first.dir, 'installed/binary')), V25);
    const after = await new TargetCache(join(first.dir, 'cache')).read();
    assert.equal(after.state?.target.etag, applied.target.etag);
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.current?.version === '2.5.0',
      'web-1 reports 2.5.0',
    );
  });

  it('refuses a corrupted artifact: --apply never runs, failed is reported, nothing is cached', async () => {
    artifacts.files.set(
      '/2.5.0',
      Buffer.concat([V25.subarray(0, 100), Buffer.from('X'), V25.subarray(101)]),
    );
    const b = agent('web-2', { maxApplyAttempts: 2 });
    await b.agent.start();
    const failed = await b.events.next('apply-failed', () => true, 0);
    assert.equal(failed.error.code, 'ARTIFACT_MISMATCH');
    assert.match(failed.error.message, /sha256/);
    assert.equal(existsSync(join(b.dir, 'installed')), false, '--apply did not run');
    assert.equal((await new TargetCache(join(b.dir, 'cache')).read()).state, undefined);
    assert.equal(b.agent.current, undefined);
    // No partial download is left behind, nor the bad bytes under the artifact's name.
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(join(b.dir, 'cache/artifacts')), []);
    await until(
      () => server!.app.reconciler.agents.get('web-2')?.health?.status === 'failed',
      'web-2 reports failed',
    );
    const health = server!.app.reconciler.agents.get('web-2')!.health!;
    assert.equal((health.failedTarget as { etag: string }).etag, failed.target.etag);
    assert.match(String(health.message), /ARTIFACT_MISMATCH/);
    // After giving up it long-polls instead of downloading again and again.
    await b.events.next('apply-failed', (e) => e.gaveUp, 0);
    const downloads = artifacts.requests.get('/2.5.0');
    await until(() => b.events.count('unchanged') >= 2, 'web-2 long-polls');
    assert.equal(artifacts.requests.get('/2.5.0'), downloads);
  });

  it('fails over from a dead URL to a live one', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = agent('web-3', { urls: [dead, server!.url] });
    await c.agent.start();
    artifacts.files.set('/2.5.0', V25);
    const applied = await c.events.next('applied', () => true, 0);
    assert.equal(applied.target.version, '2.5.0');
    const firstError = c.events.all.find((e) => e.kind === 'error');
    assert.ok(firstError && firstError.kind === 'error');
    assert.equal(firstError.url, dead);
    assert.equal(firstError.nextUrl, server!.url);
  });

  it('retries a download that fails for a passing reason, reported as retrying, until it applies', async () => {
    const d = agent('web-4', { maxApplyAttempts: 2 });
    await d.agent.start();
    const before = await d.events.next('applied', (e) => e.target.version === '2.5.0', 0);
    // An artifact server that answers 503 until the file is there.
    const flaky = await new ArtifactServer(tls, (_req, res) => res.writeHead(503).end()).start();
    try {
      const V26 = Buffer.from('metrics-agent 2.6.0 binary\n'.repeat(1000));
      const since = d.events.all.length;
      await release('2.6.0', V26, flaky.url('/2.6.0'));
      // More failures than maxApplyAttempts, none of them giving up.
      await until(() => d.events.count('apply-failed', since) >= 4, 'web-4 tried four times');
      const failures = d.events.all
        .slice(since)
        .filter((e) => e.kind === 'apply-failed' && e.target.version === '2.6.0');
      for (const f of failures) {
        assert.ok(f.kind === 'apply-failed');
        assert.equal(f.error.code, 'ARTIFACT_DOWNLOAD_FAILED');
        assert.equal(f.retrying, true);
        assert.equal(f.gaveUp, false);
      }
      // The reconciler hears `retrying` and the old etag: not applied, not failed.
      await until(
        () => server!.app.reconciler.agents.get('web-4')?.health?.status === 'retrying',
        'web-4 reports retrying',
      );
      const record = server!.app.reconciler.agents.get('web-4')!;
      assert.equal(record.current?.etag, before.target.etag);
      assert.equal((record.health!.retryingTarget as { version: string }).version, '2.6.0');
      assert.match(String(record.health!.message), /^ARTIFACT_DOWNLOAD_FAILED: .*answered 503/);
      assert.match(formatEvent(failures.at(-1)!) ?? '', /, retrying\): ARTIFACT_DOWNLOAD_FAILED/);
      // The file appears: the next try applies it.
      flaky.files.set('/2.6.0', V26);
      await d.events.next('applied', (e) => e.target.version === '2.6.0', since);
      await until(
        () => server!.app.reconciler.agents.get('web-4')?.health?.status === 'ok',
        'web-4 reports ok',
      );
    } finally {
      await flaky.stop();
    }
  });
});
