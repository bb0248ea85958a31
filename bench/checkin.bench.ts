// Benchmark: check-in throughput of the reconciler against nginx serving a static JSON file
// with an ETag, on the same machine, with the same load generator (bench/lib/load.ts), in the
// same run, interleaved run by run; and, in the same run, the reconciler's agents checking in
// on its --agent-port (the strict hand-written HTTP/1.1 server, reconciler/agent-port.ts).
//   node bench/checkin.bench.ts [--agents N] [--runs N] [--seconds S] [--connections N]
//                               [--workers N] [--nginx-auto] [--no-agent-port] [--no-floors]
//                               [--node-args='FLAGS']
// 304 path: every request is a different enrolled agent checking in with the etag it runs
// (POST /v1/checkin?wait=0, If-None-Match); 200 path: the same with a stale etag, so the
// whole target comes back. nginx: GET of a real rendered target of the example fleet, with
// and without its If-None-Match. Goal: at least half of nginx's requests/s while doing
// per-agent targeting. The reconciler and nginx (worker_processes 1) are pinned to CPU 0 and
// the load generator to CPU 1 when the machine has two or more. Two floors take the
// reconciler's own requests and answer them with the same bytes doing no work (a bare
// node:http server, and a bare net.Socket: bench/lib/floor-server.ts), so each run also tells
// what Node costs per check-in, and what fleetwave adds to it (--no-floors skips them).

import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { syntheticAgents } from '../simulate/labels.ts';
import { runLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { startFloor, type Floor, type FloorKind } from './lib/floor.ts';
import { startNginx, type Nginx } from './lib/nginx.ts';
import {
  checkinRequest,
  enrollAll,
  shippedNodeArgs,
  startReconciler,
  type ReconcilerProcess,
  type Transport,
} from './lib/reconciler.ts';
import { fmt, median } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    workers: { type: 'string', default: '2' },
    'nginx-auto': { type: 'boolean', default: false },
    /** Skip the reconciler's --agent-port. */
    'no-agent-port': { type: 'boolean', default: false },
    /** Skip the bare node:http and net.Socket floors. */
    'no-floors': { type: 'boolean', default: false },
    /**
     * Node/V8 flags for both reconcilers and the node:http floor, space-separated (e.g.
     * '--max-semi-space-size=4'; '' for V8's defaults); by default the systemd unit's.
     */
    'node-args': { type: 'string' },
  },
});
const NODE_ARGS =
  values['node-args'] === undefined
    ? shippedNodeArgs()
    : values['node-args'].split(' ').filter((a) => a !== '');
const AGENTS = Number(values.agents);
const RUNS = Math.max(1, Math.min(20, Number(values.runs)));
const SECONDS = Math.max(1, Math.min(60, Number(values.seconds)));
const CONNECTIONS = Number(values.connections);
const WORKERS = Number(values.workers);
const pinned = availableParallelism() >= 2;
const SERVER_CPUS = pinned ? '0' : undefined;
const LOAD_CPUS = pinned ? '1' : undefined;

type Scenario = {
  name: string;
  expect: number;
  origin: string;
  pids: number[];
  requests: LoadRequest[];
};

const load = (s: Scenario): Promise<LoadResult> =>
  runLoad({
    origin: s.origin,
    requests: s.requests,
    connections: CONNECTIONS,
    workers: WORKERS,
    durationMs: SECONDS * 1000,
    warmupMs: 1000,
    serverPids: s.pids,
    ...(LOAD_CPUS === undefined ? {} : { cpus: LOAD_CPUS }),
  });

