// Agent reports on their way to the shared store, and the fleet-wide reads the engine, status,
// metrics and the inventory make of it. Check-ins only touch memory (agents.ts); every
// interval the agents reported since are judged (which wave, which revision they run) and
// written as one multi-row upsert. An agent whose report did not change is rewritten only when
// its last-seen moved by a fraction of silentAfter. While the store is down, check-ins are
// still answered, dirty agents stay dirty (the buffer is bounded by the agents known here),
// and the observations are stale: gates wait.

import type { StoreStatus } from '../wire/status.ts';
import { silentAfterMs } from '../core/rollout/decide.ts';
import type { RolloutPolicy } from '../core/rollout/decide.ts';
import { addTally, cohortOfJudged, emptyTally } from '../core/rollout/observations.ts';
import type { AgentRecord, AgentRegistry, PendingTally, Written } from './agents.ts';
import type { Metrics } from './metrics.ts';
import type {
  AgentFilter,
  AgentRow,
  AgentStore,
  CohortAggregate,
  CohortQuery,
  CountRow,
  TallyRow,
} from './store/store.ts';
import type { Logger } from './sync.ts';
import type { Judgement, Targets } from './targets.ts';

/** How far an agent's last-seen may move before it is written again, as a share of silentAfter. */
export const REWRITE_FRACTION = 0.25;
/** Rows per statement: a flush after a restart may carry every agent. */
const ROWS_PER_WRITE = 10_000;
/** Agents judged between two yields to the event loop when the whole registry is re-judged. */
const JUDGED_PER_TURN = 5_000;
/** How long counts for /v1/status and /metrics are reused. */
const COUNTS_TTL_MS = 2_000;
/** Longest message kept of a health report. */
const MESSAGE_LIMIT = 1024;

/** `store` in GET /v1/status. */
export type { StoreStatus };

export interface ReportsOptions {
  store: AgentStore;
  agents: AgentRegistry;
  replica: string;
  now: () => number;
  log: Logger;
  metrics: Metrics;
  targets: () => Targets | undefined;
  flushIntervalMs: number;
  forgetAfterMs: number;
}

function counted(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : 0;
}

/** The shortest silentAfter of a policy's waves: rewrites must stay well inside each. */
export function rewriteAfterMs(policy: RolloutPolicy): number {
  const shortest = Math.min(...policy.waves.map((w) => silentAfterMs(policy, w)));
  return Number.isFinite(shortest) ? Math.max(0, shortest * REWRITE_FRACTION) : 0;
}

function failedEtagOf(record: AgentRecord): string | undefined {
  return record.health?.failedTarget?.etag;
}

function sameReport(a: Written, b: Written): boolean {
  return (
    a.labels === b.labels &&
    a.wave === b.wave &&
    a.revision === b.revision &&
    a.failedRevision === b.failedRevision &&
    a.etag === b.etag &&
    a.version === b.version &&
    a.status === b.status &&
    a.message === b.message
  );
}

export class Reports {
  private readonly o: ReportsOptions;
  readonly status: StoreStatus;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private again = false;
  private rejudgeAll = false;
  private lastPrune = 0;
  private counted: { at: number; silentBefore: number; rows: CountRow[] } | undefined;

  constructor(options: ReportsOptions) {
    this.o = options;
    this.status = {
      kind: options.store.kind,
      up: true,
      lastWriteAt: null,
      lastError: null,
      buffered: 0,
    };
    options.metrics.storeUp.set(1);
  }

  get store(): AgentStore {
    return this.o.store;
  }

  start(): void {
    const tick = (): void => {
      this.flush()
        .catch(() => {}) // in status.lastError
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.o.flushIntervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.o.flushIntervalMs).unref();
  }

  /** Stops the interval and writes what is buffered (once; a store that is down loses it). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => {});
    await this.o.store.close();
  }

  /** The served rollout changed: every agent known here is judged again on the next flush. */
  rolloutChanged(): void {
    this.rejudgeAll = true;
  }

  /** Observations may be made from the store: its last write and read succeeded. */
  get fresh(): boolean {
    return this.status.up;
  }

