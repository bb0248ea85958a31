// Small helpers to turn flags into typed values at the edge, with usage errors that say why.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FleetwaveError } from '../core/errors.ts';
import { didYouMean } from '../core/fleet/suggest.ts';

export function choice<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new FleetwaveError('USAGE', `${flag} must be one of ${allowed.join(', ')}, not "${value}"`);
}

/**
 * node's parseArgs, with an unknown flag answered like an unknown YAML key: a usage error that
 * suggests the flag that was probably meant (`--formt`: did you mean `--format`?).
 */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw e;
    const given = /'(-{1,2}[^'=]+)/.exec((e as Error).message)?.[1];
    if (given === undefined) throw e;
    const known = Object.entries(config.options ?? {}).flatMap(([name, o]) => [
      `--${name}`,
      ...(o.short ? [`-${o.short}`] : []),
    ]);
    // "-x" is one slip from every short flag: only long flags get a suggestion.
    const hint = given.startsWith('--') ? didYouMean(given, known) : undefined;
    throw new FleetwaveError(
      'USAGE',
      `unknown option ${given}${hint ? `; did you mean ${hint}?` : ' (--help lists the options)'}`,
    );
  }
}
