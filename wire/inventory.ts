// The agents inventory (admin token): GET /v1/agents pages through the agents fleet-wide, GET
// /v1/agents/{id} shows one with the target it is served now, POST /v1/agents/{id}/forget
// removes one. `wave` is the agent's wave's name, `waveIndex` its place in the stable policy.

import { AGENT_ID_SCHEMA, LABELS_SCHEMA, TIMESTAMP_SCHEMA } from './agent.ts';
import { HEALTH_STATUSES } from './health.ts';
import type { FromSchema } from './schema.ts';
import { TARGET_SCHEMA } from './target.ts';

const NULLABLE_STRING = { type: 'string', nullable: true } as const;

/** One agent as the inventory shows it. */
export const AGENT_VIEW_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'labels',
    'wave',
    'waveIndex',
    'revision',
    'etag',
    'version',
    'health',
    'firstSeen',
    'lastSeen',
    'replica',
  ],
  properties: {
    id: AGENT_ID_SCHEMA,
    labels: LABELS_SCHEMA,
    wave: NULLABLE_STRING,
    waveIndex: { type: 'integer', nullable: true, minimum: 0 },
    /** The revision it runs (candidate or stable), null when neither. */
    revision: NULLABLE_STRING,
    etag: NULLABLE_STRING,
    version: NULLABLE_STRING,
    health: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'silent', 'message', 'errors', 'requests', 'failedRevision', 'report'],
      properties: {
        status: { type: 'string', nullable: true, enum: HEALTH_STATUSES },
        silent: { type: 'boolean' },
        message: NULLABLE_STRING,
        errors: { type: 'number', minimum: 0 },
        requests: { type: 'number', minimum: 0 },
        /** The revision of the target it last reported as failedTarget. */
        failedRevision: NULLABLE_STRING,
        /** The health report as the agent sent it. */
        report: { type: 'object', nullable: true },
      },
    },
    firstSeen: TIMESTAMP_SCHEMA,
    lastSeen: TIMESTAMP_SCHEMA,
    /** The replica that saw it last. */
    replica: { type: 'string' },
  },
} as const;

/** GET /v1/agents: one page, in id order. */
export const AGENT_PAGE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['agents', 'next'],
  properties: {
    agents: { type: 'array', items: AGENT_VIEW_SCHEMA },
    /** The cursor of the next page; null on the last. */
    next: NULLABLE_STRING,
  },
} as const;

/** GET /v1/agents/{id}: the agent, and its target now or why it has none (null: not ready). */
export const AGENT_DETAIL_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['agent', 'target'],
  properties: {
    agent: AGENT_VIEW_SCHEMA,
    target: {
      type: 'object',
      nullable: true,
      oneOf: [
        TARGET_SCHEMA,
        {
          type: 'object',
          additionalProperties: false,
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string' }, message: { type: 'string' } },
            },
          },
        },
      ],
    },
  },
} as const;

/** POST /v1/agents/{id}/forget. */
export const FORGOTTEN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'forgotten'],
  properties: {
    id: AGENT_ID_SCHEMA,
    forgotten: { type: 'boolean', enum: [true] },
  },
} as const;

export type AgentView = FromSchema<typeof AGENT_VIEW_SCHEMA>;
export type AgentPage = FromSchema<typeof AGENT_PAGE_SCHEMA>;
export type AgentDetail = FromSchema<typeof AGENT_DETAIL_SCHEMA>;
export type Forgotten = FromSchema<typeof FORGOTTEN_SCHEMA>;
