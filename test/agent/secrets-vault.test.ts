// The agent resolves vault secretRefs from Vault's KV v2 (agent/secrets.ts), here a fake Vault
// over real HTTP on loopback: the token, the namespace, what it refuses and what it never shows.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isAgentError } from '../../agent/errors.ts';
import {
  MAX_VAULT_ANSWER_BYTES,
  parseVaultKey,
  resolveSecrets,
  type SecretOptions,
} from '../../agent/secrets.ts';
import { freePort } from '../reconciler/helpers.ts';
import { FakeVault, VAULT_TOKEN } from './fixtures/vault.ts';
import { ref, unresolved } from './fixtures/secret-refs.ts';

describe('resolveSecrets', () => {
  let vault: FakeVault;

  before(async () => {
    vault = await new FakeVault().start();
    vault.secrets.set('secret/fleet/datadog', { api_key: 'vault-secret-1', port: 8125 });
    vault.secrets.set('kv/team a/db', { password: 'vault-secret-2', nothing: null });
  });

  after(async () => {
    await vault?.stop();
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
