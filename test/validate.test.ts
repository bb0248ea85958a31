import assert from 'node:assert/strict';
import { mkdtemp, writeFile, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fleetwave, REPO_ROOT } from './helpers/cli.ts';

describe('fleetwave validate', () => {
  it('accepts the example fleet', () => {
    const r = fleetwave(['validate', 'fleet']);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /^fleet: valid \(1 Fleet, 3 Releases, 7 ConfigLayers; 4 waves, version 2\.4\.0\)/,
    );
    assert.equal(r.status, 0);
  });

  it('reports a misspelt key at the key, with a suggestion, and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fw-validate-'));
    await mkdir(join(dir, 'fleet'));
    await writeFile(
      join(dir, 'fleet', 'fleet.yaml'),
      [
        '# yaml-language-server: $schema=../schemas/fleet.schema.json',
        'apiVersion: fleetwave.dev/v1',
        'kind: Fleet',
        'metadata: {name: demo}',
        'spec:',
        '  version: "1.0"',
        '  pollIntervalSeconds: 30',
        '  waves:',
        '    - name: everyone',
        '      percnt: 100',
        '      bake: 1h',
        '',
      ].join('\n'),
    );
    const r = fleetwave(['validate'], { cwd: dir });
    await rm(dir, { recursive: true, force: true });
    assert.equal(r.status, 1);
    // The schema error does not hide what else is wrong with the same document.
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'fleet/fleet.yaml:6:12: error: version "1.0" has no Release (there are no Release documents)',
      'fleet/fleet.yaml:10:7: error: unknown key "percnt" in spec.waves[0]; did you mean "percent"?',
    ]);
  });

  it('runs as the installed bin: npx fleetwave validate fleet', () => {
    // The compiled CLI (dist/, built by npm ci's prepare and by npm test) behind package.json's bin.
    const r = spawnSync('npx', ['--no-install', 'fleetwave', 'validate', 'fleet'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      // npm turns on V8's compile cache, which would leave a node-compile-cache dir in /tmp.
      env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /fleet: valid/);
  });

  it('exits 2 on usage errors', () => {
    assert.equal(fleetwave(['validate', '--format', 'xml']).status, 2);
    assert.equal(fleetwave(['validate', 'no-such-dir']).status, 2);
    assert.equal(fleetwave(['validate', '--bogus']).status, 2);
    assert.equal(fleetwave(['nonsense']).status, 2);
  });
});
