// POST /v1/rollout/pause|resume|promote|rollback (admin token): who acts and why, and what was
// written to the state branch.

import { OPERATOR_ACTIONS, type OperatorAction } from '../core/rollout/operator.ts';
import { COMMIT_SCHEMA } from './agent.ts';
import type { FromSchema } from './schema.ts';

export const OPERATOR_ACTION_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    reason: { type: 'string', maxLength: 1000 },
    actor: { type: 'string', maxLength: 200, pattern: '^[^\\n\\r]*$' },
  },
} as const;

export const ACTION_RESULT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['action', 'changed', 'stateCommit', 'message'],
  properties: {
    action: { type: 'string', enum: OPERATOR_ACTIONS },
    /** False when the rollout already was as asked (another writer got there first). */
    changed: { type: 'boolean' },
    stateCommit: COMMIT_SCHEMA,
    message: { type: 'string' },
  },
} as const;

export { OPERATOR_ACTIONS, type OperatorAction };
export type OperatorActionBody = FromSchema<typeof OPERATOR_ACTION_BODY_SCHEMA>;
export type ActionResult = FromSchema<typeof ACTION_RESULT_SCHEMA>;
