// fleetwave plan --base REV --head REV [--repo PATH] [--path DIR] [--inventory FILE] [--format markdown|json|text]

import { isAbsolute, join } from 'node:path';
import { formatText } from '../../core/diagnostics.ts';
import { FleetwaveError } from '../../core/errors.ts';
import { validateFleet } from '../../core/fleet/validate.ts';
import { planMarkdown, planText } from '../../core/plan/format.ts';
import { plan, type PlanSide } from '../../core/plan/plan.ts';
import { GitRepository } from '../../git/repository.ts';
import { readInventory } from '../../source/inventory.ts';
import { readFleetAtRevision } from '../../source/revision.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice, parseFlags } from '../options.ts';

export const HELP = `Usage: fleetwave plan --base REV --head REV [options]

Shows what the change from BASE to HEAD does to the fleet: which files and kinds changed,
the version and config diff per group of agents (grouped by what they will receive), and
the waves it will pass through with their bake times and gates.

Options:
  --base REV                    the revision before the change (e.g. origin/main)
  --head REV                    the revision after the change (e.g. HEAD)
  --repo PATH                   the git repository (default: .)
  --path DIR                    the fleet's directory inside the repository (default: fleet)
  --inventory FILE              a YAML or JSON list of {id, labels}: count real agents per wave
  --format markdown|json|text   output format (default: text)
  -h, --help                    show this help

Exit status: 0 planned, 1 a side is not a valid fleet, 2 usage error (e.g. unknown revision).
`;

export async function planCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: false,
    options: {
      base: { type: 'string' },
      head: { type: 'string' },
      repo: { type: 'string', default: '.' },
      path: { type: 'string', default: 'fleet' },
      inventory: { type: 'string' },
      format: { type: 'string', default: 'text' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(HELP);
    return EXIT.ok;
  }
  void positionals;
  if (!values.base || !values.head)
    throw new FleetwaveError('USAGE', 'plan needs --base REV and --head REV');
  const format = choice('--format', values.format, ['markdown', 'json', 'text'] as const);
  const repoPath = isAbsolute(values.repo) ? values.repo : join(io.cwd, values.repo);
  const repo = await GitRepository.open(repoPath);

  const sides: PlanSide[] = [];
  let invalid = false;
  for (const [label, rev] of [
    ['base', values.base],
    ['head', values.head],
  ] as const) {
    const source = await readFleetAtRevision(repo, rev, values.path);
    const result = validateFleet(source);
    if (!result.model) {
      invalid = true;
      io.stderr(
        `fleetwave plan: ${label} ${rev} (${source.commit.slice(0, 12)}) is not a valid fleet: ${result.errorCount} error${result.errorCount === 1 ? '' : 's'}\n`,
      );
      for (const d of result.diagnostics) io.stderr(`${formatText(d)}\n`);
      continue;
    }
    sides.push({
      commit: source.commit,
      model: result.model,
      files: source.files,
      documents: result.documents,
    });
  }
  if (invalid) return EXIT.invalid;

  let agents;
  if (values.inventory) {
    const inventory = await readInventory(values.inventory, { cwd: io.cwd });
    if (inventory.diagnostics.length > 0) {
      for (const d of inventory.diagnostics) io.stderr(`${formatText(d)}\n`);
      throw new FleetwaveError('INVENTORY_INVALID', `inventory ${inventory.file} has errors`);
    }
    agents = inventory.agents;
  }

  let result;
  try {
    result = plan(sides[0]!, sides[1]!, agents);
  } catch (e) {
    if (e instanceof RangeError) throw new FleetwaveError('USAGE', e.message);
    throw e;
  }
  if (format === 'json') io.stdout(JSON.stringify(result, null, 2) + '\n');
  else if (format === 'markdown') io.stdout(planMarkdown(result));
  else io.stdout(planText(result));
  return EXIT.ok;
}
