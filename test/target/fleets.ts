// Hand-built and generated fleets for the target tests: FleetModels without YAML, and
// fast-check arbitraries for fleets and agents no test has seen before.

import fc from 'fast-check';
import type {
  ConfigLayerDocument,
  FleetModel,
  ReleaseDocument,
  Selector,
  Wave,
} from '../../core/fleet/model.ts';
import type { Agent } from '../../core/target/model.ts';

export interface FleetParts {
  name?: string;
  salt?: string;
  version?: string;
  pollIntervalSeconds?: number;
  waves?: Array<Omit<Wave, 'bake'> & { bake?: string }>;
  artifacts?: Array<{ os: string; arch: string }>;
  layers?: Array<{
    name?: string;
    selector?: Selector;
    priority?: number;
    values: Record<string, unknown>;
  }>;
}

export const EVERYONE: Wave = { name: 'everyone', percent: 100, bake: '1h' };

/** A FleetModel as validateFleet would build it (layers sorted by priority, then file name). */
export function fleetModel(parts: FleetParts = {}): FleetModel {
  const version = parts.version ?? '1.0.0';
  const origin = (file: string, index = 0) => ({ file: `fleet/${file}`, name: file, index });
  const releases: ReleaseDocument[] = [
    {
      apiVersion: 'fleetwave.dev/v1',
      kind: 'Release',
      metadata: { name: `agent-${version}` },
      spec: {
        version,
        artifacts: (parts.artifacts ?? [{ os: 'linux', arch: 'amd64' }]).map((a) => ({
          ...a,
          url: `https://downloads.example/agent/${version}/agent_${a.os}_${a.arch}.tar.gz`,
          sha256: `${a.os}-${a.arch}`.padEnd(64, '0'),
        })),
      },
      origin: origin(`releases/${version}.yaml`),
    },
  ];
  const layers: ConfigLayerDocument[] = (parts.layers ?? []).map((l, i) => {
    const file = `config/${String(i).padStart(2, '0')}-${l.name ?? `layer-${i}`}.yaml`;
    return {
      apiVersion: 'fleetwave.dev/v1',
      kind: 'ConfigLayer',
      metadata: { name: l.name ?? `layer-${i}` },
      spec: {
        ...(l.selector ? { selector: l.selector } : {}),
        priority: l.priority ?? 0,
        values: l.values,
      },
      origin: origin(file),
    };
  });
  layers.sort(
    (a, b) =>
      a.spec.priority - b.spec.priority ||
      (a.origin.name < b.origin.name ? -1 : a.origin.name > b.origin.name ? 1 : 0),
  );
  return {
    fleet: {
      apiVersion: 'fleetwave.dev/v1',
      kind: 'Fleet',
      metadata: { name: parts.name ?? 'test-fleet' },
      spec: {
        version,
        ...(parts.salt !== undefined ? { salt: parts.salt } : {}),
        pollIntervalSeconds: parts.pollIntervalSeconds ?? 30,
        waves: (parts.waves ?? [EVERYONE]).map((w) => ({ bake: '1h', ...w })),
      },
      origin: origin('fleet.yaml'),
    },
    releases,
    layers,
  };
}

// A small vocabulary, so generated selectors and agents often meet.
export const LABEL_KEYS = ['env', 'region', 'role', 'os', 'arch'] as const;
const VALUES: Record<(typeof LABEL_KEYS)[number], string[]> = {
  env: ['prod', 'staging', 'dev'],
  region: ['eu', 'us', 'ap'],
  role: ['web', 'db'],
  os: ['linux', 'windows', 'darwin'],
  arch: ['amd64', 'arm64'],
};

export const labelsArb: fc.Arbitrary<Record<string, string>> = fc
  .record(
    Object.fromEntries(LABEL_KEYS.map((k) => [k, fc.constantFrom(...VALUES[k])])) as Record<
      (typeof LABEL_KEYS)[number],
      fc.Arbitrary<string>
    >,
    { requiredKeys: [] },
  )
  .map((l) => ({ ...l }));

const platformArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(
      { os: 'linux', arch: 'amd64' },
      { os: 'linux', arch: 'arm64' },
      { os: 'windows', arch: 'amd64' },
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom({ os: 'darwin', arch: 'arm64' }, { os: 'linux' }, {}) },
);

