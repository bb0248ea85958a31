// The agent routes (enroll, check in, read a target) as raw node:http handlers, ahead of
// fastify's routing: agents' requests are most of the traffic, and fastify's request, reply,
// hooks and content-type parsing per request cost more than the work the route does.
// `route` answers a request of the shape agents send and returns false for anything else
// (a percent-encoded id, another content type or encoding, a body over the limit, a repeated
// query…), which fastify's routes (routes/agents.ts) then answer: both call agent-api.ts, so
// they answer alike. Node's parser has read the request either way: nothing is spliced.
//
// What fastify's hooks do for its routes is done here, from the same functions: the
// X-Request-Id header (http-server.ts requestIdOf), the error shape and its status (errors.ts
// errorAnswer), the one log line (RequestLog). No other fastify hook or plugin runs for
// these three routes: one added later must be added here too (README, Architecture).

import type { IncomingMessage, ServerResponse } from 'node:http';
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
import type { Reconciler } from './context.ts';
import { errorAnswer } from './errors.ts';
import { RequestLog, requestIdOf } from './http-server.ts';

export interface AgentHttpOptions {
  ctx: Reconciler;
  log: FastifyBaseLogger;
  /** The request id generator fastify uses too. */
  requestId: () => string;
  /** --body-limit: a larger body is fastify's to refuse (413). */
  bodyLimit: number;
}

const TARGET_PATH = /^\/v1\/agents\/([A-Za-z0-9][A-Za-z0-9._:@-]{0,252})\/target$/;
const WAIT_QUERY = /^wait=(\d{0,6})$/;
const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;
const JSON_HEADERS = 'application/json; charset=utf-8';

type Route = 'checkin' | 'enroll' | 'target';

/** The request being answered: what its answer's headers and log line need. */
class Exchange implements AnswerSink {
  readonly http: AgentHttp;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly started = performance.now();
  waiter: CheckinWaiter | undefined = undefined;

  constructor(http: AgentHttp, req: IncomingMessage, res: ServerResponse) {
    this.http = http;
    this.req = req;
    this.res = res;
    this.id = requestIdOf(req, http.requestId);
  }

  /** An agent answer, now or when a held check-in is released or expires. */
  answer(answer: AgentAnswer): void {
    this.waiter = undefined;
    if (answer.status === 200) {
      const { target, body } = answer.served;
      this.send(200, body, ['etag', `"${target.etag}"`, 'cache-control', 'no-cache']);
    } else {
      this.send(304, undefined, [
        'etag',
        `"${answer.etag}"`,
        'cache-control',
        'no-cache',
        'fleetwave-poll-after',
        String(answer.pollAfterSeconds),
      ]);
    }
  }

  fail(error: unknown): void {
    this.waiter = undefined;
    const { status, body, retryAfter, internal } = errorAnswer(error, this.id);
    if (internal) this.http.log.error({ reqId: this.id, err: error }, 'request failed');
    this.send(
      status,
      JSON.stringify(body),
      retryAfter === undefined ? [] : ['retry-after', String(retryAfter)],
    );
  }

  /** Writes the answer: `headers` as name, value, name, value… */
  send(status: number, body: string | undefined, headers: string[]): void {
    const res = this.res;
    if (res.headersSent || res.destroyed) return;
    if (body !== undefined) {
      headers.push('content-type', JSON_HEADERS, 'content-length', String(Buffer.byteLength(body)));
    }
    headers.push('x-request-id', this.id);
    // Shutting down: the agent goes to another replica on its next request.
    if (this.http.closing) headers.push('connection', 'close');
    res.writeHead(status, headers);
    res.end(body);
    this.http.requests.answered(status, this.id, this.req.method, this.req.url ?? '', this.started);
  }
}

/** The held check-in's client went away: `this` is its response. */
function onHeldClose(this: ServerResponse & { [EXCHANGE]?: Exchange }): void {
  const exchange = this[EXCHANGE];
  if (exchange?.waiter !== undefined) exchange.http.ctx.longpoll.remove(exchange.waiter);
}
const EXCHANGE = Symbol('fleetwave.exchange');
const NO_HEADERS = Object.freeze([]) as unknown as string[];
const NO_HEADER_VALUES: IncomingMessage['headers'] = Object.freeze({});

/** A body declared up to this size gets its whole buffer at once: agents send about 1 KB. */
export const BODY_AT_ONCE = 16 * 1024;

/**
 * The buffer of a body of `length` declared bytes with room for `adding` more after `filled`:
 * `buffer` itself, or a larger copy. A larger body's buffer grows (doubling, up to `length`)
 * as its bytes arrive, so a head alone that declares a large body never makes the server hold
 * that much: memory follows the bytes received.
 */
export function bodyRoom(
  buffer: Buffer | undefined,
  filled: number,
  adding: number,
  length: number,
): Buffer {
  const needed = filled + adding;
  if (buffer !== undefined && needed <= buffer.length) return buffer;
  const size =
    length <= BODY_AT_ONCE
      ? length
      : Math.min(length, Math.max(needed, BODY_AT_ONCE, 2 * (buffer?.length ?? 0)));
  const grown = Buffer.allocUnsafe(size);
  buffer?.copy(grown, 0, 0, filled);
  return grown;
}

export class AgentHttp {
  readonly ctx: Reconciler;
  readonly log: FastifyBaseLogger;
  readonly requestId: () => string;
  readonly bodyLimit: number;
  /** Shutting down: every answer closes its connection, new requests get 503. */
  closing = false;
  readonly requests: RequestLog;

  constructor(options: AgentHttpOptions) {
    this.ctx = options.ctx;
    this.log = options.log;
    this.requestId = options.requestId;
    this.bodyLimit = options.bodyLimit;
    this.requests = new RequestLog(options.log);
  }

