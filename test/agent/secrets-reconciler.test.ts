// An agent with secretRefs against the real reconciler: --apply sees the values, in a file of
// mode 0600; the agent's cache, its events and everything sent to the reconciler keep the
// references; a secret that is missing fails the target like a failed --apply.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Dispatcher } from 'undici';
import { Agent, type ApplyContext } from '../../agent/client.ts';
import { TargetCache, TARGET_FILE } from '../../agent/cache.ts';
import { formatEvent } from '../../cli/commands/agent.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
import type { Target } from '../../core/target/model.ts';
import { until } from '../helpers/until.ts';
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

const BINARY = Buffer.from('metrics-agent 2.4.0 binary\n'.repeat(500));
const INGEST_SECRET = 'ingest-secret-value-8f3a1c';
const DB_SECRET = 'db-secret-value-77e2b9';

function secretsLayer(extra = ''): string {
  return `# yaml-language-server: $schema=../../schemas/configlayer.schema.json
apiVersion: fleetwave.dev/v1
kind: ConfigLayer
metadata:
  name: test-secrets
spec:
  priority: 50
  values:
    output:
      apiKey:
        secretRef:
          provider: env
          key: FW_TEST_INGEST_KEY
      dbPassword:
        secretRef:
          provider: file
          key: db/password
${extra}`;
}

