// Who an agent is on the wire: its id and its labels, as enrollment, check-ins and the agents
// inventory carry them.

import type { FromSchema } from './schema.ts';

/** Agent ids: letters, digits and `._:@-`, at most 253 characters, not starting with a sign. */
export const AGENT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$';

export const AGENT_ID_SCHEMA = { type: 'string', pattern: AGENT_ID_PATTERN } as const;

const AGENT_ID = new RegExp(AGENT_ID_PATTERN);

/** Agent ids: what hostnames, instance ids and UUIDs look like; bounded. */
export function isAgentId(id: unknown): id is string {
  return typeof id === 'string' && AGENT_ID.test(id);
}

/** Label keys and values are checked further by core/fleet/selector.ts (Kubernetes' rules). */
export const LABELS_SCHEMA = {
  type: 'object',
  maxProperties: 64,
  additionalProperties: { type: 'string', maxLength: 63 },
} as const;

/** A full git commit id (SHA-1 or SHA-256). */
export const COMMIT_SCHEMA = { type: 'string', pattern: '^[0-9a-f]{40}([0-9a-f]{24})?$' } as const;

export const TIMESTAMP_SCHEMA = { type: 'string', format: 'date-time' } as const;

export type AgentId = FromSchema<typeof AGENT_ID_SCHEMA>;
export type Labels = FromSchema<typeof LABELS_SCHEMA>;
