// The validate action: the fleet of the pull request's head, checked from the work tree, with
// every error annotated at its line; the plan of the change from git (a pull request's from its
// merge base); the job summary; one sticky comment. One catch: anything unexpected ends in
// core.setFailed with a message, not a trace.

import { EOL } from 'node:os';
import * as core from '@actions/core';
import { formatGithub, type Diagnostic } from '../../../core/diagnostics.ts';
import { isFleetwaveError } from '../../../core/errors.ts';
import { COMMENT_MARKER } from '../../../core/plan/format.ts';
import { validateFleet } from '../../../core/fleet/validate.ts';
import type { Agent } from '../../../core/target/model.ts';
import { readFleetDirectory } from '../../../source/directory.ts';
import { readInventory } from '../../../source/inventory.ts';
import {
  describeGitHubError,
  fitComment,
  githubClient,
  upsertStickyComment,
} from '../../shared/src/github.ts';
import { fetchStatus } from '../../shared/src/reconciler.ts';
import { readInputs, type ValidateInputs } from './inputs.ts';
import { planChange } from './plan.ts';
import { commentMarkdown, summaryMarkdown, type Report } from './report.ts';

/** GitHub shows ten annotations of each severity per step; the rest are in the summary. */
export const ANNOTATIONS_PER_SEVERITY = 10;

export async function run(): Promise<void> {
  try {
    await validate(readInputs());
  } catch (e) {
    core.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
    core.setFailed(isFleetwaveError(e) || e instanceof Error ? e.message : String(e));
  }
}

function annotate(diagnostics: readonly Diagnostic[]): void {
  for (const severity of ['error', 'warning'] as const) {
    const some = diagnostics.filter((d) => d.severity === severity);
    for (const d of some.slice(0, ANNOTATIONS_PER_SEVERITY))
      process.stdout.write(formatGithub(d) + EOL);
    if (some.length > ANNOTATIONS_PER_SEVERITY) {
      core.info(
        `${some.length - ANNOTATIONS_PER_SEVERITY} more ${severity}s are not annotated (GitHub shows ${ANNOTATIONS_PER_SEVERITY} per step); the job summary lists them all`,
      );
    }
  }
}

async function validate(inputs: ValidateInputs): Promise<void> {
  const { context } = inputs;
  const notes: string[] = [];
  let failure: string | undefined;

  let diagnostics: Diagnostic[];
  let errorCount: number;
  try {
    const source = await readFleetDirectory(inputs.path, { cwd: context.workspace });
    ({ diagnostics, errorCount } = validateFleet(source));
  } catch (e) {
    if (!isFleetwaveError(e, 'FLEET_NOT_FOUND')) throw e;
    diagnostics = [
      {
        file: inputs.path,
        line: 0,
        col: 0,
        severity: 'error',
        code: 'empty-fleet',
        message: e.message,
      },
    ];
    errorCount = 1;
  }
  annotate(diagnostics);
  for (const d of diagnostics)
    if (d.severity === 'error') core.info(`${d.file}:${d.line}:${d.col}: ${d.message}`);

  let agents: Agent[] | undefined;
  if (inputs.inventory !== undefined) {
    const inventory = await readInventory(inputs.inventory, { cwd: context.workspace });
    if (inventory.diagnostics.length > 0) {
      annotate(inventory.diagnostics);
      failure = `the inventory ${inventory.file} has ${inventory.diagnostics.length} problem${inventory.diagnostics.length === 1 ? '' : 's'}`;
      notes.push(`${failure}; the plan counts synthesized agents instead of real ones.`);
    } else agents = inventory.agents;
  }

  const pr = context.pullRequest;
  const range = pr
    ? { base: pr.base.sha, head: pr.head.sha }
    : context.push?.before
      ? { base: context.push.before, head: context.push.after }
      : undefined;
  const report: Report = { path: inputs.path, diagnostics, errorCount, notes };
  if (context.repository) {
    const { owner, repo } = context.repository;
    const at = range?.head ?? 'HEAD';
    report.link = (file, line) =>
      `${context.serverUrl}/${owner}/${repo}/blob/${at}/${file.split('/').map(encodeURIComponent).join('/')}${line > 0 ? `#L${line}` : ''}`;
  }
  if (errorCount === 0 && range) {
    report.plan = await planChange({
      workspace: context.workspace,
      path: inputs.path,
      ...range,
      fromMergeBase: pr !== undefined,
      ...(agents ? { agents } : {}),
    });
    if (!report.plan.ok) core.warning(`no plan: ${report.plan.reason}`);
  }
  if (inputs.reconcilerUrl) {
    try {
      report.live = await fetchStatus(inputs.reconcilerUrl);
    } catch (e) {
      const message = `${(e as Error).message}; the plan is shown without live agent counts`;
      core.warning(message);
      notes.push(message);
    }
  }

  core.setOutput('valid', errorCount === 0 ? 'true' : 'false');
  core.setOutput('error-count', String(errorCount));
  core.setOutput(
    'changed-agents',
    report.plan?.ok && report.plan.plan.agentSource === 'inventory'
      ? String(report.plan.plan.agents.changed)
      : '',
  );

  if (process.env.GITHUB_STEP_SUMMARY)
    await core.summary.addRaw(summaryMarkdown(report), true).write();
  else core.info('GITHUB_STEP_SUMMARY is not set: no job summary');

  if (pr && inputs.comment) await comment(inputs, pr, report);

  if (errorCount > 0) {
    // Not setFailed: its annotation would take one of the ten the fleet's errors need.
    core.info(
      `fleetwave: ${inputs.path} is invalid: ${errorCount} error${errorCount === 1 ? '' : 's'}`,
    );
    process.exitCode = 1;
  }
  if (failure) core.setFailed(failure);
}

async function comment(
  inputs: ValidateInputs,
  pr: NonNullable<ValidateInputs['context']['pullRequest']>,
  report: Report,
): Promise<void> {
  const { context } = inputs;
  const what = `the plan comment on pull request #${pr.number} was not written`;
  if (!context.repository) {
    core.warning(`${what}: GITHUB_REPOSITORY is not set`);
    return;
  }
  if (pr.head.repo !== pr.base.repo) {
    core.warning(
      `${what}: the pull request comes from the fork ${pr.head.repo ?? '(deleted)'}, whose token is read-only; the plan is in the job summary`,
    );
    return;
  }
  if (inputs.token === '') {
    core.warning(`${what}: no token (set the token input, e.g. \${{ github.token }})`);
    return;
  }
  const body = fitComment(
    commentMarkdown(report),
    '_The comment is cut here: the whole plan is in the job summary._',
  );
  try {
    const result = await upsertStickyComment(
      githubClient(inputs.token, context.apiUrl),
      { ...context.repository, issue: pr.number },
      COMMENT_MARKER,
      body,
    );
    core.info(`plan comment ${result.action} (id ${result.id}) on pull request #${pr.number}`);
  } catch (e) {
    core.warning(describeGitHubError(e, what, context.apiUrl));
  }
}
