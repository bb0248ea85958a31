// The wire module (wire/) and the OpenAPI document (docs/api/openapi.yaml) describe the same
// shapes: every schema component of the document is a wire schema of the same name, and equals
// it. "Equals", precisely: after the document's `$ref`s are replaced by what they point to and
// an `allOf` of one schema is merged into the schema holding it (OpenAPI 3.0 ignores the
// siblings of a `$ref`, so a nullable reference is written that way), and after the annotations
// `description` and `example` are dropped from both, the two are deeply equal, with `required`
// compared as a set. Everything that validates (type, enum, pattern, format, bounds, nullable,
// additionalProperties) must match.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  AGENT_ID_SCHEMA,
  COMMIT_SCHEMA,
  LABELS_SCHEMA,
  TIMESTAMP_SCHEMA,
} from '../../wire/agent.ts';
import { CHECKIN_BODY_SCHEMA } from '../../wire/checkin.ts';
import { ENROLL_ANSWER_SCHEMA, ENROLL_BODY_SCHEMA } from '../../wire/enroll.ts';
import { ERROR_BODY_SCHEMA } from '../../wire/error.ts';
import { HEALTH_SCHEMA, TARGET_REF_SCHEMA } from '../../wire/health.ts';
import {
  AGENT_DETAIL_SCHEMA,
  AGENT_PAGE_SCHEMA,
  AGENT_VIEW_SCHEMA,
  FORGOTTEN_SCHEMA,
} from '../../wire/inventory.ts';
import { ACTION_RESULT_SCHEMA, OPERATOR_ACTION_BODY_SCHEMA } from '../../wire/operator.ts';
import { compileWire, wireAjv } from '../../wire/schema.ts';
import {
  COHORT_SNAPSHOT_SCHEMA,
  ENGINE_STATUS_SCHEMA,
  GATE_RESULT_SCHEMA,
  GIT_STATUS_SCHEMA,
  HISTORY_ENTRY_SCHEMA,
  ROLLOUT_OBSERVATION_SCHEMA,
  STATUS_SCHEMA,
  STORE_STATUS_SCHEMA,
  TALLY_SCHEMA,
  WAVE_COUNTS_SCHEMA,
} from '../../wire/status.ts';
import { TARGET_SCHEMA } from '../../wire/target.ts';
import { WEBHOOK_RESULT_SCHEMA } from '../../wire/webhook.ts';

type Json = Record<string, unknown>;

const doc = parse(
  readFileSync(new URL('../../docs/api/openapi.yaml', import.meta.url), 'utf8'),
) as { components: { schemas: Record<string, Json> } };

/** The wire schema of each component of the document, by the component's name. */
const WIRE: Record<string, object> = {
  AgentId: AGENT_ID_SCHEMA,
  Commit: COMMIT_SCHEMA,
  Timestamp: TIMESTAMP_SCHEMA,
  Labels: LABELS_SCHEMA,
  Error: ERROR_BODY_SCHEMA,
  EnrollBody: ENROLL_BODY_SCHEMA,
  EnrollAnswer: ENROLL_ANSWER_SCHEMA,
  CheckinBody: CHECKIN_BODY_SCHEMA,
  Health: HEALTH_SCHEMA,
  TargetRef: TARGET_REF_SCHEMA,
  Target: TARGET_SCHEMA,
  OperatorActionBody: OPERATOR_ACTION_BODY_SCHEMA,
  ActionResult: ACTION_RESULT_SCHEMA,
  WebhookResult: WEBHOOK_RESULT_SCHEMA,
  WaveCounts: WAVE_COUNTS_SCHEMA,
  CohortSnapshot: COHORT_SNAPSHOT_SCHEMA,
  Tally: TALLY_SCHEMA,
  RolloutObservation: ROLLOUT_OBSERVATION_SCHEMA,
  HistoryEntry: HISTORY_ENTRY_SCHEMA,
  GateResult: GATE_RESULT_SCHEMA,
  Status: STATUS_SCHEMA,
  StoreStatus: STORE_STATUS_SCHEMA,
  GitStatus: GIT_STATUS_SCHEMA,
  EngineStatus: ENGINE_STATUS_SCHEMA,
  AgentView: AGENT_VIEW_SCHEMA,
  AgentPage: AGENT_PAGE_SCHEMA,
  AgentDetail: AGENT_DETAIL_SCHEMA,
  Forgotten: FORGOTTEN_SCHEMA,
};

