// The one place where failures become HTTP answers: typed errors map to status codes, and a
// 5xx never shows internals (the log has them, under the request id).

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { FleetwaveError, type ErrorCode } from '../core/errors.ts';
import type { AnswerCode, ErrorBody } from '../wire/error.ts';
import { assertSame, type Same } from '../wire/schema.ts';

export type { ErrorBody };

/**
 * The HTTP status of every code: total, so a new code does not compile until it has one. 500
 * marks what is never a client's answer (a failure of the server itself, or a code of the CLI,
 * the agent or the actions that would only reach here by a bug): it is answered as INTERNAL and
 * its message stays in the log. 503 is "not now, retry": its code and message are shown.
 */
export const HTTP_STATUS = {
  // The request: fix it.
  REQUEST_INVALID: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  ROLLOUT_CONFLICT: 409,
  REQUEST_TOO_LARGE: 413,
  REQUEST_ENCODING_UNSUPPORTED: 415,
  TARGET_UNAVAILABLE: 422,
  // Not now: retry (after Retry-After when the answer has one).
  TOO_MANY_WAITERS: 429,
  TOO_MANY_CONNECTIONS: 503,
  TOO_MANY_BODIES: 503,
  NOT_READY: 503,
  ROLLOUT_WRITE_FAILED: 503,
  STORE_UNAVAILABLE: 503,
  // The server's own failures: INTERNAL, details only in the log.
  INTERNAL: 500,
  GIT_FAILED: 500,
  // A fetch that failed inside an operator action (a push that fails is ROLLOUT_WRITE_FAILED);
  // its message is git's stderr, which may name the remote: logged, not answered.
  GIT_FETCH_FAILED: 500,
  GIT_PUSH_REJECTED: 500,
  GIT_REVISION_NOT_FOUND: 500,
  GITHUB_API_FAILED: 500,
  ROLLOUT_STATE_INVALID: 500,
  STORE_SCHEMA_NEWER: 500,
  CONFIG_INVALID: 500,
  FLEET_INVALID: 500,
  FLEET_NOT_FOUND: 500,
  INVENTORY_INVALID: 500,
  RECONCILER_UNREACHABLE: 500,
  // The CLI's: a command line is never an HTTP request (the API says REQUEST_INVALID).
  USAGE: 500,
  // The agent's own codes: never a server's answer.
  AGENT_UNREACHABLE: 500,
  AGENT_SERVER_ERROR: 500,
  AGENT_BAD_ANSWER: 500,
  AGENT_BUSY: 500,
  AGENT_REFUSED: 500,
  ARTIFACT_DOWNLOAD_FAILED: 500,
  ARTIFACT_MISMATCH: 500,
  ARTIFACT_SIGNATURE_INVALID: 500,
  ARTIFACT_INVALID: 500,
  INSTALL_FAILED: 500,
  HEALTH_WATCH_FAILED: 500,
  APPLY_FAILED: 500,
  SECRET_UNRESOLVED: 500,
  CACHE_UNWRITABLE: 500,
} as const satisfies Record<
  ErrorCode,
  400 | 401 | 403 | 404 | 408 | 409 | 413 | 415 | 422 | 429 | 500 | 503
>;

/** The codes an answer shows: those not answered as INTERNAL, and INTERNAL. */
type ShownCode =
  { [C in ErrorCode]: (typeof HTTP_STATUS)[C] extends 500 ? never : C }[ErrorCode] | 'INTERNAL';
// The wire's list of answer codes (and so the OpenAPI document's, tested against it) is this.
assertSame<Same<ShownCode, AnswerCode>>();

/** The code an answer shows for `code`. */
export function answerCode(code: ErrorCode): AnswerCode {
  return HTTP_STATUS[code] === 500 ? 'INTERNAL' : (code as AnswerCode);
}

/** Extra response headers an error carries (Retry-After). */
export interface HttpErrorDetails {
  retryAfter?: number;
}

export function errorBody(code: AnswerCode, message: string): ErrorBody {
  return { error: { code, message } };
}

function classify(error: unknown): { status: number; code: AnswerCode; message: string } {
  if (error instanceof FleetwaveError) {
    return {
      status: HTTP_STATUS[error.code],
      code: answerCode(error.code),
      message: error.message,
    };
  }
  const e = error as FastifyError;
  if (e && typeof e === 'object' && e.validation) {
    return { status: 400, code: 'REQUEST_INVALID', message: e.message };
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return { status, code: 'REQUEST_TOO_LARGE', message: e.message };
  if (status === 404) return { status, code: 'NOT_FOUND', message: e.message };
  if (status >= 400 && status < 500) return { status, code: 'REQUEST_INVALID', message: e.message };
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/**
 * A failure as its HTTP answer: status, body, Retry-After, and whether it is the server's own
 * fault (then the log has it and the body only points there). Both transports answer with it.
 */
export function errorAnswer(
  error: unknown,
  requestId: string,
): { status: number; body: ErrorBody; retryAfter?: number; internal: boolean } {
  const { status, code, message } = classify(error);
  const internal = status >= 500 && status !== 503;
  const text = internal ? 'internal error; see the server log for request ' + requestId : message;
  const retryAfter = ((error as FleetwaveError).details as HttpErrorDetails | undefined)
    ?.retryAfter;
  return {
    status,
    body: errorBody(code, text),
    ...(typeof retryAfter === 'number' ? { retryAfter } : {}),
    internal,
  };
}

export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const answer = errorAnswer(error, request.id);
  if (answer.internal) request.log.error({ err: error }, 'request failed');
  if (answer.retryAfter !== undefined) reply.header('retry-after', String(answer.retryAfter));
  void reply.code(answer.status).type('application/json; charset=utf-8').send(answer.body);
}

/**
 * An answer written straight to a socket, in the one error shape, then the connection closed:
 * for what never becomes a request (node:http's parse errors and timeouts, connections past
 * --max-connections).
 */
export function writeErrorAndClose(socket: Socket, status: number, error: FleetwaveError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(errorBody(answerCode(error.code), error.message));
  const retryAfter = (error.details as HttpErrorDetails | undefined)?.retryAfter;
  if (socket.writable) {
    // Written as node:http writes its own answers (capitalized names).
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        (retryAfter === undefined ? '' : `Retry-After: ${retryAfter}\r\n`) +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  // A client that keeps sending is not read any more; cut it soon after the answer left.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** node:http's clientError: a request it could not parse, or that did not arrive in time. */
export function clientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (error.code === 'HPE_CLOSED_CONNECTION') {
    // Bytes after a request that said Connection: close: not for this connection. That
    // request's answer is still to come, and closes it; nothing more is read.
    socket.pause();
    return;
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    writeErrorAndClose(
      socket,
      408,
      new FleetwaveError('REQUEST_TIMEOUT', 'the request did not arrive completely in time'),
    );
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    writeErrorAndClose(
      socket,
      431,
      new FleetwaveError('REQUEST_TOO_LARGE', 'the request head (URL and headers) is too large'),
    );
  } else {
    writeErrorAndClose(
      socket,
      400,
      new FleetwaveError(
        'REQUEST_INVALID',
        `the request is not valid HTTP/1.1 (${String(error.code ?? 'parse error')})`,
      ),
    );
  }
}
