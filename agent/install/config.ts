// Writes a target's config (its secretRefs resolved) to the managed software's config file, in
// the format its extension names: .yaml/.yml, .json, .toml or .env. Written atomically with mode
// 0600: the file holds secrets, and it is the only place on disk they go.

import { extname } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { isMapping } from '../../core/target/merge.ts';
import { writeFileAtomic } from '../cache.ts';
import { AgentError, describe } from '../errors.ts';

export type ConfigFormat = 'yaml' | 'json' | 'toml' | 'env';

const FORMATS: Record<string, ConfigFormat> = {
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
  '.toml': 'toml',
  '.env': 'env',
};

/** The format of a config file by its extension, or undefined when it names none of ours. */
export function configFormat(path: string): ConfigFormat | undefined {
  return FORMATS[extname(path).toLowerCase()];
}

function unfit(message: string): AgentError {
  return new AgentError('INSTALL_FAILED', `the config cannot be written: ${message}`);
}

/** The config as the text of a file in `format`; throws INSTALL_FAILED when it cannot say it. */
export function renderConfig(config: Record<string, unknown>, format: ConfigFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(config, null, 2) + '\n';
    case 'yaml':
      return yamlStringify(config, { aliasDuplicateObjects: false });
    case 'toml':
      return toml(config);
    case 'env':
      return env(config);
  }
}

export async function writeConfig(
  path: string,
  config: Record<string, unknown>,
  format: ConfigFormat,
): Promise<void> {
  const text = renderConfig(config, format);
  try {
    await writeFileAtomic(path, text);
  } catch (e) {
    throw new AgentError('INSTALL_FAILED', `cannot write the config file ${path}: ${describe(e)}`, {
      cause: e,
    });
  }
}

// TOML: mappings become tables (dotted headers), lists of mappings arrays of tables, other lists
// inline arrays. TOML has no null: a null is refused rather than silently dropped.

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

function tomlKey(key: string): string {
  return BARE_KEY.test(key) ? key : JSON.stringify(key);
}

function tomlValue(value: unknown, where: string): string {
  if (value === null || value === undefined) throw unfit(`${where} is null, which TOML cannot say`);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw unfit(`${where} is not a finite number`);
    return Number.isInteger(value) ? String(value) : String(value);
  }
  if (Array.isArray(value))
    return `[${value.map((v, i) => tomlValue(v, `${where}[${i}]`)).join(', ')}]`;
  if (isMapping(value))
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v, `${where}.${k}`)}`)
      .join(', ')} }`;
  throw unfit(`${where} has a value TOML cannot say`);
}

function isTableArray(value: unknown): value is Record<string, unknown>[] {
  return Array.isArray(value) && value.length > 0 && value.every(isMapping);
}

function toml(config: Record<string, unknown>): string {
  const lines: string[] = [];
  const table = (mapping: Record<string, unknown>, path: string[]): void => {
    const entries = Object.entries(mapping);
    for (const [k, v] of entries) {
      if (isMapping(v) || isTableArray(v)) continue;
      lines.push(`${tomlKey(k)} = ${tomlValue(v, [...path, k].join('.') || k)}`);
    }
    for (const [k, v] of entries) {
      const sub = [...path, k];
      const header = sub.map(tomlKey).join('.');
      if (isMapping(v)) {
        lines.push('', `[${header}]`);
        table(v, sub);
      } else if (isTableArray(v)) {
        for (const item of v) {
          lines.push('', `[[${header}]]`);
          table(item, sub);
        }
      }
    }
  };
  table(config, []);
  return lines.join('\n').replace(/^\n+/, '') + '\n';
}

// env: one NAME=value line per scalar, NAME the path's keys joined with `_`, upper-cased, every
// character outside [A-Z0-9_] as `_` (output.apiKey → OUTPUT_APIKEY); lists and their items are
// JSON text. Values are double-quoted with \, ", $ and ` escaped (systemd's EnvironmentFile and
// POSIX shells read them alike). Two paths giving one name are refused.

function envName(path: string[]): string {
  const name = path
    .join('_')
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

function envQuote(text: string): string {
  if (/[\n\r\0]/.test(text)) throw unfit('a value holds a newline, which an env file cannot say');
  return `"${text.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

function env(config: Record<string, unknown>): string {
  const lines: string[] = [];
  const seen = new Map<string, string>();
  const walk = (value: unknown, path: string[]): void => {
    if (isMapping(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
      return;
    }
    const name = envName(path);
    const where = path.join('.');
    if (seen.has(name)) throw unfit(`${seen.get(name)} and ${where} both become ${name}`);
    seen.set(name, where);
    const text = value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value);
    lines.push(`${name}=${envQuote(text)}`);
  };
  walk(config, []);
  return lines.join('\n') + '\n';
}
