// POST /v1/webhooks/github: what the reconciler did with a delivery (the payload is never read).

import type { FromSchema } from './schema.ts';

export const WEBHOOK_RESULT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['delivery', 'action'],
  properties: {
    delivery: { type: 'string' },
    action: { type: 'string', enum: ['fetch', 'ignored', 'duplicate'] },
    /** The ignored event's name. */
    event: { type: 'string' },
  },
} as const;

export type WebhookResult = FromSchema<typeof WEBHOOK_RESULT_SCHEMA>;
