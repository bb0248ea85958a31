// The store on PostgreSQL (15+) through node-postgres: the shared store of several replicas.
// A flush is one statement however many rows (arrays unnested server-side); the schema is
// migrated under an advisory lock, so replicas starting together migrate once.

import pg from 'pg';
import { FleetwaveError } from '../../core/errors.ts';
import {
  COLUMNS,
  POSTGRES,
  SCHEMA_VERSION,
  TALLY_UPSERT,
  UPSERT_SET,
  cohortsQuery,
  talliesQuery,
  cohortsResult,
  countsQuery,
  countsResult,
  labelCountsQuery,
  labelCountsResult,
  listQuery,
  migrations,
  rowOf,
  valuesOf,
  type CohortGroupRow,
  type TallyResultRow,
  type StoredRow,
} from './sql.ts';
import type { AgentFilter, AgentRow, AgentStore, CohortQuery, TallyRow } from './store.ts';

/** Any number, so two fleetwave deployments sharing a database still serialize migrations. */
const MIGRATION_LOCK = 0x666c7477; // "fltw"

const TIMEOUT_MS = 10_000;

// BIGINT and NUMERIC come back as strings unless told otherwise; counts fit a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

/** What went wrong, in a person's words, from node-postgres' error. */
function explain(e: unknown, redacted: string): string {
  const err = e as { code?: string; message?: string };
  const hint =
    err.code === 'ECONNREFUSED'
      ? 'nothing accepts connections there'
      : err.code === '28P01' || err.code === '28000'
        ? 'the credentials were refused'
        : err.code === '3D000'
          ? 'the database does not exist'
          : err.code === 'ENOTFOUND'
            ? 'the host name does not resolve'
            : undefined;
  return `PostgreSQL store ${redacted}: ${err.message ?? String(e)}${hint ? ` (${hint})` : ''}`;
}

export class PostgresStore implements AgentStore {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;
  private readonly redacted: string;

  private constructor(pool: pg.Pool, redacted: string) {
    this.pool = pool;
    this.redacted = redacted;
  }

