// The latest report of every agent, in memory: what it runs, how it is, when it last checked
// in. The serving side writes it on every check-in; gates (the next part) read it. With several
// replicas each holds the agents that talk to it, and gate metrics come from Prometheus.

import type { Labels } from '../core/target/model.ts';

export type HealthStatus = 'ok' | 'degraded' | 'failed' | 'retrying';

export interface Health {
  status: HealthStatus;
  /** Whatever else the agent reports (error counts, messages), bounded by the body limit. */
  [detail: string]: unknown;
}

export interface AgentReport {
  id: string;
  labels: Labels;
  /** What the agent says it runs: the etag of its applied target and its version. */
  current?: { etag?: string; version?: string };
  health?: Health;
  /** Milliseconds since the epoch, from the injected clock. */
  at: number;
}

export interface AgentRecord extends AgentReport {
  enrolledAt?: number;
  /** The wave (by the stable policy) and the revision of the last target served to it. */
  wave?: string;
  served?: { etag: string; revision: string };
  /** The target served before `served`, so a report of the older etag is still attributed. */
  previous?: { etag: string; revision: string };
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  /** Called with every check-in once recorded: the rollout engine tallies reports with it. */
  onReport: ((record: AgentRecord) => void) | undefined;

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
      record.enrolledAt = at;
    } else {
      this.agents.set(id, { id, labels, at, enrolledAt: at });
    }
  }

  /** Records a check-in and returns the agent's record. */
  report(report: AgentReport): AgentRecord {
    const record = this.agents.get(report.id);
    if (!record) {
      const fresh: AgentRecord = { ...report };
      this.agents.set(report.id, fresh);
      this.onReport?.(fresh);
      return fresh;
    }
    record.labels = report.labels;
    record.at = report.at;
    if (report.current === undefined) delete record.current;
    else record.current = report.current;
    if (report.health === undefined) delete record.health;
    else record.health = report.health;
    this.onReport?.(record);
    return record;
  }

  /** Remembers what was served, for attributing the agent's next reports to a revision. */
  served(record: AgentRecord, wave: string, etag: string, revision: string): void {
    record.wave = wave;
    if (record.served?.etag === etag) {
      record.served.revision = revision;
      return;
    }
    if (record.served) record.previous = record.served;
    record.served = { etag, revision };
  }

  /** The revision an agent runs, judged from the etag it reports; undefined when unknown. */
  runningRevision(record: AgentRecord): string | undefined {
    const etag = record.current?.etag;
    if (etag === undefined) return undefined;
    if (record.served?.etag === etag) return record.served.revision;
    if (record.previous?.etag === etag) return record.previous.revision;
    return undefined;
  }

  values(): IterableIterator<AgentRecord> {
    return this.agents.values();
  }
}
