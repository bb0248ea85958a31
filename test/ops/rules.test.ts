// The alert rules against Debian's promtool: the rule file and the example Prometheus config
// check, every unit test under deploy/prometheus/tests passes, each alert has a firing and a
// quiet case there, and each alert's summary and runbook section exist.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ROOT, RULES, RULE_TESTS, RUNBOOK, ruleGroups } from './promql.ts';

const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
const SKIP = hasPromtool
  ? false
  : 'the promtool binary is not installed (Debian: apt-get install prometheus)';

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const testFiles = readdirSync(RULE_TESTS)
  .filter((f) => f.endsWith('.test.yaml'))
  .map((f) => `deploy/prometheus/tests/${f}`);
const alerts = ruleGroups().flatMap((g) => g.rules.filter((r) => r.alert !== undefined));

describe('promtool', { skip: SKIP }, () => {
  it('checks the rule file', () => {
    const r = promtool('check', 'rules', RULES);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  it('checks the example Prometheus configuration, which loads the rules', () => {
    const r = promtool('check', 'config', 'deploy/prometheus/prometheus.example.yaml');
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  it('passes every unit test of the rules', () => {
    assert.ok(testFiles.length > 0, 'no deploy/prometheus/tests/*.test.yaml');
    const r = promtool('test', 'rules', ...testFiles);
    assert.equal(r.status, 0, r.output);
    assert.equal(r.output.match(/SUCCESS/g)?.length, testFiles.length, r.output);
  });
});

describe('alert rules', () => {
  interface AlertTest {
    alertname: string;
    exp_alerts?: unknown[];
  }
  const cases = testFiles.flatMap((f) => {
    const doc = parse(readFileSync(`${ROOT}${f}`, 'utf8')) as {
      tests: Array<{ alert_rule_test?: AlertTest[] }>;
    };
    return doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  });
  const runbook = readFileSync(RUNBOOK, 'utf8');
  const headings = new Set([...runbook.matchAll(/^## (\S+)$/gm)].map((m) => m[1]!.toLowerCase()));

  it('covers the alerts the operations pack asks for', () => {
    const names = alerts.map((a) => a.alert);
    for (const name of [
      'FleetwaveWaveFailing',
      'FleetwaveRegionFailing',
      'FleetwaveAgentsSilentAfterRollout',
      'FleetwaveFleetRepositoryUnreachable',
      'FleetwaveFleetRevisionInvalid',
      'FleetwaveGateWaitingTooLong',
      'FleetwaveNoCheckins',
    ]) {
      assert.ok(names.includes(name), `${name} is missing`);
    }
  });

  for (const alert of alerts) {
    const name = alert.alert!;
    it(`${name}: a firing and a quiet unit test, a summary, a severity and a runbook section`, () => {
      const mine = cases.filter((c) => c.alertname === name);
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `no promtool test where ${name} fires`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `no promtool test where ${name} stays quiet`,
      );
      assert.ok((alert.annotations?.summary ?? '').length > 0, 'no summary annotation');
      assert.match(alert.labels?.severity ?? '', /^(page|ticket|info)$/);
      const url = alert.annotations?.runbook_url ?? '';
      assert.equal(url, `docs/operations/alerts.md#${name.toLowerCase()}`);
      assert.ok(headings.has(name.toLowerCase()), `docs/operations/alerts.md has no "## ${name}"`);
    });
  }
});