const ANNOTATIONS = new Set(['description', 'example']);

/** A document schema with its references resolved and one-schema `allOf`s merged. */
function expand(node: unknown, depth = 0): unknown {
  assert.ok(depth < 50, 'a reference cycle');
  if (Array.isArray(node)) return node.map((n) => expand(n, depth + 1));
  if (node === null || typeof node !== 'object') return node;
  const ref = (node as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') {
    const m = /^#\/components\/schemas\/(\w+)$/.exec(ref);
    assert.ok(m && doc.components.schemas[m[1]!], `${ref} does not resolve`);
    return expand(doc.components.schemas[m[1]!], depth + 1);
  }
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (key !== 'allOf') out[key] = expand(value, depth + 1);
  }
  const allOf = (node as { allOf?: unknown[] }).allOf;
  if (allOf !== undefined) {
    assert.equal(allOf.length, 1, 'only a one-schema allOf (a nullable reference) is merged');
    for (const [key, value] of Object.entries(expand(allOf[0], depth + 1) as Json)) {
      if (key in out && !ANNOTATIONS.has(key))
        assert.deepEqual(out[key], value, `allOf disagrees with its holder on ${key}`);
      else out[key] = value;
    }
  }
  return out;
}

/** Without annotations, `required` sorted: what both sides are compared as. */
function normal(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normal);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (ANNOTATIONS.has(key)) continue;
    out[key] = key === 'required' ? [...(value as string[])].sort() : normal(value);
  }
  return out;
}

describe('the wire schemas and the OpenAPI document', () => {
  it('have the same components', () => {
    assert.deepEqual(Object.keys(doc.components.schemas).sort(), Object.keys(WIRE).sort());
  });

  for (const [name, schema] of Object.entries(WIRE)) {
    it(`${name} is the same schema in both`, () => {
      assert.deepEqual(normal(expand(doc.components.schemas[name])), normal(schema));
    });
  }

  it('would see a difference: a changed bound, a nullable dropped, a property added', () => {
    const status = normal(expand(doc.components.schemas.Status)) as Json;
    assert.deepEqual(status, normal(STATUS_SCHEMA));
    const props = status.properties as Json;
    const changed = (edit: (p: Json) => void): Json => {
      const copy = structuredClone(status);
      edit(copy.properties as Json);
      return copy;
    };
    for (const edited of [
      changed((p) => ((p.waves as Json).items = { type: 'object' })),
      changed((p) => delete (p.stable as Json).nullable),
      changed((p) => (p.extra = { type: 'string' })),
      changed((p) => ((p.candidate as Json).required = ['revision'])),
    ]) {
      assert.notDeepEqual(edited, normal(STATUS_SCHEMA));
    }
    assert.ok(props.candidate, 'the Status component has the candidate');
  });

  it('compile under strict ajv, and accept null where OpenAPI says nullable', () => {
    const ajv = wireAjv();
    for (const [name, schema] of Object.entries(WIRE)) {
      assert.doesNotThrow(() => compileWire(ajv, schema), name);
    }
    const view = compileWire(ajv, AGENT_VIEW_SCHEMA);
    const agent = {
      id: 'web-1',
      labels: { env: 'prod' },
      wave: null,
      waveIndex: null,
      revision: null,
      etag: null,
      version: null,
      health: {
        status: null,
        silent: true,
        message: null,
        errors: 0,
        requests: 0,
        failedRevision: null,
        report: null,
      },
      firstSeen: '2026-11-27T10:00:00.000Z',
      lastSeen: '2026-11-27T10:00:00.000Z',
      replica: 'r1',
    };
    assert.ok(view(agent), JSON.stringify(view.errors));
    assert.equal(view({ ...agent, health: { ...agent.health, status: 'fine' } }), false);
    const detail = compileWire(ajv, AGENT_DETAIL_SCHEMA);
    assert.ok(detail({ agent, target: null }), JSON.stringify(detail.errors));
    assert.ok(detail({ agent, target: { error: { code: 'missing-label', message: 'm' } } }));
    assert.equal(detail({ agent, target: { version: '1' } }), false);
  });
});
