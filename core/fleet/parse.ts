// Turns bytes into YAML documents that remember where every node came from, refusing input
// that is not UTF-8, nests too deeply or expands aliases without bound.

import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Alias,
  type Document,
  type Node,
  type Pair,
} from 'yaml';
import type { Diagnostic, DiagnosticCode } from '../diagnostics.ts';
import type { Limits, SourceFile } from './source.ts';
import { duplicateKeys, syntaxProblem } from './syntax.ts';

export type Path = ReadonlyArray<string | number>;

/** One YAML document of a file, parsed, with its plain value when it could be built. */
export interface ParsedDocument {
  file: SourceFile;
  index: number;
  doc: Document.Parsed;
  lines: LineCounter;
  /** The whole file's text (shared by its documents). */
  text: string;
  value: unknown;
}

export interface Position {
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

export function diagnosticAt(
  file: string,
  pos: Position | undefined,
  code: DiagnosticCode,
  message: string,
  severity: Diagnostic['severity'] = 'error',
): Diagnostic {
  if (!pos) return { file, line: 0, col: 0, severity, code, message };
  return { file, ...pos, severity, code, message };
}

/** Offset of the first byte that is not valid UTF-8, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function lineColOfByte(bytes: Uint8Array, offset: number): { line: number; col: number } {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      col = 1;
    } else if ((bytes[i]! & 0xc0) !== 0x80) col++;
  }
  return { line, col };
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function positionOf(lines: LineCounter, start: number, end: number = start): Position {
  const s = lines.linePos(start);
  const e = lines.linePos(end);
  return { line: s.line, col: s.col, endLine: e.line, endCol: e.col };
}

function depthOf(root: unknown, maxDepth: number): Node | undefined {
  // Iterative, so a hostile file cannot overflow our stack while we measure it.
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (isMap(node) || isSeq(node)) {
      if (depth >= maxDepth) return node;
      for (const item of node.items) {
        if (isPair(item)) {
          stack.push([item.key, depth + 1], [item.value, depth + 1]);
        } else stack.push([item, depth + 1]);
      }
    }
  }
  return undefined;
}

function firstAlias(
  root: unknown,
  which: (alias: Alias) => boolean = () => true,
): Alias | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node) && which(node)) return node;
    if (isMap(node) || isSeq(node)) {
      for (const item of [...node.items].reverse()) {
        if (isPair(item)) stack.push(item.value, item.key);
        else stack.push(item);
      }
    }
  }
  return undefined;
}

function firstCollectionKey(root: unknown): Node | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node) || isSeq(node)) {
      // `[{a: 1}: x]` holds a pair in a list, so lists are searched for keys too.
      for (const item of node.items)
        if (isPair(item) && (isMap(item.key) || isSeq(item.key))) return item.key as Node;
      for (const item of [...node.items].reverse()) stack.push(isPair(item) ? item.value : item);
    }
  }
  return undefined;
}

export interface ParseResult {
  documents: ParsedDocument[];
  diagnostics: Diagnostic[];
  /** Documents that could not be read at all (syntax, depth, aliases): their kind is unknown. */
  unreadable: number;
}

