// The agents this replica has heard from, in memory: what each last reported, for answering its
// check-ins without a round trip to the store. Every report marks the agent dirty; reports.ts
// writes dirty agents to the shared store in batches, off the check-in's path.

import { emptyTally, tallyReport, type Tally } from '../core/rollout/observations.ts';
import type { Labels } from '../core/target/model.ts';
import type { CheckinBody } from '../wire/checkin.ts';
import type { Health, HealthStatus } from '../wire/health.ts';

export interface AgentReport {
  id: string;
  labels: Labels;
  /** What the agent says it runs: the etag of its applied target and its version. */
  current?: CheckinBody['current'];
  /** As checked by the check-in schema (wire/health.ts); more details may ride along. */
  health?: Health;
  /** Milliseconds since the epoch, from the injected clock. */
  at: number;
}

/** Check-ins since the agent was last written, one trial each (compareToStable's tally). */
export type PendingTally = Tally;

/** What the store last got of an agent: writing again is skipped while nothing moved. */
export interface Written {
  lastSeen: number;
  labels: Labels;
  wave: number | null;
  revision: string | null;
  failedRevision: string | null;
  etag: string | null;
  version: string | null;
  status: HealthStatus | null;
  message: string | null;
}

/** The last judgement of an agent (reconciler/targets.ts judge) and what it rested on. */
export interface Judged {
  targets: object;
  labels: Labels;
  etag: string | undefined;
  failed: string | undefined;
  judgement: {
    wave: number;
    waveName: string;
    revision: string | null;
    failedRevision: string | null;
  };
}

export interface AgentRecord extends AgentReport {
  /** Clock ms of the first enrollment or check-in this replica saw (the store keeps the oldest). */
  firstSeen: number;
  pending?: PendingTally;
  written?: Written;
  judged?: Judged;
  /** The `dirty` set of AgentRegistry its id was last added to by a report. */
  dirtyIn?: Set<string>;
  /**
   * The body of the check-in this record holds, as received: the same text again is the same
   * report (AgentRegistry.again). Unset when the record changed any other way.
   */
  reported?: string;
}

/**
 * Whether two values parsed from JSON are the same JSON: equal primitives, or objects with the
 * same keys in the same order holding the same JSON (so either one serializes alike).
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  const other = Object.keys(b);
  if (keys.length !== other.length) return false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key !== other[i]) return false;
    if (!sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) {
      return false;
    }
  }
  return true;
}

/**
 * The longest check-in text kept to recognise it again (AgentRegistry.again): an agent's usual
 * report is a few hundred bytes; a larger one (up to --body-limit) is parsed each time rather
 * than held twice, as text and as values, for every agent.
 */
export const MAX_REPORTED = 4096;

/** What a report without health tallies as. */
const NO_HEALTH = Object.freeze({});

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  /** Agents reported since the last write to the store. */
  dirty = new Set<string>();

  get size(): number {
    return this.agents.size;
  }

  get(id: string): AgentRecord | undefined {
    return this.agents.get(id);
  }

  enrolled(id: string, labels: Labels, at: number): void {
    const record = this.agents.get(id);
    if (record) {
      record.labels = labels;
      delete record.reported;
    } else this.agents.set(id, { id, labels, at, firstSeen: at });
    this.dirty.add(id);
  }

  /**
   * Records a check-in and returns the agent's record. `known` is the agent's record when the
   * caller looked it up already (undefined when it has none): one lookup per check-in. `text`
   * is the check-in's body as received, when the transport has it.
   */
  report(report: AgentReport, known = this.agents.get(report.id), text?: string): AgentRecord {
    let record = known;
    if (!record) {
      record = { ...report, firstSeen: report.at };
      this.agents.set(report.id, record);
    } else {
      record.labels = report.labels;
      record.at = report.at;
      // What the agent reported last time, kept when it reports the same again (most check-ins):
      // the new copy dies young instead of living on in the record until the next check-in.
      if (report.current === undefined) delete record.current;
      else if (!sameJson(record.current, report.current)) record.current = report.current;
      if (report.health === undefined) delete record.health;
      else if (!sameJson(record.health, report.health)) record.health = report.health;
    }
    if (text === undefined || text.length > MAX_REPORTED) delete record.reported;
    else record.reported = text;
    return this.again(record, report.at);
  }

  /** Records a check-in that repeats the report `record` holds, at clock ms `at`. */
  again(record: AgentRecord, at: number): AgentRecord {
    record.at = at;
    tallyReport((record.pending ??= emptyTally()), record.health ?? NO_HEALTH);
    // Added once per set (reports.ts swaps in a new one at each write; only forget() deletes).
    if (record.dirtyIn !== this.dirty) {
      this.dirty.add(record.id);
      record.dirtyIn = this.dirty;
    }
    return record;
  }

  /** An agent known from the store (another replica saw it): remembered, not marked dirty. */
  adopt(record: AgentRecord): AgentRecord {
    const known = this.agents.get(record.id);
    if (known) return known;
    this.agents.set(record.id, record);
    return record;
  }

  forget(id: string): boolean {
    this.dirty.delete(id);
    return this.agents.delete(id);
  }

  /** Drops agents not heard from since `before` (clock ms); the count. */
  prune(before: number): number {
    let n = 0;
    for (const [id, record] of this.agents) {
      if (record.at < before && !this.dirty.has(id)) {
        this.agents.delete(id);
        n++;
      }
    }
    return n;
  }

  values(): IterableIterator<AgentRecord> {
    return this.agents.values();
  }
}
