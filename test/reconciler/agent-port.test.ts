// The agent port (`fleetwave serve --agent-port N`, reconciler/agent-port.ts) on the real
// server on loopback, raw sockets (the bytes on the wire are the point): every ordinary agent
// request gets the main port's answer (differential), long-polls are held and released, every
// unusual shape is refused in the error shape and its connection closed (nothing after it is
// read), pipelining and tiny writes work, slow requests get 408, both ports share one
// --max-connections, and shutdown answers held long-polls. The head parser alone:
// agent-port/parse.test.ts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { initialRolloutState } from '../../core/rollout/state.ts';
import { issueAgentToken } from '../../reconciler/auth.ts';
import { SERVE_HELP, readServeConfig } from '../../reconciler/config.ts';
import { until } from '../helpers/until.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  enroll,
  startServer,
  testConfig,
} from './helpers.ts';
import {
  Raw,
  agentCalls,
  assertSame,
  bearer,
  bytesOf,
  checkinReq,
  httpFixture,
  json,
  reqOf,
  within,
  type AgentCall,
  type ErrorBody,
  type HttpFixture,
  type Reply,
  type Req,
  type Target,
} from './raw-http.ts';

/** Writes `bytes` (a write the server cut short is fine: it may refuse before the end). */
async function send(raw: Raw, bytes: Buffer | string): Promise<void> {
  await raw.write(bytes).catch(() => undefined);
}

/** One request on a fresh connection to `port`: its answer, and whether the server closed. */
async function onceAt(
  port: number,
  r: Req | Buffer | string,
  ms = 5000,
): Promise<Reply & { closed: boolean }> {
  const raw = await Raw.open(port);
  try {
    await send(raw, typeof r === 'string' || Buffer.isBuffer(r) ? r : bytesOf(r));
    const reply = await raw.next(ms);
    const closed = await raw.closedWithin(reply.headers.connection === 'close' ? 2000 : 100);
    return { ...reply, closed };
  } finally {
    raw.destroy();
  }
}

const errorOf = (reply: Reply): ErrorBody['error'] => (JSON.parse(reply.text) as ErrorBody).error;

