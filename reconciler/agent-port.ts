// The agent port (`fleetwave serve --agent-port N`): the three agent routes (POST /v1/checkin
// with long-polls, POST /v1/enroll, GET /v1/agents/{id}/target) on a lean hand-written
// HTTP/1.1 server of their own, on a port of their own, calling agent-api.ts as the main
// port's handlers (agent-http.ts) do.
//
// Why: a check-in read by Node's parser costs more server CPU than the work it asks for
// (bench/checkin.bench.ts: a bare node:http server doing nothing reaches about half of nginx's
// check-ins per CPU-second; this port measures against it in the same run). Why a port of its
// own: two parsers in front of one connection are the classic request-smuggling set-up, so this
// one never hands a connection to another parser. It answers what it reads completely and
// plainly (parse.ts) and refuses everything else in the API's error shape, then closes: a
// proxy in front of it and this server can never disagree about where a request ends.
//
// Connections are counted with the main port's (one --max-connections); --request-timeout, the
// keep-alive timeout, request ids, the one log line per request and the shutdown drain are the
// main port's (http-server.ts, server.ts).

import { STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { FleetwaveError } from '../core/errors.ts';
import {
  authenticate,
  authenticateEnrollment,
  checkin,
  enroll,
  hold,
  parseJson,
  readTarget,
  type AgentAnswer,
  type AnswerSink,
  type CheckinWaiter,
} from './agent-api.ts';
import { bodyRoom } from './agent-http.ts';
import {
  MAX_HEAD,
  badHead,
  badPartialHead,
  headTooLarge,
  isJsonType,
  parseHead,
  type Head,
  type Refusal,
} from './agent-port/parse.ts';
import type { Reconciler } from './context.ts';
import { errorAnswer } from './errors.ts';
import { KEEP_ALIVE_MS, RequestLog, type ConnectionCap } from './http-server.ts';

export interface AgentPortOptions {
  ctx: Reconciler;
  log: FastifyBaseLogger;
  /** The main port's request id generator: one sequence for both. */
  requestId: () => string;
  /** --body-limit. */
  bodyLimit: number;
  /** --request-timeout: a request must arrive completely within it (then 408 and close). */
  requestTimeoutMs: number;
  /** --max-connections, shared with the main port. */
  connections: ConnectionCap;
}

/** Bytes a client may send ahead while its request is held; past this the connection is cut. */
const MAX_AHEAD = 64 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');
const KEEP_ALIVE_SECONDS = Math.floor(KEEP_ALIVE_MS / 1000);

// The Date header, formatted once a second.
let dateSecond = 0;
let dateValue = '';
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

const State = {
  /** Between requests. */
  Idle: 0,
  /** A request's bytes are arriving (timed by --request-timeout). */
  Reading: 1,
  /** A check-in is held (long-poll), or a target is being read from the store. */
  Waiting: 2,
  /** Answered with `connection: close`: whatever the client sends next is ignored. */
  Closed: 3,
} as const;
type State = (typeof State)[keyof typeof State];

/** The request being answered: what its answer's headers and log line need. */
interface Pending {
  id: string;
  method: string;
  url: string;
  started: number;
  /** Its answer closes the connection. */
  close: boolean;
}

const unsupportedType = (): Error =>
  // fastify's words and status (FST_ERR_CTP_INVALID_MEDIA_TYPE), as the main port answers.
  Object.assign(new Error('Unsupported Media Type'), { statusCode: 415 });

class Connection implements AnswerSink {
  readonly socket: Socket;
  readonly port: AgentPort;
  state: State = State.Idle;
  /** When the connection is cut if not Waiting (ms, performance.now()). */
  deadline: number;
  buffer: Buffer | undefined = undefined;
  /** The head of a request whose body is still arriving into `body`. */
  head: Head | undefined = undefined;
  body: Buffer | undefined = undefined;
  /** Bytes of `body` arrived so far. */
  filled = 0;
  pending: Pending | undefined = undefined;
  waiter: CheckinWaiter | undefined = undefined;

  constructor(socket: Socket, port: AgentPort) {
    this.socket = socket;
    this.port = port;
    this.deadline = performance.now() + port.requestTimeoutMs;
  }

  /** Bytes arrived. */
  read(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    const head = this.head;
    if (head !== undefined && this.filled < head.contentLength) {
      // The body of the request at hand, into its buffer (grown as it arrives).
      const taken = Math.min(chunk.length, head.contentLength - this.filled);
      this.body = bodyRoom(this.body!, this.filled, taken, head.contentLength);
      chunk.copy(this.body, this.filled, 0, taken);
      this.filled += taken;
      if (taken === chunk.length) {
        if (this.filled === head.contentLength) this.next();
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
      this.deadline = performance.now() + this.port.requestTimeoutMs;
    }
    this.next();
  }

  /**
   * Answers every complete request in the buffer, until one waits, the bytes run out, the
   * connection closes, or the client stops reading its answers (then reading pauses).
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
        if (end < 0) {
          if (buffer.length >= MAX_HEAD) this.refuse(headTooLarge());
          else if (badPartialHead(buffer)) this.refuse(badHead());
          return;
        }
        if (end + CRLF2.length > MAX_HEAD) {
          this.refuse(headTooLarge());
          return;
        }
        const parsed = parseHead(buffer.toString('latin1', 0, end), this.port.bodyLimit);
        if (parsed.refused) {
          this.refuse(parsed);
          return;
        }
        head = parsed;
        if (this.port.closing) {
          // Shutting down: answer and close, so the agent goes to another replica.
          this.buffer = undefined;
          this.begin(head);
          this.fail(new FleetwaveError('NOT_READY', 'the server is shutting down'));
          return;
        }
        const bodyAt = end + CRLF2.length;
        const bodyEnd = bodyAt + head.contentLength;
        if (buffer.length < bodyEnd) {
          // The rest of the body is on its way: into one buffer, filled as chunks arrive
          // (never the whole so far copied again on each chunk).
          this.head = head;
          const arrived = buffer.length - bodyAt;
          this.body = bodyRoom(undefined, 0, arrived, head.contentLength);
          this.filled = buffer.copy(this.body, 0, bodyAt);
          this.buffer = undefined;
          return;
        }
        text = head.contentLength > 0 ? buffer.toString('utf8', bodyAt, bodyEnd) : '';
        this.buffer = bodyEnd < buffer.length ? buffer.subarray(bodyEnd) : undefined;
      } else {
        const body = this.body;
        if (body === undefined || this.filled < head.contentLength) return;
        text = body.toString('utf8', 0, this.filled);
        this.body = undefined;
        this.head = undefined;
      }
      this.handle(head, text);
    }
  }

  private begin(head: Head): void {
    this.pending = {
      id: head.requestId ?? this.port.requestId(),
      method: head.method,
      url: head.url,
      started: performance.now(),
      close: head.close,
    };
  }

  /** A request that was read completely: answered through agent-api.ts. */
  private handle(head: Head, body: string): void {
    this.begin(head);
    const ctx = this.port.ctx;
    try {
      if (head.error !== undefined) throw head.error;
      if (head.route === 'checkin') {
        // The credential before the body, as the main port.
        const agentId = authenticate(ctx, head.authorization);
        this.json(head);
        const outcome = checkin(
          ctx,
          { agentId, ifNoneMatch: head.ifNoneMatch, wait: head.wait },
          { text: body },
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
        this.json(head);
        this.write(200, JSON.stringify(enroll(ctx, parseJson(body))), '');
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

  /** A body that is not JSON: 415, and the connection closes. */
  private json(head: Head): void {
    if (isJsonType(head.contentType)) return;
    this.pending!.close = true;
    throw unsupportedType();
  }

  /** An agent answer, now or when a held check-in is released or expires. */
  answer(answer: AgentAnswer): void {
    if (answer.status === 200) {
      const { target, body } = answer.served;
      this.write(200, body, `etag: "${target.etag}"\r\ncache-control: no-cache\r\n`);
    } else {
      this.send(
        304,
        `etag: "${answer.etag}"\r\ncache-control: no-cache\r\n` +
          `fleetwave-poll-after: ${answer.pollAfterSeconds}\r\n`,
        undefined,
      );
    }
  }

  private fail(error: unknown, status?: number): void {
    const id = this.pending?.id ?? '';
    const answer = errorAnswer(error, id);
    if (answer.internal) this.port.log.error({ reqId: id, err: error }, 'request failed');
    this.write(
      status ?? answer.status,
      JSON.stringify(answer.body),
      answer.retryAfter === undefined ? '' : `retry-after: ${answer.retryAfter}\r\n`,
    );
  }

  /**
   * A request refused (an unusual shape, too large, too slow): its answer, then the
   * connection closes, and nothing more it sent is read.
   */
  refuse(refusal: Refusal): void {
    this.buffer = undefined;
    this.head = undefined;
    this.body = undefined;
    this.pending = {
      id: this.port.requestId(),
      method: refusal.method ?? '',
      url: refusal.url ?? '',
      started: performance.now(),
      close: true,
    };
    this.fail(refusal.error, refusal.status);
  }

  /** A JSON answer. */
  private write(status: number, text: string, headers: string): void {
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
    const port = this.port;
    const close = pending.close || port.closing;
    const socket = this.socket;
    const head =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n${headers}` +
      `x-request-id: ${pending.id}\r\ndate: ${httpDate()}\r\n` +
      (close
        ? 'connection: close\r\n\r\n'
        : `connection: keep-alive\r\nkeep-alive: timeout=${KEEP_ALIVE_SECONDS}\r\n\r\n`);
    // One write: the head is ASCII, so the whole answer is one UTF-8 string.
    socket.write(body === undefined ? head : head + body);
    port.requests.answered(status, pending.id, pending.method, pending.url, pending.started);
    if (close) {
      socket.end();
      this.buffer = undefined;
      this.state = State.Closed;
      // A client that does not close its side is cut at the next sweep past this.
      this.deadline = performance.now() + 1000;
      return;
    }
    const wasWaiting = this.state === State.Waiting;
    this.state = this.buffer === undefined ? State.Idle : State.Reading;
    this.deadline =
      performance.now() + (this.state === State.Idle ? KEEP_ALIVE_MS : port.requestTimeoutMs);
    // Requests the client sent ahead while this one was held.
    if (wasWaiting && this.state === State.Reading) setImmediate(() => this.next());
  }

  /** The client went away, or the connection was cut. */
  closed(): void {
    if (this.waiter !== undefined) this.port.ctx.longpoll.remove(this.waiter);
    this.waiter = undefined;
    this.pending = undefined;
    this.buffer = undefined;
    this.body = undefined;
  }
}

// Socket listeners shared by every connection: `this` is the socket.
const CONNECTION = Symbol('fleetwave.agentPort');
type Tagged = Socket & { [CONNECTION]?: Connection };
function onData(this: Tagged, chunk: Buffer): void {
  this[CONNECTION]?.read(chunk);
}
function onEnd(this: Tagged): void {
  // As node:http does by default: a client's FIN ends the exchange; answers already written
  // are still delivered, a held or partial request is dropped.
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
function onError(this: Socket): void {
  this.destroy();
}
function onClose(this: Tagged): void {
  const connection = this[CONNECTION];
  if (!connection) return;
  this[CONNECTION] = undefined;
  connection.closed();
  connection.port.forget(connection);
}

export class AgentPort {
  readonly ctx: Reconciler;
  readonly log: FastifyBaseLogger;
  readonly requestId: () => string;
  readonly bodyLimit: number;
  readonly requestTimeoutMs: number;
  /** Shutting down: every answer closes its connection, new requests get 503. */
  closing = false;
  private readonly connectionCap: ConnectionCap;
  readonly requests: RequestLog;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sweepMs: number;

  constructor(options: AgentPortOptions) {
    this.ctx = options.ctx;
    this.log = options.log;
    this.requestId = options.requestId;
    this.bodyLimit = options.bodyLimit;
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.connectionCap = options.connections;
    this.requests = new RequestLog(options.log);
    // How often node:http checks its timeouts on the main port (http-server.ts).
    this.sweepMs = Math.max(250, Math.min(5000, options.requestTimeoutMs / 4));
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Listens on `host`:`port` (0 picks a free one); resolves with the port. */
  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  /** The port it listens on (0 before). */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  /** Connections open on this port now. */
  get size(): number {
    return this.connections.size;
  }

  private accept(socket: Socket): void {
    socket.on('error', onError);
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (!this.connectionCap.admit(socket)) {
      socket.resume(); // whatever the client sends is not read
      return;
    }
    const connection = new Connection(socket, this);
    (socket as Tagged)[CONNECTION] = connection;
    this.connections.add(connection);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    this.sweeper ??= setInterval(() => this.sweep(), this.sweepMs).unref();
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
    if (this.connections.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /**
   * A request still arriving past --request-timeout gets 408 and its connection closes; one
   * idle past the keep-alive timeout closes. Held check-ins are not timed (--max-wait is).
   */
  private sweep(): void {
    const now = performance.now();
    for (const c of this.connections) {
      if (c.state === State.Waiting || c.deadline >= now) continue;
      if (c.state === State.Reading && c.pending === undefined) {
        // The words of errors.ts's clientError for the main port's timeouts.
        c.refuse({
          refused: true,
          status: 408,
          error: new FleetwaveError(
            'REQUEST_TIMEOUT',
            'the request did not arrive completely in time',
          ),
          method: undefined,
          url: undefined,
        });
      } else {
        c.socket.destroy();
      }
    }
  }

  /**
   * Shutting down, once the held long-polls were answered (server.ts preClose): no new
   * connections, idle ones close now, busy ones after their answer. Resolves once every
   * connection of this port has closed.
   */
  close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    for (const c of this.connections) {
      if (c.state !== State.Idle) continue;
      c.state = State.Closed;
      c.deadline = performance.now() + 1000;
      c.socket.end();
    }
    return closed;
  }
}
