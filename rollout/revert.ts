// The revert of a rejected revision (DESIGN §1): a commit on top of the fleet branch whose
// message says `This reverts commit <sha>.` (what git itself writes, and what the engine looks
// for) followed by the evidence. Made with `git revert` in a throwaway worktree of the bare
// mirror, so content merges work as they do for people; nothing here pushes.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetwaveError } from '../core/errors.ts';
import type { GitRepository } from '../git/repository.ts';
import { ROBOT } from './state.ts';

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export type RevertResult = { ok: true; commit: string } | { ok: false; conflict: string };

/** The line git writes into a revert's message, and the one the engine searches for. */
export function revertLine(revision: string): string {
  return `This reverts commit ${revision}.`;
}

export function revertMessage(subject: string, revision: string, evidence: string): string {
  return `Revert "${subject}"\n\n${revertLine(revision)}\n\n${evidence.trim()}\n`;
}

/** Whether a commit in `revision..tip` says it reverts `revision`. */
export async function hasRevert(
  repo: GitRepository,
  revision: string,
  tip: string,
): Promise<boolean> {
  if (!SHA.test(revision) || !SHA.test(tip)) {
    throw new FleetwaveError('GIT_FAILED', 'hasRevert needs commit ids');
  }
  const r = await repo.exec([
    'rev-list',
    '--max-count=1',
    '--fixed-strings',
    `--grep=${revertLine(revision)}`,
    `${revision}..${tip}`,
  ]);
  if (r.code !== 0)
    throw new FleetwaveError('GIT_FAILED', `git rev-list failed: ${r.stderr.trim()}`);
  return r.stdout.trim() !== '';
}

export async function subjectOf(repo: GitRepository, revision: string): Promise<string> {
  const r = await repo.exec(['log', '-1', '--format=%s', revision, '--']);
  return r.code === 0 ? r.stdout.trim() : revision.slice(0, 12);
}

/**
 * A commit on top of `onto` that reverts `revision`, with `message`. A conflict (the change
 * cannot be undone mechanically on top of what followed it) is a result, not an error.
 */
export async function makeRevert(
  repo: GitRepository,
  options: { revision: string; onto: string; message: string; now: Date },
): Promise<RevertResult> {
  const { revision, onto } = options;
  if (!SHA.test(revision) || !SHA.test(onto)) {
    throw new FleetwaveError('GIT_FAILED', 'makeRevert needs commit ids');
  }
  // Stale worktrees of a process that was killed mid-revert.
  await repo.exec(['worktree', 'prune']);
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-revert-'));
  const when = `${Math.floor(options.now.getTime() / 1000)} +0000`;
  const env = {
    GIT_AUTHOR_NAME: ROBOT.name,
    GIT_AUTHOR_EMAIL: ROBOT.email,
    GIT_AUTHOR_DATE: when,
    GIT_COMMITTER_NAME: ROBOT.name,
    GIT_COMMITTER_EMAIL: ROBOT.email,
    GIT_COMMITTER_DATE: when,
  };
  const inTree = (args: string[], input?: string) =>
    repo.exec(['-C', dir, '-c', 'core.hooksPath=/dev/null', ...args], {
      env,
      ...(input === undefined ? {} : { input }),
    });
  try {
    const add = await repo.exec(['worktree', 'add', '--detach', '--quiet', dir, onto]);
    if (add.code !== 0) {
      throw new FleetwaveError('GIT_FAILED', `git worktree add failed: ${add.stderr.trim()}`);
    }
    const parents = (await repo.exec(['rev-list', '--parents', '-n', '1', revision])).stdout
      .trim()
      .split(' ');
    const mainline = parents.length > 2 ? ['-m', '1'] : [];
    const reverted = await inTree(['revert', '--no-commit', ...mainline, revision]);
    if (reverted.code !== 0) {
      const conflict = (await inTree(['diff', '--name-only', '--diff-filter=U'])).stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '');
      return {
        ok: false,
        conflict:
          conflict.length > 0
            ? `reverting ${revision.slice(0, 12)} conflicts with later changes in ${conflict.join(', ')}`
            : `git revert failed: ${reverted.stderr.trim().split('\n').at(-1) ?? ''}`,
      };
    }
    const committed = await inTree(
      ['commit', '--quiet', '--allow-empty', '--no-verify', '-F', '-'],
      options.message,
    );
    if (committed.code !== 0) {
      throw new FleetwaveError('GIT_FAILED', `git commit failed: ${committed.stderr.trim()}`);
    }
    const head = (await inTree(['rev-parse', 'HEAD'])).stdout.trim();
    if (!SHA.test(head)) throw new FleetwaveError('GIT_FAILED', 'the revert commit has no id');
    return { ok: true, commit: head };
  } finally {
    await repo.exec(['worktree', 'remove', '--force', dir]);
    await rm(dir, { recursive: true, force: true });
    await repo.exec(['worktree', 'prune']);
  }
}