console.log(
  `fleetwave check-in benchmark: ${fmt(AGENTS)} agents, ${RUNS} runs x ${SECONDS} s per scenario, ` +
    `${CONNECTIONS} connections from ${WORKERS} load processes (undici, pipelining 1)`,
);
console.log(
  `node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPUs, ` +
    `load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
);
console.log(
  pinned
    ? 'servers pinned to CPU 0 (the reconciler is one Node process; nginx worker_processes 1), load generator to CPU 1'
    : 'one CPU: servers and load generator share it (no pinning)',
);

const transports: Array<{ transport: Transport; label: string }> = [
  { transport: 'node', label: 'reconciler' },
  ...(values['no-agent-port'] ? [] : [{ transport: 'agent-port' as const, label: 'agent port' }]),
];
console.log(
  `reconcilers run with ${NODE_ARGS.length > 0 ? NODE_ARGS.join(' ') : "no Node/V8 flags (V8's defaults)"}; ` +
    `'reconciler' is the main port on Node's parser (reconciler/http-server.ts), 'agent port' the same server's --agent-port (reconciler/agent-port.ts)`,
);
const reconcilers: Array<ReconcilerProcess & { label: string }> = [];
let nginx: Nginx | undefined;
let nginxAuto: Nginx | undefined;
const floors: Array<Floor & { label: string }> = [];
try {
  const scenarios: Scenario[] = [];
  let sample = '';
  for (const { transport, label } of transports) {
    const reconciler = await startReconciler({
      transport,
      nodeArgs: NODE_ARGS,
      ...(SERVER_CPUS === undefined ? {} : { cpus: SERVER_CPUS }),
    });
    reconcilers.push({ ...reconciler, label });
    const started = performance.now();
    const { enrolled, sampleTarget } = await enrollAll(
      reconciler.agentUrl,
      syntheticAgents(AGENTS),
    );
    sample = sampleTarget;
    console.log(
      `${label}: enrolled and checked in ${fmt(AGENTS)} agents in ${fmt((performance.now() - started) / 1000, 1)} s; ` +
        `a target is ${fmt(Buffer.byteLength(sampleTarget))} bytes`,
    );
    scenarios.push(
      {
        name: `${label} 304 (checkin, matching etag)`,
        expect: 304,
        origin: reconciler.agentUrl,
        pids: [reconciler.pid],
        requests: enrolled.map((a) => ({ method: 'POST', ...checkinRequest(a, a.etag, 0) })),
      },
      {
        name: `${label} 200 (checkin, stale etag)`,
        expect: 200,
        origin: reconciler.agentUrl,
        pids: [reconciler.pid],
        requests: enrolled.map((a) => ({ method: 'POST', ...checkinRequest(a, 'stale', 0) })),
      },
    );
  }
  const sampleTarget = sample;
  if (!values['no-floors']) {
    const requestsOf = (etag: 'stale' | 'floor'): LoadRequest[] =>
      scenarios
        .find((s) => s.expect === (etag === 'stale' ? 200 : 304))!
        .requests.map((r) => ({ ...r, headers: { ...r.headers, 'if-none-match': `"${etag}"` } }));
    for (const [kind, label] of [
      ['node-http', 'node:http floor'],
      ['net', 'net.Socket floor'],
    ] as Array<[FloorKind, string]>) {
      const floor = await startFloor({
        kind,
        body: sampleTarget,
        nodeArgs: NODE_ARGS,
        ...(SERVER_CPUS === undefined ? {} : { cpus: SERVER_CPUS }),
      });
      floors.push({ ...floor, label });
      scenarios.push(
        {
          name: `${label} 304 (same requests, no work)`,
          expect: 304,
          origin: floor.url,
          pids: [floor.pid],
          requests: requestsOf('floor'),
        },
        {
          name: `${label} 200 (same requests, no work)`,
          expect: 200,
          origin: floor.url,
          pids: [floor.pid],
          requests: requestsOf('stale'),
        },
      );
    }
    console.log(
      "floors: the reconciler's own check-in requests answered with the same bytes and no work, " +
        'by a bare node:http server and by a bare net.Socket (bench/lib/floor-server.ts)',
    );
  }
  const nginxScenarios = async (n: Nginx, label: string): Promise<Scenario[]> => {
    const etag = (await fetch(`${n.url}/target.json`)).headers.get('etag')!;
    return [
      {
        name: `${label} 304 (GET, matching etag)`,
        expect: 304,
        origin: n.url,
        pids: n.pids,
        requests: [{ method: 'GET', path: '/target.json', headers: { 'if-none-match': etag } }],
      },
      {
        name: `${label} 200 (GET, no etag)`,
        expect: 200,
        origin: n.url,
        pids: n.pids,
        requests: [{ method: 'GET', path: '/target.json', headers: {} }],
      },
    ];
  };
  nginx = await startNginx({
    body: sampleTarget,
    workerProcesses: 1,
    ...(SERVER_CPUS === undefined ? {} : { cpus: SERVER_CPUS }),
  });
  if (nginx) {
    console.log(
      `${nginx.version}: worker_processes 1, etag on, the first agent's target as a static file`,
    );
    scenarios.push(...(await nginxScenarios(nginx, 'nginx')));
  } else {
    console.log('nginx is not installed: the comparison is skipped (apt-get install nginx-light)');
  }
  if (nginx && values['nginx-auto']) {
    nginxAuto = await startNginx({ body: sampleTarget, workerProcesses: 'auto' });
    if (nginxAuto) scenarios.push(...(await nginxScenarios(nginxAuto, 'nginx auto')));
  }

  const results = new Map<string, LoadResult[]>(scenarios.map((s) => [s.name, []]));
  for (let run = 1; run <= RUNS; run++) {
    for (const s of scenarios) {
      const r = await load(s);
      const wrong = r.requests - (r.statuses[String(s.expect)] ?? 0);
      if (wrong > 0 || r.errors > 0) {
        console.log(
          `  ! ${s.name}: ${wrong} answers were not ${s.expect}, ${r.errors} errors: ${JSON.stringify(r.statuses)}`,
        );
      }
      results.get(s.name)!.push(r);
      console.log(
        `  run ${run}: ${s.name.padEnd(42)} ${fmt(r.perSecond).padStart(8)} req/s  ` +
          `${fmt(r.perCpuSecond ?? 0).padStart(8)} req/CPU-s  p50 ${fmt(r.p50Ms, 2)} ms  p99 ${fmt(r.p99Ms, 2)} ms`,
      );
    }
  }

  console.log(`\nmedians of ${RUNS} runs:`);
  const rate = (name: string): number => median(results.get(name)!.map((r) => r.perSecond));
  const perCpu = (name: string): number =>
    median(results.get(name)!.map((r) => r.perCpuSecond ?? 0));
  for (const s of scenarios) {
    const rs = results.get(s.name)!;
    console.log(
      `  ${s.name.padEnd(42)} ${fmt(rate(s.name)).padStart(8)} req/s ${fmt(perCpu(s.name)).padStart(8)} req/CPU-s  ` +
        `p50 ${fmt(median(rs.map((r) => r.p50Ms)), 2)} ms  p99 ${fmt(median(rs.map((r) => r.p99Ms)), 2)} ms`,
    );
  }
  const goal: Record<number, number> = { 304: 0.5, 200: 0.35 };
  if (nginx) {
    for (const code of [304, 200]) {
      const theirs = scenarios.find((s) => s.origin === nginx!.url && s.expect === code)!;
      for (const r of reconcilers) {
        const ours = scenarios.find((s) => s.origin === r.agentUrl && s.expect === code)!;
        const ratio = rate(ours.name) / rate(theirs.name);
        const cpuRatio = perCpu(ours.name) / perCpu(theirs.name);
        // Each run's own ratio too: the machine's speed drifts between runs more than within one.
        const nginxRuns = results.get(theirs.name)!;
        const runRatios = results
          .get(ours.name)!
          .map((o, i) => (o.perCpuSecond ?? 0) / (nginxRuns[i]!.perCpuSecond ?? 1));
        console.log(
          `  ratio ${r.label}/nginx, ${code} path: ${ratio.toFixed(2)} in req/s, ` +
            `${cpuRatio.toFixed(2)} in req per server CPU-second (goal >= ${goal[code]!.toFixed(2)} per CPU-second: ` +
            `${cpuRatio >= goal[code]! ? 'met' : 'MISSED'}); run by run ${runRatios.map((x) => x.toFixed(2)).join(', ')} ` +
            `(median ${median(runRatios).toFixed(2)})`,
        );
      }
    }
    for (const code of [304, 200]) {
      const theirs = scenarios.find((s) => s.origin === nginx!.url && s.expect === code)!;
      for (const f of floors) {
        const floor = scenarios.find((s) => s.origin === f.url && s.expect === code)!;
        const cpuRatio = perCpu(floor.name) / perCpu(theirs.name);
        const costs = reconcilers.map((r) => {
          const ours = scenarios.find((s) => s.origin === r.agentUrl && s.expect === code)!;
          const added = 1e6 / perCpu(ours.name) - 1e6 / perCpu(floor.name);
          return `${r.label} adds ${fmt(added, 1)} CPU-µs per check-in to it`;
        });
        console.log(
          `  ${f.label}, ${code} path: ${cpuRatio.toFixed(2)} of nginx per CPU-second ` +
            `(${fmt(1e6 / perCpu(floor.name), 1)} CPU-µs per answer); ${costs.join('; ')}`,
        );
      }
    }
    console.log(
      '  req/s is bounded by the load generator (one core for both) whenever a server idles; ' +
        'req/CPU-s is what each server costs per answer, whatever else the machine runs',
    );
  }
  console.log(
    `load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
} finally {
  for (const f of floors) await f.stop();
  await nginxAuto?.stop();
  await nginx?.stop();
  for (const r of reconcilers) await r.stop();
}
