// How fast `fleetwave validate` is on a large fleet: 2,000 files (1 Fleet, 1,000 Releases,
// 999 ConfigLayers) generated in a temp dir, read from disk and from a git revision, against
// a baseline of reading the same files and parsing them with plain `yaml.parse`.
// Run: node bench/validate.bench.ts [--runs N] [--keep]   (--keep leaves the fleet for profiling)
// Goal: validating 2,000 files takes under 2 s.

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { validateFleet } from '../core/fleet/validate.ts';
import { GitRepository } from '../git/repository.ts';
import { readFleetDirectory } from '../source/directory.ts';
import { readFleetAtRevision } from '../source/revision.ts';
import { git } from '../test/helpers/git.ts';

const RELEASES = 1000;
const LAYERS = 999;
const FILES = 1 + RELEASES + LAYERS;
const GOAL_MS = 2000;

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '9' }, keep: { type: 'boolean', default: false } },
});
const RUNS = Math.max(7, Number(values.runs));

const REGIONS = ['eu-west-1', 'eu-central-1', 'us-east-1', 'us-west-2', 'ap-southeast-1'];
const ENVS = ['prod', 'staging', 'internal'];
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const version = (i: number): string => `3.${Math.floor(i / 100)}.${i % 100}`;

function fleetYaml(): string {
  return `# yaml-language-server: $schema=../schemas/fleet.schema.json
apiVersion: fleetwave.dev/v1
kind: Fleet
metadata:
  name: bench-fleet
spec:
  version: ${version(RELEASES - 1)}
  pollIntervalSeconds: 60
  rollback:
    revert: pull-request
  waves:
    - name: canary
      selector:
        matchLabels: {env: internal}
      percent: 5
      bake: 15m
      gates: {minAgents: 10, minAppliedRatio: 0.9, applyDeadline: 10m, maxFailedRatio: 0.02}
    - name: early
      selector:
        matchExpressions:
          - {key: region, operator: In, values: [eu-west-1, eu-central-1]}
          - {key: env, operator: In, values: [prod, staging]}
      percent: 25
      bake: 1h
      gates:
        maxSilentRatio: 0.02
        prometheus:
          - name: ingest-errors
            query: sum(rate(ingest_rejected_total[5m])) / sum(rate(ingest_received_total[5m]))
            max: 0.001
            timeout: 10s
    - name: everyone
      percent: 100
      bake: 2h
`;
}

function releaseYaml(i: number): string {
  const v = version(i);
  const targets = [
    ['linux', 'amd64', 'tar.gz'],
    ['linux', 'arm64', 'tar.gz'],
    ['windows', 'amd64', 'zip'],
    ['darwin', 'arm64', 'tar.gz'],
  ].slice(0, i % 2 === 0 ? 4 : 3);
  return `# yaml-language-server: $schema=../../schemas/release.schema.json
apiVersion: fleetwave.dev/v1
kind: Release
metadata:
  name: agent-${v}
spec:
  version: ${v}
  notes: Build ${i} of the agent; fixes and collector updates.
  artifacts:
${targets
  .map(
    ([os, arch, ext]) => `    - os: ${os}
      arch: ${arch}
      url: https://downloads.example.com/agent/${v}/agent_${v}_${os}_${arch}.${ext}
      sha256: ${sha(`${v}/${os}/${arch}`)}`,
  )
  .join('\n')}
`;
}

