// Each committed actions/*/dist/index.js must be the build of its sources: the runner runs the
// bundle, not the TypeScript, so a stale bundle would ship yesterday's code. Rebuilt in memory.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { actionNames, bundle, distPath } from '../../actions/build.ts';

describe('action bundles', async () => {
  const names = await actionNames();

  it('exist for validate and promote', () => {
    assert.deepEqual(names, ['promote', 'validate']);
  });

  for (const name of names) {
    it(`actions/${name}/dist/index.js is the build of its sources (else: npm run build:actions)`, async () => {
      const path = distPath(name);
      assert.ok(existsSync(path), `${path} is missing`);
      const built = await bundle(name);
      assert.ok(
        built === readFileSync(path, 'utf8'),
        `actions/${name}/dist/index.js is stale: run npm run build:actions`,
      );
    });

    it(`actions/${name}/action.yml runs the bundle on node24`, () => {
      const action = parse(
        readFileSync(new URL(`../../actions/${name}/action.yml`, import.meta.url), 'utf8'),
      ) as {
        runs: { using: string; main: string };
      };
      assert.deepEqual(action.runs, { using: 'node24', main: 'dist/index.js' });
    });
  }

  it('builds the same bytes twice', async () => {
    assert.equal(await bundle('validate'), await bundle('validate'));
  });
});
