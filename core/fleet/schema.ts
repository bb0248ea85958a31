// JSON Schema validation of each document (one draft-07 schema per kind, ajv strict mode),
// with ajv's errors turned into messages that point at the offending node.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isScalar } from 'yaml';
import fleetSchema from '../../schemas/fleet.schema.json' with { type: 'json' };
import releaseSchema from '../../schemas/release.schema.json' with { type: 'json' };
import configLayerSchema from '../../schemas/configlayer.schema.json' with { type: 'json' };
import type { Diagnostic } from '../diagnostics.ts';
import { API_VERSION, KINDS, type Kind } from './model.ts';
import { diagnosticAt, locate, nodeAt, type ParsedDocument, type Path } from './parse.ts';
import { didYouMean } from './suggest.ts';

export const SCHEMAS: Record<Kind, object> = {
  Fleet: fleetSchema,
  Release: releaseSchema,
  ConfigLayer: configLayerSchema,
};

export const SCHEMA_FILES: Record<Kind, string> = {
  Fleet: 'fleet.schema.json',
  Release: 'release.schema.json',
  ConfigLayer: 'configlayer.schema.json',
};

let validators: Record<Kind, ValidateFunction> | undefined;

function compiled(): Record<Kind, ValidateFunction> {
  if (!validators) {
    const ajv = new Ajv({ strict: true, allErrors: true, verbose: true });
    validators = {
      Fleet: ajv.compile(fleetSchema),
      Release: ajv.compile(releaseSchema),
      ConfigLayer: ajv.compile(configLayerSchema),
    };
  }
  return validators;
}

