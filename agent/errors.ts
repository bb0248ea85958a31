// The agent's failures, each with a stable code and what happens next (the same three kinds as
// core/errors.ts): `transient` backs off and fails over to the next URL, `waiting` waits as long
// as the server asked (Retry-After), `stalled` needs a person (it is reported, and retried only
// slowly). Codes:
//
// - AGENT_UNREACHABLE (transient): no connection, a reset, or a request timed out.
// - AGENT_SERVER_ERROR (transient): the reconciler answered 5xx.
// - AGENT_BAD_ANSWER (transient): the reconciler answered something that is not the API
//   (not JSON, not a target, an etag that does not match the content, too large).
// - AGENT_BUSY (waiting): 429 or 503 (too many waiters, not ready); Retry-After is honoured.
// - AGENT_REFUSED (stalled): 4xx (bad enrollment token, forbidden, no target for these labels).
// - ARTIFACT_DOWNLOAD_FAILED (transient): the artifact could not be fetched (status,
//   redirect loop or too many redirects, timeout, larger than allowed).
// - ARTIFACT_MISMATCH (stalled): the artifact's sha256 is not the target's: refused.
// - APPLY_FAILED (stalled): --apply exited non-zero, was killed, or timed out.
// - CACHE_UNWRITABLE (stalled): the cache directory cannot be created or written.

import type { ErrorKind } from '../core/errors.ts';

export const AGENT_ERROR_KINDS = {
  AGENT_UNREACHABLE: 'transient',
  AGENT_SERVER_ERROR: 'transient',
  AGENT_BAD_ANSWER: 'transient',
  AGENT_BUSY: 'waiting',
  AGENT_REFUSED: 'stalled',
  ARTIFACT_DOWNLOAD_FAILED: 'transient',
  ARTIFACT_MISMATCH: 'stalled',
  APPLY_FAILED: 'stalled',
  CACHE_UNWRITABLE: 'stalled',
} as const satisfies Record<string, ErrorKind>;

export type AgentErrorCode = keyof typeof AGENT_ERROR_KINDS;

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  readonly kind: ErrorKind;
  /** For AGENT_BUSY: how long the server asked to wait, in ms. */
  readonly retryAfterMs: number | undefined;
  /** The HTTP status, when the error is an answer. */
  readonly status: number | undefined;

  constructor(
    code: AgentErrorCode,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number; status?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.kind = AGENT_ERROR_KINDS[code];
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

export function isAgentError(e: unknown, code?: AgentErrorCode): e is AgentError {
  return e instanceof AgentError && (code === undefined || e.code === code);
}

/** A one-line reason for any thrown value. */
export function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !(e instanceof AgentError) ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}
