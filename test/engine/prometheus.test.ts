// The prometheus gate end to end: a real Prometheus (Debian's binary) on loopback scrapes a small
// exporter the test runs; the reconciler queries it (--prometheus-url) for the canary's gate. A
// healthy change passes it; a change during which the exported error ratio jumps is rejected on
// the canary and reverted on main, the evidence naming the query and its value.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runQuery } from '../../rollout/prometheus.ts';
import { freePort, type FleetRepo } from '../reconciler/helpers.ts';
import { git } from '../helpers/git.ts';
import { until } from '../helpers/until.ts';
import { EngineRig, TEST_FLEET, change } from './sim.ts';
import type { Status as WireStatus } from '../../wire/status.ts';

const hasPrometheus = await new Promise<boolean>((resolve) => {
  const p = spawn('sh', ['-c', 'command -v prometheus'], { stdio: 'ignore' });
  p.on('exit', (code) => resolve(code === 0));
  p.on('error', () => resolve(false));
});

const GATE = `        prometheus:
          - name: error-ratio
            query: max(fleetwave_test_error_ratio)
            max: 0.1
            timeout: 5s
`;

/** GET /v1/status from a server that runs the rollout engine. */
type Status = WireStatus & Required<Pick<WireStatus, 'rollout' | 'history'>>;

describe(
  'engine with a real Prometheus gate',
  {
    skip: hasPrometheus
      ? false
      : 'the prometheus binary is not installed (Debian: apt-get install prometheus)',
  },
  () => {
    let ratio = 0.01;
    const exporter = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end(`# TYPE fleetwave_test_error_ratio gauge\nfleetwave_test_error_ratio ${ratio}\n`);
    });
    let dir = '';
    let prometheus: ChildProcess | undefined;
    let promUrl = '';
    let rig: EngineRig;
    let repo: FleetRepo;

    const rounds = (done: (s: Status) => boolean, max?: number) => rig.until<Status>(done, max);
    /** Until Prometheus has scraped `value` (it scrapes every second). */
    async function scraped(value: number): Promise<void> {
      let last: unknown;
      await until(
        async () => {
          const answer = await runQuery({
            url: promUrl,
            query: 'max(fleetwave_test_error_ratio)',
            timeoutMs: 1000,
          });
          last = answer;
          return answer.ok && answer.value === value;
        },
        `prometheus scraped ${value}`,
        { timeoutMs: 30_000, intervalMs: 250, diagnose: () => JSON.stringify(last) },
      );
    }

    before(async () => {
      await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
      const target = `127.0.0.1:${(exporter.address() as AddressInfo).port}`;
      dir = await mkdtemp(join(tmpdir(), 'fleetwave-engine-prom-'));
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      await writeFile(
        join(dir, 'prometheus.yml'),
        `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['${target}']\n`,
      );
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      );
      await scraped(ratio);
      rig = await EngineRig.start({
        fleetYaml: TEST_FLEET({ extra: GATE }),
        config: { prometheusUrl: promUrl },
      });
      ({ repo } = rig);
    });

    after(async () => {
      await rig?.stop();
      if (prometheus && prometheus.exitCode === null) {
        const exited = new Promise((r) => prometheus!.once('exit', r));
        prometheus.kill('SIGTERM');
        await exited;
      }
      exporter.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('a healthy change passes the prometheus gate and completes', async () => {
      const healthy = await change(repo, 'healthy change');
      const s = await rounds((s) => s.stable === healthy);
      assert.equal(s.rejected.length, 0);
      const log = git(repo.origin, 'log', '--format=%B', 'fleetwave/state');
      assert.match(log, /prometheus:error-ratio: pass: .*0\.01/);
    });

    it('a change during which the error ratio jumps is rejected on the canary and reverted', async () => {
      const bad = await change(repo, 'bad change');
      await rounds((s) => s.rollout.lastEvaluation !== null && s.stable !== bad, 1);
      ratio = 0.5;
      await scraped(0.5);
      const s = await rounds((s) => s.rejected.some((r) => r.revision === bad), 5);
      const rejection = s.rejected.find((r) => r.revision === bad)!;
      assert.equal(rejection.waveIndex, 0);
      assert.match(rejection.reason, /0\.5/);
      const revert = git(repo.origin, 'log', '-1', '--format=%B', 'main');
      assert.ok(revert.includes(`This reverts commit ${bad}.`));
      assert.match(revert, /prometheus:error-ratio: fail/);
    });
  },
);
