// The engine's serve flags are read and checked at the edge.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetwaveError } from '../../core/errors.ts';
import { readServeConfig } from '../../reconciler/config.ts';

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

  const bad: Array<[string[], RegExp]> = [
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
