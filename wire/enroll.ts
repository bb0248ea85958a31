// POST /v1/enroll: the body an agent sends with the enrollment token, and its credential back.

import { AGENT_ID_SCHEMA, LABELS_SCHEMA } from './agent.ts';
import type { FromSchema } from './schema.ts';

export const ENROLL_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'labels'],
  properties: {
    id: AGENT_ID_SCHEMA,
    labels: LABELS_SCHEMA,
  },
} as const;

export const ENROLL_ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'token'],
  properties: {
    id: AGENT_ID_SCHEMA,
    token: { type: 'string', pattern: '^v1\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$' },
  },
} as const;

export type EnrollBody = FromSchema<typeof ENROLL_BODY_SCHEMA>;
export type EnrollAnswer = FromSchema<typeof ENROLL_ANSWER_SCHEMA>;
