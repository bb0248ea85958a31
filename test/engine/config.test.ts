// The engine's serve flags are read and checked at the edge.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetwaveError } from '../../core/errors.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FD_RESERVE, defaultMaxConnections, readServeConfig } from '../../reconciler/config.ts';

const BASE = ['--repo', '/tmp/fleet.git', '--insecure-local-demo'];

describe('serve flags of the rollout engine', () => {
  it('evaluates every 10 s by default and reads the GitHub and Prometheus settings', () => {
    const config = readServeConfig(BASE, {}, '/')!;
    assert.equal(config.evaluateIntervalSeconds, 10);
    assert.equal(config.prometheusUrl, undefined);
    assert.deepEqual(config.github, { apiUrl: 'https://api.github.com' });
    const set = readServeConfig(
      [
        ...BASE,
        '--evaluate-interval',
        '0',
        '--prometheus-url',
        'http://127.0.0.1:9090',
        '--github-api-url',
        'http://127.0.0.1:3000/api',
        '--github-repo',
        'acme/fleet',
      ],
      { FLEETWAVE_GITHUB_TOKEN: 'ghs_token' },
      '/',
    )!;
    assert.equal(set.evaluateIntervalSeconds, 0);
    assert.equal(set.prometheusUrl, 'http://127.0.0.1:9090');
    assert.deepEqual(set.github, {
      apiUrl: 'http://127.0.0.1:3000/api',
      token: 'ghs_token',
      repo: 'acme/fleet',
    });
  });

  it('caps connections below the open-file limit by default, and reads --max-connections and --request-timeout', async () => {
    const config = readServeConfig(BASE, {}, '/')!;
    assert.equal(config.maxConnections, defaultMaxConnections());
    assert.equal(config.requestTimeoutSeconds, 30);
    const set = readServeConfig(
      [...BASE, '--max-connections', '5000', '--request-timeout', '10'],
      {},
      '/',
    )!;
    assert.equal(set.maxConnections, 5000);
    assert.equal(set.requestTimeoutSeconds, 10);
    // The default follows the soft limit of /proc/self/limits, less the descriptors kept for git.
    const dir = await mkdtemp(join(tmpdir(), 'fw-limits-'));
    try {
      const limits = join(dir, 'limits');
      await writeFile(
        limits,
        'Limit                     Soft Limit           Hard Limit           Units\n' +
          'Max open files            1024                 524288               files\n',
      );
      assert.equal(defaultMaxConnections(limits), 1024 - FD_RESERVE);
      assert.equal(defaultMaxConnections(join(dir, 'none')), 100_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const bad: Array<[string[], RegExp]> = [
    [['--max-connections', '0'], /--max-connections must be a whole number from 1/],
    [['--request-timeout', 'soon'], /--request-timeout must be a whole number/],
    [['--evaluate-interval', 'often'], /--evaluate-interval must be a whole number/],
    [['--prometheus-url', 'ftp://x'], /--prometheus-url must be an http or https URL/],
    [['--prometheus-url', 'not a url'], /is not a URL/],
    [['--github-repo', 'acme'], /--github-repo must be OWNER\/NAME/],
    [['--github-repo', '../../x/y'], /--github-repo must be OWNER\/NAME/],
    [['--github-repo', '../x'], /--github-repo must be OWNER\/NAME/],
  ];
  for (const [args, message] of bad) {
    it(`refuses ${args.join(' ')}`, () => {
      assert.throws(
        () => readServeConfig([...BASE, ...args], {}, '/'),
        (e: unknown) => isFleetwaveError(e, 'CONFIG_INVALID') && message.test(e.message),
      );
    });
  }
});
