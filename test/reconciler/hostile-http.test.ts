// Hostile input to the real server (raw sockets, exact bytes): unusual request shapes and the
// classic desync shapes (HTTP/1.0, chunked, Expect, duplicate or conflicting lengths, no Host,
// oversized heads and bodies), a fuzz of mutated request bytes, and clients too slow to finish
// a request. Every answer is a 4xx in the one error shape or the right answer, never a 5xx,
// and the server keeps serving. Node's parser reads every byte (reconciler/http-server.ts).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { until } from '../helpers/until.ts';
import { ENROLL_TOKEN, LINUX_PROD, enroll } from './helpers.ts';
import {
  Raw,
  assertSame,
  bearer,
  bytesOf,
  checkinReq,
  httpFixture,
  injected,
  json,
  reqOf,
  sleep,
  type AgentCall,
  type ErrorBody,
  type HttpFixture,
  type LogLine,
  type Target,
} from './raw-http.ts';

describe('hostile HTTP', () => {
  let http: HttpFixture;
  let server: HttpFixture['server'];
  let port: number;
  const once = (r: Parameters<HttpFixture['once']>[0], ms?: number) => http.once(r, ms);
  const targetOf = (token: string, id: string) => http.targetOf(token, id);
  before(async () => {
    http = await httpFixture();
    ({ server, port } = http);
  });
  after(async () => {
    await http?.close();
  });

  describe('unusual shapes and desync attempts', () => {
    let token: string;
    let body: unknown;
    let target: Target;
    before(async () => {
      token = await enroll(server.url, 'hand-1');
      body = { id: 'hand-1', labels: LINUX_PROD };
      target = await targetOf(token, 'hand-1');
    });

    it('a chunked check-in gets the answer a Content-Length one gets', async () => {
      for (const ifNoneMatch of [undefined, `"${target.etag}"`, '"stale"']) {
        const text = json(body);
        const headers: Array<[string, string]> = [
          ['Authorization', bearer(token)],
          ['Content-Type', 'application/json'],
          ['Transfer-Encoding', 'chunked'],
        ];
        if (ifNoneMatch) headers.push(['If-None-Match', ifNoneMatch]);
        const chunked =
          `${(10).toString(16)}\r\n${text.slice(0, 10)}\r\n` +
          `${Buffer.byteLength(text.slice(10)).toString(16)}\r\n${text.slice(10)}\r\n0\r\n\r\n`;
        const viaChunks = await once({
          method: 'POST',
          url: '/v1/checkin',
          headers,
          body: chunked,
          length: false,
        });
        const viaLength = await once(
          checkinReq(token, body, ifNoneMatch === undefined ? {} : { ifNoneMatch }),
        );
        assert.deepEqual([viaChunks.by, viaLength.by], ['agent', 'agent']);
        assertSame(
          viaLength,
          { status: viaChunks.status, headers: viaChunks.headers, text: viaChunks.text },
          `chunked ${ifNoneMatch}`,
        );
        assert.equal(viaChunks.status, ifNoneMatch === `"${target.etag}"` ? 304 : 200);
      }
    });

    it('Expect: 100-continue: node:http asks for the body, then the check-in is answered', async () => {
      const raw = await Raw.open(port);
      try {
        const text = json(body);
        await raw.write(
          `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${text.length}\r\n` +
            'Expect: 100-continue\r\n\r\n',
        );
        const interim = await raw.next();
        assert.equal(interim.status, 100);
        assert.match(interim.head, /^HTTP\/1\.1 100 Continue$/);
        await raw.write(text);
        const res = await raw.next();
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.text), target);
      } finally {
        raw.destroy();
      }
    });

    it('HTTP/1.0 is answered; duplicate Content-Length, TE with CL, no Host: 400, never 5xx', async () => {
      const text = json(body);
      const base: Array<[string, string]> = [
        ['Authorization', bearer(token)],
        ['Content-Type', 'application/json'],
      ];
      const old = await once({
        url: '/v1/checkin',
        version: 'HTTP/1.0',
        headers: base,
        body: text,
      });
      assert.deepEqual([old.status, old.by], [200, 'agent']);
      assert.deepEqual(JSON.parse(old.text), target);
      assert.match(old.head, /\r\nConnection: close(?:\r\n|$)/);

      const dup = await once({
        url: '/v1/checkin',
        headers: [
          ...base,
          ['Content-Length', String(text.length)],
          ['Content-Length', String(text.length)],
        ],
        body: text,
      });
      assert.equal(dup.status, 400, dup.head);

      // Transfer-Encoding with a Content-Length (a smuggling shape): node:http refuses it.
      const both = await once({
        url: '/v1/checkin',
        headers: [
          ...base,
          ['Content-Length', String(text.length)],
          ['Transfer-Encoding', 'chunked'],
        ],
        body: `${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`,
        length: false,
      });
      assert.equal(both.status, 400, both.head);

      const hostless = await once({ url: '/v1/checkin', host: false, headers: base, body: text });
      assert.equal(hostless.status, 400);

      const twoHosts = await once({
        url: '/v1/checkin',
        headers: [...base, ['Host', 'other']],
        body: text,
      });
      assert.ok(twoHosts.status < 500, twoHosts.head);
      for (const refused of [dup, both, hostless]) {
        assert.equal(refused.by, 'fastify', 'refused before any agent route');
        assert.equal((JSON.parse(refused.text) as ErrorBody).error.code, 'REQUEST_INVALID');
      }
    });

    it('a head over 8 KiB in two writes is answered; past 16 KiB 431', async () => {
      for (const [pad, status] of [
        [9 * 1024, 200],
        [20 * 1024, 431],
      ] as const) {
        const bytes = bytesOf(checkinReq(token, body, { extra: [['X-Pad', 'p'.repeat(pad)]] }));
        const raw = await Raw.open(port);
        try {
          // More than 8 KiB without the blank line, then the rest.
          await raw.write(bytes.subarray(0, 8 * 1024 + 100));
          await sleep(30);
          await raw.write(bytes.subarray(8 * 1024 + 100));
          const res = await raw.next();
          assert.equal(res.status, status, res.head);
          if (status === 200) assert.deepEqual(JSON.parse(res.text), target);
        } finally {
          raw.destroy();
        }
      }
    });

    it('a head over 8 KiB in one write is answered too; past 16 KiB 431', async () => {
      for (const [pad, status] of [
        [9 * 1024, 200],
        [20 * 1024, 431],
      ] as const) {
        const res = await once(checkinReq(token, body, { extra: [['X-Pad', 'p'.repeat(pad)]] }));
        assert.deepEqual([res.status, res.by], [status, status === 200 ? 'agent' : 'fastify']);
      }
    });

    it('a body over the limit gets 413 REQUEST_TOO_LARGE, with a length or chunked', async () => {
      const big = json({ id: 'hand-1', labels: { ...LINUX_PROD, note: 'x'.repeat(20 * 1024) } });
      const res = await once({
        url: '/v1/checkin',
        headers: [
          ['Authorization', bearer(token)],
          ['Content-Type', 'application/json'],
        ],
        body: big,
      });
      assert.deepEqual([res.status, res.by], [413, 'fastify']);
      assert.equal((JSON.parse(res.text) as ErrorBody).error.code, 'REQUEST_TOO_LARGE');
      // Chunked, the size is known only as it arrives: the agent route counts, then refuses.
      const raw = await Raw.open(port);
      try {
        await raw.write(
          `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n` +
            'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        const piece = 'x'.repeat(4096);
        for (let i = 0; i < 6 && !raw.closed; i++) {
          await raw.write(`${piece.length.toString(16)}\r\n${piece}\r\n`).catch(() => {});
        }
        const chunked = await raw.next();
        assert.equal(chunked.status, 413);
        assert.equal((JSON.parse(chunked.text) as ErrorBody).error.code, 'REQUEST_TOO_LARGE');
        assert.match(chunked.head, /\r\nConnection: close(?:\r\n|$)/);
        assert.ok(await raw.closedWithin(2000), 'the rest of the body is not read');
      } finally {
        raw.destroy();
      }
    });

    it('another content type is fastify’s: text/plain 400, application/xml 415', async () => {
      for (const [type, status, code] of [
        ['text/plain', 400, 'REQUEST_INVALID'],
        ['application/xml', 415, 'REQUEST_INVALID'],
      ] as const) {
        const call: AgentCall = {
          method: 'POST',
          url: '/v1/checkin',
          auth: bearer(token),
          contentType: type,
          body: json(body),
        };
        const res = await once(reqOf(call));
        assert.deepEqual([res.status, res.by], [status, 'fastify'], `${type}: ${res.text}`);
        assert.equal((JSON.parse(res.text) as ErrorBody).error.code, code);
        assertSame(res, await injected(server.app, call), type);
      }
    });
  });

  describe('fuzz', () => {
    it('mutated request bytes never get a 5xx and never break the server', async (t) => {
      const token = await enroll(server.url, 'fuzz-a');
      const body = { id: 'fuzz-a', labels: LINUX_PROD };
      const etag = (await targetOf(token, 'fuzz-a')).etag;
      const bases = [
        bytesOf(checkinReq(token, body)),
        bytesOf(checkinReq(token, body, { ifNoneMatch: `"${etag}"` })),
        bytesOf(checkinReq(token, body, { url: '/v1/checkin?wait=0', ifNoneMatch: `"${etag}"` })),
        bytesOf(
          reqOf({
            method: 'POST',
            url: '/v1/enroll',
            auth: bearer(ENROLL_TOKEN),
            body: json({ id: 'fuzz-e', labels: LINUX_PROD }),
          }),
        ),
        bytesOf(reqOf({ method: 'GET', url: '/v1/agents/fuzz-a/target', auth: bearer(token) })),
      ];
      const position = fc.integer({ min: 0, max: 1_000_000 }).map((n) => n / 1_000_000);
      const headerValue = fc.oneof(
        fc.stringMatching(/^[\x20-\x7e]{0,40}$/),
        fc.constantFrom('chunked', '100-continue', 'close', 'keep-alive', 'upgrade', '0', '-1'),
        fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b).toString('latin1')),
      );
      const headerName = fc.oneof(
        fc.constantFrom(
          'Content-Length',
          'Transfer-Encoding',
          'Host',
          'Expect',
          'Connection',
          'X-Request-Id',
          'If-None-Match',
          'Authorization',
          'Content-Type',
          'Upgrade',
          'Content-Encoding',
        ),
        fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/),
        fc.string({ maxLength: 6 }),
      );
      type Mutation =
        | { kind: 'header'; at: number; name: string; value: string }
        | { kind: 'byte'; at: number; byte: number }
        | { kind: 'truncate'; at: number }
        | { kind: 'break'; at: number; text: string }
        | { kind: 'length'; value: string }
        | { kind: 'body'; bytes: Uint8Array }
        | { kind: 'again' };
      const mutation: fc.Arbitrary<Mutation> = fc.oneof(
        fc.record({
          kind: fc.constant('header'),
          at: position,
          name: headerName,
          value: headerValue,
        }),
        fc.record({
          kind: fc.constant('byte'),
          at: position,
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ kind: fc.constant('truncate'), at: position }),
        fc.record({
          kind: fc.constant('break'),
          at: position,
          text: fc.constantFrom('\r', '\n', '\r\n', '\r\n\r\n', '\0', ' '),
        }),
        fc.record({
          kind: fc.constant('length'),
          value: fc.constantFrom('999999999', '9007199254740993', '-1', '1e3', '', ' 5', '16385'),
        }),
        fc.record({ kind: fc.constant('body'), bytes: fc.uint8Array({ maxLength: 300 }) }),
        fc.record({ kind: fc.constant('again') }),
      );
      const mutate = (base: Buffer, mutations: Mutation[]): Buffer => {
        let bytes = base;
        for (const m of mutations) {
          const at = 'at' in m ? Math.floor(m.at * bytes.length) : 0;
          const headEnd = bytes.indexOf('\r\n\r\n');
          switch (m.kind) {
            case 'header': {
              const lineStart = bytes.indexOf('\r\n');
              const insertAt = lineStart < 0 ? bytes.length : lineStart + 2;
              const line = Buffer.from(`${m.name}: ${m.value}\r\n`, 'latin1');
              bytes = Buffer.concat([bytes.subarray(0, insertAt), line, bytes.subarray(insertAt)]);
              break;
            }
            case 'byte':
              bytes = Buffer.from(bytes);
              if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = m.byte;
              break;
            case 'truncate':
              bytes = bytes.subarray(0, at);
              break;
            case 'break':
              bytes = Buffer.concat([
                bytes.subarray(0, at),
                Buffer.from(m.text, 'latin1'),
                bytes.subarray(at),
              ]);
              break;
            case 'length': {
              const text = bytes.toString('latin1');
              bytes = Buffer.from(
                text.replace(/Content-Length: [^\r]*/i, `Content-Length: ${m.value}`),
                'latin1',
              );
              break;
            }
            case 'body': {
              if (headEnd < 0) break;
              const head = bytes
                .subarray(0, headEnd)
                .toString('latin1')
                .replace(/\r\nContent-Length: [^\r]*/i, '');
              bytes = Buffer.concat([
                Buffer.from(`${head}\r\nContent-Length: ${m.bytes.length}\r\n\r\n`, 'latin1'),
                Buffer.from(m.bytes),
              ]);
              break;
            }
            case 'again':
              bytes = Buffer.concat([bytes, base]);
              break;
          }
        }
        return bytes;
      };
      const fuzzCase = fc.record({
        base: fc.integer({ min: 0, max: bases.length - 1 }),
        mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
      });
      const mark = http.logs.length;
      let answered = 0;
      let silent = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(fuzzCase, { minLength: 8, maxLength: 8 }), async (cases) => {
          const results = await Promise.all(
            cases.map(async ({ base, mutations }) => {
              const bytes = mutate(bases[base]!, mutations);
              const raw = await Raw.open(port);
              try {
                await raw.write(bytes).catch(() => {});
                return { bytes, ...(await raw.drain(150, 3000)) };
              } finally {
                raw.destroy();
              }
            }),
          );
          for (const { bytes, replies } of results) {
            const shown = JSON.stringify(bytes.toString('latin1'));
            if (replies.length === 0) {
              silent++;
              continue;
            }
            answered++;
            for (const r of replies)
              assert.ok(r.status < 500, `${r.status} for ${shown}\n${r.head}\n${r.text}`);
          }
        }),
        { numRuns: 25 },
      );
      t.diagnostic(`${answered} connections answered, ${silent} closed or left unanswered`);
      assert.ok(answered > 50, `${answered} answered, ${silent} silent`);

      // Alive and well: a normal check-in, no waiter left behind, no error logged.
      const res = await once(checkinReq(token, body, { ifNoneMatch: `"${etag}"` }));
      assert.ok([200, 304].includes(res.status), res.text);
      assert.equal(res.by, 'agent');
      await until(() => server.app.reconciler.longpoll.size === 0, 'no waiter left');
      const since = http.logs.slice(mark).map((l) => JSON.parse(l) as LogLine);
      const errors = since.filter((l) => l.level >= 50 || l.msg === 'request failed');
      assert.deepEqual(errors, []);
      assert.ok(
        since.some((l) => l.msg === 'request' && l.status === 400),
        'the fuzz was logged',
      );
    });
  });

  describe('timeouts (a server with --request-timeout 1)', () => {
    let slow: HttpFixture;
    let token: string;
    const body = { id: 'idle-1', labels: LINUX_PROD };
    before(async () => {
      slow = await httpFixture({ requestTimeoutSeconds: 1 });
      token = await enroll(slow.server.url, 'idle-1');
    });
    after(async () => {
      await slow?.close();
    });

    it('closes a connection idle past keepAliveTimeout, not one within it', async () => {
      const node = slow.server.app.server;
      const saved = node.keepAliveTimeout;
      const short = await Raw.open(slow.port);
      const long = await Raw.open(slow.port);
      try {
        node.keepAliveTimeout = 300;
        await short.write(bytesOf(checkinReq(token, body)));
        assert.equal((await short.next()).status, 200);
        node.keepAliveTimeout = 10_000;
        await long.write(bytesOf(checkinReq(token, body)));
        assert.match((await long.next()).head, /\r\nKeep-Alive: timeout=10(?:\r\n|$)/);
        const started = Date.now();
        assert.ok(await short.closedWithin(2500), 'closed after its keep-alive');
        assert.ok(Date.now() - started >= 100, 'not before its timeout');
        await sleep(100);
        assert.equal(long.closed, false, 'a connection within its keep-alive stays');
        assert.equal(await short.maybeNext(0), undefined, 'closed without an answer');
      } finally {
        node.keepAliveTimeout = saved;
        short.destroy();
        long.destroy();
      }
    });

    it('answers half a head or half a body 408 REQUEST_TIMEOUT and closes (slowloris)', async () => {
      const text = json(body);
      for (const [what, bytes] of [
        [
          'half a head',
          `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n`,
        ],
        [
          'half a body',
          `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${text.length}\r\n\r\n` +
            text.slice(0, 10),
        ],
      ]) {
        const raw = await Raw.open(slow.port);
        try {
          const started = Date.now();
          await raw.write(bytes!);
          const res = await raw.next(5000);
          assert.equal(res.status, 408, what);
          assert.equal((JSON.parse(res.text) as ErrorBody).error.code, 'REQUEST_TIMEOUT', what);
          assert.ok(Date.now() - started >= 900, `${what}: not before the timeout`);
          assert.ok(await raw.closedWithin(2500), `${what}: closed`);
        } finally {
          raw.destroy();
        }
      }
    });

    it('a held long-poll outlives the request timeout', async () => {
      const etag = (await slow.targetOf(token, 'idle-1')).etag;
      const raw = await Raw.open(slow.port);
      try {
        await raw.write(
          bytesOf(
            checkinReq(token, body, { url: '/v1/checkin?wait=30', ifNoneMatch: `"${etag}"` }),
          ),
        );
        await until(() => slow.server.app.reconciler.longpoll.size === 1, 'held');
        assert.equal(await raw.maybeNext(2000), undefined, 'no 408 while held');
        assert.equal(raw.closed, false);
        slow.server.app.reconciler.longpoll.drain();
        assert.equal((await raw.next()).status, 304);
      } finally {
        raw.destroy();
      }
    });
  });
});
