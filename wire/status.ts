// GET /v1/status: what a replica serves (stable, candidate and its wave), per-wave counts, the
// store's and the git source's health, and the rollout engine's last decision with the
// observation of the candidate it rested on. Read by the CLI, the status page, the demo and both
// actions. On the wire `wave` is a wave's name and `waveIndex` its place in the stable policy's
// `spec.waves` (the state file, rollout.yaml, keeps its own `wave` index: DESIGN §2).

import type {
  CohortSnapshot as CoreCohortSnapshot,
  FleetObservation,
  Tally as CoreTally,
} from '../core/rollout/observations.ts';
import { COMMIT_SCHEMA, TIMESTAMP_SCHEMA } from './agent.ts';
import type { HealthStatus } from './health.ts';
import { assertSame, type FromSchema, type Same } from './schema.ts';

const COUNT = { type: 'integer', minimum: 0 } as const;
const AMOUNT = { type: 'number', minimum: 0 } as const;
const WAVE_INDEX = { type: 'integer', minimum: 0 } as const;

/** One wave in GET /v1/status: the wave's own index and name, and its agents fleet-wide. */
export const WAVE_COUNTS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['index', 'name', 'revision', 'agents', 'running', 'health'],
  properties: {
    index: WAVE_INDEX,
    name: { type: 'string' },
    /** The revision this wave is served: the candidate for waves 0..k, else stable. */
    revision: COMMIT_SCHEMA,
    agents: COUNT,
    running: {
      type: 'object',
      additionalProperties: false,
      required: ['candidate', 'stable', 'other'],
      properties: { candidate: COUNT, stable: COUNT, other: COUNT },
    },
    health: {
      type: 'object',
      additionalProperties: false,
      required: ['ok', 'degraded', 'failed', 'silent', 'unknown'],
      properties: { ok: COUNT, degraded: COUNT, failed: COUNT, silent: COUNT, unknown: COUNT },
    },
  },
} as const;

/** Counts over the agents of a cohort (core/rollout/observations.ts). */
export const COHORT_SNAPSHOT_SCHEMA = {
  type: 'object',
  required: [
    'agents',
    'applied',
    'silent',
    'failed',
    'degraded',
    'errors',
    'requests',
    'reporting',
    'errorRates',
  ],
  properties: {
    agents: COUNT,
    applied: COUNT,
    silent: COUNT,
    failed: COUNT,
    degraded: COUNT,
    errors: AMOUNT,
    requests: AMOUNT,
    reporting: COUNT,
    errorRates: AMOUNT,
  },
} as const;

/** Check-ins tallied over the rollout, one trial each: what compareToStable tests. */
export const TALLY_SCHEMA = {
  type: 'object',
  required: ['reports', 'failed', 'errors', 'requests', 'rated', 'errorRates'],
  properties: {
    reports: COUNT,
    failed: COUNT,
    errors: AMOUNT,
    requests: AMOUNT,
    rated: COUNT,
    errorRates: AMOUNT,
  },
} as const;

/**
 * `rollout.observation`: the candidate's cohorts at its wave as last observed, and when: what
 * the gates judged, and what the promote action decides on.
 */
export const ROLLOUT_OBSERVATION_SCHEMA = {
  type: 'object',
  required: ['at', 'revision', 'waveIndex', 'candidate', 'stable', 'tally'],
  properties: {
    at: TIMESTAMP_SCHEMA,
    revision: COMMIT_SCHEMA,
    waveIndex: WAVE_INDEX,
    candidate: COHORT_SNAPSHOT_SCHEMA,
    stable: COHORT_SNAPSHOT_SCHEMA,
    tally: {
      type: 'object',
      required: ['candidate', 'stable'],
      properties: { candidate: TALLY_SCHEMA, stable: TALLY_SCHEMA },
    },
  },
} as const;

export const GATE_RESULT_SCHEMA = {
  type: 'object',
  required: ['gate', 'verdict', 'message'],
  properties: {
    gate: { type: 'string' },
    verdict: { type: 'string', enum: ['pass', 'fail', 'wait'] },
    message: { type: 'string' },
    value: { type: 'number' },
    threshold: { type: 'number' },
    sample: { type: 'number' },
  },
} as const;

const ERROR_AT = {
  type: 'object',
  nullable: true,
  additionalProperties: false,
  required: ['at', 'message'],
  properties: { at: TIMESTAMP_SCHEMA, message: { type: 'string' } },
} as const;

