// `npm start`: the embedded default of DESIGN §6. A temporary git remote seeded from fleet/,
// the real reconciler (`fleetwave serve`, as a child process), a simulated fleet of a
// thousand agents, and a story told in the terminal: a healthy change walks through every
// wave, then a bad release is rejected on the canary and reverted on main.

import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parseFlags } from '../cli/options.ts';
import { isFleetwaveError } from '../core/errors.ts';
import { startSimulation, type Simulation } from '../simulate/fleet.ts';
import { editFleetFile, writeDemoFleet } from './fleet.ts';
import { Narrator, type Status } from './narrator.ts';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

const HELP = `Usage: npm start -- [options]

Plays fleetwave's story on this machine, with nothing to set up: a temporary git remote
seeded from fleet/, the reconciler, a simulated fleet, and the status page.

  1. A healthy config change walks through every wave and becomes stable.
  2. A bad release (2.5.0 fails on 30% of machines) is rejected on the canary wave,
     reverted on main, and every agent goes back to stable.

Options:
  --once          play the story and exit: 0 when it went as expected, 1 otherwise
  --agents N      simulated agents (default: 1000)
  --port PORT     the reconciler's port on 127.0.0.1 (default: 8080; 0 picks a free one)
  --keep          keep the temporary directory (the git remote, logs) after exit
  -h, --help      show this help

Without --once the demo keeps running after the story so you can explore the status page
(http://127.0.0.1:PORT/), the API (/v1/status, /metrics) and the git remote; Ctrl-C ends it.
`;

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Dana Operator',
  GIT_AUTHOR_EMAIL: 'dana@acme.example',
  GIT_COMMITTER_NAME: 'Dana Operator',
  GIT_COMMITTER_EMAIL: 'dana@acme.example',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();
}

