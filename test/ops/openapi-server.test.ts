// The real server against docs/api/openapi.yaml: every route is called for the answers it
// documents, and each answer's status, headers and body must match the document.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { issueAgentToken } from '../../reconciler/auth.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  WEBHOOK_SECRET,
  call,
  enroll,
  startServer,
  testConfig,
  type Answer,
  type Running,
} from '../reconciler/helpers.ts';
import { change } from '../engine/sim.ts';
import { until } from '../helpers/until.ts';
import { METHODS, conforms, doc, requestAccepts, seen, validator } from './openapi.ts';

function sign(body: string): string {
  return `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
}
describe('the running server matches the OpenAPI document', () => {
  let repo: FleetRepo;
  let server: Running;
  let token: string;

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

  const post = async (path: string, options: Parameters<typeof call>[1]): Promise<Answer> => {
    const answer = await call(`${server.url}${path}`, { method: 'POST', ...options });
    conforms('POST', path, answer);
    return answer;
  };
  const get = async (path: string, options: Parameters<typeof call>[1] = {}): Promise<Answer> => {
    const answer = await call(`${server.url}${path}`, { method: 'GET', ...options });
    conforms('GET', path, answer);
    return answer;
  };

  it('documents exactly the routes the server has', () => {
    const routes = new Set<string>();
    // printRoutes draws a tree: each line one path segment, indented four columns a level,
    // "(METHODS)" after the segments that end a route.
    const stack: string[] = [];
    for (const line of server.app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^([\s│├└─]*)(\S+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
      if (!m) continue;
      const depth = Math.floor(m[1]!.length / 4);
      stack.length = depth;
      stack[depth] = m[2]!;
      if (!m[3]) continue;
      const path = stack.join('').replace(/^\/?/, '/');
      for (const method of m[3].split(', ')) {
        if (method !== 'HEAD') routes.add(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
    const documented = new Set<string>();
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS)
        if (item[method]) documented.add(`${method.toUpperCase()} ${template}`);
    }
    assert.ok(routes.size >= 13, `parsed the routes: ${[...routes].join(', ')}`);
    assert.deepEqual([...documented].sort(), [...routes].sort());
  });

  it('enroll: 200, 400, 401, 413, 415', async () => {
    const good = { id: 'agent-b', labels: LINUX_PROD };
    assert.ok(requestAccepts('post', '/v1/enroll', good));
    const ok = await post('/v1/enroll', { token: ENROLL_TOKEN, body: good });
    assert.equal(ok.status, 200);
    const bad = { id: '-bad id', labels: {} };
    assert.equal(requestAccepts('post', '/v1/enroll', bad), false);
    assert.equal((await post('/v1/enroll', { token: ENROLL_TOKEN, body: bad })).status, 400);
    assert.equal((await post('/v1/enroll', { token: 'wrong', body: good })).status, 401);
    const huge = { id: 'agent-c', labels: { note: 'x'.repeat(32 * 1024) } };
    assert.equal((await post('/v1/enroll', { token: ENROLL_TOKEN, body: huge })).status, 413);
    const text = await post('/v1/enroll', {
      token: ENROLL_TOKEN,
      raw: '<id>agent-c</id>',
      headers: { 'content-type': 'application/xml' },
    });
    assert.equal(text.status, 415);
  });

  it('checkin: 200, 304 (at once and after a long-poll), 400, 401, 403, 413, 422', async () => {
    const body = { id: 'agent-a', labels: LINUX_PROD, health: { status: 'ok' } };
    assert.ok(requestAccepts('post', '/v1/checkin', body));
    const first = await post('/v1/checkin', { token, body });
    assert.equal(first.status, 200);
    const etag = (first.body as { etag: string }).etag;
    const held = { token, body, headers: { 'if-none-match': `"${etag}"` } };
    assert.equal((await post('/v1/checkin', held)).status, 304);
    assert.equal((await post('/v1/checkin?wait=1', held)).status, 304);
    const current = { ...body, current: { etag, version: '2.4.0' } };
    assert.equal((await post('/v1/checkin', { token, body: current })).status, 304);
    assert.equal((await post('/v1/checkin?wait=soon', held)).status, 400);
    const malformed = { id: 'agent-a', labels: LINUX_PROD, health: { status: 'fine' } };
    assert.equal(requestAccepts('post', '/v1/checkin', malformed), false);
    assert.equal((await post('/v1/checkin', { token, body: malformed })).status, 400);
    assert.equal((await post('/v1/checkin', { body })).status, 401);
    assert.equal((await post('/v1/checkin', { token: ENROLL_TOKEN, body })).status, 401);
    const other = { ...body, id: 'agent-b' };
    assert.equal((await post('/v1/checkin', { token, body: other })).status, 403);
    const huge = { ...body, health: { status: 'ok', message: 'x'.repeat(32 * 1024) } };
    assert.equal((await post('/v1/checkin', { token, body: huge })).status, 413);
    // No os/arch label: no artifact can be chosen, so no target at all.
    const noPlatform = { env: LINUX_PROD.env, region: LINUX_PROD.region };
    const bare = await post('/v1/checkin', { token, body: { id: 'agent-a', labels: noPlatform } });
    assert.equal(bare.status, 422);
    assert.equal((bare.body as { error: { code: string } }).error.code, 'TARGET_UNAVAILABLE');
  });

  it('checkin: 429 with Retry-After past --max-waiters, and the held one 304 on close', async () => {
    const waiterToken = await enroll(server.url, 'agent-w');
    const body = { id: 'agent-w', labels: LINUX_PROD };
    const first = await call(`${server.url}/v1/checkin`, { token: waiterToken, body });
    const etag = (first.body as { etag: string }).etag;
    const options = { token: waiterToken, body, headers: { 'if-none-match': `"${etag}"` } };
    const holding = call(`${server.url}/v1/checkin?wait=600`, options);
    await until(
      async () =>
        ((await call(`${server.url}/v1/status`)).body as { agents: { waiting: number } }).agents
          .waiting === 1,
      'the server holds the check-in',
      { intervalMs: 20 },
    );
    const refused = await post('/v1/checkin?wait=600', options);
    assert.equal(refused.status, 429);
    assert.ok(refused.headers['retry-after']);
    // Closing answers every held long-poll with 304 so agents move to another replica.
    const closing = server.close();
    const answer = await holding;
    await closing;
    conforms('POST', '/v1/checkin?wait=600', answer);
    assert.equal(answer.status, 304);
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data2`, maxWaiters: 1 }),
    );
    token = await enroll(server.url, 'agent-a');
  });

  it('target: 200, 304, 401, 403, 404', async () => {
    await call(`${server.url}/v1/checkin`, { token, body: { id: 'agent-a', labels: LINUX_PROD } });
    const ok = await get('/v1/agents/agent-a/target', { token });
    assert.equal(ok.status, 200);
    const etag = String(ok.headers.etag);
    const same = await get('/v1/agents/agent-a/target', {
      token,
      headers: { 'if-none-match': etag },
    });
    assert.equal(same.status, 304);
    assert.equal((await get('/v1/agents/agent-a/target')).status, 401);
    assert.equal((await get('/v1/agents/agent-b/target', { token })).status, 403);
    const ghost = issueAgentToken(server.app.reconciler.tokenKey, 'ghost');
    assert.equal((await get('/v1/agents/ghost/target', { token: ghost })).status, 404);
  });

  it('status: 200 with the per-wave counts', async () => {
    const status = await get('/v1/status');
    assert.equal(status.status, 200);
    assert.ok((status.body as { waves: unknown[] }).waves.length > 0);
  });

  it('agents inventory: 200, 400, 401, 403, 404', async () => {
    await call(`${server.url}/v1/checkin`, { token, body: { id: 'agent-a', labels: LINUX_PROD } });
    await server.app.reconciler.reports.flush();
    const list = await get('/v1/agents?selector=env%3Dprod&limit=1', { token: ADMIN_TOKEN });
    assert.equal(list.status, 200);
    assert.ok((list.body as { agents: unknown[] }).agents.length === 1);
    assert.equal((await get('/v1/agents?health=lost', { token: ADMIN_TOKEN })).status, 400);
    assert.equal((await get('/v1/agents?selector=a%20in%20(', { token: ADMIN_TOKEN })).status, 400);
    assert.equal((await get('/v1/agents')).status, 401);
    assert.equal((await get('/v1/agents', { token })).status, 403);
    const one = await get('/v1/agents/agent-a', { token: ADMIN_TOKEN });
    assert.equal(one.status, 200);
    assert.equal((await get('/v1/agents/nobody', { token: ADMIN_TOKEN })).status, 404);
    assert.equal((await get('/v1/agents/agent-a', { token })).status, 403);
    const gone = await post('/v1/agents/agent-a/forget', { token: ADMIN_TOKEN, body: {} });
    assert.equal(gone.status, 200);
    assert.equal(
      (await post('/v1/agents/agent-a/forget', { token: ADMIN_TOKEN, body: {} })).status,
      404,
    );
    assert.equal((await post('/v1/agents/agent-a/forget', { body: {} })).status, 401);
  });

  it('rollout actions: 200, 400, 401, 403, 409', async () => {
    const paused = await post('/v1/rollout/pause', {
      token: ADMIN_TOKEN,
      body: { reason: 'openapi test', actor: 'test' },
    });
    assert.equal(paused.status, 200);
    assert.equal((paused.body as { changed: boolean }).changed, true);
    const resumed = await post('/v1/rollout/resume', { token: ADMIN_TOKEN, body: {} });
    assert.equal(resumed.status, 200);
    const promote = await post('/v1/rollout/promote', { token: ADMIN_TOKEN, body: {} });
    assert.equal(promote.status, 409);
    const rollback = await post('/v1/rollout/rollback', { token: ADMIN_TOKEN, body: {} });
    assert.equal(rollback.status, 409);
    const bad = await post('/v1/rollout/pause', { token: ADMIN_TOKEN, body: { why: 'x' } });
    assert.equal(bad.status, 400);
    for (const action of ['pause', 'resume', 'promote', 'rollback']) {
      assert.equal((await post(`/v1/rollout/${action}`, { body: {} })).status, 401);
      assert.equal((await post(`/v1/rollout/${action}`, { token, body: {} })).status, 403);
    }
    // A change on main becomes the candidate: promote moves it a wave, rollback rejects it.
    const candidate = await change(repo, 'openapi: a change to roll out');
    await server.app.reconciler.sync.sync();
    await server.app.rollout.evaluate();
    const status = await get('/v1/status');
    assert.equal(
      (status.body as { candidate: { revision: string } }).candidate.revision,
      candidate,
    );
    const promoted = await post('/v1/rollout/promote', { token: ADMIN_TOKEN, body: {} });
    assert.equal(promoted.status, 200, promoted.text);
    const rolled = await post('/v1/rollout/rollback', { token: ADMIN_TOKEN, body: {} });
    assert.equal(rolled.status, 200, rolled.text);
    assert.equal((await get('/v1/status')).status, 200);
  });

  it('webhook: 202 push and other events, 200 duplicate, 400, 401', async () => {
    const payload = JSON.stringify({ ref: 'refs/heads/main' });
    const headers = (delivery: string, event = 'push') => ({
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': delivery,
      'x-hub-signature-256': sign(payload),
    });
    const pushed = await post('/v1/webhooks/github', { raw: payload, headers: headers('d-1') });
    assert.equal(pushed.status, 202);
    assert.equal((pushed.body as { action: string }).action, 'fetch');
    const again = await post('/v1/webhooks/github', { raw: payload, headers: headers('d-1') });
    assert.equal(again.status, 200);
    const ping = await post('/v1/webhooks/github', {
      raw: payload,
      headers: headers('d-2', 'ping'),
    });
    assert.equal(ping.status, 202);
    assert.equal((ping.body as { action: string }).action, 'ignored');
    const forged = await post('/v1/webhooks/github', {
      raw: payload,
      headers: { ...headers('d-3'), 'x-hub-signature-256': sign('another body') },
    });
    assert.equal(forged.status, 401);
    const noDelivery: Record<string, string> = headers('d-4');
    delete noDelivery['x-github-delivery'];
    assert.equal(
      (await post('/v1/webhooks/github', { raw: payload, headers: noDelivery })).status,
      400,
    );
  });

  it('probes, metrics and the page: 200', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    const metrics = await get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^fleetwave_/m);
    const page = await get('/');
    assert.equal(page.status, 200);
    assert.match(page.text, /<html/i);
  });

  it('an unknown route answers 404 with the error body', async () => {
    const answer = await call(`${server.url}/v1/nothing`);
    assert.equal(answer.status, 404);
    assert.ok(validator(doc.components.schemas!.Error!)(answer.body));
  });

  describe('a server that is not ready and has no webhook secret', () => {
    let lonely: Running;
    let lonelyRepo: FleetRepo;

    before(async () => {
      lonelyRepo = await FleetRepo.create();
      const config = testConfig({
        repo: `${lonelyRepo.root}/no-such-origin.git`,
        dataDir: `${lonelyRepo.root}/data`,
      });
      delete config.webhookSecret;
      lonely = await startServer(config);
    });

    after(async () => {
      await lonely?.close();
      await lonelyRepo?.cleanup();
    });

    it('readyz, checkin and target: 503 with Retry-After; webhook: 404', async () => {
      const at = async (
        method: 'GET' | 'POST',
        path: string,
        options: Parameters<typeof call>[1],
      ) => {
        const answer = await call(`${lonely.url}${path}`, { method, ...options });
        conforms(method, path, answer);
        return answer;
      };
      const readyz = await at('GET', '/readyz', {});
      assert.equal(readyz.status, 503);
      assert.ok(readyz.headers['retry-after']);
      const agentToken = (
        (
          await at('POST', '/v1/enroll', {
            token: ENROLL_TOKEN,
            body: { id: 'early', labels: LINUX_PROD },
          })
        ).body as { token: string }
      ).token;
      const body = { id: 'early', labels: LINUX_PROD };
      const checkin = await at('POST', '/v1/checkin', { token: agentToken, body });
      assert.equal(checkin.status, 503);
      assert.ok(checkin.headers['retry-after']);
      const target = await at('GET', '/v1/agents/early/target', { token: agentToken });
      assert.equal(target.status, 503);
      const hook = await at('POST', '/v1/webhooks/github', {
        raw: '{}',
        headers: { 'content-type': 'application/json', 'x-github-delivery': 'd' },
      });
      assert.equal(hook.status, 404);
      const status = await at('GET', '/v1/status', {});
      assert.equal((status.body as { ready: boolean }).ready, false);
    });
  });

  it('exercised every operation and the answers the task names', () => {
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const key = `${method.toUpperCase()} ${template}`;
        assert.ok(
          [...seen].some((s) => s.startsWith(`${key} 2`)),
          `${key}: no successful answer was checked`,
        );
      }
    }
    for (const must of [
      'POST /v1/checkin 200',
      'POST /v1/checkin 304',
      'POST /v1/checkin 400',
      'POST /v1/checkin 401',
      'POST /v1/checkin 403',
      'POST /v1/checkin 413',
      'POST /v1/checkin 429',
      'POST /v1/checkin 503',
      'GET /v1/agents/{id}/target 304',
      'POST /v1/rollout/pause 401',
      'POST /v1/webhooks/github 401',
      'POST /v1/webhooks/github 404',
      'GET /readyz 503',
    ]) {
      assert.ok(seen.has(must), `${must} was not checked`);
    }
  });
});
