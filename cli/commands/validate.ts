// fleetwave validate [DIR] [--format text|json|github] [--revision REV [--repo PATH]]

import { resolve } from 'node:path';
import { formatGithub, formatText, type Diagnostic } from '../../core/diagnostics.ts';
import { FleetwaveError } from '../../core/errors.ts';
import { validateFleet, type ValidationResult } from '../../core/fleet/validate.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { readFleetAtRevision } from '../../source/revision.ts';
import { GitRepository } from '../../git/repository.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice, parseFlags } from '../options.ts';

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
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', default: 'text' },
      revision: { type: 'string' },
      repo: { type: 'string' },
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

  if (values.revision === '') throw new FleetwaveError('USAGE', '--revision needs a revision');
  if (values.repo !== undefined && values.revision === undefined)
    throw new FleetwaveError('USAGE', '--repo only makes sense with --revision');

  const source =
    values.revision !== undefined
      ? await readFleetAtRevision(
          await GitRepository.open(resolve(io.cwd, values.repo ?? '.')),
          values.revision,
          dir,
        )
      : await readFleetDirectory(dir, { cwd: io.cwd });
  const result = validateFleet(source);
  report(result, format, source.root, io);
  return result.errorCount > 0 ? EXIT.invalid : EXIT.ok;
}

// Text output is one diagnostic per line: a newline or a terminal escape in a file name or a
// quoted key must not forge another line or repaint the terminal.
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this replaces
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    return ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
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
  const line = format === 'github' ? formatGithub : (d: Diagnostic) => oneLine(formatText(d));
  if (result.diagnostics.length > 0)
    io.stdout(result.diagnostics.map((d) => line(d) + '\n').join(''));
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
