// fleetwave simulate: a simulated fleet against a reconciler, printing its state every few
// seconds until SIGTERM/SIGINT.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { FleetwaveError } from '../../core/errors.ts';
import { checkFaults, type Fault } from '../../simulate/faults.ts';
import { startSimulation, type SimulationStats } from '../../simulate/fleet.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { parseFlags } from '../options.ts';

export const SIMULATE_HELP = `Usage: fleetwave simulate --url URL --agents N [options]

Runs N simulated agents in this process. They enroll, long-poll and report exactly like
the reference agent, with labels of a realistic fleet (environments, regions, os/arch, roles),
and fail as a fault model says.

Options:
  --url URL             the reconciler (required)
  --agents N            how many agents (required; 1 to 200000)
  --enroll-token TOKEN  the enrollment token (env FLEETWAVE_ENROLL_TOKEN); a missing or
                        refused token stops the simulation with an error
  --seed N              seed of labels and fates (default: 1)
  --faults FILE         YAML or JSON list of faults, the first matching a target decides:
                          - match: {version: 2.5.0}          # or configPath/configValue
                            failureRate: 0.3                 # report failed after applying
                            errorRate: 0.05                  # health.errors / health.requests
                            silenceRate: 0.1                 # report once, then go silent
                            crashRate: 0.02                  # crash applying (crashSeconds down)
                            applySeconds: 5                  # time to apply
  --ramp SECONDS        spread the agents' start over this long (default: 10)
  --max-connections N   connections to the reconciler; more agents than this poll instead of
                        long-polling (default: 4096)
  --every SECONDS       print the fleet's state this often (default: 5)
  -h, --help            show this help
`;

function whole(flag: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,9}$/.test(value) || Number(value) > max)
    throw new FleetwaveError(
      'USAGE',
      `${flag} must be a whole number from 0 to ${max}, not "${value}"`,
    );
  return Number(value);
}

export function formatStats(s: SimulationStats): string {
  const versions = Object.entries(s.versions)
    .sort()
    .map(([v, n]) => `${v}: ${n}`)
    .join(', ');
  return (
    `${s.enrolled}/${s.agents} enrolled; running ${versions || 'nothing yet'}; ` +
    `ok ${s.health.ok}, degraded ${s.health.degraded}, failed ${s.health.failed}, ` +
    `silent ${s.silent}, crashed ${s.crashed}; ${s.checkins} check-ins, ${s.errors} errors` +
    (s.lastError ? ` (last: ${s.lastError})` : '')
  );
}

export async function readFaults(path: string, cwd: string): Promise<Fault[]> {
  let value: unknown;
  try {
    value = parseYaml(await readFile(resolve(cwd, path), 'utf8'), { maxAliasCount: 100 });
  } catch (e) {
    throw new FleetwaveError('USAGE', `--faults: cannot read ${path}: ${(e as Error).message}`);
  }
  const checked = checkFaults(value);
  if (!checked.ok)
    throw new FleetwaveError('USAGE', `--faults ${path}: ${checked.problems.join('; ')}`);
  return checked.faults;
}

export async function simulateCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      agents: { type: 'string' },
      'enroll-token': { type: 'string' },
      seed: { type: 'string' },
      faults: { type: 'string' },
      ramp: { type: 'string' },
      'max-connections': { type: 'string' },
      every: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(SIMULATE_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new FleetwaveError('USAGE', 'simulate takes no arguments');
  if (values.url === undefined) throw new FleetwaveError('USAGE', 'simulate needs --url URL');
  if (values.agents === undefined) throw new FleetwaveError('USAGE', 'simulate needs --agents N');
  try {
    new URL(values.url);
  } catch {
    throw new FleetwaveError('USAGE', `--url: "${values.url}" is not a URL`);
  }
  const agents = whole('--agents', values.agents, 0, 200_000);
  const faults = values.faults === undefined ? [] : await readFaults(values.faults, io.cwd);
  const every = Math.max(1, whole('--every', values.every, 5, 3600));
  const enrollToken = values['enroll-token'] ?? (io.env.FLEETWAVE_ENROLL_TOKEN || undefined);
  const simulation = startSimulation({
    url: values.url,
    agents,
    enrollToken,
    seed: whole('--seed', values.seed, 1, 2 ** 31),
    faults,
    rampSeconds: whole('--ramp', values.ramp, 10, 3600),
    maxConnections: Math.max(
      1,
      whole('--max-connections', values['max-connections'], 4096, 1_000_000),
    ),
  });
  const timer = setInterval(
    () => io.stderr(`simulate: ${formatStats(simulation.stats())}\n`),
    every * 1000,
  );
  return new Promise<number>((done, fail) => {
    const shutdown = (): void => {
      process.removeListener('SIGTERM', shutdown);
      process.removeListener('SIGINT', shutdown);
      clearInterval(timer);
      void simulation.stop().then(() => {
        io.stderr(`simulate: stopped; ${formatStats(simulation.stats())}\n`);
        done(EXIT.ok);
      });
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
    void simulation.refused.then(async (e) => {
      process.removeListener('SIGTERM', shutdown);
      process.removeListener('SIGINT', shutdown);
      clearInterval(timer);
      await simulation.stop();
      fail(
        enrollToken === undefined
          ? new FleetwaveError(
              'USAGE',
              `the reconciler refused to enroll agents without an enrollment token (${e.message}): give it with --enroll-token or FLEETWAVE_ENROLL_TOKEN`,
            )
          : new FleetwaveError(
              'UNAUTHENTICATED',
              `the reconciler refused the enrollment token (${e.message}): check --enroll-token or FLEETWAVE_ENROLL_TOKEN`,
            ),
      );
    });
  });
}
