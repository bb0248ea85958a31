import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateFleet } from '../../core/fleet/validate.ts';
import { TargetCache } from '../../core/target/cache.ts';
import { etagOf } from '../../core/target/etag.ts';
import { mergeValues } from '../../core/target/merge.ts';
import type { Agent, RenderResult } from '../../core/target/model.ts';
import { renderTarget } from '../../core/target/render.ts';
import { parseTemplate } from '../../core/target/template.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { agentArb, fleetArb, fleetModel } from './fleets.ts';
import { syntheticAgents } from '../../simulate/labels.ts';

const linux = { os: 'linux', arch: 'amd64' };

/** Renders with both the reference and the cache, checks they agree, returns the result. */
function render(model: ReturnType<typeof fleetModel>, agent: Agent): RenderResult {
  const reference = renderTarget(model, 'rev-1', agent);
  assert.deepEqual(new TargetCache(model, 'rev-1').render(agent), reference);
  return reference;
}

function config(model: ReturnType<typeof fleetModel>, agent: Agent): unknown {
  const r = render(model, agent);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.target.config;
}

describe('mergeValues', () => {
  const table: Array<[string, Array<Record<string, unknown>>, Record<string, unknown>]> = [
    ['no layers: an empty config', [], {}],
    [
      'mappings merge key by key',
      [{ a: { x: 1, y: 2 } }, { a: { y: 3, z: 4 } }],
      { a: { x: 1, y: 3, z: 4 } },
    ],
    ['lists replace whole', [{ l: [1, 2, 3] }, { l: [9] }], { l: [9] }],
    ['scalars replace', [{ s: 'a' }, { s: 'b' }], { s: 'b' }],
    ['a scalar replaces a mapping', [{ m: { x: 1 } }, { m: 'flat' }], { m: 'flat' }],
    ['a mapping replaces a scalar', [{ m: 'flat' }, { m: { x: 1 } }], { m: { x: 1 } }],
    ['null replaces (it does not delete)', [{ a: 1 }, { a: null }], { a: null }],
    [
      'a secretRef replaces a mapping whole',
      [{ k: { other: 1 } }, { k: { secretRef: { provider: 'env', key: 'K' } } }],
      { k: { secretRef: { provider: 'env', key: 'K' } } },
    ],
    [
      'a mapping replaces a secretRef whole: nothing is grafted into it',
      [
        { k: { secretRef: { provider: 'env', key: 'K' } } },
        { k: { secretRef: { provider: 'file', key: '/k' } } },
      ],
      { k: { secretRef: { provider: 'file', key: '/k' } } },
    ],
    ['later layers win, in order', [{ a: 1 }, { a: 2 }, { a: 3 }], { a: 3 }],
  ];
  for (const [name, layers, expected] of table) {
    it(name, () => assert.deepEqual(mergeValues(layers), expected));
  }

  it('never shares nodes with its inputs', () => {
    const layer = { a: { b: [1] } };
    const merged = mergeValues([layer]) as { a: { b: number[] } };
    merged.a.b.push(2);
    assert.deepEqual(layer, { a: { b: [1] } });
  });

  it('keeps a "__proto__" key as data', () => {
    const layer = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    const merged = mergeValues([layer]);
    assert.ok(Object.hasOwn(merged, '__proto__'));
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
  });
});

describe('parseTemplate', () => {
  const table: Array<[string, ReturnType<typeof parseTemplate>]> = [
    ['plain', ['plain']],
    ['', ['']],
    ['${agent.id}', [{ id: true }]],
    ['host-${agent.id}.example', ['host-', { id: true }, '.example']],
    ['${ agent.id }', [{ id: true }]],
    ['${agent.labels.region}/${agent.labels.env}', [{ label: 'region' }, '/', { label: 'env' }]],
    ['$${agent.id}', ['${agent.id}']],
    ['$${HOME}/x', ['${HOME}/x']],
    ['$$${agent.id}', ['$${agent.id}']],
    ['a $${b} ${agent.id}', ['a ${b} ', { id: true }]],
  ];
  for (const [text, parts] of table) {
    it(JSON.stringify(text), () => assert.deepEqual(parseTemplate(text), parts));
  }
});

