import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { formatText } from '../../core/diagnostics.ts';
import {
  DEFAULT_INVENTORY_LIMITS,
  hasDuplicateKey,
  parseInventory,
  readInventory,
} from '../../source/inventory.ts';
import { REPO_ROOT } from '../helpers/cli.ts';

const parse = (text: string, file = 'inventory.yaml') =>
  parseInventory(Buffer.from(text, 'utf8'), file);
const problems = (text: string, file?: string) => parse(text, file).diagnostics.map(formatText);

describe('parseInventory', () => {
  it('reads a YAML list of {id, labels} in order', () => {
    const inv = parse(
      [
        '- id: web-1',
        '  labels: {env: prod, os: linux}',
        '- id: "42"',
        '- id: db-1',
        '  labels:',
        '',
      ].join('\n'),
    );
    assert.deepEqual(inv.diagnostics, []);
    assert.deepEqual(inv.agents, [
      { id: 'web-1', labels: { env: 'prod', os: 'linux' } },
      { id: '42', labels: {} },
      { id: 'db-1', labels: {} },
    ]);
  });

  it('reads the same agents from JSON (the fast path) and YAML', () => {
    const agentsArb = fc.uniqueArray(
      fc.record({
        id: fc.string({ minLength: 1, maxLength: 10 }),
        labels: fc.dictionary(
          fc.string({ minLength: 1, maxLength: 6 }),
          fc.string({ maxLength: 6 }),
          {
            maxKeys: 4,
          },
        ),
      }),
      { selector: (a) => a.id, maxLength: 8 },
    );
    fc.assert(
      fc.property(agentsArb, (generated) => {
        // fast-check may build objects without a prototype; an inventory's are plain.
        const agents = JSON.parse(JSON.stringify(generated)) as typeof generated;
        const fromJson = parse(JSON.stringify(agents), 'inventory.json');
        const fromYaml = parse(stringify(agents));
        assert.deepEqual(fromJson, { file: 'inventory.json', agents, diagnostics: [] });
        assert.deepEqual(fromYaml.agents, agents);
        assert.deepEqual(fromYaml.diagnostics, []);
      }),
    );
  });

  it('accepts an empty list and refuses an empty file', () => {
    assert.deepEqual(parse('[]\n').agents, []);
    assert.deepEqual(parse('[]\n').diagnostics, []);
    assert.deepEqual(problems('# nothing here\n'), [
      'inventory.yaml:1:1: error: the inventory is empty; write a list of agents, each {id, labels} ([] for none)',
    ]);
  });

  // Each mistake at its line and column, every one at once.
  const table: Array<[string, string[], string[]]> = [
    [
      'duplicate ids',
      ['- id: web-1', '- id: web-2', '- id: web-1', '  labels: {env: prod}'],
      ['inventory.yaml:3:7: error: duplicate agent id "web-1" (first at line 1)'],
    ],
    [
      'a missing id',
      ['- id: web-1', '- labels: {env: prod}'],
      ['inventory.yaml:2:3: error: agent 2 has no id'],
    ],
    [
      'an empty id and a numeric id',
      ['- id: ""', '- id: 42', '- id: {a: 1}'],
      [
        'inventory.yaml:1:7: error: agent 1: id must not be empty',
        'inventory.yaml:2:7: error: agent 2: id must be a string; quote it: "42"',
        'inventory.yaml:3:7: error: agent 3: id must be a non-empty string',
      ],
    ],
    [
      'non-string labels',
      ['- id: a', '  labels:', '    zone: 3', '    canary: true', '    env:', '    tags: [x]'],
      [
        'inventory.yaml:3:11: error: agent 1: label "zone" must be a string, not number; quote it: "3"',
        'inventory.yaml:4:13: error: agent 1: label "canary" must be a string, not boolean; quote it: "true"',
        'inventory.yaml:5:5: error: agent 1: label "env" must be a string (it is empty; write "" for an empty value)',
        'inventory.yaml:6:11: error: agent 1: label "tags" must be a string',
      ],
    ],
    [
      'labels that are not a mapping',
      ['- id: a', '  labels: [env, prod]'],
      ['inventory.yaml:2:11: error: agent 1: labels must be a mapping of names to strings'],
    ],
    [
      'an unknown key, with a suggestion',
      ['- id: a', '  label: {env: prod}'],
      ['inventory.yaml:2:3: error: agent 1: unknown key "label"; did you mean "labels"?'],
    ],
    [
      'an item that is not a mapping',
      ['- id: a', '- just-a-string'],
      ['inventory.yaml:2:3: error: agent 2 must be a mapping {id, labels}'],
    ],
    [
      'a mapping instead of a list',
      ['agents:', '  - id: a'],
      ['inventory.yaml:1:1: error: an inventory is a list of agents, each {id, labels}'],
    ],
    [
      'a duplicate key',
      ['- id: a', '  labels: {env: prod, env: dev}'],
      ['inventory.yaml:2:23: error: duplicate key: each key may appear once in a mapping'],
    ],
    [
      'YAML syntax',
      ['- id: a', '  labels: {env: prod'],
      [
        'inventory.yaml:3:1: error: YAML syntax: flow map in block collection must be sufficiently indented and end with a }',
      ],
    ],
  ];
  for (const [name, lines, expected] of table) {
    it(`reports ${name}`, () => {
      const inv = parse(lines.join('\n') + '\n');
      assert.deepEqual(inv.diagnostics.map(formatText), expected);
      assert.deepEqual(inv.agents, [], 'no agents from an inventory with problems');
    });
  }

  it('places problems of a JSON inventory at their line too', () => {
    const text = [
      '[',
      '  {"id": "a", "labels": {"env": "prod"}},',
      '  {"id": "a", "labels": {"zone": 3}}',
      ']',
    ].join('\n');
    assert.deepEqual(problems(text, 'inventory.json'), [
      'inventory.json:3:10: error: duplicate agent id "a" (first at line 2)',
      'inventory.json:3:34: error: agent 2: label "zone" must be a string, not number; quote it: "3"',
    ]);
  });

  it('finds a duplicate key that JSON.parse would silently drop', () => {
    assert.deepEqual(problems('[{"id": "a", "labels": {"env": "prod", "env": "dev"}}]', 'i.json'), [
      'i.json:1:40: error: duplicate key: each key may appear once in a mapping',
    ]);
  });

  it('resolves YAML anchors for shared labels', () => {
    const inv = parse(
      ['- id: a', '  labels: &web {env: prod, role: web}', '- id: b', '  labels: *web'].join('\n'),
    );
    assert.deepEqual(inv.agents[1], { id: 'b', labels: { env: 'prod', role: 'web' } });
  });

  it('refuses bytes that are not UTF-8, at their position', () => {
    const bytes = Buffer.concat([
      Buffer.from('- id: a\n- id: b'),
      Buffer.from([0xff]),
      Buffer.from('\n'),
    ]);
    assert.deepEqual(parseInventory(bytes, 'i.yaml').diagnostics.map(formatText), [
      'i.yaml:2:8: error: the inventory is not valid UTF-8 (byte 0xff at offset 15); save it as UTF-8',
    ]);
  });

  it('bounds the size and the number of agents', () => {
    const limits = { ...DEFAULT_INVENTORY_LIMITS, maxBytes: 64, maxAgents: 2 };
    const big = parseInventory(Buffer.from(`- id: ${'x'.repeat(100)}\n`), 'i.yaml', limits);
    assert.deepEqual(
      big.diagnostics.map((d) => d.code),
      ['too-large'],
    );
    const many = parseInventory(
      Buffer.from('[{"id":"a"},{"id":"b"},{"id":"c"}]'),
      'i.json',
      limits,
    );
    assert.deepEqual(many.diagnostics.map(formatText), [
      'i.json:1:1: error: the inventory lists 3 agents; it may list at most 2',
    ]);
  });

  it('refuses hostile nesting with one clear problem, in JSON and YAML', () => {
    for (const [text, file] of [
      ['['.repeat(100_000) + ']'.repeat(100_000), 'i.json'],
      [`- id: a\n  labels: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`, 'i.yaml'],
    ] as const) {
      const inv = parse(text, file);
      assert.deepEqual(
        inv.diagnostics.map((d) => [d.code, d.message]),
        [['too-deep', 'nesting is too deep to parse; an inventory is a list of flat {id, labels}']],
      );
    }
  });

  it('caps the number of problems it lists', () => {
    const text = Array.from({ length: 300 }, () => '- id: 1').join('\n');
    const inv = parse(text);
    assert.equal(inv.diagnostics.length, DEFAULT_INVENTORY_LIMITS.maxDiagnostics + 1);
    assert.equal(inv.diagnostics.at(-1)!.message, 'and 100 more problems');
  });
});

