import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { TargetCache } from '../../core/target/cache.ts';
import { canonicalContent, canonicalJson, etagOf } from '../../core/target/etag.ts';
import { renderTarget } from '../../core/target/render.ts';
import type { Content } from '../../core/target/model.ts';
import { agentArb, fleetArb, fleetModel } from './fleets.ts';

const content = (config: Record<string, unknown>, over: Partial<Content> = {}): Content => ({
  version: '1.0.0',
  artifact: { url: 'https://d.example/a.tgz', sha256: 'ab'.repeat(32) },
  config,
  pollAfterSeconds: 60,
  ...over,
});

/** What the agent receives: the JSON text, read back. Key order does not matter. */
const received = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('canonicalJson', () => {
  const table: Array<[string, unknown, string]> = [
    ['sorts keys', { b: 1, a: 2 }, '{"a":2,"b":1}'],
    [
      'sorts nested keys, keeps list order',
      { z: [{ y: 1, x: 2 }, 3], a: null },
      '{"a":null,"z":[{"x":2,"y":1},3]}',
    ],
    [
      'sorts by UTF-16 code units',
      { é: 1, z: 2, Z: 3, '10': 4, '9': 5 },
      '{"10":4,"9":5,"Z":3,"z":2,"é":1}',
    ],
    ['escapes as JSON does', { 'a"b': 'line\nbreak\u0001' }, '{"a\\"b":"line\\nbreak\\u0001"}'],
    ['prints numbers as JSON does', [1, 1.5, -0, 1e21, true], '[1,1.5,0,1e+21,true]'],
    ['drops undefined members like JSON.stringify', { a: undefined, b: 1 }, '{"b":1}'],
    ['keeps a __proto__ key', JSON.parse('{"__proto__":1}'), '{"__proto__":1}'],
  ];
  for (const [name, value, text] of table) {
    it(name, () => assert.equal(canonicalJson(value), text));
  }

  it('reads back as the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) =>
        isDeepStrictEqual(JSON.parse(canonicalJson(v)), received(v)),
      ),
    );
  });
});

describe('etagOf', () => {
  it('is SHA-256 (hex) of the canonical content, which this test spells out', () => {
    const c = content({ b: 'x', a: [1] });
    const text =
      '{"artifact":{"sha256":"' +
      'ab'.repeat(32) +
      '","url":"https://d.example/a.tgz"},"config":{"a":[1],"b":"x"},"pollAfterSeconds":60,"version":"1.0.0"}';
    assert.equal(canonicalContent(c), text);
    assert.equal(etagOf(c), createHash('sha256').update(text).digest('hex'));
    assert.match(etagOf(c), /^[0-9a-f]{64}$/);
  });

  it('covers version, artifact, config and pollAfterSeconds, and nothing else', () => {
    const base = content({ a: 1 });
    const e = etagOf(base);
    assert.notEqual(etagOf({ ...base, version: '1.0.1' }), e);
    assert.notEqual(
      etagOf({ ...base, artifact: { ...base.artifact, sha256: 'cd'.repeat(32) } }),
      e,
    );
    assert.notEqual(
      etagOf({ ...base, artifact: { ...base.artifact, url: 'https://d.example/b.tgz' } }),
      e,
    );
    assert.notEqual(etagOf({ ...base, config: { a: 2 } }), e);
    assert.notEqual(etagOf({ ...base, pollAfterSeconds: 30 }), e);
    // Where the target came from is not what it is.
    assert.equal(etagOf({ ...base, revision: 'abc', wave: 'canary' } as Content), e);
  });

  it('is equal iff the contents are equal (as the agent receives them)', () => {
    const configArb = fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 }), {
      maxKeys: 5,
    });
    // Pairs that are often equal: the same config, reordered; or an independent one.
    const reorder = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reorder)
        : typeof v === 'object' && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reorder(x)]),
            )
          : v;
    const pairArb = fc.oneof(
      configArb.map((c) => [c, reorder(c)] as const),
      fc.tuple(configArb, configArb),
      configArb.chain((c) =>
        fc
          .tuple(fc.constant(c), fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 1 }))
          .map(([a, k, v]) => [a, { ...a, [k]: v }] as const),
      ),
    );
    fc.assert(
      fc.property(pairArb, fc.boolean(), ([a, b], samePoll) => {
        const ca = content(a as Record<string, unknown>);
        const cb = content(b as Record<string, unknown>, samePoll ? {} : { pollAfterSeconds: 61 });
        const equal = isDeepStrictEqual(received(ca), received(cb));
        return (etagOf(ca) === etagOf(cb)) === equal;
      }),
      { numRuns: 500 },
    );
  });

  it('is the same for the cached renderer, the reference and a fresh hash, for any fleet and agent', () => {
    fc.assert(
      fc.property(fleetArb, fc.array(agentArb, { maxLength: 10 }), (model, agents) => {
        const cache = new TargetCache(model, 'rev');
        const etags = new Map<string, unknown>();
        for (const agent of agents) {
          const r = cache.render(agent);
          if (!r.ok) continue;
          if (r.target.etag !== etagOf(received(r.target) as Content)) return false;
          // Across agents too: equal etag iff equal content.
          const seen = etags.get(r.target.etag);
          const mine = received({
            ...r.target,
            revision: undefined,
            wave: undefined,
            etag: undefined,
          });
          if (seen !== undefined && !isDeepStrictEqual(seen, mine)) return false;
          for (const [etag, other] of etags) {
            if (etag !== r.target.etag && isDeepStrictEqual(other, mine)) return false;
          }
          etags.set(r.target.etag, mine);
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});

describe('TargetCache.json', () => {
  it('prints rendered targets exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(fleetArb, fc.array(agentArb, { maxLength: 8 }), (model, agents) => {
        const cache = new TargetCache(model, 'rev');
        for (const agent of [...agents, ...agents]) {
          const r = cache.render(agent);
          if (r.ok && cache.json(r.target) !== JSON.stringify(r.target)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('prints a target it did not render too', () => {
    const model = fleetModel({ layers: [{ values: { host: '${agent.id}' } }] });
    const r = renderTarget(model, 'rev', { id: 'a"b', labels: { os: 'linux', arch: 'amd64' } });
    assert.ok(r.ok);
    assert.equal(new TargetCache(model, 'rev').json(r.target), JSON.stringify(r.target));
  });
});
