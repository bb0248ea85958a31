// The fast path: the agent API on lean HTTP/1.1, in front of fastify on the same port.
//
// Every connection the server accepts starts here. A request of the exact shape agents send
// (POST /v1/checkin or /v1/enroll with a JSON body of Content-Length bytes, or GET
// /v1/agents/{id}/target; HTTP/1.1, plain headers) is answered here through agent-api.ts, the
// code the fastify routes call too. Anything else, at any request boundary, is handed over
// with the bytes read so far to node:http and fastify, which then own the connection: the
// operator API, webhooks, metrics, the status page, and every unusual shape (chunked bodies,
// Expect, HTTP/1.0, oversized or odd headers) get the full implementation and its answers.
//
// Why: a check-in through node:http and fastify costs about four times the CPU of this path,
// and a held long-poll about four times the memory (IncomingMessage, ServerResponse, parser and
// framework state per request); bench/checkin.bench.ts and bench/fanout.bench.ts measure both.

import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { parse as secureJsonParse } from 'secure-json-parse';
import { FleetwaveError } from '../../core/errors.ts';
import {
  authenticate,
  authenticateEnrollment,
  checkin,
  enroll,
  hold,
  readTarget,
  type AgentAnswer,
  type AnswerSink,
  type CheckinWaiter,
} from '../../reconciler/agent-api.ts';
import type { Reconciler } from '../../reconciler/context.ts';
import { errorAnswer, writeErrorAndClose } from '../../reconciler/errors.ts';

export interface FastPathOptions {
  ctx: Reconciler;
  log: FastifyBaseLogger;
  /** The request id generator fastify uses too, so ids are unique across both paths. */
  requestId: () => string;
  /** fastify's bodyLimit: a larger body is handed over (and answered 413 there). */
  bodyLimit: number;
  /** Open connections (both paths) past which a new one is answered 503 and closed. */
  maxConnections: number;
}

/** A request head larger than this is handed over (node:http answers 431 past its own limit). */
const MAX_HEAD = 8 * 1024;
/** The largest body this path reads (agents send about 1 KB); larger ones are handed over. */
const MAX_BODY = 64 * 1024;
/** Bytes a client may send ahead while its request is held; past this the connection is cut. */
const MAX_AHEAD = 64 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');

const REQUEST_LINE = /^(GET|POST) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
/** A header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a header value may not hold: control characters other than tab (so no CR, LF, NUL). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const TARGET_PATH = /^\/v1\/agents\/([A-Za-z0-9][A-Za-z0-9._:@-]{0,252})\/target$/;
const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

type Route = 'checkin' | 'enroll' | 'target';

interface Head {
  route: Route;
  method: 'GET' | 'POST';
  url: string;
  /** ?wait= of a check-in ('' when absent). */
  wait: string;
  /** The id in GET /v1/agents/{id}/target. */
  agentId: string;
  contentLength: number;
  authorization: string | undefined;
  ifNoneMatch: string | undefined;
  requestId: string | undefined;
  close: boolean;
}

/** line[from..] without the optional white space (spaces, tabs) around a header value. */
function withoutOws(line: string, from: number): string {
  let to = line.length;
  while (from < to && (line.charCodeAt(from) === 32 || line.charCodeAt(from) === 9)) from++;
  while (to > from && (line.charCodeAt(to - 1) === 32 || line.charCodeAt(to - 1) === 9)) to--;
  return line.slice(from, to);
}

/**
 * The head of a request this path answers, or undefined to hand it over. Strict on purpose:
 * whatever it does not recognize exactly is node:http's to judge.
 */
