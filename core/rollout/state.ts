// The rollout state (DESIGN §2): which revision is stable, which candidate runs on waves 0..k,
// which revisions were rejected. Pure: parse, check and serialize `rollout.yaml`; the
// reconciler and the promote action read and write it through git.

import { Ajv, type ErrorObject } from 'ajv';
import { parse, stringify } from 'yaml';

export const ROLLOUT_FILE = 'rollout.yaml';
export const ROLLOUT_API_VERSION = 'fleetwave.dev/v1';

export interface Candidate {
  /** Full commit id on the fleet branch. */
  revision: string;
  /** Waves 0..wave run the candidate. */
  wave: number;
  /** RFC 3339 time the candidate reached `wave`. */
  waveStartedAt: string;
}

export interface Rejection {
  revision: string;
  at: string;
  wave: number;
  reason: string;
}

export interface RolloutState {
  apiVersion: typeof ROLLOUT_API_VERSION;
  kind: 'RolloutState';
  stable: string;
  candidate?: Candidate;
  rejected: Rejection[];
  paused: boolean;
}

export type ParseResult = { ok: true; state: RolloutState } | { ok: false; errors: string[] };

const SHA = '^[0-9a-f]{40}([0-9a-f]{24})?$';
const TIME = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$';

export const ROLLOUT_STATE_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'fleetwave RolloutState',
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'stable'],
  properties: {
    apiVersion: { const: ROLLOUT_API_VERSION },
    kind: { const: 'RolloutState' },
    stable: { type: 'string', pattern: SHA },
    candidate: {
      type: 'object',
      additionalProperties: false,
      required: ['revision', 'wave', 'waveStartedAt'],
      properties: {
        revision: { type: 'string', pattern: SHA },
        wave: { type: 'integer', minimum: 0, maximum: 1000 },
        waveStartedAt: { type: 'string', pattern: TIME },
      },
    },
    rejected: {
      type: 'array',
      maxItems: 10000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['revision', 'at', 'wave', 'reason'],
        properties: {
          revision: { type: 'string', pattern: SHA },
          at: { type: 'string', pattern: TIME },
          wave: { type: 'integer', minimum: 0 },
          reason: { type: 'string', maxLength: 4096 },
        },
      },
    },
    paused: { type: 'boolean' },
  },
} as const;

let validate: ReturnType<Ajv['compile']> | undefined;

function describe(e: ErrorObject): string {
  const at = e.instancePath === '' ? 'rollout.yaml' : e.instancePath.slice(1).replace(/\//g, '.');
  if (e.keyword === 'additionalProperties') {
    return `${at}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (e.keyword === 'pattern' && (e.params as { pattern: string }).pattern === SHA)
    return `${at}: must be a full commit id`;
  if (e.keyword === 'pattern') return `${at}: must be an RFC 3339 time like 2026-11-27T10:00:00Z`;
  if (e.keyword === 'const') return `${at}: must be ${JSON.stringify(e.params.allowedValue)}`;
  return `${at}: ${e.message ?? 'is invalid'}`;
}

/** Checks a parsed value; everything a schema cannot say is checked here too. */
export function checkRolloutState(value: unknown): ParseResult {
  validate ??= new Ajv({ strict: true, allErrors: true }).compile(ROLLOUT_STATE_SCHEMA);
  if (!validate(value)) return { ok: false, errors: (validate.errors ?? []).map(describe) };
  const raw = value as Omit<RolloutState, 'rejected' | 'paused'> &
    Partial<Pick<RolloutState, 'rejected' | 'paused'>>;
  const state: RolloutState = {
    apiVersion: ROLLOUT_API_VERSION,
    kind: 'RolloutState',
    stable: raw.stable,
    rejected: raw.rejected ?? [],
    paused: raw.paused ?? false,
  };
  if (raw.candidate) state.candidate = raw.candidate;
  const errors: string[] = [];
  if (state.candidate?.revision === state.stable) {
    errors.push('candidate.revision: the candidate cannot be the stable revision');
  }
  if (state.candidate && state.rejected.some((r) => r.revision === state.candidate!.revision)) {
    errors.push('candidate.revision: a rejected revision is never a candidate again');
  }
  for (const t of [state.candidate?.waveStartedAt, ...state.rejected.map((r) => r.at)]) {
    if (t !== undefined && Number.isNaN(Date.parse(t))) errors.push(`"${t}" is not a valid time`);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, state };
}

export function parseRolloutState(text: string): ParseResult {
  let value: unknown;
  try {
    // Plain data only: no custom tags, bounded aliases.
    value = parse(text, { maxAliasCount: 10, schema: 'core', uniqueKeys: true });
  } catch (e) {
    return { ok: false, errors: [`rollout.yaml is not valid YAML: ${(e as Error).message}`] };
  }
  return checkRolloutState(value);
}

export function serializeRolloutState(state: RolloutState): string {
  const out: Record<string, unknown> = {
    apiVersion: ROLLOUT_API_VERSION,
    kind: 'RolloutState',
    stable: state.stable,
  };
  if (state.candidate) {
    out.candidate = {
      revision: state.candidate.revision,
      wave: state.candidate.wave,
      waveStartedAt: state.candidate.waveStartedAt,
    };
  }
  out.rejected = state.rejected.map((r) => ({
    revision: r.revision,
    at: r.at,
    wave: r.wave,
    reason: r.reason,
  }));
  out.paused = state.paused;
  return (
    '# Written by fleetwave: the rollout of the fleet branch. Each change is one commit that says why.\n' +
    stringify(out, { lineWidth: 0 })
  );
}

/** The state a fleet starts from: `stable` proven, nothing rolling out. */
export function initialRolloutState(stable: string): RolloutState {
  return {
    apiVersion: ROLLOUT_API_VERSION,
    kind: 'RolloutState',
    stable,
    rejected: [],
    paused: false,
  };
}

/** The revision an agent in wave `wave` (0-based, by the stable policy) should run. */
export function revisionForWave(state: RolloutState, wave: number): string {
  return state.candidate && wave <= state.candidate.wave ? state.candidate.revision : state.stable;
}

/** Whether two states write the same rollout.yaml: a write that changes nothing is skipped. */
export function sameState(a: RolloutState, b: RolloutState): boolean {
  return serializeRolloutState(a) === serializeRolloutState(b);
}
