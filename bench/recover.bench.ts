// Benchmark: time to recover from a bad candidate. The real `fleetwave serve` in its own process
// (real git origin, its engine evaluating every --evaluate-interval seconds, default 10) and a
// simulated fleet (simulate/fleet.ts) reporting every 10 s: pollIntervalSeconds 10, so each
// agent long-polls 10 s and reports when the wait ends, and at once after a new target. The
// fleet is the example fleet with pollIntervalSeconds 10 and a canary of `bake: 2m` (half of the
// internal hosts) keeping the example's canary gates. Each run pushes a commit moving to 2.5.0,
// which fails on 30% of machines (fault `failureRate: 0.3`), and records:
//   canary reached   the server serves the candidate to the canary (`servedSince` in /v1/status)
//   minAgents        /v1/status first shows >= minAgents canary agents running the candidate
//   rejected         the rejection is committed and pushed (`rollout.lastWrite.at`)
//   all back         every canary agent runs stable again: agent side (the simulation applied
//                    it) and reconciler side (status shows every canary agent reporting stable)
//   node bench/recover.bench.ts [--agents 600] [--runs 3] [--evaluate-interval 10]
// Prints (a) rejected - minAgents (goal: within 2 minutes) and (b) all back - rejected (goal:
// within 5 s) per run and their medians. A failing gate rejects at once, even while baking.

import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSimulation, type Simulation } from '../simulate/fleet.ts';
import { git } from '../test/helpers/git.ts';
import { ADMIN_TOKEN, ENROLL_TOKEN, FleetRepo, freePort } from '../test/reconciler/helpers.ts';
import { fmt, median } from './lib/stats.ts';
import type { Status as WireStatus } from '../wire/status.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '600' },
    runs: { type: 'string', default: '3' },
    'evaluate-interval': { type: 'string', default: '10' },
    seed: { type: 'string', default: '7' },
  },
});
const AGENTS = Number(values.agents);
const RUNS = Number(values.runs);
const EVALUATE = Number(values['evaluate-interval']);
const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const BAD_VERSION = '2.5.0';
const STABLE_VERSION = '2.4.0';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

interface Run {
  canary: number;
  minAgents: number;
  rejected: number;
  backAgents: number;
  backReported: number;
  canaryAgents: number;
  reason: string;
}

/** The example fleet, reporting every 10 s, with a 2-minute canary bake over half of internal. */
async function benchFleet(repo: FleetRepo): Promise<{ minAgents: number }> {
  const path = join(repo.work, 'fleet/fleet.yaml');
  const text = await readFile(path, 'utf8');
  const edited = text
    .replace('pollIntervalSeconds: 60', 'pollIntervalSeconds: 10')
    .replace(/(- name: canary[\s\S]*?)percent: 5\n(\s*)bake: 15m/, '$1percent: 50\n$2bake: 2m');
  if (!edited.includes('bake: 2m') || !edited.includes('pollIntervalSeconds: 10')) {
    throw new Error('the example fleet changed: update benchFleet');
  }
  await repo.commit({ 'fleet/fleet.yaml': edited }, 'bench: 10 s reports, a 2-minute canary bake');
  const min = /- name: canary[\s\S]*?minAgents: (\d+)/.exec(edited);
  return { minAgents: Number(min![1]) };
}

/** A commit on the origin's main that moves the fleet to the bad version. */
async function pushBad(repo: FleetRepo, run: number): Promise<string> {
  git(repo.work, 'fetch', '-q', 'origin');
  git(repo.work, 'reset', '-q', '--hard', 'origin/main');
  const path = join(repo.work, 'fleet/fleet.yaml');
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace(`version: ${STABLE_VERSION}`, `version: ${BAD_VERSION}`));
  git(repo.work, 'commit', '-qam', `Upgrade metrics-agent to ${BAD_VERSION} (run ${run})`);
  git(repo.work, 'push', '-q', 'origin', 'main');
  return repo.head();
}

