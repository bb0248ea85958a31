// The SQL both stores run, written once: the two engines differ only in how a parameter is
// written, how a label is read from the labels JSON, and the JSON column's type.

import type { Selector } from '../../core/fleet/model.ts';
import { cohortOfJudged, type HealthStatus, type Tally } from '../../core/rollout/observations.ts';
import {
  emptyAggregate,
  type AgentFilter,
  type AgentRow,
  type CohortAggregate,
  type CohortQuery,
  type CountRow,
  type LabelCountRow,
} from './store.ts';

export interface Dialect {
  /** The n-th parameter (1-based): `$n` or `?`. */
  param(n: number): string;
  /** A label's value from the labels column, its key given as the n-th parameter. */
  label(n: number): string;
  /** The parameter value for a label key. */
  labelKey(key: string): string;
  json: string;
  bigint: string;
  double: string;
}

export const POSTGRES: Dialect = {
  param: (n) => `$${n}`,
  label: (n) => `(labels->>($${n}::text))`,
  labelKey: (key) => key,
  json: 'JSONB',
  bigint: 'BIGINT',
  double: 'DOUBLE PRECISION',
};

export const SQLITE: Dialect = {
  param: (n) => `?${n}`,
  label: (n) => `json_extract(labels, ?${n})`,
  // Label keys are letters, digits, '-', '_', '.' and one '/': safe inside a quoted path.
  labelKey: (key) => `$."${key}"`,
  json: 'TEXT',
  bigint: 'INTEGER',
  double: 'REAL',
};

/** Versioned schema: migration i takes the schema from version i to i + 1. */
export function migrations(d: Dialect): string[][] {
  return [
    [
      `CREATE TABLE fleetwave_agents (
        id TEXT PRIMARY KEY,
        labels ${d.json} NOT NULL,
        wave INTEGER,
        wave_name TEXT,
        revision TEXT,
        etag TEXT,
        version TEXT,
        status TEXT,
        message TEXT,
        errors ${d.double} NOT NULL DEFAULT 0,
        requests ${d.double} NOT NULL DEFAULT 0,
        failed_revision TEXT,
        health ${d.json},
        first_seen ${d.bigint} NOT NULL,
        last_seen ${d.bigint} NOT NULL,
        replica TEXT NOT NULL
      )`,
      `CREATE INDEX fleetwave_agents_last_seen ON fleetwave_agents (last_seen)`,
      `CREATE TABLE fleetwave_tallies (
        revision TEXT NOT NULL,
        wave INTEGER NOT NULL,
        cohort TEXT NOT NULL,
        replica TEXT NOT NULL,
        reports ${d.bigint} NOT NULL,
        failed ${d.bigint} NOT NULL,
        errors ${d.double} NOT NULL,
        requests ${d.double} NOT NULL,
        rated ${d.bigint} NOT NULL,
        error_rates ${d.double} NOT NULL,
        updated_at ${d.bigint} NOT NULL,
        PRIMARY KEY (revision, wave, cohort, replica)
      )`,
    ],
  ];
}

export const SCHEMA_VERSION = migrations(SQLITE).length;

export const COLUMNS =
  'id, labels, wave, wave_name, revision, etag, version, status, message, errors, requests, ' +
  'failed_revision, health, first_seen, last_seen, replica';

/** What an upsert changes of a row already there: everything but first_seen. */
export const UPSERT_SET = `ON CONFLICT (id) DO UPDATE SET
  labels = excluded.labels, wave = excluded.wave, wave_name = excluded.wave_name,
  revision = excluded.revision, etag = excluded.etag, version = excluded.version,
  status = excluded.status, message = excluded.message, errors = excluded.errors,
  requests = excluded.requests, failed_revision = excluded.failed_revision,
  health = excluded.health, last_seen = excluded.last_seen, replica = excluded.replica
  WHERE excluded.last_seen >= fleetwave_agents.last_seen`;

export const TALLY_UPSERT = `ON CONFLICT (revision, wave, cohort, replica) DO UPDATE SET
  reports = fleetwave_tallies.reports + excluded.reports,
  failed = fleetwave_tallies.failed + excluded.failed,
  errors = fleetwave_tallies.errors + excluded.errors,
  requests = fleetwave_tallies.requests + excluded.requests,
  rated = fleetwave_tallies.rated + excluded.rated,
  error_rates = fleetwave_tallies.error_rates + excluded.error_rates,
  updated_at = excluded.updated_at`;

export interface Query {
  text: string;
  values: unknown[];
}

