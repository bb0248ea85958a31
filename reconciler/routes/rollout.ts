// POST /v1/rollout/pause|resume|promote|rollback (admin token): operator actions, each written
// to the state branch as one commit that says who and why, like any other decision.

import type { FastifyInstance } from 'fastify';
import type { Reconciler } from '../context.ts';
import { adminAuth } from './admin.ts';
import type { OperatorAction } from '../../core/rollout/operator.ts';
import type { RolloutEngine } from '../engine.ts';

const ACTIONS: readonly OperatorAction[] = ['pause', 'resume', 'promote', 'rollback'];

const BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    reason: { type: 'string', maxLength: 1000 },
    actor: { type: 'string', maxLength: 200, pattern: '^[^\\n\\r]*$' },
  },
} as const;

interface ActionBody {
  reason?: string;
  actor?: string;
}

export async function rolloutRoutes(
  app: FastifyInstance,
  { ctx, engine }: { ctx: Reconciler; engine: RolloutEngine },
): Promise<void> {
  const admin = adminAuth(ctx, 'operator actions');

  for (const action of ACTIONS) {
    app.post(
      `/v1/rollout/${action}`,
      { onRequest: admin, schema: { body: BODY_SCHEMA } },
      async (request) => {
        const body = (request.body ?? {}) as ActionBody;
        const reason = body.reason?.trim() || 'no reason given';
        const actor = body.actor?.trim() || 'an operator';
        request.log.warn({ action, actor, reason }, 'operator action');
        return engine.operate(action, { actor, reason });
      },
    );
  }
}