function layerYaml(i: number): string {
  const region = REGIONS[i % REGIONS.length]!;
  const env = ENVS[i % ENVS.length]!;
  return `# yaml-language-server: $schema=../../schemas/configlayer.schema.json
# Settings for team ${i % 40} on ${env} hosts in ${region}.
apiVersion: fleetwave.dev/v1
kind: ConfigLayer
metadata:
  name: layer-${String(i).padStart(4, '0')}
spec:
  priority: ${i % 50}
  selector:
    matchLabels:
      env: ${env}
      team: team-${i % 40}
    matchExpressions:
      - key: region
        operator: In
        values: [${region}, ${REGIONS[(i + 1) % REGIONS.length]}]
      - key: decommissioned
        operator: DoesNotExist
  values:
    agent:
      hostname: \${agent.id}
      interval: ${10 + (i % 50)}s
      logLevel: ${i % 7 === 0 ? 'debug' : 'info'}
      labels:
        team: team-${i % 40}
        rack: \${agent.labels.rack}
        zone: \${agent.labels.zone}
    output:
      endpoint: https://ingest.\${agent.labels.region}.example.com/v1/write
      compression: gzip
      batch: {maxSize: ${500 + i}, maxWait: 5s}
      apiKey:
        secretRef:
          provider: ${i % 2 === 0 ? 'vault' : 'env'}
          key: ${i % 2 === 0 ? `secret/data/agent/team-${i % 40}#api_key` : `AGENT_API_KEY_${i % 40}`}
      tls:
        minVersion: '1.2'
        ca: {secretRef: {provider: file, key: ca-${i % 40}.pem}}
    collectors:
      cpu: {enabled: true, perCore: ${i % 3 === 0}}
      memory: {enabled: true}
      disk: {enabled: true, ignoreMounts: [/proc, /sys, /dev, /run/user/${i}]}
      network: {enabled: ${i % 4 !== 0}, interfaces: [eth0, eth1]}
      process:
        enabled: ${i % 5 === 0}
        include: [nginx, postgres, "agent-${i}"]
    tags:
      env: \${agent.labels.env}
      owner: team-${i % 40}
      cost-center: cc-${1000 + (i % 97)}
`;
}

async function generate(dir: string): Promise<number> {
  await mkdir(join(dir, 'fleet', 'releases'), { recursive: true });
  await mkdir(join(dir, 'fleet', 'config'), { recursive: true });
  let bytes = 0;
  const write = async (path: string, text: string): Promise<void> => {
    bytes += Buffer.byteLength(text);
    await writeFile(join(dir, 'fleet', path), text);
  };
  await write('fleet.yaml', fleetYaml());
  for (let i = 0; i < RELEASES; i++) await write(`releases/${version(i)}.yaml`, releaseYaml(i));
  for (let i = 0; i < LAYERS; i++)
    await write(`config/${String(i).padStart(4, '0')}-layer.yaml`, layerYaml(i));
  return bytes;
}

interface Timing {
  name: string;
  ms: number[];
}

async function measure(name: string, runs: number, fn: () => Promise<void>): Promise<Timing> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    ms.push(performance.now() - start);
  }
  return { name, ms };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-bench-'));
  try {
    const bytes = await generate(dir);
    git(dir, 'init', '--quiet', '--initial-branch=main');
    git(dir, 'add', '--all');
    git(dir, 'commit', '--quiet', '--message=bench fleet');
    // Packed, as a clone or a fetch leaves a repository (loose objects would measure git's
    // object store, not fleetwave).
    git(dir, 'repack', '-a', '-d', '--quiet');
    const repo = await GitRepository.open(dir);

    // Correctness first: a benchmark of a fleet that does not validate measures the wrong thing.
    const check = validateFleet(await readFleetDirectory('fleet', { cwd: dir }));
    const atRevision = validateFleet(await readFleetAtRevision(repo, 'HEAD', 'fleet'));
    for (const [what, r] of [
      ['directory', check],
      ['revision', atRevision],
    ] as const) {
      if (r.errorCount > 0 || r.documents.length !== FILES) {
        console.error(`the generated fleet (${what}) is not valid:`, r.diagnostics.slice(0, 5));
        process.exitCode = 1;
        return;
      }
    }

    // Warm-up is the first run of `check` above (schema compilation, JIT); every measured run
    // reads the files again, so the page cache is as warm for the baseline as for validation.
    const timings = [
      await measure('read + yaml.parse (baseline)', RUNS, async () => {
        const source = await readFleetDirectory('fleet', { cwd: dir });
        for (const f of source.files) parseYaml(Buffer.from(f.bytes).toString('utf8'));
      }),
      await measure('read only (directory)', RUNS, async () => {
        await readFleetDirectory('fleet', { cwd: dir });
      }),
      await measure('read + validate (directory)', RUNS, async () => {
        const r = validateFleet(await readFleetDirectory('fleet', { cwd: dir }));
        if (r.errorCount > 0) throw new Error('invalid');
      }),
      await measure('read + validate (git revision)', RUNS, async () => {
        const r = validateFleet(await readFleetAtRevision(repo, 'HEAD', 'fleet'));
        if (r.errorCount > 0) throw new Error('invalid');
      }),
    ];

    console.log(
      `fleet: ${FILES} files (1 Fleet, ${RELEASES} Releases, ${LAYERS} ConfigLayers), ` +
        `${(bytes / 1024 / 1024).toFixed(1)} MiB; ${RUNS} runs each; node ${process.version}\n`,
    );
    const rows = timings.map((t) => ({
      name: t.name,
      median: median(t.ms),
      min: Math.min(...t.ms),
      max: Math.max(...t.ms),
    }));
    const header = ['', 'median ms', 'min ms', 'max ms', 'files/s'];
    const table = [
      header,
      ...rows.map((r) => [
        r.name,
        r.median.toFixed(0),
        r.min.toFixed(0),
        r.max.toFixed(0),
        Math.round((FILES / r.median) * 1000).toLocaleString('en-US'),
      ]),
    ];
    const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
    for (const row of table) {
      console.log(
        row
          .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
          .join('  '),
      );
    }
    const [baseline, , directory, revision] = rows;
    console.log(
      `\nvalidate / baseline: ${(directory!.median / baseline!.median).toFixed(1)}x (directory), ` +
        `${(revision!.median / baseline!.median).toFixed(1)}x (git revision)`,
    );
    const worst = Math.max(directory!.median, revision!.median);
    const verdict = worst < GOAL_MS ? 'meets' : 'MISSES';
    console.log(`goal: ${FILES} files in under ${GOAL_MS} ms: ${verdict} (${worst.toFixed(0)} ms)`);
    if (worst >= GOAL_MS) process.exitCode = 1;
  } finally {
    if (values.keep) console.log(`kept the fleet and its git repository in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

await main();
