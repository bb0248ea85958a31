// The prometheus query runner against a local HTTP server that misbehaves in every way the
// gate must survive, and against a real Prometheus when the binary is installed.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'undici';
import { prometheusGates } from '../../core/rollout/gates/prometheus.ts';
import { runPrometheusGates, runQuery } from '../../rollout/prometheus.ts';
import { until } from '../helpers/until.ts';
import { ctx } from './fixtures.ts';

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

const vector = (value: string) =>
  JSON.stringify({
    status: 'success',
    data: { resultType: 'vector', result: [{ metric: {}, value: [1, value] }] },
  });

describe('prometheus query runner (loopback server)', () => {
  const server = createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams.get('query');
    switch (query) {
      case 'good':
        res.setHeader('content-type', 'application/json').end(vector('0.0004'));
        return;
      case 'garbage':
        res.end('\x00\x01 not json at all');
        return;
      case 'hang':
        return; // never answers
      case 'slow-body':
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"status":"succ');
        return; // headers, then nothing
      case 'error500':
        res.writeHead(500).end('internal error');
        return;
      case 'empty':
        res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }));
        return;
      case 'nan':
        res.end(vector('NaN'));
        return;
      default:
        res
          .writeHead(400)
          .end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'unknown query' }));
    }
  });
  let url = '';
  const dispatcher = new Agent({ connections: 8 });
  before(async () => {
    url = await listen(server);
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await dispatcher.close();
  });

  const q = (query: string, timeoutMs = 2000) => runQuery({ url, query, timeoutMs, dispatcher });

  it('reads a good value', async () => {
    assert.deepEqual(await q('good'), { ok: true, value: 0.0004 });
  });

  const bad: Array<[string, RegExp, number?]> = [
    ['garbage', /not JSON/],
    ['hang', /timed out after 300 ms|timeout/i, 300],
    ['slow-body', /timed out after 300 ms|timeout|not JSON/i, 300],
    ['error500', /HTTP 500/],
    ['empty', /empty result/],
    ['nan', /not a finite number/],
    ['unknown', /HTTP 400: query failed: bad_data/],
  ];
  for (const [query, expect, timeout] of bad) {
    it(`${query}: an error outcome, and the gate waits`, async () => {
      const outcome = await q(query, timeout);
      assert.equal(outcome.ok, false);
      assert.match((outcome as { error: string }).error, expect);
      const gate = prometheusGates(
        ctx(
          { gates: { prometheus: [{ name: 'q', query, max: 1 }] } },
          { prometheus: { q: outcome } },
        ),
      );
      assert.equal(gate[0]!.verdict, 'wait');
    });
  }

  it('a Prometheus that is down is an error, never a pass', async () => {
    const down = createServer();
    const downUrl = await listen(down);
    down.close();
    const outcome = await runQuery({ url: downUrl, query: 'good', timeoutMs: 1000, dispatcher });
    assert.equal(outcome.ok, false);
    assert.match((outcome as { error: string }).error, /request failed: ECONNREFUSED/);
  });

  it('runs every query of a wave, by name', async () => {
    const outcomes = await runPrometheusGates(
      url,
      [
        { name: 'a', query: 'good', max: 0.001, timeout: '2s' },
        { name: 'b', query: 'empty', max: 1 },
      ],
      { dispatcher },
    );
    assert.deepEqual(outcomes.a, { ok: true, value: 0.0004 });
    assert.equal(outcomes.b?.ok, false);
  });
});

async function which(bin: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    p.on('exit', (code) => resolve(code === 0));
    p.on('error', () => resolve(false));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await listen(s);
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const hasPrometheus = await which('prometheus');

describe(
  'prometheus gate against a real Prometheus',
  {
    skip: hasPrometheus
      ? false
      : 'the prometheus binary is not installed (Debian: apt-get install prometheus)',
  },
  () => {
    const exporter = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end('# TYPE fleetwave_test_ratio gauge\nfleetwave_test_ratio 0.25\n');
    });
    let dir = '';
    let child: ChildProcess | undefined;
    let url = '';
    let stderr = '';

    before(async () => {
      const target = (await listen(exporter)).replace('http://', '');
      dir = await mkdtemp(join(tmpdir(), 'fleetwave-prom-'));
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      await writeFile(
        join(dir, 'prometheus.yml'),
        `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['${target}']\n`,
      );
      child = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      await until(
        async () => (await runQuery({ url, query: 'fleetwave_test_ratio', timeoutMs: 1000 })).ok,
        'prometheus scraped the exporter',
        { timeoutMs: 60_000, intervalMs: 500, diagnose: () => stderr },
      );
    });

    after(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      exporter.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('passes within bounds, fails outside them, waits on an empty result or an error', async () => {
      const outcomes = await runPrometheusGates(url, [
        { name: 'within', query: 'fleetwave_test_ratio', max: 0.5, timeout: '5s' },
        { name: 'over', query: 'fleetwave_test_ratio', max: 0.1, timeout: '5s' },
        { name: 'scalar', query: 'scalar(fleetwave_test_ratio) * 2', min: 0.4, max: 0.6 },
        { name: 'empty', query: 'fleetwave_no_such_metric', max: 1 },
        { name: 'nan', query: 'fleetwave_test_ratio / 0 - fleetwave_test_ratio / 0', max: 1 },
        { name: 'broken', query: 'sum(', max: 1 },
      ]);
      assert.deepEqual(outcomes.within, { ok: true, value: 0.25 });
      const gates = prometheusGates(
        ctx(
          {
            gates: {
              prometheus: [
                { name: 'within', query: '', max: 0.5 },
                { name: 'over', query: '', max: 0.1 },
                { name: 'scalar', query: '', min: 0.4, max: 0.6 },
                { name: 'empty', query: '', max: 1 },
                { name: 'nan', query: '', max: 1 },
                { name: 'broken', query: '', max: 1 },
              ],
            },
          },
          { prometheus: outcomes },
        ),
      );
      assert.deepEqual(
        gates.map((g) => [g.gate, g.verdict]),
        [
          ['prometheus:within', 'pass'],
          ['prometheus:over', 'fail'],
          ['prometheus:scalar', 'pass'],
          ['prometheus:empty', 'wait'],
          ['prometheus:nan', 'wait'],
          ['prometheus:broken', 'wait'],
        ],
      );
      assert.match(gates[4]!.message, /not a finite number/);
      assert.match(gates[5]!.message, /HTTP 400: query failed: bad_data/);
    });
  },
);
