// POST /v1/rollout/pause|resume|promote|rollback (admin token): operator actions, each written
// to the state branch as one commit that says who and why, like any other decision.

import type { FastifyInstance } from 'fastify';
import {
  OPERATOR_ACTIONS,
  OPERATOR_ACTION_BODY_SCHEMA,
  type ActionResult,
  type OperatorActionBody,
} from '../../wire/operator.ts';
import type { Reconciler } from '../context.ts';
import { adminAuth } from './admin.ts';
import type { RolloutEngine } from '../engine.ts';

export async function rolloutRoutes(
  app: FastifyInstance,
  { ctx, engine }: { ctx: Reconciler; engine: RolloutEngine },
): Promise<void> {
  const admin = adminAuth(ctx, 'operator actions');

  for (const action of OPERATOR_ACTIONS) {
    app.post(
      `/v1/rollout/${action}`,
      { onRequest: admin, schema: { body: OPERATOR_ACTION_BODY_SCHEMA } },
      async (request): Promise<ActionResult> => {
        const body = (request.body ?? {}) as OperatorActionBody;
        const reason = body.reason?.trim() || 'no reason given';
        const actor = body.actor?.trim() || 'an operator';
        request.log.warn({ action, actor, reason }, 'operator action');
        return engine.operate(action, { actor, reason });
      },
    );
  }
}
