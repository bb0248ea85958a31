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
