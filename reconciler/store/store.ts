// The store of agent reports (the fleet's observed state), behind one interface with two
// engines: SQLite (node:sqlite, one replica and the demo) and PostgreSQL (several replicas).
// Decisions stay in git; what agents report lives here, so every replica sees every agent.

import { FleetwaveError } from '../../core/errors.ts';
import type { Selector } from '../../core/fleet/model.ts';
import {
  emptySnapshot,
  emptyTally,
  type CohortSnapshot,
  type HealthStatus,
  type Tally,
} from '../../core/rollout/observations.ts';
import type { Labels } from '../../core/target/model.ts';

/** One agent as the store keeps it: its latest report and what it was judged to run. */
export interface AgentRow {
  id: string;
  labels: Labels;
  /** Its wave's index and name under the stable policy when written; null when unplaced. */
  wave: number | null;
  waveName: string | null;
  /** The revision whose target it runs (core's cohort rule, see reports.ts); null: neither. */
  revision: string | null;
  /** The etag and version it reports running. */
  etag: string | null;
  version: string | null;
  status: HealthStatus | null;
  message: string | null;
  /** Errors and requests since its previous report; errors never exceed requests. */
  errors: number;
  requests: number;
  /** The revision of a target it received and could not apply (`health.failedTarget`). */
  failedRevision: string | null;
  /** The whole health report, as sent (bounded by the body limit). */
  health: Record<string, unknown> | null;
  /** Clock ms. */
  firstSeen: number;
  lastSeen: number;
  /** The replica that saw it last. */
  replica: string;
}

/** Reports since the last write, attributed to a cohort of one candidate at one wave. */
export interface TallyRow {
  revision: string;
  wave: number;
  cohort: 'candidate' | 'stable';
  tally: Tally;
}

export interface CohortQuery {
  candidate: string;
  stable: string;
  /** The candidate runs on waves 0..wave. */
  wave: number;
  /** Agents last seen before this clock ms are silent. */
  silentBefore: number;
}

export interface CohortAggregate {
  candidate: CohortSnapshot;
  stable: CohortSnapshot;
  tally: { candidate: Tally; stable: Tally };
}

/** Agents counted by wave, running revision and health; silent ones apart. */
export interface CountRow {
  wave: number | null;
  revision: string | null;
  status: HealthStatus | null;
  silent: boolean;
  agents: number;
}

export interface LabelCountRow {
  /** The label's value; null when the agent has no such label. */
  value: string | null;
  status: HealthStatus | null;
  agents: number;
}

export type HealthFilter = 'ok' | 'degraded' | 'failed' | 'silent';

export interface AgentFilter {
  selector?: Selector;
  wave?: number;
  health?: HealthFilter;
  revision?: string;
  /** For `health`: agents last seen before this are silent (and only those). */
  silentBefore: number;
  /** Ids after this one (the cursor), in id order. */
  after?: string;
  limit: number;
}

export interface AgentStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Inserts or replaces each agent; an older report never overwrites a newer one. */
  upsert(rows: readonly AgentRow[]): Promise<void>;
  /** Updates what is judged of agents already stored (wave, revision), never inserting. */
  rejudge(
    rows: readonly Pick<
      AgentRow,
      'id' | 'wave' | 'waveName' | 'revision' | 'failedRevision' | 'lastSeen'
    >[],
  ): Promise<void>;
  /** Adds to the fleet-wide tallies. */
  addTallies(replica: string, rows: readonly TallyRow[], at: number): Promise<void>;
  /** The candidate's and stable's cohorts over every stored agent: one aggregation. */
  cohorts(query: CohortQuery): Promise<CohortAggregate>;
  counts(silentBefore: number): Promise<CountRow[]>;
  /** Agents by the value of one label and health. */
  labelCounts(label: string): Promise<LabelCountRow[]>;
  list(filter: AgentFilter): Promise<AgentRow[]>;
  get(id: string): Promise<AgentRow | undefined>;
  /** Removes one agent; true when it was there. */
  forget(id: string): Promise<boolean>;
  /** Removes agents last seen before `before`, and tallies not added to since; the count. */
  prune(before: number): Promise<number>;
  close(): Promise<void>;
}

/** Where `--store` points: parsed, not yet opened. */
export type StoreLocation =
  { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; redacted: string };

/** `sqlite:PATH` or `postgres://…` (also `postgresql://`). */
export function parseStoreUrl(value: string, resolvePath: (p: string) => string): StoreLocation {
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '' || path.includes('\0')) {
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `--store "${value}" names no file: write sqlite:PATH`,
      );
    }
    return { kind: 'sqlite', path: path === ':memory:' ? path : resolvePath(path) };
  }
  if (/^postgres(ql)?:\/\//i.test(value)) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new FleetwaveError('CONFIG_INVALID', `--store "${redact(value)}" is not a URL`);
    }
    if (url.hostname === '' && !url.searchParams.has('host')) {
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `--store "${redact(value)}" names no host (postgres://USER:PASSWORD@HOST:PORT/DATABASE)`,
      );
    }
    return { kind: 'postgres', url: value, redacted: redact(value) };
  }
  throw new FleetwaveError(
    'CONFIG_INVALID',
    `--store "${redact(value)}" is neither sqlite:PATH nor postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
  );
}

/** A URL without its password, for messages and status. */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

/** Opens and migrates the store; a store that cannot be used is a STORE_UNAVAILABLE at start. */
export async function openStore(location: StoreLocation): Promise<AgentStore> {
  if (location.kind === 'sqlite') {
    const { SqliteStore } = await import('./sqlite.ts');
    return SqliteStore.open(location.path);
  }
  const { PostgresStore } = await import('./postgres.ts');
  return PostgresStore.open(location.url, location.redacted);
}

export function emptyAggregate(): CohortAggregate {
  return {
    candidate: emptySnapshot(),
    stable: emptySnapshot(),
    tally: { candidate: emptyTally(), stable: emptyTally() },
  };
}
