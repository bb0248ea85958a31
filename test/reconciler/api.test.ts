// The agent API's answers to bad input: 401, 403, 400 with the reason, 413, 429, webhook
// signatures and duplicate deliveries, and a fuzz of /v1/checkin that never gets a 5xx.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { issueAgentToken } from '../../reconciler/auth.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  WEBHOOK_SECRET,
  call,
  enroll,
  metric,
  startServer,
  testConfig,
  type Running,
} from './helpers.ts';
import { until } from '../helpers/until.ts';

interface ErrorBody {
  error: { code: string; message: string };
}

describe('agent API', () => {
  let repo: FleetRepo;
  let server: Running;
  let token: string;
  const checkin = (
    body: unknown,
    options: { token?: string; query?: string; headers?: Record<string, string> } = {},
  ) =>
    call(`${server.url}/v1/checkin${options.query ?? ''}`, {
      token: options.token ?? token,
      body,
      ...(options.headers ? { headers: options.headers } : {}),
    });

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, maxWaiters: 1 }),
    );
    token = await enroll(server.url, 'agent-a');
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('answers 401 without the enrollment token, or with a wrong one', async () => {
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer nope' },
      { authorization: `Basic ${ENROLL_TOKEN}` },
    ]) {
      const res = await call(`${server.url}/v1/enroll`, { body: { id: 'x', labels: {} }, headers });
      assert.equal(res.status, 401);
      assert.equal((res.body as ErrorBody).error.code, 'UNAUTHENTICATED');
    }
    // The admin token is not an enrollment token.
    const res = await call(`${server.url}/v1/enroll`, {
      token: ADMIN_TOKEN,
      body: { id: 'x', labels: {} },
    });
    assert.equal(res.status, 401);
  });

  it('answers 401 for missing, forged or tampered agent tokens', async () => {
    const forged = issueAgentToken(Buffer.alloc(32, 7), 'agent-a');
    const [prefix, id, mac] = token.split('.');
    const tampered = `${prefix}.${Buffer.from('agent-b').toString('base64url')}.${mac}`;
    for (const t of [undefined, 'garbage', forged, tampered, `${prefix}.${id}.`, ENROLL_TOKEN]) {
      const res = await call(`${server.url}/v1/checkin`, {
        ...(t === undefined ? {} : { token: t }),
        body: { id: 'agent-a', labels: LINUX_PROD },
      });
      assert.equal(res.status, 401, `token ${t}`);
      assert.equal((res.body as ErrorBody).error.code, 'UNAUTHENTICATED');
    }
    const get = await call(`${server.url}/v1/agents/agent-a/target`);
    assert.equal(get.status, 401);
  });

  it("answers 403 when one agent's credential reads or reports for another", async () => {
    const other = await enroll(server.url, 'agent-b');
    const report = await checkin({ id: 'agent-a', labels: LINUX_PROD }, { token: other });
    assert.equal(report.status, 403);
    assert.equal((report.body as ErrorBody).error.code, 'FORBIDDEN');
    const read = await call(`${server.url}/v1/agents/agent-a/target`, { token: other });
    assert.equal(read.status, 403);
    const own = await call(`${server.url}/v1/agents/agent-b/target`, { token: other });
    assert.equal(own.status, 200);
  });

  it('answers 400 with the reason for malformed JSON and bodies off the schema', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ labels: LINUX_PROD }, /id/],
      [{ id: 'agent-a', labels: 'prod' }, /labels/],
      [{ id: 'agent-a', labels: { env: 7 } }, /labels/],
      [{ id: 'agent-a', labels: LINUX_PROD, health: { status: 'sick' } }, /status|allowed/],
      [{ id: 'agent-a', labels: LINUX_PROD, surprise: true }, /additional|surprise/],
      [{ id: 'agent-a', labels: { 'bad key!': 'x' } }, /label key/],
      [[1, 2], /object/],
      // Counts that would make a gate's arithmetic overflow, or go negative.
      [
        { id: 'agent-a', labels: LINUX_PROD, health: { status: 'ok', requests: 1e308 } },
        /requests/,
      ],
      [{ id: 'agent-a', labels: LINUX_PROD, health: { status: 'ok', errors: -1 } }, /errors/],
      [{ id: 'agent-a', labels: LINUX_PROD, health: { status: 'ok', requests: '5' } }, /requests/],
    ];
    for (const [body, reason] of cases) {
      const res = await checkin(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const error = (res.body as ErrorBody).error;
      assert.equal(error.code, 'REQUEST_INVALID');
      assert.match(error.message, reason, JSON.stringify(body));
    }
    const malformed = await call(`${server.url}/v1/checkin`, {
      token,
      raw: '{"id": "agent-a", "labels": {',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(malformed.status, 400);
    assert.equal((malformed.body as ErrorBody).error.code, 'REQUEST_INVALID');
    assert.match((malformed.body as ErrorBody).error.message, /JSON/i);
    const badWait = await checkin({ id: 'agent-a', labels: LINUX_PROD }, { query: '?wait=soon' });
    assert.equal(badWait.status, 400);
    assert.match((badWait.body as ErrorBody).error.message, /wait/);
  });

  it('answers 413 for a body over the limit', async () => {
    const labels = { ...LINUX_PROD, note: 'x'.repeat(20 * 1024) };
    const res = await checkin({ id: 'agent-a', labels });
    assert.equal(res.status, 413);
    assert.equal((res.body as ErrorBody).error.code, 'REQUEST_TOO_LARGE');
  });

  it('answers 429 with Retry-After past the configured number of waiters', async () => {
    const body = { id: 'agent-a', labels: LINUX_PROD };
    const target = (await checkin(body)).body as { etag: string };
    const headers = { 'if-none-match': `"${target.etag}"` };
    const held = checkin(body, { query: '?wait=30', headers });
    await until(() => server.app.reconciler.longpoll.size > 0, 'the server holds the check-in');
    const refused = await checkin(body, { query: '?wait=30', headers });
    assert.equal(refused.status, 429);
    assert.equal((refused.body as ErrorBody).error.code, 'TOO_MANY_WAITERS');
    assert.match(String(refused.headers['retry-after']), /^[1-9]\d*$/);
    // Without ?wait the same request is answered at once, whatever the number of waiters.
    assert.equal((await checkin(body, { headers })).status, 304);
    server.app.reconciler.longpoll.drain();
    const answered = await held;
    assert.equal(answered.status, 304);
    assert.match(String(answered.headers['fleetwave-poll-after']), /^\d+$/);
  });

  it('checks the webhook signature on the raw body and ignores duplicate deliveries', async () => {
    const body = '{"ref":"refs/heads/main"}';
    const sign = (b: string) =>
      `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(b).digest('hex')}`;
    const hook = (raw: string, signature: string | undefined, delivery: string) =>
      call(`${server.url}/v1/webhooks/github`, {
        raw,
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': delivery,
          ...(signature === undefined ? {} : { 'x-hub-signature-256': signature }),
        },
      });
    for (const signature of [
      undefined,
      'sha256=00',
      sign(body + ' '),
      sign(body).replace('sha256=', 'sha1='),
    ]) {
      const res = await hook(body, signature, 'bad-1');
      assert.equal(res.status, 401, String(signature));
      assert.equal((res.body as ErrorBody).error.code, 'UNAUTHENTICATED');
    }
    // The same JSON re-serialized is not the signed body.
    assert.equal((await hook('{ "ref": "refs/heads/main" }', sign(body), 'bad-2')).status, 401);
    const first = await hook(body, sign(body), 'delivery-1');
    assert.equal(first.status, 202);
    assert.equal((first.body as { action: string }).action, 'fetch');
    const again = await hook(body, sign(body), 'delivery-1');
    assert.equal(again.status, 200);
    assert.equal((again.body as { action: string }).action, 'duplicate');
    const metrics = (await call(`${server.url}/metrics`)).text;
    assert.equal(metric(metrics, 'fleetwave_webhook_deliveries_total', { result: 'duplicate' }), 1);
    assert.equal(metric(metrics, 'fleetwave_webhook_deliveries_total', { result: 'accepted' }), 1);
  });

  it('answers unknown routes and agents with 404 in the error format', async () => {
    const res = await call(`${server.url}/v1/nope`);
    assert.equal(res.status, 404);
    assert.equal((res.body as ErrorBody).error.code, 'NOT_FOUND');
    const stranger = issueAgentToken(server.app.reconciler.tokenKey, 'never-seen');
    const target = await call(`${server.url}/v1/agents/never-seen/target`, { token: stranger });
    assert.equal(target.status, 404);
  });

  it('answers 422 when a target cannot be rendered for the agent', async () => {
    const t = await enroll(server.url, 'no-arch', { env: 'prod', os: 'linux' });
    const res = await checkin(
      { id: 'no-arch', labels: { env: 'prod', os: 'linux' } },
      { token: t },
    );
    assert.equal(res.status, 422);
    assert.equal((res.body as ErrorBody).error.code, 'TARGET_UNAVAILABLE');
    assert.match((res.body as ErrorBody).error.message, /arch/);
  });

  it('health, readiness, status and metrics answer', async () => {
    assert.equal((await call(`${server.url}/healthz`)).status, 200);
    assert.equal((await call(`${server.url}/readyz`)).status, 200);
    const status = await call(`${server.url}/v1/status`);
    assert.equal((status.body as { ready: boolean }).ready, true);
    const metrics = await call(`${server.url}/metrics`);
    assert.match(metrics.text, /^fleetwave_longpoll_waiters /m);
    assert.match(metrics.text, /^fleetwave_checkins_total\{result="target"\} \d+/m);
    assert.match(
      metrics.text,
      /^fleetwave_revision_info\{role="stable",revision="[0-9a-f]{40}"\} 1/m,
    );
    assert.ok(status.headers['x-request-id'], 'responses carry the request id');
  });

  it('never answers the check-in route with a 5xx, whatever it is sent (fuzz)', async () => {
    const json = fc.oneof(
      fc.json(),
      fc
        .record(
          {
            id: fc.oneof(fc.constant('agent-a'), fc.string()),
            labels: fc.oneof(
              fc.dictionary(fc.string(), fc.string()),
              fc.constant(LINUX_PROD),
              fc.anything(),
            ),
            current: fc.oneof(
              fc.record({ etag: fc.string(), version: fc.string() }),
              fc.anything(),
            ),
            health: fc.oneof(
              fc.record({ status: fc.constantFrom('ok', 'degraded', 'failed', 'x') }),
              fc.anything(),
            ),
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v)),
      fc.string(),
    );
    const query = fc.oneof(
      fc.constant(''),
      fc.constantFrom(
        '?wait=0',
        '?wait=-1',
        '?wait=1e3',
        '?wait=&wait=2',
        '?wait=999999999',
        '?wait=0&x=%zz',
      ),
      fc.string().map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
    );
    const header = fc.oneof(
      fc.constant(undefined),
      fc.string(),
      fc.constant('*'),
      fc.constant('W/"abc", "def"'),
    );
    const contentType = fc.constantFrom(
      'application/json',
      'text/plain',
      'application/json; charset=utf-16',
      'x/y',
    );
    const auth = fc.oneof(
      { arbitrary: fc.constant(token), weight: 4 },
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: fc.string(), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(json, query, header, contentType, auth, async (body, q, inm, type, t) => {
        const headers: Record<string, string> = { 'content-type': type };
        if (inm !== undefined) headers['if-none-match'] = inm.replace(/[\r\n\0]/g, '');
        let res;
        try {
          res = await call(`${server.url}/v1/checkin${q}`, {
            raw: body,
            headers,
            ...(t === undefined ? {} : { token: t.replace(/[\r\n\0]/g, '') || 'x' }),
          });
        } catch (e) {
          // undici refuses some header values before sending: not the server's doing.
          if ((e as { code?: string }).code === 'UND_ERR_INVALID_ARG') return;
          throw e;
        }
        assert.ok(res.status < 500, `${res.status} ${res.text} for ${q} ${body}`);
        if (res.status >= 400) assert.ok((res.body as ErrorBody).error.code, res.text);
      }),
      { numRuns: 300 },
    );
    assert.equal((await call(`${server.url}/healthz`)).status, 200, 'the server is still up');
  });
});
