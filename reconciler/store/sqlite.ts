// The store on SQLite through Node's built-in node:sqlite: one file, one replica (and npm start).
// Calls are synchronous; a flush of a few thousand rows is one transaction of a few ms.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { FleetwaveError } from '../../core/errors.ts';
import {
  COLUMNS,
  SCHEMA_VERSION,
  SQLITE,
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

type Params = SQLInputValue[];

export class SqliteStore implements AgentStore {
  readonly kind = 'sqlite';
  private readonly db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.db = db;
  }

  static open(path: string): SqliteStore {
    let db: DatabaseSync;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new DatabaseSync(path);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('PRAGMA busy_timeout = 5000');
    } catch (e) {
      throw new FleetwaveError(
        'STORE_UNAVAILABLE',
        `cannot open the SQLite store ${path}: ${(e as Error).message}`,
      );
    }
    const store = new SqliteStore(db);
    try {
      store.migrate();
    } catch (e) {
      db.close();
      throw e;
    }
    return store;
  }

  private migrate(): void {
    const db = this.db;
    try {
      db.exec('BEGIN IMMEDIATE');
      db.exec('CREATE TABLE IF NOT EXISTS fleetwave_schema (version INTEGER NOT NULL)');
      const row = db.prepare('SELECT MAX(version) AS version FROM fleetwave_schema').get() as
        { version: number | null } | undefined;
      const version = row?.version ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new FleetwaveError(
          'STORE_SCHEMA_NEWER',
          `the store's schema is version ${version}, newer than this fleetwave's ${SCHEMA_VERSION}: run a fleetwave at least as new as the one that wrote it`,
        );
      }
      const all = migrations(SQLITE);
      for (let v = version; v < all.length; v++) {
        for (const statement of all[v]!) db.exec(statement);
        db.prepare('INSERT INTO fleetwave_schema (version) VALUES (?)').run(v + 1);
      }
      db.exec('COMMIT');
    } catch (e) {
      if (db.isTransaction) db.exec('ROLLBACK');
      if (e instanceof FleetwaveError) throw e;
      throw new FleetwaveError(
        'STORE_UNAVAILABLE',
        `cannot create the SQLite store's schema: ${(e as Error).message}`,
      );
    }
  }

  private transaction(job: () => void): void {
    this.db.exec('BEGIN');
    try {
      job();
      this.db.exec('COMMIT');
    } catch (e) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /**
   * One transaction per batch, one prepared statement run per row: SQLite plans a many-row
   * VALUES upsert far more slowly than it runs a prepared one (1,667 rows: ~700 ms against
   * ~40 ms, bench/store.bench.ts), and inside one transaction it is one write to the file.
   */
  upsert(rows: readonly AgentRow[]): Promise<void> {
    return this.run(() =>
      this.transaction(() => {
        const insert = this.db.prepare(
          `INSERT INTO fleetwave_agents (${COLUMNS}) VALUES (${COLUMNS.split(', ')
            .map((_, i) => `?${i + 1}`)
            .join(', ')}) ${UPSERT_SET}`,
        );
        for (const row of rows) insert.run(...(valuesOf(row) as Params));
      }),
    );
  }

  rejudge(
    rows: readonly Pick<
      AgentRow,
      'id' | 'wave' | 'waveName' | 'revision' | 'failedRevision' | 'lastSeen'
    >[],
  ): Promise<void> {
    return this.run(() =>
      this.transaction(() => {
        const update = this.db.prepare(
          `UPDATE fleetwave_agents SET wave = ?1, wave_name = ?2, revision = ?3, failed_revision = ?4
           WHERE id = ?5 AND last_seen <= ?6`,
        );
        for (const r of rows) {
          update.run(r.wave, r.waveName, r.revision, r.failedRevision, r.id, r.lastSeen);
        }
      }),
    );
  }

  addTallies(replica: string, rows: readonly TallyRow[], at: number): Promise<void> {
    return this.run(() =>
      this.transaction(() => {
        const insert = this.db.prepare(
          `INSERT INTO fleetwave_tallies (revision, wave, cohort, replica, reports, failed, errors, requests, rated, error_rates, updated_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ${TALLY_UPSERT}`,
        );
        for (const r of rows) {
          const t = r.tally;
          insert.run(
            r.revision,
            r.wave,
            r.cohort,
            replica,
            t.reports,
            t.failed,
            t.errors,
            t.requests,
            t.rated,
            t.errorRates,
            at,
          );
        }
      }),
    );
  }

  cohorts(query: CohortQuery) {
    return this.run(() => {
      const q = cohortsQuery(SQLITE, query);
      const t = talliesQuery(SQLITE, query);
      return cohortsResult(
        this.db.prepare(q.text).all(...(q.values as Params)) as unknown as CohortGroupRow[],
        this.db.prepare(t.text).all(...(t.values as Params)) as unknown as TallyResultRow[],
      );
    });
  }

  counts(silentBefore: number) {
    return this.run(() => {
      const q = countsQuery(SQLITE, silentBefore);
      return countsResult(this.db.prepare(q.text).all(...(q.values as Params)) as never);
    });
  }

  labelCounts(label: string) {
    return this.run(() => {
      const q = labelCountsQuery(SQLITE, label);
      return labelCountsResult(this.db.prepare(q.text).all(...(q.values as Params)) as never);
    });
  }

  list(filter: AgentFilter) {
    return this.run(() => {
      const q = listQuery(SQLITE, filter);
      return (this.db.prepare(q.text).all(...(q.values as Params)) as unknown as StoredRow[]).map(
        rowOf,
      );
    });
  }

  get(id: string) {
    return this.run(() => {
      const row = this.db
        .prepare(`SELECT ${COLUMNS} FROM fleetwave_agents WHERE id = ?1`)
        .get(id) as unknown as StoredRow | undefined;
      return row === undefined ? undefined : rowOf(row);
    });
  }

  forget(id: string) {
    return this.run(
      () =>
        Number(this.db.prepare('DELETE FROM fleetwave_agents WHERE id = ?1').run(id).changes) > 0,
    );
  }

  prune(before: number) {
    return this.run(() => {
      let n = 0;
      this.transaction(() => {
        n = Number(
          this.db.prepare('DELETE FROM fleetwave_agents WHERE last_seen < ?1').run(before).changes,
        );
        this.db.prepare('DELETE FROM fleetwave_tallies WHERE updated_at < ?1').run(before);
      });
      return n;
    });
  }

  close(): Promise<void> {
    return this.run(() => {
      if (this.db.isOpen) this.db.close();
    });
  }

  /** Synchronous work as a promise; errors become STORE_UNAVAILABLE. */
  private run<T>(job: () => T): Promise<T> {
    try {
      return Promise.resolve(job());
    } catch (e) {
      return Promise.reject(
        new FleetwaveError('STORE_UNAVAILABLE', `SQLite store: ${(e as Error).message}`),
      );
    }
  }
}
