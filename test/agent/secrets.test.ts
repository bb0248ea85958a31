// The agent resolves a target's secretRefs on its own machine (agent/secrets.ts): env from its
// environment, file from inside its secret directory only, vault from a (fake, real HTTP) Vault
// KV v2. Then end to end against the real reconciler: --apply sees the values, in a file of
// mode 0600; the agent's cache, its events and everything sent to the reconciler keep the
// references; a secret that is missing fails the target like a failed --apply.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Dispatcher } from 'undici';
import { Agent, type ApplyContext } from '../../agent/client.ts';
import { TargetCache, TARGET_FILE } from '../../agent/cache.ts';
import { isAgentError } from '../../agent/errors.ts';
import {
  MAX_SECRET_FILE_BYTES,
  MAX_VAULT_ANSWER_BYTES,
  formatPath,
  parseVaultKey,
  resolveSecrets,
  type SecretOptions,
} from '../../agent/secrets.ts';
import { AGENT_HELP, formatEvent, readAgentOptions } from '../../cli/commands/agent.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
import type { Target } from '../../core/target/model.ts';
import {
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  freePort,
  type Running,
} from '../reconciler/helpers.ts';
import { FakeVault, VAULT_TOKEN } from './fixtures/vault.ts';
import {
  ArtifactServer,
  Events,
  loopbackCertificate,
  releaseYaml,
  startReconcilerOn,
} from './helpers.ts';
import { until } from '../helpers/until.ts';

const ref = (provider: string, key: string) => ({ secretRef: { provider, key } });

