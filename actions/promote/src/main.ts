// The promote action: the reconciler's decision, made in CI. Reads rollout.yaml from the state
// branch, observes, calls the same decide() and writes the result as one commit pushed without
// force; when the push is refused (another writer won) it fetches, decides again and retries.
// A wave that needs manual approval gets a pull request instead. One catch, in run().

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as core from '@actions/core';
import { FleetwaveError, isFleetwaveError } from '../../../core/errors.ts';
import { decide, type RolloutPolicy } from '../../../core/rollout/decide.ts';
import {
  ROLLOUT_FILE,
  serializeRolloutState,
  type RolloutState,
} from '../../../core/rollout/state.ts';
import { branchHistory } from '../../../rollout/history.ts';
import { Mirror } from '../../../rollout/mirror.ts';
import { ROBOT, createState, readState, writeState } from '../../../rollout/state.ts';
import { describeGitHubError, githubClient } from '../../shared/src/github.ts';
import { operatorStep, stepFor, type Step } from './command.ts';
import { readInputs, type PromoteInputs } from './inputs.ts';
import { observe } from './observe.ts';

/** Refused pushes retried before giving up (each retry fetches and decides again). */
export const MAX_ATTEMPTS = 5;

export async function run(): Promise<void> {
  try {
    await promote(readInputs());
  } catch (e) {
    core.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
    core.setFailed(e instanceof Error ? e.message : String(e));
  }
}

function outputs(values: {
  decision: string;
  wave: string;
  stateCommit?: string;
  pullRequest?: string;
}): void {
  core.setOutput('decision', values.decision);
  core.setOutput('wave', values.wave);
  core.setOutput('state-commit', values.stateCommit ?? '');
  core.setOutput('pull-request', values.pullRequest ?? '');
}

function withRun(message: string, inputs: PromoteInputs): string {
  const body = message.endsWith('\n') ? message : `${message}\n`;
  return inputs.runUrl ? `${body}\nworkflow run: ${inputs.runUrl}\n` : body;
}

async function summary(
  inputs: PromoteInputs,
  step: Step,
  notes: string[],
  extra: string,
): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  const lines = [
    `## fleetwave promote: ${step.decision}${step.wave ? ` (wave ${step.wave})` : ''}`,
    '',
    `Command \`${inputs.command}\`. ${extra}`,
    '',
  ];
  if (step.kind === 'none') lines.push(`Nothing written: ${step.reason}.`, '');
  else lines.push('```', step.message.trim(), '```', '');
  for (const n of notes) lines.push(`> [!NOTE]`, `> ${n}`, '');
  await core.summary.addRaw(lines.join('\n'), true).write();
}

async function promote(inputs: PromoteInputs): Promise<void> {
  const dataDir = join(process.env.RUNNER_TEMP || tmpdir(), 'fleetwave-promote');
  const mirror = await Mirror.open({
    dataDir,
    remote: inputs.remote,
    branch: inputs.branch,
    stateBranch: inputs.stateBranch,
    fleetDir: inputs.path,
  });
  for (let attempt = 1; ; attempt++) {
    const notes: string[] = [];
    const tips = await mirror.fetch();
    if (!tips.branch) {
      throw new FleetwaveError(
        'FLEET_NOT_FOUND',
        `branch ${inputs.branch} does not exist on the remote`,
      );
    }
    let stateCommit = tips.state;
    if (stateCommit === undefined) {
      requireWriteAccess(inputs);
      const created = await createState(mirror, tips.branch, inputs.branch, new Date());
      if (created === undefined) continue; // another writer created it: read theirs
      core.info(`created ${inputs.stateBranch} (${created.slice(0, 12)})`);
      stateCommit = created;
    }
    const read = await readState(mirror, stateCommit);
    if (!read.ok) {
      throw new FleetwaveError(
        'ROLLOUT_STATE_INVALID',
        `${ROLLOUT_FILE} on ${inputs.stateBranch} (${stateCommit.slice(0, 12)}) is invalid: ${read.errors.join('; ')}`,
      );
    }
    const state = read.state;
    const stable = await mirror.load(state.stable);
    if (!stable.valid) {
      throw new FleetwaveError(
        'ROLLOUT_STATE_INVALID',
        `the stable revision ${state.stable.slice(0, 12)} is not a valid fleet`,
      );
    }
    const policy: RolloutPolicy = {
      pollIntervalSeconds: stable.model.fleet.spec.pollIntervalSeconds,
      waves: stable.model.fleet.spec.waves,
    };
    const now = Date.now();
    let step: Step;
    if (inputs.command === 'evaluate') {
      const history = await branchHistory(mirror, tips.branch, state);
      const wave = state.candidate ? policy.waves[state.candidate.wave] : undefined;
      const observed = await observe({
        ...(inputs.reconcilerUrl ? { reconcilerUrl: inputs.reconcilerUrl } : {}),
        ...(inputs.prometheusUrl ? { prometheusUrl: inputs.prometheusUrl } : {}),
        ...(wave ? { wave } : {}),
        notes,
      });
      step = stepFor(decide(policy, state, { history, ...observed }, now), policy, state, now);
    } else {
      step = operatorStep(inputs.command, policy, state, inputs.actor, now);
    }
    for (const n of notes) core.notice(n);

    if (step.kind === 'none') {
      core.info(`fleetwave: ${step.decision}: ${step.reason}`);
      outputs({ decision: step.decision, wave: step.wave, stateCommit });
      await summary(inputs, step, notes, `State ${stateCommit.slice(0, 12)} unchanged.`);
      return;
    }
    requireWriteAccess(inputs);
    if (step.kind === 'approval') {
      const url = await requestApproval(inputs, mirror, step, stateCommit, now);
      outputs({ decision: 'approval', wave: step.wave, stateCommit, pullRequest: url });
      await summary(inputs, step, notes, `Approval requested: ${url}`);
      return;
    }
    try {
      const commit = await writeState(mirror, step.state, {
        parent: stateCommit,
        message: withRun(step.message, inputs),
        now: new Date(now),
      });
      core.info(
        `fleetwave: ${step.decision}: wrote ${commit.slice(0, 12)} on ${inputs.stateBranch}`,
      );
      outputs({ decision: step.decision, wave: step.wave, stateCommit: commit });
      await summary(
        inputs,
        step,
        notes,
        `Wrote ${commit.slice(0, 12)} on \`${inputs.stateBranch}\`.`,
      );
      return;
    } catch (e) {
      if (!isFleetwaveError(e, 'GIT_PUSH_REJECTED') || attempt >= MAX_ATTEMPTS) throw e;
      core.info(
        `the push was refused (attempt ${attempt}): another writer moved ${inputs.stateBranch}; deciding again`,
      );
    }
  }
}

