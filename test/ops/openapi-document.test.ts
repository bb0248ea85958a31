// docs/api/openapi.yaml on its own: valid against the official OpenAPI 3.0 schema, clean under
// Redocly's linter, every reference resolving; and a signed release's target fits its schema.
// openapi-server.test.ts checks the running server against it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { validateFleet } from '../../core/fleet/validate.ts';
import { renderTarget } from '../../core/target/render.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { LINUX_PROD } from '../reconciler/helpers.ts';
import {
  DOCUMENT_PATH,
  METHODS,
  OAS30_SCHEMA,
  REDOCLY,
  ROOT,
  addFormats,
  ajv,
  deref,
  doc,
  fromDraft04,
  validator,
  type Json,
  type ResponseObject,
} from './openapi.ts';

describe('the OpenAPI document', () => {
  it(
    'is valid against the official OpenAPI 3.0 JSON Schema',
    {
      skip: existsSync(OAS30_SCHEMA)
        ? false
        : `${OAS30_SCHEMA} is missing: apt-get install openapi-specification`,
    },
    () => {
      const schema = fromDraft04(JSON.parse(readFileSync(OAS30_SCHEMA, 'utf8'))) as Json;
      delete schema.$schema;
      schema.$id = schema.id;
      delete schema.id;
      const meta = new Ajv({ strict: false, allErrors: true });
      addFormats(meta);
      const validate = meta.compile(schema);
      assert.equal(doc.openapi, '3.0.3');
      assert.ok(validate(doc), meta.errorsText(validate.errors, { separator: '\n' }));
      // The check can fail: a document with a wrong field is refused.
      assert.equal(validate({ ...doc, paths: { '/x': { get: { responses: 'none' } } } }), false);
    },
  );

  it('passes `redocly lint` (recommended rules, see redocly.yaml)', () => {
    const out = execFileSync(REDOCLY, ['lint', '--format=stylish', DOCUMENT_PATH], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: 'pipe',
      env: {
        ...process.env,
        REDOCLY_TELEMETRY: 'off',
        REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
        // redocly turns on V8's compile cache, which would leave a node-compile-cache dir in /tmp.
        NODE_DISABLE_COMPILE_CACHE: '1',
      },
    });
    assert.doesNotMatch(out, /warning|error/i, out);
  });

  it('has every reference resolving, every operation an operationId and an error schema', () => {
    const ids = new Set<string>();
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        const operation = item[method] as
          { operationId?: string; responses: Record<string, unknown> } | undefined;
        if (!operation) continue;
        assert.ok(operation.operationId, `${method} ${template}: no operationId`);
        assert.ok(!ids.has(operation.operationId), `${operation.operationId} twice`);
        ids.add(operation.operationId);
        for (const [status, response] of Object.entries(operation.responses)) {
          const r = deref<ResponseObject>(response as ResponseObject);
          for (const h of Object.values(r.headers ?? {})) deref(h);
          if (Number(status) >= 400) {
            assert.deepEqual(
              r.content?.['application/json']?.schema,
              { $ref: '#/components/schemas/Error' },
              `${method} ${template} ${status} is not the error body`,
            );
          }
        }
      }
    }
    // Compiling every schema resolves every $ref inside the components.
    for (const schema of Object.values(doc.components.schemas!)) validator(schema);
  });

  it('describes the target of a signed release (the served fleet signs none)', async () => {
    const { model } = validateFleet(await readFleetDirectory('fleet', { cwd: ROOT }));
    assert.ok(model);
    // The example fleet's 2.5.0 signs each artifact.
    const signed = {
      ...model,
      fleet: { ...model.fleet, spec: { ...model.fleet.spec, version: '2.5.0' } },
    };
    const rendered = renderTarget(signed, 'c'.repeat(40), { id: 'agent-a', labels: LINUX_PROD });
    assert.ok(rendered.ok && rendered.target.artifact.signature);
    const check = validator(doc.components.schemas!.Target!);
    const body = JSON.parse(JSON.stringify(rendered.target)) as Json;
    assert.ok(check(body), ajv.errorsText(check.errors));
    const artifact = body.artifact as Json;
    assert.equal(
      check({ ...body, artifact: { ...artifact, signature: { url: 'https://x/y.sig' } } }),
      false,
    );
  });
});
