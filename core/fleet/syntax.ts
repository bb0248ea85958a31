// yaml's syntax errors, restated for people: each points at the mistake (the quote or bracket
// that is never closed, the key that is indented wrongly) rather than where the parser gave up,
// and the cascade of errors one mistake causes further down is not reported at all. Duplicate
// keys are found here too, in one pass (yaml's own check is quadratic in the number of keys).

import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  visit,
  type Document,
  type LineCounter,
  type Node,
} from 'yaml';

export interface SyntaxProblem {
  /** Offsets in the file's text of the node or character to blame. */
  start: number;
  end: number;
  code: 'yaml-syntax' | 'duplicate-key';
  message: string;
  /** A quote or bracket that is never closed. */
  unclosed?: boolean;
}

const MISSING_COLON = 'missing ":" after the key on this line; write "key: value"';
const NESTED_IN_COMPACT = /^Nested mappings are not allowed in compact mappings/;

/** The one syntax error of a document to report, restated; undefined when it has none. */
export function syntaxProblem(doc: Document.Parsed, text: string): SyntaxProblem | undefined {
  const errors = doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY');
  const multiline = new Set(
    errors.filter((e) => e.code === 'MULTILINE_IMPLICIT_KEY').map((e) => e.pos[0]),
  );
  let built: NodeIndex | undefined;
  const index = (): NodeIndex => (built ??= new NodeIndex(doc));
  let first: SyntaxProblem | undefined;
  for (const e of errors) {
    // "a: 1\n   b: 2" is one mistake that yaml reports twice at the same place.
    if (
      e.code === 'BLOCK_AS_IMPLICIT_KEY' &&
      NESTED_IN_COMPACT.test(e.message) &&
      multiline.has(e.pos[0])
    )
      continue;
    // After a syntax error the parser guesses how the text goes on, and its later errors are
    // mostly echoes: report only the one that starts first (a quote or bracket never closed
    // explains everything after it, so it wins a tie).
    const p = restate(e.code, firstLine(e.message), e.pos, index, text);
    if (
      !first ||
      p.start < first.start ||
      (p.start === first.start && p.unclosed && !first.unclosed)
    )
      first = p;
  }
  return first;
}

/**
 * Keys set twice in one mapping, before `until` (where a syntax error makes the rest a guess).
 * One pass with a set per mapping: yaml's own check compares every pair of keys.
 */
export function duplicateKeys(
  doc: Document.Parsed,
  lines: LineCounter,
  until = Infinity,
): SyntaxProblem[] {
  const out: SyntaxProblem[] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (!isMap(node) && !isSeq(node)) continue;
    const first = new Map<string, number>();
    for (const item of node.items) {
      if (!isPair(item)) {
        stack.push(item);
        continue;
      }
      stack.push(item.value);
      if (!isMap(node) || !isScalar(item.key) || !item.key.range) continue;
      // Keys compare as the agent will see them: `1` and `"1"` are the same key.
      const name = String(item.key.value ?? '');
      const start = item.key.range[0];
      const firstAt = first.get(name);
      if (firstAt === undefined) first.set(name, start);
      else if (start < until)
        out.push({
          start,
          end: item.key.range[1],
          code: 'duplicate-key',
          message: `duplicate key ${JSON.stringify(name)} (first set on line ${lines.linePos(firstAt).line}): each key may appear once in a mapping`,
        });
    }
  }
  return out;
}

