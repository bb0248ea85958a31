// Documents that break their schema are still checked beyond it where they are sound: whatever
// the broken part holds, validation reports problems and never throws.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { formatText } from '../../../core/diagnostics.ts';
import { validateFleet } from '../../../core/fleet/validate.ts';
import type { SourceFile } from '../../../core/fleet/source.ts';
import { REPO_ROOT } from '../../helpers/cli.ts';

const FLEET = join(REPO_ROOT, 'fleet');
const NAMES = [
  'fleet.yaml',
  ...readdirSync(join(FLEET, 'releases')).map((f) => `releases/${f}`),
  ...readdirSync(join(FLEET, 'config')).map((f) => `config/${f}`),
].sort();
const DOCUMENTS = new Map(
  NAMES.map((n) => [n, parse(readFileSync(join(FLEET, n), 'utf8')) as unknown]),
);

type Segment = string | number;

/** Every path into a value, the root included. */
function paths(value: unknown, base: Segment[] = []): Segment[][] {
  const out = [base];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...base, i])));
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...base, k]));
  return out;
}

function replaced(value: unknown, path: Segment[], by: unknown): unknown {
  if (path.length === 0) return by;
  const [head, ...rest] = path;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    Segment,
    unknown
  >;
  copy[head!] = replaced(copy[head!], rest, by);
  return copy;
}

function source(overrides: Map<string, unknown>): { root: string; files: SourceFile[] } {
  return {
    root: 'fleet',
    files: NAMES.map((name) => ({
      name,
      display: `fleet/${name}`,
      bytes: new TextEncoder().encode(stringify(overrides.get(name) ?? DOCUMENTS.get(name))),
    })),
  };
}

describe('validation of documents that break their schema', () => {
  it('never throws, whatever replaces any node of any document', () => {
    const targets = NAMES.flatMap((name) =>
      paths(DOCUMENTS.get(name))
        .filter((p) => p.length > 1)
        .map((p) => ({ name, path: p })),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...targets), fc.jsonValue({ maxDepth: 3 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (edits) => {
          const overrides = new Map<string, unknown>();
          for (const [{ name, path }, by] of edits) {
            const doc = overrides.get(name) ?? DOCUMENTS.get(name);
            overrides.set(name, replaced(doc, path, by));
          }
          const result = validateFleet({ ...source(overrides), diagnostics: [] });
          for (const d of result.diagnostics) assert.equal(typeof formatText(d), 'string');
        },
      ),
      { numRuns: 150, seed: 13 },
    );
  });

  it('reports a problem beyond the schema in a document that also breaks it', () => {
    const fleet = DOCUMENTS.get('fleet.yaml') as { spec: { waves: Array<object> } };
    const waves = fleet.spec.waves.map((w, i) =>
      // The first wave: an unknown key (schema); the second: a bad selector (beyond it).
      i === 0
        ? { ...w, percnt: 5 }
        : i === 1
          ? { ...w, selector: { matchExpressions: [{ key: 'env', operator: 'In' }] } }
          : w,
    );
    const broken = { ...fleet, spec: { ...fleet.spec, waves } };
    const result = validateFleet({
      ...source(new Map([['fleet.yaml', broken]])),
      diagnostics: [],
    });
    const messages = result.diagnostics.map((d) => `${d.code}: ${d.message}`);
    assert.ok(
      messages.some((m) => m.startsWith('unknown-key: unknown key "percnt"')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => m.startsWith('selector: ')),
      messages.join('\n'),
    );
  });
});