function pointerToPath(pointer: string): Path {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/** `spec.waves[0].percent` */
export function describePath(path: Path): string {
  let out = '';
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out || 'document';
}

function show(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${show(value)}`;
  if (typeof value === 'number')
    return Number.isInteger(value) ? `the number ${value}` : `the number ${value}`;
  return `${typeof value} ${String(value)}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
};

function patternMessage(e: ErrorObject): string {
  const where = e.schemaPath;
  const value = show(e.data);
  if (where.includes('/duration/')) {
    return `invalid duration ${value}: write a number and a unit (ms, s, m, h, d), e.g. 90s, 15m, 2h`;
  }
  if (where.includes('/sha256/')) return sha256Problem(String(e.data));
  if (where.includes('/name/')) {
    return `invalid name ${value}: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters`;
  }
  return `${value} does not match ${String(e.params['pattern'])}`;
}

/** What is wrong with a checksum, said so that the fix is obvious. */
function sha256Problem(text: string): string {
  const want = 'sha256 must be 64 lowercase hexadecimal digits';
  if (/^sha256:/i.test(text)) return `${want}: drop the "${text.slice(0, 7)}" prefix`;
  if (/^[0-9a-fA-F]{64}$/.test(text)) return `${want}: write it in lowercase`;
  if (/^[0-9a-fA-F]*$/.test(text))
    return `${want}, not ${text.length}${text.length === 40 ? ' (that looks like a sha1)' : ''}`;
  return `${want}, got ${show(text)}`;
}

function schemaMessage(
  e: ErrorObject,
  path: Path,
): { path: Path; at: 'key' | 'value'; message: string } {
  const field = describePath(path);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params['additionalProperty']);
      const allowed = Object.keys(
        ((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object,
      );
      const hint = didYouMean(key, allowed);
      const where = path.length === 0 ? '' : ` in ${field}`;
      return {
        path: [...path, key],
        at: 'key',
        message: `unknown key ${JSON.stringify(key)}${where}${hint ? `; did you mean "${hint}"?` : allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : ''}`,
      };
    }
    case 'required': {
      const missing = String(e.params['missingProperty']);
      return {
        path,
        at: 'key',
        message:
          path.length === 0
            ? `missing required key "${missing}"`
            : `${field} is missing required key "${missing}"`,
      };
    }
    case 'type': {
      if (e.schemaPath.includes('/duration/'))
        return { path, at: 'value', message: `${field}: ${patternMessage(e)}` };
      const want = String(e.params['type'])
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ');
      // `percent: 50%` is a string to YAML.
      const percent =
        typeof e.data === 'string' && want.includes('number') && /^\d+(\.\d+)?\s*%$/.test(e.data)
          ? `; write ${e.data.replace(/\s*%$/, '')} without the % sign`
          : '';
      return {
        path,
        at: 'value',
        message: `${field} must be ${want}, not ${typeName(e.data)}${percent}`,
      };
    }
    case 'enum': {
      const allowed = (e.params['allowedValues'] as unknown[]).map(String);
      const hint = typeof e.data === 'string' ? enumHint(e.data, allowed) : undefined;
      return {
        path,
        at: 'value',
        message: `${field} must be one of ${allowed.join(', ')}, not ${show(e.data)}${hint ? `; did you mean "${hint}"?` : ''}`,
      };
    }
    case 'const': {
      const want = String(e.params['allowedValue']);
      return { path, at: 'value', message: `${field} must be ${want}, not ${show(e.data)}` };
    }
    case 'pattern':
      return { path, at: 'value', message: `${field}: ${patternMessage(e)}` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const parent = e.parentSchema as {
        minimum?: number;
        maximum?: number;
        exclusiveMinimum?: number;
        exclusiveMaximum?: number;
      };
      const low =
        parent.minimum !== undefined
          ? `at least ${parent.minimum}`
          : parent.exclusiveMinimum !== undefined
            ? `greater than ${parent.exclusiveMinimum}`
            : undefined;
      const high =
        parent.maximum !== undefined
          ? `at most ${parent.maximum}`
          : parent.exclusiveMaximum !== undefined
            ? `less than ${parent.exclusiveMaximum}`
            : undefined;
      const range =
        parent.minimum !== undefined && parent.maximum !== undefined
          ? `between ${parent.minimum} and ${parent.maximum}`
          : [low, high].filter(Boolean).join(' and ');
      return { path, at: 'value', message: `${field} must be ${range}, not ${show(e.data)}` };
    }
    case 'minItems': {
      const n = Number(e.params['limit']);
      return {
        path,
        at: 'value',
        message: `${field} must have at least ${n} item${n === 1 ? '' : 's'}`,
      };
    }
    case 'maxItems':
      return {
        path,
        at: 'value',
        message: `${field} must have at most ${String(e.params['limit'])} items`,
      };
    case 'minLength':
      return { path, at: 'value', message: `${field} must not be empty` };
    case 'maxLength':
      return {
        path,
        at: 'value',
        message: `${field} must be at most ${String(e.params['limit'])} characters`,
      };
    default:
      return { path, at: 'value', message: `${field} ${e.message ?? 'is invalid'}` };
  }
}

// Names other tools give to the same platform (uname, rustc, Python): x86_64 is amd64.
const ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  i386: '386',
  i686: '386',
  x86: '386',
  macos: 'darwin',
  osx: 'darwin',
  win: 'windows',
  win32: 'windows',
};

function enumHint(value: string, allowed: string[]): string | undefined {
  const alias = ALIASES[value.toLowerCase()];
  if (alias && allowed.includes(alias)) return alias;
  return didYouMean(value, allowed);
}

