// POST /v1/checkin: what every check-in says (who, what it runs, how it is). One declaration for
// the agent and the simulator that send it and the reconciler that checks it.

import { AGENT_ID_SCHEMA, LABELS_SCHEMA } from './agent.ts';
import { HEALTH_SCHEMA } from './health.ts';
import type { FromSchema } from './schema.ts';

export const CHECKIN_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'labels'],
  properties: {
    id: AGENT_ID_SCHEMA,
    labels: LABELS_SCHEMA,
    /** What the agent runs now: the etag of its applied target and its version. */
    current: {
      type: 'object',
      additionalProperties: false,
      properties: {
        etag: { type: 'string', maxLength: 128 },
        version: { type: 'string', maxLength: 128 },
      },
    },
    health: HEALTH_SCHEMA,
  },
} as const;

export type CheckinBody = FromSchema<typeof CHECKIN_BODY_SCHEMA>;
