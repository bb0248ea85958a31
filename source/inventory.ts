// Reads an inventory: a YAML or JSON list of agents, `{id, labels}`, into typed agents, or
// every problem at its line and column. JSON takes a fast path through JSON.parse (100,000
// agents in well under a second); YAML, and JSON with a problem, go through yaml's parser,
// which knows where every node is (and reads about 10,000 agents a second).

import { stat, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node,
} from 'yaml';
import { compareDiagnostics, type Diagnostic, type DiagnosticCode } from '../core/diagnostics.ts';
import { FleetwaveError } from '../core/errors.ts';
import { firstInvalidUtf8, positionOf } from '../core/fleet/parse.ts';
import { didYouMean } from '../core/fleet/suggest.ts';
import { setOwn } from '../core/target/merge.ts';
import type { Agent } from '../core/target/model.ts';
import { formatBytes } from './directory.ts';

export interface InventoryLimits {
  maxBytes: number;
  maxAgents: number;
  /** Diagnostics reported before the rest are summed up in one line. */
  maxDiagnostics: number;
}

export const DEFAULT_INVENTORY_LIMITS: InventoryLimits = {
  maxBytes: 256 * 1024 * 1024,
  maxAgents: 1_000_000,
  maxDiagnostics: 200,
};

export interface Inventory {
  /** The file as shown to people. */
  file: string;
  /** In file order; empty when there are diagnostics. */
  agents: Agent[];
  diagnostics: Diagnostic[];
}

const KEYS = ['id', 'labels'];

function problem(file: string, code: DiagnosticCode, message: string): Diagnostic {
  return { file, line: 0, col: 0, severity: 'error', code, message };
}

/** Reads and checks an inventory file; a file that cannot be read at all is a usage error. */
export async function readInventory(
  path: string,
  options: { cwd?: string; limits?: InventoryLimits } = {},
): Promise<Inventory> {
  const cwd = options.cwd ?? process.cwd();
  const limits = options.limits ?? DEFAULT_INVENTORY_LIMITS;
  const full = isAbsolute(path) ? path : join(cwd, path);
  const rel = relative(cwd, full);
  const file = (rel === '' || rel.startsWith('..') ? full : rel).split(sep).join('/');
  let size: number;
  try {
    const info = await stat(full);
    if (!info.isFile()) throw new Error('not a file');
    size = info.size;
  } catch (e) {
    throw new FleetwaveError('USAGE', `inventory ${file} does not exist or is not a file`, {
      cause: e,
    });
  }
  if (size > limits.maxBytes) {
    return {
      file,
      agents: [],
      diagnostics: [
        problem(
          file,
          'too-large',
          `the inventory is ${formatBytes(size)}; it may be at most ${formatBytes(limits.maxBytes)}`,
        ),
      ],
    };
  }
  return parseInventory(await readFile(full), file, limits);
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Checks an inventory's bytes; `file` is how diagnostics name it. */
export function parseInventory(
  bytes: Uint8Array,
  file: string,
  limits: InventoryLimits = DEFAULT_INVENTORY_LIMITS,
): Inventory {
  if (bytes.length > limits.maxBytes) {
    const message = `the inventory is ${formatBytes(bytes.length)}; it may be at most ${formatBytes(limits.maxBytes)}`;
    return { file, agents: [], diagnostics: [problem(file, 'too-large', message)] };
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const before = decoder.decode(bytes.subarray(0, Math.max(at, 0)));
    const lines = before.split('\n');
    return {
      file,
      agents: [],
      diagnostics: [
        {
          file,
          line: lines.length,
          col: [...lines[lines.length - 1]!].length + 1,
          severity: 'error',
          code: 'not-utf8',
          message: `the inventory is not valid UTF-8 (byte 0x${bytes[at]?.toString(16).padStart(2, '0')} at offset ${at}); save it as UTF-8`,
        },
      ],
    };
  }
  const fast = fastJson(text, limits);
  if (fast) return { file, agents: fast, diagnostics: [] };
  return parseWithPositions(text, file, limits);
}

/**
 * The agents of a JSON inventory with no problem at all, or undefined: then the slow path
 * finds and places every problem (it applies the same rules).
 */
function fastJson(text: string, limits: InventoryLimits): Agent[] | undefined {
  const start = text.trimStart()[0];
  if (start !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length > limits.maxAgents || hasDuplicateKey(text)) {
    return undefined;
  }
  const ids = new Set<string>();
  const agents: Agent[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    for (const key of Object.keys(item)) if (!KEYS.includes(key)) return undefined;
    const { id, labels = {} } = item as { id?: unknown; labels?: unknown };
    if (typeof id !== 'string' || id === '' || ids.has(id)) return undefined;
    ids.add(id);
    if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return undefined;
    for (const v of Object.values(labels)) if (typeof v !== 'string') return undefined;
    agents.push({ id, labels: labels as Record<string, string> });
  }
  return agents;
}

/** Whether some object of valid JSON `text` repeats a key (JSON.parse keeps the last). */
export function hasDuplicateKey(text: string): boolean {
  const stack: Array<Set<string> | undefined> = [];
  let expectKey = false;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      for (;;) {
        end = text.indexOf('"', end);
        let slashes = 0;
        for (let j = end - 1; text.charCodeAt(j) === 0x5c; j--) slashes++;
        if (slashes % 2 === 0) break;
        end++;
      }
      const keys = stack[stack.length - 1];
      if (keys && expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(undefined);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== undefined;
    }
    i++;
  }
  return false;
}