/** Checks the envelope (apiVersion, kind) and picks the kind's schema; undefined when it cannot. */
export function kindOf(parsed: ParsedDocument, out: Diagnostic[]): Kind | undefined {
  const v = parsed.value;
  const file = parsed.file.display;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    out.push(
      diagnosticAt(
        file,
        locate(parsed, []),
        'not-a-mapping',
        `a fleet document must be a mapping with apiVersion, kind, metadata and spec, not ${typeName(v)}`,
      ),
    );
    return undefined;
  }
  const doc = v as Record<string, unknown>;
  let ok = true;
  if (!('apiVersion' in doc)) {
    out.push(
      diagnosticAt(
        file,
        locate(parsed, []),
        'schema',
        `missing required key "apiVersion" (use ${API_VERSION})`,
      ),
    );
    ok = false;
  } else if (doc['apiVersion'] !== API_VERSION) {
    out.push(
      diagnosticAt(
        file,
        locate(parsed, ['apiVersion']),
        'schema',
        `unsupported apiVersion ${show(doc['apiVersion'])}; this fleetwave reads ${API_VERSION}`,
      ),
    );
    ok = false;
  }
  const kind = doc['kind'];
  if (!('kind' in doc)) {
    out.push(
      diagnosticAt(
        file,
        locate(parsed, []),
        'schema',
        `missing required key "kind" (one of ${KINDS.join(', ')})`,
      ),
    );
    return undefined;
  }
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    const hint = typeof kind === 'string' ? didYouMean(kind, KINDS) : undefined;
    out.push(
      diagnosticAt(
        file,
        locate(parsed, ['kind']),
        'unknown-kind',
        `unknown kind ${show(kind)}; expected one of ${KINDS.join(', ')}${hint ? `; did you mean "${hint}"?` : ''}`,
      ),
    );
    return undefined;
  }
  return ok ? (kind as Kind) : undefined;
}

/**
 * `version: 1.10` is the number 1.1 to YAML. When a string was expected, say how to write the
 * value as the text it was typed as.
 */
function quoteHint(parsed: ParsedDocument, e: ErrorObject, path: Path): string | undefined {
  if (e.keyword !== 'type' || e.schemaPath.includes('/duration/')) return undefined;
  if (!String(e.params['type']).split(',').includes('string')) return undefined;
  if (typeof e.data !== 'number' && typeof e.data !== 'boolean') return undefined;
  const node = nodeAt(parsed, path)?.node;
  const range = isScalar(node) ? node.range : undefined;
  const written = range ? parsed.text.slice(range[0], range[1]).trim() : String(e.data);
  return `; quote it ("${written}") to keep it as text`;
}

/** The kind a document that kindOf rejected was most likely meant to be. */
export function probableKind(value: unknown): Kind | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const kind = (value as Record<string, unknown>)['kind'];
  if (typeof kind !== 'string') return undefined;
  if ((KINDS as readonly string[]).includes(kind)) return kind as Kind;
  return didYouMean(kind, KINDS) as Kind | undefined;
}

/** Where a document breaks its schema: the node and the JSON Schema keyword it breaks. */
export interface SchemaFault {
  path: Path;
  keyword: string;
}

/**
 * The schema's diagnostics of one document; `faults`, when given, receives every node that
 * breaks the schema, so that checks beyond the schema can still run on the other nodes.
 */
export function validateSchema(
  parsed: ParsedDocument,
  kind: Kind,
  faults?: SchemaFault[],
): Diagnostic[] {
  const validate = compiled()[kind];
  if (validate(parsed.value)) return [];
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  const errors = validate.errors ?? [];
  for (const e of errors) faults?.push({ path: pointerToPath(e.instancePath), keyword: e.keyword });
  // A misspelt key ("percnt") also makes the real one ("percent") missing: say it once, as the typo.
  const typos = new Set(
    errors.flatMap((e) => {
      if (e.keyword !== 'additionalProperties') return [];
      const allowed = Object.keys(
        (e.parentSchema as { properties?: object } | undefined)?.properties ?? {},
      );
      const hint = didYouMean(String(e.params['additionalProperty']), allowed);
      return hint ? [`${e.instancePath}/${hint}`] : [];
    }),
  );
  for (const e of errors) {
    // apiVersion is reported by kindOf with a better message.
    if (e.instancePath === '/apiVersion') continue;
    if (
      e.keyword === 'required' &&
      typos.has(`${e.instancePath}/${String(e.params['missingProperty'])}`)
    )
      continue;
    const m = schemaMessage(e, pointerToPath(e.instancePath));
    const quote = quoteHint(parsed, e, m.path);
    if (quote) m.message += quote;
    const pos = locate(parsed, m.path, m.at);
    const key = `${pos.line}:${pos.col}:${m.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(
      diagnosticAt(
        parsed.file.display,
        pos,
        e.keyword === 'additionalProperties' ? 'unknown-key' : 'schema',
        m.message,
      ),
    );
  }
  return out;
}
