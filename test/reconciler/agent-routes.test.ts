// The agent routes (enroll, check in, read a target) on the real server on a loopback port,
// as agents reach them (raw sockets, so the bytes on the wire are the point): the same answers
// as fastify's routes (differential, app.inject), long-polls, logs and metrics, shutdown.
// Hostile input (unusual shapes, byte shapes, pipelining, fuzz, timeouts): hostile-http.test.ts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { issueAgentToken } from '../../reconciler/auth.ts';
import { until } from '../helpers/until.ts';
import { ADMIN_TOKEN, ENROLL_TOKEN, LINUX_PROD, enroll, metric, type Running } from './helpers.ts';
import {
  Raw,
  agentCalls,
  assertSame,
  checkinReq,
  httpFixture,
  type HttpFixture,
  bearer,
  bytesOf,
  injected,
  json,
  reqOf,
  type AgentCall,
  type By,
  type ErrorBody,
  type Reply,
  type Req,
  type Target,
} from './raw-http.ts';

describe('the agent routes', () => {
  let http: HttpFixture;
  let server: Running;
  let port: number;
  const once = (r: Req | Buffer, ms?: number) => http.once(r, ms);
  const targetOf = (token: string, id: string) => http.targetOf(token, id);
  const lines = () => http.lines();

  before(async () => {
    http = await httpFixture({ maxWaiters: 2 });
    ({ server, port } = http);
  });

  after(async () => {
    await http?.close();
  });

  describe('answers as the fastify routes do (differential)', () => {
    let a: string;
    let b: string;
    let c: string;
    let stranger: string;
    let etag: string;

    before(async () => {
      a = await enroll(server.url, 'diff-a');
      b = await enroll(server.url, 'diff-b');
      c = await enroll(server.url, 'diff-c');
      stranger = issueAgentToken(server.app.reconciler.tokenKey, 'diff-never');
      etag = (await targetOf(a, 'diff-a')).etag;
    });

    /** Sends `call` both ways, the socket first, and compares; returns the socket's answer. */
    async function compare(call: AgentCall, label: string, by: By = 'agent'): Promise<Reply> {
      const fast = await once(reqOf(call));
      assert.equal(fast.by, by, `${label}: answered by ${fast.by}\n${fast.head}`);
      assertSame(fast, await injected(server.app, call), label);
      return fast;
    }

    it('check-ins, target reads and enrollments: same status, body and headers', async () => {
      const own = { id: 'diff-a', labels: LINUX_PROD };
      const { post, get, enrolling } = agentCalls(a, ENROLL_TOKEN);
      const cases: Array<[string, AgentCall, number, By?]> = [
        ['plain check-in', post(own), 200],
        ['current etag', post({ ...own, current: { etag, version: '2.4.0' } }), 304],
        ['stale current etag', post({ ...own, current: { etag: 'old' } }), 200],
        ['If-None-Match', post(own, { ifNoneMatch: `"${etag}"` }), 304],
        ['stale If-None-Match', post(own, { ifNoneMatch: '"stale"' }), 200],
        ['weak If-None-Match', post(own, { ifNoneMatch: `W/"${etag}"` }), 304],
        ['If-None-Match list', post(own, { ifNoneMatch: `"x", "${etag}"` }), 304],
        ['If-None-Match *', post(own, { ifNoneMatch: '*' }), 304],
        ['wait=0', post(own, { url: '/v1/checkin?wait=0', ifNoneMatch: `"${etag}"` }), 304],
        ['wait= (empty)', post(own, { url: '/v1/checkin?wait=', ifNoneMatch: `"${etag}"` }), 304],
        ['wait=0, no etag', post(own, { url: '/v1/checkin?wait=0' }), 200],
        ['wait out of range', post(own, { url: '/v1/checkin?wait=100000' }), 400],
        ['wait not a number', post(own, { url: '/v1/checkin?wait=soon' }), 400, 'fastify'],
        ['wait twice', post(own, { url: '/v1/checkin?wait=1&wait=2' }), 400, 'fastify'],
        ['charset', post(own, { contentType: 'application/json; charset=utf-8' }), 200],
        ['type in capitals', post(own, { contentType: 'Application/JSON' }), 200],
        ['health', post({ ...own, health: { status: 'degraded', disk: 'full' } }), 200],
        ['byte order mark', post(`\ufeff${json(own)}`), 200],
        ['request id', post(own, { extra: [['X-Request-Id', 'diff-id-1']] }), 200],
        ['bad token', post(own, { auth: 'Bearer garbage' }), 401],
        ['no token', { ...post(own), auth: undefined } as AgentCall, 401],
        ['Basic', post(own, { auth: `Basic ${a}` }), 401],
        ['enrollment token', post(own, { auth: bearer(ENROLL_TOKEN) }), 401],
        ["another agent's id", post(own, { auth: bearer(b) }), 403],
        ['no id', post({ labels: LINUX_PROD }), 400],
        ['labels a string', post({ id: 'diff-a', labels: 'prod' }), 400],
        ['label value a number', post({ id: 'diff-a', labels: { env: 7 } }), 400],
        ['label value too long', post({ id: 'diff-a', labels: { env: 'x'.repeat(64) } }), 400],
        ['bad health', post({ ...own, health: { status: 'sick' } }), 400],
        ['extra property', post({ ...own, surprise: true }), 400],
        ['current.etag a number', post({ ...own, current: { etag: 5 } }), 400],
        ['array', post([1, 2]), 400],
        ['string', post('"diff-a"'), 400],
        ['null', post('null'), 400],
        ['bad label key', post({ id: 'diff-a', labels: { 'bad key!': 'x' } }), 400],
        ['bad label prefix', post({ id: 'diff-a', labels: { '-x-/k': 'v' } }), 400],
        ['bad label value', post({ id: 'diff-a', labels: { env: 'bad value!' } }), 400],
        ['non-ASCII label value', post({ id: 'diff-a', labels: { env: 'prød' } }), 400],
        [
          'no target (422)',
          post({ id: 'diff-c', labels: { env: 'prod', os: 'linux' } }, { auth: bearer(c) }),
          422,
        ],
        ['own target', get('diff-a'), 200],
        ['own target, etag', get('diff-a', { ifNoneMatch: `"${etag}"` }), 304],
        ['own target, stale etag', get('diff-a', { ifNoneMatch: '"stale"' }), 200],
        ["another's target", get('diff-b'), 403],
        ['unknown agent', get('diff-never', { auth: bearer(stranger) }), 404],
        ['target, bad token', get('diff-a', { auth: 'Bearer x.y.z' }), 401],
        ['target, no token', { ...get('diff-a'), auth: undefined } as AgentCall, 401],
        ['target, encoded id', get('diff%2Da'), 200, 'fastify'],
        ['enroll', enrolling({ id: 'diff-e', labels: LINUX_PROD }), 200],
        ['enroll again', enrolling({ id: 'diff-e', labels: LINUX_PROD }), 200],
        ['enroll, bad token', enrolling({ id: 'diff-e', labels: {} }, 'Bearer nope'), 401],
        ['enroll, no token', enrolling({ id: 'diff-e', labels: {} }, null), 401],
        ['enroll, admin token', enrolling({ id: 'diff-e', labels: {} }, bearer(ADMIN_TOKEN)), 401],
        ['enroll, bad id', enrolling({ id: '-x', labels: {} }), 400],
        ['enroll, no labels', enrolling({ id: 'diff-e' }), 400],
        ['enroll, bad label key', enrolling({ id: 'diff-e', labels: { 'a b': 'x' } }), 400],
      ];
      for (const [label, call, status, by] of cases) {
        const fast = await compare(call, label, by);
        assert.equal(fast.status, status, `${label}: ${fast.text}`);
        if (status === 200 && call.url.startsWith('/v1/enroll')) {
          assert.equal((JSON.parse(fast.text) as { id: string }).id, 'diff-e');
        } else if (status === 200) {
          assert.match(fast.headers.etag ?? '', /^"[0-9a-f]{64}"$/, label);
          assert.equal(fast.headers.etag, `"${(JSON.parse(fast.text) as Target).etag}"`);
        } else if (status === 304) {
          assert.equal(fast.headers.etag, `"${etag}"`, label);
          assert.match(fast.headers['fleetwave-poll-after'] ?? '', /^\d+$/, label);
        } else {
          assert.ok((JSON.parse(fast.text) as ErrorBody).error.code, label);
        }
      }
      // If-None-Match on two lines: one list, as node:http joins them.
      for (const pair of [
        ['"x"', `"${etag}"`],
        [`"${etag}"`, '"x"'],
      ]) {
        const lines = pair.map((v): [string, string] => ['If-None-Match', v]);
        const twoLines = await once(reqOf(post(own, { extra: lines })));
        assert.deepEqual([twoLines.status, twoLines.by], [304, 'agent'], pair.join());
        const joined = post(own, { ifNoneMatch: pair.join(', ') });
        assertSame(twoLines, await injected(server.app, joined), 'two lines');
      }
      const echoed = await once(reqOf(post(own, { extra: [['X-Request-Id', 'diff-id-2']] })));
      assert.equal(echoed.headers['x-request-id'], 'diff-id-2');
    });

    const post30 = (token: string, tag: string): AgentCall => ({
      method: 'POST',
      url: '/v1/checkin?wait=30',
      auth: bearer(token),
      ifNoneMatch: `"${tag}"`,
      body: json({ id: 'diff-a', labels: LINUX_PROD }),
    });

    it('429 with Retry-After past maxWaiters, both ways', async () => {
      const held = await Promise.all([Raw.open(port), Raw.open(port)]);
      try {
        const wait = post30(a, etag);
        for (const raw of held) await raw.write(bytesOf(reqOf(wait)));
        await until(() => server.app.reconciler.longpoll.size === 2, 'two held');
        const fast = await compare(wait, '429');
        assert.equal(fast.status, 429);
        assert.equal((JSON.parse(fast.text) as ErrorBody).error.code, 'TOO_MANY_WAITERS');
        assert.match(fast.headers['retry-after'] ?? '', /^[1-9]\d*$/);
      } finally {
        for (const raw of held) raw.destroy();
      }
      await until(() => server.app.reconciler.longpoll.size === 0, 'released on close');
    });

    it('generated check-ins get the same answers both ways (fast-check)', async () => {
      const fcToken = await enroll(server.url, 'diff-fc');
      const fcEtag = (await targetOf(fcToken, 'diff-fc')).etag;
      const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/);
      const labelKey = fc.oneof(
        fc.constantFrom(
          'env',
          'os',
          'arch',
          'region',
          'team',
          'bad key!',
          'a/b',
          '',
          'k'.repeat(64),
        ),
        name,
      );
      const labelValue = fc.oneof(
        fc.constantFrom('prod', 'staging', 'linux', 'windows', 'amd64', 'us-east-1', '', 'ü', '-x'),
        name,
        fc.string({ maxLength: 8 }),
      );
      const labels = fc.oneof(
        { arbitrary: fc.constant(LINUX_PROD), weight: 3 },
        { arbitrary: fc.dictionary(labelKey, labelValue, { maxKeys: 6 }), weight: 3 },
        { arbitrary: fc.anything(), weight: 1 },
      );
      const body = fc
        .record(
          {
            id: fc.oneof(
              { arbitrary: fc.constant('diff-fc'), weight: 6 },
              { arbitrary: fc.constantFrom('diff-a', '', 'x y'), weight: 1 },
            ),
            labels,
            current: fc.oneof(
              fc.record(
                {
                  etag: fc.oneof(fc.constant(fcEtag), fc.string({ maxLength: 10 })),
                  version: fc.constantFrom('2.4.0', ''),
                },
                { requiredKeys: [] },
              ),
              fc.anything(),
            ),
            health: fc.oneof(
              fc.record({ status: fc.constantFrom('ok', 'degraded', 'failed', 'sick') }),
              fc.anything(),
            ),
            extra: fc.anything(),
          },
          { requiredKeys: ['labels'] },
        )
        .map((v) => json(v))
        // Keys fastify's parser refuses (__proto__, constructor): tested on their own below.
        .filter((text) => !/"(?:__proto__|constructor)"/.test(text));
      const query = fc.constantFrom('', '?wait=0', '?wait=', '?wait=100000', '?wait=x');
      const inm = fc.constantFrom(undefined, `"${fcEtag}"`, '"nope"', '*', `W/"${fcEtag}"`);
      const auth = fc.constantFrom(bearer(fcToken), bearer(fcToken), bearer(a), 'Bearer x');
      let fastAnswered = 0;
      await fc.assert(
        fc.asyncProperty(body, query, inm, auth, async (text, q, tag, authorization) => {
          const call: AgentCall = {
            method: 'POST',
            url: `/v1/checkin${q}`,
            auth: authorization,
            body: text,
            ...(tag === undefined ? {} : { ifNoneMatch: tag }),
          };
          const fast = await once(reqOf(call));
          assert.equal(fast.by, q === '?wait=x' ? 'fastify' : 'agent', fast.head);
          if (fast.by === 'agent') fastAnswered++;
          assert.ok([200, 304, 400, 401, 403, 422].includes(fast.status), fast.text);
          assertSame(fast, await injected(server.app, call), `${q} ${tag} ${text}`);
        }),
        { numRuns: 100 },
      );
      assert.ok(fastAnswered >= 50, `only ${fastAnswered} of 100 took the agent routes`);
    });

    it('malformed JSON and poisoned keys get the same 400 message as fastify', async () => {
      for (const text of [
        '{"id": "diff-a", "labels": {',
        '{"id":"diff-a","labels":{},"__proto__":{"x":1}}',
        '{"id":"diff-a","labels":{},"constructor":{"prototype":{"x":1}}}',
        // Escaped spellings of the same keys: JSON.parse alone would take them.
        '{"id":"diff-a","labels":{},"\\u005f_proto__":{"x":1}}',
        '{"id":"diff-a","labels":{},"\\u0063onstructor":{"prototype":{"x":1}}}',
        '\ufeff{"id":"diff-a","labels":{},"__proto__":{"x":1}}',
      ]) {
        const call: AgentCall = {
          method: 'POST',
          url: '/v1/checkin',
          auth: bearer(a),
          body: text,
        };
        assert.equal((await compare(call, text)).status, 400, text);
      }
    });

    it('an agent id over 100 characters reads its target the same way both ways', async () => {
      const id = `long-${'x'.repeat(120)}`;
      const token = await enroll(server.url, id);
      const fast = await compare(
        { method: 'GET', url: `/v1/agents/${id}/target`, auth: bearer(token) },
        'long id',
      );
      assert.equal(fast.status, 200);
    });
  });

  describe('fastify hooks', () => {
    // agent-http.ts answers the agent routes without fastify's request lifecycle, doing itself
    // what these hooks do. A hook added for every request would silently skip agent traffic:
    // this list makes it fail here instead, pointing at agent-http.ts.
    it('every request-lifecycle hook of the app is one agent-http.ts mirrors', () => {
      const app = server.app as unknown as Record<symbol, Record<string, unknown[]>>;
      const kHooks = Object.getOwnPropertySymbols(app).find(
        (s) => s.description === 'fastify.hooks',
      );
      assert.ok(kHooks, "fastify's hooks are not where this test looks: update it");
      const lifecycle = [
        'onRequest',
        'preParsing',
        'preValidation',
        'preHandler',
        'preSerialization',
        'onSend',
        'onResponse',
        'onError',
        'onTimeout',
        'onRequestAbort',
      ];
      const counts = Object.fromEntries(
        lifecycle.map((name) => [name, app[kHooks]![name]?.length ?? 0]),
      );
      assert.deepEqual(
        counts,
        { ...Object.fromEntries(lifecycle.map((n) => [n, 0])), onRequest: 1, onResponse: 1 },
        'a hook for every request was added or removed: do the same in reconciler/agent-http.ts, then update this test',
      );
    });
  });

  describe('response heads, from node:http for both kinds of routes', () => {
    it('x-request-id, Date and keep-alive on an agent route and on a fastify route', async () => {
      const token = await enroll(server.url, 'who-1');
      const agent = await once(checkinReq(token, { id: 'who-1', labels: LINUX_PROD }));
      const other = await once({ url: '/healthz' });
      assert.deepEqual(
        [agent.status, agent.by, other.status, other.by],
        [200, 'agent', 200, 'fastify'],
      );
      for (const res of [agent, other]) {
        assert.match(res.head, /\r\nx-request-id: req-[0-9a-z]+\r\n/);
        assert.match(res.head, /\r\nDate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/);
        assert.match(res.head, /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=72(?:\r\n|$)/);
        assert.ok(Math.abs(Date.parse(res.headers.date!) - Date.now()) < 5000, res.headers.date);
      }
      assert.notEqual(agent.headers['x-request-id'], other.headers['x-request-id'], 'one sequence');
    });
  });

  describe('logs and metrics', () => {
    let token: string;
    let etag: string;
    const body = { id: 'log-1', labels: LINUX_PROD };
    before(async () => {
      token = await enroll(server.url, 'log-1');
      etag = (await targetOf(token, 'log-1')).etag;
    });

    it('one log line per request, at debug for 2xx/3xx and warn for 4xx', async () => {
      const cases: Array<[string, Req, number, number]> = [
        ['log-200', checkinReq(token, body, { extra: [['X-Request-Id', 'log-200']] }), 200, 20],
        [
          'log-304',
          checkinReq(token, body, {
            url: '/v1/checkin?wait=0',
            ifNoneMatch: `"${etag}"`,
            extra: [['X-Request-Id', 'log-304']],
          }),
          304,
          20,
        ],
        ['log-401', checkinReq('nope', body, { extra: [['X-Request-Id', 'log-401']] }), 401, 40],
        [
          'log-404',
          reqOf({
            method: 'GET',
            url: '/v1/agents/log-none/target',
            auth: bearer(issueAgentToken(server.app.reconciler.tokenKey, 'log-none')),
            extra: [['X-Request-Id', 'log-404']],
          }),
          404,
          40,
        ],
      ];
      for (const [id, req, status, level] of cases) {
        const res = await once(req);
        assert.deepEqual([res.status, res.by], [status, 'agent']);
        assert.equal(res.headers['x-request-id'], id, 'the client’s request id is echoed');
        const mine = lines().filter((l) => l.reqId === id);
        assert.equal(mine.length, 1, `one line for ${id}: ${JSON.stringify(mine)}`);
        const line = mine[0]!;
        assert.equal(line.msg, 'request');
        assert.equal(line.level, level, id);
        assert.equal(line.status, status);
        assert.equal(line.method, req.method);
        assert.equal(line.url, req.url);
        assert.equal(typeof line.ms, 'number');
        assert.ok(line.ms! >= 0 && line.ms! < 5000);
      }
      // Without one, the id is generated, and it is the one logged.
      const res = await once(checkinReq(token, body));
      const id = res.headers['x-request-id']!;
      assert.match(id, /^req-[0-9a-z]+$/);
      assert.equal(lines().filter((l) => l.reqId === id).length, 1);
    });

    it('check-ins count in the check-in metrics', async () => {
      const read = async () => (await server.app.inject({ url: '/metrics' })).body;
      const count = (text: string) => metric(text, 'fleetwave_checkin_duration_seconds_count') ?? 0;
      const notModified = (text: string) =>
        metric(text, 'fleetwave_checkins_total', { result: 'not_modified' }) ?? 0;
      const targets = (text: string) =>
        metric(text, 'fleetwave_checkins_total', { result: 'target' }) ?? 0;
      const before = await read();
      for (let i = 0; i < 3; i++) {
        const res = await once(checkinReq(token, body, { ifNoneMatch: `"${etag}"` }));
        assert.deepEqual([res.status, res.by], [304, 'agent']);
      }
      const full = await once(checkinReq(token, body));
      assert.deepEqual([full.status, full.by], [200, 'agent']);
      const after = await read();
      assert.equal(count(after) - count(before), 4);
      assert.equal(notModified(after) - notModified(before), 3);
      assert.equal(targets(after) - targets(before), 1);
    });
  });
});
