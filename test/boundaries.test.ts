// Which part of the tree may import which (README, Architecture): the two shells that write the
// rollout, reconciler/ and actions/, share rollout/ and core/ and never import each other;
// rollout/ carries decisions out and imports only the core, git/ and source/; wire/ (the HTTP
// shapes agents, reconciler, CLI and actions share) imports only the core; the core imports
// nothing but itself and the published JSON Schemas. Imports are read with TypeScript's own
// pre-processor (static, dynamic and type-only imports alike).

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { REPO_ROOT } from './helpers/cli.ts';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(REPO_ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'dist' && entry.name !== 'node_modules')
        out.push(...(await sources(path)));
    } else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** `file -> imported` for every relative import of the files under `dir`, paths from the root. */
async function imports(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of await sources(dir)) {
    const text = await readFile(join(REPO_ROOT, file), 'utf8');
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      if (!fileName.startsWith('.')) continue; // a package or node: builtin
      const target = relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), fileName));
      out.push(`${file} -> ${target}`);
    }
  }
  return out;
}

const under = (edge: string, part: string) => edge.split(' -> ')[1]!.startsWith(`${part}/`);

describe('boundaries between the parts of the tree', () => {
  it('reads imports: the check below sees what it is meant to see', async () => {
    const edges = await imports('actions');
    assert.ok(edges.includes('actions/promote/src/main.ts -> rollout/state.ts'), edges.join('\n'));
    assert.ok(edges.some((e) => under(e, 'core')));
  });

  it('actions/ never imports reconciler/', async () => {
    const edges = (await imports('actions')).filter((e) => under(e, 'reconciler'));
    assert.deepEqual(edges, [], 'actions/ imports reconciler/: import rollout/, wire/ or core/');
  });

  it('agent/ and simulate/ never import reconciler/: they share the wire/ shapes', async () => {
    const edges = [...(await imports('agent')), ...(await imports('simulate'))].filter((e) =>
      under(e, 'reconciler'),
    );
    assert.deepEqual(edges, []);
  });

  it('wire/ imports only core/ and itself', async () => {
    const edges = (await imports('wire')).filter((e) => !under(e, 'core') && !under(e, 'wire'));
    assert.deepEqual(edges, []);
  });

  it('reconciler/ never imports actions/', async () => {
    const edges = (await imports('reconciler')).filter((e) => under(e, 'actions'));
    assert.deepEqual(edges, []);
  });

  it('rollout/ imports only core/, git/, source/ and itself', async () => {
    const edges = (await imports('rollout')).filter(
      (e) => !['core', 'git', 'source', 'rollout'].some((part) => under(e, part)),
    );
    assert.deepEqual(edges, []);
  });

  it('core/ imports only core/ and the published schemas/', async () => {
    const edges = (await imports('core')).filter((e) => !under(e, 'core') && !under(e, 'schemas'));
    assert.deepEqual(edges, []);
  });
});