async function main(): Promise<void> {
  console.log(
    `fleetwave time-to-recover benchmark: ${AGENTS} simulated agents reporting every 10 s, ` +
      `canary bake 2m, evaluate interval ${EVALUATE} s, ${RUNS} runs`,
  );
  console.log(
    `node ${process.version}, ${availableParallelism()} CPUs, load average at start ${load()}`,
  );
  const repo = await FleetRepo.create();
  const { minAgents } = await benchFleet(repo);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let serverLog = '';
  const server = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--repo',
      repo.origin,
      '--data-dir',
      join(repo.root, 'data'),
      '--port',
      String(port),
      // Only how soon a push is seen; nothing measured depends on it.
      '--fetch-interval',
      '2',
      '--evaluate-interval',
      String(EVALUATE),
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        FLEETWAVE_ENROLL_TOKEN: ENROLL_TOKEN,
        FLEETWAVE_ADMIN_TOKEN: ADMIN_TOKEN,
      },
    },
  );
  server.stderr!.on('data', (d: Buffer) => (serverLog = (serverLog + d.toString()).slice(-4000)));
  let sim: Simulation | undefined;
  const status = async (): Promise<Status> => {
    const res = await fetch(`${url}/v1/status`);
    return (await res.json()) as Status;
  };
  /** Bounded polling. */
  async function until<T>(
    what: string,
    timeoutMs: number,
    everyMs: number,
    check: () => Promise<T | undefined>,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await check();
      if (found !== undefined) return found;
      if (Date.now() > deadline || server.exitCode !== null) {
        throw new Error(`timed out waiting for ${what}\n${serverLog}`);
      }
      await sleep(everyMs);
    }
  }

  try {
    await until('the server', 60_000, 100, async () =>
      fetch(`${url}/readyz`).then(
        (r) => (r.status === 200 ? true : undefined),
        () => undefined,
      ),
    );
    sim = startSimulation({
      url,
      agents: AGENTS,
      enrollToken: ENROLL_TOKEN,
      seed: Number(values.seed),
      faults: [{ match: { version: BAD_VERSION }, failureRate: 0.3 }],
      rampSeconds: 5,
    });
    const simulation = sim;
    await until('every agent on stable', 60_000, 200, async () => {
      const s = simulation.stats();
      return s.versions[STABLE_VERSION] === AGENTS ? true : undefined;
    });
    // A full report cycle, so every agent is in its steady 10 s rhythm.
    await sleep(12_000);
    const first = await status();
    console.log(
      `${AGENTS} agents on ${STABLE_VERSION}; canary wave: ${first.waves[0]!.agents} agents, ` +
        `minAgents ${minAgents}; load average ${load()}`,
    );

    const runs: Run[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const bad = await pushBad(repo, run);
      const short = bad.slice(0, 12);
      // Agent side: when no agent runs the bad version any more, sampled every 20 ms.
      let seenBad = false;
      let backAgents = 0;
      const sampler = setInterval(() => {
        const n = simulation.stats().versions[BAD_VERSION] ?? 0;
        if (n > 0) seenBad = true;
        else if (seenBad && backAgents === 0) backAgents = Date.now();
      }, 20);
      try {
        const canary = await until('the canary start', 120_000, 100, async () => {
          const s = await status();
          return s.candidate?.revision === bad && s.servedSince
            ? Date.parse(s.servedSince)
            : undefined;
        });
        let reached = 0;
        let rejected = 0;
        let reason = '';
        await until('the rejection', 10 * 60_000, 100, async () => {
          const sent = Date.now();
          const s = await status();
          const at = (sent + Date.now()) / 2;
          if (
            !reached &&
            s.candidate?.revision === bad &&
            s.waves[0]!.running.candidate >= minAgents
          )
            reached = at;
          // The write's own time; the served state (with the reason) follows a moment later.
          const w = s.rollout.lastWrite;
          if (w?.subject.startsWith(`fleetwave: reject ${short}`)) rejected ||= Date.parse(w.at);
          const rejection = s.rejected.find((r) => r.revision === bad);
          if (!rejection) return undefined;
          if (!rejected && s.servedSince) rejected = Date.parse(s.servedSince);
          reason = rejection.reason;
          return true;
        });
        // A rejection decided before a status poll saw minAgents: it happened in between.
        if (!reached) reached = rejected;
        const back = await until('every canary agent back on stable', 60_000, 50, async () => {
          const sent = Date.now();
          const s = await status();
          const c = s.waves[0]!;
          return c.running.stable === c.agents ? { at: (sent + Date.now()) / 2, c } : undefined;
        });
        await until('every agent back on stable (agent side)', 60_000, 20, async () =>
          backAgents ? true : undefined,
        );
        const r: Run = {
          canary,
          minAgents: reached,
          rejected,
          backAgents,
          backReported: back.at,
          canaryAgents: back.c.agents,
          reason,
        };
        runs.push(r);
        console.log(
          `run ${run}: ${short} canary reached; minAgents after ${fmt((r.minAgents - r.canary) / 1000, 1)} s; ` +
            `(a) rejected ${fmt((r.rejected - r.minAgents) / 1000, 1)} s after minAgents; ` +
            `(b) every canary agent on stable ${fmt(r.backAgents - r.rejected)} ms after ` +
            `(reported to the reconciler: ${fmt(r.backReported - r.rejected)} ms); ${r.reason}`,
        );
      } finally {
        clearInterval(sampler);
      }
      // The engine pushes the revert to main; the next run's commit goes on top of it.
      await until('the revert on main', 60_000, 200, async () => {
        const s = await status();
        return s.rollout.reverts.some((x) => x.revision === bad && x.state === 'pushed')
          ? true
          : undefined;
      });
      await sleep(5_000);
    }

    const a = runs.map((r) => (r.rejected - r.minAgents) / 1000);
    const b = runs.map((r) => r.backAgents - r.rejected);
    const bReported = runs.map((r) => r.backReported - r.rejected);
    console.log('');
    console.log(
      `median over ${runs.length} runs: canary reached -> minAgents ${fmt(median(runs.map((r) => (r.minAgents - r.canary) / 1000)), 1)} s; ` +
        `canary reached -> rejected ${fmt(median(runs.map((r) => (r.rejected - r.canary) / 1000)), 1)} s`,
    );
    console.log(
      `(a) rejected - minAgents reached: median ${fmt(median(a), 1)} s, max ${fmt(Math.max(...a), 1)} s ` +
        `(goal: within 120 s) ${Math.max(...a) <= 120 ? 'MET' : 'NOT MET'}`,
    );
    console.log(
      `(b) every canary agent on stable - rejected: median ${fmt(median(b))} ms, max ${fmt(Math.max(...b))} ms ` +
        `(goal: within 5,000 ms) ${Math.max(...b) <= 5000 ? 'MET' : 'NOT MET'}; ` +
        `as reported to the reconciler: median ${fmt(median(bReported))} ms`,
    );
    console.log(`load average at end ${load()}`);
  } finally {
    await sim?.stop();
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await repo.cleanup();
  }
}

await main();
