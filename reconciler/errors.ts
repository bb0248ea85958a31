// The one place where failures become HTTP answers: typed errors map to status codes, and a
// 5xx never shows internals (the log has them, under the request id).

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { FleetwaveError, type ErrorCode } from '../core/errors.ts';

export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 413,
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