  static async open(url: string, redacted: string): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: TIMEOUT_MS,
      query_timeout: TIMEOUT_MS,
      statement_timeout: TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      application_name: 'fleetwave',
      // The aggregation is one short scan; compiling it (JIT) costs more than it saves.
      options: '-c jit=off',
    });
    // An idle connection that breaks (the server restarted) is no reason to crash: the next
    // query opens another, and its failure is reported where it is made.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, redacted);
    try {
      await store.migrate();
    } catch (e) {
      await pool.end().catch(() => {});
      if (e instanceof FleetwaveError) throw e;
      throw new FleetwaveError('STORE_UNAVAILABLE', explain(e, redacted));
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS fleetwave_schema (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number | null }>(
        'SELECT MAX(version) AS version FROM fleetwave_schema',
      );
      const version = rows[0]?.version ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new FleetwaveError(
          'STORE_SCHEMA_NEWER',
          `the store's schema is version ${version}, newer than this fleetwave's ${SCHEMA_VERSION}: run a fleetwave at least as new as the one that wrote it`,
        );
      }
      const all = migrations(POSTGRES);
      for (let v = version; v < all.length; v++) {
        for (const statement of all[v]!) await client.query(statement);
        await client.query('INSERT INTO fleetwave_schema (version) VALUES ($1)', [v + 1]);
      }
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (e) {
      throw new FleetwaveError('STORE_UNAVAILABLE', explain(e, this.redacted));
    }
  }

  async upsert(rows: readonly AgentRow[]): Promise<void> {
    if (rows.length === 0) return;
    const columns: unknown[][] = Array.from({ length: 16 }, () => []);
    for (const r of rows) valuesOf(r).forEach((v, i) => columns[i]!.push(v));
    await this.query(
      `INSERT INTO fleetwave_agents (${COLUMNS})
       SELECT id, labels::jsonb, wave, wave_name, revision, etag, version, status, message, errors,
              requests, failed_revision, health::jsonb, first_seen, last_seen, replica
       FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
                   $8::text[], $9::text[], $10::float8[], $11::float8[], $12::text[], $13::text[],
                   $14::int8[], $15::int8[], $16::text[])
         AS u(id, labels, wave, wave_name, revision, etag, version, status, message, errors,
              requests, failed_revision, health, first_seen, last_seen, replica)
       ${UPSERT_SET}`,
      columns,
    );
  }

  async rejudge(
    rows: readonly Pick<
      AgentRow,
      'id' | 'wave' | 'waveName' | 'revision' | 'failedRevision' | 'lastSeen'
    >[],
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.query(
      `UPDATE fleetwave_agents a SET wave = u.wave, wave_name = u.wave_name, revision = u.revision,
              failed_revision = u.failed_revision
       FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::int8[])
         AS u(id, wave, wave_name, revision, failed_revision, last_seen)
       WHERE a.id = u.id AND a.last_seen <= u.last_seen`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.wave),
        rows.map((r) => r.waveName),
        rows.map((r) => r.revision),
        rows.map((r) => r.failedRevision),
        rows.map((r) => r.lastSeen),
      ],
    );
  }

  async addTallies(replica: string, rows: readonly TallyRow[], at: number): Promise<void> {
    if (rows.length === 0) return;
    await this.query(
      `INSERT INTO fleetwave_tallies (revision, wave, cohort, replica, reports, failed, errors, requests, rated, error_rates, updated_at)
       SELECT revision, wave, cohort, $4::text, reports, failed, errors, requests, rated, error_rates, $9::int8
       FROM unnest($1::text[], $2::int[], $3::text[], $5::int8[], $6::int8[], $7::float8[], $8::float8[], $10::int8[], $11::float8[])
         AS u(revision, wave, cohort, reports, failed, errors, requests, rated, error_rates)
       ${TALLY_UPSERT}`,
      [
        rows.map((r) => r.revision),
        rows.map((r) => r.wave),
        rows.map((r) => r.cohort),
        replica,
        rows.map((r) => r.tally.reports),
        rows.map((r) => r.tally.failed),
        rows.map((r) => r.tally.errors),
        rows.map((r) => r.tally.requests),
        at,
        rows.map((r) => r.tally.rated),
        rows.map((r) => r.tally.errorRates),
      ],
    );
  }

  async cohorts(query: CohortQuery) {
    const q = cohortsQuery(POSTGRES, query);
    const t = talliesQuery(POSTGRES, query);
    const [groups, tallies] = await Promise.all([
      this.query<CohortGroupRow & pg.QueryResultRow>(q.text, q.values),
      this.query<TallyResultRow & pg.QueryResultRow>(t.text, t.values),
    ]);
    return cohortsResult(groups, tallies);
  }

  async counts(silentBefore: number) {
    const q = countsQuery(POSTGRES, silentBefore);
    return countsResult(await this.query(q.text, q.values));
  }

  async labelCounts(label: string) {
    const q = labelCountsQuery(POSTGRES, label);
    return labelCountsResult(await this.query(q.text, q.values));
  }

  async list(filter: AgentFilter) {
    const q = listQuery(POSTGRES, filter);
    return (await this.query<StoredRow & pg.QueryResultRow>(q.text, q.values)).map(rowOf);
  }

  async get(id: string) {
    const rows = await this.query<StoredRow & pg.QueryResultRow>(
      `SELECT ${COLUMNS} FROM fleetwave_agents WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? undefined : rowOf(rows[0]);
  }

  async forget(id: string) {
    const rows = await this.query('DELETE FROM fleetwave_agents WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  async prune(before: number) {
    const rows = await this.query(
      'DELETE FROM fleetwave_agents WHERE last_seen < $1 RETURNING id',
      [before],
    );
    await this.query('DELETE FROM fleetwave_tallies WHERE updated_at < $1', [before]);
    return rows.length;
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
