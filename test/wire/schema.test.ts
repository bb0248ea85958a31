// The machinery of wire/schema.ts: types computed from schemas (checked when this file
// compiles), and OpenAPI's `nullable` read by ajv as OpenAPI 3.0.3 says.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  assertSame,
  compileWire,
  jsonSchemaOf,
  wireAjv,
  type FromSchema,
  type Same,
} from '../../wire/schema.ts';

const PAIR = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string' },
    size: { type: 'integer', nullable: true },
    kind: { type: 'string', enum: ['a', 'b'] },
    tags: { type: 'array', items: { type: 'string' } },
    extra: { type: 'object', additionalProperties: { type: 'number' } },
    loose: { type: 'object' },
  },
} as const;

// Compile-time: the type of PAIR is exactly this.
assertSame<
  Same<
    FromSchema<typeof PAIR>,
    {
      name: string;
      size?: number | null;
      kind?: 'a' | 'b';
      tags?: string[];
      extra?: Record<string, number>;
      loose?: Record<string, unknown>;
    }
  >
>();
assertSame<Same<FromSchema<{ const: 'x' }>, 'x'>>();
assertSame<Same<FromSchema<{ type: 'boolean'; enum: readonly [true] }>, true>>();
assertSame<
  Same<
    FromSchema<{
      type: 'object';
      nullable: true;
      oneOf: readonly [{ type: 'string' }, { type: 'number' }];
    }>,
    string | number | null
  >
>();
assertSame<Same<Same<string, number>, false>>();

describe('wire schemas', () => {
  it('accept null where nullable, beside a oneOf too, and nothing else extra', () => {
    const ajv = wireAjv();
    const pair = compileWire(ajv, PAIR);
    assert.ok(pair({ name: 'n', size: null }));
    assert.ok(pair({ name: 'n', size: 3, kind: 'a', extra: { x: 1 }, loose: { y: 'z' } }));
    assert.equal(pair({ name: 'n', kind: null }), false);
    assert.equal(pair({ name: 'n', other: 1 }), false);
    const either = compileWire(ajv, {
      type: 'object',
      nullable: true,
      oneOf: [
        { type: 'object', required: ['a'], properties: { a: { type: 'string' } } },
        { type: 'object', required: ['b'], properties: { b: { type: 'string' } } },
      ],
    } as const);
    assert.ok(either(null));
    assert.ok(either({ a: 'x' }));
    assert.equal(either({ c: 'x' }), false);
  });

  it('turn nullable into a null type, a null in an enum, or an anyOf', () => {
    assert.deepEqual(jsonSchemaOf({ type: 'string', nullable: true, enum: ['a'] }), {
      type: ['string', 'null'],
      enum: ['a', null],
    });
    assert.deepEqual(jsonSchemaOf({ nullable: true, allOf: [{ type: 'object' }] }), {
      anyOf: [{ allOf: [{ type: 'object' }] }, { type: 'null' }],
    });
    assert.deepEqual(jsonSchemaOf({ type: 'string', nullable: false }), { type: 'string' });
  });

  it('are strict: a misspelt keyword does not compile', () => {
    assert.throws(() => wireAjv().compile({ type: 'object', propertie: {} }), /strict mode/);
  });
});