/** `rollout`: the engine's last evaluation, last write, reverts and observation. */
export const ENGINE_STATUS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'evaluateIntervalSeconds',
    'lastEvaluation',
    'lastWrite',
    'stalled',
    'lastError',
    'reverts',
    'observation',
  ],
  properties: {
    /** Seconds between evaluations; 0 when only operator actions move the rollout. */
    evaluateIntervalSeconds: { type: 'integer', minimum: 0 },
    lastEvaluation: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['at', 'decision', 'reason', 'revision', 'wave', 'gates', 'prometheus'],
      properties: {
        at: TIMESTAMP_SCHEMA,
        decision: { type: 'string', enum: ['start', 'promote', 'complete', 'reject', 'wait'] },
        reason: { type: 'string', nullable: true },
        revision: { type: 'string', nullable: true },
        /** The name of the wave the gates were evaluated for. */
        wave: { type: 'string', nullable: true },
        gates: { type: 'array', items: GATE_RESULT_SCHEMA },
        prometheus: {
          type: 'object',
          nullable: true,
          additionalProperties: {
            type: 'object',
            required: ['ok'],
            properties: {
              ok: { type: 'boolean' },
              value: { type: 'number' },
              error: { type: 'string' },
            },
          },
        },
      },
    },
    lastWrite: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['at', 'commit', 'subject'],
      properties: { at: TIMESTAMP_SCHEMA, commit: COMMIT_SCHEMA, subject: { type: 'string' } },
    },
    /** Why automatic decisions are not written now; a person must act. */
    stalled: { type: 'string', nullable: true },
    lastError: ERROR_AT,
    reverts: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['revision', 'mode', 'state', 'at', 'message'],
        properties: {
          revision: COMMIT_SCHEMA,
          mode: { type: 'string', enum: ['push', 'pull-request'] },
          state: {
            type: 'string',
            enum: ['done', 'pushed', 'pull-request', 'conflict', 'failed'],
          },
          at: TIMESTAMP_SCHEMA,
          message: { type: 'string' },
          commit: COMMIT_SCHEMA,
          pullRequest: {
            type: 'object',
            additionalProperties: false,
            required: ['number', 'url'],
            properties: { number: { type: 'integer' }, url: { type: 'string' } },
          },
        },
      },
    },
    /** Null when nothing rolls out. */
    observation: { ...ROLLOUT_OBSERVATION_SCHEMA, nullable: true },
  },
} as const;

/** The store of agent reports (reconciler/reports.ts). */
export const STORE_STATUS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'up', 'lastWriteAt', 'lastError', 'buffered'],
  properties: {
    kind: { type: 'string', enum: ['sqlite', 'postgres'] },
    /** The last write to and read from the store succeeded; gates wait while false. */
    up: { type: 'boolean' },
    lastWriteAt: { ...TIMESTAMP_SCHEMA, nullable: true },
    lastError: ERROR_AT,
    /** Agents whose latest report is not in the store yet. */
    buffered: COUNT,
  },
} as const;

/** The git source (reconciler/sync.ts): the remote, the fleet branch and the state branch. */
export const GIT_STATUS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['remote', 'branch', 'state'],
  properties: {
    remote: {
      type: 'object',
      additionalProperties: false,
      required: [
        'url',
        'reachable',
        'lastFetchAt',
        'lastSuccessAt',
        'lastError',
        'consecutiveFailures',
      ],
      properties: {
        /** Without any user:password part. */
        url: { type: 'string' },
        reachable: { type: 'boolean', nullable: true },
        lastFetchAt: { ...TIMESTAMP_SCHEMA, nullable: true },
        lastSuccessAt: { ...TIMESTAMP_SCHEMA, nullable: true },
        lastError: { type: 'string', nullable: true },
        consecutiveFailures: COUNT,
      },
    },
    branch: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'tip', 'lastApplied', 'lastAttempted', 'forcePush'],
      properties: {
        name: { type: 'string' },
        tip: { type: 'string', nullable: true },
        lastApplied: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['revision', 'at'],
          properties: { revision: COMMIT_SCHEMA, at: TIMESTAMP_SCHEMA },
        },
        lastAttempted: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['revision', 'at', 'valid', 'errors'],
          properties: {
            revision: COMMIT_SCHEMA,
            at: TIMESTAMP_SCHEMA,
            valid: { type: 'boolean' },
            errors: { type: 'array', items: { type: 'string' } },
          },
        },
        forcePush: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['from', 'to', 'at'],
          properties: { from: { type: 'string' }, to: { type: 'string' }, at: TIMESTAMP_SCHEMA },
        },
      },
    },
    state: {
      type: 'object',
      additionalProperties: false,
      required: ['branch', 'commit', 'lastError'],
      properties: {
        branch: { type: 'string' },
        commit: { type: 'string', nullable: true },
        lastError: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['commit', 'at', 'errors'],
          properties: {
            commit: { type: 'string', nullable: true },
            at: TIMESTAMP_SCHEMA,
            errors: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

/** A commit of the state branch: what happened to the rollout and why. */
export const HISTORY_ENTRY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'at', 'author', 'subject', 'body'],
  properties: {
    commit: COMMIT_SCHEMA,
    at: TIMESTAMP_SCHEMA,
    author: { type: 'string' },
    subject: { type: 'string' },
    body: { type: 'string' },
  },
} as const;

/** What people recognize a revision by: the release it rolls out and its commit's subject. */
const RELEASE = { version: { type: 'string' }, subject: { type: 'string' } } as const;

export const STATUS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'ready',
    'stable',
    'stableRelease',
    'candidate',
    'paused',
    'rejected',
    'stateCommit',
    'servedSince',
    'waves',
    'agents',
    'store',
    'git',
  ],
  properties: {
    ready: { type: 'boolean' },
    /** Null until a valid rollout is served. */
    stable: { ...COMMIT_SCHEMA, nullable: true },
    stableRelease: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['version', 'subject'],
      properties: RELEASE,
    },
    candidate: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['revision', 'wave', 'waveIndex', 'waveStartedAt', 'version', 'subject'],
      properties: {
        revision: COMMIT_SCHEMA,
        /** The name of the last wave that runs the candidate. */
        wave: { type: 'string' },
        /** Waves 0..waveIndex run the candidate. */
        waveIndex: WAVE_INDEX,
        waveStartedAt: { ...TIMESTAMP_SCHEMA, nullable: true },
        ...RELEASE,
      },
    },
    paused: { type: 'boolean' },
    rejected: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['revision', 'at', 'waveIndex', 'reason'],
        properties: {
          revision: COMMIT_SCHEMA,
          at: TIMESTAMP_SCHEMA,
          /** The wave it was rejected at, in the policy of the stable revision of the time. */
          waveIndex: WAVE_INDEX,
          reason: { type: 'string' },
        },
      },
    },
    /** The state branch's commit being served. */
    stateCommit: { ...COMMIT_SCHEMA, nullable: true },
    servedSince: { ...TIMESTAMP_SCHEMA, nullable: true },
    waves: { type: 'array', items: WAVE_COUNTS_SCHEMA },
    agents: {
      type: 'object',
      additionalProperties: false,
      required: ['known', 'here', 'waiting'],
      properties: {
        /** Agents in the store (the whole fleet). */
        known: COUNT,
        /** Agents this replica has heard from since it started. */
        here: COUNT,
        /** Long-polls this replica holds. */
        waiting: COUNT,
      },
    },
    store: STORE_STATUS_SCHEMA,
    git: GIT_STATUS_SCHEMA,
    /** Only from a replica that runs the rollout engine. */
    rollout: ENGINE_STATUS_SCHEMA,
    /** The state branch's recent commits, newest first. */
    history: { type: 'array', items: HISTORY_ENTRY_SCHEMA },
  },
} as const;

