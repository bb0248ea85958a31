// Benchmark: fan-out and memory of long-polling. N agents hold `POST /v1/checkin?wait=60`
// (raw sockets, spread over client processes of at most 9,000 each); a change lands (a commit
// that gives every agent a new version, made stable on the state branch, then a signed push
// webhook) and each client records when its new target arrived.
//   node bench/fanout.bench.ts [--agents N] [--clients N] [--semi-space MiB] [--node-args='FLAGS']
//                              [--v8-defaults] [--no-agent-port] [--no-baseline] [--no-etcd]
// Prints p50/p99/max of (arrival - webhook sent) and how many got the new target (goal:
// everyone under 3 s, and faster than etcd waking as many watchers in the same run), and the
// server's VmRSS before and with the waiters held, per waiting agent (goal: under 12 KB). The
// same run measures the reconciler as it ships (Node's parser), the same server's agents held
// on its --agent-port (reconciler/agent-port.ts), a bare node:http server holding the same
// requests, and
// etcd (`etcd-server`) waking as many watches through its HTTP gateway. The issue asks for
// 20,000 agents; a process here may hold at most 20,000 open files, so one server holds 18,000
// and the figures are per agent.

import { fork, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initialRolloutState } from '../core/rollout/state.ts';
import { WEBHOOK_SECRET, metric } from '../test/reconciler/helpers.ts';
import { syntheticAgents } from '../simulate/labels.ts';
import type { LongpollAgent, LongpollMessage, LongpollReply } from './lib/longpoll-worker.ts';
import { startEtcd } from './lib/etcd.ts';
import {
  enrollAll,
  rssKiB,
  shippedNodeArgs,
  startReconciler,
  type Transport,
} from './lib/reconciler.ts';
import { until } from '../test/helpers/until.ts';
import { cpuSeconds } from './lib/load.ts';
import { fmt, percentile, wallMs } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '18000' },
    clients: { type: 'string', default: '2' },
    /** A profiling aid: write a heap snapshot of the server into DIR while the waiters are held. */
    'heap-snapshot': { type: 'string' },
    /**
     * V8's --max-semi-space-size (MiB) for the server and the baseline: young-generation size.
     * Without it (and without --v8-defaults), the flags of the systemd unit (shippedNodeArgs).
     */
    'semi-space': { type: 'string' },
    /** Run the server and the baseline with V8's defaults instead of the unit's flags. */
    'v8-defaults': { type: 'boolean', default: false },
    /** More Node/V8 flags for the server and the baseline, space-separated (e.g. '--optimize-for-size'). */
    'node-args': { type: 'string' },
    /** Skip the bare node:http baseline. */
    'no-baseline': { type: 'boolean', default: false },
    /** Skip the reconciler's --agent-port. */
    'no-agent-port': { type: 'boolean', default: false },
    /** Skip etcd. */
    'no-etcd': { type: 'boolean', default: false },
  },
});
/** Sockets per client process, under the 20,000 open files a process may hold. */
const PER_CLIENT = 9000;
const AGENTS = Math.min(18_000, Number(values.agents));
const CLIENTS = Math.max(Math.ceil(AGENTS / PER_CLIENT), Number(values.clients));
const WAIT = 60;
const WORKER = fileURLToPath(new URL('./lib/longpoll-worker.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

console.log(
  `fleetwave fan-out benchmark: ${fmt(AGENTS)} agents long-polling (wait=${WAIT}) from ${CLIENTS} client processes`,
);
console.log(
  `node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPUs, ` +
    `load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
);
console.log(
  'the issue asks 20,000 agents; a process may hold at most 20,000 open files here, so one server holds 18,000',
);

function reply<K extends LongpollReply['kind']>(
  child: ChildProcess,
  kind: K,
  timeoutMs: number,
): Promise<Extract<LongpollReply, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${kind} from a client`)), timeoutMs);
    const on = (m: LongpollReply): void => {
      if (m.kind !== kind) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m as Extract<LongpollReply, { kind: K }>);
    };
    child.on('message', on);
  });
}

const snapshotDir = values['heap-snapshot'];
const v8Args = [
  ...(values['semi-space'] !== undefined
    ? [`--max-semi-space-size=${Number(values['semi-space'])}`]
    : values['v8-defaults']
      ? []
      : shippedNodeArgs()),
  ...(values['node-args'] ?? '').split(' ').filter((a) => a !== ''),
];
console.log(
  `server and baseline run with ${v8Args.length > 0 ? v8Args.join(' ') : "no Node/V8 flags (V8's defaults)"}`,
);
const clients: ChildProcess[] = [];
let agentsForBaseline: LongpollAgent[] = [];

