// The agents inventory (admin token): which agents there are, fleet-wide from the store, what
// each last reported and what it is served. GET /v1/agents lists them by label selector, wave,
// health and revision, paginated in id order; GET /v1/agents/{id} shows one; POST
// /v1/agents/{id}/forget removes one.

import type { FastifyInstance } from 'fastify';
import { FleetwaveError } from '../../core/errors.ts';
import { parseSelector } from '../../core/fleet/selector.ts';
import { AGENT_ID_PATTERN } from '../../wire/agent.ts';
import type { AgentDetail, AgentPage, AgentView, Forgotten } from '../../wire/inventory.ts';
import type { Reconciler } from '../context.ts';
import type { AgentFilter, AgentRow, HealthFilter } from '../store/store.ts';
import { adminAuth } from './admin.ts';
import { fleetSilentAfterMs } from './status.ts';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
const HEALTH: readonly HealthFilter[] = ['ok', 'degraded', 'failed', 'silent'];

const QUERY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    selector: { type: 'string', maxLength: 2048 },
    wave: { type: 'string', maxLength: 253 },
    health: { enum: HEALTH },
    revision: { type: 'string', maxLength: 64 },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    cursor: { type: 'string', maxLength: 400, pattern: '^[A-Za-z0-9_-]*$' },
  },
} as const;

const ID_PARAMS = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: AGENT_ID_PATTERN } },
} as const;

interface ListQuery {
  selector?: string;
  wave?: string;
  health?: HealthFilter;
  revision?: string;
  limit?: string;
  cursor?: string;
}

export type { AgentView };

export function agentView(row: AgentRow, silentBefore: number): AgentView {
  return {
    id: row.id,
    labels: { ...row.labels },
    wave: row.waveName,
    waveIndex: row.wave,
    revision: row.revision,
    etag: row.etag,
    version: row.version,
    health: {
      status: row.status,
      silent: row.lastSeen < silentBefore,
      message: row.message,
      errors: row.errors,
      requests: row.requests,
      failedRevision: row.failedRevision,
      report: row.health,
    },
    firstSeen: new Date(row.firstSeen).toISOString(),
    lastSeen: new Date(row.lastSeen).toISOString(),
    replica: row.replica,
  };
}

function invalid(message: string): FleetwaveError {
  return new FleetwaveError('REQUEST_INVALID', message);
}

export async function inventoryRoutes(
  app: FastifyInstance,
  { ctx }: { ctx: Reconciler },
): Promise<void> {
  const admin = adminAuth(ctx, 'the agents inventory');
  const silentBefore = (): number => {
    const model = ctx.targets?.rollout.stable.model;
    return ctx.now() - (model ? fleetSilentAfterMs(model) : 0);
  };

  app.get(
    '/v1/agents',
    { onRequest: admin, schema: { querystring: QUERY_SCHEMA } },
    async (request): Promise<AgentPage> => {
      const q = request.query as ListQuery;
      const limit = q.limit === undefined ? DEFAULT_LIMIT : Number(q.limit);
      if (limit < 1 || limit > MAX_LIMIT) {
        throw invalid(`query/limit must be from 1 to ${MAX_LIMIT}`);
      }
      const before = silentBefore();
      const filter: AgentFilter = { limit, silentBefore: before };
      if (q.selector !== undefined && q.selector.trim() !== '') {
        try {
          filter.selector = parseSelector(q.selector);
        } catch (e) {
          throw invalid(`query/selector: ${(e as Error).message}`);
        }
      }
      if (q.wave !== undefined) {
        const names = ctx.targets?.waveNames ?? [];
        const index = names.indexOf(q.wave);
        if (index < 0) {
          throw invalid(
            `query/wave: no wave "${q.wave}"; the waves are ${names.join(', ') || '(none served yet)'}`,
          );
        }
        filter.wave = index;
      }
      if (q.health !== undefined) filter.health = q.health;
      if (q.revision !== undefined) {
        const rollout = ctx.targets?.rollout;
        const revision =
          q.revision === 'stable'
            ? rollout?.stable.commit
            : q.revision === 'candidate'
              ? rollout?.candidate?.commit
              : q.revision;
        if (revision === undefined || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(revision)) {
          throw invalid(
            `query/revision must be a full commit id, "stable" or "candidate" (while one rolls out)`,
          );
        }
        filter.revision = revision;
      }
      if (q.cursor !== undefined && q.cursor !== '') {
        filter.after = Buffer.from(q.cursor, 'base64url').toString('utf8');
      }
      // One more than asked: whether there is a next page.
      const rows = await ctx.reports.list({ ...filter, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        agents: page.map((row) => agentView(row, before)),
        next:
          rows.length > limit && last ? Buffer.from(last.id, 'utf8').toString('base64url') : null,
      };
    },
  );

  app.get(
    '/v1/agents/:id',
    { onRequest: admin, schema: { params: ID_PARAMS } },
    async (request): Promise<AgentDetail> => {
      const { id } = request.params as { id: string };
      const row = await ctx.reports.get(id);
      if (!row) throw new FleetwaveError('NOT_FOUND', `no agent ${id} in the store`);
      const served = ctx.targets?.targetFor({ id: row.id, labels: row.labels });
      return {
        agent: agentView(row, silentBefore()),
        target: served
          ? served.ok
            ? served.target
            : { error: { code: served.error.code, message: served.error.message } }
          : null,
      };
    },
  );

  app.post(
    '/v1/agents/:id/forget',
    { onRequest: admin, schema: { params: ID_PARAMS } },
    async (request): Promise<Forgotten> => {
      const { id } = request.params as { id: string };
      const forgotten = await ctx.reports.forget(id);
      if (!forgotten) throw new FleetwaveError('NOT_FOUND', `no agent ${id} to forget`);
      request.log.warn({ id }, 'agent forgotten');
      return { id, forgotten: true };
    },
  );
}