export type WaveCounts = FromSchema<typeof WAVE_COUNTS_SCHEMA>;
export type WaveHealth = keyof WaveCounts['health'];
export type CohortSnapshot = FromSchema<typeof COHORT_SNAPSHOT_SCHEMA>;
export type Tally = FromSchema<typeof TALLY_SCHEMA>;
export type RolloutObservation = FromSchema<typeof ROLLOUT_OBSERVATION_SCHEMA>;
export type GateResult = FromSchema<typeof GATE_RESULT_SCHEMA>;
export type EngineStatus = FromSchema<typeof ENGINE_STATUS_SCHEMA>;
export type RevertStatus = EngineStatus['reverts'][number];
export type StoreStatus = FromSchema<typeof STORE_STATUS_SCHEMA>;
export type GitStatus = FromSchema<typeof GIT_STATUS_SCHEMA>;
export type HistoryEntry = FromSchema<typeof HISTORY_ENTRY_SCHEMA>;
export type Status = FromSchema<typeof STATUS_SCHEMA>;
export type StatusCandidate = NonNullable<Status['candidate']>;
export type StatusRejection = Status['rejected'][number];

// The cohorts on the wire are the core's, field for field (extra fields are tolerated when read).
assertSame<Same<Pick<CohortSnapshot, keyof CoreCohortSnapshot>, CoreCohortSnapshot>>();
assertSame<Same<Pick<Tally, keyof CoreTally>, CoreTally>>();
// A wave counts each health status an agent reports (`retrying` as unknown), silent ones apart.
assertSame<Same<Exclude<HealthStatus, 'retrying'> | 'silent' | 'unknown', WaveHealth>>();

/** The observation as GET /v1/status publishes it: the core's FleetObservation, and when. */
export function publishObservation(fleet: FleetObservation, at: string): RolloutObservation {
  return {
    at,
    revision: fleet.revision,
    waveIndex: fleet.wave,
    candidate: fleet.candidate,
    stable: fleet.stable,
    tally: fleet.tally,
  };
}

/** A published observation as the core's FleetObservation, which decide() reads. */
export function fleetObservationOf(observation: RolloutObservation): FleetObservation {
  const snapshot = (c: CohortSnapshot): CoreCohortSnapshot => ({
    agents: c.agents,
    applied: c.applied,
    silent: c.silent,
    failed: c.failed,
    degraded: c.degraded,
    errors: c.errors,
    requests: c.requests,
    reporting: c.reporting,
    errorRates: c.errorRates,
  });
  const tally = (t: Tally): CoreTally => ({
    reports: t.reports,
    failed: t.failed,
    errors: t.errors,
    requests: t.requests,
    rated: t.rated,
    errorRates: t.errorRates,
  });
  return {
    revision: observation.revision,
    wave: observation.waveIndex,
    candidate: snapshot(observation.candidate),
    stable: snapshot(observation.stable),
    tally: {
      candidate: tally(observation.tally.candidate),
      stable: tally(observation.tally.stable),
    },
  };
}