export function parseHead(text: string, maxBody: number): Head | undefined {
  let end = text.indexOf('\r\n');
  const line = REQUEST_LINE.exec(end < 0 ? text : text.slice(0, end));
  if (!line) return undefined;
  const method = line[1] as 'GET' | 'POST';
  const url = line[2]!;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  let route: Route;
  let wait = '';
  let agentId = '';
  if (method === 'POST' && path === '/v1/checkin') {
    route = 'checkin';
    if (query !== '') {
      const m = /^wait=(\d{0,6})$/.exec(query);
      if (!m) return undefined;
      wait = m[1]!;
    }
  } else if (method === 'POST' && path === '/v1/enroll' && query === '') {
    route = 'enroll';
  } else if (method === 'GET' && query === '') {
    const m = TARGET_PATH.exec(path);
    if (!m) return undefined;
    route = 'target';
    agentId = m[1]!;
  } else {
    return undefined;
  }
  let hosts = 0;
  let contentLength: number | undefined;
  let contentType: string | undefined;
  let authorization: string | undefined;
  let ifNoneMatch: string | undefined;
  let requestId: string | undefined;
  let close = false;
  while (end >= 0) {
    const start = end + 2;
    end = text.indexOf('\r\n', start);
    const line = end < 0 ? text.slice(start) : text.slice(start, end);
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    const value = withoutOws(line, colon + 1);
    if (!TOKEN.test(name) || CONTROL.test(value)) return undefined;
    switch (name.toLowerCase()) {
      case 'host':
        hosts++;
        break;
      case 'content-length':
        if (contentLength !== undefined || !/^\d{1,9}$/.test(value)) return undefined;
        contentLength = Number(value);
        break;
      case 'content-type':
        if (contentType !== undefined) return undefined;
        contentType = value;
        break;
      case 'authorization':
        if (authorization !== undefined) return undefined;
        authorization = value;
        break;
      case 'if-none-match':
        ifNoneMatch = ifNoneMatch === undefined ? value : `${ifNoneMatch}, ${value}`;
        break;
      case 'x-request-id':
        if (requestId !== undefined || !REQUEST_ID.test(value)) return undefined;
        requestId = value;
        break;
      case 'connection': {
        const tokens = value.toLowerCase().split(',');
        for (const t of tokens) {
          const token = t.trim();
          if (token === 'close') close = true;
          else if (token !== 'keep-alive' && token !== '') return undefined;
        }
        break;
      }
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
      case 'content-encoding':
        return undefined;
    }
  }
  if (hosts !== 1) return undefined;
  if (method === 'POST') {
    if (contentLength === undefined || contentLength === 0 || contentLength > maxBody)
      return undefined;
    if (contentType === undefined || !JSON_TYPE.test(contentType)) return undefined;
  } else if (contentLength !== undefined && contentLength !== 0) {
    return undefined;
  }
  return {
    route,
    method,
    url,
    wait,
    agentId,
    contentLength: contentLength ?? 0,
    authorization,
    ifNoneMatch,
    requestId,
    close,
  };
}

// The Date header, formatted once a second.
let dateSecond = 0;
let dateValue = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

const State = {
  /** Between requests. */
  Idle: 0,
  /** A request's bytes are arriving. */
  Reading: 1,
  /** A check-in is held (long-poll). */
  Waiting: 2,
  /** Answered with `connection: close`: whatever the client sends next is ignored. */
  Closed: 3,
} as const;
type State = (typeof State)[keyof typeof State];

/** The request being answered, kept for its answer's headers and log line. */
interface Pending {
  id: string;
  method: string;
  url: string;
  started: number;
  close: boolean;
}

class Connection implements AnswerSink {
  readonly socket: Socket;
  readonly path: FastPath;
  state: State = State.Idle;
  /** When the connection is cut if it is still Idle or Reading (ms, performance.now()). */
  deadline: number;
  buffer: Buffer | undefined = undefined;
  /** The head of a request whose body is still arriving into `body`. */
  head: Head | undefined = undefined;
  body: Buffer | undefined = undefined;
  /** Bytes of `body` arrived so far. */
  filled = 0;
  pending: Pending | undefined = undefined;
  waiter: CheckinWaiter | undefined = undefined;

  constructor(socket: Socket, path: FastPath) {
    this.socket = socket;
    this.path = path;
    this.deadline = performance.now() + path.headersTimeoutMs;
  }

  /** Bytes arrived. */
  read(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    const body = this.body;
    if (body !== undefined && this.filled < body.length) {
      // The body of the request at hand: into the buffer allocated for it, once.
      const taken = chunk.copy(body, this.filled);
      this.filled += taken;
      if (taken === chunk.length) {
        if (this.filled === body.length) this.next();
        return;
      }
      chunk = chunk.subarray(taken); // the next request, sent ahead
    }
    const buffer = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
    this.buffer = buffer;
    if (this.state === State.Waiting) {
      if (buffer.length > MAX_AHEAD) this.socket.destroy();
      return;
    }
    if (this.state === State.Idle) {
      this.state = State.Reading;
      this.deadline = performance.now() + this.path.headersTimeoutMs;
    }
    this.next();
  }

