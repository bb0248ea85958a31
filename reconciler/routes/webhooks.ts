// POST /v1/webhooks/github: a push only triggers an immediate fetch. The signature is checked
// on the raw bytes (this scope parses no body) in constant time, before anything else; each
// delivery id is acted on once.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetwaveError } from '../../core/errors.ts';
import { verifyGithubSignature } from '../auth.ts';
import type { WebhookResult } from '../../wire/webhook.ts';
import type { Reconciler } from '../context.ts';

/** Delivery ids remembered for de-duplication (GitHub redelivers by hand or on timeouts). */
const REMEMBERED = 10_000;
/**
 * The largest delivery read. GitHub lists at most 20 commits in a push payload, far below
 * this; anyone may send a body here before its signature is checked, so it stays small.
 */
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;
/** Deliveries read at once: their bodies are buffered before the signature can be checked. */
export const MAX_WEBHOOK_BODIES = 8;

export async function webhookRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  const seen = new Set<string>();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  // Unauthenticated bodies are bounded in size, in time (--request-timeout) and in number:
  // past MAX_WEBHOOK_BODIES being read at once, a delivery is answered 503 before its body.
  let reading = 0;
  const admit = (_request: FastifyRequest, reply: FastifyReply, done: (e?: Error) => void) => {
    if (reading >= MAX_WEBHOOK_BODIES) {
      done(
        new FleetwaveError(
          'TOO_MANY_BODIES',
          'too many webhook deliveries at once; redeliver later',
          {
            details: { retryAfter: 10 },
          },
        ),
      );
      return;
    }
    reading++;
    let released = false;
    // 'close' of the response comes once, whether it was answered, timed out or cut.
    reply.raw.once('close', () => {
      if (!released) reading--;
      released = true;
    });
    done();
  };

  app.post(
    '/v1/webhooks/github',
    { bodyLimit: WEBHOOK_BODY_LIMIT, onRequest: admit },
    async (request, reply) => {
      const secret = ctx.config.webhookSecret;
      if (secret === undefined) {
        throw new FleetwaveError('NOT_FOUND', 'webhooks are not configured (--webhook-secret)');
      }
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      if (!verifyGithubSignature(secret, raw, request.headers['x-hub-signature-256'])) {
        ctx.metrics.webhooks.inc({ result: 'bad_signature' });
        throw new FleetwaveError('UNAUTHENTICATED', 'X-Hub-Signature-256 does not match the body');
      }
      const delivery = request.headers['x-github-delivery'];
      if (typeof delivery !== 'string' || delivery === '' || delivery.length > 200) {
        throw new FleetwaveError('REQUEST_INVALID', 'X-GitHub-Delivery is missing');
      }
      if (seen.has(delivery)) {
        ctx.metrics.webhooks.inc({ result: 'duplicate' });
        return reply.code(200).send({ delivery, action: 'duplicate' } satisfies WebhookResult);
      }
      seen.add(delivery);
      if (seen.size > REMEMBERED) seen.delete(seen.values().next().value!);
      const event = request.headers['x-github-event'];
      if (event !== 'push') {
        ctx.metrics.webhooks.inc({ result: 'ignored' });
        return reply.code(202).send({
          delivery,
          action: 'ignored',
          event: String(event ?? ''),
        } satisfies WebhookResult);
      }
      ctx.metrics.webhooks.inc({ result: 'accepted' });
      request.log.info({ delivery }, 'push webhook: fetching now');
      void ctx.sync.sync({ pushed: true });
      return reply.code(202).send({ delivery, action: 'fetch' } satisfies WebhookResult);
    },
  );
}
