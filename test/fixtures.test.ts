// The corpus of broken fleets: every directory under test/fixtures/invalid holds a fleet/ and
// the exact text output validation must give for it (expected.txt, one diagnostic a line).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { formatText } from '../core/diagnostics.ts';
import { validateFleet } from '../core/fleet/validate.ts';
import { readFleetDirectory } from '../source/directory.ts';
import { fleetwave } from './helpers/cli.ts';

const CORPUS = fileURLToPath(new URL('./fixtures/invalid/', import.meta.url));
const fixtures = readdirSync(CORPUS, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

function expected(name: string): string[] {
  return readFileSync(join(CORPUS, name, 'expected.txt'), 'utf8')
    .trimEnd()
    .split('\n');
}

describe('broken fleets (test/fixtures/invalid)', () => {
  it('holds at least 40 distinct fixtures', () => {
    assert.ok(fixtures.length >= 40, `only ${fixtures.length} fixtures`);
    const outputs = new Set(fixtures.map((name) => expected(name).join('\n')));
    assert.equal(outputs.size, fixtures.length, 'two fixtures expect the same output');
  });

  for (const name of fixtures) {
    it(name, async () => {
      const dir = join(CORPUS, name);
      const result = validateFleet(await readFleetDirectory('fleet', { cwd: dir }));
      assert.deepEqual(result.diagnostics.map(formatText), expected(name));
      assert.ok(result.errorCount > 0, 'a broken fleet must have at least one error');
      assert.equal(result.model, undefined);
    });
  }
});

describe('broken fleets through the CLI', () => {
  // One syntax error, one schema error with a suggestion, one error without a line.
  const sample = [
    '07-yaml-unclosed-quote',
    '19-unknown-key-in-wave',
    '35-no-fleet-document',
    '70-schema-modelines',
  ];
  for (const name of sample) {
    it(`fleetwave validate prints ${name}/expected.txt and exits 1`, () => {
      assert.ok(fixtures.includes(name), `fixture ${name} is missing`);
      const r = fleetwave(['validate', 'fleet'], { cwd: join(CORPUS, name) });
      assert.equal(r.stdout, `${expected(name).join('\n')}\n`);
      assert.match(r.stderr, /^fleet: \d+ errors? in \d+ files?\n$/);
      assert.equal(r.status, 1);
    });
  }
});
