// `fleetwave serve --store …` at start: a URL that does not parse, a store that refuses the
// connection or the credentials, and a schema from a newer fleetwave each stop the reconciler
// with a clear message and exit code before it serves anything, never a crash later.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetwave } from '../helpers/cli.ts';
import { Postgres } from '../helpers/postgres.ts';
import { ADMIN_TOKEN, ENROLL_TOKEN, FleetRepo } from '../reconciler/helpers.ts';

describe('fleetwave serve with a store it cannot use', () => {
  let db: Postgres;
  let repo: FleetRepo;
  let dir: string;

  before(async () => {
    db = await Postgres.start();
    repo = await FleetRepo.create();
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-serve-store-'));
  });
  after(async () => {
    await db?.stop();
    await repo?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const serve = (store: string) =>
    fleetwave(
      [
        'serve',
        '--repo',
        repo.origin,
        '--port',
        '0',
        '--data-dir',
        join(dir, 'data'),
        '--enroll-token',
        ENROLL_TOKEN,
        '--admin-token',
        ADMIN_TOKEN,
        '--store',
        store,
      ],
      { timeoutMs: 60_000 },
    );

  it('a --store URL that does not parse: a usage error naming the forms', () => {
    const r = serve('mysql://db/fleet');
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /--store "mysql:\/\/db\/fleet" is neither sqlite:PATH nor postgres:\/\//,
    );
  });

  it('refused connections and credentials: exit 1 with the reason, the password never shown', () => {
    const refused = serve('postgres://fleetwave:pw@127.0.0.1:1/postgres');
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /STORE_UNAVAILABLE|nothing accepts connections/);
    const wrong = serve(db.url('postgres', 'wrong-password-123'));
    assert.equal(wrong.status, 1, wrong.stderr);
    assert.match(wrong.stderr, /credentials were refused/);
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /wrong-password-123/);
  });

  it('a schema from a newer fleetwave: exit 1, and the store is left as it was', async () => {
    const url = await db.database('newer');
    await db.sql('newer', 'CREATE TABLE fleetwave_schema (version INTEGER NOT NULL)');
    await db.sql('newer', 'INSERT INTO fleetwave_schema (version) VALUES (7)');
    const r = serve(url);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /schema is version 7, newer than this fleetwave's 1/);
    const tables = await db.sql<{ n: string }>(
      'newer',
      "SELECT COUNT(*)::text AS n FROM pg_tables WHERE tablename LIKE 'fleetwave_%'",
    );
    assert.equal(tables[0]!.n, '1', 'nothing created');
  });
});
