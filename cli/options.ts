// Small helpers to turn flags into typed values at the edge, with usage errors that say why.

import { FleetwaveError } from '../core/errors.ts';

export function choice<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new FleetwaveError('USAGE', `${flag} must be one of ${allowed.join(', ')}, not "${value}"`);
}
