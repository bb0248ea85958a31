// The built-in installer end to end, with real processes only: a real `fleetwave serve` on a
// real git origin, five `fleetwave agent` processes with --install-dir and --run, and a small
// Python program (Debian's python3-prometheus-client) exposing `agent_health` on /metrics,
// packaged as tar.gz and served over local HTTPS with a self-signed certificate (--ca).
//
// 1.0.0 installs and runs everywhere. 2.0.0 is bad (on some agents it exits, on the others it
// reports agent_health 0): every agent switches back to 1.0.0 by itself within its health watch
// and runs it again, and the reconciler rejects 2.0.0 in the first wave and reverts it on main.
// 2.0.1 is healthy: every agent runs it, `current` points at it, 1.0.0 is kept. The program, its
// package and fleet, and the agent processes are in fixtures/managed-app.ts.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { FleetRepo, freePort } from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { until } from '../helpers/until.ts';
import { Replica } from '../engine/replica.ts';
import { ArtifactServer, loopbackCertificate } from './helpers.ts';
import {
  AGENTS,
  APP_SECRET,
  AgentProcess,
  FLEET,
  LAYER,
  pack,
  release,
} from './fixtures/managed-app.ts';

/** How long and how often to look for what real processes do. */
const POLL = { timeoutMs: 60_000, intervalMs: 200 };

