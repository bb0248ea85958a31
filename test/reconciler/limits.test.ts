// The reconciler must not die or hang: connections past --max-connections, requests that never
// finish arriving, floods of unauthenticated bodies, odd heads, and whatever node:http or the
// router refuse all get a prompt answer in the one error shape, and the server keeps serving.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it, mock } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BODY_AT_ONCE, bodyRoom } from '../../reconciler/agent-http.ts';
import { MAX_WEBHOOK_BODIES } from '../../reconciler/routes/webhooks.ts';
import {
  FleetRepo,
  LINUX_PROD,
  WEBHOOK_SECRET,
  call,
  enroll,
  startServer,
  testConfig,
  type Running,
} from './helpers.ts';

interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** The server closed the connection after the answer. */
  closed: boolean;
}

/** A socket to the server, its bytes collected. */
class Raw {
  readonly socket: Socket;
  data = '';
  closed = false;
  private readonly opened: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(url: string) {
    const { port } = new URL(url);
    this.socket = connect(Number(port), '127.0.0.1');
    this.opened = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.socket.setEncoding('latin1');
    this.socket.on('data', (c: string) => {
      this.data += c;
      this.wake();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async send(bytes: string | Buffer): Promise<void> {
    await this.opened;
    this.socket.write(bytes);
  }

  /** The first complete answer (by Content-Length), and whether the connection then closed. */
  async answer(): Promise<RawAnswer> {
    for (;;) {
      const end = this.data.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.data.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        const body = this.data.slice(end + 4, end + 4 + length);
        if (body.length === length) {
          if (/\r\nconnection: *close/i.test(head)) await this.closedSoon();
          return { status: Number(head.split(' ')[1]), head, body, closed: this.closed };
        }
      }
      if (this.closed) throw new Error(`closed without a whole answer: ${this.data}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private async closedSoon(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function errorOf(answer: RawAnswer): { code: string; message: string } {
  const parsed = JSON.parse(answer.body) as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(parsed), ['error'], answer.body);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'message'], answer.body);
  return parsed.error;
}

describe('limits of the reconciler', () => {
  let repo: FleetRepo;
  let server: Running;
  let token: string;

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({
        repo: repo.origin,
        dataDir: `${repo.root}/data`,
        requestTimeoutSeconds: 1,
      }),
    );
    token = await enroll(server.url, 'agent-a');
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('answers connections past --max-connections 503 in the error shape, and closes them', async () => {
    const capped = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data-cap`, maxConnections: 20 }),
    );
    const held: Raw[] = [];
    try {
      // Connections up to the cap are served (each proven by an answered request); the next
      // one gets 503.
      let refused: RawAnswer | undefined;
      while (refused === undefined) {
        assert.ok(held.length <= 20, 'more connections than --max-connections were served');
        const raw = new Raw(capped.url);
        held.push(raw);
        await raw.send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        const answer = await raw.answer();
        if (answer.status === 503) refused = answer;
        else assert.equal(answer.status, 200);
        raw.data = '';
      }
      assert.equal(held.length, 21);
      assert.match(refused.head, /\r\nRetry-After: \d+/i);
      assert.equal(errorOf(refused).code, 'TOO_MANY_CONNECTIONS');
      assert.equal(refused.closed, true);
      // One goes away: the next connection is served again.
      held.shift()!.destroy();
      for (let i = 0; ; i++) {
        const raw = new Raw(capped.url);
        await raw.send('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        const answer = await raw.answer();
        raw.destroy();
        if (answer.status === 200) break;
        assert.ok(i < 100, 'never served again');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      for (const raw of held) raw.destroy();
      await capped.close();
    }
  });

  it(
    'answers a webhook body that stops arriving 408 after --request-timeout',
    { timeout: 20_000 },
    async () => {
      const raw = new Raw(server.url);
      try {
        await raw.send(
          'POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
            'content-length: 1000\r\n\r\n{"half":',
        );
        const answer = await raw.answer();
        assert.equal(answer.status, 408);
        assert.equal(errorOf(answer).code, 'REQUEST_TIMEOUT');
        assert.equal(answer.closed, true);
      } finally {
        raw.destroy();
      }
    },
  );

  it('refuses webhook bodies over 1 MiB (413) before reading them', async () => {
    const res = await call(`${server.url}/v1/webhooks/github`, {
      raw: Buffer.alloc(2 * 1024 * 1024, 0x20),
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
    }).catch((e: unknown) => e as Error);
    // undici may see the connection closed while still sending; the answer, when it arrives, is 413.
    if (!(res instanceof Error)) {
      assert.equal(res.status, 413);
      assert.equal((res.body as { error: { code: string } }).error.code, 'REQUEST_TOO_LARGE');
    }
    const raw = new Raw(server.url);
    try {
      await raw.send(
        'POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
          `content-length: ${2 * 1024 * 1024}\r\n\r\n`,
      );
      const answer = await raw.answer();
      assert.equal(answer.status, 413);
      assert.equal(errorOf(answer).code, 'REQUEST_TOO_LARGE');
    } finally {
      raw.destroy();
    }
  });

  it('reads at most a few unauthenticated webhook bodies at once; the rest get 503 at once', async () => {
    const slow: Raw[] = [];
    try {
      for (let i = 0; i < MAX_WEBHOOK_BODIES; i++) {
        const raw = new Raw(server.url);
        slow.push(raw);
        await raw.send(
          'POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
            'content-length: 100000\r\n\r\n{',
        );
      }
      // Wait until the server reads them all (the next one is refused), then check the answer.
      let refused: RawAnswer | undefined;
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const raw = new Raw(server.url);
        await raw.send(
          'POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
            'content-length: 2\r\n\r\n{}',
        );
        const answer = await raw.answer();
        raw.destroy();
        if (answer.status === 503) refused = answer;
        else await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(refused, 'never refused');
      assert.equal(errorOf(refused).code, 'TOO_MANY_BODIES');
      assert.match(refused.head, /\r\nretry-after: \d+/i);
    } finally {
      for (const raw of slow) raw.destroy();
    }
    // Once they are gone, a signed delivery is read again.
    const body = Buffer.from('{"ref":"refs/heads/main"}');
    const signature = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
    for (let i = 0; ; i++) {
      const res = await call(`${server.url}/v1/webhooks/github`, {
        raw: body,
        headers: {
          'content-type': 'application/json',
          'x-hub-signature-256': signature,
          'x-github-event': 'ping',
          'x-github-delivery': `after-flood-${i}`,
        },
      });
      if (res.status === 202) break;
      assert.equal(res.status, 503);
      assert.ok(i < 100, 'never read again');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it(
    'answers a check-in head ended by bare LFs at once, not after the request timeout',
    { timeout: 20_000 },
    async () => {
      // Long timeouts here, so only handing over at once can answer within the test's time.
      const slowServer = await startServer(
        testConfig({
          repo: repo.origin,
          dataDir: `${repo.root}/data-lf`,
          requestTimeoutSeconds: 600,
        }),
      );
      const raw = new Raw(slowServer.url);
      try {
        await raw.send(`POST /v1/checkin HTTP/1.1\nHost: x\nauthorization: Bearer ${token}\n`);
        const answer = await raw.answer();
        assert.equal(answer.status, 400);
        assert.equal(errorOf(answer).code, 'REQUEST_INVALID');
      } finally {
        raw.destroy();
        await slowServer.close();
      }
    },
  );

  it('answers in the one error shape what node:http and the router refuse', async () => {
    const cases: Array<[string, string | Buffer, number, string]> = [
      [
        'a path segment over 256 characters',
        `GET /v1/agents/${'a'.repeat(300)}/target HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        414,
        'REQUEST_INVALID',
      ],
      [
        'a head over 16 KiB',
        `GET /v1/status HTTP/1.1\r\nHost: x\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`,
        431,
        'REQUEST_TOO_LARGE',
      ],
      ['not HTTP', 'HELLO THERE\r\n\r\n', 400, 'REQUEST_INVALID'],
      [
        'malformed percent-encoding',
        'GET /v1/agents/%zz/target HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        400,
        'REQUEST_INVALID',
      ],
    ];
    for (const [name, bytes, status, code] of cases) {
      const raw = new Raw(server.url);
      try {
        await raw.send(bytes);
        const answer = await raw.answer();
        assert.equal(answer.status, status, name);
        const error = errorOf(answer);
        assert.equal(error.code, code, name);
        assert.doesNotMatch(error.message, /aaaaaaaaaa/, `${name}: the URL is echoed back`);
      } finally {
        raw.destroy();
      }
    }
  });

  it('refuses a gzip body with 415 instead of reading it as JSON', async () => {
    for (const path of ['/v1/checkin', '/v1/rollout/pause', '/v1/webhooks/github']) {
      const res = await call(`${server.url}${path}`, {
        token,
        raw: gzipSync(JSON.stringify({ id: 'agent-a', labels: LINUX_PROD })),
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      });
      assert.equal(res.status, 415, path);
      assert.equal(
        (res.body as { error: { code: string } }).error.code,
        'REQUEST_ENCODING_UNSUPPORTED',
        path,
      );
    }
  });

  it('reads a slow check-in body into one buffer, not copied again on every chunk', async () => {
    const body = Buffer.from(
      JSON.stringify({
        id: 'agent-a',
        labels: {
          ...LINUX_PROD,
          ...Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`note${i}`, 'n'.repeat(60)])),
        },
      }),
    );
    const concat = mock.method(Buffer, 'concat');
    const raw = new Raw(server.url);
    try {
      await raw.send(
        `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${token}\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
      );
      for (let at = 0; at < body.length; at += 100) {
        await raw.send(body.subarray(at, at + 100));
        // Paced so that the pieces arrive as separate reads.
        await new Promise((r) => setTimeout(r, 5));
      }
      const answer = await raw.answer();
      assert.equal(answer.status, 200, answer.body);
      const copied = concat.mock.calls
        .map((c) => (c.result as Buffer | undefined)?.length ?? 0)
        .reduce((a, b) => a + b, 0);
      assert.ok(copied <= 2 * body.length, `${copied} bytes copied for a ${body.length}-byte body`);
    } finally {
      concat.mock.restore();
      raw.destroy();
    }
  });
});

describe('a body’s buffer follows the bytes received, not the length declared', () => {
  it('allocates a small body at once, a large one as it arrives (doubling, up to its length)', () => {
    assert.equal(bodyRoom(undefined, 0, 0, 1200).length, 1200);
    // A head declaring 16 MiB gets 16 KiB until bytes come.
    const first = bodyRoom(undefined, 0, 0, 16 * 1024 * 1024);
    assert.equal(first.length, BODY_AT_ONCE);
    first.fill(7);
    assert.equal(bodyRoom(first, 1000, 1000, 16 * 1024 * 1024), first, 'room left: the same');
    const grown = bodyRoom(first, BODY_AT_ONCE, 1, 16 * 1024 * 1024);
    assert.equal(grown.length, 2 * BODY_AT_ONCE);
    assert.ok(
      grown.subarray(0, BODY_AT_ONCE).every((b) => b === 7),
      'what arrived is kept',
    );
    assert.equal(bodyRoom(grown, 2 * BODY_AT_ONCE, 50_000, 70_000).length, 70_000, 'capped');
  });
});