/** Forks the client processes, each sending its share of the check-ins to `port`. */
async function startClients(
  port: number,
  agents: LongpollAgent[],
): Promise<Extract<LongpollReply, { kind: 'sent' }>[]> {
  clients.length = 0;
  for (let c = 0; c < CLIENTS; c++) {
    const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    clients.push(child);
    const message: LongpollMessage = {
      kind: 'start',
      port,
      wait: WAIT,
      agents: agents.filter((_, i) => i % CLIENTS === c),
    };
    child.send(message);
  }
  return Promise.all(clients.map((c) => reply(c, 'sent', 60_000)));
}

/**
 * The clients' reports once `expected` waiters have been answered (everyone should be within
 * seconds; 30 at most).
 */
async function awaitWoken(expected: number): Promise<Extract<LongpollReply, { kind: 'report' }>[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await sleep(500);
    const pending = clients.map((c) => reply(c, 'report', 10_000));
    for (const c of clients) c.send({ kind: 'report' } satisfies LongpollMessage);
    const reports = await Promise.all(pending);
    const woken = reports.reduce((n, r) => n + r.statuses.filter((x) => x !== 0).length, 0);
    if (woken >= expected || Date.now() > deadline) return reports;
  }
}

async function stopClients(): Promise<void> {
  for (const c of clients) {
    if (c.connected) c.send({ kind: 'close' } satisfies LongpollMessage);
  }
  await sleep(500);
  for (const c of clients) if (c.exitCode === null) c.kill('SIGKILL');
}

interface Figures {
  label: string;
  got: number;
  held: number;
  /** The first answer (or woken watch): the change's way to the first waiter. */
  first: number;
  p50: number;
  p99: number;
  max: number;
  perAgent: number;
  /** CPU seconds the server used from the change being sent until everyone had it. */
  cpu: number;
}
const summary: Figures[] = [];

async function measureReconciler(transport: Transport, label: string): Promise<void> {
  const reconciler = await startReconciler({
    transport,
    maxWaitSeconds: WAIT,
    nodeArgs: [
      ...v8Args,
      ...(snapshotDir === undefined
        ? []
        : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`]),
    ],
  });
  try {
    const rssStart = reconciler.rssKiB();
    let started = performance.now();
    const { enrolled } = await enrollAll(reconciler.agentUrl, syntheticAgents(AGENTS));
    console.log(
      `\n${label}: enrolled and checked in ${fmt(AGENTS)} agents in ${fmt((performance.now() - started) / 1000, 1)} s`,
    );
    const waiters = async (): Promise<number> =>
      metric(
        await (await fetch(`${reconciler.url}/metrics`)).text(),
        'fleetwave_longpoll_waiters',
      ) ?? 0;

    // RSS before: every agent known to the server, none waiting. Let the enrolment's garbage go.
    await sleep(3000);
    const rssBefore = reconciler.rssKiB();

    started = performance.now();
    agentsForBaseline = enrolled.map(({ id, token, labels, etag, version }) => ({
      id,
      token,
      labels,
      etag,
      version,
    }));
    const sent = await startClients(Number(new URL(reconciler.agentUrl).port), agentsForBaseline);
    const connectErrors = sent.reduce((n, s) => n + s.errors, 0);
    await until(async () => (await waiters()) >= AGENTS - connectErrors, `${AGENTS} waiters`, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const held = await waiters();
    console.log(
      `${fmt(held)} check-ins held after ${fmt((performance.now() - started) / 1000, 1)} s` +
        (connectErrors > 0 ? ` (${connectErrors} connections failed)` : ''),
    );
    await sleep(2000);
    const rssWith = reconciler.rssKiB();
    if (snapshotDir !== undefined) {
      process.kill(reconciler.pid, 'SIGUSR2');
      await sleep(20_000); // writing it blocks the server; bounded
      console.log(
        `heap snapshot written to ${snapshotDir}; VmRSS after its full GC ${fmt(reconciler.rssKiB() / 1024, 1)} MiB`,
      );
    }

    // The change: every agent gets version 2.5.0, made stable, then GitHub's push webhook.
    const fleet = await reconciler.repo.read('fleet/fleet.yaml');
    const changed = await reconciler.repo.commit(
      { 'fleet/fleet.yaml': fleet.replace('version: 2.4.0', 'version: 2.5.0') },
      'agent 2.5.0',
    );
    reconciler.repo.writeState(initialRolloutState(changed), 'bench: make 2.5.0 stable');
    const payload = JSON.stringify({ ref: 'refs/heads/main', after: changed });
    const signature = createHmac('sha256', WEBHOOK_SECRET).update(payload).digest('hex');
    const cpuBefore = cpuSeconds([reconciler.pid]);
    const webhookSentAt = wallMs();
    const hook = await fetch(`${reconciler.url}/v1/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': `sha256=${signature}`,
        'x-github-delivery': `bench-${transport}`,
        'x-github-event': 'push',
      },
      body: payload,
    });
    if (hook.status !== 202) throw new Error(`the webhook answered ${hook.status}`);
    const hookAnsweredMs = wallMs() - webhookSentAt;

    const reports = await awaitWoken(held);
    const cpu = cpuSeconds([reconciler.pid]) - cpuBefore;
    const rssAfter = reconciler.rssKiB();
    const latencies: number[] = [];
    let got = 0;
    let other = 0;
    for (const r of reports) {
      r.statuses.forEach((status, i) => {
        if (status === 200 && r.changed[i]) {
          got++;
          latencies.push(r.arrivals[i]! - webhookSentAt);
        } else if (status !== 0) other++;
      });
    }
    const p = (q: number) => fmt(percentile(latencies, q), 0);
    const max = latencies.length > 0 ? Math.max(...latencies) : NaN;
    console.log(`\nfan-out (time from the webhook being sent to the new target's first byte):`);
    console.log(
      `  webhook answered in ${fmt(hookAnsweredMs, 1)} ms; git fetch, validation and release follow`,
    );
    console.log(
      `  ${fmt(got)} of ${fmt(held)} waiting agents got the new target` +
        (other > 0 ? `, ${fmt(other)} got something else` : '') +
        `; first ${p(0)} ms, p50 ${p(50)} ms, p99 ${p(99)} ms, max ${fmt(max, 0)} ms ` +
        `(goal: everyone under 3,000 ms: ${got === AGENTS && max < 3000 ? 'met' : 'MISSED'})`,
    );
    const perAgent = (rssWith - rssBefore) / Math.max(1, held);
    console.log(`\nmemory (VmRSS of the server process):`);
    console.log(
      `  at start ${fmt(rssStart / 1024, 1)} MiB; ${fmt(AGENTS)} agents known, none waiting ` +
        `${fmt(rssBefore / 1024, 1)} MiB; ${fmt(held)} waiting ${fmt(rssWith / 1024, 1)} MiB; ` +
        `after the release ${fmt(rssAfter / 1024, 1)} MiB`,
    );
    summary.push({
      label,
      got,
      held,
      first: percentile(latencies, 0),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max,
      perAgent,
      cpu,
    });
    console.log(
      `  the server used ${fmt(cpu * 1000, 0)} CPU-ms from the webhook until everyone had the change ` +
        '(fetch, validation, rendering every target, the answers); load inflates it less than wall time',
    );
    console.log(
      `  per waiting agent: ${fmt(perAgent, 2)} KiB (goal under 12 KB: ${perAgent * 1.024 < 12 ? 'met' : 'MISSED'}); ` +
        `per known agent (records, no connection): ${fmt((rssBefore - rssStart) / AGENTS, 2)} KiB`,
    );
  } finally {
    await stopClients();
    await reconciler.stop();
  }
}

