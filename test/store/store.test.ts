// The store of agent reports on both engines, the same tests each: SQLite in a temp file and a
// real PostgreSQL cluster started for the test. The cohort aggregation is checked against the
// pure core's observeCohorts on random fleets.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isFleetwaveError } from '../../core/errors.ts';
import {
  observeCohorts,
  type AgentSample,
  type HealthStatus,
} from '../../core/rollout/observations.ts';
import {
  openStore,
  parseStoreUrl,
  type AgentRow,
  type AgentStore,
  type StoreLocation,
} from '../../reconciler/store/store.ts';
import { Postgres } from '../helpers/postgres.ts';

const C = 'c'.repeat(40);
const S = 's'.repeat(40);
const X = 'x'.repeat(40);

export function row(id: string, over: Partial<AgentRow> = {}): AgentRow {
  return {
    id,
    labels: { os: 'linux', region: 'eu' },
    wave: 0,
    waveName: 'canary',
    revision: S,
    etag: 'e',
    version: '1.0.0',
    status: 'ok',
    message: null,
    errors: 0,
    requests: 0,
    failedRevision: null,
    health: { status: 'ok' },
    firstSeen: 1000,
    lastSeen: 1000,
    replica: 'r1',
    ...over,
  };
}

interface Engine {
  name: string;
  location(name: string): Promise<StoreLocation>;
  newer(location: StoreLocation): Promise<void>;
}

let pgServer: Postgres | undefined;
let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetwave-store-'));
  pgServer = await Postgres.start();
});
after(async () => {
  await pgServer?.stop();
  await rm(dir, { recursive: true, force: true });
});

const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    location: async (name) => ({ kind: 'sqlite', path: join(dir, `${name}.db`) }),
    newer: async (location) => {
      const { DatabaseSync } = await import('node:sqlite');
      const db = new DatabaseSync((location as { path: string }).path);
      db.exec('INSERT INTO fleetwave_schema (version) VALUES (99)');
      db.close();
    },
  },
  {
    name: 'postgres',
    location: async (name) => {
      const url = await pgServer!.database(name);
      return { kind: 'postgres', url, redacted: url };
    },
    newer: async (location) => {
      const database = new URL((location as { url: string }).url).pathname.slice(1);
      await pgServer!.sql(database, 'INSERT INTO fleetwave_schema (version) VALUES (99)');
    },
  },
];

