// What the agent does after a failed check-in follows the failure's kind (agent/retry.ts):
// transient backs off from short, waiting waits as the server asks (or one poll interval),
// stalled (a refusal) is retried only at a long fixed interval with a line saying what to fix.
// Pure bounds first; then the agent against the real reconciler for every answer it can give
// (a wrong enrollment token, labels no target fits, not ready, too many waiters, a credential
// it no longer knows) and a loopback server for the rest, each with an injected clock that
// records how long the agent sleeps.

import assert from 'node:assert/strict';
import { createServer, type RequestListener } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { TargetCache } from '../../agent/cache.ts';
import { Agent, type AgentEvent, type AgentOptions } from '../../agent/client.ts';
import { virtualClock, type Clock } from '../../agent/clock.ts';
import { AgentError } from '../../agent/errors.ts';
import { DEFAULT_RETRY, failureOf, retryAfter, type RetryPolicy } from '../../agent/retry.ts';
import { formatEvent } from '../../cli/commands/agent.ts';
import type { Target } from '../../core/target/model.ts';
import { buildServer } from '../../reconciler/server.ts';
import {
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  call,
  enroll,
  freePort,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';
import { makeTarget } from './fixtures/targets.ts';
import { close, listen } from './helpers.ts';

const POLICY: RetryPolicy = {
  baseMs: 100,
  capMs: 10_000,
  retryAfterCapMs: 60_000,
  stalledMs: 300_000,
};
const unit = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

describe('retry after a failure (pure)', () => {
  it('backs off a transient failure within [0, min(cap, base·2^n)]', () => {
    fc.assert(
      fc.property(fc.nat(60), unit, (n, r) => {
        const retry = retryAfter(POLICY, { kind: 'transient' }, n, 30_000, () => r);
        assert.equal(retry.kind, 'backoff');
        assert.ok(retry.delayMs >= 0 && retry.delayMs <= Math.min(10_000, 100 * 2 ** n));
      }),
    );
  });

  it('waits as long as the server asked, or one poll interval, plus at most 10%', () => {
    fc.assert(
      fc.property(fc.nat(50), unit, fc.nat(100_000), (n, r, asked) => {
        const told = retryAfter(
          POLICY,
          { kind: 'waiting', retryAfterMs: asked },
          n,
          30_000,
          () => r,
        );
        assert.deepEqual([told.kind, told.kind === 'wait' && told.asked], ['wait', true]);
        const floor = Math.min(asked, POLICY.retryAfterCapMs);
        assert.ok(told.delayMs >= floor && told.delayMs <= Math.ceil(floor * 1.1));
        const untold = retryAfter(POLICY, { kind: 'waiting' }, n, 30_000, () => r);
        assert.deepEqual([untold.kind, untold.kind === 'wait' && untold.asked], ['wait', false]);
        assert.ok(untold.delayMs >= 30_000 && untold.delayMs <= 33_000);
      }),
    );
  });

  it('retries a refusal only after the long fixed interval, whatever the attempt', () => {
    fc.assert(
      fc.property(fc.nat(1000), unit, (n, r) => {
        const retry = retryAfter(POLICY, { kind: 'stalled' }, n, 30_000, () => r);
        assert.equal(retry.kind, 'stalled');
        assert.ok(retry.delayMs >= 300_000 && retry.delayMs <= 330_000);
      }),
    );
    assert.equal(DEFAULT_RETRY.stalledMs, 5 * 60_000);
  });

  it('reads a 401 to a check-in as transient (enroll again), a refused enrollment as stalled', () => {
    const refused = new AgentError('AGENT_REFUSED', 'x answered 401', { status: 401 });
    assert.deepEqual(failureOf(refused, true), { kind: 'transient' });
    assert.equal(failureOf(refused, false).kind, 'stalled');
    const busy = new AgentError('AGENT_BUSY', 'x', { status: 429, retryAfterMs: 3000 });
    assert.deepEqual(failureOf(busy, true), { kind: 'waiting', retryAfterMs: 3000 });
    assert.equal(failureOf(new AgentError('AGENT_UNREACHABLE', 'x'), true).kind, 'transient');
  });
});

type ErrorEvent = Extract<AgentEvent, { kind: 'error' }>;

/** A virtual clock that records every sleep the agent asks for. */
function recordingClock(): Clock & { sleeps: number[] } {
  const clock = virtualClock(Date.parse('2026-11-27T10:00:00Z'));
  const sleeps: number[] = [];
  return {
    now: clock.now,
    sleep: (ms, signal) => (sleeps.push(ms), clock.sleep(ms, signal)),
    sleeps,
  };
}

describe(
  'the agent retries by the kind of what the reconciler answered',
  { timeout: 120_000 },
  () => {
    let work: string;
    let repo: FleetRepo;
    let server: Running;
    let n = 0;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'fleetwave-retry-'));
      repo = await FleetRepo.create();
      server = await startServer(
        testConfig({ repo: repo.origin, dataDir: join(repo.root, 'data'), maxWaiters: 1 }),
      );
    });

    after(async () => {
      await server?.close();
      await repo?.cleanup();
      await rm(work, { recursive: true, force: true });
    });

    /**
     * Runs an agent until it has had `count` failed check-ins (or `until` holds), stops it, and
     * returns its events and the sleeps it asked for.
     */
    async function run(
      options: Partial<AgentOptions> & Pick<AgentOptions, 'urls'>,
      count: number,
      cached?: Target,
    ): Promise<{ errors: ErrorEvent[]; events: AgentEvent[]; sleeps: number[] }> {
      const clock = recordingClock();
      const events: AgentEvent[] = [];
      const cacheDir = join(work, `agent-${++n}`);
      if (cached) {
        const cache = new TargetCache(cacheDir);
        await cache.prepare();
        await cache.write({ target: cached, artifactPath: '/installed', appliedAt: 1 });
      }
      let done!: () => void;
      const enough = new Promise<void>((resolve) => (done = resolve));
      const agent = new Agent({
        id: `agent-${n}`,
        labels: LINUX_PROD,
        enrollToken: ENROLL_TOKEN,
        cacheDir,
        waitSeconds: 0,
        timeoutMs: 5_000,
        backoff: POLICY,
        clock,
        ...options,
        onEvent: (e) => {
          events.push(e);
          if (events.filter((x) => x.kind === 'error').length >= count) done();
        },
      });
      await agent.start();
      await enough;
      await agent.stop();
      const errors = events.filter((e): e is ErrorEvent => e.kind === 'error');
      return { errors: errors.slice(0, count), events, sleeps: clock.sleeps };
    }

    /**
     * Every error event's delay is what the agent then slept. Full jitter can draw a delay of 0,
     * and the agent does not sleep for 0: it retries at once.
     */
    function slept(r: { errors: ErrorEvent[]; sleeps: number[] }): void {
      for (const e of r.errors) {
        assert.ok(e.retryInMs === 0 || r.sleeps.includes(e.retryInMs), `slept ${e.retryInMs}`);
      }
    }

    it('a wrong enrollment token: refused (stalled), retried only every stalledMs, saying what to fix', async () => {
      const r = await run({ urls: [server.url], enrollToken: 'not-the-enrollment-token' }, 3);
      for (const e of r.errors) {
        assert.equal(e.error.code, 'AGENT_REFUSED');
        assert.equal(e.error.status, 401);
        assert.equal(e.retry, 'stalled');
        assert.ok(e.retryInMs >= 300_000 && e.retryInMs <= 330_000, `${e.retryInMs}`);
      }
      slept(r);
      assert.match(
        formatEvent(r.errors[0]!)!,
        /^error: AGENT_REFUSED: .*answered 401 UNAUTHENTICATED: .*; refused: a person must act \(check the enrollment token .*\); retrying only slowly, http:\/\/127\.0\.0\.1:\d+ in 3\d\d\.\ds$/,
      );
    });

    it('labels no target can be rendered for (422): stalled, with the hint', async () => {
      const noPlatform = { env: 'prod', region: 'us-east-1' };
      const r = await run({ urls: [server.url], labels: noPlatform }, 2);
      for (const e of r.errors) {
        assert.equal(e.error.status, 422);
        assert.equal(e.retry, 'stalled');
        assert.ok(e.retryInMs >= 300_000);
      }
      slept(r);
      assert.match(formatEvent(r.errors[0]!)!, /TARGET_UNAVAILABLE: .*give the agent the labels/);
    });

    it('too many waiters (429 with Retry-After): waits as asked', async () => {
      // One long-poll held fills the server (--max-waiters 1)...
      const token = await enroll(server.url, 'holder');
      const body = { id: 'holder', labels: LINUX_PROD };
      const first = await call(`${server.url}/v1/checkin`, { token, body });
      const target = first.body as Target;
      const holding = call(`${server.url}/v1/checkin?wait=30`, {
        token,
        body,
        headers: { 'if-none-match': `"${target.etag}"` },
      });
      while (server.app.reconciler.longpoll.size < 1) await new Promise((r) => setTimeout(r, 10));
      // ...so an agent that has its target and would wait is told to come back later.
      const id = 'waiter';
      const own = await call(`${server.url}/v1/checkin`, {
        token: await enroll(server.url, id),
        body: { id, labels: LINUX_PROD },
      });
      const r = await run({ urls: [server.url], id, waitSeconds: 30 }, 2, own.body as Target);
      for (const e of r.errors) {
        assert.equal(e.error.code, 'AGENT_BUSY');
        assert.equal(e.error.status, 429);
        assert.equal(e.retry, 'wait');
        const asked = e.error.retryAfterMs!;
        assert.ok(asked >= 1000, `Retry-After ${asked}`);
        assert.ok(e.retryInMs >= asked && e.retryInMs <= asked * 1.1 + 1, `${e.retryInMs}`);
      }
      slept(r);
      assert.match(formatEvent(r.errors[0]!)!, /; waiting as the reconciler asks, retrying/);
      await server.close();
      await holding;
      server = await startServer(
        testConfig({ repo: repo.origin, dataDir: join(repo.root, 'data2'), maxWaiters: 1 }),
      );
    });

    it('a credential the server no longer knows (401 to a check-in): enrolls again at once', async () => {
      const port = await freePort();
      const start = async (tokenSecret: string) => {
        const config = testConfig({
          repo: repo.origin,
          dataDir: join(repo.root, `data-${tokenSecret}`),
          port,
          tokenSecret,
        });
        const app = await buildServer(config, { logger: false });
        await app.listen({ port, host: '127.0.0.1' });
        await app.reconciler.sync.sync();
        return app;
      };
      let app = await start('token-secret-one-0123456789');
      const url = `http://127.0.0.1:${port}`;
      const target = (
        await call(`${url}/v1/checkin`, {
          token: await enroll(url, 'rotated'),
          body: { id: 'rotated', labels: LINUX_PROD },
        })
      ).body as Target;
      const clock = recordingClock();
      const events: AgentEvent[] = [];
      const cacheDir = join(work, 'rotated');
      const cache = new TargetCache(cacheDir);
      await cache.prepare();
      await cache.write({ target, artifactPath: '/installed', appliedAt: 1 });
      let enrolled = 0;
      let again!: () => void;
      const reenrolled = new Promise<void>((resolve) => (again = resolve));
      const agent = new Agent({
        urls: [url],
        id: 'rotated',
        labels: LINUX_PROD,
        enrollToken: ENROLL_TOKEN,
        cacheDir,
        waitSeconds: 1,
        timeoutMs: 5_000,
        backoff: POLICY,
        clock,
        onEvent: (e) => {
          events.push(e);
          if (e.kind === 'enrolled' && ++enrolled === 2) again();
        },
      });
      try {
        await agent.start();
        while (!events.some((e) => e.kind === 'unchanged'))
          await new Promise((r) => setTimeout(r, 10));
        await app.close();
        app = await start('token-secret-two-0123456789');
        await reenrolled;
      } finally {
        await agent.stop();
        await app.close();
      }
      const refused = events.find(
        (e): e is ErrorEvent => e.kind === 'error' && e.error.status === 401,
      );
      assert.ok(refused, 'the old credential was refused');
      assert.equal(refused.retry, 'backoff');
      assert.ok(refused.retryInMs <= POLICY.capMs);
      assert.ok(events.indexOf(refused) < events.findLastIndex((e) => e.kind === 'enrolled'));
    });

    it('a reconciler not ready yet (503 NOT_READY with Retry-After): waits as asked', async () => {
      const lonely = await FleetRepo.create();
      const notReady = await startServer(
        testConfig({
          repo: `${lonely.root}/no-such-origin.git`,
          dataDir: join(lonely.root, 'data'),
        }),
      );
      try {
        const r = await run({ urls: [notReady.url] }, 2);
        for (const e of r.errors) {
          assert.equal(e.error.status, 503);
          assert.match(e.error.message, /NOT_READY/);
          assert.equal(e.retry, 'wait');
          assert.ok(e.retryInMs >= 5000 && e.retryInMs <= 16_500, `${e.retryInMs}`);
        }
        slept(r);
      } finally {
        await notReady.close();
        await lonely.cleanup();
      }
    });

    describe('answers only a loopback server gives', () => {
      const answering = (status: number, body: string, headers: Record<string, string> = {}) =>
        ((req, res) => {
          if (req.url === '/v1/enroll') {
            res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"v1.x.y"}');
            return;
          }
          res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
        }) satisfies RequestListener;

      const cases: Array<{
        name: string;
        handler: RequestListener;
        code: string;
        retry: ErrorEvent['retry'];
        within: [number, number];
      }> = [
        {
          name: '500 INTERNAL: backs off',
          handler: answering(500, '{"error":{"code":"INTERNAL","message":"internal error"}}'),
          code: 'AGENT_SERVER_ERROR',
          retry: 'backoff',
          within: [0, POLICY.capMs],
        },
        {
          name: '408 REQUEST_TIMEOUT (a transient code on a 4xx): backs off, not refused',
          handler: answering(408, '{"error":{"code":"REQUEST_TIMEOUT","message":"slow"}}'),
          code: 'AGENT_SERVER_ERROR',
          retry: 'backoff',
          within: [0, POLICY.capMs],
        },
        {
          name: '503 from a proxy without Retry-After: waits one poll interval (the target says 30 s)',
          handler: answering(503, '<html>maintenance</html>'),
          code: 'AGENT_BUSY',
          retry: 'wait',
          within: [30_000, 33_000],
        },
        {
          name: '400 from a proxy (not the API): refused',
          handler: answering(400, '<html>bad request</html>'),
          code: 'AGENT_REFUSED',
          retry: 'stalled',
          within: [300_000, 330_000],
        },
      ];

      for (const c of cases) {
        it(c.name, async () => {
          const http = createServer(c.handler);
          const port = await listen(http);
          try {
            const r = await run({ urls: [`http://127.0.0.1:${port}`] }, 3, makeTarget('cached'));
            for (const e of r.errors) {
              assert.equal(e.error.code, c.code);
              assert.equal(e.retry, c.retry);
              assert.ok(e.retryInMs >= c.within[0] && e.retryInMs <= c.within[1], `${e.retryInMs}`);
            }
            slept(r);
          } finally {
            await close(http);
          }
        });
      }

      it('nothing listening: backs off, growing from short', async () => {
        const dead = `http://127.0.0.1:${await freePort()}`;
        const r = await run({ urls: [dead], random: () => 0.999 }, 6);
        const delays = r.errors.map((e) => e.retryInMs);
        for (const e of r.errors) assert.equal(e.retry, 'backoff');
        assert.deepEqual(delays, [99, 199, 399, 799, 1598, 3196]);
        slept(r);
      });
    });
  },
);