function requireWriteAccess(inputs: PromoteInputs): void {
  if (/^https?:\/\//.test(inputs.remote) && inputs.token === '') {
    throw new FleetwaveError(
      'USAGE',
      'promote writes to the state branch but the token input is empty; nothing was written',
    );
  }
}

async function requestApproval(
  inputs: PromoteInputs,
  mirror: Mirror,
  step: Extract<Step, { kind: 'approval' }>,
  parent: string,
  now: number,
): Promise<string> {
  const { context } = inputs;
  if (inputs.token === '' || !context.repository) {
    throw new FleetwaveError(
      'USAGE',
      `wave ${step.wave} needs manual approval, which is a pull request: set the token input and GITHUB_REPOSITORY; nothing was written`,
    );
  }
  const { owner, repo } = context.repository;
  const branch = `fleetwave/approve-${step.wave}-${step.revision.slice(0, 12)}`;
  const client = githubClient(inputs.token, context.apiUrl);
  const what = `the approval pull request for wave ${step.wave}`;
  const open = await client.rest.pulls
    .list({ owner, repo, head: `${owner}:${branch}`, state: 'open' })
    .catch((e: unknown) => {
      throw new FleetwaveError(
        'USAGE',
        describeGitHubError(e, `${what} was not opened`, context.apiUrl),
      );
    });
  if (open.data[0]) {
    core.info(`approval for wave ${step.wave} is already requested: ${open.data[0].html_url}`);
    return open.data[0].html_url;
  }
  const commit = await mirror.repo.commitTree({
    files: { [ROLLOUT_FILE]: serializeRolloutState(step.state as RolloutState) },
    message: withRun(step.message, inputs),
    parent,
    author: ROBOT,
    date: new Date(now),
  });
  await mirror.repo.pushCommit(mirror.remote, commit, `refs/heads/${branch}`);
  const created = await client.rest.pulls
    .create({
      owner,
      repo,
      head: branch,
      base: inputs.stateBranch,
      title: `fleetwave: approve ${step.revision.slice(0, 12)} for wave ${step.wave}`,
      body: [
        `The candidate \`${step.revision}\` passed the gates of its wave; wave **${step.wave}** is marked \`approval: manual\`.`,
        '',
        `${step.reason}.`,
        '',
        'Merging this pull request promotes it: the reconciler serves the candidate to the wave and its bake starts.',
        '',
        '```',
        step.message.trim(),
        '```',
      ].join('\n'),
    })
    .catch((e: unknown) => {
      throw new FleetwaveError(
        'USAGE',
        describeGitHubError(e, `${what} was not opened`, context.apiUrl),
      );
    });
  core.info(`approval for wave ${step.wave} requested: ${created.data.html_url}`);
  return created.data.html_url;
}
