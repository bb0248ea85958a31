import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { etagOf } from '../../core/target/etag.ts';
import type { Content, RenderError, Target } from '../../core/target/model.ts';
import { fleetwave } from '../helpers/cli.ts';
import { git } from '../helpers/git.ts';
import { syntheticAgents } from '../../simulate/labels.ts';

interface Entry {
  id: string;
  wave: string;
  target?: Target;
  error?: RenderError;
}

const parseJson = (stdout: string) => JSON.parse(stdout) as Entry[];

const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/** A temp dir removed when the file's tests are done. */
async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fw-targets-'));
  scratch.push(dir);
  return dir;
}

describe('fleetwave targets', () => {
  it('renders the example inventory over the example fleet, as text', () => {
    const r = fleetwave(['targets', 'fleet', '--inventory', 'examples/inventory.yaml']);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((line) => line.split(/\s+/));
    assert.equal(rows.length, 16);
    assert.deepEqual(
      rows.slice(0, 8).map(([id, wave]) => [id, wave]),
      [
        ['build-dub1-01', 'canary'],
        ['build-sin1-15', 'canary'],
        ['build-iad1-01', 'everyone'],
        ['web-dub1-07', 'early'],
        ['db-dub1-03', 'early'],
        ['web-fra1-10', 'europe'],
        ['win-dub1-08', 'europe'],
        ['web-fra1-21', 'europe'],
      ],
    );
    for (const row of rows) {
      assert.equal(row.length, 4, row.join(' '));
      assert.equal(row[2], '2.4.0');
      assert.match(row[3]!, /^[0-9a-f]{12}$/);
    }
    assert.equal(
      r.stderr,
      '16 agents: canary 2, early 2, europe 3, everyone 9; every agent has a target\n',
    );
  });

  it('prints the targets as JSON, one entry per agent in inventory order', () => {
    const r = fleetwave(['targets', '--inventory', 'examples/inventory.yaml', '--format', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const entries = parseJson(r.stdout);
    assert.equal(entries[0]!.id, 'build-dub1-01');
    assert.equal(entries.at(-1)!.id, 'win-sin1-01');
    for (const e of entries) {
      assert.deepEqual(Object.keys(e), ['id', 'wave', 'target']);
      const t = e.target!;
      assert.equal(t.wave, e.wave);
      assert.equal(t.revision, 'workdir');
      assert.equal(t.version, '2.4.0');
      assert.equal(t.pollAfterSeconds, 60);
      assert.equal(t.etag, etagOf(t as Content));
      const config = t.config as {
        agent: { hostname: string };
        output: { apiKey: unknown };
        tags: { region: string };
      };
      assert.equal(config.agent.hostname, e.id);
      assert.deepEqual(config.output.apiKey, {
        secretRef: { provider: 'vault', key: 'secret/metrics-agent/ingest#api_key' },
      });
    }
    const win = entries.find((e) => e.id === 'win-dub1-08')!.target!;
    assert.match(win.artifact.url, /windows_amd64\.zip$/);
    const db = entries.find((e) => e.id === 'db-dub1-03')!.target!;
    assert.match(db.artifact.url, /linux_arm64\.tar\.gz$/);
    assert.equal(
      (db.config as { output: { endpoint: string } }).output.endpoint,
      'https://ingest.eu-west-1.metrics.acme.example/v1/write',
    );
    assert.ok('postgres' in (db.config as { collectors: object }).collectors);
  });

  it('renders 5,000 generated agents from a JSON inventory, every wave populated', async () => {
    const dir = await scratchDir();
    const agents = syntheticAgents(5_000, 11);
    await writeFile(join(dir, 'inventory.json'), JSON.stringify(agents));
    const r = fleetwave([
      'targets',
      'fleet',
      '--inventory',
      join(dir, 'inventory.json'),
      '--format',
      'json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const entries = parseJson(r.stdout);
    assert.deepEqual(
      entries.map((e) => e.id),
      agents.map((a) => a.id),
    );
    assert.deepEqual(
      new Set(entries.map((e) => e.wave)),
      new Set(['canary', 'early', 'europe', 'everyone']),
    );
    assert.match(
      r.stderr,
      /^5000 agents: canary \d+, early \d+, europe \d+, everyone \d+; every agent has a target\n$/,
    );
  });

  it('works on a fleet it has never seen, and names each agent that gets no target', async () => {
    const dir = await writeFleet();
    const inventory = [
      '- id: ok-1',
      '  labels: {os: linux, arch: arm64, site: lab}',
      '- id: no-site',
      '  labels: {os: linux, arch: arm64}',
      '- id: mac',
      '  labels: {os: darwin, arch: arm64, site: lab}',
      '- id: ok-2',
      '  labels: {os: linux, arch: arm64, site: "sea-2"}',
      '- id: bare',
      '',
    ].join('\n');
    await writeFile(join(dir, 'agents.yaml'), inventory);
    const text = fleetwave(['targets', '--inventory', 'agents.yaml'], { cwd: dir });
    assert.equal(text.status, 1);
    assert.deepEqual(text.stdout.trimEnd().split('\n'), [
      'ok-1     all  0.9.0  ' + text.stdout.split('\n')[0]!.slice(-12),
      'no-site  all  error  missing-label: agent has no "site" label, which config upstream interpolates (ConfigLayer base, fleet/config/base.yaml)',
      'mac      all  error  no-artifact: release 0.9.0 has no artifact for darwin/arm64 (it has linux/arm64)',
      'ok-2     all  0.9.0  ' + text.stdout.split('\n')[3]!.slice(-12),
      'bare     all  error  missing-label: agent has no "arch" label, which picks the artifact of release 0.9.0; no "os" label, which picks the artifact of release 0.9.0; no "site" label, which config upstream interpolates (ConfigLayer base, fleet/config/base.yaml)',
    ]);
    assert.equal(
      text.stderr,
      '5 agents: all 5; 3 without a target (missing-label 2, no-artifact 1)\n',
    );

    const json = fleetwave(['targets', '--inventory', 'agents.yaml', '--format', 'json'], {
      cwd: dir,
    });
    assert.equal(json.status, 1);
    const entries = parseJson(json.stdout);
    assert.deepEqual(entries[0]!.target!.config, {
      upstream: 'https://lab.example/ingest',
      name: 'ok-1',
      literal: '${NOT_INTERPOLATED}',
    });
    assert.deepEqual(entries[1], {
      id: 'no-site',
      wave: 'all',
      error: {
        code: 'missing-label',
        labels: ['site'],
        message:
          'agent has no "site" label, which config upstream interpolates (ConfigLayer base, fleet/config/base.yaml)',
      },
    });
    assert.equal(entries[2]!.error!.code, 'no-artifact');
    assert.equal(entries[3]!.target!.config['upstream'], 'https://sea-2.example/ingest');
  });

  it('renders the fleet at a git revision, with its commit as the revision', async (t) => {
    if (spawnSync('git', ['--version']).status !== 0) return t.skip('git is not installed');
    const dir = await writeFleet();
    await writeFile(
      join(dir, 'agents.json'),
      '[{"id": "a", "labels": {"os": "linux", "arch": "arm64", "site": "x"}}]',
    );
    git(dir, 'init', '-q');
    git(dir, 'add', 'fleet');
    git(dir, 'commit', '-q', '-m', 'fleet');
    const sha = git(dir, 'rev-parse', 'HEAD');
    const r = fleetwave(
      ['targets', '--revision', 'HEAD', '--inventory', 'agents.json', '--format', 'json'],
      {
        cwd: dir,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(parseJson(r.stdout)[0]!.target!.revision, sha);
  });

  it('reports inventory problems at their line and renders nothing', async () => {
    const dir = await scratchDir();
    await writeFile(
      join(dir, 'bad.yaml'),
      ['- id: a', '  labels: {os: linux}', '- id: a', '- id: b', '  labels: {cores: 8}', ''].join(
        '\n',
      ),
    );
    const r = fleetwave(['targets', join(process.cwd(), 'fleet'), '--inventory', 'bad.yaml'], {
      cwd: dir,
    });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'bad.yaml:3:7: error: duplicate agent id "a" (first at line 1)',
      'bad.yaml:5:19: error: agent 3: label "cores" must be a string, not number; quote it: "8"',
      'bad.yaml: 2 problems; no targets rendered',
    ]);
  });

  it('refuses an invalid fleet and renders nothing', async () => {
    const dir = await writeFleet({ version: '9.9.9' });
    await writeFile(join(dir, 'agents.yaml'), '- id: a\n');
    const r = fleetwave(['targets', '--inventory', 'agents.yaml'], { cwd: dir });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /fleet\/fleet\.yaml:\d+:\d+: error: version "9\.9\.9" has no Release/);
    assert.match(r.stderr, /fleet: the fleet has 1 error; no targets rendered\n$/);
  });

  it('exits 2 on usage errors', () => {
    const usage: string[][] = [
      ['targets'],
      ['targets', '--inventory', 'no-such-file.yaml'],
      ['targets', '--inventory', 'examples/inventory.yaml', '--format', 'xml'],
      ['targets', 'fleet', 'other', '--inventory', 'examples/inventory.yaml'],
      ['targets', 'no-such-dir', '--inventory', 'examples/inventory.yaml'],
      ['targets', '--bogus'],
    ];
    for (const args of usage) {
      const r = fleetwave(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
    assert.match(fleetwave(['targets']).stderr, /targets needs --inventory FILE/);
    const help = fleetwave(['targets', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: fleetwave targets \[DIR\] --inventory FILE/);
  });
});

/** A small fleet no other test uses: one wave, one platform, a layer that interpolates a label. */
async function writeFleet(options: { version?: string } = {}): Promise<string> {
  const dir = await scratchDir();
  await mkdir(join(dir, 'fleet', 'releases'), { recursive: true });
  await mkdir(join(dir, 'fleet', 'config'));
  await writeFile(
    join(dir, 'fleet', 'fleet.yaml'),
    [
      '# yaml-language-server: $schema=../schemas/fleet.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: Fleet',
      'metadata: {name: lab}',
      'spec:',
      `  version: ${options.version ?? '0.9.0'}`,
      '  pollIntervalSeconds: 15',
      '  waves:',
      '    - {name: all, percent: 100, bake: 5m}',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'fleet', 'releases', '0.9.0.yaml'),
    [
      '# yaml-language-server: $schema=../../schemas/release.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: Release',
      'metadata: {name: lab-0.9.0}',
      'spec:',
      '  version: 0.9.0',
      '  artifacts:',
      '    - os: linux',
      '      arch: arm64',
      '      url: https://downloads.example/lab/0.9.0/agent_linux_arm64.tar.gz',
      `      sha256: ${'e'.repeat(64)}`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'fleet', 'config', 'base.yaml'),
    [
      '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: ConfigLayer',
      'metadata: {name: base}',
      'spec:',
      '  priority: 0',
      '  values:',
      '    upstream: https://${agent.labels.site}.example/ingest',
      '    name: ${agent.id}',
      '    literal: $${NOT_INTERPOLATED}',
      '',
    ].join('\n'),
  );
  return dir;
}
