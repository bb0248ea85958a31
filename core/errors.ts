// Typed errors with stable codes. Every code is documented in docs/errors.md (a test keeps the
// two in step). `kind` says what should happen next: a person must act (stalled), try again
// later (waiting), or back off and retry (transient).

export type ErrorKind = 'stalled' | 'waiting' | 'transient';

export const ERROR_CODES = {
  FLEET_INVALID: { kind: 'stalled', summary: 'The fleet at a revision or directory has errors.' },
  FLEET_NOT_FOUND: { kind: 'stalled', summary: 'The fleet directory or revision does not exist.' },
  USAGE: { kind: 'stalled', summary: 'A command was called with wrong arguments.' },
  GIT_FAILED: { kind: 'transient', summary: 'A git command failed.' },
  GIT_REVISION_NOT_FOUND: { kind: 'stalled', summary: 'A git revision could not be resolved.' },
  INVENTORY_INVALID: { kind: 'stalled', summary: 'An inventory file has errors.' },
  CONFIG_INVALID: {
    kind: 'stalled',
    summary: 'The reconciler was started with a wrong or missing setting.',
  },
  GIT_FETCH_FAILED: { kind: 'transient', summary: 'The fleet repository could not be fetched.' },
  GIT_PUSH_REJECTED: {
    kind: 'transient',
    summary: 'A push to the fleet repository was refused (someone else wrote first).',
  },
  ROLLOUT_STATE_INVALID: {
    kind: 'stalled',
    summary:
      'rollout.yaml on the state branch is malformed or names a revision that cannot be served.',
  },
  UNAUTHENTICATED: { kind: 'stalled', summary: 'A request has no credential, or a wrong one.' },
  FORBIDDEN: {
    kind: 'stalled',
    summary: 'The credential is valid but not for this agent or this action.',
  },
  REQUEST_INVALID: {
    kind: 'stalled',
    summary: 'A request body, header or query string is malformed.',
  },
  REQUEST_TOO_LARGE: {
    kind: 'stalled',
    summary: 'A request body is larger than the server accepts.',
  },
  REQUEST_TIMEOUT: {
    kind: 'transient',
    summary: 'A request did not arrive completely within the request timeout.',
  },
  REQUEST_ENCODING_UNSUPPORTED: {
    kind: 'stalled',
    summary: 'A request body has a Content-Encoding (gzip, …) the server does not read.',
  },
  TOO_MANY_CONNECTIONS: {
    kind: 'waiting',
    summary: 'The server has as many open connections as --max-connections allows.',
  },
  TOO_MANY_BODIES: {
    kind: 'waiting',
    summary: 'The server is receiving as many unauthenticated request bodies as it may at once.',
  },
  NOT_FOUND: { kind: 'stalled', summary: 'No such route or agent.' },
  TOO_MANY_WAITERS: {
    kind: 'waiting',
    summary: 'The server holds as many long-polls as it may; try again after Retry-After.',
  },
  TARGET_UNAVAILABLE: {
    kind: 'stalled',
    summary:
      'No target can be rendered for this agent (a label it lacks, no artifact for its os/arch).',
  },
  NOT_READY: { kind: 'waiting', summary: 'The reconciler has no valid rollout to serve yet.' },
  ROLLOUT_CONFLICT: {
    kind: 'stalled',
    summary: 'An operator action does not fit the rollout now (e.g. promote with no candidate).',
  },
  ROLLOUT_WRITE_FAILED: {
    kind: 'transient',
    summary: 'A rollout decision could not be written to the state branch.',
  },
  GITHUB_API_FAILED: {
    kind: 'transient',
    summary: 'A GitHub REST API call (opening a revert pull request) failed.',
  },
  STORE_UNAVAILABLE: {
    kind: 'transient',
    summary: 'The store of agent reports (SQLite or PostgreSQL) cannot be reached or used.',
  },
  STORE_SCHEMA_NEWER: {
    kind: 'stalled',
    summary: "The store's schema was written by a newer fleetwave than this one.",
  },
  INTERNAL: { kind: 'transient', summary: 'An unexpected server error.' },
  RECONCILER_UNREACHABLE: {
    kind: 'transient',
    summary: "The reconciler's /v1/status could not be read (a GitHub Action asked it).",
  },
  // The reference agent (agent/): what it does next follows the kind.
  AGENT_UNREACHABLE: {
    kind: 'transient',
    summary: 'The agent could not reach the reconciler (no connection, reset, timeout).',
  },
  AGENT_SERVER_ERROR: {
    kind: 'transient',
    summary: 'The reconciler answered the agent with a 5xx, or an error whose code is transient.',
  },
  AGENT_BAD_ANSWER: {
    kind: 'transient',
    summary: 'The reconciler answered something that is not the API (not a target, a wrong etag).',
  },
  AGENT_BUSY: {
    kind: 'waiting',
    summary: 'The reconciler answered 429 or 503, or an error whose code is waiting.',
  },
  AGENT_REFUSED: {
    kind: 'stalled',
    summary:
      'The reconciler refused the agent with another 4xx (bad token, forbidden, no target for its labels).',
  },
  ARTIFACT_DOWNLOAD_FAILED: {
    kind: 'transient',
    summary: 'The artifact could not be downloaded (status, redirects, timeout, size).',
  },
  ARTIFACT_MISMATCH: {
    kind: 'stalled',
    summary: "The artifact's sha256 is not the target's: refused.",
  },
  ARTIFACT_SIGNATURE_INVALID: {
    kind: 'stalled',
    summary:
      "The artifact's signature is missing, unknown to the agent (keyRef), unreadable or wrong: refused.",
  },
  ARTIFACT_INVALID: {
    kind: 'stalled',
    summary:
      'The artifact cannot be installed: not a tar.gz or zip, or it holds what could write outside its directory (.., absolute paths, links out, devices) or is too large.',
  },
  INSTALL_FAILED: {
    kind: 'stalled',
    summary:
      'The built-in installer could not install a target (its install hook failed, the config file or the switch could not be written, the service did not restart).',
  },
  HEALTH_WATCH_FAILED: {
    kind: 'stalled',
    summary:
      'A newly installed version failed its health watch; the agent switched back to the previous one.',
  },
  APPLY_FAILED: { kind: 'stalled', summary: '--apply exited non-zero, was killed, or timed out.' },
  SECRET_UNRESOLVED: {
    kind: 'stalled',
    summary: "A secretRef in the target's config could not be resolved on the agent.",
  },
  CACHE_UNWRITABLE: {
    kind: 'stalled',
    summary: 'The agent cannot create or write its cache directory.',
  },
} as const satisfies Record<string, { kind: ErrorKind; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class FleetwaveError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FleetwaveError';
    this.code = code;
    this.kind = ERROR_CODES[code].kind;
    this.details = options?.details;
  }
}

export function isFleetwaveError(e: unknown, code?: ErrorCode): e is FleetwaveError {
  return e instanceof FleetwaveError && (code === undefined || e.code === code);
}
