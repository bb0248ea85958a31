// The fast path (reconciler/fastpath.ts) against the real server on a loopback port: the same
// answers as the fastify routes (differential, app.inject), hand-over of every unusual shape
// to node:http on the same connection, byte shapes (1-byte writes, pipelining), a fuzz of
// mutated request bytes, long-polls, timeouts, shutdown, logs and metrics. Raw node:net
// sockets throughout, since the bytes on the wire are the point.

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { initialRolloutState } from '../../core/rollout/state.ts';
import { issueAgentToken } from '../../reconciler/auth.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  enroll,
  metric,
  startServer,
  testConfig,
  type Running,
} from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: exact bytes out, every answer on the connection parsed back.

/** Which implementation wrote an answer, told by its head (see fastpath.ts `send`). */
type By = 'fast' | 'http';

interface Reply {
  status: number;
  /** The head as sent, without the blank line. */
  head: string;
  /** Lowercase names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  by: By;
}

// The fast path ends every head with these lines, lowercase, in this order, and writes no
// capitalized header; node:http writes `Date` and `Connection` capitalized (and fastify's
// client-error answers `Content-Length` and `Content-Type`; its other headers are lowercase).
const FAST_TAIL =
  /\r\nx-request-id: [\x21-\x7e]+\r\ndate: [^\r]+\r\nconnection: (?:keep-alive\r\nkeep-alive: timeout=\d+|close)$/;
const HTTP_MARK = /\r\n[A-Z][A-Za-z-]*: /;

/** Who wrote the head; undefined when it looks like both or neither. */
function whoAnswered(status: number, head: string): By | undefined {
  if (status < 200) return 'http'; // node:http's 100 Continue; the fast path never sends 1xx
  const fast = FAST_TAIL.test(head);
  const http = HTTP_MARK.test(head);
  return fast === http ? undefined : fast ? 'fast' : 'http';
}

/** A chunked body's bytes and where it ends, or undefined while incomplete. */
function dechunk(buffer: Buffer, from: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const eol = buffer.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(buffer.toString('latin1', at, eol), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size in an answer');
    if (size === 0) {
      const end = buffer.indexOf('\r\n\r\n', eol);
      return end < 0 ? undefined : { body: Buffer.concat(parts), end: end + 4 };
    }
    if (buffer.length < eol + 2 + size + 2) return undefined;
    parts.push(buffer.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

class Raw {
  readonly socket: Socket;
  closed = false;
  /** When the last byte arrived (ms, Date.now()). */
  lastData = Date.now();
  private buffer: Buffer = Buffer.alloc(0);
  private readonly replies: Reply[] = [];
  private readonly wakers = new Set<() => void>();
  private problem: string | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.lastData = Date.now();
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse(false);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.parse(true);
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(port: number, allowHalfOpen = false): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
      const raw = new Raw(socket);
      socket.once('connect', () => resolve(raw));
      socket.once('error', reject);
    });
  }

  write(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (e) => (e ? reject(e) : resolve())),
    );
  }

  /** The next answer; fails after `ms` or when the connection closes first. */
  async next(ms = 5000): Promise<Reply> {
    const reply = await this.maybeNext(ms);
    if (reply) return reply;
    throw new Error(this.closed ? 'closed without an answer' : `no answer within ${ms} ms`);
  }

  /** The next answer, or undefined after `ms` or on close. */
  async maybeNext(ms: number): Promise<Reply | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.problem) throw new Error(this.problem);
      const reply = this.replies.shift();
      if (reply) return reply;
      if (this.closed || Date.now() >= deadline) return undefined;
      await this.sleep(deadline - Date.now());
    }
  }

  /** Whether the server closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await this.sleep(deadline - Date.now());
    return this.closed;
  }

  /** Every answer until the connection closes or stays quiet for `quietMs` (at most `ms`). */
  async drain(quietMs: number, ms: number): Promise<{ replies: Reply[]; closed: boolean }> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      const quietAt = this.lastData + quietMs;
      if (Date.now() >= quietAt) break;
      await this.sleep(Math.min(quietAt, deadline) - Date.now());
    }
    if (this.problem) throw new Error(this.problem);
    return { replies: this.replies.splice(0), closed: this.closed };
  }

  destroy(): void {
    this.socket.destroy();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.wakers.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  private parse(atClose: boolean): void {
    while (this.problem === undefined) {
      const buffer = this.buffer;
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) {
        if (atClose && buffer.length > 0) this.problem = `a partial answer: ${buffer}`;
        return;
      }
      const head = buffer.toString('latin1', 0, end);
      const lines = head.split('\r\n');
      const status = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(lines[0]!);
      if (!status) {
        this.problem = `not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`;
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const m = /^([^:]+): ?(.*)$/.exec(line);
        if (!m) {
          this.problem = `not a header line: ${JSON.stringify(line)}`;
          return;
        }
        const name = m[1]!.toLowerCase();
        headers[name] = headers[name] === undefined ? m[2]! : `${headers[name]}, ${m[2]}`;
      }
      const code = Number(status[1]);
      const by = whoAnswered(code, head);
      if (by === undefined) {
        this.problem = `cannot tell who wrote this head:\n${head}`;
        return;
      }
      const from = end + 4;
      let body: Buffer;
      let to: number;
      if (code < 200 || code === 204 || code === 304) {
        body = Buffer.alloc(0);
        to = from;
      } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        const chunked = dechunk(buffer, from);
        if (!chunked) return;
        ({ body, end: to } = chunked);
      } else if (headers['content-length'] !== undefined) {
        to = from + Number(headers['content-length']);
        if (buffer.length < to) return;
        body = buffer.subarray(from, to);
      } else {
        if (!atClose) return;
        to = buffer.length;
        body = buffer.subarray(from);
      }
      this.replies.push({
        status: code,
        head,
        headers,
        body,
        text: body.toString('utf8'),
        by,
      });
      this.buffer = buffer.subarray(to);
    }
  }
}

