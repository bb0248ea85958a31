// GET /metrics: the Prometheus exposition of the injected registry.

import type { FastifyInstance } from 'fastify';
import type { Reconciler } from '../context.ts';

export async function metricsRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.registry.metrics();
    return reply.type(ctx.registry.contentType).send(text);
  });
}
