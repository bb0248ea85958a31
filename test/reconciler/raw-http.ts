// A raw HTTP/1.1 client for tests of the reconciler's HTTP server: exact bytes out, every
// answer on the connection parsed back (node:net, since the bytes on the wire are the point),
// and which handler answered a request: the agent routes' raw handlers or fastify's routes.

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mock } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { ServeConfig } from '../../reconciler/config.ts';
import { AgentHttp } from '../../reconciler/agent-http.ts';
import { FleetRepo, LINUX_PROD, startServer, testConfig, type Running } from './helpers.ts';

/** Which handler answered: agent-http.ts's raw handlers, or fastify's routes. */
export type By = 'agent' | 'fastify';

/** Counts the requests the agent routes' raw handlers took, while installed. */
export function trackHandlers(): { taken(): number; restore(): void } {
  const route = mock.method(AgentHttp.prototype, 'route');
  return {
    taken: () => route.mock.calls.filter((c) => c.result === true).length,
    restore: () => route.mock.restore(),
  };
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: exact bytes out, every answer on the connection parsed back.

export interface Reply {
  status: number;
  /** The head as sent, without the blank line. */
  head: string;
  /** Lowercase names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
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

export class Raw {
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
      });
      this.buffer = buffer.subarray(to);
    }
  }
}

export interface Req {
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
export function bytesOf(r: Req): Buffer {
  const body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
  let head = `${r.method ?? (body ? 'POST' : 'GET')} ${r.url} ${r.version ?? 'HTTP/1.1'}\r\n`;
  if (r.host !== false) head += 'Host: 127.0.0.1\r\n';
  for (const [name, value] of r.headers ?? []) head += `${name}: ${value}\r\n`;
  const given = (r.headers ?? []).some(([n]) => /^content-length$/i.test(n));
  if (body && r.length !== false && !given) head += `Content-Length: ${body.length}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a failure after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
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

// ---------------------------------------------------------------------------------------------
// Agent requests, sent either way: a raw socket (the server, as agents reach it) or app.inject
// (fastify's routes).

export interface AgentCall {
  method: 'GET' | 'POST';
  url: string;
  /** The whole Authorization header value. */
  auth?: string;
  ifNoneMatch?: string;
  body?: string;
  contentType?: string;
  extra?: Array<[string, string]>;
}

export function reqOf(c: AgentCall): Req {
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

export interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  text: string;
}

export const COMPARED = ['etag', 'cache-control', 'content-type', 'fleetwave-poll-after'] as const;

/** The two answers alike: status, body (parsed and as text) and the headers agents read. */
export function assertSame(raw: Reply, other: Answer, label: string): void {
  assert.equal(raw.status, other.status, `${label}: status; bodies ${raw.text} | ${other.text}`);
  if (raw.text !== '' || other.text !== '') {
    assert.deepEqual(JSON.parse(raw.text), JSON.parse(other.text), `${label}: body`);
  }
  assert.equal(raw.text, other.text, `${label}: body bytes`);
  for (const name of COMPARED) {
    assert.equal(raw.headers[name], other.headers[name], `${label}: ${name}`);
  }
  assert.equal(
    raw.headers['retry-after'] !== undefined,
    other.headers['retry-after'] !== undefined,
    `${label}: retry-after`,
  );
}

export async function injected(app: FastifyInstance, c: AgentCall): Promise<Answer> {
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

export interface Target {
  etag: string;
  revision: string;
  version: string;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export const bearer = (token: string) => `Bearer ${token}`;
export const json = (value: unknown) => JSON.stringify(value);

/**
 * The agent requests the differential tests send, as agent `token`: a check-in (`post`), a
 * target read (`get`) and an enrollment (`enrolling`; `auth` null sends no credential).
 */
export function agentCalls(token: string, enrollToken: string) {
  return {
    post: (body: unknown, more: Partial<AgentCall> = {}): AgentCall => ({
      method: 'POST',
      url: '/v1/checkin',
      auth: bearer(token),
      body: typeof body === 'string' ? body : json(body),
      ...more,
    }),
    get: (id: string, more: Partial<AgentCall> = {}): AgentCall => ({
      method: 'GET',
      url: `/v1/agents/${id}/target`,
      auth: bearer(token),
      ...more,
    }),
    enrolling: (body: unknown, auth: string | null = bearer(enrollToken)): AgentCall => ({
      method: 'POST',
      url: '/v1/enroll',
      ...(auth === null ? {} : { auth }),
      body: json(body),
    }),
  };
}

/** A pino line as captured. */
export interface LogLine {
  level: number;
  msg?: string;
  reqId?: string;
  method?: string;
  url?: string;
  status?: number;
  ms?: number;
}

/** What a test file of the HTTP server works with: the real server, its log, its clients. */
export interface HttpFixture {
  repo: FleetRepo;
  server: Running;
  port: number;
  logs: string[];
  lines(): LogLine[];
  /** One request on a fresh connection; its answer, and which handler gave it. */
  once(r: Req | Buffer, ms?: number): Promise<Reply & { by: By }>;
  /** The agent's current target (a check-in without an etag). */
  targetOf(token: string, id: string, labels?: Record<string, string>): Promise<Target>;
  /** Requests the agent routes' raw handlers took so far. */
  taken(): number;
  close(): Promise<void>;
}

/** A check-in's request, with the agent's token. */
export const checkinReq = (
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

/** The server on a fresh fleet repository, logging at debug into `logs`. */
export async function httpFixture(overrides: Partial<ServeConfig> = {}): Promise<HttpFixture> {
  const repo = await FleetRepo.create();
  const logs: string[] = [];
  const server = await startServer(
    testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, ...overrides }),
    { logger: { level: 'debug', stream: { write: (line: string) => void logs.push(line) } } },
  );
  const port = Number(new URL(server.url).port);
  const handlers = trackHandlers();
  const once = async (r: Req | Buffer, ms = 5000): Promise<Reply & { by: By }> => {
    const raw = await Raw.open(port);
    const taken = handlers.taken();
    try {
      await raw.write(Buffer.isBuffer(r) ? r : bytesOf(r));
      const reply = await raw.next(ms);
      return { ...reply, by: handlers.taken() > taken ? 'agent' : 'fastify' };
    } finally {
      raw.destroy();
    }
  };
  return {
    repo,
    server,
    port,
    logs,
    lines: () => logs.map((l) => JSON.parse(l) as LogLine),
    once,
    taken: () => handlers.taken(),
    async targetOf(token, id, labels = LINUX_PROD) {
      const res = await once(checkinReq(token, { id, labels }));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.by, 'agent');
      return JSON.parse(res.text) as Target;
    },
    async close() {
      handlers.restore();
      await server.close();
      await repo.cleanup();
    },
  };
}