  /** Answers `req` if it is an agent route of the usual shape; false leaves it to fastify. */
  route(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '';
    const method = req.method;
    let route: Route;
    let wait = '';
    let agentId = '';
    if (method === 'POST') {
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      if (path === '/v1/checkin') {
        if (q >= 0) {
          const m = WAIT_QUERY.exec(url.slice(q + 1));
          if (!m) return false;
          wait = m[1]!;
        }
        route = 'checkin';
      } else if (url === '/v1/enroll') {
        route = 'enroll';
      } else {
        return false;
      }
      const headers = req.headers;
      const type = headers['content-type'];
      if (type === undefined || !JSON_TYPE.test(type)) return false;
      const encoding = headers['content-encoding'];
      if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return false;
      const length = headers['content-length'];
      if (length !== undefined && Number(length) > this.bodyLimit) return false;
    } else if (method === 'GET') {
      const m = TARGET_PATH.exec(url);
      if (!m) return false;
      const headers = req.headers;
      if (headers['transfer-encoding'] !== undefined) return false;
      const length = headers['content-length'];
      if (length !== undefined && length !== '0') return false;
      route = 'target';
      agentId = m[1]!;
    } else {
      return false;
    }
    const exchange = new Exchange(this, req, res);
    if (this.closing) {
      exchange.fail(new FleetwaveError('NOT_READY', 'the server is shutting down'));
      return true;
    }
    try {
      if (route === 'checkin') {
        // The credential is checked before the body is read, as fastify's onRequest hook does.
        const id = authenticate(this.ctx, req.headers.authorization);
        this.body(exchange, (text) => this.checkin(exchange, id, wait, text));
      } else if (route === 'enroll') {
        authenticateEnrollment(this.ctx, req.headers.authorization);
        this.body(exchange, (text) => {
          const enrolled = enroll(this.ctx, parseJson(text));
          exchange.send(200, JSON.stringify(enrolled), []);
        });
      } else {
        this.target(exchange, agentId);
      }
    } catch (e) {
      exchange.fail(e);
    }
    return true;
  }

  private checkin(exchange: Exchange, agentId: string, wait: string, text: string): void {
    const ctx = this.ctx;
    const outcome = checkin(
      ctx,
      { agentId, ifNoneMatch: header(exchange.req.headers['if-none-match']), wait },
      { text },
    );
    if (outcome.status !== 'wait') {
      exchange.answer(outcome);
      ctx.metrics.checkinDuration.observe((performance.now() - exchange.started) / 1000);
      return;
    }
    exchange.waiter = hold(ctx, outcome, exchange);
    // Held for up to --max-wait: its headers were read (node:http reads none of them again, the
    // answer and its log line need only the url and method), so they are not kept meanwhile.
    const req = exchange.req;
    req.rawHeaders = NO_HEADERS;
    req.headers = NO_HEADER_VALUES;
    const res = exchange.res as ServerResponse & { [EXCHANGE]?: Exchange };
    res[EXCHANGE] = exchange;
    // 'close' comes once: `on` spares the wrapper `once` makes for every held check-in.
    res.on('close', onHeldClose);
  }

  private target(exchange: Exchange, id: string): void {
    const headers = exchange.req.headers;
    const agentId = authenticate(this.ctx, headers.authorization);
    const answer = readTarget(
      this.ctx,
      { agentId, ifNoneMatch: header(headers['if-none-match']) },
      id,
    );
    if (answer instanceof Promise) {
      // Looked up in the store.
      answer.then(
        (a) => exchange.answer(a),
        (e: unknown) => exchange.fail(e),
      );
    } else {
      exchange.answer(answer);
    }
  }

  /**
   * Reads the body (at most --body-limit bytes), then `then(text)`; a throw answers in the
   * error shape. A body of known length goes into one buffer, filled as chunks arrive (never
   * the whole so far copied again on each chunk) and grown as they do (bodyRoom).
   */
  private body(exchange: Exchange, then: (text: string) => void): void {
    const req = exchange.req;
    const declared = req.headers['content-length'];
    const limit = this.bodyLimit;
    const length = declared === undefined ? undefined : Number(declared);
    let buffer: Buffer | undefined =
      length === undefined ? undefined : bodyRoom(undefined, 0, 0, length);
    let chunks: Buffer[] | undefined = buffer === undefined ? [] : undefined;
    let filled = 0;
    req.on('data', (chunk: Buffer) => {
      if (buffer !== undefined) {
        // node:http stops at Content-Length: the chunk fits in it.
        buffer = bodyRoom(buffer, filled, chunk.length, length!);
        filled += chunk.copy(buffer, filled);
        return;
      }
      filled += chunk.length;
      if (filled > limit) {
        // A chunked body past the limit: answered now, the connection closes after it.
        chunks = undefined;
        req.removeAllListeners('data');
        req.removeAllListeners('end');
        exchange.res.shouldKeepAlive = false;
        exchange.fail(
          Object.assign(new Error('Request body is too large'), { statusCode: 413 }) as Error,
        );
        req.resume();
        return;
      }
      chunks!.push(chunk);
    });
    req.once('end', () => {
      req.removeAllListeners('data');
      const whole = buffer ?? (chunks!.length === 1 ? chunks![0]! : Buffer.concat(chunks!));
      // Nothing of the body stays referenced while a check-in is held.
      buffer = undefined;
      chunks = undefined;
      try {
        then(whole.toString('utf8', 0, filled));
      } catch (e) {
        exchange.fail(e);
      }
    });
  }
}

const header = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value.join(', ') : value;
