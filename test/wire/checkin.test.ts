// The reconciler checks check-in bodies with the wire schema (wire/checkin.ts): the health's
// failedTarget and retryingTarget are typed, so a malformed one is refused with the field named
// and a well-formed one reaches the store (the inventory's failedRevision).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_TOKEN,
  FleetRepo,
  LINUX_PROD,
  call,
  enroll,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';
import type { CheckinBody } from '../../wire/checkin.ts';
import type { AgentDetail } from '../../wire/inventory.ts';
import type { Target } from '../../wire/target.ts';

describe('check-in bodies on the wire', () => {
  let repo: FleetRepo;
  let server: Running;
  let token: string;

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }));
    token = await enroll(server.url, 'web-1');
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  const checkin = (body: unknown) => call(`${server.url}/v1/checkin`, { token, body });

  it('refuses a malformed failedTarget, retryingTarget or attempts, naming the field', async () => {
    for (const [health, field] of [
      [
        { status: 'failed', failedTarget: { etag: 5, version: '1' } },
        /body\/health\/failedTarget\/etag must be string/,
      ],
      [
        { status: 'failed', failedTarget: { etag: 'e' } },
        /body\/health\/failedTarget must have required property 'version'/,
      ],
      [{ status: 'failed', failedTarget: 'e' }, /body\/health\/failedTarget must be object/],
      [
        { status: 'retrying', retryingTarget: { etag: 'e', version: '1', x: 1 } },
        /must NOT have additional properties/,
      ],
      [{ status: 'retrying', attempts: 0 }, /body\/health\/attempts must be >= 1/],
      [{ status: 'ok', rolledBack: 'yes' }, /body\/health\/rolledBack must be boolean/],
    ] as const) {
      const answer = await checkin({ id: 'web-1', labels: LINUX_PROD, health });
      assert.equal(answer.status, 400, JSON.stringify(health));
      const error = (answer.body as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'REQUEST_INVALID');
      assert.match(error.message, field);
    }
  });

  it('keeps other health details as sent, and a well-formed failedTarget reaches the store', async () => {
    const target = (await checkin({ id: 'web-1', labels: LINUX_PROD })).body as Target;
    const body: CheckinBody = {
      id: 'web-1',
      labels: LINUX_PROD,
      health: {
        status: 'failed',
        message: 'apply failed',
        failedTarget: { etag: target.etag, version: target.version },
        // An agent may report more than the named fields; they are kept as sent.
        ...{ uptimeSeconds: 12 },
      },
    };
    assert.equal((await checkin(body)).status, 200);
    await server.app.reconciler.reports.flush();
    const detail = (
      await call(`${server.url}/v1/agents/web-1`, { method: 'GET', token: ADMIN_TOKEN })
    ).body as AgentDetail;
    assert.equal(detail.agent.health.status, 'failed');
    assert.equal(detail.agent.health.failedRevision, target.revision);
    assert.deepEqual(detail.agent.health.report, body.health);
  });
});