export function parseFile(file: SourceFile, limits: Limits): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const bad = firstInvalidUtf8(file.bytes);
  if (bad >= 0) {
    const { line, col } = lineColOfByte(file.bytes, bad);
    const hex = file.bytes[bad]!.toString(16).padStart(2, '0');
    diagnostics.push({
      file: file.display,
      line,
      col,
      severity: 'error',
      code: 'not-utf8',
      message: `file is not valid UTF-8 (byte 0x${hex} at offset ${bad}); save it as UTF-8`,
    });
    return { documents: [], diagnostics, unreadable: 1 };
  }
  const text = decoder.decode(file.bytes);
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    // Checked by duplicateKeys in one pass; yaml's check is quadratic.
    uniqueKeys: false,
    prettyErrors: false,
    strict: true,
    // YAML 1.1 tags such as !!binary or !!set would hand us non-JSON values: keep them text.
    resolveKnownTags: false,
    version: '1.2',
  });
  const list = Array.isArray(docs) ? docs : [];
  const documents: ParsedDocument[] = [];
  let unreadable = 0;
  list.forEach((doc, index) => {
    const exhausted = doc.errors.find((e) => e.code === 'RESOURCE_EXHAUSTION');
    if (exhausted) {
      // yaml ran out of stack hundreds of levels down; what it built above that point still
      // shows where the nesting first went past the limit.
      const deep = depthOf(doc.contents, limits.maxDepth);
      diagnostics.push(
        diagnosticAt(
          file.display,
          deep?.range
            ? positionOf(lines, deep.range[0])
            : positionOf(lines, exhausted.pos[0], exhausted.pos[1]),
          'too-deep',
          deep
            ? `nesting is deeper than ${limits.maxDepth} levels`
            : `nesting is too deep to parse; fleet files may nest at most ${limits.maxDepth} levels`,
        ),
      );
      unreadable++;
      return;
    }
    const syntax = syntaxProblem(doc, text);
    // A duplicate key leaves a well-formed document: report it and keep checking the rest.
    for (const p of [...duplicateKeys(doc, lines, syntax?.start), ...(syntax ? [syntax] : [])])
      diagnostics.push(
        diagnosticAt(file.display, positionOf(lines, p.start, p.end), p.code, p.message),
      );
    if (syntax) {
      unreadable++;
      return;
    }
    for (const w of doc.warnings) {
      diagnostics.push(
        diagnosticAt(
          file.display,
          positionOf(lines, w.pos[0], w.pos[1]),
          'yaml-warning',
          yamlMessage(w.message),
          'warning',
        ),
      );
    }
    if (doc.contents === null) return; // an empty document, e.g. a trailing `---`
    const deep = depthOf(doc.contents, limits.maxDepth);
    if (deep) {
      const r = deep.range ?? [0, 0];
      diagnostics.push(
        diagnosticAt(
          file.display,
          positionOf(lines, r[0]),
          'too-deep',
          `nesting is deeper than ${limits.maxDepth} levels`,
        ),
      );
      unreadable++;
      return;
    }
    const complex = firstCollectionKey(doc.contents);
    if (complex) {
      // toJS would turn `{a: 1}: x` into the key "[object Object]" (and warn on stderr).
      diagnostics.push(
        diagnosticAt(
          file.display,
          positionOf(lines, complex.range?.[0] ?? 0),
          'yaml-syntax',
          `a key must be a single value (text or a number), not a ${isMap(complex) ? 'mapping' : 'list'}`,
        ),
      );
      unreadable++;
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const unresolved = /^Unresolved alias/.test(message);
      const alias = firstAlias(doc.contents, unresolved ? (a) => !a.resolve(doc) : undefined);
      const r = alias?.range ?? doc.contents.range ?? [0, 0];
      const aliasBomb = e instanceof ReferenceError && /excessive alias count/i.test(message);
      diagnostics.push(
        diagnosticAt(
          file.display,
          positionOf(lines, r[0], r[1]),
          aliasBomb ? 'too-many-aliases' : 'yaml-syntax',
          aliasBomb
            ? `aliases expand to too many nodes (more than ${limits.maxAliasCount}); this looks like a "billion laughs" file`
            : unresolved && alias
              ? `unknown alias *${alias.source}: define the anchor &${alias.source} before using it`
              : `cannot read document: ${message}`,
        ),
      );
      unreadable++;
      return;
    }
    documents.push({ file, index, doc, lines, text, value });
  });
  return { documents, diagnostics, unreadable };
}

function yamlMessage(message: string): string {
  // yaml appends " at line L, column C" and a code frame; our position says that already.
  const first = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return `YAML syntax: ${first.charAt(0).toLowerCase()}${first.slice(1)}`;
}

/** The node at `path` (following aliases) and, for mapping members, its pair. */
export function nodeAt(
  parsed: ParsedDocument,
  path: Path,
): { node: Node | null; pair?: Pair<Node, Node | null> } | undefined {
  let current: unknown = parsed.doc.contents;
  let pair: Pair<Node, Node | null> | undefined;
  for (const segment of path) {
    if (isAlias(current)) current = current.resolve(parsed.doc);
    if (isMap(current)) {
      const found = current.items.find(
        (p) => isScalar(p.key) && String(p.key.value) === String(segment),
      ) as Pair<Node, Node | null> | undefined;
      if (!found) return undefined;
      pair = found;
      current = found.value;
    } else if (isSeq(current) && typeof segment === 'number') {
      pair = undefined;
      current = current.items[segment];
      if (current === undefined) return undefined;
    } else return undefined;
  }
  return { node: (current as Node | null) ?? null, ...(pair ? { pair } : {}) };
}

/**
 * Where to point for `path`: the value (a wrong value) or its key (an unknown or misplaced
 * key). Falls back to the nearest ancestor that exists, then to the document start.
 */
export function locate(
  parsed: ParsedDocument,
  path: Path,
  at: 'value' | 'key' = 'value',
): Position {
  for (let n = path.length; n >= 0; n--) {
    const found = nodeAt(parsed, path.slice(0, n));
    if (!found) continue;
    const useKey = (at === 'key' && n === path.length) || found.node === null;
    const target = useKey && found.pair ? found.pair.key : found.node;
    const range = target?.range;
    if (range) return positionOf(parsed.lines, range[0], range[1]);
  }
  const r = parsed.doc.range;
  return positionOf(parsed.lines, r[0]);
}

/**
 * Where the `occurrence`-th (0-based) `needle` stands inside the scalar at `path`; the scalar
 * itself when it cannot be found (an escape sequence or a folded line changed the text).
 */
export function locateInScalar(
  parsed: ParsedDocument,
  path: Path,
  needle: string,
  occurrence = 0,
): Position {
  const found = nodeAt(parsed, path);
  const node = found?.node;
  if (node && isScalar(node) && node.range) {
    const slice = parsed.text.slice(node.range[0], node.range[1]);
    let at = slice.indexOf(needle);
    for (let n = 0; n < occurrence && at >= 0; n++) at = slice.indexOf(needle, at + 1);
    if (at >= 0) {
      const start = node.range[0] + at;
      return positionOf(parsed.lines, start, start + needle.length);
    }
  }
  return locate(parsed, path);
}