  /**
   * Writes every dirty agent (and the tallies of their check-ins) now. Calls while a flush runs
   * wait for it and one more, so a caller's own reports are in the store when it resolves.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return this.flushing.then(() => this.flush());
    }
    this.again = false;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private iso(ms = this.o.now()): string {
    return new Date(ms).toISOString();
  }

  private failed(op: string, e: unknown): never {
    const message = (e as Error).message;
    if (this.status.up) this.o.log.error({ op, err: message }, 'the store of agent reports failed');
    this.status.up = false;
    this.status.lastError = { at: this.iso(), message };
    this.o.metrics.storeUp.set(0);
    this.o.metrics.storeErrors.inc({ op });
    throw e;
  }

  private recovered(): void {
    if (!this.status.up) this.o.log.info({}, 'the store of agent reports is back');
    this.status.up = true;
    this.o.metrics.storeUp.set(1);
  }

  private async flushOnce(): Promise<void> {
    const { agents, store, replica } = this.o;
    const targets = this.o.targets();
    const now = this.o.now();
    const dirty = agents.dirty;
    agents.dirty = new Set();
    const rejudgeAll = this.rejudgeAll;
    this.rejudgeAll = false;
    const rollout = targets?.rollout.candidate
      ? {
          candidate: targets.rollout.candidate.commit,
          stable: targets.rollout.stable.commit,
          wave: targets.rollout.candidate.wave,
        }
      : undefined;
    const policy = targets?.rollout.stable.model.fleet.spec;
    const rewriteAfter = policy ? rewriteAfterMs(policy) : 0;

    const rows: AgentRow[] = [];
    const rejudged: Parameters<AgentStore['rejudge']>[0][number][] = [];
    const written: [AgentRecord, Written][] = [];
    const taken: [AgentRecord, PendingTally][] = [];
    const tallies = new Map<'candidate' | 'stable', PendingTally>();
    let judged = 0;
    /** The record's judgement, computed again only when what it rests on changed. */
    const judge = async (record: AgentRecord): Promise<Judgement | undefined> => {
      if (!targets) return undefined;
      const etag = record.current?.etag;
      const failed = failedEtagOf(record);
      const memo = record.judged;
      if (
        memo &&
        memo.targets === targets &&
        memo.labels === record.labels &&
        memo.etag === etag &&
        memo.failed === failed
      ) {
        return memo.judgement;
      }
      if (++judged % JUDGED_PER_TURN === 0) await new Promise((r) => setImmediate(r));
      const judgement = targets.judge(record, etag, failed);
      record.judged = { targets, labels: record.labels, etag, failed, judgement };
      return judgement;
    };

    for (const id of dirty) {
      const record = agents.get(id);
      if (!record) continue;
      const j = await judge(record);
      const health = record.health;
      const message = health?.message?.slice(0, MESSAGE_LIMIT) ?? null;
      // What makes a report news; error counts alone are not (the tally has every check-in).
      const report: Written = {
        lastSeen: record.at,
        labels: record.labels,
        wave: j?.wave ?? null,
        revision: j?.revision ?? null,
        failedRevision: j?.failedRevision ?? null,
        etag: record.current?.etag ?? null,
        version: record.current?.version ?? null,
        status: health?.status ?? null,
        message,
      };
      const w = record.written;
      if (!w || !sameReport(w, report) || record.at - w.lastSeen >= rewriteAfter) {
        rows.push({
          id,
          labels: record.labels,
          wave: report.wave,
          waveName: j?.waveName ?? null,
          revision: report.revision,
          etag: report.etag,
          version: report.version,
          status: report.status,
          message,
          errors: Math.min(counted(health?.errors), counted(health?.requests)),
          requests: counted(health?.requests),
          failedRevision: report.failedRevision,
          health: health ?? null,
          firstSeen: record.firstSeen,
          lastSeen: record.at,
          replica,
        });
        written.push([record, report]);
      }
      const pending = record.pending;
      if (pending) {
        record.pending = undefined;
        taken.push([record, pending]);
        const cohort =
          j && rollout
            ? cohortOfJudged({ ...j, status: record.health?.status }, rollout)
            : 'neither';
        if (cohort !== 'neither') {
          const t = tallies.get(cohort) ?? emptyTally();
          addTally(t, pending);
          tallies.set(cohort, t);
        }
      }
    }
    if (rejudgeAll && targets) {
      for (const record of agents.values()) {
        const w = record.written;
        if (dirty.has(record.id) || !w) continue;
        const j = (await judge(record))!;
        if (w.wave === j.wave && w.revision === j.revision && w.failedRevision === j.failedRevision)
          continue;
        rejudged.push({
          id: record.id,
          wave: j.wave,
          waveName: j.waveName,
          revision: j.revision,
          failedRevision: j.failedRevision,
          lastSeen: record.at,
        });
        written.push([
          record,
          { ...w, wave: j.wave, revision: j.revision, failedRevision: j.failedRevision },
        ]);
      }
    }