interface Req {
  method?: string;
  url: string;
  version?: string;
  /** Header lines in order, after `Host` (none with host: false). */
  headers?: Array<[string, string]>;
  body?: string | Buffer;
  /** Content-Length from the body unless false or given in headers. */
  length?: boolean;
  host?: boolean;
}

/** A request's exact bytes. */
function bytesOf(r: Req): Buffer {
  const body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
  let head = `${r.method ?? (body ? 'POST' : 'GET')} ${r.url} ${r.version ?? 'HTTP/1.1'}\r\n`;
  if (r.host !== false) head += 'Host: 127.0.0.1\r\n';
  for (const [name, value] of r.headers ?? []) head += `${name}: ${value}\r\n`;
  const given = (r.headers ?? []).some(([n]) => /^content-length$/i.test(n));
  if (body && r.length !== false && !given) head += `Content-Length: ${body.length}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a failure after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `condition` holds, at most `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() >= deadline) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(5);
  }
}

// ---------------------------------------------------------------------------------------------
// Agent requests, sent either way: a raw socket (the fast path) or app.inject (fastify).

interface AgentCall {
  method: 'GET' | 'POST';
  url: string;
  /** The whole Authorization header value. */
  auth?: string;
  ifNoneMatch?: string;
  body?: string;
  contentType?: string;
  extra?: Array<[string, string]>;
}

