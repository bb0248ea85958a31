// Real git repositories in temp dirs for tests: the one way tests run git. A fixed identity, no
// user or system config, and dates that move one second per call, so commit ids are the same on
// every run.

import { execFileSync } from 'node:child_process';
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.ts';

/** The environment git runs in for tests (and `git daemon`): who commits, and no ~/.gitconfig. */
export const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Fleet Tester',
  GIT_AUTHOR_EMAIL: 'tester@fleet.example',
  GIT_COMMITTER_NAME: 'Fleet Tester',
  GIT_COMMITTER_EMAIL: 'tester@fleet.example',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

let tick = 0;

function run(dir: string, args: string[], input?: string): string {
  const date = `2026-11-27T10:${String(Math.floor(tick / 60) % 60).padStart(2, '0')}:${String(tick % 60).padStart(2, '0')}Z`;
  tick++;
  return execFileSync('git', args, {
    cwd: dir,
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...GIT_ENV, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
  }).trim();
}

/** Runs git in `dir` and returns what it printed, trimmed; throws with git's stderr on failure. */
export function git(dir: string, ...args: string[]): string {
  return run(dir, args);
}

/** `git` with `input` on its stdin (hash-object --stdin, mktree). */
export function gitWithInput(dir: string, input: string, ...args: string[]): string {
  return run(dir, args, input);
}

/** A new repository whose first commit holds a copy of the example fleet at `fleet/`. */
export async function exampleFleetRepo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fw-repo-'));
  await cp(join(REPO_ROOT, 'fleet'), join(dir, 'fleet'), { recursive: true });
  tick = 0;
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'example fleet');
  return dir;
}

export function commitAll(dir: string, message: string): string {
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}
