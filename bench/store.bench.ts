// Benchmark: the store of agent reports at 100,000 agents, on SQLite and on a real PostgreSQL
// started for the run (Debian's postgresql, as the tests start it).
//   node bench/store.bench.ts [--agents 100000] [--runs 7] [--poll 60]
// Prints, per store: the engine's observation (one aggregation over every agent and the
// tallies) and the status counts, median of --runs; one flush of what 100,000 agents polling
// every --poll seconds send in a second, as one multi-row upsert; and the statements and rows
// per second that makes. Baseline in the same run: a full scan (SELECT SUM(requests)) of the same
// table, the least any aggregation over every row can cost. Goal: the aggregation under 200 ms
// on PostgreSQL.

import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { DEFAULT_SILENT_POLLS } from '../core/rollout/decide.ts';
import { REWRITE_FRACTION } from '../reconciler/reports.ts';
import { openStore, type AgentRow, type AgentStore } from '../reconciler/store/store.ts';
import { Postgres } from '../test/helpers/postgres.ts';
import { fmt, median } from './lib/stats.ts';
import { prng } from '../simulate/labels.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '7' },
    poll: { type: 'string', default: '60' },
  },
});
const AGENTS = Number(values.agents);
const RUNS = Number(values.runs);
const POLL = Number(values.poll);
const C = 'c'.repeat(40);
const S = 's'.repeat(40);
const NOW = Date.parse('2026-12-05T12:00:00Z');

function rows(count: number, random: () => number, seen: number): AgentRow[] {
  const out: AgentRow[] = [];
  const regions = ['us-east-1', 'eu-west-1', 'eu-central-1', 'ap-south-1'];
  for (let i = 0; i < count; i++) {
    const wave = Math.floor(random() * 4);
    const r = random();
    const status = r < 0.9 ? 'ok' : r < 0.95 ? 'degraded' : 'failed';
    out.push({
      id: `agent-${String(i).padStart(7, '0')}.acme.example`,
      labels: { env: 'prod', region: regions[i % 4]!, os: 'linux', arch: 'amd64', role: 'web' },
      wave,
      waveName: ['canary', 'early', 'europe', 'everyone'][wave]!,
      revision: wave <= 1 && random() < 0.9 ? C : random() < 0.98 ? S : null,
      etag: 'e'.repeat(64),
      version: '2.4.0',
      status,
      message: status === 'ok' ? null : 'ingest queue full',
      errors: Math.floor(random() * 3),
      requests: 100,
      failedRevision: null,
      health: { status, errors: 1, requests: 100 },
      firstSeen: NOW - 86_400_000,
      lastSeen: seen - Math.floor(random() * 200_000),
      replica: `replica-${i % 3}`,
    });
  }
  return out;
}

async function timed(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

interface Figures {
  store: string;
  cohorts: number;
  counts: number;
  scan: number;
  flush: number;
  rows: number;
}

async function measure(
  name: string,
  store: AgentStore,
  scan: () => Promise<unknown>,
): Promise<Figures> {
  const random = prng(20261205);
  const all = rows(AGENTS, random, NOW);
  for (let i = 0; i < all.length; i += 10_000) await store.upsert(all.slice(i, i + 10_000));
  await store.addTallies(
    'replica-0',
    [
      {
        revision: C,
        wave: 1,
        cohort: 'candidate',
        tally: { reports: 10, failed: 1, errors: 2, requests: 1000, rated: 10, errorRates: 0.02 },
      },
    ],
    NOW,
  );
  const silentBefore = NOW - DEFAULT_SILENT_POLLS * POLL * 1000;
  const cohorts = await timed(RUNS, () =>
    store.cohorts({ candidate: C, stable: S, wave: 1, silentBefore }),
  );
  const counts = await timed(RUNS, () => store.counts(silentBefore));
  const scanMs = await timed(RUNS, scan);
  // One second of check-ins: AGENTS / POLL agents, each report changed (the worst case).
  const perSecond = Math.ceil(AGENTS / POLL);
  let offset = 0;
  const flush = await timed(RUNS, async () => {
    const batch = rows(perSecond, random, NOW + 1000 + offset).map((r, i) => ({
      ...r,
      id: all[(offset * perSecond + i) % AGENTS]!.id,
    }));
    offset++;
    await store.upsert(batch);
  });
  return { store: name, cohorts, counts, scan: scanMs, flush, rows: perSecond };
}

const load0 = loadavg()[0]!;
const dir = await mkdtemp(join(tmpdir(), 'fleetwave-bench-store-'));
const db = await Postgres.start();
const figures: Figures[] = [];
try {
  const path = join(dir, 'agents.db');
  const sqlite = await openStore({ kind: 'sqlite', path });
  const raw = new DatabaseSync(path);
  figures.push(
    await measure('sqlite', sqlite, async () =>
      raw.prepare('SELECT SUM(requests) FROM fleetwave_agents').get(),
    ),
  );
  raw.close();
  await sqlite.close();
  const url = await db.database('bench');
  const postgres = await openStore({ kind: 'postgres', url, redacted: url });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  figures.push(
    await measure('postgres', postgres, () =>
      client.query('SELECT SUM(requests) FROM fleetwave_agents'),
    ),
  );
  await client.end();
  await postgres.close();
} finally {
  await db.stop();
  await rm(dir, { recursive: true, force: true });
}

const silentAfter = DEFAULT_SILENT_POLLS * POLL;
const rewriteAfter = silentAfter * REWRITE_FRACTION;
console.log(
  `store of agent reports: ${fmt(AGENTS)} agents, medians of ${RUNS} runs (load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)})`,
);
for (const f of figures) {
  console.log(
    `  ${f.store.padEnd(8)} aggregation ${f.cohorts.toFixed(1)} ms (full scan ${f.scan.toFixed(1)} ms: ${(f.cohorts / f.scan).toFixed(1)}×)` +
      `  counts ${f.counts.toFixed(1)} ms  flush of ${fmt(f.rows)} rows ${f.flush.toFixed(1)} ms (${fmt((f.rows / f.flush) * 1000)} rows/s)`,
  );
}
console.log(
  `write load of ${fmt(AGENTS)} agents polling every ${POLL} s, per replica: 1 statement/s (one flush a second); ` +
    `rows/s = agents / max(poll, rewrite-after ${rewriteAfter} s) = ${fmt(AGENTS / Math.max(POLL, rewriteAfter))} ` +
    `(an unchanged report is rewritten only when its last-seen moved ${REWRITE_FRACTION} × silentAfter ${silentAfter} s)`,
);
const pgFig = figures.find((f) => f.store === 'postgres')!;
console.log(
  `goal: aggregation under 200 ms on PostgreSQL: ${pgFig.cohorts < 200 ? 'met' : 'NOT met'} (${pgFig.cohorts.toFixed(1)} ms)`,
);