/** Agents that mostly run on a platform the fleet ships for, sometimes not. */
export const agentArb: fc.Arbitrary<Agent> = fc.record({
  id: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.uuid()),
  labels: fc.tuple(labelsArb, platformArb).map(([labels, platform]) => {
    const out = { ...labels, ...(platform as Record<string, string>) };
    if (!('os' in platform)) delete out['os'];
    if (!('arch' in platform)) delete out['arch'];
    return out;
  }),
});

const keyArb = fc.constantFrom(...LABEL_KEYS);

export const selectorArb: fc.Arbitrary<Selector | undefined> = fc.oneof(
  fc.constant(undefined),
  keyArb.chain((key) =>
    fc.oneof(
      fc.constantFrom(...VALUES[key]).map((v): Selector => ({ matchLabels: { [key]: v } })),
      fc
        .record({
          operator: fc.constantFrom('In' as const, 'NotIn' as const),
          values: fc.subarray(VALUES[key], { minLength: 1 }),
        })
        .map((r): Selector => ({ matchExpressions: [{ key, ...r }] })),
      fc
        .constantFrom('Exists' as const, 'DoesNotExist' as const)
        .map((operator): Selector => ({ matchExpressions: [{ key, operator }] })),
    ),
  ),
);

export const percentArb = fc.oneof(
  fc.integer({ min: 0, max: 100 }),
  fc.double({ min: 0, max: 100, noNaN: true }),
  fc.constantFrom(0.07, 0.5, 12.5, 33.33),
);

/** Waves as validation allows them: a last wave at 100% without a selector. */
export const wavesArb: fc.Arbitrary<Wave[]> = fc
  .array(fc.record({ selector: selectorArb, percent: percentArb }), { maxLength: 4 })
  .map((ws) => [
    ...ws.map((w, i) => ({
      name: `wave-${i}`,
      percent: w.percent,
      bake: '1h',
      ...(w.selector ? { selector: w.selector } : {}),
    })),
    { ...EVERYONE },
  ]);

const textArb = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constant('${agent.id}'),
  fc.constantFrom(
    '${agent.id}',
    'host-${agent.id}.example',
    '${agent.labels.env}',
    '${agent.labels.region}-${agent.labels.role}',
    'literal $${agent.id}',
    '$${HOME}/${agent.labels.env}',
    'a ${ agent.id } b',
  ),
);

const keyNameArb = fc.constantFrom(
  'agent',
  'output',
  'tags',
  'level',
  'list',
  'x',
  '__proto__',
  'k$${y}',
);

/** ConfigLayer values: nested mappings, lists, scalars, interpolations and secretRefs. */
export const valuesArb: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    textArb,
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    tie('mapping'),
    fc.record({
      secretRef: fc.record({
        provider: fc.constantFrom('env', 'file', 'vault'),
        key: fc.constantFrom('TOKEN', 'secret/${agent.id}', '/etc/${agent.labels.env}'),
      }),
    }),
  ),
  mapping: fc.dictionary(keyNameArb, tie('value'), { maxKeys: 4 }),
})).mapping as fc.Arbitrary<Record<string, unknown>>;

const PLATFORMS = [
  { os: 'linux', arch: 'amd64' },
  { os: 'linux', arch: 'arm64' },
  { os: 'windows', arch: 'amd64' },
];

export const fleetArb: fc.Arbitrary<FleetModel> = fc
  .record({
    name: fc.string({ minLength: 1, maxLength: 8 }),
    salt: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
    waves: wavesArb,
    artifacts: fc.oneof(
      { weight: 3, arbitrary: fc.constant(PLATFORMS) },
      { weight: 1, arbitrary: fc.subarray(PLATFORMS, { minLength: 1 }) },
    ),
    layers: fc.array(
      fc.record({
        selector: selectorArb,
        priority: fc.integer({ min: 0, max: 3 }),
        values: valuesArb,
      }),
      { maxLength: 5 },
    ),
  })
  .map((p) =>
    fleetModel({
      ...p,
      layers: p.layers.map((l) => ({
        priority: l.priority,
        values: l.values,
        ...(l.selector ? { selector: l.selector } : {}),
      })),
    }),
  );