describe('renderTarget', () => {
  const model = fleetModel({
    pollIntervalSeconds: 45,
    artifacts: [linux, { os: 'windows', arch: 'amd64' }],
    layers: [
      {
        name: 'base',
        priority: 0,
        values: {
          agent: { hostname: '${agent.id}', level: 'info' },
          tags: { region: '${agent.labels.region}' },
          token: { secretRef: { provider: 'env', key: 'TOKEN_${agent.id}' } },
          literal: 'cost: $${PRICE}',
          mounts: ['/proc', '/sys'],
        },
      },
      {
        name: 'prod',
        selector: { matchLabels: { env: 'prod' } },
        priority: 10,
        values: { agent: { level: 'warn' } },
      },
      {
        name: 'fixed-region',
        selector: { matchLabels: { role: 'db' } },
        priority: 20,
        values: { tags: { region: 'pinned' }, mounts: [] },
      },
    ],
  });

  it('renders the DESIGN §5 target: artifact, merged config, interpolation, poll interval', () => {
    const r = render(model, { id: 'web-1', labels: { ...linux, env: 'prod', region: 'eu' } });
    assert.ok(r.ok);
    assert.deepEqual(Object.keys(r.target), [
      'etag',
      'revision',
      'wave',
      'version',
      'artifact',
      'config',
      'pollAfterSeconds',
    ]);
    assert.equal(r.target.revision, 'rev-1');
    assert.equal(r.target.wave, 'everyone');
    assert.equal(r.target.version, '1.0.0');
    assert.equal(r.target.pollAfterSeconds, 45);
    assert.deepEqual(r.target.artifact, {
      url: 'https://downloads.example/agent/1.0.0/agent_linux_amd64.tar.gz',
      sha256: 'linux-amd64'.padEnd(64, '0'),
    });
    assert.deepEqual(r.target.config, {
      agent: { hostname: 'web-1', level: 'warn' },
      tags: { region: 'eu' },
      // secretRefs pass through untouched, even text that looks like an interpolation
      token: { secretRef: { provider: 'env', key: 'TOKEN_${agent.id}' } },
      literal: 'cost: ${PRICE}',
      mounts: ['/proc', '/sys'],
    });
    assert.equal(r.target.etag, etagOf(r.target));
    assert.ok(Object.isFrozen(r.target) && Object.isFrozen(r.target.config));
  });

  it('needs no label that a later layer overrides', () => {
    assert.deepEqual(config(model, { id: 'db-1', labels: { ...linux, role: 'db' } }), {
      agent: { hostname: 'db-1', level: 'info' },
      tags: { region: 'pinned' },
      token: { secretRef: { provider: 'env', key: 'TOKEN_${agent.id}' } },
      literal: 'cost: ${PRICE}',
      mounts: [],
    });
  });

  it('names the missing label, where it is interpolated and by which layer; no config at all', () => {
    const r = render(model, { id: 'web-2', labels: { ...linux, env: 'prod' } });
    assert.deepEqual(r, {
      ok: false,
      wave: 'everyone',
      error: {
        code: 'missing-label',
        labels: ['region'],
        message:
          'agent has no "region" label, which config tags.region interpolates (ConfigLayer base, fleet/config/00-base.yaml)',
      },
    });
  });

  it('needs os and arch to pick the artifact', () => {
    const r = render(model, { id: 'x', labels: { region: 'eu' } });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'missing-label');
    assert.deepEqual(r.error.code === 'missing-label' && r.error.labels, ['arch', 'os']);
    assert.match(
      r.error.message,
      /no "arch" label, which picks the artifact of release 1\.0\.0; no "os" label/,
    );
  });

  it('reports a platform the release does not ship for', () => {
    const r = render(model, { id: 'mac', labels: { os: 'darwin', arch: 'arm64', region: 'eu' } });
    assert.deepEqual(r, {
      ok: false,
      wave: 'everyone',
      error: {
        code: 'no-artifact',
        os: 'darwin',
        arch: 'arm64',
        message:
          'release 1.0.0 has no artifact for darwin/arm64 (it has linux/amd64, windows/amd64)',
      },
    });
  });

  it('interpolates inside lists and names list positions', () => {
    const m = fleetModel({
      layers: [{ values: { peers: ['a', { host: '${agent.labels.peer}' }] } }],
    });
    const r = render(m, { id: 'x', labels: linux });
    assert.ok(!r.ok);
    assert.match(r.error.message, /config peers\[1\]\.host interpolates/);
    assert.deepEqual(config(m, { id: 'x', labels: { ...linux, peer: 'p1' } }), {
      peers: ['a', { host: 'p1' }],
    });
  });

  it('unescapes $${ in keys too', () => {
    const m = fleetModel({ layers: [{ values: { 'env$${X}': 'v' } }] });
    assert.deepEqual(config(m, { id: 'x', labels: linux }), { 'env${X}': 'v' });
  });

  it('gives equal etags to equal contents in different waves and revisions', () => {
    const m = fleetModel({
      waves: [
        { name: 'first', percent: 50 },
        { name: 'everyone', percent: 100 },
      ],
      layers: [{ values: { a: 1 } }],
    });
    const agents = Array.from({ length: 40 }, (_, i) => ({ id: `h${i}`, labels: linux }));
    const results = agents.map((a) => new TargetCache(m, `rev-${a.id}`).render(a));
    const waves = new Set(results.map((r) => r.wave));
    assert.deepEqual([...waves].sort(), ['everyone', 'first']);
    const etags = new Set(results.map((r) => (r.ok ? r.target.etag : 'error')));
    assert.equal(etags.size, 1);
  });
});