/**
 * The cohorts of DESIGN §4 in one pass over the agents: grouped by the few facts cohortOf
 * (core/rollout/observations.ts) reads, so the database counts and sums, and cohortsResult
 * applies the rule to a few dozen groups. Parameters: 1 wave, 2 candidate, 3 stable,
 * 4 silentBefore.
 */
export function cohortsQuery(d: Dialect, q: CohortQuery): Query {
  const p = d.param;
  return {
    text: `SELECT wave <= ${p(1)} AS in_waves, revision = ${p(2)} AS on_candidate,
        revision = ${p(3)} AS on_stable, failed_revision = ${p(2)} AS failed_candidate, status,
        last_seen < ${p(4)} AS silent, COUNT(*) AS n, SUM(errors) AS errors,
        SUM(requests) AS requests,
        SUM(CASE WHEN requests > 0 THEN 1 ELSE 0 END) AS reporting,
        SUM(CASE WHEN requests > 0 THEN errors / requests ELSE 0 END) AS error_rates
      FROM fleetwave_agents GROUP BY 1, 2, 3, 4, 5, 6`,
    values: [q.wave, q.candidate, q.stable, q.silentBefore],
  };
}

/** The tallies of the candidate at its wave, summed over replicas. Parameters: 1 candidate, 2 wave. */
export function talliesQuery(d: Dialect, q: CohortQuery): Query {
  return {
    text: `SELECT cohort, SUM(reports) AS reports, SUM(failed) AS failed, SUM(errors) AS errors,
        SUM(requests) AS requests, SUM(rated) AS rated, SUM(error_rates) AS error_rates
      FROM fleetwave_tallies WHERE revision = ${d.param(1)} AND wave = ${d.param(2)} GROUP BY cohort`,
    values: [q.candidate, q.wave],
  };
}

type Flag = boolean | number | null;
const yes = (v: Flag): boolean => v === true || v === 1;

export interface CohortGroupRow {
  in_waves: Flag;
  on_candidate: Flag;
  on_stable: Flag;
  failed_candidate: Flag;
  status: string | null;
  silent: Flag;
  n: number | string;
  errors: number | string | null;
  requests: number | string | null;
  reporting: number | string | null;
  error_rates: number | string | null;
}

export interface TallyResultRow {
  cohort: string;
  reports: number | string | null;
  failed: number | string | null;
  errors: number | string | null;
  requests: number | string | null;
  rated: number | string | null;
  error_rates: number | string | null;
}

const num = (v: number | string | null | bigint): number => (v === null ? 0 : Number(v));

export function cohortsResult(
  groups: readonly CohortGroupRow[],
  tallies: readonly TallyResultRow[],
): CohortAggregate {
  const out = emptyAggregate();
  for (const g of groups) {
    const n = num(g.n);
    const inWaves = yes(g.in_waves);
    (inWaves ? out.candidate : out.stable).agents += n;
    // The groups' flags stand for the revisions: one agent of the group, judged by the core.
    const which = cohortOfJudged(
      {
        wave: inWaves ? 0 : 1,
        revision: yes(g.on_candidate) ? 'candidate' : yes(g.on_stable) ? 'stable' : null,
        failedRevision: yes(g.failed_candidate) ? 'candidate' : null,
        status: g.status as HealthStatus | null,
      },
      { candidate: 'candidate', stable: 'stable', wave: 0 },
    );
    const cohort = which === 'neither' ? undefined : out[which];
    if (!cohort) continue;
    cohort.applied += n;
    if (yes(g.silent)) {
      cohort.silent += n;
      continue;
    }
    if (g.status === 'failed') cohort.failed += n;
    if (g.status === 'degraded') cohort.degraded += n;
    cohort.errors += num(g.errors);
    cohort.requests += num(g.requests);
    cohort.reporting += num(g.reporting);
    cohort.errorRates += num(g.error_rates);
  }
  for (const r of tallies) {
    if (r.cohort !== 'candidate' && r.cohort !== 'stable') continue;
    const t: Tally = out.tally[r.cohort];
    t.reports += num(r.reports);
    t.failed += num(r.failed);
    t.errors += num(r.errors);
    t.requests += num(r.requests);
    t.rated += num(r.rated);
    t.errorRates += num(r.error_rates);
  }
  return out;
}

export function countsQuery(d: Dialect, silentBefore: number): Query {
  return {
    text: `SELECT wave, revision, status, CASE WHEN last_seen < ${d.param(1)} THEN 1 ELSE 0 END AS silent,
      COUNT(*) AS agents FROM fleetwave_agents GROUP BY 1, 2, 3, 4`,
    values: [silentBefore],
  };
}

