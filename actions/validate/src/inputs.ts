// The validate action's inputs, read once from the runner's environment into one typed value.

import * as core from '@actions/core';
import { FleetwaveError } from '../../../core/errors.ts';
import { readRunContext, type RunContext } from '../../shared/src/event.ts';
import { httpUrl, workspacePath } from '../../shared/src/inputs.ts';

export interface ValidateInputs {
  /** The fleet directory, relative to the workspace, with forward slashes. */
  path: string;
  /** '' when none was given: nothing is written to GitHub. */
  token: string;
  comment: boolean;
  inventory?: string;
  reconcilerUrl?: URL;
  context: RunContext;
}

function booleanInput(name: string, fallback: boolean): boolean {
  const value = core.getInput(name).trim().toLowerCase();
  if (value === '') return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new FleetwaveError('USAGE', `input ${name} must be true or false, not "${value}"`);
}

export function readInputs(): ValidateInputs {
  const context = readRunContext();
  const inputs: ValidateInputs = {
    path: workspacePath('path', context.workspace, core.getInput('path').trim() || 'fleet'),
    token: core.getInput('token').trim(),
    comment: booleanInput('comment', true),
    context,
  };
  if (inputs.token !== '') core.setSecret(inputs.token);
  const inventory = core.getInput('inventory').trim();
  if (inventory !== '') inputs.inventory = workspacePath('inventory', context.workspace, inventory);
  const url = core.getInput('reconciler-url').trim();
  if (url !== '') inputs.reconcilerUrl = httpUrl('reconciler-url', url);
  return inputs;
}
