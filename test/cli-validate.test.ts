// `fleetwave validate` as people and CI call it: the three output formats, paths relative to
// the working directory, help, and the exit codes 0 (valid), 1 (invalid), 2 (usage).

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetwave, REPO_ROOT } from './helpers/cli.ts';

let scratch: string;
/** `deploy/fleet`: the example fleet with one error and one warning. */
let broken: string;
/** `fleet`: the example fleet with a file whose name and key need escaping. */
let odd: string;

const LAST_WAVE =
  'the last wave ("everyone") must be at 100 percent, not 90, or some agents would never be updated';
const MODELINE =
  'add "# yaml-language-server: $schema=<path>/release.schema.json" as the first line so editors check this file as you type';

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fw-cli-'));
  broken = join(scratch, 'broken');
  await cp(join(REPO_ROOT, 'fleet'), join(broken, 'deploy/fleet'), { recursive: true });
  await mkdir(join(broken, 'deploy/sub'));
  const fleetYaml = join(broken, 'deploy/fleet/fleet.yaml');
  const text = await readFile(fleetYaml, 'utf8');
  assert.equal(text.split('\n')[73], '      percent: 100');
  await writeFile(fleetYaml, text.replace(/percent: 100\n/, 'percent: 90\n'));
  const release = join(broken, 'deploy/fleet/releases/2.3.1.yaml');
  await writeFile(release, (await readFile(release, 'utf8')).split('\n').slice(1).join('\n'));

  odd = join(scratch, 'odd');
  await cp(join(REPO_ROOT, 'fleet'), join(odd, 'fleet'), { recursive: true });
  await writeFile(
    join(odd, 'fleet/config/50%,a:b.yaml'),
    [
      '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: ConfigLayer',
      'metadata: {name: odd}',
      'spec:',
      '  priority: 5',
      '  values: {}',
      '  "100%\\r\\nsure, yes: no": 1',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('fleetwave validate --format json', () => {
  interface Report {
    valid: boolean;
    errorCount: number;
    warningCount: number;
    diagnostics: Array<Record<string, unknown>>;
  }

  it('reports a valid fleet as valid, with nothing else on stdout', () => {
    const r = fleetwave(['validate', 'fleet', '--format', 'json']);
    assert.equal(r.status, 0);
    assert.deepEqual(JSON.parse(r.stdout) as Report, {
      valid: true,
      errorCount: 0,
      warningCount: 0,
      diagnostics: [],
    });
  });

  it('reports every diagnostic with its position, code and severity', () => {
    const r = fleetwave(['validate', 'deploy/fleet', '--format', 'json'], { cwd: broken });
    assert.equal(r.status, 1);
    const report = JSON.parse(r.stdout) as Report;
    assert.equal(report.valid, false);
    assert.equal(report.errorCount, 1);
    assert.equal(report.warningCount, 1);
    assert.deepEqual(
      report.diagnostics.map(({ file, line, col, severity, code, message }) => ({
        file,
        line,
        col,
        severity,
        code,
        message,
      })),
      [
        {
          file: 'deploy/fleet/fleet.yaml',
          line: 74,
          col: 16,
          severity: 'error',
          code: 'last-wave',
          message: LAST_WAVE,
        },
        {
          file: 'deploy/fleet/releases/2.3.1.yaml',
          line: 1,
          col: 1,
          severity: 'warning',
          code: 'modeline',
          message: MODELINE,
        },
      ],
    );
  });

  it('keeps a warning-only fleet valid', async () => {
    const dir = join(scratch, 'warning-only');
    await cp(join(REPO_ROOT, 'fleet'), join(dir, 'fleet'), { recursive: true });
    const release = join(dir, 'fleet/releases/2.3.1.yaml');
    await writeFile(release, (await readFile(release, 'utf8')).split('\n').slice(1).join('\n'));
    const r = fleetwave(['validate', '--format', 'json'], { cwd: dir });
    assert.equal(r.status, 0);
    const report = JSON.parse(r.stdout) as Report;
    assert.equal(report.valid, true);
    assert.equal(report.warningCount, 1);
    assert.equal(report.diagnostics[0]?.['severity'], 'warning');
  });
});

describe('fleetwave validate --format github', () => {
  it('prints one workflow annotation per diagnostic', () => {
    const r = fleetwave(['validate', 'deploy/fleet', '--format', 'github'], { cwd: broken });
    assert.equal(r.status, 1);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [
      `::error file=deploy/fleet/fleet.yaml,line=74,col=16,endLine=74,endColumn=18,title=fleetwave last-wave::${LAST_WAVE}`,
      `::warning file=deploy/fleet/releases/2.3.1.yaml,line=1,col=1,endLine=1,endColumn=1,title=fleetwave modeline::${MODELINE}`,
    ]);
  });

  it('escapes % in messages and % : , in properties; a key with CR LF is quoted at the source', () => {
    const r = fleetwave(['validate', '--format', 'github'], { cwd: odd });
    assert.equal(r.status, 1);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stdout);
    const [, props, message] = /^::error (.*?)::(.*)$/.exec(lines[0]!) ?? [];
    assert.equal(
      props,
      'file=fleet/config/50%25%2Ca%3Ab.yaml,line=8,col=3,endLine=8,endColumn=26,title=fleetwave unknown-key',
    );
    assert.match(message!, /^unknown key "100%25\\r\\nsure, yes: no" in spec/);
  });

  it('annotates a file-level problem without a line', async () => {
    const dir = join(scratch, 'empty');
    await mkdir(join(dir, 'fleet'), { recursive: true });
    const r = fleetwave(['validate', '--format', 'github'], { cwd: dir });
    assert.equal(r.status, 1);
    assert.equal(
      r.stdout,
      '::error file=fleet,title=fleetwave empty-fleet::no fleet documents found: expected fleet.yaml, releases/*.yaml and config/*.yaml\n',
    );
  });
});

