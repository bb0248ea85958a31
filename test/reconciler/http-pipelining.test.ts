// Byte shapes on the real server (raw sockets): a request written a byte at a time or split
// anywhere, pipelined requests answered in order (behind a held long-poll too), Connection:
// close honoured, and a client that never reads its answers not buffered without bound.

import assert from 'node:assert/strict';
import { type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { until } from '../helpers/until.ts';
import { LINUX_PROD, enroll, metric } from './helpers.ts';
import {
  Raw,
  bearer,
  bytesOf,
  checkinReq,
  httpFixture,
  reqOf,
  sleep,
  type HttpFixture,
  type LogLine,
  type Target,
} from './raw-http.ts';

describe('byte shapes and pipelining', () => {
  let http: HttpFixture;
  let server: HttpFixture['server'];
  let port: number;
  const targetOf = (token: string, id: string) => http.targetOf(token, id);
  const lines = (): LogLine[] => http.lines();
  before(async () => {
    http = await httpFixture();
    ({ server, port } = http);
  });
  after(async () => {
    await http?.close();
  });

  describe('byte shapes', () => {
    let token: string;
    let target: Target;
    const body = { id: 'shape-1', labels: LINUX_PROD };
    before(async () => {
      token = await enroll(server.url, 'shape-1');
      target = await targetOf(token, 'shape-1');
    });

    it('a request written one byte at a time', async () => {
      const raw = await Raw.open(port);
      try {
        raw.socket.setNoDelay(true);
        for (const ifNoneMatch of [undefined, `"${target.etag}"`]) {
          const bytes = bytesOf(
            checkinReq(token, body, ifNoneMatch === undefined ? {} : { ifNoneMatch }),
          );
          for (let i = 0; i < bytes.length; i++) {
            await raw.write(bytes.subarray(i, i + 1));
            if (i % 16 === 0) await new Promise((r) => setImmediate(r));
          }
          const res = await raw.next();
          if (ifNoneMatch === undefined) {
            assert.equal(res.status, 200);
            assert.deepEqual(JSON.parse(res.text), target);
          } else {
            assert.equal(res.status, 304);
            assert.equal(res.headers.etag, `"${target.etag}"`);
          }
        }
      } finally {
        raw.destroy();
      }
    });

    it('split at every offset into two writes', async () => {
      const raw = await Raw.open(port);
      try {
        raw.socket.setNoDelay(true);
        const bytes = bytesOf(checkinReq(token, body, { ifNoneMatch: `"${target.etag}"` }));
        for (let at = 1; at < bytes.length; at += 3) {
          await raw.write(bytes.subarray(0, at));
          await new Promise((r) => setImmediate(r));
          await raw.write(bytes.subarray(at));
          const res = await raw.next();
          assert.equal(res.status, 304, `split at ${at}`);
        }
      } finally {
        raw.destroy();
      }
    });

    it('one connection serves agent routes and fastify routes in turn', async () => {
      const raw = await Raw.open(port);
      try {
        const checkin = bytesOf(checkinReq(token, body, { ifNoneMatch: `"${target.etag}"` }));
        await raw.write(checkin);
        const first = await raw.next();
        assert.equal(first.status, 304);
        await raw.write(bytesOf({ url: '/healthz' }));
        const health = await raw.next();
        assert.equal(health.status, 200);
        assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
        await raw.write(checkin);
        const second = await raw.next();
        assert.equal(second.status, 304);
        assert.equal(second.headers.etag, first.headers.etag);
        assert.equal(second.headers['fleetwave-poll-after'], first.headers['fleetwave-poll-after']);
        await raw.write(bytesOf(checkinReq(token, body)));
        const full = await raw.next();
        assert.equal(full.status, 200);
        assert.deepEqual(JSON.parse(full.text), target);
        assert.equal(raw.closed, false, 'still one open connection');
      } finally {
        raw.destroy();
      }
    });

    it('pipelined requests in one write are answered in order', async () => {
      const raw = await Raw.open(port);
      const taken = http.taken();
      try {
        const tag = (id: string): Array<[string, string]> => [['X-Request-Id', id]];
        await raw.write(
          Buffer.concat([
            bytesOf(checkinReq(token, body, { extra: tag('pipe-1') })),
            bytesOf(
              checkinReq(token, body, { ifNoneMatch: `"${target.etag}"`, extra: tag('pipe-2') }),
            ),
            bytesOf(
              reqOf({
                method: 'GET',
                url: '/v1/agents/shape-1/target',
                auth: bearer(token),
                extra: tag('pipe-3'),
              }),
            ),
            bytesOf(checkinReq('bad', body, { extra: tag('pipe-4') })),
          ]),
        );
        const answers = [await raw.next(), await raw.next(), await raw.next(), await raw.next()];
        assert.deepEqual(
          answers.map((r) => [r.headers['x-request-id'], r.status]),
          [
            ['pipe-1', 200],
            ['pipe-2', 304],
            ['pipe-3', 200],
            ['pipe-4', 401],
          ],
        );
        assert.equal(http.taken() - taken, 4, 'all four by the agent routes');
        assert.deepEqual(JSON.parse(answers[0]!.text), target);
        assert.deepEqual(JSON.parse(answers[2]!.text), target);
      } finally {
        raw.destroy();
      }
    });

    it('agent and fastify routes pipelined on one connection are answered in order', async () => {
      const raw = await Raw.open(port);
      const taken = http.taken();
      try {
        await raw.write(
          Buffer.concat([
            bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'mixed-1']] })),
            bytesOf({ url: '/healthz', headers: [['X-Request-Id', 'mixed-2']] }),
            bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'mixed-3']] })),
          ]),
        );
        const answers = [await raw.next(), await raw.next(), await raw.next()];
        assert.deepEqual(
          answers.map((r) => [r.headers['x-request-id'], r.status]),
          [
            ['mixed-1', 200],
            ['mixed-2', 200],
            ['mixed-3', 200],
          ],
        );
        assert.equal(http.taken() - taken, 2, 'the check-ins by the agent routes, not /healthz');
        assert.equal(answers[0]!.text, answers[2]!.text);
      } finally {
        raw.destroy();
      }
    });

    it('Connection: close is answered with connection: close, then the connection ends', async () => {
      const raw = await Raw.open(port);
      try {
        await raw.write(
          Buffer.concat([
            bytesOf(checkinReq(token, body, { extra: [['Connection', 'close']] })),
            // Sent ahead in the same write: not for this connection any more.
            bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'dropped']] })),
          ]),
        );
        const res = await raw.next();
        assert.equal(res.status, 200, res.text);
        assert.match(res.head, /\r\nConnection: close(?:\r\n|$)/);
        assert.ok(await raw.closedWithin(2000), 'closed after the answer');
        assert.equal(await raw.maybeNext(0), undefined, 'nothing answered after it');
        assert.equal(lines().filter((l) => l.reqId === 'dropped').length, 0);
      } finally {
        raw.destroy();
      }
    });

    it('a request that arrives after a Connection: close answer is not acted on', async () => {
      const read = async () => (await server.app.inject({ url: '/metrics' })).body;
      const targets = (text: string) =>
        metric(text, 'fleetwave_checkins_total', { result: 'target' }) ?? 0;
      const raw = await Raw.open(port, true);
      try {
        await raw.write(bytesOf(checkinReq(token, body, { extra: [['Connection', 'close']] })));
        assert.equal((await raw.next()).status, 200);
        const before = targets(await read());
        // Half-open on our side: the server's FIN came, our side may still send.
        await raw.write(bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'late']] })));
        await sleep(100);
        assert.equal(targets(await read()), before, 'the late check-in was not counted');
        assert.deepEqual(
          lines().filter((l) => l.reqId === 'late'),
          [],
          'no log line claims an answer that was never sent',
        );
      } finally {
        raw.destroy();
      }
    });

    it('a client that pipelines without reading is not answered into an unbounded buffer', async () => {
      let serverSide: Socket | undefined;
      const take = (socket: Socket) => (serverSide = socket);
      server.app.server.once('connection', take);
      const raw = await Raw.open(port);
      try {
        raw.socket.pause(); // read nothing
        const one = bytesOf(checkinReq(token, body, { ifNoneMatch: '"stale"' }));
        const count = Math.ceil((2 * 1024 * 1024) / one.length);
        for (let i = 0; i < count; i++) raw.socket.write(one);
        const deadline = Date.now() + 3000;
        let lastRead = -1;
        let stableSince = Date.now();
        while (Date.now() < deadline && serverSide !== undefined) {
          if (serverSide.writableLength > 4 * 1024 * 1024) break;
          if (serverSide.bytesRead !== lastRead) {
            lastRead = serverSide.bytesRead;
            stableSince = Date.now();
          } else if (Date.now() - stableSince > 300) break;
          await sleep(20);
        }
        assert.ok(serverSide, 'saw the connection');
        // node:http stops reading once its answers are not taken: about one answer waits.
        assert.ok(
          serverSide.writableLength < 1024 * 1024,
          `${serverSide.writableLength} bytes of answers buffered for a client that reads none`,
        );
      } finally {
        server.app.server.off('connection', take);
        raw.destroy();
      }
    });

    it('a request pipelined behind a held long-poll waits its turn', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const raw = await Raw.open(port);
      try {
        await raw.write(
          Buffer.concat([
            bytesOf(
              checkinReq(token, body, {
                url: '/v1/checkin?wait=30',
                ifNoneMatch: `"${target.etag}"`,
                extra: [['X-Request-Id', 'held']],
              }),
            ),
            bytesOf(checkinReq(token, body, { extra: [['X-Request-Id', 'behind']] })),
          ]),
        );
        await until(() => longpoll.size === 1, 'the long-poll is held');
        assert.equal(await raw.maybeNext(300), undefined, 'nothing answered while held');
        longpoll.drain();
        const held = await raw.next();
        const behind = await raw.next();
        assert.deepEqual([held.headers['x-request-id'], held.status], ['held', 304]);
        assert.deepEqual([behind.headers['x-request-id'], behind.status], ['behind', 200]);
        assert.deepEqual(JSON.parse(behind.text), target);
      } finally {
        raw.destroy();
      }
    });
  });
});
