// How every wire shape is declared: a JSON Schema written once (`as const`), and its TypeScript
// type computed from it by `FromSchema`, so the type the code uses and the schema ajv checks
// (and the OpenAPI document is tested against) cannot drift apart. Covers the part of JSON
// Schema the wire uses: type, properties, required, additionalProperties, items, enum, const,
// oneOf/anyOf, and OpenAPI 3.0's `nullable`.

import { Ajv, type Options, type ValidateFunction } from 'ajv';

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type RequiredKeys<S> = S extends { required: readonly (infer R)[] } ? R : never;

type Properties<S> = S extends { properties: infer P }
  ? { [K in keyof P & RequiredKeys<S>]: FromSchema<P[K]> } & {
      [K in Exclude<keyof P, RequiredKeys<S>>]?: FromSchema<P[K]>;
    }
  : unknown;

/**
 * Properties beyond the named ones. Without `additionalProperties` a schema accepts any (JSON
 * Schema's default): the type names only the known ones, as TypeScript's object types are open
 * anyway, or is a record when none are named. `true` or a schema gives an index signature.
 */
type Additional<S> = S extends { additionalProperties: true }
  ? Record<string, unknown>
  : S extends { additionalProperties: infer A extends object }
    ? Record<string, FromSchema<A>>
    : S extends { additionalProperties: false } | { properties: object }
      ? unknown
      : Record<string, unknown>;

type Base<S> = S extends { const: infer C }
  ? C
  : S extends { enum: readonly (infer E)[] }
    ? E
    : S extends { oneOf: readonly (infer O)[] }
      ? FromSchema<O>
      : S extends { anyOf: readonly (infer O)[] }
        ? FromSchema<O>
        : S extends { type: 'string' }
          ? string
          : S extends { type: 'integer' | 'number' }
            ? number
            : S extends { type: 'boolean' }
              ? boolean
              : S extends { type: 'array'; items: infer I }
                ? FromSchema<I>[]
                : S extends { type: 'object' }
                  ? Simplify<Properties<S> & Additional<S>>
                  : unknown;

/** The TypeScript type of the values a schema accepts. */
export type FromSchema<S> = S extends { nullable: true } ? Base<S> | null : Base<S>;

/** Compiles only when A and B are the same type (each assignable to the other). */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export function assertSame<T extends true>(): T | void {}

/**
 * A wire schema (an OpenAPI 3.0 Schema Object) as the JSON Schema ajv reads: `nullable: true`
 * adds `null` to the values it accepts: to its `type` (and `enum`), or beside its `oneOf`.
 */
export function jsonSchemaOf(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(jsonSchemaOf);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key !== 'nullable') out[key] = jsonSchemaOf(value);
  }
  if ((node as { nullable?: unknown }).nullable !== true) return out;
  // With oneOf/anyOf/allOf the `null` must pass beside them, not inside every branch.
  if (typeof out.type !== 'string' || out.oneOf || out.anyOf || out.allOf)
    return { anyOf: [out, { type: 'null' }] };
  out.type = [out.type, 'null'];
  if (Array.isArray(out.enum)) out.enum = [...(out.enum as unknown[]), null];
  return out;
}

/**
 * An ajv for wire schemas: strict (a misspelt keyword is an error) and the two formats the wire
 * uses, checked plainly.
 */
export function wireAjv(options: Options = {}): Ajv {
  const ajv = new Ajv({
    strict: true,
    allowUnionTypes: true,
    allErrors: true,
    coerceTypes: false,
    useDefaults: false,
    ...options,
  });
  addWireFormats(ajv);
  return ajv;
}

/** The two formats the wire uses (`date-time`, `uri`), checked plainly (no ajv-formats). */
export function addWireFormats(ajv: Ajv): void {
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) =>
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) &&
      !Number.isNaN(Date.parse(s)),
  });
  ajv.addFormat('uri', { type: 'string', validate: (s: string) => URL.canParse(s) });
}

/** A validator of one wire schema: a type guard for the type computed from it. */
export function compileWire<S extends object>(
  ajv: Ajv,
  schema: S,
): ValidateFunction<FromSchema<S>> {
  return ajv.compile<FromSchema<S>>(jsonSchemaOf(schema) as object);
}
