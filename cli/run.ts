// Dispatches `fleetwave <command>` and is the CLI's one exit path: every error becomes a
// message and an exit code here.

import { FleetwaveError, type ErrorCode } from '../core/errors.ts';
import { validateCommand } from './commands/validate.ts';
import { EXIT, type CommandIO } from './io.ts';

// Errors that mean "could not run as asked" (exit 2) rather than "found problems" (exit 1).
const USAGE_ERRORS = new Set<ErrorCode>(['USAGE', 'FLEET_NOT_FOUND', 'GIT_REVISION_NOT_FOUND']);

type Command = (args: string[], io: CommandIO) => Promise<number>;

const COMMANDS: Record<string, { run?: Command; summary: string }> = {
  validate: { run: validateCommand, summary: 'check a fleet directory and report every problem' },
  targets: {
    summary: 'show the wave and rendered target of each agent of an inventory (not built yet)',
  },
  plan: { summary: 'show what a change between two revisions does, wave by wave (not built yet)' },
  serve: { summary: 'run the reconciler (not built yet)' },
  status: { summary: 'show the rollout of a reconciler (not built yet)' },
  agent: { summary: 'run the reference agent (not built yet)' },
  simulate: { summary: 'run a simulated fleet (not built yet)' },
};

export const HELP = `Usage: fleetwave <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run "fleetwave <command> --help" for a command's options.
`;

export async function run(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(HELP);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`fleetwave: unknown command "${name}"\n\n${HELP}`);
    return EXIT.usage;
  }
  if (!command.run) {
    io.stderr(`fleetwave: "${name}" is not built yet; see the README for what is.\n`);
    return EXIT.usage;
  }
  try {
    return await command.run(args, io);
  } catch (e) {
    if (e instanceof FleetwaveError) {
      io.stderr(`fleetwave ${name}: ${e.message}\n`);
      return USAGE_ERRORS.has(e.code) ? EXIT.usage : EXIT.invalid;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`fleetwave ${name}: ${e.message}\n`);
      return EXIT.usage;
    }
    io.stderr(`fleetwave ${name}: unexpected error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  }
}
