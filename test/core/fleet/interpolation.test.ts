import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasInterpolation, scan, type Token } from '../../../core/fleet/interpolation.ts';

const NOT_ALLOWED = (raw: string) =>
  `"${raw}" is not allowed: only \${agent.id} and \${agent.labels.NAME} may be interpolated (write "$\${" for a literal "\${")`;
const UNTERMINATED = (raw: string) =>
  `unterminated interpolation "${raw}": close it with "}" or write "$\${" for a literal "\${"`;

describe('scan', () => {
  const cases: Array<[string, Token[]]> = [
    ['', []],
    ['plain text', []],
    ['$HOME and {braces}', []],
    ['${agent.id}', [{ raw: '${agent.id}', index: 0, reference: { kind: 'id' } }]],
    ['${ agent.id }', [{ raw: '${ agent.id }', index: 0, reference: { kind: 'id' } }]],
    [
      'https://ingest.${agent.labels.region}.example.com',
      [
        {
          raw: '${agent.labels.region}',
          index: 15,
          reference: { kind: 'label', name: 'region' },
        },
      ],
    ],
    [
      '${agent.labels.app.kubernetes.io/name}',
      [
        {
          raw: '${agent.labels.app.kubernetes.io/name}',
          index: 0,
          reference: { kind: 'label', name: 'app.kubernetes.io/name' },
        },
      ],
    ],
    [
      'a-${agent.id}-${agent.id}',
      [
        { raw: '${agent.id}', index: 2, reference: { kind: 'id' } },
        { raw: '${agent.id}', index: 14, reference: { kind: 'id' } },
      ],
    ],
    ['$${HOME}', []],
    ['$${agent.id}', []],
    ['${agent.name}', [{ raw: '${agent.name}', index: 0, problem: NOT_ALLOWED('${agent.name}') }]],
    ['${env.HOME}/x', [{ raw: '${env.HOME}', index: 0, problem: NOT_ALLOWED('${env.HOME}') }]],
    ['${}', [{ raw: '${}', index: 0, problem: NOT_ALLOWED('${}') }]],
    ['${agent.id', [{ raw: '${agent.id', index: 0, problem: UNTERMINATED('${agent.id') }]],
    [
      'host-${agent.id rest',
      [{ raw: '${agent.id', index: 5, problem: UNTERMINATED('${agent.id') }],
    ],
    [
      '${agent.id-${agent.labels.zone}',
      [
        { raw: '${agent.id-', index: 0, problem: UNTERMINATED('${agent.id-') },
        { raw: '${agent.labels.zone}', index: 11, reference: { kind: 'label', name: 'zone' } },
      ],
    ],
  ];
  for (const [text, want] of cases) {
    it(JSON.stringify(text), () => assert.deepEqual(scan(text), want));
  }

  it('checks the label name', () => {
    const [bad] = scan('${agent.labels.team name}');
    assert.equal(bad?.reference, undefined);
    assert.match(
      bad?.problem ?? '',
      /^in "\$\{agent\.labels\.team name\}": label key "team name" must be/,
    );
    const [empty] = scan('${agent.labels.}');
    assert.match(empty?.problem ?? '', /^in "\$\{agent\.labels\.\}": label key "" must be/);
  });

  it('reports every one of many unterminated openings', () => {
    const tokens = scan('${'.repeat(50_000));
    assert.equal(tokens.length, 50_000);
    assert.ok(tokens.every((t, i) => t.index === 2 * i && t.raw === '${' && t.problem));
  });
});

describe('hasInterpolation', () => {
  it('looks for ${', () => {
    assert.equal(hasInterpolation('a ${agent.id}'), true);
    assert.equal(hasInterpolation('a $ { b }'), false);
  });
});
