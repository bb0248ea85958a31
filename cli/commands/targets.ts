// fleetwave targets [DIR] --inventory FILE [--format json|text] [--revision REV [--repo PATH]]

import { formatText } from '../../core/diagnostics.ts';
import { FleetwaveError } from '../../core/errors.ts';
import { validateFleet } from '../../core/fleet/validate.ts';
import { TargetCache } from '../../core/target/cache.ts';
import type { Agent, RenderResult } from '../../core/target/model.ts';
import { GitRepository } from '../../git/repository.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { readInventory } from '../../source/inventory.ts';
import { readFleetAtRevision } from '../../source/revision.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice, parseFlags } from '../options.ts';

export const HELP = `Usage: fleetwave targets [DIR] --inventory FILE [options]

Places each agent of an inventory in its wave and renders its target from the fleet in DIR
(default: fleet), in inventory order.

Options:
  --inventory FILE   the agents: a YAML or JSON list of {id, labels} (required)
  --format text|json output format (default: text)
                     text: one line per agent: ID WAVE VERSION ETAG (first 12 characters),
                     or ID WAVE error CODE: MESSAGE
                     json: a list of {"id", "wave", "target"} (or "error" instead of "target")
  --revision REV     render the fleet as it is at git revision REV (the targets' revision is
                     its commit); without it the revision is "workdir"
  --repo PATH        the git repository for --revision (default: .)
  -h, --help         show this help

Exit status: 0 every agent has a target, 1 some agent has none (or the fleet or the
inventory has errors), 2 usage error.
`;

/** The revision of targets rendered from files on disk rather than from a commit. */
export const WORKDIR_REVISION = 'workdir';

export async function targetsCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      inventory: { type: 'string' },
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
    throw new FleetwaveError('USAGE', 'targets takes at most one directory');
  if (values.inventory === undefined) {
    throw new FleetwaveError(
      'USAGE',
      'targets needs --inventory FILE (a YAML or JSON list of {id, labels})',
    );
  }
  const format = choice('--format', values.format, ['text', 'json'] as const);
  const dir = positionals[0] ?? 'fleet';

  const source = values.revision
    ? await readFleetAtRevision(
        await GitRepository.open(resolvePath(io.cwd, values.repo)),
        values.revision,
        dir,
      )
    : await readFleetDirectory(dir, { cwd: io.cwd });
  const inventory = await readInventory(values.inventory, { cwd: io.cwd });
  const validation = validateFleet(source);
  if (!validation.model) {
    for (const d of validation.diagnostics)
      if (d.severity === 'error') io.stderr(formatText(d) + '\n');
    io.stderr(
      `${source.root}: the fleet has ${validation.errorCount} error${validation.errorCount === 1 ? '' : 's'}; no targets rendered\n`,
    );
    return EXIT.invalid;
  }
  if (inventory.diagnostics.length > 0) {
    for (const d of inventory.diagnostics) io.stderr(formatText(d) + '\n');
    const n = inventory.diagnostics.length;
    io.stderr(`${inventory.file}: ${n} problem${n === 1 ? '' : 's'}; no targets rendered\n`);
    return EXIT.invalid;
  }

  const revision = 'commit' in source ? (source.commit as string) : WORKDIR_REVISION;
  const cache = new TargetCache(validation.model, revision);
  const waves = validation.model.fleet.spec.waves.map((w) => w.name);
  const out = new ChunkedWriter(io.stdout);
  const print =
    format === 'json' ? jsonPrinter(cache, out) : textPrinter(inventory.agents, waves, out);
  // One pass, printing as it renders: no list of 100,000 targets is kept.
  const tally = new Tally(waves);
  for (const agent of inventory.agents) {
    const result = cache.render(agent);
    tally.add(result);
    print.agent(agent, result);
  }
  print.end();
  out.flush();
  io.stderr(tally.summary() + '\n');
  return tally.failed === 0 ? EXIT.ok : EXIT.invalid;
}

function resolvePath(cwd: string, path: string): string {
  return path.startsWith('/') ? path : `${cwd}/${path}`;
}

/** Buffers output into large writes: 100,000 small writes to a pipe cost more than rendering. */
class ChunkedWriter {
  private readonly write: (text: string) => void;
  private parts: string[] = [];
  private size = 0;
  constructor(write: (text: string) => void) {
    this.write = write;
  }
  add(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= 1 << 20) this.flush();
  }
  flush(): void {
    if (this.parts.length > 0) this.write(this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }
}

interface Printer {
  agent(agent: Agent, result: RenderResult): void;
  end(): void;
}

function jsonPrinter(cache: TargetCache, out: ChunkedWriter): Printer {
  let first = true;
  out.add('[');
  return {
    agent(agent, r) {
      const head = `${first ? '' : ','}\n{"id":${JSON.stringify(agent.id)},"wave":${JSON.stringify(r.wave)},`;
      first = false;
      if (r.ok) out.add(`${head}"target":${cache.json(r.target)}}`);
      else out.add(`${head}"error":${JSON.stringify(r.error)}}`);
    },
    end() {
      out.add(first ? ']\n' : '\n]\n');
    },
  };
}

function textPrinter(
  agents: readonly Agent[],
  waves: readonly string[],
  out: ChunkedWriter,
): Printer {
  let idWidth = 0;
  for (const a of agents) idWidth = Math.max(idWidth, a.id.length);
  const waveWidth = Math.max(0, ...waves.map((w) => w.length));
  return {
    agent(agent, r) {
      const head = `${agent.id.padEnd(idWidth)}  ${r.wave.padEnd(waveWidth)}  `;
      if (r.ok) out.add(`${head}${r.target.version}  ${r.target.etag.slice(0, 12)}\n`);
      else out.add(`${head}error  ${r.error.code}: ${r.error.message}\n`);
    },
    end() {},
  };
}

/** Agents per wave and errors per code, for the summary line. */
class Tally {
  private readonly perWave: Map<string, number>;
  private readonly errors = new Map<string, number>();
  count = 0;
  failed = 0;
  constructor(waves: readonly string[]) {
    this.perWave = new Map(waves.map((w) => [w, 0]));
  }
  add(r: RenderResult): void {
    this.count++;
    this.perWave.set(r.wave, (this.perWave.get(r.wave) ?? 0) + 1);
    if (!r.ok) {
      this.failed++;
      this.errors.set(r.error.code, (this.errors.get(r.error.code) ?? 0) + 1);
    }
  }
  summary(): string {
    const waves = [...this.perWave].map(([w, c]) => `${w} ${c}`).join(', ');
    const errors =
      this.failed === 0
        ? 'every agent has a target'
        : `${this.failed} without a target (${[...this.errors].map(([c, k]) => `${c} ${k}`).join(', ')})`;
    return `${this.count} agent${this.count === 1 ? '' : 's'}: ${waves}; ${errors}`;
  }
}
