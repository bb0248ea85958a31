// A check-in that repeats the agent's last report to the byte is not parsed or checked again
// (agent-api.ts checkin, AgentRegistry.again), on the main port's raw handlers and on the
// agent port; everything that could make the same text mean something else reads it anew.

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { MAX_REPORTED } from '../../reconciler/agents.ts';
import { LINUX_PROD, enroll } from './helpers.ts';
import { Raw, bytesOf, checkinReq, httpFixture, type HttpFixture, type Reply } from './raw-http.ts';

describe('a check-in that repeats the last report', () => {
  let http: HttpFixture;
  let ports: Array<[string, number]>;
  /** Texts JSON.parse was given while `parses` counted. */
  let parsed: string[];
  const parse = JSON.parse;

  before(async () => {
    // No store flush while the tests run: a flush takes the records' pending tallies, which
    // the tests read.
    http = await httpFixture({ agentPort: 0, storeFlushMs: 3_600_000 });
    ports = [
      ['main port', http.port],
      ['agent port', http.server.app.agentPort!.port],
    ];
  });
  after(async () => {
    await http?.close();
  });
  beforeEach(() => {
    parsed = [];
    JSON.parse = ((text: string, reviver?: Parameters<typeof parse>[1]) => {
      parsed.push(text);
      return parse(text, reviver) as unknown;
    }) as typeof JSON.parse;
  });
  afterEach(() => {
    JSON.parse = parse;
  });

  async function checkIn(port: number, token: string, body: unknown): Promise<Reply> {
    const raw = await Raw.open(port);
    try {
      await raw.write(bytesOf(checkinReq(token, body)));
      return await raw.next();
    } finally {
      raw.destroy();
    }
  }
  const registry = () => http.server.app.reconciler.agents;

  for (const [name, index] of [
    ['main port', 0],
    ['agent port', 1],
  ] as const) {
    describe(name, () => {
      it('is recorded without parsing it, tallied as one more report', async () => {
        const port = ports[index]![1];
        const id = `again-${index}`;
        const token = await enroll(http.server.url, id);
        const body = { id, labels: LINUX_PROD, health: { status: 'ok', requests: 10 } };
        const text = JSON.stringify(body);
        assert.equal((await checkIn(port, token, body)).status, 200);
        const record = registry().get(id)!;
        const health = record.health;
        const at = record.at;
        assert.equal(parsed.filter((t) => t === text).length, 1);
        assert.equal(record.reported, text);

        assert.equal((await checkIn(port, token, body)).status, 200);
        assert.equal(parsed.filter((t) => t === text).length, 1, 'the same text is parsed again');
        assert.equal(registry().get(id), record);
        assert.equal(record.health, health);
        assert.ok(record.at >= at);
        assert.equal(record.pending?.reports, 2);
        assert.equal(record.pending?.requests, 20);

        // Another spelling of the same report is read anew (and keeps the record's values).
        const spaced = JSON.stringify(body, null, 1);
        assert.equal((await checkIn(port, token, JSON.parse(spaced))).status, 200);
        assert.equal(record.pending?.reports, 3);
      });

      it('is not kept when longer than MAX_REPORTED', async () => {
        const port = ports[index]![1];
        const id = `long-${index}`;
        const token = await enroll(http.server.url, id);
        const body = {
          id,
          labels: LINUX_PROD,
          health: { status: 'ok', message: 'x'.repeat(MAX_REPORTED) },
        };
        assert.equal((await checkIn(port, token, body)).status, 200);
        assert.equal(registry().get(id)!.reported, undefined);
        assert.equal((await checkIn(port, token, body)).status, 200);
        assert.equal(parsed.filter((t) => t === JSON.stringify(body)).length, 2);
        assert.equal(registry().get(id)!.pending?.reports, 2);
      });

      it('is read anew after enrollment changed the labels', async () => {
        const port = ports[index]![1];
        const id = `relabel-${index}`;
        const token = await enroll(http.server.url, id);
        const body = { id, labels: LINUX_PROD };
        assert.equal((await checkIn(port, token, body)).status, 200);
        // Enrolling again records other labels; the agent's next check-in says LINUX_PROD.
        await enroll(http.server.url, id, { ...LINUX_PROD, env: 'staging' });
        assert.equal(registry().get(id)!.labels['env'], 'staging');
        assert.equal(registry().get(id)!.reported, undefined);
        assert.equal((await checkIn(port, token, body)).status, 200);
        assert.deepEqual({ ...registry().get(id)!.labels }, LINUX_PROD);
      });

      it("another agent's credential with that text is refused", async () => {
        const port = ports[index]![1];
        const owner = `owner-${index}`;
        const other = `other-${index}`;
        const ownerToken = await enroll(http.server.url, owner);
        const otherToken = await enroll(http.server.url, other);
        const body = { id: owner, labels: LINUX_PROD };
        assert.equal((await checkIn(port, ownerToken, body)).status, 200);
        assert.equal(
          (await checkIn(port, otherToken, { id: other, labels: LINUX_PROD })).status,
          200,
        );
        const stolen = await checkIn(port, otherToken, body);
        assert.equal(stolen.status, 403, stolen.text);
        assert.equal(
          registry().get(other)!.reported,
          JSON.stringify({ id: other, labels: LINUX_PROD }),
        );
      });
    });
  }
});
