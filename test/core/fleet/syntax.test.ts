// YAML syntax errors are reported once, at the mistake, in words a person can act on.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFile } from '../../../core/fleet/parse.ts';
import { DEFAULT_LIMITS } from '../../../core/fleet/source.ts';

function problems(text: string): string[] {
  const file = { name: 'x.yaml', display: 'x.yaml', bytes: new TextEncoder().encode(text) };
  return parseFile(file, DEFAULT_LIMITS).diagnostics.map(
    (d) => `${d.line}:${d.col}: ${d.code}: ${d.message}`,
  );
}

const Y = 'YAML syntax:';

describe('YAML syntax errors', () => {
  const cases: Array<[string, string, string[]]> = [
    [
      'an unclosed double quote, at the opening quote',
      'a:\n  b: "text\n  c: 1\nd: 2\n',
      [`2:6: yaml-syntax: ${Y} this quoted value is never closed; add the closing "`],
    ],
    [
      'an unclosed single quote in a key',
      "a: 1\n'b: 2\nc: 3\n",
      [`2:1: yaml-syntax: ${Y} this quoted value is never closed; add the closing '`],
    ],
    [
      'an unclosed flow mapping, at its "{"',
      'a:\n  b: {c: 1, d: 2\n  e: 3\n',
      [`2:6: yaml-syntax: ${Y} this "{" is never closed; add the matching "}"`],
    ],
    [
      'an unclosed flow sequence inside a flow mapping',
      'a:\n  - {b: [1, 2}\n',
      [`2:9: yaml-syntax: ${Y} this "[" is never closed; add the matching "]"`],
    ],
    [
      'a closed flow mapping whose second line is not indented',
      'a: {b: 1,\nc: 2}\nd: 3\n',
      [
        `2:1: yaml-syntax: ${Y} bad indentation: the lines of a flow mapping ("{...}") must be indented deeper than its key`,
      ],
    ],
    [
      'a key indented less than its siblings, at the key',
      'a:\n    b: 1\n   c: 2\n',
      [
        `3:4: yaml-syntax: ${Y} bad indentation: the keys of one mapping must start in the same column`,
      ],
    ],
    [
      'a key indented more than its siblings, at that key',
      'a:\n  b: 1\n    c: 2\n  d: 3\n',
      [
        `3:5: yaml-syntax: ${Y} bad indentation: this line is indented deeper than the key above it, whose value is already given; the keys of one mapping must start in the same column`,
      ],
    ],
    [
      'a line between the "-" of a list and the keys of its item',
      'a:\n  - b: 1\n    c: 2\n   d: 3\n',
      [
        `4:4: yaml-syntax: ${Y} bad indentation: this line is indented deeper than the "-" of the list above, but less than the keys of its item`,
      ],
    ],
    [
      'a tab used as indentation',
      'a:\n\tb: 1\n',
      [`2:1: yaml-syntax: ${Y} tabs are not allowed as indentation; indent with spaces`],
    ],
    [
      'a missing colon before a sibling key',
      'a:\n  b 1\n  c: 2\n',
      [`2:3: yaml-syntax: ${Y} missing ":" after the key on this line; write "key: value"`],
    ],
    [
      'a missing colon on the last key of a mapping',
      'a:\n  b: 1\n  c 2\nd: 3\n',
      [`3:3: yaml-syntax: ${Y} missing ":" after the key on this line; write "key: value"`],
    ],
    [
      'a plain value with ": " in it',
      'a:\n  note: fixed: rotation\n',
      [`2:9: yaml-syntax: ${Y} a plain value cannot contain ": "; put the value in quotes`],
    ],
    [
      'a stray closing bracket',
      'a: [1, 2]]\nb: 1\n',
      [`1:10: yaml-syntax: ${Y} "]" closes nothing: there is no open "[" before it`],
    ],
    [
      'only the first syntax error of a document, not its echoes',
      'a:\n  - b: 1\n   c: 2\n    d: 3\n     e: 4\n',
      [
        `3:4: yaml-syntax: ${Y} bad indentation: this line is indented deeper than the "-" of the list above, but less than the keys of its item`,
      ],
    ],
    [
      'each document of a file on its own',
      'a: [1\n---\nb: 1\nb: 2\n---\nc: {d\n',
      [
        `1:4: yaml-syntax: ${Y} this "[" is never closed; add the matching "]"`,
        '4:1: duplicate-key: duplicate key "b" (first set on line 3): each key may appear once in a mapping',
        `6:4: yaml-syntax: ${Y} this "{" is never closed; add the matching "}"`,
      ],
    ],
    [
      'an unclosed quote rather than what it swallowed',
      'a:\n  b: 1\n  c: "x\n  d 2\n  e: [\n',
      [`3:6: yaml-syntax: ${Y} this quoted value is never closed; add the closing "`],
    ],
    [
      'an unclosed bracket rather than the lines it made wrong',
      'a:\n  b: {c: 1\n  d: 2\n    e: 3\n  f 4\n',
      [`2:6: yaml-syntax: ${Y} this "{" is never closed; add the matching "}"`],
    ],
    [
      'a duplicate key, with the line of the first one',
      'a:\n  b: 1\n  c: 2\n  b: 3\n',
      [
        '4:3: duplicate-key: duplicate key "b" (first set on line 2): each key may appear once in a mapping',
      ],
    ],
    [
      'every duplicate key besides a syntax error',
      'a: 1\na: 2\nb: 1\nb: 2\nc: "x\n',
      [
        '2:1: duplicate-key: duplicate key "a" (first set on line 1): each key may appear once in a mapping',
        '4:1: duplicate-key: duplicate key "b" (first set on line 3): each key may appear once in a mapping',
        `5:4: yaml-syntax: ${Y} this quoted value is never closed; add the closing "`,
      ],
    ],
    [
      'keys the agent would see as one',
      'a:\n  1: x\n  "1": y\n  b: {c: 1, c: 2}\n',
      [
        '3:3: duplicate-key: duplicate key "1" (first set on line 2): each key may appear once in a mapping',
        '4:13: duplicate-key: duplicate key "c" (first set on line 4): each key may appear once in a mapping',
      ],
    ],
    [
      'a mapping used as a key',
      'a:\n  {b: 1}: 2\n',
      ['2:3: yaml-syntax: a key must be a single value (text or a number), not a mapping'],
    ],
    [
      'positions in a file with CRLF line endings',
      'a:\r\n  b: 1\r\n c: 2\r\n',
      [
        `3:2: yaml-syntax: ${Y} bad indentation: the keys of one mapping must start in the same column`,
      ],
    ],
  ];
  for (const [name, text, want] of cases) {
    it(name, () => assert.deepEqual(problems(text), want));
  }

  it('reports nothing more after a quote that runs to the end of the file', () => {
    // The quoted value swallows the "---", so there is no second document to check.
    assert.equal(problems('a: "x\n---\nb: [1\n').length, 1);
  });

  it('accepts well-formed YAML without a word', () => {
    assert.deepEqual(problems('a:\n  b: [1, 2]\n  c: {d: "e: f"}\n  g: |\n    text: here\n'), []);
  });
});
