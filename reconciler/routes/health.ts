// Liveness and readiness: alive while the process serves HTTP; ready once a valid rollout is
// being served (a load balancer sends agents elsewhere until then).

import type { FastifyInstance } from 'fastify';
import type { Reconciler } from '../context.ts';
import { errorBody } from '../errors.ts';

export async function healthRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    // A store that is down does not make a replica unready: check-ins are still answered from
    // memory (taking every replica out of the balancer would be the outage); it is said here.
    const store = ctx.reports.status;
    if (ctx.targets) {
      return {
        status: 'ready',
        stateCommit: ctx.targets.rollout.stateCommit,
        store: { kind: store.kind, up: store.up, buffered: store.buffered },
      };
    }
    return reply
      .code(503)
      .header('retry-after', '5')
      .send(errorBody('NOT_READY', 'no valid rollout to serve yet; see /v1/status'));
  });
}