for (const engine of ENGINES) {
  describe(`the ${engine.name} store`, () => {
    let n = 0;
    const fresh = async (): Promise<{ store: AgentStore; location: StoreLocation }> => {
      const location = await engine.location(`t${engine.name}${n++}`);
      return { store: await openStore(location), location };
    };

    it('creates its schema once, keeps rows across a reopen, refuses a newer schema', async () => {
      const { store, location } = await fresh();
      await store.upsert([row('a'), row('b')]);
      await store.close();
      const again = await openStore(location);
      assert.deepEqual(
        (await again.list({ limit: 10, silentBefore: 0 })).map((r) => r.id),
        ['a', 'b'],
      );
      await again.close();
      await engine.newer(location);
      await assert.rejects(
        openStore(location),
        (e) =>
          isFleetwaveError(e, 'STORE_SCHEMA_NEWER') && /version 99, newer than/.test(e.message),
      );
    });

    it('never lets an older report overwrite a newer one, and keeps the first first-seen', async () => {
      const { store } = await fresh();
      await store.upsert([row('a', { lastSeen: 5000, status: 'failed', firstSeen: 100 })]);
      await store.upsert([row('a', { lastSeen: 4000, status: 'ok', replica: 'r2' })]);
      let a = (await store.get('a'))!;
      assert.equal(a.status, 'failed');
      await store.upsert([
        row('a', { lastSeen: 6000, status: 'ok', replica: 'r2', firstSeen: 5900 }),
      ]);
      a = (await store.get('a'))!;
      assert.deepEqual([a.status, a.replica, a.lastSeen, a.firstSeen], ['ok', 'r2', 6000, 100]);
      assert.deepEqual(a.labels, { os: 'linux', region: 'eu' });
      assert.deepEqual(a.health, { status: 'ok' });
      // A re-judgement never inserts, and never applies to a newer row.
      await store.rejudge([
        { id: 'nobody', wave: 1, waveName: 'x', revision: C, failedRevision: null, lastSeen: 9e12 },
        { id: 'a', wave: 2, waveName: 'late', revision: C, failedRevision: null, lastSeen: 5000 },
      ]);
      assert.equal(await store.get('nobody'), undefined);
      assert.equal((await store.get('a'))!.revision, S);
      await store.rejudge([
        { id: 'a', wave: 2, waveName: 'late', revision: C, failedRevision: null, lastSeen: 6000 },
      ]);
      assert.deepEqual([(await store.get('a'))!.revision, (await store.get('a'))!.wave], [C, 2]);
      await store.close();
    });

    it('aggregates cohorts exactly as the core does, with the tallies of every replica', async () => {
      const { store } = await fresh();
      const statuses: (HealthStatus | null)[] = ['ok', 'degraded', 'failed', null];
      const arb = fc.array(
        fc.record({
          wave: fc.integer({ min: 0, max: 3 }),
          revision: fc.constantFrom(C, S, X, null),
          status: fc.constantFrom(...statuses),
          failed: fc.boolean(),
          errors: fc.integer({ min: 0, max: 50 }),
          requests: fc.integer({ min: 0, max: 100 }),
          lastSeen: fc.integer({ min: 0, max: 10_000 }),
        }),
        { maxLength: 60 },
      );
      let round = 0;
      await fc.assert(
        fc.asyncProperty(arb, fc.integer({ min: 0, max: 3 }), async (agents, k) => {
          const prefix = `p${round++}-`;
          const rows = agents.map((a, i) =>
            row(`${prefix}${i}`, {
              wave: a.wave,
              revision: a.revision,
              status: a.status,
              failedRevision: a.failed ? C : null,
              errors: Math.min(a.errors, a.requests),
              requests: a.requests,
              lastSeen: a.lastSeen,
            }),
          );
          await store.prune(Number.MAX_SAFE_INTEGER); // empty
          await store.upsert(rows);
          const samples: AgentSample[] = agents.map((a, i) => {
            const sample: AgentSample = {
              id: String(i),
              wave: a.wave,
              at: a.lastSeen,
              stableEtag: 'eS',
            };
            if (a.wave <= k) sample.candidateEtag = 'eC';
            if (a.revision !== null)
              sample.current = a.revision === C ? 'eC' : a.revision === S ? 'eS' : 'eX';
            if (a.failed) sample.failedEtag = 'eC';
            if (a.status !== null) sample.status = a.status;
            sample.errors = a.errors;
            sample.requests = a.requests;
            return sample;
          });
          // Core: a candidate-etag report beyond wave k is neither; the store is judged so too.
          const expected = observeCohorts(samples, { wave: k, now: 8000, silentAfterMs: 3000 });
          const got = await store.cohorts({ candidate: C, stable: S, wave: k, silentBefore: 5000 });
          // Sums of rates in another order differ in the last bits: compare those to 1e-9.
          const to9 = (c: typeof got.candidate) => ({
            ...c,
            errorRates: Number(c.errorRates.toFixed(9)),
          });
          assert.deepEqual(to9(got.candidate), to9(expected.candidate));
          assert.deepEqual(to9(got.stable), to9(expected.stable));
        }),
        { numRuns: 40, seed: 20261205 },
      );
      await store.addTallies(
        'r1',
        [
          {
            revision: C,
            wave: 1,
            cohort: 'candidate',
            tally: { reports: 3, failed: 1, errors: 2, requests: 30, rated: 3, errorRates: 0.3 },
          },
        ],
        1,
      );
      await store.addTallies(
        'r2',
        [
          {
            revision: C,
            wave: 1,
            cohort: 'candidate',
            tally: { reports: 2, failed: 0, errors: 1, requests: 20, rated: 2, errorRates: 0.2 },
          },
        ],
        1,
      );
      await store.addTallies(
        'r1',
        [
          {
            revision: C,
            wave: 1,
            cohort: 'candidate',
            tally: { reports: 1, failed: 1, errors: 0, requests: 10, rated: 1, errorRates: 0.1 },
          },
          {
            revision: C,
            wave: 1,
            cohort: 'stable',
            tally: { reports: 7, failed: 0, errors: 0, requests: 70, rated: 7, errorRates: 0.7 },
          },
          {
            revision: C,
            wave: 0,
            cohort: 'stable',
            tally: {
              reports: 100,
              failed: 0,
              errors: 0,
              requests: 1,
              rated: 100,
              errorRates: 10.0,
            },
          },
        ],
        2,
      );
      const t = (await store.cohorts({ candidate: C, stable: S, wave: 1, silentBefore: 0 })).tally;
      t.candidate.errorRates = Number(t.candidate.errorRates.toFixed(9));
      t.stable.errorRates = Number(t.stable.errorRates.toFixed(9));
      assert.deepEqual(t, {
        candidate: { reports: 6, failed: 2, errors: 3, requests: 60, rated: 6, errorRates: 0.6 },
        stable: { reports: 7, failed: 0, errors: 0, requests: 70, rated: 7, errorRates: 0.7 },
      });
      await store.close();
    });

    it('lists by selector, wave, health and revision, in pages', async () => {
      const { store } = await fresh();
      const rows: AgentRow[] = [];
      for (let i = 0; i < 25; i++) {
        rows.push(
          row(`web-${String(i).padStart(2, '0')}`, {
            labels: {
              role: 'web',
              region: i % 2 === 0 ? 'eu-west-1' : 'us-east-1',
              'fleet.example/tier': 'a',
            },
            wave: i % 3,
            status: i % 5 === 0 ? 'failed' : 'ok',
            revision: i < 10 ? C : S,
            lastSeen: i === 7 ? 10 : 5000,
          }),
        );
      }
      rows.push(row('db-1', { labels: { role: 'db' }, status: 'degraded' }));
      await store.upsert(rows);
      const ids = async (f: Partial<Parameters<AgentStore['list']>[0]>): Promise<string[]> =>
        (await store.list({ limit: 100, silentBefore: 1000, ...f })).map((r) => r.id);
      assert.deepEqual(await ids({ selector: { matchLabels: { role: 'db' } } }), ['db-1']);
      assert.equal((await ids({ selector: { matchLabels: { region: 'eu-west-1' } } })).length, 13);
      assert.equal(
        (
          await ids({
            selector: {
              matchExpressions: [{ key: 'region', operator: 'NotIn', values: ['eu-west-1'] }],
            },
          })
        ).length,
        13, // 12 in us-east-1 and db-1, which has no region
      );
      assert.deepEqual(
        await ids({
          selector: { matchExpressions: [{ key: 'region', operator: 'DoesNotExist' }] },
        }),
        ['db-1'],
      );
      assert.equal(
        (await ids({ selector: { matchLabels: { 'fleet.example/tier': 'a' } } })).length,
        25,
      );
      assert.deepEqual(await ids({ health: 'failed' }), [
        'web-00',
        'web-05',
        'web-10',
        'web-15',
        'web-20',
      ]);
      assert.deepEqual(await ids({ health: 'silent' }), ['web-07']);
      assert.deepEqual(await ids({ health: 'degraded' }), ['db-1']);
      assert.deepEqual(await ids({ health: 'failed', revision: C }), ['web-00', 'web-05']);
      assert.deepEqual(await ids({ wave: 2, health: 'failed' }), ['web-05', 'web-20']);
      // Pages in id order.
      const first = await ids({ limit: 10 });
      const second = await ids({ limit: 10, after: first.at(-1)! });
      assert.deepEqual(first.slice(0, 2), ['db-1', 'web-00']);
      assert.equal(second[0], 'web-09');
      assert.equal(new Set([...first, ...second]).size, 20);
      // Counts, by wave, revision, health and silence.
      const counts = await store.counts(1000);
      assert.equal(
        counts.reduce((n, c) => n + c.agents, 0),
        26,
      );
      assert.equal(
        counts.filter((c) => c.silent).reduce((n, c) => n + c.agents, 0),
        1,
      );
      const labels = await store.labelCounts('region');
      assert.equal(labels.find((l) => l.value === null)?.agents, 1);
      // Forget and prune.
      assert.equal(await store.forget('db-1'), true);
      assert.equal(await store.forget('db-1'), false);
      assert.equal(await store.prune(1000), 1); // web-07
      assert.equal((await ids({})).length, 24);
      await store.close();
    });
  });
}

