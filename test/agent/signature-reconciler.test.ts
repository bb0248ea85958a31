// Signed releases through a real reconciler and a real fleet repository: a correctly signed
// release is applied, a badly signed one is refused and the first is kept.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetCache } from '../../agent/cache.ts';
import { Agent } from '../../agent/client.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
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
  startReconcilerOn,
} from './helpers.ts';
import { until } from '../helpers/until.ts';
import { TRUSTED, cosignSign, release, stranger } from './fixtures/signing.ts';

describe('signed releases through a real reconciler', { timeout: 120_000 }, () => {
  const tls = loopbackCertificate();
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  let server: Running | undefined;
  let work: string;
  let agent: Agent | undefined;
  const V30 = Buffer.from('metrics-agent 3.0.0 binary\n'.repeat(3000));
  const V31 = Buffer.from('metrics-agent 3.1.0 binary\n'.repeat(3000));

  /** A Release for `version` signed per artifact (`${artifact.url}.sig`), made stable. */
  async function signedRelease(version: string): Promise<void> {
    const yaml =
      releaseYaml(version, artifacts.url(`/${version}`), version === '3.0.0' ? V30 : V31) +
      '  signature:\n    url: ${artifact.url}.sig\n    keyRef: release-2026\n';
    const fleet = await repo.read('fleet/fleet.yaml');
    const commit = await repo.commit(
      {
        [`fleet/releases/${version}.yaml`]: yaml,
        'fleet/fleet.yaml': fleet.replace(/^ {2}version: .*$/m, `  version: ${version}`),
      },
      `roll out ${version}`,
    );
    if (server) await server.app.reconciler.sync.sync();
    if (repo.stateTip() !== undefined)
      repo.writeState(initialRolloutState(commit), `test: ${version} is stable`);
    if (server) await server.app.reconciler.sync.sync();
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-signed-e2e-'));
    repo = await FleetRepo.create();
    artifacts = await new ArtifactServer(tls).start();
    artifacts.files.set('/3.0.0', V30);
    artifacts.files.set('/3.0.0.sig', cosignSign(V30, release.privateKey));
    artifacts.files.set('/3.1.0', V31);
    // 3.1.0's signature is made with a key the agents do not trust.
    artifacts.files.set('/3.1.0.sig', cosignSign(V31, stranger.privateKey));
    // This test is about signatures, not secrets: the base layer's Vault secretRef goes (an
    // agent would need a Vault to resolve it before --apply).
    const base = await repo.read('fleet/config/00-base.yaml');
    const withoutSecret = base.replace(/^ {6}apiKey:\n {8}secretRef:\n(?: {10}.*\n)+/m, '');
    assert.notEqual(withoutSecret, base, 'the example base layer has its apiKey secretRef');
    await repo.commit({ 'fleet/config/00-base.yaml': withoutSecret }, 'no secrets here');
    await signedRelease('3.0.0');
    server = await startReconcilerOn(repo, await freePort());
  });
  after(async () => {
    await agent?.stop();
    await server?.close();
    await artifacts?.stop();
    await tls.dispatcher.close();
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('applies a correctly signed release and refuses a badly signed one, keeping the first', async () => {
    const events = new Events();
    agent = new Agent({
      urls: [server!.url],
      id: 'web-1',
      labels: LINUX_PROD,
      enrollToken: ENROLL_TOKEN,
      cacheDir: join(work, 'cache'),
      apply: `mkdir -p "${work}/installed" && cp "$FLEETWAVE_ARTIFACT" "${work}/installed/binary"`,
      dispatcher: tls.dispatcher,
      trustedKeys: { 'release-2026': TRUSTED.release },
      requireSignatures: true,
      maxApplyAttempts: 2,
      waitSeconds: 1,
      timeoutMs: 5_000,
      backoff: { baseMs: 20, capMs: 300 },
      onEvent: events.push,
    });
    await agent.start();
    const applied = await events.next('applied', () => true, 0);
    assert.equal(applied.target.version, '3.0.0');
    assert.deepEqual(applied.target.artifact.signature, {
      url: `${artifacts.url('/3.0.0')}.sig`,
      keyRef: 'release-2026',
    });
    assert.deepEqual(await readFile(join(work, 'installed/binary')), V30);
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.current?.etag === applied.target.etag,
      'web-1 reports 3.0.0',
    );

    const since = events.all.length;
    await signedRelease('3.1.0');
    const failed = await events.next('apply-failed', (e) => e.target.version === '3.1.0', since);
    assert.equal(failed.error.code, 'ARTIFACT_SIGNATURE_INVALID');
    assert.match(
      failed.error.message,
      /3\.1\.0\.sig does not verify with the trusted key "release-2026"/,
    );
    assert.equal(agent.current?.etag, applied.target.etag, 'the last good target is kept');
    assert.deepEqual(await readFile(join(work, 'installed/binary')), V30, '--apply did not run');
    const cached = await new TargetCache(join(work, 'cache')).read();
    assert.equal(cached.state?.target.version, '3.0.0');
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.health?.status === 'failed',
      'web-1 reports failed',
    );
    const record = server!.app.reconciler.agents.get('web-1')!;
    assert.equal(record.current?.etag, applied.target.etag);
    assert.equal((record.health!.failedTarget as { etag: string }).etag, failed.target.etag);
    assert.match(String(record.health!.message), /ARTIFACT_SIGNATURE_INVALID/);
    assert.ok(existsSync(join(work, 'installed/binary')));
  });
});
