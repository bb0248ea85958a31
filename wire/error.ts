// Every error answer of the HTTP API: `{"error": {"code": "…", "message": "…"}}` (DESIGN §5),
// with one of the codes an answer may carry. The reconciler's map of codes to HTTP statuses
// (reconciler/errors.ts) is checked against this list at compile time; what each code means is
// in docs/errors.md, and its kind (core/errors.ts) tells a client what to do next.

import type { ErrorCode } from '../core/errors.ts';
import type { FromSchema } from './schema.ts';

/** The codes an error answer carries; any other failure is answered as INTERNAL (500). */
export const ANSWER_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'REQUEST_INVALID',
  'REQUEST_TOO_LARGE',
  'TARGET_UNAVAILABLE',
  'TOO_MANY_WAITERS',
  'TOO_MANY_CONNECTIONS',
  'TOO_MANY_BODIES',
  'REQUEST_TIMEOUT',
  'REQUEST_ENCODING_UNSUPPORTED',
  'NOT_READY',
  'ROLLOUT_CONFLICT',
  'ROLLOUT_WRITE_FAILED',
  'STORE_UNAVAILABLE',
  'INTERNAL',
] as const satisfies readonly ErrorCode[];

export const ERROR_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: ANSWER_CODES },
        message: { type: 'string' },
      },
    },
  },
} as const;

export type AnswerCode = (typeof ANSWER_CODES)[number];
export type ErrorBody = FromSchema<typeof ERROR_BODY_SCHEMA>;
