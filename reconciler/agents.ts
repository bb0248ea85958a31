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
}

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
    if (record) record.labels = labels;
    else this.agents.set(id, { id, labels, at, firstSeen: at });
    this.dirty.add(id);
  }

  /** Records a check-in and returns the agent's record. */
  report(report: AgentReport): AgentRecord {
    let record = this.agents.get(report.id);
    if (!record) {
      record = { ...report, firstSeen: report.at };
      this.agents.set(report.id, record);
    } else {
      record.labels = report.labels;
      record.at = report.at;
      if (report.current === undefined) delete record.current;
      else record.current = report.current;
      if (report.health === undefined) delete record.health;
      else record.health = report.health;
    }
    const health = report.health;
    tallyReport((record.pending ??= emptyTally()), {
      status: health?.status,
      errors: health?.errors,
      requests: health?.requests,
    });
    this.dirty.add(report.id);
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
