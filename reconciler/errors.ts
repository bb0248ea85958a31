// The one place where failures become HTTP answers: typed errors map to status codes, and a
// 5xx never shows internals (the log has them, under the request id).

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { FleetwaveError, type ErrorCode } from '../core/errors.ts';

export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  REQUEST_ENCODING_UNSUPPORTED: 415,
  TOO_MANY_CONNECTIONS: 503,
  TOO_MANY_BODIES: 503,
  TARGET_UNAVAILABLE: 422,
  TOO_MANY_WAITERS: 429,
  NOT_READY: 503,
  ROLLOUT_CONFLICT: 409,
  ROLLOUT_WRITE_FAILED: 503,
  STORE_UNAVAILABLE: 503,
  USAGE: 400,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** Extra response headers an error carries (Retry-After). */
export interface HttpErrorDetails {
  retryAfter?: number;
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

function classify(error: unknown): { status: number; code: ErrorCode; message: string } {
  if (error instanceof FleetwaveError) {
    const status = HTTP_STATUS[error.code] ?? 500;
    return {
      status,
      code: status >= 500 && status !== 503 ? 'INTERNAL' : error.code,
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
  const body = JSON.stringify(errorBody(error.code, error.message));
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
