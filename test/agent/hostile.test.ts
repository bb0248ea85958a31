// A reconciler that answers garbage, 5xx, a forged target, or nothing at all: the agent says
// what is wrong, backs off, keeps its last good target (in memory and on disk) and applies
// nothing.

import assert from 'node:assert/strict';
import { createServer, type RequestListener } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetCache } from '../../agent/cache.ts';
import { Agent } from '../../agent/client.ts';
import { makeTarget } from './fixtures/targets.ts';
import { Events, close, listen } from './helpers.ts';

const GOOD = makeTarget('good');

function api(checkin: RequestListener): RequestListener {
  return (req, res) => {
    if (req.url === '/v1/enroll') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"v1.x.y"}');
      return;
    }
    checkin(req, res);
  };
}

const forged = { ...makeTarget('forged'), config: { mark: 'changed in transit' } };

const cases: Array<{ name: string; handler: RequestListener; code: string; message: RegExp }> = [
  {
    name: 'a body that is not JSON',
    handler: api((_q, res) => res.writeHead(200).end('<html>proxy login</html>')),
    code: 'AGENT_BAD_ANSWER',
    message: /not JSON: "<html>proxy login/,
  },
  {
    name: 'JSON that is not a target',
    handler: api((_q, res) => res.writeHead(200).end('{"etag":"nope","version":3}')),
    code: 'AGENT_BAD_ANSWER',
    message: /target refused: etag is not 64 hex digits/,
  },
  {
    name: 'a target whose content does not match its etag',
    handler: api((_q, res) => res.writeHead(200).end(JSON.stringify(forged))),
    code: 'AGENT_BAD_ANSWER',
    message: /is not the hash of the content/,
  },
  {
    name: '500',
    handler: api((_q, res) =>
      res.writeHead(500).end('{"error":{"code":"INTERNAL","message":"internal error"}}'),
    ),
    code: 'AGENT_SERVER_ERROR',
    message: /answered 500 INTERNAL: internal error/,
  },
  {
    name: 'nothing at all (a hung server)',
    handler: () => {},
    code: 'AGENT_UNREACHABLE',
    message: /timeout/i,
  },
  {
    name: 'an endless body',
    handler: api((_q, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    }),
    code: 'AGENT_BAD_ANSWER',
    message: /larger than 1048576 bytes/,
  },
];

describe('agent against a hostile reconciler', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-hostile-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(`keeps its last good target when the reconciler answers ${c.name}`, async () => {
      const server = createServer(c.handler);
      const port = await listen(server);
      const cacheDir = join(dir, c.name.replace(/\W+/g, '-'));
      const cache = new TargetCache(cacheDir);
      await cache.prepare();
      await cache.write({ target: GOOD, artifactPath: '/installed', appliedAt: 1 });
      const events = new Events();
      let applied = 0;
      const agent = new Agent({
        urls: [`http://127.0.0.1:${port}`],
        id: 'web-1',
        labels: { os: 'linux', arch: 'amd64' },
        cacheDir,
        apply: async () => {
          applied++;
        },
        waitSeconds: 0,
        timeoutMs: 300,
        backoff: { baseMs: 10, capMs: 50 },
        onEvent: events.push,
      });
      try {
        await agent.start();
        const started = events.all[0];
        assert.ok(started?.kind === 'started' && started.cached?.etag === GOOD.etag);
        await events.next('error', () => true, 0);
        await events.next('error');
        const errors = events.all.filter((e) => e.kind === 'error');
        for (const e of errors) {
          assert.equal(e.error.code, c.code);
          assert.match(e.error.message, c.message);
          assert.ok(e.retryInMs <= 50);
        }
      } finally {
        await agent.stop();
        await close(server);
      }
      assert.equal(applied, 0, 'nothing applied');
      assert.equal(agent.current?.etag, GOOD.etag);
      assert.equal((await cache.read()).state?.target.etag, GOOD.etag);
    });
  }

  it('waits as long as Retry-After says on 503 and 429', async () => {
    for (const status of [503, 429]) {
      const server = createServer(
        api((_q, res) => res.writeHead(status, { 'retry-after': '2' }).end('{}')),
      );
      const port = await listen(server);
      const events = new Events();
      const agent = new Agent({
        urls: [`http://127.0.0.1:${port}`],
        id: 'web-1',
        labels: {},
        cacheDir: join(dir, `busy-${status}`),
        backoff: { baseMs: 10, capMs: 50 },
        onEvent: events.push,
      });
      try {
        await agent.start();
        const e = await events.next('error', () => true, 0);
        assert.equal(e.error.code, 'AGENT_BUSY');
        assert.equal(e.error.retryAfterMs, 2000);
        assert.ok(e.retryInMs >= 2000 && e.retryInMs <= 2200, `${e.retryInMs}`);
      } finally {
        await agent.stop();
        await close(server);
      }
    }
  });
});
