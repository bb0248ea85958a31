// The fault model of a simulated fleet, keyed by what a target carries (its version, a config
// value), so "2.5.0 fails on 30% of machines" can be rehearsed. Pure: each agent's fate for a
// target is a hash of (seed, agent id, etag), the same on every run.

import { createHash } from 'node:crypto';
import type { Target } from '../core/target/model.ts';

export interface FaultMatch {
  version?: string;
  /** A dotted path into the target's config, e.g. `exporter.protocol`. */
  configPath?: string;
  /** The value at configPath (compared as JSON); absent: the path merely exists. */
  configValue?: unknown;
}

export interface Fault {
  match: FaultMatch;
  /** Share of agents that report `failed` after applying. */
  failureRate?: number;
  /** Share of requests that fail (reported as health.errors / health.requests). */
  errorRate?: number;
  /** Share of agents that report once after applying, then stop checking in. */
  silenceRate?: number;
  /** Share of agents that crash while applying (down for crashSeconds, then back, not applied). */
  crashRate?: number;
  crashSeconds?: number;
  /** How long applying takes, in seconds. */
  applySeconds?: number;
}

export interface Fate {
  fails: boolean;
  silent: boolean;
  crashes: boolean;
  errorRate: number;
  applySeconds: number;
  crashSeconds: number;
}

const RATES = ['failureRate', 'errorRate', 'silenceRate', 'crashRate'] as const;

/** Checks a fault list read from a file; returns problems as `faults[i].field: message`. */
export function checkFaults(
  value: unknown,
): { ok: true; faults: Fault[] } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  if (!Array.isArray(value)) return { ok: false, problems: ['the faults must be a list'] };
  value.forEach((f: unknown, i) => {
    const at = `faults[${i}]`;
    if (typeof f !== 'object' || f === null) return problems.push(`${at}: not a mapping`);
    const fault = f as Record<string, unknown>;
    const match = fault.match as Record<string, unknown> | undefined;
    if (typeof match !== 'object' || match === null) problems.push(`${at}.match: required mapping`);
    else {
      if (match.version !== undefined && typeof match.version !== 'string')
        problems.push(`${at}.match.version: not a string`);
      if (match.configPath !== undefined && typeof match.configPath !== 'string')
        problems.push(`${at}.match.configPath: not a string`);
    }
    for (const key of Object.keys(fault))
      if (!['match', ...RATES, 'crashSeconds', 'applySeconds'].includes(key))
        problems.push(`${at}.${key}: unknown key`);
    for (const key of RATES) {
      const v = fault[key];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1))
        problems.push(`${at}.${key}: a number from 0 to 1`);
    }
    for (const key of ['crashSeconds', 'applySeconds']) {
      const v = fault[key];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 86_400))
        problems.push(`${at}.${key}: seconds from 0 to 86400`);
    }
    return undefined;
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, faults: value as Fault[] };
}

function configAt(
  config: Readonly<Record<string, unknown>>,
  path: string,
): { found: boolean; value?: unknown } {
  let node: unknown = config;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key))
      return { found: false };
    node = (node as Record<string, unknown>)[key];
  }
  return { found: true, value: node };
}

export function matches(match: FaultMatch, target: Target): boolean {
  if (match.version !== undefined && match.version !== target.version) return false;
  if (match.configPath !== undefined) {
    const at = configAt(target.config, match.configPath);
    if (!at.found) return false;
    if ('configValue' in match && JSON.stringify(at.value) !== JSON.stringify(match.configValue))
      return false;
  }
  return true;
}

/** A uniform number in [0, 1) from (seed, id, etag, what). */
export function draw(seed: number, id: string, etag: string, what: string): number {
  const h = createHash('sha256').update(`${seed}\0${id}\0${etag}\0${what}`).digest();
  return h.readUInt32BE(0) / 2 ** 32;
}

/** What happens to agent `id` when it applies `target`: the first matching fault decides. */
export function fateOf(faults: readonly Fault[], seed: number, id: string, target: Target): Fate {
  const fault = faults.find((f) => matches(f.match, target));
  const d = (what: string) => draw(seed, id, target.etag, what);
  return {
    fails: d('fail') < (fault?.failureRate ?? 0),
    silent: d('silence') < (fault?.silenceRate ?? 0),
    crashes: d('crash') < (fault?.crashRate ?? 0),
    errorRate: fault?.errorRate ?? 0,
    applySeconds: fault?.applySeconds ?? 0,
    crashSeconds: fault?.crashSeconds ?? 30,
  };
}