describe('hasDuplicateKey', () => {
  const table: Array<[string, boolean]> = [
    ['[]', false],
    ['{"a":1,"b":{"a":2}}', false],
    ['{"a":1,"a":2}', true],
    ['[{"a":1},{"a":1}]', false],
    ['{"a":{"x":1,"x":2}}', true],
    ['{"a":"\\"","b":["a","a"],"c":{"a":1}}', false],
    ['{"k\\u0061":1,"ka":2}', true],
    ['{"a\\\\":1,"b":2}', false],
  ];
  for (const [text, expected] of table) {
    it(`${text} → ${expected}`, () => {
      JSON.parse(text); // the scanner is only ever given valid JSON
      assert.equal(hasDuplicateKey(text), expected);
    });
  }
});

describe('readInventory', () => {
  it('reads the example inventory', async () => {
    const inv = await readInventory('examples/inventory.yaml', { cwd: REPO_ROOT });
    assert.deepEqual(inv.diagnostics, []);
    assert.equal(inv.file, 'examples/inventory.yaml');
    assert.equal(inv.agents.length, 16);
    assert.ok(inv.agents.every((a) => a.labels['os'] && a.labels['arch']));
  });

  it('is a usage error when the file does not exist', async () => {
    await assert.rejects(
      readInventory('no-such.yaml', { cwd: REPO_ROOT }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'USAGE');
        assert.match(e.message, /inventory no-such\.yaml does not exist/);
        return true;
      },
    );
  });

  it('checks the size before reading', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fw-inventory-'));
    await writeFile(join(dir, 'big.json'), `[${'{"id":"a"},'.repeat(10)}{"id":"b"}]`);
    const inv = await readInventory('big.json', {
      cwd: dir,
      limits: { ...DEFAULT_INVENTORY_LIMITS, maxBytes: 16 },
    });
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(inv.diagnostics.map(formatText), [
      'big.json: error: the inventory is 122 bytes; it may be at most 16 bytes',
    ]);
  });
});
