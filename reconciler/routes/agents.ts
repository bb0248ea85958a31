// The agent API (DESIGN §5): enroll, check in (with If-None-Match and ?wait= long-polling),
// and a plain GET of an agent's target. An agent's credential names its id; it may read and
// report for that id only.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetwaveError } from '../../core/errors.ts';
import { labelKeyProblem, labelValueProblem } from '../../core/fleet/selector.ts';
import type { Labels } from '../../core/target/model.ts';
import type { AgentRecord, Health } from '../agents.ts';
import {
  AGENT_ID_PATTERN,
  bearer,
  issueAgentToken,
  secretEquals,
  verifyAgentToken,
} from '../auth.ts';
import type { CheckinWaiter, Reconciler } from '../context.ts';
import type { Served, Summary, Targets } from '../targets.ts';

const LABELS_SCHEMA = {
  type: 'object',
  maxProperties: 64,
  additionalProperties: { type: 'string', maxLength: 63 },
} as const;

const ENROLL_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'labels'],
  properties: {
    id: { type: 'string', pattern: AGENT_ID_PATTERN },
    labels: LABELS_SCHEMA,
  },
} as const;

export const CHECKIN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'labels'],
  properties: {
    id: { type: 'string', pattern: AGENT_ID_PATTERN },
    labels: LABELS_SCHEMA,
    current: {
      type: 'object',
      additionalProperties: false,
      properties: {
        etag: { type: 'string', maxLength: 128 },
        version: { type: 'string', maxLength: 128 },
      },
    },
    health: {
      type: 'object',
      required: ['status'],
      maxProperties: 32,
      properties: { status: { enum: ['ok', 'degraded', 'failed'] } },
    },
  },
} as const;

interface EnrollBody {
  id: string;
  labels: Record<string, string>;
}

interface CheckinBody extends EnrollBody {
  current?: { etag?: string; version?: string };
  health?: Health;
}

declare module 'fastify' {
  interface FastifyRequest {
    agentId: string;
  }
}

const MAX_WAIT_QUERY = 86_400;

function checkLabels(labels: Record<string, string>): Labels {
  for (const [key, value] of Object.entries(labels)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem) throw new FleetwaveError('REQUEST_INVALID', `body/labels: ${problem}`);
  }
  return Object.freeze({ ...labels });
}

/** `?wait=SECONDS`: absent is 0 (answer at once). */
function waitOf(query: unknown): number {
  const wait = (query as Record<string, unknown> | undefined)?.wait;
  if (wait === undefined || wait === '') return 0;
  if (typeof wait !== 'string' || !/^\d{1,6}$/.test(wait) || Number(wait) > MAX_WAIT_QUERY) {
    throw new FleetwaveError(
      'REQUEST_INVALID',
      `query/wait must be one whole number of seconds from 0 to ${MAX_WAIT_QUERY}`,
    );
  }
  return Number(wait);
}

/** The etags of `If-None-Match` (strong or weak, quoted), or '*'. */
function ifNoneMatch(header: string | string[] | undefined): string[] | '*' | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(',') : header;
  if (text.trim() === '*') return '*';
  if (text.length > 4096) throw new FleetwaveError('REQUEST_INVALID', 'If-None-Match is too long');
  const tags: string[] = [];
  for (const m of text.matchAll(/(?:W\/)?"([^"]*)"|([^\s,"]+)/g)) tags.push(m[1] ?? m[2]!);
  return tags;
}

function matches(tags: string[] | '*' | undefined, etag: string): boolean {
  return tags === '*' || (tags !== undefined && tags.includes(etag));
}

type Ok = Extract<Served, { ok: true }>;

function ready(ctx: Reconciler): Targets {
  const targets = ctx.targets;
  if (!targets) {
    ctx.metrics.checkins.inc({ result: 'not_ready' });
    throw new FleetwaveError('NOT_READY', 'no valid rollout to serve yet; see /v1/status', {
      details: { retryAfter: Math.max(1, Math.round(5 + 10 * ctx.random())) },
    });
  }
  return targets;
}

function unavailable(ctx: Reconciler, error: Extract<Served, { ok: false }>['error']): never {
  ctx.metrics.renderErrors.inc({ code: error.code });
  throw new FleetwaveError('TARGET_UNAVAILABLE', error.message);
}

/** The agent's whole target (for a 200), recorded as served. */
function served(ctx: Reconciler, record: AgentRecord): Ok {
  const result = ready(ctx).targetFor(record);
  if (!result.ok) unavailable(ctx, result.error);
  ctx.agents.served(record, result.target.wave, result.target.etag, result.target.revision);
  return result;
}

/**
 * What the agent is served, without rendering it when it was rendered for the same labels;
 * `whole()` gives the target for a 200, rendering it only if that has not just been done.
 */
function summary(ctx: Reconciler, record: AgentRecord): Summary & { whole: () => Ok } {
  const result = ready(ctx).summaryFor(record);
  if (!result.ok) unavailable(ctx, result.error);
  const s = result.summary;
  ctx.agents.served(record, s.wave, s.etag, s.revision);
  const rendered = result.rendered;
  return { ...s, whole: () => rendered ?? served(ctx, record) };
}

function sendTarget(reply: FastifyReply, result: Ok): FastifyReply {
  return reply
    .code(200)
    .header('etag', `"${result.target.etag}"`)
    .header('cache-control', 'no-cache')
    .type('application/json; charset=utf-8')
    .send(result.body);
}

function sendNotModified(reply: FastifyReply, etag: string, pollAfter: number): FastifyReply {
  return reply
    .code(304)
    .header('etag', `"${etag}"`)
    .header('cache-control', 'no-cache')
    .header('fleetwave-poll-after', String(pollAfter))
    .send();
}

