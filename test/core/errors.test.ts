import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ERROR_CODES, FleetwaveError } from '../../core/errors.ts';

describe('error codes', () => {
  it('documents every code with its kind in docs/errors.md', async () => {
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    for (const [code, { kind }] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      assert.ok(row, `docs/errors.md has no row for ${code}`);
      assert.match(row, new RegExp(`\\| ${kind} \\|`), `${code} is documented with the wrong kind`);
    }
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(
      documented.sort(),
      Object.keys(ERROR_CODES).sort(),
      'docs list codes that do not exist',
    );
  });

  it('carries code, kind and cause', () => {
    const cause = new Error('boom');
    const e = new FleetwaveError('GIT_FAILED', 'fetch failed', { cause });
    assert.equal(e.code, 'GIT_FAILED');
    assert.equal(e.kind, 'transient');
    assert.equal(e.cause, cause);
    assert.ok(e instanceof Error);
  });
});