function reqOf(c: AgentCall): Req {
  const headers: Array<[string, string]> = [];
  if (c.auth !== undefined) headers.push(['Authorization', c.auth]);
  if (c.ifNoneMatch !== undefined) headers.push(['If-None-Match', c.ifNoneMatch]);
  if (c.body !== undefined) headers.push(['Content-Type', c.contentType ?? 'application/json']);
  headers.push(...(c.extra ?? []));
  return {
    method: c.method,
    url: c.url,
    headers,
    ...(c.body === undefined ? {} : { body: c.body }),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  text: string;
}

const COMPARED = ['etag', 'cache-control', 'content-type', 'fleetwave-poll-after'] as const;

/** The two answers alike: status, body (parsed and as text) and the headers agents read. */
function assertSame(fast: Reply, other: Answer, label: string): void {
  assert.equal(fast.status, other.status, `${label}: status; bodies ${fast.text} | ${other.text}`);
  if (fast.text !== '' || other.text !== '') {
    assert.deepEqual(JSON.parse(fast.text), JSON.parse(other.text), `${label}: body`);
  }
  assert.equal(fast.text, other.text, `${label}: body bytes`);
  for (const name of COMPARED) {
    assert.equal(fast.headers[name], other.headers[name], `${label}: ${name}`);
  }
  assert.equal(
    fast.headers['retry-after'] !== undefined,
    other.headers['retry-after'] !== undefined,
    `${label}: retry-after`,
  );
}

async function injected(app: FastifyInstance, c: AgentCall): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (c.auth !== undefined) headers.authorization = c.auth;
  if (c.ifNoneMatch !== undefined) headers['if-none-match'] = c.ifNoneMatch;
  if (c.body !== undefined) headers['content-type'] = c.contentType ?? 'application/json';
  for (const [n, v] of c.extra ?? []) headers[n.toLowerCase()] = v;
  const res = await app.inject({
    method: c.method,
    url: c.url,
    headers,
    ...(c.body === undefined ? {} : { payload: c.body }),
  });
  const out: Record<string, string | undefined> = {};
  for (const [n, v] of Object.entries(res.headers)) {
    out[n] = v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : String(v);
  }
  return { status: res.statusCode, headers: out, text: res.body };
}

interface Target {
  etag: string;
  revision: string;
  version: string;
}

interface ErrorBody {
  error: { code: string; message: string };
}

const bearer = (token: string) => `Bearer ${token}`;
const json = (value: unknown) => JSON.stringify(value);

/** A pino line as captured. */
interface LogLine {
  level: number;
  msg?: string;
  reqId?: string;
  method?: string;
  url?: string;
  status?: number;
  ms?: number;
}

// ---------------------------------------------------------------------------------------------

