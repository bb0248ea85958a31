import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Plan } from '../../core/plan/plan.ts';
import { fleetwave } from '../helpers/cli.ts';
import { commitAll, exampleFleetRepo } from '../helpers/git.ts';
import { syntheticAgents } from '../../simulate/labels.ts';

async function edit(path: string, from: string, to: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  assert.ok(text.includes(from), `${path} does not contain ${from}`);
  await writeFile(path, text.replace(from, to));
}

describe('fleetwave plan', () => {
  let repo: string;
  let inventory: string;

  before(async () => {
    repo = await exampleFleetRepo();
    await edit(join(repo, 'fleet/fleet.yaml'), 'version: 2.4.0', 'version: 2.5.0');
    await edit(join(repo, 'fleet/config/10-env-prod.yaml'), 'logLevel: warn', 'logLevel: error');
    commitAll(repo, 'metrics-agent 2.5.0; quieter prod logs');
    inventory = join(repo, 'inventory.json');
    await writeFile(inventory, JSON.stringify(syntheticAgents(3000, 7)));
  });
  after(() => rm(repo, { recursive: true, force: true }));

  it('counts, per wave, the agents that get a new target, grouped by what they receive', () => {
    const r = fleetwave(
      [
        'plan',
        '--base',
        'HEAD~1',
        '--head',
        'HEAD',
        '--inventory',
        'inventory.json',
        '--format',
        'json',
      ],
      {
        cwd: repo,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as Plan;
    assert.deepEqual(plan.version, { before: '2.4.0', after: '2.5.0' });
    assert.deepEqual(
      plan.files.map((f) => [f.file, f.change, f.kinds]),
      [
        ['fleet/config/10-env-prod.yaml', 'modified', ['ConfigLayer']],
        ['fleet/fleet.yaml', 'modified', ['Fleet']],
      ],
    );
    assert.equal(plan.agentSource, 'inventory');
    assert.equal(plan.agents.total, 3000);
    assert.equal(
      plan.waves.reduce((s, w) => s + (w.agents ?? 0), 0),
      3000,
    );
    assert.equal(
      plan.waves.reduce((s, w) => s + (w.changed ?? 0), 0),
      plan.agents.changed,
    );
    assert.equal(
      plan.groups.reduce((s, g) => s + g.agents, 0),
      plan.agents.changed,
    );
    // Every agent gets the new version; only prod agents also get the log level.
    for (const g of plan.groups) {
      assert.deepEqual('version' in g.after && g.after.version, '2.5.0');
      const logLevel = g.changes.find((c) => c.path.join('.') === 'agent.logLevel');
      if (g.labels['env'] === 'prod')
        assert.deepEqual(logLevel, {
          path: ['agent', 'logLevel'],
          kind: 'changed',
          before: 'warn',
          after: 'error',
        });
      else assert.equal(logLevel, undefined);
    }
    assert.ok(plan.groups.some((g) => g.labels['env'] === 'prod'));
    assert.equal(plan.policyChanged, false);
  });

  it('writes a pull-request comment with tables and a mermaid diagram of the waves', (t) => {
    const r = fleetwave(
      [
        'plan',
        '--base',
        'HEAD~1',
        '--head',
        'HEAD',
        '--inventory',
        'inventory.json',
        '--format',
        'markdown',
      ],
      {
        cwd: repo,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^<!-- fleetwave-plan -->\n## fleetwave plan: `[0-9a-f]{7}` → `[0-9a-f]{7}`/,
    );
    assert.match(r.stdout, /```mermaid\nflowchart LR\n/);
    assert.match(r.stdout, /\| 0 \| \*\*canary\*\* \| 5% of env=internal \| 15m \|/);
    t.assert.snapshot(r.stdout);
  });

  it('without an inventory, groups the label combinations the fleet mentions', () => {
    const r = fleetwave(['plan', '--base', 'HEAD~1', '--head', 'HEAD', '--format', 'json'], {
      cwd: repo,
    });
    assert.equal(r.status, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as Plan;
    assert.equal(plan.agentSource, 'synthesized');
    const prod = plan.groups.find((g) => g.labels['env'] === 'prod');
    assert.ok(prod, 'a group for prod agents');
    assert.ok(prod.changes.some((c) => c.path.join('.') === 'agent.logLevel'));
    assert.ok(prod.waves.includes('early'));
    assert.ok(!prod.waves.includes('canary'), 'canary selects env=internal only');
  });

  it('says which revision does not exist', () => {
    const r = fleetwave(['plan', '--base', 'no-such-branch', '--head', 'HEAD'], { cwd: repo });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /revision "no-such-branch" does not exist/);
  });

  it('says which side is not a valid fleet, with its errors', async () => {
    await edit(join(repo, 'fleet/fleet.yaml'), 'version: 2.5.0', 'version: 9.9.9');
    commitAll(repo, 'a version without a release');
    const r = fleetwave(['plan', '--base', 'HEAD~1', '--head', 'HEAD'], { cwd: repo });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /head HEAD \([0-9a-f]{12}\) is not a valid fleet: 1 error/);
    assert.match(r.stderr, /fleet\/fleet\.yaml:\d+:\d+: error: version "9\.9\.9" has no Release/);
  });
});

describe('fleetwave plan of agents that cannot be rendered on either side', () => {
  let repo: string;
  before(async () => {
    repo = await exampleFleetRepo();
    // The example fleet's releases have no windows/arm64 artifact: such agents get no target
    // before this config change and none after it.
    await edit(join(repo, 'fleet/config/10-env-prod.yaml'), 'logLevel: warn', 'logLevel: error');
    commitAll(repo, 'quieter prod logs');
    await writeFile(
      join(repo, 'inventory.json'),
      JSON.stringify([
        { id: 'web-1', labels: { env: 'prod', region: 'eu-west-1', os: 'linux', arch: 'amd64' } },
        { id: 'win-1', labels: { env: 'prod', region: 'eu-west-1', os: 'windows', arch: 'arm64' } },
        { id: 'win-2', labels: { env: 'staging', os: 'windows', arch: 'arm64' } },
      ]),
    );
  });
  after(() => rm(repo, { recursive: true, force: true }));

  it('does not count them as getting a new target', () => {
    const r = fleetwave(['plan', '--base', 'HEAD~1', '--head', 'HEAD', '--format', 'json'], {
      cwd: repo,
    });
    assert.equal(r.status, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as Plan;
    assert.deepEqual(
      plan.groups.filter((g) => 'error' in g.before || 'error' in g.after),
      [],
      'a group whose agents get no target on either side is no change',
    );
    assert.ok(plan.groups.length > 0 && plan.groups.every((g) => g.labels['env'] === 'prod'));
  });

  it('with an inventory, counts only the agent whose target changes', () => {
    const r = fleetwave(
      [
        'plan',
        '--base',
        'HEAD~1',
        '--head',
        'HEAD',
        '--inventory',
        'inventory.json',
        '--format',
        'json',
      ],
      { cwd: repo },
    );
    assert.equal(r.status, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as Plan;
    assert.equal(plan.agents.changed, 1);
    assert.equal(
      plan.waves.reduce((s, w) => s + (w.changed ?? 0), 0),
      1,
    );
    assert.deepEqual(
      plan.agents.errors.map((e) => [e.id, e.code]),
      [
        ['win-1', 'no-artifact'],
        ['win-2', 'no-artifact'],
      ],
      'they are still named as agents without a target',
    );
  });
});
