// Long-polls on the real server, as agents hold them (raw sockets): a held check-in is a
// waiter until its client leaves, is answered 200 when its target changes and 304 when the
// wait ends or the server drains, and shutdown answers every held one with connection: close.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { initialRolloutState } from '../../core/rollout/state.ts';
import { issueAgentToken } from '../../reconciler/auth.ts';
import { until } from '../helpers/until.ts';
import { FleetRepo, LINUX_PROD, enroll, startServer, testConfig } from './helpers.ts';
import {
  Raw,
  bearer,
  bytesOf,
  checkinReq,
  httpFixture,
  json,
  reqOf,
  within,
  type AgentCall,
  type HttpFixture,
  type Target,
} from './raw-http.ts';

describe('long-polls', () => {
  let http: HttpFixture;
  let server: HttpFixture['server'];
  let repo: HttpFixture['repo'];
  let port: number;
  const targetOf = (token: string, id: string) => http.targetOf(token, id);
  before(async () => {
    http = await httpFixture();
    ({ server, repo, port } = http);
  });
  after(async () => {
    await http?.close();
  });

  describe('held check-ins', () => {
    let token: string;
    const body = { id: 'poll-1', labels: LINUX_PROD };
    before(async () => {
      token = await enroll(server.url, 'poll-1');
    });
    const hold = async (etag: string, id = 'poll', wait = 30): Promise<Raw> => {
      const raw = await Raw.open(port);
      await raw.write(
        bytesOf(
          checkinReq(token, body, {
            url: `/v1/checkin?wait=${wait}`,
            ifNoneMatch: `"${etag}"`,
            extra: [['X-Request-Id', id]],
          }),
        ),
      );
      return raw;
    };

    it('a held check-in counts as a waiter until its client goes away', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const etag = (await targetOf(token, 'poll-1')).etag;
      const raw = await hold(etag);
      await until(() => longpoll.size === 1, 'held');
      assert.equal(await raw.maybeNext(200), undefined);
      assert.equal(longpoll.size, 1);
      raw.destroy();
      await until(() => longpoll.size === 0, 'removed when the socket closed');
    });

    it('a wait that ends is answered 304 on the same connection, which stays open', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const etag = (await targetOf(token, 'poll-1')).etag;
      const started = Date.now();
      const raw = await hold(etag, 'expired', 1);
      try {
        await until(() => longpoll.size === 1, 'held');
        const res = await raw.next(5000);
        assert.equal(res.status, 304);
        assert.equal(res.headers['x-request-id'], 'expired');
        assert.equal(res.headers.etag, `"${etag}"`);
        assert.ok(Date.now() - started >= 500, 'not before its wait');
        assert.equal(longpoll.size, 0);
        await raw.write(bytesOf(checkinReq(token, body, { ifNoneMatch: `"${etag}"` })));
        assert.equal((await raw.next()).status, 304);
      } finally {
        raw.destroy();
      }
    });

    it('drain() answers 304 with fleetwave-poll-after', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const etag = (await targetOf(token, 'poll-1')).etag;
      const raw = await hold(etag, 'drained');
      try {
        await until(() => longpoll.size === 1, 'held');
        longpoll.drain();
        const res = await raw.next();
        assert.equal(res.status, 304);
        assert.equal(res.headers.etag, `"${etag}"`);
        assert.equal(res.headers['x-request-id'], 'drained');
        assert.match(res.headers['fleetwave-poll-after'] ?? '', /^[1-9]\d*$/);
        assert.equal(longpoll.size, 0);
        // The connection is still good for the next request.
        await raw.write(bytesOf(checkinReq(token, body, { ifNoneMatch: `"${etag}"` })));
        assert.equal((await raw.next()).status, 304);
      } finally {
        raw.destroy();
      }
    });

    it('a fleet change answers the held one 200 with the new target', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const before = await targetOf(token, 'poll-1');
      const raw = await hold(before.etag, 'released');
      try {
        await until(() => longpoll.size === 1, 'held');
        const base = await repo.read('fleet/config/00-base.yaml');
        assert.match(base, /interval: 30s/);
        const changed = await repo.commit(
          { 'fleet/config/00-base.yaml': base.replace('interval: 30s', 'interval: 20s') },
          'collect every 20s',
        );
        await server.app.reconciler.sync.sync();
        repo.writeState(initialRolloutState(changed), 'test: make the change stable');
        await server.app.reconciler.sync.sync();
        const res = await raw.next();
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-request-id'], 'released');
        const target = JSON.parse(res.text) as Target & { config: { agent: { interval: string } } };
        assert.equal(target.revision, changed);
        assert.notEqual(target.etag, before.etag);
        assert.equal(res.headers.etag, `"${target.etag}"`);
        assert.equal(target.config.agent.interval, '20s');
        assert.equal(longpoll.size, 0);
      } finally {
        raw.destroy();
      }
    });
  });
});

describe('shutdown', () => {
  it('close() answers held long-polls, closes idle connections and resolves', async (t) => {
    const repo = await FleetRepo.create();
    const server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }),
    );
    let closing: Promise<void> | undefined;
    const clients: Raw[] = [];
    try {
      const port = Number(new URL(server.url).port);
      // No enrollment over undici: its idle keep-alive connection would outlive the test.
      const token = issueAgentToken(server.app.reconciler.tokenKey, 'down-1');
      const body = json({ id: 'down-1', labels: LINUX_PROD });
      const request = (more: Partial<AgentCall> = {}) =>
        bytesOf(reqOf({ method: 'POST', url: '/v1/checkin', auth: bearer(token), body, ...more }));
      const idle = await Raw.open(port);
      clients.push(idle);
      await idle.write(request());
      const first = await idle.next();
      assert.equal(first.status, 200);
      const etag = (JSON.parse(first.text) as Target).etag;
      const held = await Raw.open(port);
      clients.push(held);
      await held.write(request({ url: '/v1/checkin?wait=30', ifNoneMatch: `"${etag}"` }));
      await until(() => server.app.reconciler.longpoll.size === 1, 'held');

      closing = server.close();
      await within(closing, 5000, 'close()');
      const answer = await held.next(1000);
      assert.equal(answer.status, 304);
      assert.equal(answer.headers.etag, `"${etag}"`);
      assert.match(answer.headers['fleetwave-poll-after'] ?? '', /^\d+$/);
      assert.ok(await held.closedWithin(1000), 'the held connection was closed after its answer');
      assert.ok(await idle.closedWithin(1000), 'the idle connection was closed');
      assert.equal(await idle.maybeNext(0), undefined, 'without an answer');
      await t.test('the held answer says connection: close', () =>
        assert.equal(answer.headers.connection, 'close', answer.head),
      );
    } finally {
      for (const c of clients) c.destroy();
      await (closing ?? server.close());
      await repo.cleanup();
    }
  });
});