export function countsResult(
  rows: readonly {
    wave: number | null;
    revision: string | null;
    status: string | null;
    silent: number | string;
    agents: number | string;
  }[],
): CountRow[] {
  return rows.map((r) => ({
    wave: r.wave === null ? null : Number(r.wave),
    revision: r.revision,
    status: r.status as HealthStatus | null,
    silent: Number(r.silent) === 1,
    agents: Number(r.agents),
  }));
}

export function labelCountsQuery(d: Dialect, label: string): Query {
  return {
    text: `SELECT ${d.label(1)} AS value, status, COUNT(*) AS agents FROM fleetwave_agents GROUP BY 1, 2`,
    values: [d.labelKey(label)],
  };
}

export function labelCountsResult(
  rows: readonly { value: string | null; status: string | null; agents: number | string }[],
): LabelCountRow[] {
  return rows.map((r) => ({
    value: r.value,
    status: r.status as HealthStatus | null,
    agents: Number(r.agents),
  }));
}

/** A label selector as a WHERE condition (Kubernetes semantics: NotIn matches an absent label). */
function selectorSql(d: Dialect, selector: Selector, values: unknown[]): string[] {
  const label = (key: string): string => {
    values.push(d.labelKey(key));
    return d.label(values.length);
  };
  const param = (v: unknown): string => {
    values.push(v);
    return d.param(values.length);
  };
  const out: string[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    out.push(`${label(key)} = ${param(value)}`);
  }
  for (const req of selector.matchExpressions ?? []) {
    switch (req.operator) {
      case 'In':
        out.push(`${label(req.key)} IN (${(req.values ?? []).map(param).join(', ')})`);
        break;
      case 'NotIn': {
        const l1 = label(req.key);
        const l2 = label(req.key);
        out.push(`(${l1} IS NULL OR ${l2} NOT IN (${(req.values ?? []).map(param).join(', ')}))`);
        break;
      }
      case 'Exists':
        out.push(`${label(req.key)} IS NOT NULL`);
        break;
      case 'DoesNotExist':
        out.push(`${label(req.key)} IS NULL`);
        break;
    }
  }
  return out;
}

export function listQuery(d: Dialect, f: AgentFilter): Query {
  const values: unknown[] = [];
  const param = (v: unknown): string => {
    values.push(v);
    return d.param(values.length);
  };
  const where: string[] = [];
  if (f.selector) where.push(...selectorSql(d, f.selector, values));
  if (f.wave !== undefined) where.push(`wave = ${param(f.wave)}`);
  if (f.revision !== undefined) where.push(`revision = ${param(f.revision)}`);
  if (f.health === 'silent') where.push(`last_seen < ${param(f.silentBefore)}`);
  else if (f.health !== undefined) {
    where.push(`status = ${param(f.health)}`, `last_seen >= ${param(f.silentBefore)}`);
  }
  if (f.after !== undefined) where.push(`id > ${param(f.after)}`);
  const text =
    `SELECT ${COLUMNS} FROM fleetwave_agents` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY id LIMIT ${param(f.limit)}`;
  return { text, values };
}

export interface StoredRow {
  id: string;
  labels: string | Record<string, string>;
  wave: number | null;
  wave_name: string | null;
  revision: string | null;
  etag: string | null;
  version: string | null;
  status: string | null;
  message: string | null;
  errors: number;
  requests: number;
  failed_revision: string | null;
  health: string | Record<string, unknown> | null;
  first_seen: number | string | bigint;
  last_seen: number | string | bigint;
  replica: string;
}

function json<T>(v: string | T | null): T | null {
  return typeof v === 'string' ? (JSON.parse(v) as T) : v;
}

export function rowOf(r: StoredRow): AgentRow {
  return {
    id: r.id,
    labels: json<Record<string, string>>(r.labels) ?? {},
    wave: r.wave === null ? null : Number(r.wave),
    waveName: r.wave_name,
    revision: r.revision,
    etag: r.etag,
    version: r.version,
    status: r.status as HealthStatus | null,
    message: r.message,
    errors: Number(r.errors),
    requests: Number(r.requests),
    failedRevision: r.failed_revision,
    health: json<Record<string, unknown>>(r.health),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    replica: r.replica,
  };
}

/** A row's values in COLUMNS order, JSON as text. */
export function valuesOf(r: AgentRow): unknown[] {
  return [
    r.id,
    JSON.stringify(r.labels),
    r.wave,
    r.waveName,
    r.revision,
    r.etag,
    r.version,
    r.status,
    r.message,
    r.errors,
    r.requests,
    r.failedRevision,
    r.health === null ? null : JSON.stringify(r.health),
    r.firstSeen,
    r.lastSeen,
    r.replica,
  ];
}
