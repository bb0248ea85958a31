// Hostile fleets, generated in temp dirs and fed to the real CLI: each must end promptly in a
// clear error at the right file (and line, where there is one), never a hang, a stack trace or
// a byte read from outside the fleet. The spawn timeout is the hang guard; no test times
// anything.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetwave, REPO_ROOT, type CliResult } from './helpers/cli.ts';

const HANG_GUARD_MS = 30_000;
const STACK_FRAME = /^\s+at .*[(:]/m;

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fw-hostile-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** A new work dir holding `fleet/`: a copy of the valid example fleet, or an empty directory. */
async function workDir(name: string, example = true): Promise<string> {
  const dir = join(scratch, name);
  if (example) await cp(join(REPO_ROOT, 'fleet'), join(dir, 'fleet'), { recursive: true });
  else await mkdir(join(dir, 'fleet'), { recursive: true });
  return dir;
}

function validate(cwd: string, ...args: string[]): CliResult {
  const r = fleetwave(['validate', 'fleet', ...args], { cwd, timeoutMs: HANG_GUARD_MS });
  assert.doesNotMatch(r.stdout, STACK_FRAME, 'no stack trace on stdout');
  assert.doesNotMatch(r.stderr, STACK_FRAME, 'no stack trace on stderr');
  assert.doesNotMatch(r.stderr, /unexpected error|Warning:/);
  return r;
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** `file:line:col` of the first diagnostic of `file` in text output. */
function positionOf(stdout: string, file: string): string | undefined {
  const line = lines(stdout).find((l) => l.startsWith(`${file}:`));
  return /^([^:]+:\d+:\d+):/.exec(line ?? '')?.[1];
}

describe('hostile fleets', () => {
  it('refuses a 50 MB file by its size without reading it, and checks the rest', async () => {
    const dir = await workDir('huge');
    await writeFile(
      join(dir, 'fleet/config/50-huge.yaml'),
      Buffer.alloc(50 * 1024 * 1024, 'key: value\n'),
    );
    const r = validate(dir);
    assert.equal(r.status, 1);
    assert.deepEqual(lines(r.stdout), [
      'fleet/config/50-huge.yaml: error: file is 50 MiB (52428800 bytes); a fleet file may be at most 1 MiB',
    ]);
    assert.match(r.stderr, /^fleet: 1 error in 1 file$/m);
  });

  it('refuses a billion-laughs alias bomb at its first alias', async () => {
    const dir = await workDir('laughs');
    const levels = ['    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (const [prev, name] of [...'abcdefgh'].map((c, i) => [c, 'bcdefghi'[i]!])) {
      levels.push(`    ${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    await writeFile(
      join(dir, 'fleet/config/50-lol.yaml'),
      [
        '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
        'apiVersion: fleetwave.dev/v1',
        'kind: ConfigLayer',
        'metadata: {name: lol}',
        'spec:',
        '  priority: 5',
        '  values:',
        ...levels,
        '',
      ].join('\n'),
    );
    const r = validate(dir);
    assert.equal(r.status, 1);
    const [first, ...rest] = lines(r.stdout);
    assert.deepEqual(rest, []);
    // Line 9 is `    b: &b [*a, ...`: column 12 is the first alias.
    assert.match(first!, /^fleet\/config\/50-lol\.yaml:9:12: error: .*alias.*billion laughs/);
  });

  describe('20,000 levels of nesting', () => {
    const DEEP = 20_000;
    // Each style, 20,000 deep, and 100 deep: a parser that survives the first must still say
    // where the 65th level is; the second shows where that is.
    const styles = {
      flow: (n: number) => `deep: ${'['.repeat(n)}${']'.repeat(n)}\n`,
      compact: (n: number) => `deep:\n${'- '.repeat(n)}x\n`,
      mappings: (n: number) => `deep: ${'{a: '.repeat(n)}1${'}'.repeat(n)}\n`,
    };
    const expectedLine = { flow: 1, compact: 2, mappings: 1 };

    for (const [style, text] of Object.entries(styles)) {
      it(`refuses ${style} nesting, at its file and line, promptly`, async () => {
        const dir = await workDir(`deep-${style}`);
        await writeFile(join(dir, `fleet/config/60-${style}.yaml`), text(DEEP));
        const r = validate(dir);
        assert.equal(r.status, 1);
        const ours = lines(r.stdout).filter((l) => l.includes(`60-${style}.yaml`));
        assert.equal(ours.length, 1, r.stdout);
        const line = expectedLine[style as keyof typeof expectedLine];
        assert.match(
          ours[0]!,
          new RegExp(`^fleet/config/60-${style}\\.yaml:${line}:\\d+: error: nesting .*64 levels`),
        );
      });

      it(`points at the 65th level of ${style} nesting however deep it goes`, async () => {
        const shallow = await workDir(`deep-${style}-100`);
        await writeFile(join(shallow, `fleet/config/60-${style}.yaml`), text(100));
        const deep = await workDir(`deep-${style}-again`);
        await writeFile(join(deep, `fleet/config/60-${style}.yaml`), text(DEEP));
        const file = `fleet/config/60-${style}.yaml`;
        const want = positionOf(validate(shallow).stdout, file);
        assert.ok(want);
        assert.equal(positionOf(validate(deep).stdout, file), want);
      });
    }

    it('points at the mapping 65 levels down in block style', async () => {
      const dir = await workDir('deep-block');
      const text = Array.from({ length: 100 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n');
      await writeFile(join(dir, 'fleet/config/60-block.yaml'), `${text} leaf\n`);
      const r = validate(dir);
      assert.equal(r.status, 1);
      // Line 65 holds `k64:`, indented 64 spaces: the 65th mapping starts at column 65.
      assert.deepEqual(lines(r.stdout), [
        'fleet/config/60-block.yaml:65:65: error: nesting is deeper than 64 levels',
      ]);
    });
  });

  it('reports bytes that are not UTF-8 at their line and column', async () => {
    const dir = await workDir('latin1');
    const head = [
      '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: ConfigLayer',
      'metadata: {name: latin1}',
      'spec:',
      '  priority: 5',
      '  values:',
      '    greeting: "caf',
    ].join('\n');
    const bytes = Buffer.concat([
      Buffer.from(head),
      Buffer.from([0xe9]), // "é" in Latin-1
      Buffer.from('"\n    farewell: bye\n'),
    ]);
    await writeFile(join(dir, 'fleet/config/70-latin1.yaml'), bytes);
    const r = validate(dir);
    assert.equal(r.status, 1);
    // Line 8 is `    greeting: "caf` + 0xe9: the bad byte is its 19th character.
    assert.deepEqual(lines(r.stdout), [
      `fleet/config/70-latin1.yaml:8:19: error: file is not valid UTF-8 (byte 0xe9 at offset ${head.length}); save it as UTF-8`,
    ]);
  });

  describe('symlinks', () => {
    const MARKER = 'root:x:0:0:MARKER-fw-hostile-8c1f:/root:/bin/bash';
    let outside: string;
    before(async () => {
      // A copy of /etc/passwd with a line no fleet holds: if it ever shows up, it was read.
      outside = await mkdtemp(join(tmpdir(), 'fw-outside-'));
      await writeFile(join(outside, 'passwd'), `${MARKER}\n`);
      await writeFile(join(outside, 'layer.yaml'), `# ${MARKER}\nkind: ConfigLayer\n`);
    });
    after(async () => {
      await rm(outside, { recursive: true, force: true });
    });

    it('refuses a symlink to a file outside the fleet and never reads it', async () => {
      const dir = await workDir('link-out');
      await symlink(join(outside, 'passwd'), join(dir, 'fleet/config/80-passwd.yaml'));
      for (const format of ['text', 'json', 'github']) {
        const r = validate(dir, '--format', format);
        assert.equal(r.status, 1);
        assert.ok(!r.stdout.includes('MARKER') && !r.stderr.includes('MARKER'), format);
      }
      const r = validate(dir);
      assert.deepEqual(lines(r.stdout), [
        `fleet/config/80-passwd.yaml: error: symlink points outside the fleet directory (to ${join(outside, 'passwd')}); fleet files must live inside it`,
      ]);
    });

    it('refuses a relative symlink that climbs out, and a symlinked directory outside', async () => {
      const dir = await workDir('link-out-relative');
      await cp(join(outside, 'layer.yaml'), join(dir, 'layer.yaml'));
      await symlink('../../layer.yaml', join(dir, 'fleet/config/80-up.yaml'));
      await symlink(outside, join(dir, 'fleet/shared'));
      const r = validate(dir);
      assert.equal(r.status, 1);
      assert.deepEqual(lines(r.stdout), [
        'fleet/config/80-up.yaml: error: symlink points outside the fleet directory (to ../../layer.yaml); fleet files must live inside it',
        `fleet/shared: error: symlink points outside the fleet directory (to ${outside}); fleet files must live inside it`,
      ]);
      assert.ok(!r.stdout.includes('MARKER') && !r.stderr.includes('MARKER'));
    });

    it('follows a symlink that stays inside the fleet', async () => {
      const dir = await workDir('link-in');
      // The layer lives under a name that is not a fleet file, so it is read once: via the link.
      await cp(join(REPO_ROOT, 'fleet/config/30-windows.yaml'), join(dir, 'fleet/windows.layer'));
      await rm(join(dir, 'fleet/config/30-windows.yaml'));
      await symlink('../windows.layer', join(dir, 'fleet/config/30-windows.yaml'));
      const r = validate(dir);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^fleet: valid \(1 Fleet, 3 Releases, 7 ConfigLayers;/);
      assert.equal(r.status, 0);
    });

    it('ends a symlinked directory loop and reads each directory once', async () => {
      const dir = await workDir('dir-loop');
      await symlink('..', join(dir, 'fleet/config/up'));
      await symlink('../config', join(dir, 'fleet/releases/config-again'));
      await mkdir(join(dir, 'fleet/a/b'), { recursive: true });
      await symlink('../../a', join(dir, 'fleet/a/b/loop'));
      const r = validate(dir);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^fleet: valid \(1 Fleet, 3 Releases, 7 ConfigLayers;/);
      assert.equal(r.status, 0);
    });

    it('reports symlinks that loop or lead nowhere', async () => {
      const dir = await workDir('file-loop');
      await symlink('91-pong.yaml', join(dir, 'fleet/config/90-ping.yaml'));
      await symlink('90-ping.yaml', join(dir, 'fleet/config/91-pong.yaml'));
      await symlink('gone.yaml', join(dir, 'fleet/config/92-dangling.yaml'));
      const r = validate(dir);
      assert.equal(r.status, 1);
      assert.deepEqual(lines(r.stdout), [
        'fleet/config/90-ping.yaml: error: symlink to 91-pong.yaml loops back on itself and leads to no file',
        'fleet/config/91-pong.yaml: error: symlink to 90-ping.yaml loops back on itself and leads to no file',
        'fleet/config/92-dangling.yaml: error: symlink points to gone.yaml, which does not exist',
      ]);
    });
  });

  it('skips a FIFO named like a fleet file instead of waiting on it', async (t) => {
    const dir = await workDir('fifo');
    const made = spawnSync('mkfifo', [join(dir, 'fleet/config/99-pipe.yaml')]);
    if (made.error || made.status !== 0) return t.skip('mkfifo is not available');
    const r = validate(dir);
    assert.match(r.stderr, /^fleet: valid/);
    assert.equal(r.status, 0);
  });

  it('reports an empty directory, and one without fleet files, as an empty fleet', async () => {
    const empty = await workDir('empty', false);
    const notYaml = await workDir('not-yaml', false);
    await writeFile(join(notYaml, 'fleet/README.md'), '# fleet\n');
    await writeFile(join(notYaml, 'fleet/.hidden.yaml'), 'kind: Fleet\n');
    for (const dir of [empty, notYaml]) {
      const r = validate(dir);
      assert.equal(r.status, 1);
      assert.deepEqual(lines(r.stdout), [
        'fleet: error: no fleet documents found: expected fleet.yaml, releases/*.yaml and config/*.yaml',
      ]);
    }
  });

  it('reports a second Fleet document, in the same file or another', async () => {
    const fleetYaml = await readFile(join(REPO_ROOT, 'fleet/fleet.yaml'), 'utf8');
    const same = await workDir('two-fleets-one-file');
    const other = fleetYaml.replace('name: acme-metrics', 'name: acme-metrics-2');
    await writeFile(join(same, 'fleet/fleet.yaml'), `${fleetYaml}---\n${other}`);
    const kindLine = fleetYaml.split('\n').indexOf('kind: Fleet') + 1;
    const r1 = validate(same);
    assert.equal(r1.status, 1);
    const second = fleetYaml.split('\n').length + kindLine;
    assert.deepEqual(lines(r1.stdout), [
      `fleet/fleet.yaml:${second}:7: error: a second Fleet document; a fleet has exactly one (the first is at fleet/fleet.yaml:${kindLine}:7)`,
    ]);

    const two = await workDir('two-fleets-two-files');
    await writeFile(join(two, 'fleet/other-fleet.yaml'), other);
    const r2 = validate(two);
    assert.equal(r2.status, 1);
    assert.equal(lines(r2.stdout).length, 1);
    assert.match(
      lines(r2.stdout)[0]!,
      new RegExp(
        `^fleet/other-fleet\\.yaml:${kindLine}:7: error: a second Fleet document; .*fleet/fleet\\.yaml:${kindLine}:7`,
      ),
    );
  });

  it('reports syntax errors, wrong types, unknown and duplicate keys, each at its place', async () => {
    const dir = await workDir('mistakes');
    const layer = (name: string, ...spec: string[]): string =>
      [
        '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
        'apiVersion: fleetwave.dev/v1',
        'kind: ConfigLayer',
        `metadata: {name: ${name}}`,
        'spec:',
        ...spec,
        '',
      ].join('\n');
    await writeFile(
      join(dir, 'fleet/config/51-syntax.yaml'),
      layer('syntax', '  priority: 5', '  values:', '    ports: [80, 443'),
    );
    await writeFile(
      join(dir, 'fleet/config/52-type.yaml'),
      layer('type', '  priority: high', '  values: {}'),
    );
    await writeFile(
      join(dir, 'fleet/config/53-unknown.yaml'),
      layer('unknown', '  priority: 5', '  valeus: {}'),
    );
    await writeFile(
      join(dir, 'fleet/config/54-duplicate.yaml'),
      layer('duplicate', '  priority: 5', '  values: {}', '  priority: 6'),
    );
    await writeFile(join(dir, 'fleet/config/55-tab.yaml'), layer('tab', '\tpriority: 5'));
    const r = validate(dir);
    assert.equal(r.status, 1);
    const at = (file: string): string | undefined => positionOf(r.stdout, `fleet/config/${file}`);
    const message = (file: string): string =>
      lines(r.stdout).find((l) => l.startsWith(`fleet/config/${file}:`)) ?? '';
    // The unclosed `[` opens on line 8, column 12.
    assert.equal(at('51-syntax.yaml'), 'fleet/config/51-syntax.yaml:8:12');
    assert.match(message('51-syntax.yaml'), /error: .*\]/);
    assert.equal(at('52-type.yaml'), 'fleet/config/52-type.yaml:6:13');
    assert.match(message('52-type.yaml'), /error: spec\.priority must be .*number.*"high"/);
    assert.equal(at('53-unknown.yaml'), 'fleet/config/53-unknown.yaml:7:3');
    assert.match(message('53-unknown.yaml'), /error: unknown key "valeus".*did you mean "values"/);
    assert.equal(at('54-duplicate.yaml'), 'fleet/config/54-duplicate.yaml:8:3');
    assert.match(message('54-duplicate.yaml'), /error: .*duplicate.*priority|priority.*twice/i);
    assert.equal(at('55-tab.yaml'), 'fleet/config/55-tab.yaml:6:1');
    assert.match(message('55-tab.yaml'), /error: .*tab/i);
  });

  it('reads a mapping with 60,000 keys promptly', async () => {
    const dir = await workDir('many-keys');
    const keys = Array.from({ length: 60_000 }, (_, i) => `    k${i}: 1`);
    await writeFile(
      join(dir, 'fleet/config/56-keys.yaml'),
      [
        '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
        'apiVersion: fleetwave.dev/v1',
        'kind: ConfigLayer',
        'metadata: {name: keys}',
        'spec:',
        '  priority: 5',
        '  values:',
        ...keys,
        '',
      ].join('\n'),
    );
    const r = validate(dir);
    assert.match(r.stderr, /^fleet: valid/);
  });
});
