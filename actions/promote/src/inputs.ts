// The promote action's inputs, read once from the runner's environment into one typed value.

import * as core from '@actions/core';
import { FleetwaveError } from '../../../core/errors.ts';
import { readRunContext, type RunContext } from '../../shared/src/event.ts';
import { httpUrl, workspacePath } from '../../shared/src/inputs.ts';

export const COMMANDS = ['evaluate', 'promote', 'pause', 'resume', 'rollback'] as const;
export type Command = (typeof COMMANDS)[number];

export interface PromoteInputs {
  command: Command;
  reconcilerUrl?: URL;
  prometheusUrl?: URL;
  token: string;
  /** The git remote: a URL or path; by default the workflow's repository on GitHub. */
  remote: string;
  branch: string;
  stateBranch: string;
  path: string;
  /** Who asked, for the commit message. */
  actor: string;
  /** The workflow run's address, for the commit message; undefined outside a run. */
  runUrl?: string;
  context: RunContext;
}

const BRANCH = /^(?!-)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]+(?<![./])$/;

function branchInput(name: string, fallback: string): string {
  const value = core.getInput(name).trim() || fallback;
  if (!BRANCH.test(value) || value.endsWith('.lock')) {
    throw new FleetwaveError('USAGE', `input ${name} is not a branch name: "${value}"`);
  }
  return value;
}

export function readInputs(env: NodeJS.ProcessEnv = process.env): PromoteInputs {
  const context = readRunContext(env);
  const command = core.getInput('command').trim() || 'evaluate';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new FleetwaveError(
      'USAGE',
      `input command must be one of ${COMMANDS.join(', ')}, not "${command}"`,
    );
  }
  const token = core.getInput('token').trim();
  if (token !== '') core.setSecret(token);
  let remote = core.getInput('remote').trim();
  if (remote === '') {
    if (!context.repository) {
      throw new FleetwaveError('USAGE', 'no remote: set the remote input or GITHUB_REPOSITORY');
    }
    remote = `${context.serverUrl}/${context.repository.owner}/${context.repository.repo}.git`;
  }
  if (remote.startsWith('-'))
    throw new FleetwaveError('USAGE', `input remote is not a git remote: "${remote}"`);
  if (/^https:\/\//.test(remote) && token !== '') {
    // Credentials travel in the URL of each git command, never in .git/config.
    const url = new URL(remote);
    url.username = 'x-access-token';
    url.password = token;
    remote = url.href;
  }
  const inputs: PromoteInputs = {
    command: command as Command,
    token,
    remote,
    branch: branchInput('branch', 'main'),
    stateBranch: branchInput('state-branch', 'fleetwave/state'),
    path: workspacePath('path', context.workspace, core.getInput('path').trim() || 'fleet'),
    actor: env.GITHUB_ACTOR || 'a workflow',
    context,
  };
  if (env.GITHUB_RUN_ID && context.repository) {
    inputs.runUrl = `${context.serverUrl}/${context.repository.owner}/${context.repository.repo}/actions/runs/${env.GITHUB_RUN_ID}`;
  }
  const reconciler = core.getInput('reconciler-url').trim();
  if (reconciler !== '') inputs.reconcilerUrl = httpUrl('reconciler-url', reconciler);
  const prometheus = core.getInput('prometheus-url').trim();
  if (prometheus !== '') inputs.prometheusUrl = httpUrl('prometheus-url', prometheus);
  return inputs;
}
