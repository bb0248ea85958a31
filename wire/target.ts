// The target an agent is served (DESIGN §5): `{etag, revision, wave, version, artifact, config,
// pollAfterSeconds}`. The type is the core's (core/target/model.ts renders it); the schema is
// checked against it at compile time. `wave` is the wave's name.

import type { Target } from '../core/target/model.ts';
import { assertSame, type FromSchema, type Same } from './schema.ts';

export type { Target };

const SHA256 = '^[0-9a-f]{64}$';

export const TARGET_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['etag', 'revision', 'wave', 'version', 'artifact', 'config', 'pollAfterSeconds'],
  properties: {
    etag: { type: 'string', pattern: SHA256 },
    revision: { type: 'string' },
    wave: { type: 'string' },
    version: { type: 'string' },
    artifact: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'sha256'],
      properties: {
        url: { type: 'string', format: 'uri' },
        sha256: { type: 'string', pattern: SHA256 },
        signature: {
          type: 'object',
          additionalProperties: false,
          required: ['url', 'keyRef'],
          properties: {
            url: { type: 'string', format: 'uri' },
            keyRef: { type: 'string', minLength: 1 },
          },
        },
      },
    },
    config: { type: 'object', additionalProperties: true },
    pollAfterSeconds: { type: 'integer', minimum: 1 },
  },
} as const;

assertSame<Same<FromSchema<typeof TARGET_SCHEMA>, Target>>();