describe('fleetwave validate text output', () => {
  const expected = (prefix: string): string[] => [
    `${prefix}/fleet.yaml:74:16: error: ${LAST_WAVE}`,
    `${prefix}/releases/2.3.1.yaml:1:1: warning: ${MODELINE}`,
  ];

  for (const dir of ['deploy/fleet', './deploy/fleet', 'deploy/fleet/', 'deploy//fleet']) {
    it(`names files relative to the working directory for "${dir}"`, () => {
      const r = fleetwave(['validate', dir], { cwd: broken });
      assert.equal(r.status, 1);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), expected('deploy/fleet'));
      assert.equal(r.stderr, 'deploy/fleet: 1 error in 1 file\n');
    });
  }

  it('names files relative to the working directory from a sibling and by absolute path', () => {
    const up = fleetwave(['validate', '../fleet'], { cwd: join(broken, 'deploy/sub') });
    assert.deepEqual(up.stdout.trimEnd().split('\n'), expected('../fleet'));
    const absolute = fleetwave(['validate', join(broken, 'deploy/fleet')], {
      cwd: join(broken, 'deploy'),
    });
    assert.deepEqual(absolute.stdout.trimEnd().split('\n'), expected('fleet'));
  });

  it('keeps each diagnostic on one line when a key holds a newline', () => {
    const r = fleetwave(['validate'], { cwd: odd });
    assert.equal(r.status, 1);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [
      'fleet/config/50%,a:b.yaml:8:3: error: unknown key "100%\\r\\nsure, yes: no" in spec (allowed: selector, priority, values)',
    ]);
  });
});

describe('fleetwave help and exit codes', () => {
  it('prints help and exits 0 when asked', () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = fleetwave(args);
      assert.equal(r.status, 0, args.join(' '));
      assert.match(r.stdout, /^Usage: fleetwave <command> \[options\]/);
      assert.match(r.stdout, /^ {2}validate /m);
    }
    for (const args of [
      ['validate', '--help'],
      ['validate', '-h'],
    ]) {
      const r = fleetwave(args);
      assert.equal(r.status, 0, args.join(' '));
      assert.match(r.stdout, /^Usage: fleetwave validate \[DIR\] \[options\]/);
      assert.match(r.stdout, /--format text\|json\|github/);
      assert.match(r.stdout, /--revision REV/);
    }
  });

  it('exits 0 on a valid fleet and 1 on an invalid one', () => {
    assert.equal(fleetwave(['validate']).status, 0);
    assert.equal(fleetwave(['validate', 'deploy/fleet'], { cwd: broken }).status, 1);
  });

  const usage: Array<[string[], RegExp]> = [
    [[], /^Usage: fleetwave/],
    [['nonsense'], /unknown command "nonsense"/],
    [['validate', '--format', 'xml'], /--format must be one of text, json, github, not "xml"/],
    [['validate', '--bogus'], /--bogus/],
    [['validate', 'fleet', 'fleet'], /at most one directory/],
    [
      ['validate', 'no-such-dir'],
      /fleet directory no-such-dir does not exist or is not a directory/,
    ],
    [
      ['validate', 'fleet/fleet.yaml'],
      /fleet directory fleet\/fleet\.yaml does not exist or is not a directory/,
    ],
    [['validate', '--revision', ''], /--revision needs a revision/],
    [['validate', '--repo', '.'], /--repo only makes sense with --revision/],
  ];
  for (const [args, message] of usage) {
    it(`exits 2 for: fleetwave ${args.join(' ')}`, () => {
      const r = fleetwave(args);
      assert.equal(r.status, 2);
      assert.match(args.length === 0 ? r.stdout : r.stderr, message);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    });
  }
});
