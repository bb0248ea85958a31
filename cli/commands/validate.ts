// fleetwave validate [DIR] [--format text|json|github] [--revision REV [--repo PATH]]

import { parseArgs } from 'node:util';
import { formatGithub, formatText } from '../../core/diagnostics.ts';
import { FleetwaveError } from '../../core/errors.ts';
import { validateFleet, type ValidationResult } from '../../core/fleet/validate.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { readFleetAtRevision } from '../../source/revision.ts';
import { GitRepository } from '../../git/repository.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice } from '../options.ts';

export const HELP = `Usage: fleetwave validate [DIR] [options]

Checks a fleet directory (default: fleet) and prints every problem at once as
FILE:LINE:COL: error: MESSAGE.

Options:
  --format text|json|github  output format (default: text; github prints workflow annotations)
  --revision REV             validate DIR as it is at git revision REV instead of on disk
  --repo PATH                the git repository for --revision (default: .)
  -h, --help                 show this help

Exit status: 0 valid, 1 invalid, 2 usage error.
`;

export async function validateCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', default: 'text' },
      revision: { type: 'string' },
      repo: { type: 'string', default: '.' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(HELP);
    return EXIT.ok;
  }
  if (positionals.length > 1)
    throw new FleetwaveError('USAGE', 'validate takes at most one directory');
  const format = choice('--format', values.format, ['text', 'json', 'github'] as const);
  const dir = positionals[0] ?? 'fleet';

  const source = values.revision
    ? await readFleetAtRevision(
        await GitRepository.open(resolvePath(io.cwd, values.repo)),
        values.revision,
        dir,
      )
    : await readFleetDirectory(dir, { cwd: io.cwd });
  const result = validateFleet(source);
  report(result, format, source.root, io);
  return result.errorCount > 0 ? EXIT.invalid : EXIT.ok;
}

function resolvePath(cwd: string, path: string): string {
  return path.startsWith('/') ? path : `${cwd}/${path}`;
}

function report(
  result: ValidationResult,
  format: 'text' | 'json' | 'github',
  root: string,
  io: CommandIO,
): void {
  const warnings = result.diagnostics.length - result.errorCount;
  if (format === 'json') {
    io.stdout(
      JSON.stringify(
        {
          valid: result.errorCount === 0,
          errorCount: result.errorCount,
          warningCount: warnings,
          diagnostics: result.diagnostics,
        },
        null,
        2,
      ) + '\n',
    );
    return;
  }
  const line = format === 'github' ? formatGithub : formatText;
  for (const d of result.diagnostics) io.stdout(line(d) + '\n');
  if (result.model) {
    const m = result.model;
    io.stderr(
      `${root}: valid (1 Fleet, ${m.releases.length} Release${m.releases.length === 1 ? '' : 's'}, ` +
        `${m.layers.length} ConfigLayer${m.layers.length === 1 ? '' : 's'}; ${m.fleet.spec.waves.length} waves, version ${m.fleet.spec.version})\n`,
    );
  } else {
    const files = new Set(
      result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.file),
    ).size;
    io.stderr(
      `${root}: ${result.errorCount} error${result.errorCount === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}\n`,
    );
  }
}
