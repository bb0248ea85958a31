// The agent API's fastify routes. Agents' requests on the main port normally take the raw
// handlers (../agent-http.ts); these routes answer what those leave to fastify (an unusual
// request shape: another content type, a percent-encoded id, a repeated query…) and
// app.inject. All call ../agent-api.ts, so they answer alike.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  authenticate,
  authenticateEnrollment,
  checkin,
  enroll,
  hold,
  readTarget,
  type AgentAnswer,
  type AnswerSink,
} from '../agent-api.ts';
import type { Reconciler } from '../context.ts';

declare module 'fastify' {
  interface FastifyRequest {
    agentId: string;
  }
}

function send(reply: FastifyReply, answer: AgentAnswer): FastifyReply {
  if (answer.status === 200) {
    return reply
      .code(200)
      .header('etag', `"${answer.served.target.etag}"`)
      .header('cache-control', 'no-cache')
      .type('application/json; charset=utf-8')
      .send(answer.served.body);
  }
  return reply
    .code(304)
    .header('etag', `"${answer.etag}"`)
    .header('cache-control', 'no-cache')
    .header('fleetwave-poll-after', String(answer.pollAfterSeconds))
    .send();
}

class ReplySink implements AnswerSink {
  private readonly reply: FastifyReply;
  constructor(reply: FastifyReply) {
    this.reply = reply;
  }
  answer(answer: AgentAnswer): void {
    send(this.reply, answer);
  }
}

const header = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value.join(', ') : value;

export async function agentRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  app.decorateRequest('agentId', '');
  // Credentials are checked before a body is read (callback hooks: no promise per request).
  const before =
    (check: (request: FastifyRequest) => void) =>
    (request: FastifyRequest, _reply: FastifyReply, done: (e?: Error) => void): void => {
      try {
        check(request);
        done();
      } catch (e) {
        done(e as Error);
      }
    };
  const agent = before((request) => {
    request.agentId = authenticate(ctx, header(request.headers.authorization));
  });
  const enrollment = before((request) =>
    authenticateEnrollment(ctx, header(request.headers.authorization)),
  );

  app.post('/v1/enroll', { onRequest: enrollment }, async (request) => enroll(ctx, request.body));

  // Synchronous, returning nothing, so a check-in that waits holds no promise; throws reach
  // the error handler.
  app.post('/v1/checkin', { onRequest: agent }, (request, reply): void => {
    const outcome = checkin(
      ctx,
      {
        agentId: request.agentId,
        ifNoneMatch: header(request.headers['if-none-match']),
        wait: (request.query as Record<string, unknown> | undefined)?.wait,
      },
      { json: request.body },
    );
    if (outcome.status !== 'wait') {
      send(reply, outcome);
      ctx.metrics.checkinDuration.observe(reply.elapsedTime / 1000);
      return;
    }
    const waiter = hold(ctx, outcome, new ReplySink(reply));
    reply.raw.once('close', () => ctx.longpoll.remove(waiter));
  });

  app.get('/v1/agents/:id/target', { onRequest: agent }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const ifNoneMatch = header(request.headers['if-none-match']);
    return send(reply, await readTarget(ctx, { agentId: request.agentId, ifNoneMatch }, id));
  });
}