describe('the agent port', () => {
  let http: HttpFixture;
  let server: HttpFixture['server'];
  let main: number;
  let agent: number;

  before(async () => {
    http = await httpFixture({ agentPort: 0, maxWaiters: 10, bodyLimit: 32 * 1024 });
    ({ server, port: main } = http);
    agent = server.app.agentPort!.port;
    assert.ok(agent > 0 && agent !== main);
  });
  after(async () => {
    await http?.close();
  });

  describe('ordinary requests: the main port’s answers (differential)', () => {
    let a: string;
    let b: string;
    let etag: string;
    before(async () => {
      a = await enroll(server.url, 'port-a');
      b = await enroll(server.url, 'port-b');
      etag = (await http.targetOf(a, 'port-a')).etag;
    });

    it('enroll, check-ins, target reads and errors: same status, body and headers', async () => {
      const own = { id: 'port-a', labels: LINUX_PROD };
      const { post, get, enrolling } = agentCalls(a, ENROLL_TOKEN);
      const stranger = issueAgentToken(server.app.reconciler.tokenKey, 'port-never');
      const cases: Array<[string, AgentCall, number]> = [
        ['enroll', enrolling({ id: 'port-e', labels: LINUX_PROD }), 200],
        ['enroll, bad token', enrolling({ id: 'port-e', labels: {} }, 'Bearer nope'), 401],
        ['enroll, admin token', enrolling({ id: 'port-e', labels: {} }, bearer(ADMIN_TOKEN)), 401],
        ['enroll, bad id', enrolling({ id: '-x', labels: {} }), 400],
        ['check-in 200', post(own), 200],
        ['check-in 304 (If-None-Match)', post(own, { ifNoneMatch: `"${etag}"` }), 304],
        ['check-in 304 (current)', post({ ...own, current: { etag, version: '2.4.0' } }), 304],
        ['wait=0', post(own, { url: '/v1/checkin?wait=0', ifNoneMatch: `"${etag}"` }), 304],
        ['wait= (empty)', post(own, { url: '/v1/checkin?wait=', ifNoneMatch: `"${etag}"` }), 304],
        ['wait out of range', post(own, { url: '/v1/checkin?wait=100000' }), 400],
        ['wait not a number', post(own, { url: '/v1/checkin?wait=soon' }), 400],
        ['charset', post(own, { contentType: 'application/json; charset=utf-8' }), 200],
        ['request id', post(own, { extra: [['X-Request-Id', 'port-id-1']] }), 200],
        ['wrong token', post(own, { auth: 'Bearer garbage' }), 401],
        ['no token', { ...post(own), auth: undefined } as AgentCall, 401],
        ["another agent's id", post(own, { auth: bearer(b) }), 403],
        ['bad JSON', post('{"id": "port-a", "labels": {'), 400],
        ['__proto__', post('{"id":"port-a","labels":{},"__proto__":{"x":1}}'), 400],
        ['escaped __proto__', post('{"id":"port-a","labels":{},"\\u005f_proto__":{"x":1}}'), 400],
        ['empty body', post(''), 400],
        ['schema', post({ ...own, surprise: true }), 400],
        ['own target', get('port-a'), 200],
        ['own target, etag', get('port-a', { ifNoneMatch: `"${etag}"` }), 304],
        ["another's target", get('port-b'), 403],
        ['unknown agent', get('port-never', { auth: bearer(stranger) }), 404],
        ['target, bad token', get('port-a', { auth: 'Bearer x.y.z' }), 401],
        ['unknown path', { method: 'POST', url: '/v1/nope?x=1', body: '{}' }, 404],
        ['unknown GET path', { method: 'GET', url: '/v1/agents/port-a/targets' }, 404],
        ['a GET of a POST route', { method: 'GET', url: '/v1/checkin' }, 404],
        ['oversized', post({ ...own, pad: 'x'.repeat(40_000) }), 413],
      ];
      for (const [label, call, status] of cases) {
        const theirs = await http.once(reqOf(call));
        const ours = await onceAt(agent, reqOf(call));
        assert.equal(ours.status, status, `${label}: ${ours.text}`);
        assertSame(ours, theirs, label);
        if (call.extra === undefined) assert.match(ours.headers['x-request-id'] ?? '', /^req-/);
        else assert.equal(ours.headers['x-request-id'], 'port-id-1');
        // A request read completely keeps its connection; one too large to read does not.
        assert.equal(ours.closed, status === 413, `${label}: closed`);
      }
    });

    it('a held check-in is released by a change, on both ports alike', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const body = { id: 'port-a', labels: LINUX_PROD };
      const waiting = checkinReq(a, body, {
        url: '/v1/checkin?wait=30',
        ifNoneMatch: `"${etag}"`,
      });
      const [onMain, onAgent] = await Promise.all([Raw.open(main), Raw.open(agent)]);
      try {
        await onMain.write(bytesOf(waiting));
        await onAgent.write(bytesOf(waiting));
        await until(() => longpoll.size === 2, 'both held');
        assert.equal(await onAgent.maybeNext(300), undefined, 'held, not answered');
        const base = await http.repo.read('fleet/config/00-base.yaml');
        const changed = await http.repo.commit(
          { 'fleet/config/00-base.yaml': base.replace('interval: 30s', 'interval: 25s') },
          'collect every 25s',
        );
        await server.app.reconciler.sync.sync();
        http.repo.writeState(initialRolloutState(changed), 'test: make the change stable');
        await server.app.reconciler.sync.sync();
        const [theirs, ours] = await Promise.all([onMain.next(), onAgent.next()]);
        assert.equal(ours.status, 200);
        assertSame(ours, theirs, 'released');
        const target = JSON.parse(ours.text) as Target;
        assert.equal(target.revision, changed);
        assert.notEqual(target.etag, etag);
        assert.equal(longpoll.size, 0);
        etag = target.etag;
        // The connection serves the next check-in.
        await onAgent.write(bytesOf(checkinReq(a, body, { ifNoneMatch: `"${etag}"` })));
        assert.equal((await onAgent.next()).status, 304);
      } finally {
        onMain.destroy();
        onAgent.destroy();
      }
      await until(() => longpoll.size === 0, 'none held');
    });

    it('a held check-in whose client leaves is no longer a waiter', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const raw = await Raw.open(agent);
      await raw.write(
        bytesOf(
          checkinReq(
            a,
            { id: 'port-a', labels: LINUX_PROD },
            { url: '/v1/checkin?wait=30', ifNoneMatch: `"${etag}"` },
          ),
        ),
      );
      await until(() => longpoll.size === 1, 'held');
      raw.destroy();
      await until(() => longpoll.size === 0, 'removed when the socket closed');
    });

    it('one log line per request at the main port’s levels, with the request id', async () => {
      const body = { id: 'port-a', labels: LINUX_PROD };
      const cases: Array<[string, Req, number, number]> = [
        [
          'port-log-200',
          checkinReq(a, body, { extra: [['X-Request-Id', 'port-log-200']] }),
          200,
          20,
        ],
        [
          'port-log-401',
          checkinReq('no', body, { extra: [['X-Request-Id', 'port-log-401']] }),
          401,
          40,
        ],
        ['port-log-404', { url: '/metrics', headers: [['X-Request-Id', 'port-log-404']] }, 404, 40],
      ];
      for (const [id, req, status, level] of cases) {
        const res = await onceAt(agent, req);
        assert.equal(res.status, status, res.text);
        assert.equal(res.headers['x-request-id'], id);
        const mine = http.lines().filter((l) => l.reqId === id);
        assert.equal(mine.length, 1, `one line for ${id}: ${JSON.stringify(mine)}`);
        assert.deepEqual(
          [mine[0]!.msg, mine[0]!.level, mine[0]!.status, mine[0]!.url],
          ['request', level, status, req.url],
        );
      }
      // Generated ids come from the main port's sequence: never the same on both.
      const one = await onceAt(agent, checkinReq(a, body));
      const two = await http.once(checkinReq(a, body));
      const ids = [one, two].map((r) => r.headers['x-request-id']!);
      for (const id of ids) assert.match(id, /^req-[0-9a-z]+$/);
      assert.notEqual(ids[0], ids[1]);
    });

    it('serves only the agent routes: the rest of the API is 404 there', async () => {
      for (const url of ['/healthz', '/readyz', '/metrics', '/v1/status', '/']) {
        const res = await onceAt(agent, { url });
        assert.deepEqual([res.status, errorOf(res).code, res.closed], [404, 'NOT_FOUND', false]);
        assert.equal(errorOf(res).message, `no route GET ${url}`);
      }
    });
  });

  describe('refusals: the error shape, then the connection closes', () => {
    let token: string;
    let good: Buffer;
    const text = json({ id: 'port-r', labels: LINUX_PROD });
    before(async () => {
      token = await enroll(server.url, 'port-r');
      good = bytesOf(checkinReq(token, { id: 'port-r', labels: LINUX_PROD }));
    });
    const checkin = (headers: Array<[string, string]>, more: Partial<Req> = {}): Req => ({
      method: 'POST',
      url: '/v1/checkin',
      headers: [['Authorization', bearer(token)], ['Content-Type', 'application/json'], ...headers],
      body: text,
      ...more,
    });
    const head = (lines: string): string =>
      `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n` +
      `Content-Type: application/json\r\n${lines}`;

    it('refuses every unusual shape with its 4xx, and reads nothing after it', async () => {
      const cases: Array<[string, () => Req | string, number]> = [
        ['HTTP/1.0', () => checkin([], { version: 'HTTP/1.0' }), 400],
        ['HTTP/1.2', () => checkin([], { version: 'HTTP/1.2' }), 400],
        ['HTTP/2.0', () => checkin([], { version: 'HTTP/2.0' }), 400],
        [
          'Transfer-Encoding: chunked',
          () =>
            head(
              `Transfer-Encoding: chunked\r\n\r\n${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`,
            ),
          400,
        ],
        [
          'Transfer-Encoding and Content-Length',
          () => checkin([['Transfer-Encoding', 'identity']]),
          400,
        ],
        ['Expect', () => checkin([['Expect', '100-continue']]), 417],
        ['no Content-Length', () => checkin([], { length: false }), 411],
        [
          'two Content-Lengths',
          () =>
            checkin([
              ['Content-Length', String(text.length)],
              ['Content-Length', String(text.length)],
            ]),
          400,
        ],
        ['Content-Length not a number', () => head(`Content-Length: 1e2\r\n\r\n${text}`), 400],
        [
          'Content-Length signed',
          () => head(`Content-Length: +${text.length}\r\n\r\n${text}`),
          400,
        ],
        ['Content-Length empty', () => head(`Content-Length: \r\n\r\n${text}`), 400],
        [
          'a body on GET',
          () => ({ method: 'GET', url: '/v1/agents/port-r/target', body: 'x' }),
          400,
        ],
        ['obs-fold', () => checkin([['X-Folded', 'a\r\n b']]), 400],
        ['bare LF', () => head(`Content-Length: ${text.length}\n\r\n${text}`), 400],
        ['bare LF ending the head', () => `GET /v1/checkin HTTP/1.1\nHost: x\n\n`, 400],
        ['bare CR', () => checkin([['X-Odd', 'a\rb']]), 400],
        ['NUL in a value', () => checkin([['X-Odd', 'a\u0000b']]), 400],
        ['control character', () => checkin([['X-Odd', 'a\u0001b']]), 400],
        ['non-ASCII in a value', () => checkin([['X-Odd', 'caf\u00e9']]), 400],
        ['space in a header name', () => checkin([['X Odd', 'x']]), 400],
        ['space before the colon', () => checkin([['X-Odd ', 'x']]), 400],
        [
          'empty header name',
          () => head(`: x\r\nContent-Length: ${text.length}\r\n\r\n${text}`),
          400,
        ],
        ['no colon', () => head(`Oops\r\nContent-Length: ${text.length}\r\n\r\n${text}`), 400],
        ['head over 8 KiB', () => checkin([['X-Pad', 'x'.repeat(9000)]]), 431],
        ['head over 8 KiB, unfinished', () => head(`X-Pad: ${'x'.repeat(9000)}`), 431],
        ['body over --body-limit', () => checkin([], { body: 'x'.repeat(40_000) }), 413],
        ['Content-Encoding gzip', () => checkin([['Content-Encoding', 'gzip']]), 415],
        ['Content-Encoding identity', () => checkin([['Content-Encoding', 'identity']]), 415],
        [
          'text/plain',
          () => ({
            ...checkin([]),
            headers: [
              ['Authorization', bearer(token)],
              ['Content-Type', 'text/plain'],
            ],
          }),
          415,
        ],
        [
          'no Content-Type',
          () => ({ ...checkin([]), headers: [['Authorization', bearer(token)]] }),
          415,
        ],
        ['no Host', () => checkin([], { host: false }), 400],
        ['two Hosts', () => checkin([['Host', 'y']]), 400],
        ['HEAD', () => ({ method: 'HEAD', url: '/v1/agents/port-r/target' }), 400],
        ['PUT', () => checkin([], { method: 'PUT' }), 400],
        ['absolute-form', () => checkin([], { url: 'http://x/v1/checkin' }), 400],
        ['asterisk-form', () => ({ method: 'GET', url: '*' }), 400],
        [
          'Connection: upgrade',
          () =>
            checkin([
              ['Connection', 'Upgrade'],
              ['Upgrade', 'h2c'],
            ]),
          400,
        ],
        ['Upgrade', () => checkin([['Upgrade', 'websocket']]), 400],
        ['request line with two spaces', () => `GET  /v1/x HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
        [
          'garbage',
          () => '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
          400,
        ],
      ];
      for (const [label, make, status] of cases) {
        const r = make();
        const bytes = typeof r === 'string' ? Buffer.from(r, 'latin1') : bytesOf(r);
        const raw = await Raw.open(agent);
        try {
          // An ordinary request right behind it, in the same write: never answered.
          await send(raw, Buffer.concat([bytes, good]));
          const res = await raw.next();
          assert.equal(res.status, status, `${label}: ${res.text}`);
          assert.ok(errorOf(res).code, label);
          assert.equal(typeof errorOf(res).message, 'string', label);
          assert.equal(res.headers.connection, 'close', label);
          assert.match(res.headers['x-request-id'] ?? '', /^req-/, label);
          assert.ok(await raw.closedWithin(2000), `${label}: closed`);
          assert.equal(await raw.maybeNext(0), undefined, `${label}: nothing after the refusal`);
        } finally {
          raw.destroy();
        }
      }
      assert.ok(server.app.agentPort!.size <= 1, 'no connection left behind');
    });

    it('refuses with the main port’s words where the main port refuses too', async () => {
      const cases: Array<[string, Req]> = [
        ['gzip', checkin([['Content-Encoding', 'gzip']])],
        ['too large', checkin([], { body: 'x'.repeat(20_000) })],
        ['no Host', checkin([], { host: false })],
        ['no Content-Type', { ...checkin([]), headers: [['Authorization', bearer(token)]] }],
      ];
      for (const [label, r] of cases) {
        const ours = await onceAt(agent, r);
        const theirs = await http.once(r);
        assert.deepEqual([ours.status, ours.text], [theirs.status, theirs.text], label);
      }
    });

    it('answers pipelined requests in order, and a request sent a byte at a time', async () => {
      const raw = await Raw.open(agent);
      try {
        const ids = ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-4'];
        const body = { id: 'port-r', labels: LINUX_PROD };
        const requests = [
          checkinReq(token, body, { extra: [['X-Request-Id', ids[0]!]] }),
          {
            method: 'GET',
            url: '/v1/agents/port-r/target',
            headers: [
              ['Authorization', bearer(token)],
              ['X-Request-Id', ids[1]!],
            ],
          },
          {
            method: 'POST',
            url: '/v1/nope',
            body: '{"a":1}',
            headers: [['X-Request-Id', ids[2]!]],
          },
          checkinReq('bad', body, { extra: [['X-Request-Id', ids[3]!]] }),
        ] satisfies Req[];
        await raw.write(Buffer.concat(requests.map((r) => bytesOf(r))));
        const answers = [await raw.next(), await raw.next(), await raw.next(), await raw.next()];
        assert.deepEqual(
          answers.map((r) => [r.headers['x-request-id'], r.status]),
          [
            [ids[0], 200],
            [ids[1], 200],
            [ids[2], 404],
            [ids[3], 401],
          ],
        );
        const bytes = bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'tiny']] }));
        for (let i = 0; i < bytes.length; i++) await raw.write(bytes.subarray(i, i + 1));
        const tiny = await raw.next();
        assert.deepEqual([tiny.status, tiny.headers['x-request-id']], [200, 'tiny']);
        assert.equal(raw.closed, false);
      } finally {
        raw.destroy();
      }
    });

    it('reads a body larger than it allocates at once, arriving in pieces, as the main port does', async () => {
      // 24 KB, past BODY_AT_ONCE (16 KiB) and within --body-limit (32 KiB here): the buffer
      // grows as the bytes arrive (a two-byte character split across writes included).
      const message = 'é'.repeat(12_000);
      const bytes = bytesOf(
        checkinReq(token, { id: 'port-r', labels: LINUX_PROD, health: { status: 'ok', message } }),
      );
      const answers: Reply[] = [];
      for (const port of [agent, main]) {
        const raw = await Raw.open(port);
        try {
          for (let i = 0; i < bytes.length; i += 999) await raw.write(bytes.subarray(i, i + 999));
          answers.push(await raw.next());
          assert.equal(answers.at(-1)!.status, 200, answers.at(-1)!.text);
          assert.equal(server.app.reconciler.agents.get('port-r')?.health?.message, message);
          // Forgotten, so the next port's check-in is read anew, not as the same report again.
          server.app.reconciler.agents.forget('port-r');
        } finally {
          raw.destroy();
        }
      }
      assert.deepEqual(
        answers.map((r) => r.status),
        [200, 200],
      );
      assert.equal(answers[0]!.text, answers[1]!.text);
    });

    it('never fails on mutated or random bytes, and keeps serving (fast-check)', async () => {
      const base = bytesOf(checkinReq(token, { id: 'port-r', labels: LINUX_PROD }));
      const mutated = fc
        .array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        })
        .map((edits) => {
          const copy = Buffer.from(base);
          for (const [at, byte] of edits) copy[at] = byte;
          return copy;
        });
      const random = fc.uint8Array({ minLength: 1, maxLength: 600 }).map((a) => Buffer.from(a));
      const crlf = fc
        .array(
          fc.constantFrom(
            'GET ',
            'POST ',
            '/v1/checkin',
            ' HTTP/1.1',
            '\r\n',
            '\n',
            ':',
            'Host: x',
            'Content-Length: 3',
            'abc',
            ' ',
          ),
          { maxLength: 20 },
        )
        .map((parts) => Buffer.from(`${parts.join('')}\r\n\r\n`, 'latin1'));
      await fc.assert(
        fc.asyncProperty(fc.oneof(mutated, random, crlf), async (bytes) => {
          const raw = await Raw.open(agent);
          try {
            await send(raw, bytes);
            const { replies } = await raw.drain(150, 3000);
            for (const reply of replies) {
              assert.ok(reply.status < 500, `${reply.status} ${reply.text}`);
              if (reply.status >= 400) assert.ok(errorOf(reply).code);
            }
          } finally {
            raw.destroy();
          }
        }),
        { numRuns: 150 },
      );
      const after = await onceAt(agent, base);
      assert.equal(after.status, 200);
    });
  });
});

describe('the agent port: timeouts, the shared connection cap, shutdown', () => {
  let http: HttpFixture;
  let agent: number;
  let token: string;
  const body = { id: 'port-t', labels: LINUX_PROD };
  before(async () => {
    http = await httpFixture({ agentPort: 0, requestTimeoutSeconds: 1, maxConnections: 4 });
    agent = http.server.app.agentPort!.port;
    token = issueAgentToken(http.server.app.reconciler.tokenKey, 'port-t');
  });
  after(async () => {
    await http?.close();
  });

  it('answers half a head or half a body 408 after --request-timeout, and closes', async () => {
    const text = json(body);
    for (const [what, bytes] of [
      [
        'half a head',
        `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n`,
      ],
      [
        'half a body',
        `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${text.length}\r\n\r\n${text.slice(0, 10)}`,
      ],
    ] as const) {
      const raw = await Raw.open(agent);
      try {
        const started = Date.now();
        await raw.write(bytes);
        const res = await raw.next(5000);
        assert.equal(res.status, 408, what);
        assert.equal(errorOf(res).code, 'REQUEST_TIMEOUT', what);
        assert.ok(Date.now() - started >= 900, `${what}: not before the timeout`);
        assert.ok(await raw.closedWithin(2500), `${what}: closed`);
      } finally {
        raw.destroy();
      }
    }
  });

  it('does not time a held long-poll', async () => {
    const raw = await Raw.open(agent);
    try {
      await raw.write(bytesOf(checkinReq(token, body)));
      const etag = (JSON.parse((await raw.next()).text) as Target).etag;
      await raw.write(
        bytesOf(checkinReq(token, body, { url: '/v1/checkin?wait=3', ifNoneMatch: `"${etag}"` })),
      );
      const started = Date.now();
      const res = await raw.next(6000);
      assert.equal(res.status, 304);
      // The wait granted for 3 s is 2 or 3 s (jitter); --request-timeout is 1 s here.
      assert.ok(Date.now() - started >= 1800, 'answered when its wait ended, not timed out');
      assert.equal(raw.closed, false);
    } finally {
      raw.destroy();
    }
  });

  it('counts connections of both ports against one --max-connections', async () => {
    const held: Raw[] = [];
    const served = async (port: number): Promise<Reply> => {
      const raw = await Raw.open(port);
      held.push(raw);
      await raw.write(bytesOf({ url: port === agent ? '/nope' : '/healthz' }));
      return raw.next();
    };
    try {
      // Two on each port fill the cap of 4.
      for (const port of [http.port, agent, http.port, agent]) {
        assert.notEqual((await served(port)).status, 503);
      }
      for (const port of [agent, http.port]) {
        const refused = await served(port);
        assert.equal(refused.status, 503, `port ${port}`);
        assert.equal(errorOf(refused).code, 'TOO_MANY_CONNECTIONS');
        assert.ok(await held.at(-1)!.closedWithin(2000));
      }
      // One agent-port connection goes away: the main port serves a new one again.
      held.splice(1, 1)[0]!.destroy();
      await until(async () => {
        const res = await onceAt(http.port, {
          url: '/healthz',
          headers: [['Connection', 'close']],
        });
        return res.status === 200;
      }, 'served again');
    } finally {
      for (const raw of held) raw.destroy();
    }
  });
});

describe('the agent port: shutdown and configuration', () => {
  it('close() answers its held long-polls 304 with connection: close, and resolves', async () => {
    const repo = await FleetRepo.create();
    const server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, agentPort: 0 }),
    );
    let closing: Promise<void> | undefined;
    const clients: Raw[] = [];
    try {
      const port = server.app.agentPort!.port;
      const token = issueAgentToken(server.app.reconciler.tokenKey, 'down-p');
      const body = { id: 'down-p', labels: LINUX_PROD };
      const idle = await Raw.open(port);
      clients.push(idle);
      await idle.write(bytesOf(checkinReq(token, body)));
      const etag = (JSON.parse((await idle.next()).text) as Target).etag;
      const held = await Raw.open(port);
      clients.push(held);
      await held.write(
        bytesOf(checkinReq(token, body, { url: '/v1/checkin?wait=30', ifNoneMatch: `"${etag}"` })),
      );
      await until(() => server.app.reconciler.longpoll.size === 1, 'held');
      closing = server.close();
      await within(closing, 5000, 'close()');
      const answer = await held.next(1000);
      assert.deepEqual(
        [answer.status, answer.headers.etag, answer.headers.connection],
        [304, `"${etag}"`, 'close'],
      );
      assert.ok(await held.closedWithin(1000), 'the held connection closed after its answer');
      assert.ok(await idle.closedWithin(1000), 'the idle connection closed');
      const late = await Raw.open(port).catch(() => undefined);
      assert.equal(late, undefined, 'no longer listening');
    } finally {
      for (const c of clients) c.destroy();
      await (closing ?? server.close());
      await repo.cleanup();
    }
  });

  it('--agent-port is read, checked and documented', () => {
    const base = ['--repo', '/r', '--insecure-local-demo'];
    assert.equal(readServeConfig(base, {}, '/')!.agentPort, undefined);
    assert.equal(readServeConfig([...base, '--agent-port', '8081'], {}, '/')!.agentPort, 8081);
    assert.throws(() => readServeConfig([...base, '--agent-port', '8080'], {}, '/'), /differ/);
    assert.throws(() => readServeConfig([...base, '--agent-port', 'x'], {}, '/'), /--agent-port/);
    assert.match(SERVE_HELP, /--agent-port PORT/);
  });
});
