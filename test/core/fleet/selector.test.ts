import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Selector } from '../../../core/fleet/model.ts';
import {
  labelKeyProblem,
  labelValueProblem,
  matches,
  selectorProblems,
  type Labels,
} from '../../../core/fleet/selector.ts';

describe('matches', () => {
  const agent: Labels = { env: 'prod', region: 'eu-west-1', role: '' };
  const cases: Array<[string, Selector | undefined, boolean]> = [
    ['no selector selects everyone', undefined, true],
    ['an empty selector selects everyone', {}, true],
    ['matchLabels equal', { matchLabels: { env: 'prod' } }, true],
    ['matchLabels all equal', { matchLabels: { env: 'prod', region: 'eu-west-1' } }, true],
    ['matchLabels different value', { matchLabels: { env: 'staging' } }, false],
    ['matchLabels missing label', { matchLabels: { team: 'obs' } }, false],
    ['matchLabels empty value equals empty label', { matchLabels: { role: '' } }, true],
    ['matchLabels empty value is not a missing label', { matchLabels: { team: '' } }, false],
    [
      'In with the value',
      { matchExpressions: [{ key: 'env', operator: 'In', values: ['staging', 'prod'] }] },
      true,
    ],
    [
      'In without the value',
      { matchExpressions: [{ key: 'env', operator: 'In', values: ['staging'] }] },
      false,
    ],
    [
      'In on a missing label',
      { matchExpressions: [{ key: 'team', operator: 'In', values: ['obs'] }] },
      false,
    ],
    [
      'NotIn with the value',
      { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] },
      false,
    ],
    [
      'NotIn without the value',
      { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['staging'] }] },
      true,
    ],
    [
      'NotIn on a missing label',
      { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['obs'] }] },
      true,
    ],
    [
      'Exists on a present label',
      { matchExpressions: [{ key: 'region', operator: 'Exists' }] },
      true,
    ],
    ['Exists on an empty label', { matchExpressions: [{ key: 'role', operator: 'Exists' }] }, true],
    [
      'Exists on a missing label',
      { matchExpressions: [{ key: 'team', operator: 'Exists' }] },
      false,
    ],
    [
      'DoesNotExist on a missing label',
      { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
      true,
    ],
    [
      'DoesNotExist on a present label',
      { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] },
      false,
    ],
    [
      'labels and expressions must all hold',
      {
        matchLabels: { env: 'prod' },
        matchExpressions: [{ key: 'region', operator: 'In', values: ['us-east-1'] }],
      },
      false,
    ],
    [
      'a label named like an Object property is not inherited',
      { matchExpressions: [{ key: 'toString', operator: 'Exists' }] },
      false,
    ],
  ];
  for (const [name, selector, want] of cases) {
    it(name, () => assert.equal(matches(selector, agent), want));
  }
});

describe('label keys and values', () => {
  const keys: Array<[string, boolean]> = [
    ['env', true],
    ['app.kubernetes.io/name', true],
    ['example.com/team_name', true],
    ['A-b_c.D', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['', false],
    ['-env', false],
    ['env-', false],
    ['team name', false],
    ['acme_corp/team', false],
    ['Example.com/team', false],
    ['example.com/', false],
    [`${'a'.repeat(254)}/x`, false],
  ];
  for (const [key, ok] of keys) {
    it(`${ok ? 'accepts' : 'rejects'} key ${JSON.stringify(key.slice(0, 30))}`, () =>
      assert.equal(labelKeyProblem(key) === undefined, ok));
  }
  const values: Array<[string, boolean]> = [
    ['', true],
    ['prod', true],
    ['eu-west-1', true],
    ['v1.2_3', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['eu west 1', false],
    ['-prod', false],
    ['prod.', false],
    ['prod/x', false],
  ];
  for (const [value, ok] of values) {
    it(`${ok ? 'accepts' : 'rejects'} value ${JSON.stringify(value.slice(0, 30))}`, () =>
      assert.equal(labelValueProblem(value) === undefined, ok));
  }
  it('says what is wrong with a prefix', () => {
    assert.equal(
      labelKeyProblem('acme_corp/team'),
      'label key prefix "acme_corp" must be a DNS subdomain such as example.com',
    );
  });
});

describe('selectorProblems', () => {
  it('accepts a well-formed selector', () => {
    assert.deepEqual(
      selectorProblems({
        matchLabels: { env: 'prod', 'app.kubernetes.io/name': 'edge-logs' },
        matchExpressions: [
          { key: 'region', operator: 'In', values: ['eu-west-1'] },
          { key: 'canary', operator: 'DoesNotExist' },
        ],
      }),
      [],
    );
  });

  it('blames each mistake on the node that causes it', () => {
    const problems = selectorProblems({
      matchLabels: { '-env': 'prod', tier: 'web tier' },
      matchExpressions: [
        { key: 'region', operator: 'In' },
        { key: 'env', operator: 'NotIn', values: [] },
        { key: 'canary', operator: 'Exists', values: ['true'] },
        { key: 'bad key', operator: 'In', values: ['ok', 'not ok'] },
      ],
    });
    assert.deepEqual(
      problems.map((p) => [p.path.join('.'), p.at]),
      [
        ['matchLabels.-env', 'key'],
        ['matchLabels.tier', 'value'],
        ['matchExpressions.0.operator', 'value'],
        ['matchExpressions.1.values', 'value'],
        ['matchExpressions.2.values', 'key'],
        ['matchExpressions.3.key', 'value'],
        ['matchExpressions.3.values.1', 'value'],
      ],
    );
    assert.equal(problems[2]!.message, 'operator In needs a non-empty "values" list');
    assert.equal(problems[3]!.message, 'operator NotIn needs a non-empty "values" list');
    assert.equal(problems[4]!.message, 'operator Exists takes no "values"');
  });
});