async function status(url: string): Promise<Status | undefined> {
  try {
    const res = await request(`${url}/v1/status`, { headersTimeout: 5000, bodyTimeout: 5000 });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return undefined;
    }
    return (await res.body.json()) as Status;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(500);
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseFlags({
      options: {
        once: { type: 'boolean', default: false },
        agents: { type: 'string', default: '1000' },
        port: { type: 'string', default: '8080' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    if (!isFleetwaveError(e) && !(e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))
      throw e;
    process.stderr.write(`npm start: ${(e as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const agents = Number(values.agents);
  const port = Number(values.port);
  if (!Number.isInteger(agents) || agents < 200 || agents > 18_000) {
    process.stderr.write('--agents must be a whole number from 200 to 18000\n');
    return 2;
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('--port must be a port number\n');
    return 2;
  }

  const root = await mkdtemp(join(tmpdir(), 'fleetwave-demo-'));
  const work = join(root, 'work');
  const origin = join(root, 'origin.git');
  const say = new Narrator(process.stdout);
  let server: ChildProcess | undefined;
  let simulation: Simulation | undefined;
  const cleanup = async () => {
    await simulation?.stop();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    if (!values.keep) await rm(root, { recursive: true, force: true });
    else say.line(`kept ${root}`);
  };

  try {
    say.title('fleetwave demo');
    await mkdir(work);
    await writeDemoFleet(work, agents);
    git(work, 'init', '-q', '-b', 'main');
    git(work, 'add', '-A');
    git(work, 'commit', '-qm', 'Acme metrics agent 2.4.0 fleet');
    git(root, 'init', '-q', '--bare', 'origin.git');
    git(work, 'remote', 'add', 'origin', origin);
    git(work, 'push', '-q', 'origin', 'main');
    say.line(`git remote      ${origin}`);

    const log = createWriteStream(join(root, 'reconciler.log'));
    server = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--repo',
        origin,
        '--insecure-local-demo',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--data-dir',
        join(root, 'data'),
        '--fetch-interval',
        '1',
        '--evaluate-interval',
        '1',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stdout!.pipe(log);
    const address = await new Promise<string>((resolve, reject) => {
      let seen = '';
      server!.stderr!.on('data', (chunk: Buffer) => {
        log.write(chunk);
        seen += chunk.toString();
        const m = /listening on (http:\/\/[^\s]+)/.exec(seen);
        if (m) resolve(m[1]!.replace(/\/$/, ''));
      });
      // Its own words say why (a port in use names --port); the exit code alone says nothing.
      server!.once('exit', (code) => {
        const why = seen
          .split('\n')
          .filter((l) => l.startsWith('fleetwave serve: '))
          .at(-1);
        reject(
          new Error(
            why
              ? `the reconciler did not start: ${why.slice('fleetwave serve: '.length)}`
              : `the reconciler exited with ${code}; see ${join(root, 'reconciler.log')}`,
          ),
        );
      });
    });
    say.line(`reconciler      ${address}  (status page: ${address}/)`);
    await until('the reconciler to be ready', 60_000, async () =>
      (await status(address))?.ready ? true : undefined,
    );

    simulation = startSimulation({
      url: address,
      agents,
      seed: 42,
      rampSeconds: 3,
      faults: [{ match: { version: '2.5.0' }, failureRate: 0.3 }],
    });
    say.line(`simulated fleet ${agents} agents (2.5.0 is made to fail on 30% of them)`);
    const first = await until('every agent to run the stable target', 120_000, async () => {
      const s = await status(address);
      const stats = simulation!.stats();
      return s && stats.versions['2.4.0'] === agents ? s : undefined;
    });
    say.step(`all ${agents} agents run 2.4.0 at stable ${first.stable?.slice(0, 7)}`);

    // Act 1: a one-line config change gets the same canary as a new binary.
    say.title('1. a healthy change: flush metrics every 5 s instead of 10 s');
    await editFleetFile(
      work,
      'config/00-base.yaml',
      ['spec', 'values', 'agent', 'flushInterval'],
      '5s',
    );
    git(work, 'commit', '-qam', 'Flush metrics every 5 s');
    git(work, 'push', '-q', 'origin', 'main');
    const healthy = git(work, 'rev-parse', 'HEAD');
    say.line(`pushed ${healthy.slice(0, 7)} to main`);
    await until('the healthy change to become stable', 240_000, async () => {
      const s = await status(address);
      if (s) say.progress(s);
      return s?.stable === healthy && !s.candidate ? s : undefined;
    });
    say.step(`${healthy.slice(0, 7)} completed every wave and is stable`);

    // Act 2: a release that hurts agents is caught on the canary and undone in git.
    say.title('2. a bad release: metrics-agent 2.5.0');
    await editFleetFile(work, 'fleet.yaml', ['spec', 'version'], '2.5.0');
    git(work, 'commit', '-qam', 'Upgrade metrics-agent to 2.5.0');
    git(work, 'push', '-q', 'origin', 'main');
    const bad = git(work, 'rev-parse', 'HEAD');
    say.line(`pushed ${bad.slice(0, 7)} to main`);
    let waves: Status['waves'] = [];
    const rejected = await until('the bad release to be rejected', 180_000, async () => {
      const s = await status(address);
      if (s) waves = s.waves;
      const found = s?.rejected?.find((r) => r.revision === bad);
      if (s && !found) say.progress(s);
      return found;
    });
    // Rejected between two looks: the wave it was on still has its line.
    say.reached(
      bad,
      rejected.waveIndex,
      waves[rejected.waveIndex]?.name ?? String(rejected.waveIndex),
    );
    say.step(`rejected on wave ${rejected.waveIndex}: ${rejected.reason}`);
    const recovered = Date.now();
    await until('every agent back on 2.4.0', 60_000, async () => {
      const v = simulation!.stats().versions;
      return v['2.4.0'] === agents && !v['2.5.0'] ? true : undefined;
    });
    say.step(
      `every agent runs 2.4.0 again (${((Date.now() - recovered) / 1000).toFixed(1)} s after the rejection)`,
    );
    const revert = await until('the revert commit on main', 60_000, async () => {
      git(work, 'fetch', '-q', 'origin');
      const log = git(work, 'log', '--format=%H %s', 'origin/main', '-n', '5');
      const line = log.split('\n').find((l) => {
        const sha = l.split(' ')[0]!;
        return git(work, 'log', '-1', '--format=%B', sha).includes(`This reverts commit ${bad}`);
      });
      return line;
    });
    say.step(`main has the revert: ${revert.slice(0, 7)} ${revert.slice(41)}`);
    say.title('main, as people and fleetwave left it');
    for (const l of git(work, 'log', '--format=%h %s', 'origin/main', '-n', '4').split('\n'))
      say.line(`  ${l}`);

    const final = await status(address);
    say.title('the state branch tells the story');
    for (const h of (final?.history ?? []).slice(0, 12).reverse())
      say.line(`  ${h.commit.slice(0, 7)} ${h.subject}`);

    if (values.once) {
      say.title('the story went as expected');
      return 0;
    }
    say.title(`explore: ${address}/  (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    return 0;
  } catch (e) {
    say.line('');
    say.line(`the story did not go as expected: ${(e as Error).message}`);
    say.line(`reconciler log: ${join(root, 'reconciler.log')}`);
    values.keep = true;
    return 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main();
