// The plan of a pull request: the fleet at the base and head commits, read from git (never the
// work tree) and compared by core/plan. When it cannot be made, the reason says what to change.
// A pull request is planned from the merge base of its base and head, as GitHub's "Files
// changed" shows it: once the base branch moves on, base..head would credit the pull request
// with everything merged since it forked, reversed.

import { isFleetwaveError } from '../../../core/errors.ts';
import { validateFleet } from '../../../core/fleet/validate.ts';
import { plan, type Plan, type PlanSide } from '../../../core/plan/plan.ts';
import type { Agent } from '../../../core/target/model.ts';
import { GitRepository } from '../../../git/repository.ts';
import { readFleetAtRevision } from '../../../source/revision.ts';

export type PlanOutcome = { ok: true; plan: Plan } | { ok: false; reason: string };

export async function planChange(options: {
  workspace: string;
  path: string;
  base: string;
  head: string;
  /** Plan from the merge base of `base` and `head` instead of `base` itself (pull requests). */
  fromMergeBase?: boolean;
  agents?: readonly Agent[];
}): Promise<PlanOutcome> {
  let repo: GitRepository;
  try {
    repo = await GitRepository.open(options.workspace);
  } catch (e) {
    return {
      ok: false,
      reason: `the workspace is not a git repository (run actions/checkout first): ${(e as Error).message}`,
    };
  }
  const missing = (label: string, rev: string): PlanOutcome => ({
    ok: false,
    reason: `the ${label} commit ${rev.slice(0, 12)} is not in the checkout; check it out with \`fetch-depth: 0\``,
  });
  let base = options.base;
  if (options.fromMergeBase) {
    const commits: string[] = [];
    for (const [label, rev] of [
      ['base', options.base],
      ['head', options.head],
    ] as const) {
      try {
        commits.push(await repo.resolveCommit(rev));
      } catch (e) {
        if (isFleetwaveError(e, 'GIT_REVISION_NOT_FOUND')) return missing(label, rev);
        throw e;
      }
    }
    const found = await repo.mergeBase(commits[0]!, commits[1]!);
    if (!found) {
      return {
        ok: false,
        reason: `the base ${options.base.slice(0, 12)} and head ${options.head.slice(0, 12)} have no common ancestor in the checkout; check it out with \`fetch-depth: 0\``,
      };
    }
    base = found;
  }
  const sides: PlanSide[] = [];
  for (const [label, rev] of [
    ['base', base],
    ['head', options.head],
  ] as const) {
    let source;
    try {
      source = await readFleetAtRevision(repo, rev, options.path);
    } catch (e) {
      if (isFleetwaveError(e, 'GIT_REVISION_NOT_FOUND')) return missing(label, rev);
      if (isFleetwaveError(e, 'FLEET_NOT_FOUND')) {
        return {
          ok: false,
          reason:
            label === 'base'
              ? `the base commit ${rev.slice(0, 12)} has no fleet at \`${options.path}\`: every file is new`
              : `the head commit ${rev.slice(0, 12)} has no fleet at \`${options.path}\``,
        };
      }
      throw e;
    }
    const result = validateFleet(source);
    if (!result.model) {
      return {
        ok: false,
        reason: `the ${label} commit ${rev.slice(0, 12)} is not a valid fleet (${result.errorCount} error${result.errorCount === 1 ? '' : 's'}), so there is nothing to compare`,
      };
    }
    sides.push({
      commit: source.commit,
      model: result.model,
      files: source.files,
      documents: result.documents,
    });
  }
  try {
    return { ok: true, plan: plan(sides[0]!, sides[1]!, options.agents) };
  } catch (e) {
    if (e instanceof RangeError) return { ok: false, reason: e.message };
    throw e;
  }
}
