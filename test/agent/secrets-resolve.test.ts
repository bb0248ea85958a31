// The agent resolves a target's secretRefs on its own machine (agent/secrets.ts): the walk over
// the config, env from its environment, file from inside its secret directory only. Vault is in
// secrets-vault.test.ts, the end-to-end path in secrets-reconciler.test.ts.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  MAX_SECRET_FILE_BYTES,
  formatPath,
  resolveSecrets,
  type SecretOptions,
} from '../../agent/secrets.ts';
import { deepFreeze, ref, unresolved } from './fixtures/secret-refs.ts';

describe('resolveSecrets', () => {
  let root: string;
  let dir: string;

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
  });

  after(async () => {
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
});
