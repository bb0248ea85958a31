// A real PostgreSQL for tests: a new cluster in a temp dir (initdb), started with pg_ctl on a
// free loopback port with password (scram) authentication, as an unprivileged user (postgres
// refuses to run as root: under root the cluster belongs to `nobody`). Removed by stop().

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../reconciler/helpers.ts';

export const PG_USER = 'fleetwave';
export const PG_PASSWORD = 'test-password-not-secret';
const NOBODY = 65534;

/** The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin). */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

export class Postgres {
  readonly dir: string;
  readonly port: number;
  private readonly bin: string;

  private constructor(dir: string, port: number, bin: string) {
    this.dir = dir;
    this.port = port;
    this.bin = bin;
  }

  /** postgres://fleetwave:…@127.0.0.1:PORT/DATABASE */
  url(database = 'postgres', password = PG_PASSWORD): string {
    return `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${this.port}/${database}`;
  }

  private run(tool: string, args: string[]): string {
    const asRoot = process.getuid?.() === 0;
    const command = asRoot ? 'runuser' : join(this.bin, tool);
    const argv = asRoot ? ['-u', 'nobody', '--', join(this.bin, tool), ...args] : args;
    const r = spawnSync(command, argv, { encoding: 'utf8', cwd: this.dir });
    if (r.status !== 0) {
      throw new Error(`${tool} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
    }
    return r.stdout;
  }

  static async start(): Promise<Postgres> {
    const bin = postgresBin();
    if (!bin) throw new Error('PostgreSQL is not installed (.ci/run installs Debian postgresql)');
    const dir = await mkdtemp(join(tmpdir(), 'fleetwave-pg-'));
    const db = new Postgres(dir, await freePort(), bin);
    try {
      await writeFile(join(dir, 'pwfile'), `${PG_PASSWORD}\n`);
      if (process.getuid?.() === 0) {
        await chown(dir, NOBODY, NOBODY);
        await chown(join(dir, 'pwfile'), NOBODY, NOBODY);
      }
      await chmod(dir, 0o700);
      db.run('initdb', [
        '-D',
        join(dir, 'data'),
        '-U',
        PG_USER,
        `--pwfile=${join(dir, 'pwfile')}`,
        '--auth=scram-sha-256',
        '--no-sync',
        '-E',
        'UTF8',
        '--locale=C',
      ]);
      db.run('pg_ctl', [
        '-D',
        join(dir, 'data'),
        '-l',
        join(dir, 'log'),
        '-w',
        '-o',
        `-p ${db.port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
        'start',
      ]);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return db;
  }

  /** A new empty database; its URL. */
  async database(name: string): Promise<string> {
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name.replace(/[^a-z0-9_]/g, '_')}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /** SQL as the cluster's owner, for tests that look inside. */
  async sql<R extends pg.QueryResultRow>(
    database: string,
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  /** Stops the server, keeping its data (a store that goes down). */
  pause(): void {
    this.run('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  /** Starts it again on the same port. */
  resume(): void {
    this.run('pg_ctl', [
      '-D',
      join(this.dir, 'data'),
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
      'start',
    ]);
  }

  async stop(): Promise<void> {
    try {
      this.run('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
