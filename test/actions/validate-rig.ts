// The validate action as its tests run it: a fleet (ORBIT) in a real git repository, and a fake
// GitHub that records every call, started before a file's tests and stopped after them.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { git } from '../helpers/git.ts';
import { BOT_TOKEN, FakeGitHub } from './fake-github.ts';
import type { FleetSpec } from './fleets.ts';
import { pullRequestEvent, runAction, writeFiles, type ActionRun } from './harness.ts';

export const ORBIT: FleetSpec = {
  name: 'orbit-logs',
  version: '1.0.0',
  versions: ['1.0.0', '1.1.0'],
  waves: [
    {
      name: 'pilot',
      labels: { env: 'staging' },
      percent: 50,
      bake: '10m',
      gates: ['minAgents: 3'],
    },
    { name: 'rest', percent: 100, bake: '1h', gates: ['maxFailedRatio: 0.05'] },
  ],
};
export const DIR = 'deploy/agents';

export class Repo {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  static async create(files: Record<string, string>): Promise<Repo> {
    const repo = new Repo(await mkdtemp(join(tmpdir(), 'fw-validate-')));
    git(repo.dir, 'init', '-q', '-b', 'main');
    await repo.commit(files, 'the fleet');
    return repo;
  }
  async commit(files: Record<string, string | null>, message: string): Promise<string> {
    await writeFiles(this.dir, files);
    git(this.dir, 'add', '-A');
    git(this.dir, 'commit', '-q', '--allow-empty', '-m', message);
    return git(this.dir, 'rev-parse', 'HEAD');
  }
}

/** Starts a fake GitHub for this file's tests; repositories in `cleanup` are removed after them. */
export function validateRig(): {
  github: FakeGitHub;
  cleanup: string[];
  validate: typeof validate;
} {
  const github = new FakeGitHub();
  const cleanup: string[] = [];
  before(() => github.start());
  after(async () => {
    await github.stop();
    for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
  });
  async function validate(
    repo: Repo,
    pr: { number: number; base: string; head: string; headRepository?: string },
    inputs: Record<string, string> = {},
  ): Promise<ActionRun> {
    return runAction('validate', {
      workspace: repo.dir,
      inputs: { path: DIR, token: BOT_TOKEN, comment: 'true', ...inputs },
      eventName: 'pull_request',
      event: pullRequestEvent(pr),
      apiUrl: github.url,
    });
  }
  return { github, cleanup, validate };
}

export function noStackTrace(run: ActionRun): void {
  assert.doesNotMatch(
    run.stdout + run.stderr,
    /^\s+at .+:\d+:\d+\)?$/m,
    'a stack trace was printed',
  );
}