  /**
   * Answers every complete request in the buffer, until one waits, the bytes run out, or the
   * client stops reading its answers (then reading pauses until they drain).
   */
  next(): void {
    while (this.state === State.Reading) {
      if (this.socket.writableNeedDrain) {
        this.socket.pause();
        this.socket.once('drain', onDrain);
        return;
      }
      let head = this.head;
      let text: string;
      if (head === undefined) {
        const buffer = this.buffer;
        if (buffer === undefined) return;
        const end = buffer.indexOf(CRLF2);
        if (end < 0 || end > MAX_HEAD) {
          // A line ended by a bare LF never makes the CRLF CRLF this path waits for: node:http
          // judges it now rather than after the request timeout.
          if (end > MAX_HEAD || buffer.length > MAX_HEAD || hasBareLf(buffer)) this.handOver();
          return;
        }
        head = parseHead(buffer.toString('latin1', 0, end), this.path.maxBody);
        if (head === undefined || this.path.closing) {
          if (head !== undefined) {
            // Shutting down: answer and close, so the agent goes to another replica.
            this.buffer = undefined;
            this.begin(head);
            this.fail(new FleetwaveError('NOT_READY', 'the server is shutting down'));
            return;
          }
          this.handOver();
          return;
        }
        const bodyAt = end + 4;
        const bodyEnd = bodyAt + head.contentLength;
        if (buffer.length < bodyEnd) {
          // The rest of the body is on its way: one buffer of Content-Length bytes, filled as
          // chunks arrive (never the whole so far copied again on each chunk).
          this.head = head;
          this.body = Buffer.allocUnsafe(head.contentLength);
          this.filled = buffer.copy(this.body, 0, bodyAt);
          this.buffer = undefined;
          return;
        }
        text = head.contentLength > 0 ? buffer.toString('utf8', bodyAt, bodyEnd) : '';
        this.buffer = bodyEnd < buffer.length ? buffer.subarray(bodyEnd) : undefined;
      } else {
        const body = this.body;
        if (body === undefined || this.filled < body.length) return;
        text = body.toString('utf8');
        this.body = undefined;
        this.head = undefined;
      }
      this.handle(head, text);
    }
  }

  private begin(head: Head): void {
    this.pending = {
      id: head.requestId ?? this.path.requestId(),
      method: head.method,
      url: head.url,
      started: performance.now(),
      close: head.close,
    };
  }

  private handle(head: Head, body: string): void {
    this.begin(head);
    const ctx = this.path.ctx;
    try {
      if (head.route === 'checkin') {
        const agentId = authenticate(ctx, head.authorization);
        const outcome = checkin(
          ctx,
          { agentId, ifNoneMatch: head.ifNoneMatch, wait: head.wait },
          parseJson(body),
        );
        if (outcome.status === 'wait') {
          this.state = State.Waiting;
          this.waiter = hold(ctx, outcome, this);
          return;
        }
        const started = this.pending!.started;
        this.answer(outcome);
        ctx.metrics.checkinDuration.observe((performance.now() - started) / 1000);
      } else if (head.route === 'enroll') {
        authenticateEnrollment(ctx, head.authorization);
        this.json(200, JSON.stringify(enroll(ctx, parseJson(body))), '');
      } else {
        const agentId = authenticate(ctx, head.authorization);
        const answer = readTarget(ctx, { agentId, ifNoneMatch: head.ifNoneMatch }, head.agentId);
        if (answer instanceof Promise) {
          // Looked up in the store: held like a long-poll, so pipelined requests wait their turn.
          this.state = State.Waiting;
          answer.then(
            (a) => this.answer(a),
            (e: unknown) => this.fail(e),
          );
        } else {
          this.answer(answer);
        }
      }
    } catch (e) {
      this.fail(e);
    }
  }

  /** An agent answer, now or when a held check-in is released or expires. */
  answer(answer: AgentAnswer): void {
    if (answer.status === 200) {
      const { target, body } = answer.served;
      this.json(200, body, `etag: "${target.etag}"\r\ncache-control: no-cache\r\n`);
    } else {
      this.send(
        304,
        `etag: "${answer.etag}"\r\ncache-control: no-cache\r\n` +
          `fleetwave-poll-after: ${answer.pollAfterSeconds}\r\n`,
        undefined,
      );
    }
  }

