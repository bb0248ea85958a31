import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  findSecrets,
  isSecretKey,
  secretKeyProblem,
  tokenFormat,
} from '../../../core/fleet/secrets.ts';

describe('isSecretKey', () => {
  const secret = [
    'password',
    'db_password',
    'dbPassword',
    'DB_PASSWORD',
    'passwd',
    'passphrase',
    'token',
    'auth-token',
    'authToken',
    'apiKey',
    'api_key',
    'API_KEY',
    'APIKey',
    'secret',
    'client_secret',
    'clientSecret',
    'privateKey',
    'private_key',
    'aws_secret_access_key',
    'secretAccessKey',
    'credentials',
  ];
  const harmless = [
    'password_min_length',
    'passwordMinLength',
    'token_ttl_seconds',
    'tokenTtlSeconds',
    'apiKeyFile',
    'passwordFile',
    'secretRef',
    'secret_name',
    'key',
    'publicKey',
    'accessKeyId',
    'tokenizer',
    'max_tokens',
    'hostname',
    '',
    '---',
  ];
  for (const key of secret)
    it(`flags ${JSON.stringify(key)}`, () => assert.equal(isSecretKey(key), true));
  for (const key of harmless)
    it(`passes ${JSON.stringify(key)}`, () => assert.equal(isSecretKey(key), false));
});

describe('tokenFormat', () => {
  const cases: Array<[string, string | undefined]> = [
    ['-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----', 'a PEM private key'],
    ['-----BEGIN RSA PRIVATE KEY-----', 'a PEM private key'],
    ['-----BEGIN OPENSSH PRIVATE KEY-----', 'a PEM private key'],
    ['AKIAIOSFODNN7EXAMPLE', 'an AWS access key id'],
    ['key=ASIAIOSFODNN7EXAMPLE;', 'an AWS access key id'],
    [`ghp_${'a1B2'.repeat(9)}`, 'a GitHub token'],
    [`Bearer gho_${'x'.repeat(36)}`, 'a GitHub token'],
    [`github_pat_${'A'.repeat(22)}`, 'a GitHub token'],
    [`glpat-${'x'.repeat(20)}`, 'a GitLab token'],
    ['xoxb-000000000000-000000000000-EXAMPLE', 'a Slack token'],
    [`AIza${'0'.repeat(35)}`, 'a Google API key'],
    [`sk_live_${'0'.repeat(24)}`, 'a Stripe secret key'],
    [`npm_${'a'.repeat(36)}`, 'an npm token'],
    ['eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlc2ln', 'a JSON Web Token'],
    ['postgres://edge:s3cr3t@db.internal:5432/logs', 'a URL with a password in it'],
    ['https://user:pass@example.com/', 'a URL with a password in it'],
    // Neighbours that are not credentials.
    ['-----BEGIN CERTIFICATE-----', undefined],
    ['-----BEGIN PUBLIC KEY-----', undefined],
    ['postgres://edge@db.internal:5432/logs', undefined],
    ['https://logs.example.com:8443/v1/ingest', undefined],
    ['AKIA-not-a-key', undefined],
    ['ghp_short', undefined],
    [`sk_test_${'0'.repeat(24)}`, undefined],
    ['eyJhbGciOiJIUzI1NiJ9', undefined],
    ['${agent.labels.region}', undefined],
    ['', undefined],
  ];
  for (const [text, what] of cases) {
    it(`${what ?? 'nothing'} in ${JSON.stringify(text.slice(0, 40))}`, () =>
      assert.equal(tokenFormat(text), what));
  }
});

