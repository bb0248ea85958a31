// The health an agent reports with every check-in: a status, a message, counts the error-rate
// gates read, and which target failed or is being retried. Declared once for the agent, the
// simulator, the reconciler's schema and the store.

import { MAX_REPORT_COUNT, type HealthStatus } from '../core/rollout/observations.ts';
import { assertSame, type FromSchema, type Same } from './schema.ts';

export type { HealthStatus };

/** `retrying`: a new target could not be applied for a passing reason; the old one still runs. */
export const HEALTH_STATUSES = ['ok', 'degraded', 'failed', 'retrying'] as const;
// Every status the gates know, and no other.
assertSame<Same<(typeof HEALTH_STATUSES)[number], HealthStatus>>();

/** A target named by what the agent knows of it (`failedTarget`, `retryingTarget`). */
export const TARGET_REF_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['etag', 'version'],
  properties: {
    etag: { type: 'string', maxLength: 128 },
    version: { type: 'string', maxLength: 128 },
  },
} as const;

// Counts since the previous report, read by the error-rate gates: JSON has no NaN or Infinity,
// but 1e308 is a number; a sane maximum keeps every sum finite.
const REPORT_COUNT = { type: 'number', minimum: 0, maximum: MAX_REPORT_COUNT } as const;

/**
 * Open: an agent may report more (whatever its --health command prints is bounded by
 * maxProperties and the body limit), the named properties are checked.
 */
export const HEALTH_SCHEMA = {
  type: 'object',
  required: ['status'],
  maxProperties: 32,
  properties: {
    status: { type: 'string', enum: HEALTH_STATUSES },
    message: { type: 'string' },
    /** The target the agent refused or that failed (with status `failed`). */
    failedTarget: TARGET_REF_SCHEMA,
    /** The target being tried again (with status `retrying`). */
    retryingTarget: TARGET_REF_SCHEMA,
    /** Tries of retryingTarget so far. */
    attempts: { type: 'integer', minimum: 1 },
    /** It switched back to the previous version after failedTarget failed its health watch. */
    rolledBack: { type: 'boolean' },
    /** Why the health watch failed (with rolledBack). */
    reason: { type: 'string' },
    /** A new version is being watched after a switch. */
    watching: { type: 'boolean' },
    /** The supervised process keeps exiting after its watch. */
    crashLoop: { type: 'boolean' },
    /** Errors since the previous report (at most requests). */
    errors: REPORT_COUNT,
    requests: REPORT_COUNT,
  },
} as const;

export type TargetRef = FromSchema<typeof TARGET_REF_SCHEMA>;
export type Health = FromSchema<typeof HEALTH_SCHEMA>;