  private fail(error: unknown): void {
    const id = this.pending?.id ?? '';
    const { status, body, retryAfter, internal } = errorAnswer(error, id);
    if (internal) this.path.log.error({ reqId: id, err: error }, 'request failed');
    this.json(
      status,
      JSON.stringify(body),
      retryAfter === undefined ? '' : `retry-after: ${retryAfter}\r\n`,
    );
  }

  private json(status: number, text: string, headers: string): void {
    this.send(
      status,
      `${headers}content-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\n`,
      text,
    );
  }

  private send(status: number, headers: string, body: string | undefined): void {
    const pending = this.pending;
    if (pending === undefined || this.socket.destroyed) return;
    this.pending = undefined;
    this.waiter = undefined;
    const close = pending.close || this.path.closing;
    const socket = this.socket;
    const head =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n${headers}` +
      `x-request-id: ${pending.id}\r\ndate: ${httpDate()}\r\n` +
      (close
        ? 'connection: close\r\n\r\n'
        : `connection: keep-alive\r\nkeep-alive: timeout=${this.path.keepAliveSeconds}\r\n\r\n`);
    // One write: the head is ASCII, so the whole answer is one UTF-8 string.
    socket.write(body === undefined ? head : head + body);
    this.path.logged(pending, status);
    if (close) {
      socket.end();
      this.buffer = undefined;
      this.state = State.Closed;
      this.deadline = performance.now() + this.path.headersTimeoutMs;
      return;
    }
    const wasWaiting = this.state === State.Waiting;
    this.state = this.buffer === undefined ? State.Idle : State.Reading;
    this.deadline =
      performance.now() +
      (this.state === State.Idle ? this.path.keepAliveMs : this.path.headersTimeoutMs);
    // Requests the client sent ahead while this one was held.
    if (wasWaiting && this.state === State.Reading) setImmediate(() => this.next());
  }

  /** Gives the connection, and the bytes read of the request at hand, to node:http. */
  private handOver(): void {
    const buffer = this.buffer;
    this.buffer = undefined;
    this.head = undefined;
    this.path.release(this);
    this.path.handOver(this.socket, buffer);
  }

  /** The client went away, or the connection was cut. */
  closed(): void {
    if (this.waiter !== undefined) this.path.ctx.longpoll.remove(this.waiter);
    this.waiter = undefined;
    this.pending = undefined;
    this.buffer = undefined;
    this.body = undefined;
  }
}

/** Whether the bytes hold an LF not preceded by CR (within the largest head read). */
function hasBareLf(buffer: Buffer): boolean {
  const end = Math.min(buffer.length, MAX_HEAD);
  for (let at = buffer.indexOf(0x0a); at >= 0 && at < end; at = buffer.indexOf(0x0a, at + 1)) {
    if (at === 0 || buffer[at - 1] !== 0x0d) return true;
  }
  return false;
}

function parseJson(text: string): unknown {
  try {
    // fastify's JSON parser: __proto__ and constructor.prototype keys are refused.
    return secureJsonParse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    // fastify's words (FST_ERR_CTP_INVALID_JSON_BODY), so both paths answer alike.
    throw new FleetwaveError(
      'REQUEST_INVALID',
      "Body is not valid JSON but content-type is set to 'application/json'",
    );
  }
}

// Socket listeners shared by every connection: `this` is the socket.
const CONNECTION = Symbol('fleetwave.fastpath');
type Tagged = Socket & { [CONNECTION]?: Connection };
function onData(this: Tagged, chunk: Buffer): void {
  this[CONNECTION]?.read(chunk);
}
function onEnd(this: Tagged): void {
  // As node:http does by default (httpAllowHalfOpen false): a client's FIN ends the exchange;
  // answers already written are still delivered, a held or partial request is dropped.
  const state = this[CONNECTION]?.state;
  if (state === State.Idle || state === State.Closed) this.end();
  else this.destroy();
}
function onDrain(this: Tagged): void {
  const connection = this[CONNECTION];
  if (!connection) return;
  this.resume();
  connection.next();
}
function onError(this: Tagged): void {
  this.destroy();
}
function onClose(this: Tagged): void {
  const connection = this[CONNECTION];
  if (!connection) return;
  connection.closed();
  connection.path.release(connection);
}

type ConnectionListener = (socket: Socket) => void;

export class FastPath {
  readonly ctx: Reconciler;
  readonly log: FastifyBaseLogger;
  readonly requestId: () => string;
  /** fastify's bodyLimit, at most MAX_BODY. */
  readonly maxBody: number;
  readonly maxConnections: number;
  /** Open connections, on this path and handed over. */
  open = 0;
  closing = false;
  private readonly enabled: (level: string) => boolean;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly httpListeners: ConnectionListener[];
  private sweeper: NodeJS.Timeout | undefined;

  /** Puts the fast path in front of `server`'s own connection handling. */
  constructor(server: Server, options: FastPathOptions) {
    this.server = server;
    this.ctx = options.ctx;
    this.log = options.log;
    // pino's, when there is one; fastify's no-op logger (logger: false) has none.
    const isLevelEnabled = (options.log as { isLevelEnabled?: (level: string) => boolean })
      .isLevelEnabled;
    this.enabled =
      typeof isLevelEnabled === 'function'
        ? (level) => isLevelEnabled.call(options.log, level)
        : () => false;
    this.requestId = options.requestId;
    this.maxBody = Math.min(options.bodyLimit, MAX_BODY);
    this.maxConnections = options.maxConnections;
    this.httpListeners = server.listeners('connection') as ConnectionListener[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => this.accept(socket));
  }

  /** How long a request may take to arrive: node:http's headersTimeout, at most 60 s. */
  get headersTimeoutMs(): number {
    return Math.min(this.server.headersTimeout || 60_000, 60_000);
  }

  /** How long a connection may idle between requests: node:http's keepAliveTimeout. */
  get keepAliveMs(): number {
    return this.server.keepAliveTimeout || 5000;
  }

  get keepAliveSeconds(): number {
    return Math.max(1, Math.floor(this.keepAliveMs / 1000));
  }

  /** Connections on the fast path now. */
  get size(): number {
    return this.connections.size;
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Counted until the socket closes, on this path or after a hand-over.
    this.open++;
    socket.once('close', () => this.open--);
    if (this.open > this.maxConnections) {
      // Past the cap (set below the open-file limit, so git keeps descriptors to run): a
      // clean 503 the agent backs off from, then the connection closes.
      socket.on('error', onError);
      socket.resume(); // whatever the client sends is not read
      writeErrorAndClose(
        socket,
        503,
        new FleetwaveError(
          'TOO_MANY_CONNECTIONS',
          'the server has as many open connections as it may; retry later',
          { details: { retryAfter: Math.max(1, Math.round(5 + 10 * this.ctx.random())) } },
        ),
      );
      return;
    }
    const connection = new Connection(socket, this);
    (socket as Tagged)[CONNECTION] = connection;
    this.connections.add(connection);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    this.sweeper ??= setInterval(() => this.sweep(), 1000).unref();
  }

  /** Stops tracking a connection (closed, or handed over). */
  release(connection: Connection): void {
    const socket = connection.socket as Tagged;
    if (socket[CONNECTION] !== connection) return;
    socket[CONNECTION] = undefined;
    this.connections.delete(connection);
    if (this.connections.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  handOver(socket: Socket, buffer: Buffer | undefined): void {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', onClose);
    socket.off('drain', onDrain);
    if (buffer !== undefined) socket.unshift(buffer);
    for (const listener of this.httpListeners) listener.call(this.server, socket);
  }

  /** One log line per request, as fastify's onResponse hook writes for the other routes. */
  logged(pending: Pending, status: number): void {
    // As server.ts's onResponse hook: the steady stream of check-ins only at debug level.
    const level =
      status >= 500
        ? 'error'
        : status >= 400
          ? 'warn'
          : pending.url === '/v1/enroll'
            ? 'info'
            : 'debug';
    if (!this.enabled(level)) return;
    this.log[level](
      {
        reqId: pending.id,
        method: pending.method,
        url: pending.url,
        status,
        ms: Math.round(performance.now() - pending.started),
      },
      'request',
    );
  }

  /** Cuts connections idle past the keep-alive timeout or slow to send a request. */
  private sweep(): void {
    const now = performance.now();
    for (const c of this.connections) {
      if (c.state !== State.Waiting && c.deadline < now) c.socket.destroy();
    }
  }

  /**
   * Shutting down (after the long-polls were answered): idle connections close now, busy ones
   * after their answer, new requests get 503 and a close.
   */
  close(): void {
    this.closing = true;
    for (const c of this.connections) {
      if (c.state === State.Idle) c.socket.end();
    }
  }
}