function parseWithPositions(text: string, file: string, limits: InventoryLimits): Inventory {
  const lines = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const at = (node: { range?: [number, number, number] | null } | null | undefined) => {
    const r = node?.range ?? [0, 0, 0];
    return positionOf(lines, r[0], r[1]);
  };
  const report = (pos: ReturnType<typeof at>, code: DiagnosticCode, message: string) => {
    diagnostics.push({ file, ...pos, severity: 'error', code, message });
  };
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    version: '1.2',
  });
  const list = Array.isArray(docs) ? docs : [];
  for (const doc of list) {
    const exhausted = doc.errors.find((e) => e.code === 'RESOURCE_EXHAUSTION');
    if (exhausted) {
      // Hostile nesting: one clear message rather than the parser's stack trouble.
      const message = 'nesting is too deep to parse; an inventory is a list of flat {id, labels}';
      report(positionOf(lines, exhausted.pos[0], exhausted.pos[1]), 'too-deep', message);
      continue;
    }
    for (const e of doc.errors) {
      const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      report(
        positionOf(lines, e.pos[0], e.pos[1]),
        e.code === 'DUPLICATE_KEY' ? 'duplicate-key' : 'yaml-syntax',
        e.code === 'DUPLICATE_KEY'
          ? 'duplicate key: each key may appear once in a mapping'
          : `YAML syntax: ${first.charAt(0).toLowerCase()}${first.slice(1)}`,
      );
    }
  }
  if (diagnostics.length > 0) return { file, agents: [], diagnostics };
  const nonEmpty = list.filter((d) => d.contents !== null);
  if (nonEmpty.length > 1) {
    report(
      at(nonEmpty[1]!.contents),
      'not-a-list',
      'an inventory is one YAML document; put every agent in one list',
    );
    return { file, agents: [], diagnostics };
  }
  const doc = nonEmpty[0];
  const root = doc?.contents;
  if (!doc || !isSeq(root)) {
    report(
      root ? at(root) : { line: 1, col: 1, endLine: 1, endCol: 1 },
      'not-a-list',
      root
        ? 'an inventory is a list of agents, each {id, labels}'
        : 'the inventory is empty; write a list of agents, each {id, labels} ([] for none)',
    );
    return { file, agents: [], diagnostics };
  }
  if (root.items.length > limits.maxAgents) {
    report(
      at(root),
      'too-many-agents',
      `the inventory lists ${root.items.length} agents; it may list at most ${limits.maxAgents}`,
    );
    return { file, agents: [], diagnostics };
  }

  const resolve = (node: unknown): unknown =>
    isAlias(node) ? node.resolve(doc as Document.Parsed) : node;
  const firstLine = new Map<string, number>();
  const agents: Agent[] = [];
  root.items.forEach((raw, index) => {
    const item = resolve(raw);
    const where = `agent ${index + 1}`;
    if (!isMap(item)) {
      report(at(raw as Node), 'not-a-mapping', `${where} must be a mapping {id, labels}`);
      return;
    }
    let id: string | undefined;
    let labels: Record<string, string> | undefined;
    let idNode: Node | undefined;
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (key === 'id') {
        idNode = resolve(pair.value) as Node;
        if (isScalar(idNode) && typeof idNode.value === 'string' && idNode.value !== '') {
          id = idNode.value;
        } else if (isScalar(idNode) && idNode.value !== null && typeof idNode.value !== 'object') {
          const shown = idNode.source ?? String(idNode.value);
          report(
            at(pair.value as Node),
            'invalid-id',
            idNode.value === ''
              ? `${where}: id must not be empty`
              : `${where}: id must be a string; quote it: "${shown}"`,
          );
        } else {
          report(
            at(pair.value ?? (pair.key as Node)),
            'invalid-id',
            `${where}: id must be a non-empty string`,
          );
        }
      } else if (key === 'labels') {
        labels = readLabels(
          resolve(pair.value),
          pair.value as Node | null,
          pair.key as Node,
          where,
        );
      } else {
        const name = String(key);
        const hint = didYouMean(name, KEYS);
        report(
          at(pair.key as Node),
          'unknown-key',
          `${where}: unknown key "${name}"${hint ? `; did you mean "${hint}"?` : ' (an agent has id and labels)'}`,
        );
      }
    }
    if (!idNode) {
      report(at(item), 'missing-id', `${where} has no id`);
      return;
    }
    if (id === undefined) return;
    const pos = at(idNode);
    const first = firstLine.get(id);
    if (first !== undefined) {
      report(pos, 'duplicate-id', `duplicate agent id "${id}" (first at line ${first})`);
      return;
    }
    firstLine.set(id, pos.line);
    agents.push({ id, labels: labels ?? {} });
  });
  diagnostics.sort(compareDiagnostics);
  if (diagnostics.length > limits.maxDiagnostics) {
    const rest = diagnostics.length - limits.maxDiagnostics;
    diagnostics.length = limits.maxDiagnostics;
    diagnostics.push(problem(file, 'too-many-problems', `and ${rest} more problems`));
  }
  return { file, agents: diagnostics.length > 0 ? [] : agents, diagnostics };

  function readLabels(
    node: unknown,
    written: Node | null,
    key: Node,
    where: string,
  ): Record<string, string> | undefined {
    if (isScalar(node) && node.value === null) return {};
    if (!isMap(node)) {
      report(
        at(written ?? key),
        'invalid-labels',
        `${where}: labels must be a mapping of names to strings`,
      );
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof k !== 'string') {
        report(at(pair.key as Node), 'invalid-labels', `${where}: label names must be strings`);
        continue;
      }
      const v = resolve(pair.value);
      if (isScalar(v) && typeof v.value === 'string') {
        setOwn(out, k, v.value);
      } else if (isScalar(v) && v.value !== null && typeof v.value !== 'object') {
        const shown = v.source ?? String(v.value);
        report(
          at(pair.value as Node),
          'non-string-label',
          `${where}: label "${k}" must be a string, not ${typeof v.value}; quote it: "${shown}"`,
        );
      } else {
        const empty = pair.value === null || (isScalar(v) && v.value === null);
        report(
          at(empty ? (pair.key as Node) : (pair.value as Node)),
          'non-string-label',
          `${where}: label "${k}" must be a string${empty ? ' (it is empty; write "" for an empty value)' : ''}`,
        );
      }
    }
    return out;
  }
}
