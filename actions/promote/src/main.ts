// The promote action: the reconciler's decision, made in CI. Reads rollout.yaml from the state
// branch, observes, calls the same decide() (or, for an operator command, the same operator
// rules) and writes the step through the same writer as the reconciler (rollout/state.ts): one
// commit pushed without force; when the push is refused (another writer won) it fetches, decides
// again and retries. A wave that needs manual approval gets a pull request instead. One catch,
// in run().

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as core from '@actions/core';
import { FleetwaveError } from '../../../core/errors.ts';
import type { FleetModel } from '../../../core/fleet/model.ts';
import {
  decide,
  policyOf,
  type Observations,
  type RolloutPolicy,
} from '../../../core/rollout/decide.ts';
import { operatorStep, type OperatorDecision } from '../../../core/rollout/operator.ts';
import { ROLLOUT_FILE } from '../../../core/rollout/state.ts';
import { stepOf, type Step } from '../../../core/rollout/step.ts';
import { branchObservations } from '../../../rollout/history.ts';
import { Mirror } from '../../../rollout/mirror.ts';
import {
  commitState,
  createState,
  readState,
  writeState,
  type StateBase,
} from '../../../rollout/state.ts';
import { describeGitHubError, githubClient } from '../../shared/src/github.ts';
import { readInputs, type PromoteInputs } from './inputs.ts';
import { observe } from './observe.ts';

export async function run(): Promise<void> {
  try {
    await promote(readInputs());
  } catch (e) {
    core.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
    core.setFailed(e instanceof Error ? e.message : String(e));
  }
}

/** What one try decides on: the state branch's tip, its state and the stable policy. */
interface Base extends StateBase {
  policy: RolloutPolicy;
  /** What was observed (for `evaluate`), and notes on what could not be. */
  observations?: Observations;
  notes: string[];
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

function runTrailer(inputs: PromoteInputs): string {
  return inputs.runUrl ? `\nworkflow run: ${inputs.runUrl}\n` : '';
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
  const command = inputs.command;
  let decided: OperatorDecision | undefined; // the first try's: a retry never promotes twice
  const written = await writeState(mirror, {
    now: Date.now,
    ...(inputs.runUrl ? { trailer: runTrailer(inputs) } : {}),
    read: () => read(mirror, inputs),
    decide: (base): Step => {
      const now = Date.now();
      let step: Step;
      if (command === 'evaluate') {
        const decision = decide(base.policy, base.state, base.observations!, now);
        step = stepOf(decision, base.policy, base.state, now);
      } else {
        const request = { action: command, actor: inputs.actor, approves: false };
        const operator = operatorStep(request, base.state, base.policy, now, {
          ...(decided ? { decided } : {}),
        });
        decided ??= operator.from;
        step = operator;
      }
      if (step.kind !== 'none') requireWriteAccess(inputs);
      return step;
    },
    onRefused: (attempt) =>
      core.info(
        `the push was refused (attempt ${attempt}): another writer moved ${inputs.stateBranch}; deciding again`,
      ),
  });
  const { base, value: step, commit } = written;
  for (const n of base.notes) core.notice(n);
  const parent = base.parent;
  switch (step.kind) {
    case 'none':
      core.info(`fleetwave: ${step.decision}: ${step.reason}`);
      outputs({ decision: step.decision, wave: step.wave, stateCommit: parent });
      await summary(inputs, step, base.notes, `State ${parent.slice(0, 12)} unchanged.`);
      return;
    case 'approval': {
      const url = await requestApproval(inputs, mirror, step, parent, Date.now());
      outputs({ decision: 'approval', wave: step.wave, stateCommit: parent, pullRequest: url });
      await summary(inputs, step, base.notes, `Approval requested: ${url}`);
      return;
    }
    case 'write':
      core.info(
        `fleetwave: ${step.decision}: wrote ${commit!.slice(0, 12)} on ${inputs.stateBranch}`,
      );
      outputs({ decision: step.decision, wave: step.wave, stateCommit: commit! });
      await summary(
        inputs,
        step,
        base.notes,
        `Wrote ${commit!.slice(0, 12)} on \`${inputs.stateBranch}\`.`,
      );
  }
}

/**
 * One try's read: fetch, create the state branch on first use, read rollout.yaml and the stable
 * policy, and for `evaluate` observe (git's history, the reconciler's cohorts, Prometheus).
 */
async function read(mirror: Mirror, inputs: PromoteInputs): Promise<Base> {
  for (;;) {
    const tips = await mirror.fetch();
    if (!tips.branch) {
      throw new FleetwaveError(
        'FLEET_NOT_FOUND',
        `branch ${inputs.branch} does not exist on the remote`,
      );
    }
    let parent = tips.state;
    if (parent === undefined) {
      requireWriteAccess(inputs);
      parent = await createState(mirror, tips.branch, inputs.branch, new Date());
      if (parent === undefined) continue; // another writer created it: read theirs
      core.info(`created ${inputs.stateBranch} (${parent.slice(0, 12)})`);
    }
    const loaded = await readState(mirror, parent);
    if (!loaded.ok) {
      throw new FleetwaveError(
        'ROLLOUT_STATE_INVALID',
        `${ROLLOUT_FILE} on ${inputs.stateBranch} (${parent.slice(0, 12)}) is invalid: ${loaded.errors.join('; ')}`,
      );
    }
    const state = loaded.state;
    const stable = await mirror.load(state.stable);
    if (!stable.valid) {
      throw new FleetwaveError(
        'ROLLOUT_STATE_INVALID',
        `the stable revision ${state.stable.slice(0, 12)} is not a valid fleet`,
      );
    }
    const base: Base = { parent, state, policy: policyOf(stable.model), notes: [] };
    if (inputs.command === 'evaluate') {
      base.observations = await observeAll(mirror, inputs, base, tips.branch, stable.model);
    }
    return base;
  }
}

async function observeAll(
  mirror: Mirror,
  inputs: PromoteInputs,
  base: Base,
  branchTip: string,
  stable: FleetModel,
): Promise<Observations> {
  const wave = base.state.candidate ? base.policy.waves[base.state.candidate.wave] : undefined;
  const git = await branchObservations(mirror, branchTip, base.state, stable);
  const observed = await observe({
    ...(inputs.reconcilerUrl ? { reconcilerUrl: inputs.reconcilerUrl } : {}),
    ...(inputs.prometheusUrl ? { prometheusUrl: inputs.prometheusUrl } : {}),
    ...(wave ? { wave } : {}),
    notes: base.notes,
  });
  return { ...git, ...observed };
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
  const commit = await commitState(mirror, step.state, {
    parent,
    message: step.message + runTrailer(inputs),
    now: new Date(now),
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
