// Dispatches `fleetwave <command>` and is the CLI's one exit path: every error becomes a
// message and an exit code here.

import { FleetwaveError, type ErrorCode } from '../core/errors.ts';
import { EXIT, type CommandIO } from './io.ts';

// Errors that mean "could not run as asked" (exit 2) rather than "found problems" (exit 1).
// A git failure (not a repository, git missing) says nothing about the fleet: it is one of them;
// so is a wrong or missing setting of `serve`.
const USAGE_ERRORS = new Set<ErrorCode>([
  'USAGE',
  'CONFIG_INVALID',
  'FLEET_NOT_FOUND',
  'GIT_REVISION_NOT_FOUND',
  'GIT_FAILED',
]);

type Command = (args: string[], io: CommandIO) => Promise<number>;

// Commands load on demand: `validate` should not pay for fastify, nor `--help` for anything.
const COMMANDS: Record<string, { load?: () => Promise<Command>; summary: string }> = {
  validate: {
    load: async () => (await import('./commands/validate.ts')).validateCommand,
    summary: 'check a fleet directory and report every problem',
  },
  targets: {
    load: async () => (await import('./commands/targets.ts')).targetsCommand,
    summary: 'show the wave and rendered target of each agent of an inventory',
  },
  plan: {
    load: async () => (await import('./commands/plan.ts')).planCommand,
    summary: 'show what a change between two revisions does, wave by wave',
  },
  serve: {
    load: async () => (await import('./commands/serve.ts')).serveCommand,
    summary: 'run the reconciler: serve every agent its target',
  },
  agents: {
    load: async () => (await import('./commands/agents.ts')).agentsCommand,
    summary: 'list the agents a reconciler knows, by selector, wave and health (--url URL)',
  },
  status: {
    load: async () => (await import('./commands/rollout.ts')).rolloutCommand('status'),
    summary: 'show the rollout of a reconciler: waves, gates, history (--url URL)',
  },
  pause: {
    load: async () => (await import('./commands/rollout.ts')).rolloutCommand('pause'),
    summary: 'pause the rollout (written to the state branch)',
  },
  resume: {
    load: async () => (await import('./commands/rollout.ts')).rolloutCommand('resume'),
    summary: 'resume a paused rollout',
  },
  promote: {
    load: async () => (await import('./commands/rollout.ts')).rolloutCommand('promote'),
    summary: 'move the candidate to its next wave now',
  },
  rollback: {
    load: async () => (await import('./commands/rollout.ts')).rolloutCommand('rollback'),
    summary: 'reject the candidate: every agent back to stable, revert on main',
  },
  agent: {
    load: async () => (await import('./commands/agent.ts')).agentCommand,
    summary: 'run the reference agent: check in, verify and apply targets, report health',
  },
  simulate: {
    load: async () => (await import('./commands/simulate.ts')).simulateCommand,
    summary: 'run a simulated fleet of agents against a reconciler',
  },
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
  if (!command.load) {
    io.stderr(`fleetwave: "${name}" is not built yet; see the README for what is.\n`);
    return EXIT.usage;
  }
  try {
    const runCommand = await command.load();
    return await runCommand(args, io);
  } catch (e) {
    if (e instanceof FleetwaveError) {
      io.stderr(`fleetwave ${name}: ${e.message}\n`);
      return USAGE_ERRORS.has(e.code) ? EXIT.usage : EXIT.invalid;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`fleetwave ${name}: ${e.message}\n`);
      return EXIT.usage;
    }
    // A bug, not a problem with the input: say so in one line; the stack is for whoever asks.
    const detail = io.env['FLEETWAVE_DEBUG'] ? ((e as Error).stack ?? String(e)) : String(e);
    io.stderr(
      `fleetwave ${name}: unexpected error: ${detail}\n` +
        (io.env['FLEETWAVE_DEBUG'] ? '' : 'set FLEETWAVE_DEBUG=1 to see where it happened\n'),
    );
    return 70;
  }
}