/** Asserts a SECRET_UNRESOLVED whose message matches `message` and holds none of `secrets`. */
async function unresolved(
  promise: Promise<unknown>,
  message: RegExp,
  secrets: readonly string[] = [],
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isAgentError(e, 'SECRET_UNRESOLVED'), `not SECRET_UNRESOLVED: ${String(e)}`);
    assert.equal(e.kind, 'stalled');
    assert.match(e.message, message);
    for (const s of secrets) assert.ok(!e.message.includes(s), `the message shows "${s}"`);
    return true;
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('resolveSecrets', () => {
  let root: string;
  let dir: string;
  let vault: FakeVault;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fleetwave-secrets-'));
    dir = join(root, 'secrets');
    await mkdir(join(dir, 'db'), { recursive: true });
    await writeFile(join(dir, 'api-key'), 'file-secret-1\n');
    await writeFile(join(dir, 'db/password'), 'pw with spaces\n\n');
    await writeFile(join(dir, 'crlf'), 'crlf-secret\r\n');
    await writeFile(join(dir, 'plain'), 'no newline');
    await writeFile(join(dir, 'exact'), 'a'.repeat(MAX_SECRET_FILE_BYTES));
    await writeFile(join(dir, 'big'), 'a'.repeat(MAX_SECRET_FILE_BYTES + 1));
    await writeFile(join(dir, 'binary'), Buffer.from([0xff, 0xfe, 0x00, 0x41]));
    await writeFile(join(root, 'outside.txt'), 'outside-secret\n');
    await mkdir(join(root, 'outside-dir'));
    await writeFile(join(root, 'outside-dir/key'), 'outside-dir-secret\n');
    await symlink('api-key', join(dir, 'link-in'));
    await symlink('../outside.txt', join(dir, 'link-out'));
    await symlink('/etc/passwd', join(dir, 'passwd'));
    await symlink(join(root, 'outside-dir'), join(dir, 'dir-out'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    vault = await new FakeVault().start();
    vault.secrets.set('secret/fleet/datadog', { api_key: 'vault-secret-1', port: 8125 });
    vault.secrets.set('kv/team a/db', { password: 'vault-secret-2', nothing: null });
  });

  after(async () => {
    await vault?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const fileOptions = (): SecretOptions => ({ secretDir: dir, env: {} });

  describe('the walk', () => {
    it('replaces exactly the secretRef mappings, anywhere, in a new object', async () => {
      const config = deepFreeze({
        datadog: { apiKey: ref('env', 'DD_API_KEY'), site: 'datadoghq.eu' },
        hosts: [{ name: 'a', token: ref('env', 'TOKEN_A') }, 'plain', 3, null, true],
        list: [ref('env', 'DD_API_KEY')],
        keep: { secretRefs: 'not a reference', nested: { deep: [[{ x: 1 }]] } },
      });
      const before = structuredClone(config);
      const resolved = (await resolveSecrets(config, {
        env: { DD_API_KEY: 'dd-secret', TOKEN_A: 'token-a-secret' },
      })) as typeof config & Record<string, unknown>;
      assert.deepEqual(resolved, {
        datadog: { apiKey: 'dd-secret', site: 'datadoghq.eu' },
        hosts: [{ name: 'a', token: 'token-a-secret' }, 'plain', 3, null, true],
        list: ['dd-secret'],
        keep: { secretRefs: 'not a reference', nested: { deep: [[{ x: 1 }]] } },
      });
      // The target is not changed (it is frozen, too) and nothing is shared with the copy.
      assert.deepEqual(config, before);
      assert.notEqual(resolved, config);
      assert.notEqual(resolved.keep, config.keep);
      assert.notEqual(resolved.keep.nested.deep[0], config.keep.nested.deep[0]);
    });

    it('copies a config without references, and keeps a "__proto__" key a plain key', async () => {
      const config = JSON.parse('{"a":{"__proto__":{"polluted":true},"b":[1,{"c":2}]}}');
      const resolved = (await resolveSecrets(config, { env: {} })) as Record<string, unknown>;
      assert.deepEqual(resolved, config);
      assert.notEqual(resolved, config);
      assert.equal(JSON.stringify(resolved), JSON.stringify(config));
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('names the config path, provider and key of what it cannot resolve, in document order', async () => {
      await unresolved(
        resolveSecrets(
          {
            datadog: { site: 'x', apiKey: ref('env', 'DD_API_KEY') },
            later: ref('env', 'ALSO_MISSING'),
          },
          { env: { OTHER: 'other-secret' } },
        ),
        /^config\.datadog\.apiKey: env variable DD_API_KEY is not set/,
        ['other-secret'],
      );
      await unresolved(
        resolveSecrets({ 'odd key': [{ x: ref('env', 'NOPE') }] }, { env: {} }),
        /^config\["odd key"\]\[0\]\.x: env variable NOPE is not set/,
      );
      assert.equal(formatPath([]), 'config');
    });

    it('refuses a malformed reference or an unknown provider rather than pass it on', async () => {
      await unresolved(
        resolveSecrets({ a: { secretRef: { provider: 'env', key: 'K' }, extra: 1 } }, { env: {} }),
        /^config\.a: not a valid secretRef: the mapping holds extra besides "secretRef"/,
      );
      await unresolved(
        resolveSecrets({ a: { secretRef: { provider: 'env' } } }, { env: {} }),
        /^config\.a: not a valid secretRef: secretRef\.key/,
      );
      await unresolved(
        resolveSecrets({ a: { secretRef: 'env:K' } }, { env: {} }),
        /^config\.a: not a valid secretRef/,
      );
      await unresolved(
        resolveSecrets({ a: ref('aws-sm', 'prod/db') }, { env: {} }),
        /^config\.a: unknown secret provider aws-sm for prod\/db/,
      );
    });
  });

  describe('env', () => {
    it('reads the agent environment, an empty value included', async () => {
      assert.deepEqual(
        await resolveSecrets(
          { a: ref('env', 'A'), b: ref('env', 'B') },
          { env: { A: 'a-secret', B: '' } },
        ),
        { a: 'a-secret', b: '' },
      );
    });

    it('defaults to process.env', async () => {
      process.env.FLEETWAVE_TEST_SECRET_ENV = 'from-process-env';
      try {
        assert.deepEqual(await resolveSecrets({ a: ref('env', 'FLEETWAVE_TEST_SECRET_ENV') }), {
          a: 'from-process-env',
        });
      } finally {
        delete process.env.FLEETWAVE_TEST_SECRET_ENV;
      }
    });

    it('fails on a variable that is not set (not one of Object.prototype either)', async () => {
      await unresolved(
        resolveSecrets({ a: ref('env', 'MISSING') }, { env: { OTHER: 'x' } }),
        /^config\.a: env variable MISSING is not set in the agent's environment$/,
      );
      await unresolved(
        resolveSecrets({ a: ref('env', 'toString') }, { env: {} }),
        /env variable toString is not set/,
      );
    });
  });

  describe('file', () => {
    it('reads a file relative to the secret directory, one trailing newline stripped', async () => {
      const resolved = await resolveSecrets(
        {
          a: ref('file', 'api-key'),
          b: ref('file', 'db/password'),
          c: ref('file', 'crlf'),
          d: ref('file', 'plain'),
          e: ref('file', './db//password'),
          f: ref('file', 'link-in'),
        },
        fileOptions(),
      );
      assert.deepEqual(resolved, {
        a: 'file-secret-1',
        b: 'pw with spaces\n',
        c: 'crlf-secret',
        d: 'no newline',
        e: 'pw with spaces\n',
        f: 'file-secret-1',
      });
    });

    it('reads a file of exactly 64 KiB, refuses one byte more', async () => {
      const resolved = (await resolveSecrets({ a: ref('file', 'exact') }, fileOptions())) as {
        a: string;
      };
      assert.equal(resolved.a.length, MAX_SECRET_FILE_BYTES);
      await unresolved(
        resolveSecrets({ a: ref('file', 'big') }, fileOptions()),
        /^config\.a: file big in .* is 65537 bytes, more than the limit of 65536$/,
      );
    });

    it('refuses an absolute path, even one inside the directory', async () => {
      await unresolved(
        resolveSecrets({ pg: { password: ref('file', '/etc/passwd') } }, fileOptions()),
        /^config\.pg\.password: file \/etc\/passwd is an absolute path: file secrets are paths relative to the secret directory/,
      );
      await unresolved(
        resolveSecrets({ a: ref('file', join(dir, 'api-key')) }, fileOptions()),
        /is an absolute path/,
        ['file-secret-1'],
      );
    });

    it('refuses ".." segments', async () => {
      for (const key of ['../outside.txt', 'db/../../outside.txt', 'db/..', '..']) {
        await unresolved(
          resolveSecrets({ a: ref('file', key) }, fileOptions()),
          /has a "\.\." segment: refused/,
          ['outside-secret'],
        );
      }
    });

    it('refuses a symlink out of the directory, to a file or through a directory', async () => {
      for (const key of ['link-out', 'passwd', 'dir-out/key']) {
        await unresolved(
          resolveSecrets({ a: ref('file', key) }, fileOptions()),
          /leads outside the secret directory .* \(a symlink out of it\?\): refused$/,
          ['outside-secret', 'outside-dir-secret', 'root:'],
        );
      }
    });

    it('refuses what is not a readable regular UTF-8 file, without hanging on a FIFO', async () => {
      await unresolved(
        resolveSecrets({ a: ref('file', 'fifo') }, fileOptions()),
        /file fifo in .* is not a regular file/,
      );
      await unresolved(
        resolveSecrets({ a: ref('file', 'db') }, fileOptions()),
        /file db in .* is not a regular file/,
      );
      await unresolved(
        resolveSecrets({ a: ref('file', 'binary') }, fileOptions()),
        /file binary in .* is not UTF-8 text/,
      );
      await unresolved(
        resolveSecrets({ a: ref('file', 'no-such-file') }, fileOptions()),
        /^config\.a: file no-such-file does not exist in the secret directory /,
      );
      await unresolved(
        resolveSecrets({ a: ref('file', 'api-key') }, { secretDir: join(root, 'nope') }),
        /the secret directory .*nope cannot be used: .*ENOENT/,
      );
    });

    it('is relative to /etc/fleetwave/secrets by default', async () => {
      await unresolved(
        resolveSecrets({ a: ref('file', 'fleetwave-test-no-such-secret') }, { env: {} }),
        /\/etc\/fleetwave\/secrets/,
      );
    });
  });

  describe('vault (KV v2)', () => {
    const options = (env: NodeJS.ProcessEnv = vault.env()): SecretOptions => ({
      env,
      timeoutMs: 2_000,
    });

    it('reads data.data[FIELD] of GET /v1/MOUNT/data/PATH with the token, once per reference', async () => {
      const since = vault.requests.length;
      const resolved = await resolveSecrets(
        {
          datadog: { apiKey: ref('vault', 'secret/fleet/datadog#api_key') },
          again: [ref('vault', 'secret/fleet/datadog#api_key')],
          db: ref('vault', 'kv/team a/db#password'),
        },
        options(),
      );
      assert.deepEqual(resolved, {
        datadog: { apiKey: 'vault-secret-1' },
        again: ['vault-secret-1'],
        db: 'vault-secret-2',
      });
      const requests = vault.requests.slice(since);
      assert.deepEqual(
        requests.map((r) => [r.method, r.url, r.token, r.namespace]),
        [
          ['GET', '/v1/secret/data/fleet/datadog', VAULT_TOKEN, undefined],
          ['GET', '/v1/kv/data/team%20a/db', VAULT_TOKEN, undefined],
        ],
      );
    });

    it('sends VAULT_NAMESPACE as X-Vault-Namespace', async () => {
      vault.namespace = 'team-a';
      try {
        await unresolved(
          resolveSecrets({ a: ref('vault', 'secret/fleet/datadog#api_key') }, options()),
          /answered 403 \(permission denied/,
        );
        assert.deepEqual(
          await resolveSecrets(
            { a: ref('vault', 'secret/fleet/datadog#api_key') },
            options(vault.env({ VAULT_NAMESPACE: 'team-a' })),
          ),
          { a: 'vault-secret-1' },
        );
        assert.equal(vault.requests.at(-1)?.namespace, 'team-a');
      } finally {
        vault.namespace = undefined;
      }
    });

    it('fails on 403 (a wrong token) and 404, never showing the token', async () => {
      await unresolved(
        resolveSecrets(
          { out: { apiKey: ref('vault', 'secret/fleet/datadog#api_key') } },
          options(vault.env({ VAULT_TOKEN: 'hvs.wrong-token' })),
        ),
        /^config\.out\.apiKey: vault secret\/fleet\/datadog#api_key: Vault at http:\/\/127\.0\.0\.1:\d+ answered 403 \(permission denied/,
        ['hvs.wrong-token', VAULT_TOKEN],
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/fleet/nothing#api_key') }, options()),
        /vault secret\/fleet\/nothing#api_key: Vault at .* answered 404 \(no such secret/,
        [VAULT_TOKEN],
      );
    });

    it('fails on a missing field or a field that is not a string, never showing the data', async () => {
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/fleet/datadog#apiKey') }, options()),
        /^config\.a: vault secret\/fleet\/datadog#apiKey: the secret has no field apiKey$/,
        ['vault-secret-1'],
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/fleet/datadog#port') }, options()),
        /field port is a number, not a string$/,
        ['8125'],
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'kv/team a/db#nothing') }, options()),
        /field nothing is null, not a string$/,
        ['vault-secret-2'],
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/fleet/datadog#toString') }, options()),
        /has no field toString/,
      );
    });

    it('fails when Vault is not configured', async () => {
      const key = ref('vault', 'secret/fleet/datadog#api_key');
      await unresolved(
        resolveSecrets({ a: key }, options({ VAULT_TOKEN })),
        /^config\.a: vault secret\/fleet\/datadog#api_key: Vault is not configured: VAULT_ADDR is not set$/,
        [VAULT_TOKEN],
      );
      await unresolved(
        resolveSecrets({ a: key }, options({ VAULT_ADDR: vault.url })),
        /Vault is not configured: VAULT_TOKEN is not set$/,
      );
      await unresolved(
        resolveSecrets({ a: key }, options(vault.env({ VAULT_ADDR: 'file:///etc' }))),
        /VAULT_ADDR is not http\(s\)/,
      );
    });

    it('refuses a key that is not MOUNT/PATH#FIELD, or that climbs out of the mount', async () => {
      for (const [key, why] of [
        ['secret/fleet/datadog', /has no "#FIELD"/],
        ['secret/fleet/datadog#', /empty FIELD/],
        ['secret#api_key', /no PATH after the MOUNT/],
        ['secret/../sys/health#x', /empty, "\." or "\.\." segment/],
        ['/secret/x#y', /empty, "\." or "\.\." segment/],
      ] as const) {
        const since = vault.requests.length;
        await unresolved(resolveSecrets({ a: ref('vault', key) }, options()), why);
        assert.equal(vault.requests.length, since, `no request for ${key}`);
      }
      assert.deepEqual(parseVaultKey('kv/a/b/c#f#g'), {
        mount: 'kv',
        path: ['a', 'b', 'c'],
        field: 'f#g',
      });
    });

    it('does not follow a redirect', async () => {
      vault.handlers.set('secret/moved', (_req, res) => {
        res.writeHead(307, { location: `${vault.url}/v1/secret/data/fleet/datadog` }).end();
      });
      const since = vault.requests.length;
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/moved#api_key') }, options()),
        /answered 307 \(a redirect, not followed\)/,
      );
      assert.equal(vault.requests.length, since + 1);
    });

    it('bounds the answer in size and in time', async () => {
      vault.handlers.set('secret/huge', (_req, res) => {
        // No content-length: the limit is found while reading.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"data":{"data":{"api_key":"');
        res.end('x'.repeat(MAX_VAULT_ANSWER_BYTES) + '"}}}');
      });
      vault.handlers.set('secret/declared-huge', (_req, res) => {
        res.writeHead(200, { 'content-length': MAX_VAULT_ANSWER_BYTES + 1 });
        res.end();
      });
      vault.handlers.set('secret/silent', () => {
        // never answers
      });
      vault.handlers.set('secret/not-json', (_req, res) => {
        res.writeHead(200).end('<html>a login page</html>');
      });
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/huge#api_key') }, options()),
        /more than the limit of 1048576 bytes/,
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/declared-huge#api_key') }, options()),
        /more than the limit of 1048576/,
      );
      await unresolved(
        resolveSecrets({ a: ref('vault', 'secret/not-json#api_key') }, options()),
        /answered 200 with a body that is not JSON$/,
      );
      const started = Date.now();
      await unresolved(
        resolveSecrets(
          { a: ref('vault', 'secret/silent#api_key') },
          { env: vault.env(), timeoutMs: 300 },
        ),
        /Vault at .* did not answer within 300 ms/,
      );
      assert.ok(Date.now() - started < 5_000);
    });

    it('fails when Vault cannot be reached', async () => {
      await unresolved(
        resolveSecrets(
          { a: ref('vault', 'secret/fleet/datadog#api_key') },
          options(vault.env({ VAULT_ADDR: `http://127.0.0.1:${await freePort()}` })),
        ),
        /cannot be reached: .*ECONNREFUSED/,
      );
    });

    it('throws the abort itself when the agent stops', async () => {
      vault.handlers.set('secret/slow', () => {});
      const controller = new AbortController();
      const pending = resolveSecrets(
        { a: ref('vault', 'secret/slow#api_key') },
        { env: vault.env(), timeoutMs: 10_000, signal: controller.signal },
      );
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(pending, (e: unknown) => !isAgentError(e));
    });
  });
});

describe('fleetwave agent --secret-dir', () => {
  const io = { cwd: '/srv/agent', env: {}, stdout: () => {}, stderr: () => {} };

  it('defaults to /etc/fleetwave/secrets and resolves a relative DIR against the cwd', async () => {
    const url = ['--url', 'http://127.0.0.1:9', '--id', 'web-1'];
    assert.equal((await readAgentOptions(url, io))?.secretDir, '/etc/fleetwave/secrets');
    assert.equal(
      (await readAgentOptions([...url, '--secret-dir', 'secrets'], io))?.secretDir,
      '/srv/agent/secrets',
    );
    assert.equal(
      (await readAgentOptions([...url, '--secret-dir', '/run/credentials/x'], io))?.secretDir,
      '/run/credentials/x',
    );
    assert.match(AGENT_HELP, /--secret-dir DIR/);
    assert.match(AGENT_HELP, /VAULT_ADDR and VAULT_TOKEN/);
  });
});

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