    try {
      for (let i = 0; i < rows.length; i += ROWS_PER_WRITE) {
        await store.upsert(rows.slice(i, i + ROWS_PER_WRITE));
      }
      for (let i = 0; i < rejudged.length; i += ROWS_PER_WRITE) {
        await store.rejudge(rejudged.slice(i, i + ROWS_PER_WRITE));
      }
      if (rollout && tallies.size > 0) {
        await store.addTallies(
          replica,
          [...tallies].map(([cohort, tally]) => ({
            revision: rollout.candidate,
            wave: rollout.wave,
            cohort,
            tally,
          })) satisfies TallyRow[],
          now,
        );
      }
      if (now - this.lastPrune >= 60_000) {
        this.lastPrune = now;
        const before = now - this.o.forgetAfterMs;
        const pruned = await store.prune(before);
        agents.prune(before);
        if (pruned > 0) this.o.log.info({ pruned }, 'forgot agents not seen for --forget-after');
      }
    } catch (e) {
      // Nothing is lost: the agents stay dirty and their check-ins stay counted.
      for (const id of dirty) agents.dirty.add(id);
      if (rejudged.length > 0) this.rejudgeAll = true;
      for (const [record, pending] of taken) {
        addTally((record.pending ??= emptyTally()), pending);
      }
      this.status.buffered = agents.dirty.size;
      this.o.metrics.storeBuffered.set(agents.dirty.size);
      this.failed('write', e);
    }
    for (const [record, w] of written) record.written = w;
    // Counts read before this write are older than the store now.
    if (rows.length + rejudged.length > 0) this.counted = undefined;
    this.o.metrics.storeRowsWritten.inc(rows.length + rejudged.length);
    this.status.lastWriteAt = this.iso(now);
    this.status.buffered = agents.dirty.size;
    this.o.metrics.storeBuffered.set(agents.dirty.size);
    this.recovered();
  }

  /** The candidate's and stable's cohorts over the whole fleet, after this replica's reports. */
  async cohorts(query: CohortQuery): Promise<CohortAggregate> {
    await this.flush();
    try {
      const aggregate = await this.o.store.cohorts(query);
      this.recovered();
      return aggregate;
    } catch (e) {
      return this.failed('read', e);
    }
  }

  /** Agents by wave, revision, health and silence, fleet-wide; the last counts while the store is down. */
  async counts(silentBefore: number): Promise<CountRow[]> {
    const now = this.o.now();
    const last = this.counted;
    if (
      last &&
      now - last.at < COUNTS_TTL_MS &&
      Math.abs(last.silentBefore - silentBefore) < COUNTS_TTL_MS
    ) {
      return last.rows;
    }
    try {
      const rows = await this.o.store.counts(silentBefore);
      this.counted = { at: now, silentBefore, rows };
      return rows;
    } catch (e) {
      if (last) return last.rows;
      return this.failed('read', e);
    }
  }

  async list(filter: AgentFilter): Promise<AgentRow[]> {
    try {
      return await this.o.store.list(filter);
    } catch (e) {
      return this.failed('read', e);
    }
  }

  async get(id: string): Promise<AgentRow | undefined> {
    try {
      return await this.o.store.get(id);
    } catch (e) {
      return this.failed('read', e);
    }
  }

  async forget(id: string): Promise<boolean> {
    const here = this.o.agents.forget(id);
    try {
      return (await this.o.store.forget(id)) || here;
    } catch (e) {
      return this.failed('write', e);
    }
  }
}
