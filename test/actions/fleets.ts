// Fleets written from parameters, unlike the example in fleet/: the actions must work on fleets
// they were not written against. Text is built line by line so tests know every position.

export interface WaveSpec {
  name: string;
  /** matchLabels; absent for the last wave. */
  labels?: Record<string, string>;
  percent: number;
  bake: string;
  gates?: string[];
  approval?: 'manual';
}

export interface FleetSpec {
  name: string;
  version: string;
  versions: string[];
  waves: WaveSpec[];
  /** Values of the base config layer, as YAML lines below `values:` (indented 4). */
  values?: string[];
  pollIntervalSeconds?: number;
}

const sha = (seed: string) =>
  Array.from(
    { length: 64 },
    (_, i) => '0123456789abcdef'[(seed.charCodeAt(i % seed.length) * (i + 7)) % 16],
  ).join('');

export function fleetYaml(spec: FleetSpec): string {
  const lines = [
    '# yaml-language-server: $schema=../schemas/fleet.schema.json',
    'apiVersion: fleetwave.dev/v1',
    'kind: Fleet',
    'metadata:',
    `  name: ${spec.name}`,
    'spec:',
    `  version: ${spec.version}`,
    `  pollIntervalSeconds: ${spec.pollIntervalSeconds ?? 30}`,
    '  rollback:',
    '    revert: pull-request',
    '  waves:',
  ];
  for (const w of spec.waves) {
    lines.push(`    - name: ${w.name}`);
    if (w.labels) {
      lines.push('      selector:', '        matchLabels:');
      for (const [k, v] of Object.entries(w.labels)) lines.push(`          ${k}: ${v}`);
    }
    lines.push(`      percent: ${w.percent}`, `      bake: ${w.bake}`);
    if (w.approval) lines.push(`      approval: ${w.approval}`);
    if (w.gates && w.gates.length > 0) {
      lines.push('      gates:', ...w.gates.map((g) => `        ${g}`));
    }
  }
  return lines.join('\n') + '\n';
}

export function releaseYaml(fleet: string, version: string): string {
  return (
    [
      '# yaml-language-server: $schema=../../schemas/release.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: Release',
      'metadata:',
      `  name: ${fleet}-${version}`,
      'spec:',
      `  version: ${version}`,
      '  artifacts:',
      ...['amd64', 'arm64'].flatMap((arch) => [
        '    - os: linux',
        `      arch: ${arch}`,
        `      url: https://dl.${fleet}.example/${version}/agent_linux_${arch}.tar.gz`,
        `      sha256: ${sha(`${fleet}${version}${arch}`)}`,
      ]),
    ].join('\n') + '\n'
  );
}

export function baseLayerYaml(values: string[]): string {
  return (
    [
      '# yaml-language-server: $schema=../../schemas/configlayer.schema.json',
      'apiVersion: fleetwave.dev/v1',
      'kind: ConfigLayer',
      'metadata:',
      '  name: base',
      'spec:',
      '  priority: 0',
      '  values:',
      ...values.map((v) => `    ${v}`),
    ].join('\n') + '\n'
  );
}

/** Every file of a fleet, under `dir` (e.g. `fleet` or `deploy/agents`). */
export function fleetFiles(dir: string, spec: FleetSpec): Record<string, string> {
  const files: Record<string, string> = {
    [`${dir}/fleet.yaml`]: fleetYaml(spec),
    [`${dir}/config/00-base.yaml`]: baseLayerYaml(
      spec.values ?? ['agent:', '  logLevel: info', '  host: ${agent.id}'],
    ),
  };
  for (const v of spec.versions) files[`${dir}/releases/${v}.yaml`] = releaseYaml(spec.name, v);
  return files;
}

/** An inventory of `count` agents per label set, as JSON. */
export function inventoryJson(
  groups: Array<{ prefix: string; count: number; labels: Record<string, string> }>,
): string {
  const agents = groups.flatMap((g) =>
    Array.from({ length: g.count }, (_, i) => ({
      id: `${g.prefix}-${String(i).padStart(3, '0')}`,
      labels: g.labels,
    })),
  );
  return JSON.stringify(agents, null, 1) + '\n';
}
