// The installer through crashes: a `fleetwave agent` process with --install-dir and --run is
// SIGKILLed at seeded random moments while it installs and switches to a new version (its
// install hook sleeps, so some kills land in the middle). After every kill `current` points at
// a complete version (the old or the new, never half of one); a restarted agent stops the child
// its killed predecessor left running and ends on the new version with one child.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { initialRolloutState } from '../../core/rollout/state.ts';
import { prng } from '../../simulate/labels.ts';
import { ENROLL_TOKEN, FleetRepo, freePort, type Running } from '../reconciler/helpers.ts';
import { until } from '../helpers/until.ts';
import { ArtifactServer, loopbackCertificate, releaseYaml, startReconcilerOn } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const SEED = Number(process.env.FLEETWAVE_TEST_SEED ?? 20261205);

/** Processes whose command line holds `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(marker) && !cmdline.includes('node')) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('the installer SIGKILLed in the middle of a switch', { timeout: 240_000 }, () => {
  const tls = loopbackCertificate();
  const marker = `fleetwave-crash-${process.pid}-${Date.now()}`;
  let work: string;
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  let server: Running;
  let agent: ChildProcess | undefined;
  let log = '';
  const random = prng(SEED);

  async function pack(version: string): Promise<Buffer> {
    const src = join(work, `src-${version}`);
    await mkdir(src, { recursive: true });
    // Many files, so an unpack takes a moment too.
    for (let i = 0; i < 50; i++)
      await writeFile(join(src, `file-${i}.txt`), `${version} ${i}\n`.repeat(100));
    await writeFile(join(src, 'VERSION'), `${version}\n`);
    await writeFile(join(src, 'fleetwave-install'), '#!/bin/sh\nsleep 0.3\n', { mode: 0o755 });
    const out = join(work, `${version}.tar.gz`);
    execFileSync('tar', ['-czf', out, '-C', src, '.']);
    return readFile(out);
  }

  async function makeStable(version: string, bytes?: Buffer): Promise<void> {
    const fleet = await repo.read('fleet/fleet.yaml');
    const files: Record<string, string> = {
      'fleet/fleet.yaml': fleet.replace(/^ {2}version: .*$/m, `  version: ${version}`),
    };
    if (bytes) {
      artifacts.files.set(`/${version}`, bytes);
      files[`fleet/releases/${version}.yaml`] = releaseYaml(
        version,
        artifacts.url(`/${version}`),
        bytes,
      );
    }
    const commit = await repo.commit(files, `roll out ${version}`);
    if (repo.stateTip() !== undefined)
      repo.writeState(initialRolloutState(commit), `test: ${version} is stable`);
    await server?.app.reconciler.sync.sync();
  }

  function start(): void {
    agent = spawn(
      process.execPath,
      [
        MAIN,
        'agent',
        '--url',
        server.url,
        '--id',
        'crash-1',
        '--labels',
        'env=prod,region=us-east-1,os=linux,arch=amd64',
        '--cache-dir',
        join(work, 'cache'),
        '--install-dir',
        join(work, 'install'),
        '--config-file',
        join(work, 'etc', 'app.yaml'),
        '--run',
        `exec /usr/bin/python3 -c 'import time; time.sleep(1000)' ${marker}`,
        '--health-watch',
        '1s',
        '--ca',
        join(work, 'ca.pem'),
        '--wait',
        '1',
      ],
      {
        env: {
          PATH: process.env.PATH,
          FLEETWAVE_ENROLL_TOKEN: ENROLL_TOKEN,
          VAULT_ADDR: 'http://127.0.0.1:1',
          VAULT_TOKEN: 'unused',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (d: Buffer) => (log = (log + d.toString()).slice(-50_000));
    agent.stdout!.on('data', keep);
    agent.stderr!.on('data', keep);
  }

  async function kill(): Promise<void> {
    const child = agent;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** `current` names a complete version: its directory, its marker, every file whole. */
  async function assertConsistent(allowed: string[]): Promise<string> {
    const install = join(work, 'install');
    const current = await readlink(join(install, 'current'));
    const version = /^versions\/(.+)$/.exec(current)?.[1];
    assert.ok(version && allowed.includes(version), `current is ${current}`);
    assert.ok(existsSync(join(install, 'versions', `.${version}.installed`)), 'marked installed');
    const dir = join(install, 'versions', version);
    assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), `${version}\n`);
    const files = (await readdir(dir)).filter((f) => f.startsWith('file-'));
    assert.equal(files.length, 50);
    assert.equal(await readFile(join(dir, 'file-49.txt'), 'utf8'), `${version} 49\n`.repeat(100));
    return version;
  }

  /** How long and how often to look at the agent's log, which a failure shows. */
  const poll = { timeoutMs: 60_000, intervalMs: 100, diagnose: () => log.slice(-4000) };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-install-crash-'));
    await writeFile(join(work, 'ca.pem'), tls.cert);
    artifacts = await new ArtifactServer(tls).start();
    repo = await FleetRepo.create();
    // The example fleet reads a secret from Vault; this test's agent has none to give.
    await repo.commit({ 'fleet/config/00-base.yaml': null }, 'no Vault secret');
    await makeStable('1.0.0', await pack('1.0.0'));
    server = await startReconcilerOn(repo, await freePort());
  });

  after(async () => {
    await kill();
    for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL');
    await server?.close();
    await artifacts?.stop();
    await tls.dispatcher.close();
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('comes back on a consistent current after each kill, and ends on the new version', async () => {
    start();
    await until(
      () => /1\.0\.0 \([0-9a-f]{12}\) passed its health watch/.test(log),
      '1.0.0 runs',
      poll,
    );
    await assertConsistent(['1.0.0']);
    await kill();

    await makeStable('2.0.0', await pack('2.0.0'));
    const seen: string[] = [];
    // Each round the fleet moves to the other version, and the agent is killed a random moment
    // after it checks in: inside the download, the unpack, the hook (0.3 s), the switch, the
    // restart or the watch.
    for (let round = 0; round < 6; round++) {
      const version = round % 2 === 0 ? '2.0.0' : '1.0.0';
      if (round > 0) await makeStable(version);
      const since = log.length;
      start();
      await until(() => log.slice(since).includes('enrolled with'), 'the agent checks in', poll);
      await new Promise((r) => setTimeout(r, Math.floor(random() * 2500)));
      await kill();
      seen.push(await assertConsistent(['1.0.0', '2.0.0']));
    }
    await makeStable('2.0.0');
    const since = log.length;
    start();
    // Installed and watched now, or (when a round got that far) resumed from the cache.
    await until(
      () =>
        /2\.0\.0 \([0-9a-f]{12}\) passed its health watch|running the cached target 2\.0\.0/.test(
          log.slice(since),
        ) && log.slice(since).includes('enrolled with'),
      '2.0.0 runs',
      poll,
    );
    assert.equal(await assertConsistent(['2.0.0']), '2.0.0');
    // Every child a killed agent left behind was stopped by the next one: one runs.
    await until(() => processesWith(marker).length === 1, 'one child runs', {
      ...poll,
      diagnose: () =>
        `now: ${processesWith(marker).join(', ') || 'none'}; pid file: ${
          existsSync(join(work, 'install', '.run.pid'))
            ? readFileSync(join(work, 'install', '.run.pid'), 'utf8').trim()
            : 'none'
        }\n${poll.diagnose()}`,
    });
    // No half-made version is left.
    const left = await readdir(join(work, 'install', 'versions'));
    assert.deepEqual(
      left.filter((n) => n.startsWith('.partial-')),
      [],
    );
    // The kills left both versions current at some point: some landed before a switch, some after.
    assert.ok(seen.includes('1.0.0') && seen.includes('2.0.0'), `current after kills: ${seen}`);
  });
});