describe('the agent API fast path', () => {
  let repo: FleetRepo;
  let server: Running;
  let port: number;
  const logs: string[] = [];
  const lines = (): LogLine[] => logs.map((l) => JSON.parse(l) as LogLine);

  /** One request on a fresh connection; its answer. */
  async function once(r: Req | Buffer, ms = 5000): Promise<Reply> {
    const raw = await Raw.open(port);
    try {
      await raw.write(Buffer.isBuffer(r) ? r : bytesOf(r));
      return await raw.next(ms);
    } finally {
      raw.destroy();
    }
  }

  const checkinReq = (
    token: string,
    body: unknown,
    options: { url?: string; ifNoneMatch?: string; extra?: Array<[string, string]> } = {},
  ): Req =>
    reqOf({
      method: 'POST',
      url: options.url ?? '/v1/checkin',
      auth: bearer(token),
      body: json(body),
      ...(options.ifNoneMatch === undefined ? {} : { ifNoneMatch: options.ifNoneMatch }),
      ...(options.extra === undefined ? {} : { extra: options.extra }),
    });

  /** The agent's current target (a fast-path check-in without an etag). */
  async function targetOf(token: string, id: string, labels = LINUX_PROD): Promise<Target> {
    const res = await once(checkinReq(token, { id, labels }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.by, 'fast');
    return JSON.parse(res.text) as Target;
  }

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, maxWaiters: 2 }),
      {
        logger: {
          level: 'debug',
          stream: { write: (line: string) => void logs.push(line) },
        },
      },
    );
    port = Number(new URL(server.url).port);
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
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

    /** Sends `call` both ways, fast path first, and compares; returns the fast answer. */
    async function compare(call: AgentCall, label: string, by: By = 'fast'): Promise<Reply> {
      const fast = await once(reqOf(call));
      assert.equal(fast.by, by, `${label}: answered by ${fast.by}\n${fast.head}`);
      assertSame(fast, await injected(server.app, call), label);
      return fast;
    }

    it('check-ins, target reads and enrollments: same status, body and headers', async () => {
      const own = { id: 'diff-a', labels: LINUX_PROD };
      const post = (body: unknown, more: Partial<AgentCall> = {}): AgentCall => ({
        method: 'POST',
        url: '/v1/checkin',
        auth: bearer(a),
        body: typeof body === 'string' ? body : json(body),
        ...more,
      });
      const get = (id: string, more: Partial<AgentCall> = {}): AgentCall => ({
        method: 'GET',
        url: `/v1/agents/${id}/target`,
        auth: bearer(a),
        ...more,
      });
      const enrolling = (body: unknown, auth: string | null = bearer(ENROLL_TOKEN)) => ({
        method: 'POST' as const,
        url: '/v1/enroll',
        ...(auth === null ? {} : { auth }),
        body: json(body),
      });
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
        ['wait not a number', post(own, { url: '/v1/checkin?wait=soon' }), 400, 'http'],
        ['wait twice', post(own, { url: '/v1/checkin?wait=1&wait=2' }), 400, 'http'],
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
        ['target, encoded id', get('diff%2Da'), 200, 'http'],
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
        assert.deepEqual([twoLines.status, twoLines.by], [304, 'fast'], pair.join());
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

    it('429 with Retry-After past maxWaiters, on both paths', async () => {
      const held = await Promise.all([Raw.open(port), Raw.open(port)]);
      try {
        const wait = post30(a, etag);
        for (const raw of held) await raw.write(bytesOf(reqOf(wait)));
        await until(() => server.app.reconciler.longpoll.size === 2, 3000, 'two held');
        const fast = await compare(wait, '429');
        assert.equal(fast.status, 429);
        assert.equal((JSON.parse(fast.text) as ErrorBody).error.code, 'TOO_MANY_WAITERS');
        assert.match(fast.headers['retry-after'] ?? '', /^[1-9]\d*$/);
      } finally {
        for (const raw of held) raw.destroy();
      }
      await until(() => server.app.reconciler.longpoll.size === 0, 3000, 'released on close');
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
        // Keys fastify's parser refuses (__proto__, constructor) get other messages on the fast
        // path: a known difference, tested on its own below.
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
          assert.equal(fast.by, q === '?wait=x' ? 'http' : 'fast', fast.head);
          if (fast.by === 'fast') fastAnswered++;
          assert.ok([200, 304, 400, 401, 403, 422].includes(fast.status), fast.text);
          assertSame(fast, await injected(server.app, call), `${q} ${tag} ${text}`);
        }),
        { numRuns: 100 },
      );
      assert.ok(fastAnswered >= 50, `only ${fastAnswered} of 100 took the fast path`);
    });

    it('malformed JSON and poisoned keys get the same 400 message as fastify', async () => {
      for (const text of [
        '{"id": "diff-a", "labels": {',
        '{"id":"diff-a","labels":{},"__proto__":{"x":1}}',
        '{"id":"diff-a","labels":{},"constructor":{"prototype":{"x":1}}}',
      ]) {
        const call: AgentCall = {
          method: 'POST',
          url: '/v1/checkin',
          auth: bearer(a),
          body: text,
        };
        await compare(call, text);
      }
    });

    it('an agent id over 100 characters reads its target the same way on both paths', async () => {
      const id = `long-${'x'.repeat(120)}`;
      const token = await enroll(server.url, id);
      const fast = await compare(
        { method: 'GET', url: `/v1/agents/${id}/target`, auth: bearer(token) },
        'long id',
      );
      assert.equal(fast.status, 200);
    });
  });

  describe('which path answered', () => {
    it('the fast path writes lowercase x-request-id, date and connection last', async () => {
      const token = await enroll(server.url, 'who-1');
      const res = await once(checkinReq(token, { id: 'who-1', labels: LINUX_PROD }));
      assert.equal(res.status, 200);
      assert.equal(res.by, 'fast');
      assert.match(res.head, /\r\nx-request-id: req-[0-9a-z]+\r\n/);
      assert.match(res.head, /\r\ndate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/);
      assert.match(res.head, /\r\nconnection: keep-alive\r\nkeep-alive: timeout=\d+$/);
      assert.doesNotMatch(res.head, /\r\n(Date|Connection|Keep-Alive): /);
      assert.ok(Math.abs(Date.parse(res.headers.date!) - Date.now()) < 5000, res.headers.date);
    });

    it('node:http writes Date and Connection capitalized for what is handed over', async () => {
      const res = await once({ url: '/healthz' });
      assert.equal(res.status, 200);
      assert.equal(res.by, 'http');
      assert.match(res.head, /\r\nDate: /);
      assert.match(res.head, /\r\nConnection: keep-alive\r\n/);
      assert.match(res.head, /\r\nx-request-id: req-[0-9a-z]+\r\n/, 'fastify sets the request id');
      assert.doesNotMatch(res.head, /\r\ndate: /);
    });
  });

  describe('hands unusual requests over to node:http', () => {
    let token: string;
    let body: unknown;
    let target: Target;
    before(async () => {
      token = await enroll(server.url, 'hand-1');
      body = { id: 'hand-1', labels: LINUX_PROD };
      target = await targetOf(token, 'hand-1');
    });

    it('keeps one connection working across the hand-over', async () => {
      const raw = await Raw.open(port);
      try {
        const checkin = bytesOf(checkinReq(token, body, { ifNoneMatch: `"${target.etag}"` }));
        await raw.write(checkin);
        const first = await raw.next();
        assert.deepEqual([first.status, first.by], [304, 'fast']);
        await raw.write(bytesOf({ url: '/healthz' }));
        const health = await raw.next();
        assert.deepEqual([health.status, health.by], [200, 'http']);
        assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
        await raw.write(checkin);
        const second = await raw.next();
        assert.deepEqual([second.status, second.by], [304, 'http']);
        assert.equal(second.headers.etag, first.headers.etag);
        assert.equal(second.headers['fleetwave-poll-after'], first.headers['fleetwave-poll-after']);
        await raw.write(bytesOf(checkinReq(token, body)));
        const full = await raw.next();
        assert.deepEqual([full.status, full.by], [200, 'http']);
        assert.deepEqual(JSON.parse(full.text), target);
        assert.equal(raw.closed, false, 'still one open connection');
      } finally {
        raw.destroy();
      }
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
        const viaHttp = await once({
          method: 'POST',
          url: '/v1/checkin',
          headers,
          body: chunked,
          length: false,
        });
        const viaFast = await once(
          checkinReq(token, body, ifNoneMatch === undefined ? {} : { ifNoneMatch }),
        );
        assert.equal(viaHttp.by, 'http');
        assert.equal(viaFast.by, 'fast');
        assertSame(
          viaFast,
          { status: viaHttp.status, headers: viaHttp.headers, text: viaHttp.text },
          `chunked ${ifNoneMatch}`,
        );
        assert.equal(viaHttp.status, ifNoneMatch === `"${target.etag}"` ? 304 : 200);
      }
    });

    it('Expect: 100-continue goes to node:http, which asks for the body', async () => {
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
        assert.deepEqual([res.status, res.by], [200, 'http']);
        assert.deepEqual(JSON.parse(res.text), target);
      } finally {
        raw.destroy();
      }
    });

    it('HTTP/1.0, duplicate Content-Length, TE with CL, no Host: node:http answers, never 5xx', async () => {
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
      assert.deepEqual([old.status, old.by], [200, 'http']);
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
      assert.equal(dup.by, 'http');
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
      assert.deepEqual([both.status, both.by], [400, 'http'], both.head);

      const hostless = await once({ url: '/v1/checkin', host: false, headers: base, body: text });
      assert.deepEqual([hostless.status, hostless.by], [400, 'http']);

      const twoHosts = await once({
        url: '/v1/checkin',
        headers: [...base, ['Host', 'other']],
        body: text,
      });
      assert.equal(twoHosts.by, 'http');
      assert.ok(twoHosts.status < 500, twoHosts.head);
    });

    it('a head over 8 KiB is handed over (node:http answers; 431 past its own limit)', async () => {
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
          assert.deepEqual([res.status, res.by], [status, 'http'], res.head);
          if (status === 200) assert.deepEqual(JSON.parse(res.text), target);
        } finally {
          raw.destroy();
        }
      }
    });

    it('a head over 8 KiB that arrives in one piece is handed over too', async () => {
      for (const [pad, status] of [
        [9 * 1024, 200],
        [20 * 1024, 431],
      ] as const) {
        const res = await once(checkinReq(token, body, { extra: [['X-Pad', 'p'.repeat(pad)]] }));
        assert.deepEqual([res.status, res.by], [status, 'http']);
      }
    });

    it('a body over the limit gets 413 REQUEST_TOO_LARGE from fastify', async () => {
      const big = json({ id: 'hand-1', labels: { ...LINUX_PROD, note: 'x'.repeat(20 * 1024) } });
      const res = await once({
        url: '/v1/checkin',
        headers: [
          ['Authorization', bearer(token)],
          ['Content-Type', 'application/json'],
        ],
        body: big,
      });
      assert.deepEqual([res.status, res.by], [413, 'http']);
      assert.equal((JSON.parse(res.text) as ErrorBody).error.code, 'REQUEST_TOO_LARGE');
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
        assert.deepEqual([res.status, res.by], [status, 'http'], `${type}: ${res.text}`);
        assert.equal((JSON.parse(res.text) as ErrorBody).error.code, code);
        assertSame(res, await injected(server.app, call), type);
      }
    });
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
          assert.equal(res.by, 'fast');
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
          assert.deepEqual([res.status, res.by], [304, 'fast'], `split at ${at}`);
        }
      } finally {
        raw.destroy();
      }
    });

    it('pipelined requests in one write are answered in order', async () => {
      const raw = await Raw.open(port);
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
          answers.map((r) => [r.headers['x-request-id'], r.status, r.by]),
          [
            ['pipe-1', 200, 'fast'],
            ['pipe-2', 304, 'fast'],
            ['pipe-3', 200, 'fast'],
            ['pipe-4', 401, 'fast'],
          ],
        );
        assert.deepEqual(JSON.parse(answers[0]!.text), target);
        assert.deepEqual(JSON.parse(answers[2]!.text), target);
      } finally {
        raw.destroy();
      }
    });

    it('a pipelined request of another shape is handed over after the ones before it', async () => {
      const raw = await Raw.open(port);
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
          answers.map((r) => [r.headers['x-request-id'], r.status, r.by]),
          [
            ['mixed-1', 200, 'fast'],
            ['mixed-2', 200, 'http'],
            ['mixed-3', 200, 'http'],
          ],
        );
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
        assert.deepEqual([res.status, res.by], [200, 'fast']);
        assert.match(res.head, /\r\nconnection: close$/);
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
        await until(() => longpoll.size === 1, 3000, 'the long-poll is held');
        assert.equal(await raw.maybeNext(300), undefined, 'nothing answered while held');
        longpoll.drain();
        const held = await raw.next();
        const behind = await raw.next();
        assert.deepEqual(
          [held.headers['x-request-id'], held.status, held.by],
          ['held', 304, 'fast'],
        );
        assert.deepEqual(
          [behind.headers['x-request-id'], behind.status, behind.by],
          ['behind', 200, 'fast'],
        );
        assert.deepEqual(JSON.parse(behind.text), target);
      } finally {
        raw.destroy();
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
      const mark = logs.length;
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
      assert.equal(res.by, 'fast');
      await until(() => server.app.reconciler.longpoll.size === 0, 3000, 'no waiter left');
      const since = logs.slice(mark).map((l) => JSON.parse(l) as LogLine);
      const errors = since.filter((l) => l.level >= 50 || l.msg === 'request failed');
      assert.deepEqual(errors, []);
      assert.ok(
        since.some((l) => l.msg === 'request' && l.status === 400),
        'the fuzz was logged',
      );
    });
  });

  describe('long-polls', () => {
    let token: string;
    const body = { id: 'poll-1', labels: LINUX_PROD };
    before(async () => {
      token = await enroll(server.url, 'poll-1');
    });
    const hold = async (etag: string, id = 'poll'): Promise<Raw> => {
      const raw = await Raw.open(port);
      await raw.write(
        bytesOf(
          checkinReq(token, body, {
            url: '/v1/checkin?wait=30',
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
      await until(() => longpoll.size === 1, 3000, 'held');
      assert.equal(await raw.maybeNext(200), undefined);
      assert.equal(longpoll.size, 1);
      raw.destroy();
      await until(() => longpoll.size === 0, 3000, 'removed when the socket closed');
    });

    it('drain() answers 304 with fleetwave-poll-after', async () => {
      const longpoll = server.app.reconciler.longpoll;
      const etag = (await targetOf(token, 'poll-1')).etag;
      const raw = await hold(etag, 'drained');
      try {
        await until(() => longpoll.size === 1, 3000, 'held');
        longpoll.drain();
        const res = await raw.next();
        assert.deepEqual([res.status, res.by], [304, 'fast']);
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
        await until(() => longpoll.size === 1, 3000, 'held');
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
        assert.deepEqual([res.status, res.by], [200, 'fast']);
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

  describe('timeouts', () => {
    let token: string;
    const body = { id: 'idle-1', labels: LINUX_PROD };
    before(async () => {
      token = await enroll(server.url, 'idle-1');
    });

    it('closes a fast-path connection idle past keepAliveTimeout', async () => {
      const http = server.app.server;
      const saved = http.keepAliveTimeout;
      const short = await Raw.open(port);
      const long = await Raw.open(port);
      try {
        http.keepAliveTimeout = 300;
        await short.write(bytesOf(checkinReq(token, body)));
        const res = await short.next();
        assert.deepEqual([res.status, res.by], [200, 'fast']);
        assert.match(res.head, /\r\nkeep-alive: timeout=1$/);
        http.keepAliveTimeout = 10_000;
        await long.write(bytesOf(checkinReq(token, body)));
        assert.match((await long.next()).head, /\r\nkeep-alive: timeout=10$/);
        const started = Date.now();
        assert.ok(await short.closedWithin(2500), 'closed within the sweep');
        assert.ok(Date.now() - started >= 100, 'not before its timeout');
        await sleep(100);
        assert.equal(long.closed, false, 'a connection within its keep-alive stays');
        assert.equal(await short.maybeNext(0), undefined, 'closed without an answer');
      } finally {
        http.keepAliveTimeout = saved;
        short.destroy();
        long.destroy();
      }
    });

    it('closes a connection that sends half a head past headersTimeout', async () => {
      const http = server.app.server;
      const saved = http.headersTimeout;
      const raw = await Raw.open(port);
      try {
        http.headersTimeout = 400;
        await raw.write(
          `POST /v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(token)}\r\n`,
        );
        assert.ok(await raw.closedWithin(2500), 'closed within the sweep');
        assert.equal(await raw.maybeNext(0), undefined);
      } finally {
        http.headersTimeout = saved;
        raw.destroy();
      }
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

    it('one log line per fast-path request, at debug for 2xx/3xx and warn for 4xx', async () => {
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
        assert.deepEqual([res.status, res.by], [status, 'fast']);
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

    it('fast-path check-ins count in the check-in metrics', async () => {
      const read = async () => (await server.app.inject({ url: '/metrics' })).body;
      const count = (text: string) => metric(text, 'fleetwave_checkin_duration_seconds_count') ?? 0;
      const notModified = (text: string) =>
        metric(text, 'fleetwave_checkins_total', { result: 'not_modified' }) ?? 0;
      const targets = (text: string) =>
        metric(text, 'fleetwave_checkins_total', { result: 'target' }) ?? 0;
      const before = await read();
      for (let i = 0; i < 3; i++) {
        const res = await once(checkinReq(token, body, { ifNoneMatch: `"${etag}"` }));
        assert.deepEqual([res.status, res.by], [304, 'fast']);
      }
      const full = await once(checkinReq(token, body));
      assert.deepEqual([full.status, full.by], [200, 'fast']);
      const after = await read();
      assert.equal(count(after) - count(before), 4);
      assert.equal(notModified(after) - notModified(before), 3);
      assert.equal(targets(after) - targets(before), 1);
    });
  });
});

describe('fast-path shutdown', () => {
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
      assert.deepEqual([first.status, first.by], [200, 'fast']);
      const etag = (JSON.parse(first.text) as Target).etag;
      const held = await Raw.open(port);
      clients.push(held);
      await held.write(request({ url: '/v1/checkin?wait=30', ifNoneMatch: `"${etag}"` }));
      await until(() => server.app.reconciler.longpoll.size === 1, 3000, 'held');

      closing = server.close();
      await within(closing, 5000, 'close()');
      const answer = await held.next(1000);
      assert.deepEqual([answer.status, answer.by], [304, 'fast']);
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
