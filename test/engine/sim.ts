// A small simulated fleet for the engine tests: agents that enroll and check in through the real
// HTTP API, apply whatever target they are served at once, and report health as a function of
// the revision they run (a bad revision makes them report `failed`).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServeConfig } from '../../reconciler/config.ts';
import {
  FleetRepo,
  GitDaemon,
  LINUX_PROD,
  call,
  enroll,
  freePort,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';

export const TEST_FLEET = (
  options: { revert?: 'push' | 'pull-request'; extra?: string } = {},
) => `# yaml-language-server: $schema=../schemas/fleet.schema.json
apiVersion: fleetwave.dev/v1
kind: Fleet
metadata:
  name: engine-test-fleet
spec:
  version: 2.4.0
  pollIntervalSeconds: 5
  rollback:
    revert: ${options.revert ?? 'push'}
  waves:
    - name: canary
      percent: 10
      bake: 1s
      gates:
        minAgents: 3
        minAppliedRatio: 0.9
        maxFailedRatio: 0.2
${options.extra ?? ''}    - name: half
      percent: 50
      bake: 1s
      gates:
        minAgents: 10
        maxFailedRatio: 0.2
    - name: everyone
      percent: 100
      bake: 1s
      gates:
        maxFailedRatio: 0.2
`;

/** A fleet repository whose main holds the example fleet with TEST_FLEET's short waves. */
export async function engineRepo(fleetYaml = TEST_FLEET()): Promise<FleetRepo> {
  const repo = await FleetRepo.create();
  await repo.commit({ 'fleet/fleet.yaml': fleetYaml }, 'engine test waves');
  return repo;
}

/** A change to main that renders a different target for every agent. */
export async function change(repo: FleetRepo, message: string, name = 'change'): Promise<string> {
  // The reconciler may have pushed reverts: build on the origin's main.
  git(repo.work, 'fetch', '-q', 'origin');
  git(repo.work, 'reset', '-q', '--hard', 'origin/main');
  await writeFile(join(repo.work, `fleet/config/99-${name}.yaml`), layer(name, message));
  git(repo.work, 'add', '-A');
  git(repo.work, 'commit', '-qm', message);
  git(repo.work, 'push', '-q', 'origin', 'main');
  return repo.head();
}

function layer(name: string, marker: string): string {
  return `apiVersion: fleetwave.dev/v1
kind: ConfigLayer
metadata:
  name: ${name}
spec:
  priority: 99
  values:
    ${name}: ${JSON.stringify(marker)}
`;
}

export interface SimAgent {
  id: string;
  token: string;
  etag?: string;
  revision?: string;
  /** The server this agent talks to (replicas: round-robin). */
}

export class SimFleet {
  readonly agents: SimAgent[] = [];
  /** Revisions whose agents report failed. */
  readonly bad = new Set<string>();
  /** When set, only these agents fail on a bad revision (a release failing on some machines). */
  failing: Set<string> | undefined;
  /** The health each agent last reported in a check-in that was answered. */
  readonly reported = new Map<string, string>();
  urls: string[];
  private turn = 0;

  constructor(urls: string[]) {
    this.urls = urls;
  }

  async enroll(n: number, labels: Record<string, string>): Promise<void> {
    for (let i = 0; i < n; i++) {
      const id = `sim-${String(i).padStart(3, '0')}`;
      this.agents.push({ id, token: await enroll(this.urls[i % this.urls.length]!, id, labels) });
    }
    this.labels = labels;
  }

  private labels: Record<string, string> = {};

  /** Every agent checks in once (20 at a time); answers that fail are retried next round. */
  async round(): Promise<{ ok: number; failed: number }> {
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < this.agents.length; i += 20) {
      await Promise.all(
        this.agents.slice(i, i + 20).map(async (a) => {
          const url = this.urls[this.turn++ % this.urls.length]!;
          const body: Record<string, unknown> = {
            id: a.id,
            labels: this.labels,
            health: {
              status:
                a.revision !== undefined &&
                this.bad.has(a.revision) &&
                (this.failing === undefined || this.failing.has(a.id))
                  ? 'failed'
                  : 'ok',
              requests: 100,
              errors: 0,
            },
          };
          if (a.etag) body.current = { etag: a.etag };
          try {
            const res = await call(`${url}/v1/checkin`, {
              token: a.token,
              body,
              ...(a.etag ? { headers: { 'if-none-match': `"${a.etag}"` } } : {}),
            });
            if (res.status === 200) {
              const t = res.body as { etag: string; revision: string };
              a.etag = t.etag;
              a.revision = t.revision;
            }
            if (res.status === 200 || res.status === 304) {
              ok++;
              this.reported.set(a.id, (body.health as { status: string }).status);
            } else failed++;
          } catch {
            failed++; // a replica that was just killed
          }
        }),
      );
    }
    this.turn++; // the next round, each agent talks to another replica
    return { ok, failed };
  }

  revisions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const a of this.agents) out.set(a.revision ?? '', (out.get(a.revision ?? '') ?? 0) + 1);
    return out;
  }
}

/** The state branch's commit subjects on the origin, oldest first. */
export function stateLog(repo: FleetRepo): string[] {
  return git(repo.origin, 'log', '--reverse', '--format=%s', 'fleetwave/state').split('\n');
}

/**
 * The engine tests' setup: a fleet origin served by `git daemon`, the real server with an
 * injected clock, and `agents` simulated agents that have checked in once.
 */
export class EngineRig {
  clock = Date.now();
  repo!: FleetRepo;
  daemon!: GitDaemon;
  server!: Running;
  sim!: SimFleet;

  static async start(
    options: { fleetYaml?: string; config?: Partial<ServeConfig>; agents?: number } = {},
  ): Promise<EngineRig> {
    const rig = new EngineRig();
    rig.repo = await engineRepo(options.fleetYaml);
    rig.daemon = new GitDaemon(rig.repo.root, await freePort());
    await rig.daemon.start();
    rig.server = await startServer(
      testConfig({
        repo: rig.daemon.url('origin.git'),
        dataDir: `${rig.repo.root}/data`,
        ...options.config,
      }),
      { now: () => rig.clock },
    );
    rig.sim = new SimFleet([rig.server.url]);
    await rig.sim.enroll(options.agents ?? 60, LINUX_PROD);
    await rig.sim.round();
    return rig;
  }

  async status<S>(): Promise<S> {
    return (await call(`${this.server.url}/v1/status`)).body as S;
  }

  /** Rounds of (clock +2s, every agent checks in, one evaluation) until `done`, at most `max`. */
  async until<S extends { rollout?: unknown }>(done: (s: S) => boolean, max = 30): Promise<S> {
    for (let i = 0; i < max; i++) {
      this.clock += 2000;
      await this.sim.round();
      await this.server.app.rollout.evaluate();
      const s = await this.status<S>();
      if (done(s)) return s;
    }
    const last = await this.status<S>();
    throw new Error(`not reached in ${max} rounds: ${JSON.stringify(last.rollout)}`);
  }

  async stop(): Promise<void> {
    await this.server?.close();
    await this.daemon?.stop();
    await this.repo?.cleanup();
  }
}