describe('findSecrets', () => {
  const fix =
    'write {secretRef: {provider: env|file|vault, key: ...}} and let the agent resolve it';

  it('flags literals under secret-named keys at the value, and nothing else', () => {
    const values = {
      output: {
        token: 'abc123',
        token_ttl_seconds: 60,
        tls: { password_min_length: 12, passwordFile: '/etc/pw' },
      },
      db: { password: 123456, apiKey: { secretRef: { provider: 'env', key: 'API_KEY' } } },
      empty: { password: '' },
      interpolated: { token: '${agent.labels.token}' },
      flags: { secret: true, password: null },
    };
    const found = findSecrets(values, ['spec', 'values']);
    found.sort((a, b) => (a.path.join('.') < b.path.join('.') ? -1 : 1));
    assert.deepEqual(found, [
      {
        path: ['spec', 'values', 'db', 'password'],
        at: 'value',
        message: `"password" holds a plaintext secret; ${fix}`,
      },
      {
        path: ['spec', 'values', 'output', 'token'],
        at: 'value',
        message: `"token" holds a plaintext secret; ${fix}`,
      },
    ]);
  });

  it('flags well-known token formats anywhere, inside lists too', () => {
    const found = findSecrets(
      { headers: ['X-Trace: 1', 'Authorization: AKIAIOSFODNN7EXAMPLE'] },
      [],
    );
    assert.deepEqual(
      found.map((f) => [f.path, f.at]),
      [[['headers', 1], 'value']],
    );
    assert.match(
      found[0]!.message,
      /^this looks like an AWS access key id; never put secrets in git/,
    );
  });

  it('reports a secret-named key once even when its value also has a known format', () => {
    const found = findSecrets({ token: `ghp_${'a'.repeat(36)}` }, []);
    assert.equal(found.length, 1);
    assert.match(found[0]!.message, /^"token" holds a plaintext secret/);
  });

  it('checks the shape of secretRef', () => {
    const values = {
      a: { secretRef: { provider: 'aws', key: 'X' } },
      b: { secretRef: { provider: 'Env', key: '' } },
      c: { secretRef: {}, fallback: 'x' },
      d: { secretRef: 'EDGE_TOKEN' },
      e: { secretRef: { provider: 'vault', key: 'kv/x#token', version: 2 } },
    };
    const found = findSecrets(values, []).map((f) => ({ ...f, path: f.path.join('.') }));
    const byPath = (p: string) => found.filter((f) => f.path === p).map((f) => [f.at, f.message]);
    assert.deepEqual(byPath('a.secretRef.provider'), [
      ['value', 'secretRef.provider must be one of env, file, vault, not "aws"'],
    ]);
    assert.deepEqual(byPath('b.secretRef.provider'), [
      [
        'value',
        'secretRef.provider must be one of env, file, vault, not "Env"; did you mean "env"?',
      ],
    ]);
    assert.deepEqual(byPath('b.secretRef.key'), [
      [
        'value',
        'secretRef.key must be a non-empty string naming the secret (an env var, a file path, a vault path)',
      ],
    ]);
    assert.deepEqual(byPath('c.secretRef'), [
      ['key', 'secretRef is missing required key "provider" (one of env, file, vault)'],
      [
        'key',
        'secretRef is missing required key "key" (what names the secret: an env var, a file path, a vault path)',
      ],
    ]);
    assert.deepEqual(byPath('c.fallback'), [
      ['key', 'a secretRef mapping may hold only "secretRef", not "fallback"'],
    ]);
    assert.deepEqual(byPath('d.secretRef'), [
      ['value', 'secretRef must be a mapping {provider: env|file|vault, key: ...}'],
    ]);
    assert.deepEqual(byPath('e.secretRef.version'), [
      ['key', 'unknown key "version" in secretRef (allowed: provider, key)'],
    ]);
    assert.equal(found.length, 8);
  });

  it("checks each key's shape for its provider, as the agent resolves it", () => {
    const good: Array<[string, string]> = [
      ['env', 'DD_API_KEY'],
      ['env', '_X1'],
      ['file', 'pg-password'],
      ['file', 'metrics-agent/pg.password'],
      ['vault', 'secret/metrics-agent/ingest#api_key'],
      ['vault', 'kv/a/b/c#f.1'],
    ];
    for (const [provider, key] of good) assert.equal(secretKeyProblem(provider, key), undefined);
    const bad: Array<[string, string, RegExp]> = [
      ['env', '1X', /environment variable name/],
      ['env', 'DD-API-KEY', /environment variable name/],
      ['file', '/etc/shadow', /relative to the agent's --secret-dir/],
      ['file', 'a/../../etc/shadow', /no "\." or "\.\." parts/],
      ['file', './x', /relative/],
      ['file', 'a//b', /relative/],
      ['file', 'a/', /relative/],
      ['vault', 'secret/data/x', /MOUNT\/PATH#FIELD/],
      ['vault', 'secret#f', /MOUNT\/PATH#FIELD/],
      ['vault', 'secret/a#f#g', /MOUNT\/PATH#FIELD/],
      ['vault', 'secret/../x#f', /MOUNT\/PATH#FIELD/],
      ['vault', '/secret/x#f', /MOUNT\/PATH#FIELD/],
    ];
    for (const [provider, key, message] of bad) {
      assert.match(secretKeyProblem(provider, key) ?? '', message, `${provider} ${key}`);
    }
    const found = findSecrets({ p: { secretRef: { provider: 'file', key: '/etc/x' } } }, []);
    assert.deepEqual(
      found.map((f) => [f.path.join('.'), f.at]),
      [['p.secretRef.key', 'value']],
    );
  });

  it('finds nothing in a fleet without secrets', () => {
    assert.deepEqual(
      findSecrets({ shipper: { batchSize: 500, endpoint: 'https://logs.example.com' } }, []),
      [],
    );
  });
});
