// The agent's failures. Their codes live with every other code in core/errors.ts (documented in
// docs/errors.md); the kind says what the agent does next (agent/retry.ts): `transient` backs
// off and fails over to the next URL, `waiting` waits as long as the server asked (Retry-After)
// or one poll interval, `stalled` needs a person (it is logged so, and retried only every
// stalledMs). An error answer is classed by the kind of its code, or by its status when it is
// not the API's (a proxy's page). Codes:
//
// - AGENT_UNREACHABLE (transient): no connection, a reset, or a request timed out.
// - AGENT_SERVER_ERROR (transient): the reconciler answered 5xx, or a transient code (408).
// - AGENT_BAD_ANSWER (transient): the reconciler answered something that is not the API
//   (not JSON, not a target, an etag that does not match the content, too large).
// - AGENT_BUSY (waiting): 429 or 503, or a waiting code (too many waiters, not ready).
// - AGENT_REFUSED (stalled): another 4xx (bad enrollment token, forbidden, no target for these
//   labels, a malformed report).
// - ARTIFACT_DOWNLOAD_FAILED (transient): the artifact could not be fetched (status,
//   redirect loop or too many redirects, timeout, larger than allowed).
// - ARTIFACT_MISMATCH (stalled): the artifact's sha256 is not the target's: refused.
// - ARTIFACT_SIGNATURE_INVALID (stalled): the artifact's signature does not verify, names a key
//   the agent does not trust, cannot be had for good (4xx, too large, not a signature), or is
//   missing under --require-signatures: refused. A signature that cannot be fetched for a
//   passing reason (no connection, timeout, 5xx) is ARTIFACT_DOWNLOAD_FAILED.
// - ARTIFACT_INVALID (stalled): the installer refused the artifact's contents (paths out of
//   the version directory, links out, devices, too large): agent/install/archive.ts.
// - INSTALL_FAILED (stalled): the installer could not install (hook, config file, switch).
// - HEALTH_WATCH_FAILED (stalled): the new version failed its health watch and was rolled back.
// - APPLY_FAILED (stalled): --apply exited non-zero, was killed, or timed out.
// - SECRET_UNRESOLVED (stalled): a secretRef in the target's config could not be resolved (an
//   env variable not set, a file missing or refused, Vault not configured or refusing); the
//   target fails like APPLY_FAILED and --apply does not run.
// - CACHE_UNWRITABLE (stalled): the cache directory cannot be created or written.

import { FleetwaveError, type ErrorCode } from '../core/errors.ts';

export type AgentErrorCode = Extract<
  ErrorCode,
  | 'AGENT_UNREACHABLE'
  | 'AGENT_SERVER_ERROR'
  | 'AGENT_BAD_ANSWER'
  | 'AGENT_BUSY'
  | 'AGENT_REFUSED'
  | 'ARTIFACT_DOWNLOAD_FAILED'
  | 'ARTIFACT_MISMATCH'
  | 'ARTIFACT_SIGNATURE_INVALID'
  | 'ARTIFACT_INVALID'
  | 'INSTALL_FAILED'
  | 'HEALTH_WATCH_FAILED'
  | 'APPLY_FAILED'
  | 'SECRET_UNRESOLVED'
  | 'CACHE_UNWRITABLE'
>;

/** A FleetwaveError of the agent, with what an HTTP answer said about retrying. */
export class AgentError extends FleetwaveError {
  declare readonly code: AgentErrorCode;
  /** For AGENT_BUSY: how long the server asked to wait, in ms. */
  readonly retryAfterMs: number | undefined;
  /** The HTTP status, when the error is an answer. */
  readonly status: number | undefined;
  /**
   * Whether trying again later may help, when it is known better than by the code's kind: a
   * download that answered 404 is ARTIFACT_DOWNLOAD_FAILED like a reset, but only the reset
   * passes.
   */
  readonly transient: boolean;

  constructor(
    code: AgentErrorCode,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number; status?: number; transient?: boolean } = {},
  ) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'AgentError';
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    this.transient = options.transient ?? this.kind === 'transient';
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