await measureReconciler('node', "reconciler (Node's parser)");
if (!values['no-agent-port']) await measureReconciler('agent-port', 'reconciler (--agent-port)');

// The floor: a bare node:http server holding the same check-ins, in the same run.
if (!values['no-baseline'] && agentsForBaseline.length > 0) {
  const holder = fork(fileURLToPath(new URL('./lib/bare-holder.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: v8Args,
  });
  const ask = <T>(kind: string, send?: object): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} from the baseline`)), 10_000);
      const on = (m: { kind: string }): void => {
        if (m.kind !== kind) return;
        clearTimeout(timer);
        holder.off('message', on);
        resolve(m as T);
      };
      holder.on('message', on);
      if (send) holder.send(send);
    });
  try {
    const { port } = await ask<{ port: number }>('listening');
    await sleep(1000);
    const before = rssKiB(holder.pid!);
    await startClients(port, agentsForBaseline);
    let held = 0;
    await until(
      async () => {
        held = (await ask<{ held: number }>('count', { kind: 'count' })).held;
        return held >= agentsForBaseline.length;
      },
      'the baseline to hold every check-in',
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    await sleep(2000);
    const withHeld = rssKiB(holder.pid!);
    console.log(
      `\nbaseline, bare node:http holding the same ${fmt(held)} check-ins: ${fmt(before / 1024, 1)} MiB -> ` +
        `${fmt(withHeld / 1024, 1)} MiB, ${fmt((withHeld - before) / held, 2)} KiB per held request`,
    );
    summary.push({
      label: 'bare node:http (memory floor)',
      got: NaN,
      held,
      first: NaN,
      p50: NaN,
      p99: NaN,
      max: NaN,
      perAgent: (withHeld - before) / held,
      cpu: NaN,
    });
  } finally {
    await stopClients();
    holder.kill('SIGKILL');
  }
}
// The yardstick for waking: etcd holding as many watches on one key (its HTTP/JSON gateway,
// one connection each, from the same client processes), woken by one put.
if (!values['no-etcd']) {
  const etcd = await startEtcd();
  if (!etcd) {
    console.log('\netcd is not installed: its comparison is skipped (apt-get install etcd-server)');
  } else {
    try {
      await etcd.put('fleetwave/bench', 'v1');
      await sleep(1000);
      const before = rssKiB(etcd.pid);
      clients.length = 0;
      for (let c = 0; c < CLIENTS; c++) {
        const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        clients.push(child);
        const count = Math.floor(AGENTS / CLIENTS) + (c < AGENTS % CLIENTS ? 1 : 0);
        child.send({
          kind: 'watch',
          port: etcd.port,
          key: 'fleetwave/bench',
          count,
        } satisfies LongpollMessage);
      }
      const sent = await Promise.all(clients.map((c) => reply(c, 'sent', 60_000)));
      const failed = sent.reduce((n, r) => n + r.errors, 0);
      let created = 0;
      await until(
        async () => {
          const counts = await Promise.all(
            clients.map((c) => {
              const pending = reply(c, 'watching', 10_000);
              c.send({ kind: 'watching' } satisfies LongpollMessage);
              return pending;
            }),
          );
          created = counts.reduce((n, r) => n + r.created, 0);
          return created >= AGENTS - failed;
        },
        `${AGENTS} etcd watches`,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      await sleep(2000);
      const withHeld = rssKiB(etcd.pid);
      const cpuBefore = cpuSeconds([etcd.pid]);
      const putAt = wallMs();
      await etcd.put('fleetwave/bench', 'v2');
      const putAnsweredMs = wallMs() - putAt;
      const reports = await awaitWoken(created);
      const cpu = cpuSeconds([etcd.pid]) - cpuBefore;
      const latencies = reports.flatMap((r) =>
        r.arrivals.filter((a) => !Number.isNaN(a)).map((a) => a - putAt),
      );
      const p = (q: number) => fmt(percentile(latencies, q), 0);
      const max = latencies.length > 0 ? Math.max(...latencies) : NaN;
      console.log(
        `\netcd ${etcd.version}, ${fmt(created)} watches through its HTTP gateway` +
          (failed > 0 ? ` (${failed} connections failed)` : '') +
          `: the put answered in ${fmt(putAnsweredMs, 1)} ms; ${fmt(latencies.length)} woken using ${fmt(cpu * 1000, 0)} CPU-ms, ` +
          `first ${p(0)} ms, p50 ${p(50)} ms, p99 ${p(99)} ms, max ${fmt(max, 0)} ms after the put was sent`,
      );
      console.log(
        `  etcd VmRSS ${fmt(before / 1024, 1)} MiB -> ${fmt(withHeld / 1024, 1)} MiB with the watches: ` +
          `${fmt((withHeld - before) / Math.max(1, created), 2)} KiB per watch`,
      );
      summary.push({
        label: `etcd ${etcd.version} watch (HTTP gateway)`,
        got: latencies.length,
        held: created,
        first: percentile(latencies, 0),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max,
        perAgent: (withHeld - before) / Math.max(1, created),
        cpu,
      });
    } finally {
      await stopClients();
      await etcd.stop();
    }
  }
}

console.log(`\nside by side (one run; wake times from the webhook, or etcd's put, being sent):`);
for (const f of summary) {
  const wake = Number.isNaN(f.max)
    ? 'no wake measured'
    : `${fmt(f.got)}/${fmt(f.held)} woken, first ${fmt(f.first, 0)} ms, p50 ${fmt(f.p50, 0)} ms, p99 ${fmt(f.p99, 0)} ms, max ${fmt(f.max, 0)} ms`;
  const cpu = Number.isNaN(f.cpu) ? '' : `, ${fmt(f.cpu * 1000, 0)} CPU-ms`;
  console.log(`  ${f.label.padEnd(36)} ${wake}${cpu}; ${fmt(f.perAgent, 2)} KiB per held request`);
}
// The goal, for each way agents' requests are read (Node's parser, the agent port).
const etcdFigures = summary.find((f) => f.label.startsWith('etcd'));
for (const ours of summary.filter((f) => f.label.startsWith('reconciler'))) {
  if (!etcdFigures || Number.isNaN(ours.max)) continue;
  console.log(
    `  goal, every agent woken faster than etcd wakes as many watches, ${ours.label}: ${ours.got === ours.held && ours.max < etcdFigures.max ? 'met' : 'MISSED'} ` +
      `(${fmt(ours.max, 0)} ms vs ${fmt(etcdFigures.max, 0)} ms, the last one each; ${fmt(ours.max / etcdFigures.max, 2)}x)`,
  );
}
console.log(
  `load average at end ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
