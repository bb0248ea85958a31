// The reconciler with its store on a real PostgreSQL that goes down mid-rollout and comes back:
// check-ins are still answered, reports are buffered and written when it returns, gates wait
// (never pass) while observations are stale, and /readyz, /v1/status and /metrics say so. And
// a replica that never heard from an agent answers its target read from the store.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EngineRig, change } from '../engine/sim.ts';
import { Postgres } from '../helpers/postgres.ts';
import { call, metric, startServer, testConfig, type Running } from '../reconciler/helpers.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

describe('a store that goes down and comes back', () => {
  let db: Postgres;
  let rig: EngineRig;
  let other: Running | undefined;
  let url = '';

  before(async () => {
    db = await Postgres.start();
    url = await db.database('outage');
    rig = await EngineRig.start({
      agents: 30,
      config: { store: { kind: 'postgres', url, redacted: url }, replica: 'r1' },
    });
  });

  after(async () => {
    await other?.close();
    await rig?.stop();
    await db?.stop();
  });

  it('answers check-ins, buffers reports, and makes gates wait until it is back', async () => {
    const healthy = await change(rig.repo, 'healthy change');
    await rig.server.app.reconciler.sync.sync();
    await rig.until<Status>((s) => s.candidate?.revision === healthy);
    db.pause();
    const round = await rig.sim.round();
    assert.deepEqual(round, { ok: 30, failed: 0 }, 'every check-in answered from memory');
    rig.clock += 5000;
    const decision = await rig.server.app.rollout.evaluate();
    assert.equal(decision?.kind, 'wait');
    assert.match(
      (decision as { reason: string }).reason,
      /observations are stale, gates wait: the store of agent reports is unavailable/,
    );
    const ready = await call(`${rig.server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual((ready.body as { store: unknown }).store, {
      kind: 'postgres',
      up: false,
      buffered: 30,
    });
    const status = await rig.status<Status>();
    assert.equal(status.store.up, false);
    assert.match(status.store.lastError!.message, /PostgreSQL store/);
    assert.equal(metric(await rig.server.registry.metrics(), 'fleetwave_store_up'), 0);
    assert.ok(
      metric(await rig.server.registry.metrics(), 'fleetwave_store_errors_total', {
        op: 'write',
      })! >= 1,
    );
    // Gates stayed put: the candidate is where it was.
    assert.equal((await rig.status<Status>()).candidate?.revision, healthy);

    db.resume();
    await rig.sim.round();
    await rig.server.app.reconciler.reports.flush();
    const back = await rig.status<Status>();
    assert.equal(back.store.up, true);
    assert.equal(back.store.buffered, 0);
    assert.equal(back.agents.known, 30);
    assert.equal(metric(await rig.server.registry.metrics(), 'fleetwave_store_up'), 1);
    // And the rollout goes on to the end.
    await rig.until<Status>((s) => s.candidate === null);
  });

  it('serves an agent its target on a replica that never heard from it', async () => {
    other = await startServer(
      testConfig({
        repo: rig.daemon.url('origin.git'),
        dataDir: `${rig.repo.root}/data-other`,
        store: { kind: 'postgres', url, redacted: url },
        replica: 'r2',
      }),
    );
    const agent = rig.sim.agents[0]!;
    const res = await call(`${other.url}/v1/agents/${agent.id}/target`, { token: agent.token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((res.body as { etag: string }).etag, agent.etag);
  });
});