/** A change happened: answer the waiter if its target moved. Shared by every waiter. */
export function releaseWaiter(ctx: Reconciler, waiter: CheckinWaiter): boolean {
  const targets = ctx.targets;
  if (!targets) return false;
  const result = targets.targetFor(waiter.record);
  if (!result.ok || result.target.etag === waiter.etag) return false;
  ctx.agents.served(waiter.record, result.target.wave, result.target.etag, result.target.revision);
  ctx.metrics.checkins.inc({ result: 'released' });
  sendTarget(waiter.reply, result);
  return true;
}

export function expireWaiter(ctx: Reconciler, waiter: CheckinWaiter): void {
  ctx.metrics.checkins.inc({ result: 'timeout' });
  const pollAfter = ctx.targets?.rollout.stable.model.fleet.spec.pollIntervalSeconds ?? 30;
  sendNotModified(waiter.reply, waiter.etag, pollAfter);
}

export async function agentRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  app.decorateRequest('agentId', '');

  const enrollAuth = async (request: FastifyRequest): Promise<void> => {
    const expected = ctx.config.enrollToken;
    if (expected === undefined) return; // --insecure-local-demo
    const token = bearer(request.headers.authorization);
    if (token === undefined || !secretEquals(token, expected)) {
      throw new FleetwaveError(
        'UNAUTHENTICATED',
        'enrollment needs Authorization: Bearer <enrollment token>',
      );
    }
  };

  // Callback form, as it runs on every check-in: no promise per request.
  const agentAuth = (
    request: FastifyRequest,
    _reply: FastifyReply,
    done: (err?: Error) => void,
  ): void => {
    const token = bearer(request.headers.authorization);
    const id = token === undefined ? undefined : verifyAgentToken(ctx.tokenKey, token);
    if (id === undefined) {
      done(
        new FleetwaveError(
          'UNAUTHENTICATED',
          'send Authorization: Bearer <agent token> from /v1/enroll',
        ),
      );
      return;
    }
    request.agentId = id;
    done();
  };

  app.post(
    '/v1/enroll',
    { onRequest: enrollAuth, schema: { body: ENROLL_SCHEMA } },
    async (request) => {
      const body = request.body as EnrollBody;
      const labels = checkLabels(body.labels);
      ctx.agents.enrolled(body.id, labels, ctx.now());
      ctx.metrics.enrollments.inc();
      return { id: body.id, token: issueAgentToken(ctx.tokenKey, body.id) };
    },
  );

  app.post(
    '/v1/checkin',
    { onRequest: agentAuth, schema: { body: CHECKIN_SCHEMA } },
    // Synchronous, returning nothing: fastify then holds no promise and no stream listeners
    // for a check-in that waits (an async handler returning the reply would), which is most of
    // the memory a waiting agent costs beyond its connection. Throws reach the error handler.
    (request, reply): void => {
      const body = request.body as CheckinBody;
      if (body.id !== request.agentId) {
        throw new FleetwaveError('FORBIDDEN', 'this credential belongs to another agent');
      }
      const wait = waitOf(request.query);
      const tags = ifNoneMatch(request.headers['if-none-match']);
      const labels = checkLabels(body.labels);
      const report = { id: body.id, labels, at: ctx.now() } as Parameters<
        typeof ctx.agents.report
      >[0];
      if (body.current) report.current = body.current;
      if (body.health) report.health = body.health;
      const record = ctx.agents.report(report);
      ctx.metrics.lastCheckin.set(report.at / 1000);
      const { etag, pollAfterSeconds, whole } = summary(ctx, record);
      const has = tags ?? (body.current?.etag === undefined ? undefined : [body.current.etag]);
      if (!matches(has, etag)) {
        ctx.metrics.checkins.inc({ result: 'target' });
        sendTarget(reply, whole());
        ctx.metrics.checkinDuration.observe(reply.elapsedTime / 1000);
        return;
      }
      if (wait === 0) {
        ctx.metrics.checkins.inc({ result: 'not_modified' });
        sendNotModified(reply, etag, pollAfterSeconds);
        ctx.metrics.checkinDuration.observe(reply.elapsedTime / 1000);
        return;
      }
      if (!ctx.longpoll.hasRoom()) {
        ctx.metrics.checkins.inc({ result: 'too_many_waiters' });
        throw new FleetwaveError(
          'TOO_MANY_WAITERS',
          'the server holds as many long-polls as it may; retry later',
          {
            details: { retryAfter: ctx.longpoll.retryAfterSeconds() },
          },
        );
      }
      const waiter: CheckinWaiter = { done: false, slot: 0, reply, record, etag };
      ctx.longpoll.add(waiter, ctx.longpoll.grantedWait(wait), reply.raw);
      // Answered later by releaseWaiter or expireWaiter.
    },
  );

  app.get('/v1/agents/:id/target', { onRequest: agentAuth }, async (request, reply) => {
    const { id } = request.params as { id: string };
    if (id !== request.agentId) {
      throw new FleetwaveError('FORBIDDEN', 'this credential belongs to another agent');
    }
    const record = ctx.agents.get(id);
    if (!record) {
      throw new FleetwaveError(
        'NOT_FOUND',
        `agent ${id} has not enrolled or checked in here; check in first`,
      );
    }
    const known = summary(ctx, record);
    if (matches(ifNoneMatch(request.headers['if-none-match']), known.etag)) {
      return sendNotModified(reply, known.etag, known.pollAfterSeconds);
    }
    return sendTarget(reply, known.whole());
  });
}
