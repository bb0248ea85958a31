// The reconciler's one node:http server, given to fastify through its documented
// `serverFactory` option. Everything about connections is set here, once, for every route:
// timeouts, the connection cap, request ids and the one log line per request. Each request
// goes first to the agent routes' raw handlers (agent-http.ts), then, when they do not take
// it, to fastify's routing. One parser (Node's llhttp) reads every byte.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { FleetwaveError } from '../core/errors.ts';
import { errorAnswer, writeErrorAndClose } from './errors.ts';

/** node:http's keep-alive timeout here (fastify's default, which it had before). */
export const KEEP_ALIVE_MS = 72_000;

export interface HttpServerOptions {
  /** --request-timeout: the whole request (head and body) must arrive within it. */
  requestTimeoutMs: number;
  /** --max-connections, counted across every port the reconciler listens on. */
  connections: ConnectionCap;
  /** The request ids of every route. */
  requestId: () => string;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const REFUSED = Symbol('fleetwave.refused');
type Refusable = Socket & { [REFUSED]?: true };

/** Whether the request's connection was refused at the cap (its 503 is already written). */
export function refused(req: IncomingMessage): boolean {
  return (req.socket as Refusable)[REFUSED] === true;
}

/**
 * The server: `handler` answers every request of a connection within the cap. A held request
 * (a long-poll) is not timed once it has arrived: node:http's requestTimeout covers only
 * requests still arriving, and headersTimeout their heads.
 */
export function createHttpServer(options: HttpServerOptions, handler: RequestHandler): Server {
  const server = createServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      keepAliveTimeout: KEEP_ALIVE_MS,
      connectionsCheckingInterval: Math.max(250, Math.min(5000, options.requestTimeoutMs / 4)),
      // Checked below instead, so the answer has the API's error shape.
      requireHostHeader: false,
    },
    (req, res) => {
      // A refused connection's answer is written; what it sends after is not acted on.
      if (refused(req)) return;
      if (req.headers.host === undefined && req.httpVersionMinor === 1) {
        const id = requestIdOf(req, options.requestId);
        const { status, body } = errorAnswer(
          new FleetwaveError('REQUEST_INVALID', 'an HTTP/1.1 request must have a Host header'),
          id,
        );
        const text = JSON.stringify(body);
        res.shouldKeepAlive = false;
        res.writeHead(status, [
          'content-type',
          'application/json; charset=utf-8',
          'content-length',
          String(Buffer.byteLength(text)),
          'x-request-id',
          id,
        ]);
        res.end(text);
        return;
      }
      handler(req, res);
    },
  );
  // Before node:http's own listener, which still reads every connection.
  server.prependListener('connection', (socket: Refusable) => {
    if (!options.connections.admit(socket)) socket[REFUSED] = true;
  });
  return server;
}

/**
 * --max-connections: the open connections of every port the reconciler listens on (the main
 * port and the agent port share one count), each counted until it closes.
 */
export class ConnectionCap {
  open = 0;
  private readonly max: number;
  private readonly random: () => number;
  // One listener for every socket ('close' comes once): no closure per connection.
  private readonly closed = (): void => {
    this.open--;
  };

  constructor(max: number, random: () => number) {
    this.max = max;
    this.random = random;
  }

  /**
   * Counts a new connection. Past the cap (set below the open-file limit, so git keeps
   * descriptors to run) it gets a clean 503 the agent backs off from, then it ends: false.
   */
  admit(socket: Socket): boolean {
    this.open++;
    socket.on('close', this.closed);
    if (this.open <= this.max) return true;
    writeErrorAndClose(
      socket,
      503,
      new FleetwaveError(
        'TOO_MANY_CONNECTIONS',
        'the server has as many open connections as it may; retry later',
        { details: { retryAfter: Math.max(1, Math.round(5 + 10 * this.random())) } },
      ),
    );
    return false;
  }
}

/** Request ids, `req-<base 36 counter>`: one sequence for the agent routes and fastify's. */
export function requestIds(): () => string {
  let next = 0;
  return () => {
    next = (next + 1) & 0x7fffffff;
    return `req-${next.toString(36)}`;
  };
}

/** The client's X-Request-Id when it sent one (as fastify's requestIdHeader), else a new id. */
export function requestIdOf(req: IncomingMessage, generate: () => string): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && given !== '' ? given : generate();
}

/** What the one log line of a request says. */
export interface RequestLine {
  reqId: string;
  method: string;
  url: string;
  status: number;
  ms: number;
}

/** Check-ins and target reads: the steady stream of agents, logged only at debug level. */
const AGENT_TRAFFIC = /^\/v1\/(checkin|agents\/[^/]+\/target)/;

/** The level of a request's line: errors louder, the agents' steady stream at debug. */
export function requestLevel(status: number, url: string): 'error' | 'warn' | 'info' | 'debug' {
  if (status >= 500) return 'error';
  if (status >= 400) return 'warn';
  return AGENT_TRAFFIC.test(url) ? 'debug' : 'info';
}

/**
 * The one log line per request of the agent transports (agent-http.ts, agent-port.ts), at
 * the levels server.ts's onResponse hook uses for fastify's routes (requestLevel).
 */
export class RequestLog {
  private readonly log: FastifyBaseLogger;
  private readonly enabled: (level: string) => boolean;
  /** Whether debug lines are written (read once: the level is fixed at start). */
  private readonly debug: boolean;

  constructor(log: FastifyBaseLogger) {
    this.log = log;
    // pino's isLevelEnabled, when there is one (fastify's no-op logger has none), so a line
    // nobody reads costs no object.
    const isLevelEnabled = (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled;
    this.enabled =
      typeof isLevelEnabled === 'function'
        ? (level) => isLevelEnabled.call(log, level)
        : () => false;
    this.debug = this.enabled('debug');
  }

  /** The line of request `reqId`, begun at performance.now() `started`, answered `status`. */
  answered(
    status: number,
    reqId: string,
    method: string | undefined,
    url: string,
    started: number,
  ): void {
    // An agent's answer under 400 is a debug line: most requests, and most logs skip them.
    if (status < 400 && !this.debug) return;
    const level = requestLevel(status, url);
    if (!this.enabled(level)) return;
    this.log[level](
      { reqId, method, url, status, ms: Math.round(performance.now() - started) },
      'request',
    );
  }
}