describe('--store URLs and stores that cannot be used', () => {
  it('parses sqlite: and postgres:// URLs and explains the rest', () => {
    assert.deepEqual(
      parseStoreUrl('sqlite:data/agents.db', (p) => `/abs/${p}`),
      {
        kind: 'sqlite',
        path: '/abs/data/agents.db',
      },
    );
    assert.equal(parseStoreUrl('postgres://u:secret@db:5432/fleet', (p) => p).kind, 'postgres');
    const redacted = parseStoreUrl('postgres://u:secret@db:5432/fleet', (p) => p);
    assert.equal((redacted as { redacted: string }).redacted, 'postgres://u:***@db:5432/fleet');
    for (const bad of ['mysql://x', 'sqlite:', 'postgres://u:secret@:5432/x', '/tmp/x.db']) {
      assert.throws(
        () => parseStoreUrl(bad, (p) => p),
        (e) => isFleetwaveError(e, 'CONFIG_INVALID') && !e.message.includes('secret'),
        bad,
      );
    }
  });

  it('refused connections and credentials are STORE_UNAVAILABLE at open, saying which', async () => {
    const wrong = pgServer!.url('postgres', 'not-the-password');
    await assert.rejects(
      openStore({ kind: 'postgres', url: wrong, redacted: 'postgres://fleetwave:***@…' }),
      (e) =>
        isFleetwaveError(e, 'STORE_UNAVAILABLE') &&
        /credentials were refused/.test(e.message) &&
        !e.message.includes('not-the-password'),
    );
    const closed = `postgres://fleetwave:x@127.0.0.1:1/postgres`;
    await assert.rejects(
      openStore({ kind: 'postgres', url: closed, redacted: closed }),
      (e) =>
        isFleetwaveError(e, 'STORE_UNAVAILABLE') && /nothing accepts connections/.test(e.message),
    );
    await writeFile(join(dir, 'a-file'), '');
    await assert.rejects(
      openStore({ kind: 'sqlite', path: join(dir, 'a-file', 'agents.db') }),
      (e) => isFleetwaveError(e, 'STORE_UNAVAILABLE'),
    );
  });
});