describe('TargetCache', () => {
  it('renders exactly what the reference renders, on fleets and agents no test has seen', () => {
    fc.assert(
      fc.property(
        fleetArb,
        fc.array(agentArb, { minLength: 1, maxLength: 20 }),
        (model, agents) => {
          const cache = new TargetCache(model, 'rev');
          for (const agent of [...agents, ...agents]) {
            const cached = cache.render(agent);
            const reference = renderTarget(model, 'rev', agent);
            assert.deepEqual(cached, reference);
            if (cached.ok) assert.equal(cached.target.etag, etagOf(cached.target));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never leaves an interpolation unresolved in a rendered config', () => {
    fc.assert(
      fc.property(fleetArb, agentArb, (model, agent) => {
        const r = new TargetCache(model, 'rev').render(agent);
        if (!r.ok) return true;
        // Outside secretRefs, `${agent.` survives only where the fleet wrote `$${agent.`.
        const escaped = JSON.stringify(model.layers.map((l) => l.spec.values)).includes(
          '$${agent.',
        );
        const text = JSON.stringify(r.target.config, (k, v) =>
          typeof v === 'object' && v !== null && 'secretRef' in v ? null : v,
        );
        return escaped || !text.includes('${agent.');
      }),
    );
  });

  it('renders each label group once: 100,000 agents of the example fleet, a few hundred renders', async () => {
    const model = validateFleet(await readFleetDirectory('fleet', { cwd: REPO_ROOT })).model!;
    const cache = new TargetCache(model, 'rev');
    const agents = syntheticAgents(100_000);
    const results = agents.map((a) => cache.render(a));
    assert.ok(results.every((r) => r.ok));
    assert.deepEqual(cache.relevantLabels, ['arch', 'env', 'os', 'region', 'role']);
    // 3 envs × 5 regions × 3 platforms × 2 (database or not) at most, whatever the rack or team.
    assert.ok(cache.stats.groups <= 3 * 5 * 3 * 4, `${cache.stats.groups} label groups`);
    assert.ok(cache.stats.merges <= 16, `${cache.stats.merges} merges`);
    // The example config interpolates ${agent.id}: every agent has its own content.
    assert.equal(new Set(results.map((r) => r.ok && r.target.etag)).size, agents.length);
  });

  it('shares one frozen target per label group and wave when the config does not use the id', () => {
    const model = fleetModel({
      waves: [
        { name: 'half', percent: 50 },
        { name: 'everyone', percent: 100 },
      ],
      layers: [{ values: { tags: { env: '${agent.labels.env}' } } }],
    });
    const cache = new TargetCache(model, 'rev');
    const agents = Array.from({ length: 200 }, (_, i) => ({
      id: `h${i}`,
      labels: { ...linux, env: i % 2 ? 'prod' : 'dev', rack: `r${i}` },
    }));
    const targets = new Set(
      agents.map((a) => {
        const r = cache.render(a);
        assert.ok(r.ok);
        assert.ok(Object.isFrozen(r.target));
        return r.target;
      }),
    );
    assert.equal(targets.size, 4); // 2 envs × 2 waves; the rack label does not matter
    assert.equal(cache.stats.groups, 2);
    assert.equal(cache.groupOf(agents[0]!), cache.groupOf(agents[2]!));
    assert.notEqual(cache.groupOf(agents[0]!), cache.groupOf(agents[1]!));
  });

  it('groups agents whose targets differ only by id', () => {
    const model = fleetModel({
      layers: [{ values: { host: '${agent.id}', env: '${agent.labels.env}' } }],
    });
    const cache = new TargetCache(model, 'rev');
    const a = { id: 'a', labels: { ...linux, env: 'prod' } };
    const b = { id: 'b', labels: { ...linux, env: 'prod' } };
    const c = { id: 'c', labels: { ...linux, env: 'dev' } };
    assert.equal(cache.groupOf(a), cache.groupOf(b));
    assert.notEqual(cache.groupOf(a), cache.groupOf(c));
    const ra = cache.render(a);
    const rb = cache.render(b);
    assert.ok(ra.ok && rb.ok);
    assert.notEqual(ra.target.etag, rb.target.etag);
    assert.equal(
      cache.groupOf({ id: 'd', labels: { env: 'prod' } }).startsWith('error:missing-label:'),
      true,
    );
  });

  it('starts over when a hostile label set exceeds its bound, and still renders right', () => {
    const model = fleetModel({ layers: [{ values: { ip: '${agent.labels.ip}' } }] });
    const cache = new TargetCache(model, 'rev', { maxGroups: 10 });
    for (let i = 0; i < 25; i++) {
      const agent = { id: `h${i}`, labels: { ...linux, ip: `10.0.0.${i}` } };
      assert.deepEqual(cache.render(agent), renderTarget(model, 'rev', agent));
      assert.ok(cache.stats.groups <= 10);
    }
  });
});
