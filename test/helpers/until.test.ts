// The one wait of the tests (helpers/until.ts): what it returns, what counts as not yet, and
// what a failure says.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { until } from './until.ts';

describe('until', () => {
  it('returns the first value that is not false, undefined or null', async () => {
    let calls = 0;
    const values = [false, undefined, null, 0, 'late'];
    assert.equal(await until(() => values[calls++], 'a value'), 0);
    assert.equal(calls, 4);
  });

  it('counts a check that throws as not yet', async () => {
    let calls = 0;
    const value = await until(async () => {
      if (++calls < 3) throw new Error('not listening yet');
      return 'up';
    }, 'the server answers');
    assert.equal(value, 'up');
  });

  it('fails after the timeout, naming what it waited for, the last error and the diagnosis', async () => {
    const started = Date.now();
    await assert.rejects(
      until(
        () => {
          throw new Error('connection refused');
        },
        'the server answers',
        { timeoutMs: 200, intervalMs: 20, diagnose: () => 'the log' },
      ),
      (e: Error) => {
        assert.equal(
          e.message,
          'gave up after 200 ms waiting until the server answers\n' +
            'last error: connection refused\nthe log',
        );
        return true;
      },
    );
    assert.ok(Date.now() - started >= 200);
  });

  it('stops at once when stopIf gives a reason', async () => {
    let calls = 0;
    await assert.rejects(
      until(
        () => {
          calls++;
          return false;
        },
        'the demo page',
        {
          timeoutMs: 60_000,
          stopIf: () => (calls === 2 ? 'the demo exited with 1' : undefined),
        },
      ),
      /^Error: the demo exited with 1 waiting until the demo page$/,
    );
    assert.equal(calls, 2);
  });
});
