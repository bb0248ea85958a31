// docs/api/openapi.yaml as the tests read it: the document, its schemas compiled with ajv, and
// conforms(), which fails unless an answer of the real server is documented and matches.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { type Answer } from '../reconciler/helpers.ts';
import { addWireFormats } from '../../wire/schema.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DOCUMENT_PATH = `${ROOT}docs/api/openapi.yaml`;
/** The official OpenAPI 3.0 JSON Schema, as Debian's `openapi-specification` package ships it. */
export const OAS30_SCHEMA = '/usr/share/openapi-specification/schemas/v3.0/schema.json';
export const REDOCLY = `${ROOT}node_modules/.bin/redocly`;

export type Json = Record<string, unknown>;
export const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

export const doc = parse(readFileSync(DOCUMENT_PATH, 'utf8')) as Json & {
  paths: Record<string, Record<string, Json>>;
  components: Record<string, Record<string, Json>>;
};

/** Formats the OpenAPI schema and the document use, checked plainly (no ajv-formats needed). */
export function addFormats(ajv: Ajv): void {
  addWireFormats(ajv);
  ajv.addFormat('uri-reference', {
    type: 'string',
    validate: (s: string) => URL.canParse(s, 'http://base.invalid/'),
  });
  ajv.addFormat('email', { type: 'string', validate: (s: string) => /^[^\s@]+@[^\s@]+$/.test(s) });
  ajv.addFormat('regex', {
    type: 'string',
    validate: (s: string) => {
      try {
        new RegExp(s, 'u');
        return true;
      } catch {
        return false;
      }
    },
  });
}

/** JSON Schema draft-04 (the OpenAPI 3.0 schema's dialect) as draft-07 for ajv 8. */
export function fromDraft04(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(fromDraft04);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) out[key] = fromDraft04(value);
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[flag] === 'boolean') {
      if (out[flag]) out[flag] = out[bound];
      else delete out[flag];
      if (out[flag] !== undefined) delete out[bound];
    }
  }
  return out;
}

/**
 * An OpenAPI 3.0 Schema Object as JSON Schema: `nullable: true` becomes a null type, and
 * references to components point into the document registered under `oas:document`.
 */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (key === 'nullable' || key === 'example') continue;
    if (key === '$ref' && typeof value === 'string') out[key] = `oas:document${value}`;
    else out[key] = toJsonSchema(value);
  }
  if ((node as Json).nullable === true) {
    // Beside a oneOf/allOf, null passes as an alternative, not inside every branch.
    if (typeof out.type === 'string' && !out.oneOf && !out.anyOf && !out.allOf) {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
    } else return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

export function deref<T>(node: T | { $ref: string }): T {
  let current: unknown = node;
  for (let i = 0; i < 10 && current && typeof current === 'object' && '$ref' in current; i++) {
    const ref = (current as { $ref: string }).$ref;
    assert.ok(ref.startsWith('#/'), `only local references: ${ref}`);
    current = ref
      .slice(2)
      .split('/')
      .reduce<unknown>((at, part) => (at as Json | undefined)?.[part], doc);
    assert.ok(current !== undefined, `${ref} does not resolve`);
  }
  return current as T;
}

export interface ResponseObject {
  headers?: Record<string, Json>;
  content?: Record<string, { schema?: Json }>;
}

export const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: 'oas:document', components: toJsonSchema(doc.components) });
const compiled = new Map<object, ValidateFunction>();
export function validator(schema: Json): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(toJsonSchema(schema) as Json);
    compiled.set(schema, v);
  }
  return v;
}

/** The document's path template for a concrete path, e.g. /v1/agents/{id}/target. */
function templateOf(path: string): string | undefined {
  const bare = path.split('?')[0]!;
  return Object.keys(doc.paths).find((template) =>
    new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare),
  );
}

/** Every (template, method, status) answer the server gave in this test. */
export const seen = new Set<string>();

/** Fails unless the answer is documented for this route and matches it. */
export function conforms(method: string, path: string, answer: Answer): void {
  const template = templateOf(path);
  assert.ok(template, `${path} is not in the document`);
  const operation = doc.paths[template]![method.toLowerCase()] as
    { responses: Record<string, ResponseObject | { $ref: string }> } | undefined;
  assert.ok(operation, `${method} ${template} is not in the document`);
  const where = `${method} ${path} → ${answer.status}`;
  const documented = operation.responses[String(answer.status)];
  assert.ok(documented, `${where}: status not documented (body: ${answer.text.slice(0, 200)})`);
  seen.add(`${method.toUpperCase()} ${template} ${answer.status}`);
  const response = deref<ResponseObject>(documented);
  for (const [name, ref] of Object.entries(response.headers ?? {})) {
    const header = deref<{ required?: boolean; schema?: Json }>(ref);
    const value = answer.headers[name.toLowerCase()];
    if (value === undefined) {
      assert.ok(!header.required, `${where}: header ${name} is required but missing`);
      continue;
    }
    if (header.schema) {
      const check = validator(header.schema);
      assert.ok(check(value), `${where}: header ${name}: ${ajv.errorsText(check.errors)}`);
    }
  }
  const contentType = String(answer.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  if (!response.content) {
    assert.equal(answer.text, '', `${where}: documented without a body`);
    return;
  }
  const media = response.content[contentType];
  assert.ok(
    media,
    `${where}: content type "${contentType}" is not documented (${Object.keys(response.content).join(', ')})`,
  );
  if (media.schema) {
    const body = contentType === 'application/json' ? answer.body : answer.text;
    const check = validator(media.schema);
    assert.ok(
      check(body),
      `${where}: body does not match: ${ajv.errorsText(check.errors)}\n${answer.text.slice(0, 500)}`,
    );
  }
}

/** The documented request body schema of an operation accepts (or refuses) a body. */
export function requestAccepts(method: string, template: string, body: unknown): boolean {
  type RequestBody = { content: Record<string, { schema: Json }> };
  const operation = doc.paths[template]![method] as { requestBody: RequestBody };
  const requestBody = deref<RequestBody>(operation.requestBody);
  return validator(requestBody.content['application/json']!.schema)(body);
}
