// Benchmark: placing and rendering the targets of 100,000 agents over the example fleet.
//   node bench/targets.bench.ts [agents]
// Prints agents per second (a fresh cache: every merge, label group and etag computed), the
// time per target once cached, two baselines measured in the same run (rendering without the
// cache; JSON.stringify of the prebuilt targets) and the whole `fleetwave targets` command on
// a JSON inventory. Goal: 100,000 agents in under 3 s.

import { spawnSync } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetModel } from '../core/fleet/model.ts';
import { validateFleet } from '../core/fleet/validate.ts';
import { TargetCache } from '../core/target/cache.ts';
import type { RenderResult, Target } from '../core/target/model.ts';
import { renderTarget } from '../core/target/render.ts';
import { run } from '../cli/run.ts';
import { readFleetDirectory } from '../source/directory.ts';
import { syntheticAgents } from '../simulate/labels.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI = join(ROOT, 'cli/main.ts');
const COUNT = Number(process.argv[2] ?? 100_000);
const RUNS = 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

function timeRuns(runs: number, fn: () => void): number {
  return median(Array.from({ length: runs }, () => time(fn)));
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const validation = validateFleet(await readFleetDirectory('fleet', { cwd: ROOT }));
if (!validation.model) throw new Error('the example fleet does not validate');
const model = validation.model;
const agents = syntheticAgents(COUNT);

function renderAll(cache: TargetCache): RenderResult[] {
  return agents.map((a) => cache.render(a));
}

// The example fleet with `agent.hostname: ${agent.id}` taken out: targets shared per group.
function withoutIdInterpolation(m: FleetModel): FleetModel {
  const layers = m.layers.map((layer) => {
    if (layer.metadata.name !== 'base') return layer;
    const values = structuredClone(layer.spec.values) as { agent: Record<string, unknown> };
    delete values.agent['hostname'];
    return { ...layer, spec: { ...layer.spec, values } };
  });
  return { ...m, layers };
}

console.log(`fleetwave targets benchmark: ${fmt(COUNT)} agents over fleet/ (median of ${RUNS})`);
console.log(`node ${process.version}, ${process.platform}/${process.arch}`);

for (const [name, m] of [
  ['example fleet (config interpolates ${agent.id}: one target per agent)', model],
  [
    'example fleet without ${agent.id} (targets shared per label group)',
    withoutIdInterpolation(model),
  ],
] as const) {
  let cache = new TargetCache(m, 'workdir');
  renderAll(cache); // warm up the JIT
  const cold = timeRuns(RUNS, () => {
    cache = new TargetCache(m, 'workdir');
    renderAll(cache);
  });
  let results: RenderResult[] = [];
  const warm = timeRuns(RUNS, () => {
    results = renderAll(cache);
  });
  const failed = results.filter((r) => !r.ok).length;
  const distinct = new Set(results.map((r) => (r.ok ? r.target.etag : r.error.message))).size;
  console.log(`\n${name}`);
  console.log(
    `  label groups ${fmt(cache.stats.groups)}, merges ${fmt(cache.stats.merges)}, distinct targets ${fmt(distinct)}, errors ${failed}`,
  );
  console.log(
    `  fresh cache:  ${fmt(cold, 1)} ms for ${fmt(COUNT)} agents = ${fmt((COUNT / cold) * 1000)} agents/s`,
  );
  console.log(
    `  once cached:  ${fmt((warm / COUNT) * 1000, 2)} µs per target = ${fmt((COUNT / warm) * 1000)} agents/s`,
  );

  // Baseline 1: the reference renderer, no cache (on a sample; it is slow by design).
  const sample = agents.slice(0, Math.min(COUNT, 10_000));
  const uncached = timeRuns(3, () => {
    for (const a of sample) renderTarget(m, 'workdir', a);
  });
  const uncachedPerAgent = uncached / sample.length;
  console.log(
    `  baseline, no cache: ${fmt(uncachedPerAgent * 1000, 2)} µs per target = ${fmt(1000 / uncachedPerAgent)} agents/s; ` +
      `fresh cache is ${fmt(uncachedPerAgent / (cold / COUNT), 1)}× faster, warm cache ${fmt(uncachedPerAgent / (warm / COUNT), 1)}×`,
  );

  // Baseline 2: printing the prebuilt targets as JSON, which any consumer must do anyway.
  const targets: Target[] = results.flatMap((r) => (r.ok ? [r.target] : []));
  const stringify = timeRuns(RUNS, () => {
    for (const t of targets) JSON.stringify(t);
  });
  // TargetCache.json on targets it has never printed (a fresh cache each run).
  const jsonRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const fresh = new TargetCache(m, 'workdir');
    const printed = renderAll(fresh).flatMap((r) => (r.ok ? [r.target] : []));
    jsonRuns.push(
      time(() => {
        for (const t of printed) fresh.json(t);
      }),
    );
  }
  const json = median(jsonRuns);
  console.log(
    `  baseline, JSON.stringify of the ${fmt(targets.length)} targets: ${fmt(stringify, 1)} ms; ` +
      `fresh-cache rendering costs ${fmt(cold / stringify, 2)}× that`,
  );
  console.log(
    `  TargetCache.json prints them (first time) in ${fmt(json, 1)} ms, ${fmt(stringify / json, 1)}× faster than JSON.stringify`,
  );
}

// The whole command in this process: read and validate the fleet, read the JSON inventory,
// render, print JSON (into a byte count rather than a pipe).
const dir = await mkdtemp(join(tmpdir(), 'fleetwave-bench-'));
const inventory = join(dir, 'inventory.json');
await writeFile(inventory, JSON.stringify(agents));
let printed = 0;
const io = {
  cwd: ROOT,
  env: {},
  stdout: (t: string) => {
    printed += t.length;
  },
  stderr: () => {},
};
const args = ['targets', 'fleet', '--inventory', inventory, '--format', 'json'];
await run(args, io);
const inProcess: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < 5; i++) {
  printed = 0;
  const start = performance.now();
  const before = process.cpuUsage();
  const status = await run(args, io);
  const used = process.cpuUsage(before);
  inProcess.push(performance.now() - start);
  cpu.push((used.user + used.system) / 1000);
  if (status !== 0) throw new Error(`fleetwave targets exited ${status}`);
}
console.log(
  `\nfleetwave targets fleet --inventory <${fmt(COUNT)} agents, JSON> --format json, in process: ` +
    `${fmt(median(inProcess))} ms (${fmt(median(cpu))} ms of CPU; ${fmt(printed / 1024 / 1024, 1)} MiB of JSON)`,
);

// The same as a new process, the way people run it (`fleetwave targets … > targets.json`):
// process start, loading and checking the fleet, and writing the file included.
try {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const out = await open(join(dir, 'targets.json'), 'w');
    const start = performance.now();
    const r = spawnSync(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      stdio: ['ignore', out.fd, 'pipe'],
    });
    runs.push(performance.now() - start);
    await out.close();
    if (r.status !== 0) throw new Error(`fleetwave targets failed: ${r.stderr.toString()}`);
  }
  const total = median(runs);
  console.log(
    `as a new process writing a file: ${fmt(total)} ms end to end; goal < 3,000 ms for 100,000 agents: ${total < 3000 ? 'met' : 'NOT met'}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
