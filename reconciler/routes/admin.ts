// The admin token check shared by every operator route (rollout actions, the agents inventory).

import type { FastifyRequest } from 'fastify';
import { FleetwaveError } from '../../core/errors.ts';
import { bearer, secretEquals, verifyAgentToken } from '../auth.ts';
import type { Reconciler } from '../context.ts';

/** An onRequest hook: 401 without the admin token, 403 for an agent's credential. */
export function adminAuth(ctx: Reconciler, what: string) {
  return async (request: FastifyRequest): Promise<void> => {
    const expected = ctx.config.adminToken;
    if (expected === undefined) return; // --insecure-local-demo
    const token = bearer(request.headers.authorization);
    if (token === undefined) {
      throw new FleetwaveError(
        'UNAUTHENTICATED',
        `${what} need Authorization: Bearer <admin token>`,
      );
    }
    if (secretEquals(token, expected)) return;
    if (verifyAgentToken(ctx.tokenKey, token) !== undefined) {
      throw new FleetwaveError('FORBIDDEN', `an agent credential may not use ${what}`);
    }
    throw new FleetwaveError('UNAUTHENTICATED', 'the admin token is wrong');
  };
}