function firstLine(message: string): string {
  // yaml appends " at line L, column C" and a code frame; our position says that already.
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function restate(
  code: string,
  message: string,
  pos: [number, number],
  index: () => NodeIndex,
  text: string,
): SyntaxProblem {
  const at = (start: number, msg: string, end = start + 1): SyntaxProblem => ({
    start,
    end,
    code: 'yaml-syntax',
    message: `YAML syntax: ${msg}`,
  });
  const here = firstNonBlankIfIndent(text, pos[0]);
  switch (code) {
    case 'TAB_AS_INDENT': {
      const tab = text.slice(pos[0], pos[1] + 1).indexOf('\t');
      return at(
        pos[0] + Math.max(tab, 0),
        'tabs are not allowed as indentation; indent with spaces',
      );
    }
    case 'MISSING_CHAR': {
      const quote = /^Missing closing (["'])quote/.exec(message);
      if (quote) {
        const node = index().quotedByEnd.get(pos[0]);
        if (node)
          return {
            ...at(node.range![0], `this quoted value is never closed; add the closing ${quote[1]}`),
            unclosed: true,
          };
      }
      if (/^Implicit map keys need to be followed by map values/.test(message))
        return at(here, MISSING_COLON);
      if (/^Sequence item without - indicator/.test(message))
        return at(
          here,
          `bad indentation: this line is indented deeper than the "-" of the list above, but less than the keys of its item`,
        );
      break;
    }
    case 'BAD_INDENT': {
      const flow = /^Flow (map|sequence) in block collection/.exec(message);
      if (flow) {
        const open = flow[1] === 'map' ? '{' : '[';
        const close = flow[1] === 'map' ? '}' : ']';
        const node = index().flowByEnd.get(pos[0]);
        const start = node?.range?.[0];
        if (start !== undefined && text[start] === open && !closes(text, start))
          return {
            ...at(start, `this "${open}" is never closed; add the matching "${close}"`),
            unclosed: true,
          };
        return at(
          here,
          `bad indentation: the lines of a flow ${flow[1] === 'map' ? 'mapping' : 'sequence'} ("${open}...${close}") must be indented deeper than its key`,
        );
      }
      if (/^All mapping items must start at the same column/.test(message))
        return at(here, 'bad indentation: the keys of one mapping must start in the same column');
      break;
    }
    case 'MULTILINE_IMPLICIT_KEY': {
      if (here === pos[0] && isLineStart(text, pos[0])) return at(pos[0], MISSING_COLON);
      const next = nextContentLine(text, pos[0]);
      if (next !== undefined)
        return at(
          next,
          'bad indentation: this line is indented deeper than the key above it, whose value is already given; the keys of one mapping must start in the same column',
        );
      break;
    }
    case 'UNEXPECTED_TOKEN': {
      const end = /^Unexpected flow-(map|seq)-end token/.exec(message);
      if (end) {
        const [open, close] = end[1] === 'map' ? ['{', '}'] : ['[', ']'];
        return at(pos[0], `"${close}" closes nothing: there is no open "${open}" before it`);
      }
      break;
    }
    case 'BLOCK_AS_IMPLICIT_KEY':
      if (NESTED_IN_COMPACT.test(message))
        return at(pos[0], 'a plain value cannot contain ": "; put the value in quotes');
      if (/^A block sequence may not be used as an implicit map key/.test(message))
        return at(here, 'a "- " list item cannot stand among the keys of a mapping');
      break;
  }
  return at(here, `${message.charAt(0).toLowerCase()}${message.slice(1)}`);
}

/**
 * `offset` moved onto the text it is about: from the indentation of a line to its first
 * character, and from the end of a line (where yaml notices that the next line is wrong) to
 * the next line that holds something.
 */
function firstNonBlankIfIndent(text: string, offset: number): number {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  let lineEnd = text.indexOf('\n', offset);
  if (lineEnd < 0) lineEnd = text.length;
  if (/^[ \t\r]*$/.test(text.slice(offset, lineEnd)))
    return nextContentLine(text, offset) ?? offset;
  if (!/^ *$/.test(text.slice(lineStart, offset)) || text[offset] !== ' ') return offset;
  let i = offset;
  while (text[i] === ' ') i++;
  return i;
}

/** Whether only spaces stand between the start of the line and `offset`. */
function isLineStart(text: string, offset: number): boolean {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  return /^ *$/.test(text.slice(lineStart, offset));
}

/** First non-blank character of the first line after `offset`'s that holds more than a comment. */
function nextContentLine(text: string, offset: number): number | undefined {
  let i = text.indexOf('\n', offset);
  while (i >= 0) {
    const lineEnd = text.indexOf('\n', i + 1);
    const line = text.slice(i + 1, lineEnd < 0 ? undefined : lineEnd);
    const m = /^[ \t]*(?=[^ \t#\r])/.exec(line);
    if (m) return i + 1 + m[0].length;
    i = lineEnd;
  }
  return undefined;
}

/** Nodes of a document by where they start or end, built once when an error needs them. */
class NodeIndex {
  readonly quotedByEnd = new Map<number, Node>();
  readonly flowByEnd = new Map<number, Node>();

  constructor(doc: Document.Parsed) {
    visit(doc, {
      Map: (_, map) => {
        if (map.flow && map.range) this.flowByEnd.set(map.range[1], map);
      },
      Seq: (_, seq) => {
        if (seq.flow && seq.range) this.flowByEnd.set(seq.range[1], seq);
      },
      Scalar: (_, node) => {
        if (node.range && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE'))
          this.quotedByEnd.set(node.range[1], node);
      },
    });
  }
}

/** Whether the bracket at `open` is closed by its match later in the text (quoted values skipped). */
function closes(text: string, open: number): boolean {
  const stack: string[] = [];
  const match: Record<string, string> = { '}': '{', ']': '[' };
  let previous = '';
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if ((c === '"' || c === "'") && '{[,:'.includes(previous)) {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return false;
      i = end;
    } else if (c === '{' || c === '[') stack.push(c);
    else if (c === '}' || c === ']') {
      // `{a: [1}` closes the "{"; the "[" inside it is the one left open.
      const at = stack.lastIndexOf(match[c]!);
      if (at === 0) return true;
      if (at > 0) stack.length = at;
    }
    if (c !== ' ' && c !== '\n' && c !== '\t' && c !== '\r') previous = c;
  }
  return false;
}