describe('an agent with secretRefs against a real reconciler', { timeout: 120_000 }, () => {
  const tls = loopbackCertificate();
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  let server: Running;
  let work: string;
  let secretDir: string;
  const agents: Agent[] = [];
  /** Every request an agent sent (URL, headers, body): what the reconciler received. */
  const sent: string[] = [];
  const recording = tls.dispatcher.compose(
    (dispatch: Dispatcher['dispatch']) =>
      (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
        const body = typeof opts.body === 'string' ? opts.body : '';
        sent.push(`${String(opts.origin)}${opts.path} ${JSON.stringify(opts.headers)} ${body}`);
        return dispatch(opts, handler);
      },
  );

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-agent-secrets-'));
    secretDir = join(work, 'secrets');
    await mkdir(join(secretDir, 'db'), { recursive: true });
    await writeFile(join(secretDir, 'db/password'), `${DB_SECRET}\n`, { mode: 0o600 });
    repo = await FleetRepo.create();
    artifacts = await new ArtifactServer(tls).start();
    artifacts.files.set('/2.4.0', BINARY);
    await repo.commit(
      {
        'fleet/releases/2.4.0.yaml': releaseYaml('2.4.0', artifacts.url('/2.4.0'), BINARY),
        'fleet/config/50-test-secrets.yaml': secretsLayer(),
        // Only the release this test runs: the others are not what it is about.
        'fleet/releases/2.3.1.yaml': null,
        'fleet/releases/2.5.0.yaml': null,
      },
      'the release on loopback, and secrets the agent resolves',
    );
    server = await startReconcilerOn(repo, await freePort());
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await server?.close();
    await artifacts?.stop();
    await recording.close(); // and tls.dispatcher under it
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  function start(
    id: string,
    apply: string | ((context: ApplyContext) => Promise<void>),
    env: NodeJS.ProcessEnv,
  ): { agent: Agent; events: Events } {
    const events = new Events();
    const agent = new Agent({
      urls: [server.url],
      id,
      labels: LINUX_PROD,
      enrollToken: ENROLL_TOKEN,
      cacheDir: join(work, id, 'cache'),
      secretDir,
      apply,
      env,
      dispatcher: recording,
      waitSeconds: 1,
      timeoutMs: 5_000,
      maxApplyAttempts: 2,
      backoff: { baseMs: 20, capMs: 200 },
      onEvent: events.push,
    });
    agents.push(agent);
    return { agent, events };
  }

  /** Nothing the agent kept, logged or sent holds a secret's value. */
  async function assertNoLeak(id: string, events: Events): Promise<void> {
    const secrets = [INGEST_SECRET, DB_SECRET];
    const places: Array<[string, string]> = [
      ['the cache file', await readFile(join(work, id, 'cache', TARGET_FILE), 'utf8')],
      ['the events', JSON.stringify(events.all)],
      ['the log', events.all.map((e) => formatEvent(e) ?? '').join('\n')],
      ['the requests', sent.join('\n')],
      ['the reconciler', JSON.stringify(server.app.reconciler.agents.get(id))],
    ];
    for (const [where, text] of places)
      for (const s of secrets) assert.ok(!text.includes(s), `${where} holds a secret value`);
  }

  let t1: Target;
  let installed: string;
  let web: { agent: Agent; events: Events };

  it('gives --apply the resolved config in a 0600 file and on stdin; keeps only references', async () => {
    installed = join(work, 'web-1', 'installed');
    // A target file left readable by an older agent: the new one replaces it, 0600.
    await mkdir(join(work, 'web-1', 'cache'), { recursive: true });
    await writeFile(join(work, 'web-1', 'cache', 'apply-target.json'), '{}\n');
    await chmod(join(work, 'web-1', 'cache', 'apply-target.json'), 0o644);
    web = start(
      'web-1',
      `mkdir -p "${installed}" && cat > "${installed}/stdin.json" && ` +
        `cp "$FLEETWAVE_TARGET_FILE" "${installed}/file.json" && ` +
        `stat -c %a "$FLEETWAVE_TARGET_FILE" > "${installed}/mode" && env > "${installed}/env" && ` +
        `echo run >> "${installed}/runs"`,
      {
        PATH: process.env.PATH,
        FW_TEST_INGEST_KEY: INGEST_SECRET,
        // The agent's own credentials: --apply must not see them.
        FLEETWAVE_ENROLL_TOKEN: 'enrollment-token-not-for-apply',
        VAULT_TOKEN: 'vault-token-not-for-apply',
      },
    );
    await web.agent.start();
    const applied = await web.events.next('applied', () => true, 0);
    t1 = applied.target;
    const expected = { apiKey: INGEST_SECRET, dbPassword: DB_SECRET };
    for (const name of ['stdin.json', 'file.json']) {
      const given = JSON.parse(await readFile(join(installed, name), 'utf8')) as Target;
      assert.equal(given.etag, t1.etag, name);
      const output = given.config.output as Record<string, unknown>;
      assert.deepEqual({ apiKey: output.apiKey, dbPassword: output.dbPassword }, expected, name);
      assert.match(String(output.endpoint), /^https:\/\/ingest\./, 'the rest is as rendered');
    }
    assert.equal((await readFile(join(installed, 'mode'), 'utf8')).trim(), '600');
    // The resolved target was for that apply only: gone once it returned.
    const targetFile = join(work, 'web-1', 'cache', 'apply-target.json');
    assert.equal(existsSync(targetFile), false, 'no resolved secrets left on disk');
    // --apply's environment is an allowlist: the agent's tokens and secrets stay out.
    const env = await readFile(join(installed, 'env'), 'utf8');
    assert.match(env, /^PATH=/m);
    assert.match(env, /^FLEETWAVE_TARGET_FILE=/m);
    for (const name of ['FLEETWAVE_ENROLL_TOKEN', 'VAULT_TOKEN', 'FW_TEST_INGEST_KEY'])
      assert.doesNotMatch(env, new RegExp(`^${name}=`, 'm'), `${name} is not passed to --apply`);

    // The agent's own memory of its target holds the references, not the values.
    const reference = { secretRef: { provider: 'env', key: 'FW_TEST_INGEST_KEY' } };
    assert.deepEqual((t1.config.output as Record<string, unknown>).apiKey, reference);
    assert.deepEqual(
      (web.agent.current?.config.output as Record<string, unknown>).apiKey,
      reference,
    );
    const cached = await new TargetCache(join(work, 'web-1', 'cache')).read();
    assert.equal(cached.state?.target.etag, t1.etag);
    assert.deepEqual(
      (cached.state?.target.config.output as Record<string, unknown>).apiKey,
      reference,
    );

    await until(
      () => server.app.reconciler.agents.get('web-1')?.current?.etag === t1.etag,
      'web-1 reports its target',
    );
    assert.equal(server.app.reconciler.agents.get('web-1')?.health?.status, 'ok');
    await assertNoLeak('web-1', web.events);
  });

  it('gives a function apply the resolved target', async () => {
    const seen: Array<{ context: ApplyContext; mode: number; file: Target }> = [];
    const fn = start(
      'web-fn',
      async (context) => {
        seen.push({
          context,
          mode: (await stat(context.targetFile)).mode & 0o777,
          file: JSON.parse(await readFile(context.targetFile, 'utf8')) as Target,
        });
      },
      { FW_TEST_INGEST_KEY: INGEST_SECRET },
    );
    await fn.agent.start();
    const applied = await fn.events.next('applied', () => true, 0);
    assert.equal(seen.length, 1);
    const { context, mode, file } = seen[0]!;
    assert.equal(context.target.etag, applied.target.etag);
    assert.equal((context.target.config.output as Record<string, unknown>).apiKey, INGEST_SECRET);
    assert.equal((file.config.output as Record<string, unknown>).dbPassword, DB_SECRET);
    assert.equal(mode, 0o600);
    // The event's target (and the agent's) is the one with references.
    assert.notEqual(
      (applied.target.config.output as Record<string, unknown>).apiKey,
      INGEST_SECRET,
    );
    await assertNoLeak('web-fn', fn.events);
  });

  it('fails a target whose secret is missing like a failed --apply, and keeps the last good one', async () => {
    const since = web.events.all.length;
    const commit = await repo.commit(
      {
        'fleet/config/50-test-secrets.yaml': secretsLayer(
          '      extraToken:\n        secretRef:\n          provider: env\n          key: FW_TEST_MISSING\n',
        ),
      },
      'a secret no agent has',
    );
    await server.app.reconciler.sync.sync();
    repo.writeState(initialRolloutState(commit), 'test: the new config is stable');
    await server.app.reconciler.sync.sync();

    const failed = await web.events.next('apply-failed', () => true, since);
    assert.notEqual(failed.target.etag, t1.etag);
    assert.equal(failed.error.code, 'SECRET_UNRESOLVED');
    assert.equal(
      failed.error.message,
      "config.output.extraToken: env variable FW_TEST_MISSING is not set in the agent's environment",
    );
    // Retried under the same rules as a failed --apply, then given up until the target moves.
    const gaveUp = await web.events.next('apply-failed', (e) => e.gaveUp, since);
    assert.equal(gaveUp.attempts, 2);
    assert.equal(gaveUp.target.etag, failed.target.etag);

    // --apply never ran again; the last good target stays, in memory and in the cache; no
    // resolved target is left on disk.
    assert.equal((await readFile(join(installed, 'runs'), 'utf8')).trim().split('\n').length, 1);
    assert.equal(web.agent.current?.etag, t1.etag);
    const cached = await new TargetCache(join(work, 'web-1', 'cache')).read();
    assert.equal(cached.state?.target.etag, t1.etag);
    assert.equal(existsSync(join(work, 'web-1', 'cache', 'apply-target.json')), false);

    // The reconciler hears: failed, which target, why (the path, not a value), still on t1.
    await until(
      () => server.app.reconciler.agents.get('web-1')?.health?.status === 'failed',
      'web-1 reports failed',
    );
    const record = server.app.reconciler.agents.get('web-1')!;
    assert.equal(record.current?.etag, t1.etag);
    assert.equal((record.health!.failedTarget as { etag: string }).etag, failed.target.etag);
    assert.match(
      String(record.health!.message),
      /^SECRET_UNRESOLVED: config\.output\.extraToken: env variable FW_TEST_MISSING is not set/,
    );
    assert.match(
      formatEvent(failed) ?? '',
      /not applied \(attempt 1\): SECRET_UNRESOLVED: config\.output\.extraToken/,
    );
    await assertNoLeak('web-1', web.events);
  });
});