describe('the built-in installer, end to end', { timeout: 300_000 }, () => {
  const tls = loopbackCertificate();
  let work: string;
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  let reconciler: Replica | undefined;
  let url: string;
  const agents: AgentProcess[] = [];
  let caFile: string;

  function originState(): RolloutState {
    const parsed = parseRolloutState(git(repo.origin, 'show', 'fleetwave/state:rollout.yaml'));
    assert.ok(parsed.ok);
    return parsed.state;
  }

  function diagnose(): string {
    return (
      `state:\n${git(repo.origin, 'show', 'fleetwave/state:rollout.yaml')}\n--- reconciler:\n${reconciler?.log.slice(-3000) ?? ''}\n` +
      agents.map((a) => `--- ${a.id}:\n${a.log.slice(-3000)}`).join('\n')
    );
  }

  /** Commits a release of `version` made of `bytes` and makes it the fleet's version. */
  async function upgrade(version: string, bytes: Buffer, message: string): Promise<string> {
    artifacts.files.set(`/app-${version}.tar.gz`, bytes);
    git(repo.work, 'fetch', '-q', 'origin');
    git(repo.work, 'reset', '-q', '--hard', 'origin/main');
    const fleet = await repo.read('fleet/fleet.yaml');
    return repo.commit(
      {
        [`fleet/releases/${version}.yaml`]: release(
          version,
          artifacts.url(`/app-${version}.tar.gz`),
          bytes,
        ),
        'fleet/fleet.yaml': fleet.replace(/^ {2}version: .*$/m, `  version: ${version}`),
      },
      message,
    );
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-install-e2e-'));
    caFile = join(work, 'ca.pem');
    await writeFile(caFile, tls.cert);
    artifacts = await new ArtifactServer(tls).start();
    const v1 = await pack(work, '1.0.0', 'good');
    artifacts.files.set('/app-1.0.0.tar.gz', v1);

    repo = await FleetRepo.create();
    const drop = Object.fromEntries(
      [
        ...(await readdir(join(repo.work, 'fleet/releases'))).map((f) => `fleet/releases/${f}`),
        ...(await readdir(join(repo.work, 'fleet/config'))).map((f) => `fleet/config/${f}`),
      ].map((f) => [f, null]),
    );
    await repo.commit(
      {
        ...drop,
        'fleet/fleet.yaml': FLEET,
        'fleet/config/00-app.yaml': LAYER,
        'fleet/releases/1.0.0.yaml': release('1.0.0', artifacts.url('/app-1.0.0.tar.gz'), v1),
      },
      'the app fleet at 1.0.0',
    );

    reconciler = new Replica(await freePort(), join(work, 'data'), repo.origin);
    url = reconciler.url;
    await reconciler.start();
    for (let i = 1; i <= AGENTS; i++)
      agents.push(new AgentProcess(`app-${i}`, join(work, `app-${i}`), await freePort()));
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await reconciler?.kill();
    await artifacts?.stop();
    await tls.dispatcher.close();
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('installs and runs 1.0.0 on every agent', async () => {
    for (const a of agents) a.start(url, caFile);
    await until(
      async () => {
        for (const a of agents) {
          const s = await a.serving();
          if (s?.version !== '1.0.0' || Number(s.health) !== 1) return false;
        }
        return true;
      },
      'every agent runs 1.0.0',
      { ...POLL, diagnose },
    );
    for (const a of agents) {
      assert.equal(await a.current(), 'versions/1.0.0');
      const versionDir = join(a.installDir, 'versions', '1.0.0');
      // The artifact's own hook ran in the new version's directory, given the target (with
      // references, never a secret's value).
      assert.equal((await readFile(join(versionDir, 'hook-ran-in'), 'utf8')).trim(), versionDir);
      const hookInput = await readFile(join(versionDir, 'hook-stdin.json'), 'utf8');
      assert.equal(JSON.parse(hookInput).version, '1.0.0');
      assert.ok(!hookInput.includes(APP_SECRET));
      // The config file holds the resolved secret, mode 0600; the program read it.
      assert.equal((await stat(a.configFile)).mode & 0o777, 0o600);
      const config = JSON.parse(await readFile(a.configFile, 'utf8'));
      assert.deepEqual(config, { app: { id: a.id, token: APP_SECRET } });
      const started = (await readdir(versionDir)).filter((f) => f.startsWith('started-'));
      const seen = JSON.parse(await readFile(join(versionDir, started[0]!), 'utf8'));
      assert.equal(seen.config.app.token, APP_SECRET);
      // The program's environment has none of the agent's credentials.
      assert.ok(!seen.env.includes('FLEETWAVE_ENROLL_TOKEN'));
      assert.ok(!seen.env.includes('APP_TOKEN'));
      assert.ok(seen.env.includes('FLEETWAVE_CONFIG_FILE'));
      // The agent's cache holds the reference only, and no resolved target is left behind.
      const cache = await readFile(join(a.dir, 'cache', 'target.json'), 'utf8');
      assert.ok(!cache.includes(APP_SECRET));
      assert.equal(existsSync(join(a.dir, 'cache', 'apply-target.json')), false);
      // The program's output comes through as JSON lines.
      assert.ok(a.log.split('\n').every((l) => !l.startsWith('{') || JSON.parse(l).version));
    }
  });

  it('rolls a bad 2.0.0 back on every agent by itself; the reconciler rejects and reverts it', async () => {
    const v2 = await pack(work, '2.0.0', 'bad');
    const bad = await upgrade('2.0.0', v2, 'Upgrade the app to 2.0.0');
    const logLength = agents.map((a) => a.log.length);
    await until(
      () =>
        agents.every((a) =>
          /2\.0\.0 \([0-9a-f]{12}\) failed its health watch: .*switched back to 1\.0\.0/.test(
            a.log,
          ),
        ),
      'every agent switched back to 1.0.0',
      { ...POLL, diagnose },
    );
    for (const [i, a] of agents.entries()) {
      const log = a.log.slice(logLength[i]);
      // Odd agents' 2.0.0 exits; even agents' reports agent_health 0.
      const reason =
        i % 2 === 0 ? /the process of 2\.0\.0 exited with 3/ : /agent_health is 0, not 1/;
      assert.match(log, reason, `${a.id}'s reason`);
    }
    await until(
      async () => {
        for (const a of agents) {
          const s = await a.serving();
          if (
            s?.version !== '1.0.0' ||
            Number(s.health) !== 1 ||
            (await a.current()) !== 'versions/1.0.0'
          )
            return false;
        }
        return true;
      },
      'every agent runs 1.0.0 again',
      { ...POLL, diagnose },
    );
    await until(
      () => {
        const state = originState();
        return state.rejected.some((r) => r.revision === bad && r.wave === 0);
      },
      'the reconciler rejects 2.0.0 in the first wave',
      { ...POLL, diagnose },
    );
    await until(
      () =>
        git(repo.origin, 'log', '-1', '--format=%s', 'main') ===
        'Revert "Upgrade the app to 2.0.0"',
      'main has the revert',
      { ...POLL, diagnose },
    );
    const body = git(repo.origin, 'log', '-1', '--format=%b', 'main');
    assert.match(body, new RegExp(`This reverts commit ${bad}\\.`));
    // After the rejection the agents are served 1.0.0, which they run: nothing is reinstalled.
    await new Promise((r) => setTimeout(r, 1500));
    for (const [i, a] of agents.entries())
      assert.doesNotMatch(
        a.log.slice(logLength[i]),
        /applied 1\.0\.0/,
        `${a.id} did not reinstall`,
      );
  });

  it('upgrades every agent to a healthy 2.0.1, keeping 1.0.0', async () => {
    const v201 = await pack(work, '2.0.1', 'good');
    const good = await upgrade('2.0.1', v201, 'Upgrade the app to 2.0.1');
    await until(
      async () => {
        for (const a of agents) {
          const s = await a.serving();
          if (s?.version !== '2.0.1' || Number(s.health) !== 1) return false;
          if (!/2\.0\.1 \([0-9a-f]{12}\) passed its health watch/.test(a.log)) return false;
        }
        return true;
      },
      'every agent runs 2.0.1 and it passed its watch',
      { ...POLL, diagnose },
    );
    for (const a of agents) {
      assert.equal(await a.current(), 'versions/2.0.1');
      const versions = (await readdir(join(a.installDir, 'versions'))).filter(
        (v) => !v.startsWith('.'),
      );
      assert.deepEqual(versions.sort(), ['1.0.0', '2.0.1'], `${a.id}: 1.0.0 kept, 2.0.0 pruned`);
    }
    await until(() => originState().stable === good, 'the rollout of 2.0.1 completes', {
      ...POLL,
      diagnose,
    });
  });
});
