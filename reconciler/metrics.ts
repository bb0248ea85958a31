// The reconciler's Prometheus metrics, registered on an injected Registry. No per-agent
// labels: agents are counted by wave, revision and health, whose values are few.

import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import type { GateResult } from '../core/rollout/gates/gate.ts';
import type { CohortSnapshot } from '../core/rollout/observations.ts';
import type { CountRow, LabelCountRow } from './store/store.ts';

/**
 * Agent labels whose values break agents down in `fleetwave_agents_by_label` unless
 * `--metric-labels` says otherwise: few keys, and at most MAX_LABEL_VALUES values each (the
 * rest count as `other`), so the series stay bounded.
 */
export const BREAKDOWN_LABELS: readonly string[] = ['region'];
export const MAX_LABEL_VALUES = 64;

/** What one rollout evaluation saw, for the gauges below (see RolloutEngine). */
export interface EvaluationMetrics {
  /** The candidate's wave now, with when it started; undefined when nothing rolls out. */
  candidate?: { wave: string; index: number; startedAt: number };
  /** The gates evaluated on that wave (none when the decision rested on no evidence). */
  gates: readonly GateResult[];
  cohorts?: { candidate: CohortSnapshot; stable: CohortSnapshot };
  paused: boolean;
}

export const CHECKIN_RESULTS = [
  'target',
  'not_modified',
  'released',
  'timeout',
  'too_many_waiters',
  'render_error',
  'not_ready',
] as const;
export type CheckinResult = (typeof CHECKIN_RESULTS)[number];

/**
 * Every label value a labelled counter can take that is known before its first event: each
 * series is exported at 0 from the start, so `increase()` and `rate()` see the first event
 * (a series that appears at 1 has no increase to show, and its alert never fires).
 */
const KNOWN_LABELS = {
  fetches: ['ok', 'failed'],
  revisionsRefused: ['fleet', 'state'],
  renderErrors: ['missing-label', 'no-artifact'],
  webhooks: ['accepted', 'duplicate', 'ignored', 'bad_signature'],
} as const;

export class Metrics {
  /**
   * Check-ins answered, by result: a plain count on each check-in (the hottest path), read
   * into fleetwave_checkins_total at each scrape.
   */
  readonly checkins: Record<CheckinResult, number>;
  readonly enrollments: Counter;
  readonly fetches: Counter<'result'>;
  readonly fetchDuration: Histogram;
  readonly remoteUp: Gauge;
  readonly lastFetchSuccess: Gauge;
  readonly forcePushes: Counter;
  readonly revisionsRefused: Counter<'kind'>;
  readonly revisionInfo: Gauge<'role' | 'revision'>;
  readonly renderErrors: Counter<'code'>;
  readonly webhooks: Counter<'result'>;
  readonly branchTipValid: Gauge;
  /** Clock ms of the last check-in here: fleetwave_last_checkin_timestamp_seconds at each scrape. */
  lastCheckinAt: number;
  readonly checkinDuration: Histogram;
  readonly rejections: Counter<'wave'>;
  readonly decisions: Counter<'decision'>;
  readonly candidateWave: Gauge;
  readonly waveStarted: Gauge<'wave'>;
  readonly paused: Gauge;
  readonly gateValue: Gauge<'wave' | 'gate'>;
  readonly gateThreshold: Gauge<'wave' | 'gate'>;
  readonly gateVerdict: Gauge<'wave' | 'gate' | 'verdict'>;
  readonly cohortAgents: Gauge<'cohort' | 'state'>;
  readonly storeUp: Gauge;
  readonly storeErrors: Counter<'op'>;
  readonly storeBuffered: Gauge;
  readonly storeRowsWritten: Counter;

  constructor(
    registry: Registry,
    sources: {
      /** Fleet-wide counts from the store (every replica exports the same: aggregate with max). */
      counts: () => Promise<{ rows: CountRow[]; waves: readonly string[] }>;
      labelCounts: (label: string) => Promise<LabelCountRow[]>;
      waiters: () => number;
      shortRevision: (r: string) => string;
      now?: () => number;
      /** `--metric-labels`; BREAKDOWN_LABELS when absent. */
      breakdownLabels?: readonly string[];
    },
  ) {
    const registers = [registry];
    const now = sources.now ?? Date.now;
    // process_* and nodejs_* (CPU, memory, open file descriptors, event-loop lag, GC): what a
    // team looks at first when a replica misbehaves.
    collectDefaultMetrics({ register: registry });
    const breakdown = sources.breakdownLabels ?? BREAKDOWN_LABELS;
    const checkins = (this.checkins = Object.fromEntries(
      CHECKIN_RESULTS.map((result) => [result, 0]),
    ) as Record<CheckinResult, number>);
    new Counter({
      name: 'fleetwave_checkins_total',
      help: 'Check-ins answered, by result.',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const result of CHECKIN_RESULTS) this.inc({ result }, checkins[result]);
      },
    });
    this.enrollments = new Counter({
      name: 'fleetwave_enrollments_total',
      help: 'Agents enrolled.',
      registers,
    });
    this.fetches = new Counter({
      name: 'fleetwave_git_fetches_total',
      help: 'Fetches of the fleet repository, by result (ok, failed).',
      labelNames: ['result'],
      registers,
    });
    this.fetchDuration = new Histogram({
      name: 'fleetwave_git_fetch_duration_seconds',
      help: 'Time to ask the remote for its branches and fetch what moved.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.remoteUp = new Gauge({
      name: 'fleetwave_git_remote_up',
      help: '1 when the last fetch of the fleet repository succeeded, else 0.',
      registers,
    });
    this.lastFetchSuccess = new Gauge({
      name: 'fleetwave_git_last_fetch_success_timestamp_seconds',
      help: 'When the fleet repository was last fetched successfully.',
      registers,
    });
    this.forcePushes = new Counter({
      name: 'fleetwave_git_force_pushes_total',
      help: 'Fleet branch tips that do not descend from the last applied revision.',
      registers,
    });
    this.revisionsRefused = new Counter({
      name: 'fleetwave_revisions_refused_total',
      help: 'Revisions (kind=fleet) and rollout states (kind=state) refused as invalid.',
      labelNames: ['kind'],
      registers,
    });
    this.revisionInfo = new Gauge({
      name: 'fleetwave_revision_info',
      help: 'The revisions served (role=stable, candidate) and the last applied tip of the branch (role=branch).',
      labelNames: ['role', 'revision'],
      registers,
    });
    this.renderErrors = new Counter({
      name: 'fleetwave_render_errors_total',
      help: 'Targets that could not be rendered for an agent, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.webhooks = new Counter({
      name: 'fleetwave_webhook_deliveries_total',
      help: 'GitHub webhook deliveries, by result (accepted, duplicate, ignored, bad_signature).',
      labelNames: ['result'],
      registers,
    });
    new Gauge({
      name: 'fleetwave_longpoll_waiters',
      help: 'Check-ins held open waiting for a change.',
      registers,
      collect() {
        this.set(sources.waiters());
      },
    });
    new Gauge({
      name: 'fleetwave_agents',
      help: 'Agents of the whole fleet (from the store: every replica exports the same) by wave, the revision they run, and health (silent: not seen for silentAfter).',
      labelNames: ['wave', 'revision', 'health'],
      registers,
      async collect() {
        const { rows, waves } = await sources.counts();
        this.reset();
        const counts = new Map<
          string,
          { wave: string; revision: string; health: string; n: number }
        >();
        for (const row of rows) {
          const wave = row.wave === null ? 'unknown' : (waves[row.wave] ?? 'unknown');
          const revision = row.revision === null ? 'unknown' : sources.shortRevision(row.revision);
          const health = row.silent ? 'silent' : (row.status ?? 'unknown');
          const key = `${wave}\0${revision}\0${health}`;
          const entry = counts.get(key);
          if (entry) entry.n += row.agents;
          else counts.set(key, { wave, revision, health, n: row.agents });
        }
        for (const { wave, revision, health, n } of counts.values()) {
          this.set({ wave, revision, health }, n);
        }
      },
    });
    new Gauge({
      name: 'fleetwave_agents_by_label',
      help: `Agents of the whole fleet (from the store) by the value of an agent label (label: ${breakdown.join(', ') || 'none configured'}; at most ${MAX_LABEL_VALUES} values, the rest "other") and health.`,
      labelNames: ['label', 'value', 'health'],
      registers,
      async collect() {
        const all = await Promise.all(
          breakdown.map(async (label) => ({ label, rows: await sources.labelCounts(label) })),
        );
        this.reset();
        for (const { label, rows } of all) {
          const counts = new Map<string, Map<string, number>>();
          // The most common values keep their names (ties: agents without the label, then by name).
          const sorted = [...rows].sort(
            (a, b) =>
              b.agents - a.agents ||
              (a.value === null ? -1 : b.value === null ? 1 : a.value < b.value ? -1 : 1),
          );
          for (const row of sorted) {
            let value = row.value ?? 'none';
            if (!counts.has(value) && counts.size >= MAX_LABEL_VALUES) value = 'other';
            let byHealth = counts.get(value);
            if (!byHealth) counts.set(value, (byHealth = new Map()));
            const health = row.status ?? 'unknown';
            byHealth.set(health, (byHealth.get(health) ?? 0) + row.agents);
          }
          for (const [value, byHealth] of counts) {
            for (const [health, n] of byHealth) this.set({ label, value, health }, n);
          }
        }
      },
    });
    this.storeUp = new Gauge({
      name: 'fleetwave_store_up',
      help: '1 when the last write to and read from the store of agent reports succeeded, else 0 (gates wait while it is 0).',
      registers,
    });
    this.storeErrors = new Counter({
      name: 'fleetwave_store_errors_total',
      help: 'Failed writes to and reads from the store of agent reports, by operation (write, read).',
      labelNames: ['op'],
      registers,
    });
    for (const op of ['write', 'read']) this.storeErrors.inc({ op }, 0);
    this.storeBuffered = new Gauge({
      name: 'fleetwave_store_buffered_agents',
      help: 'Agents whose latest report is not written to the store yet.',
      registers,
    });
    this.storeRowsWritten = new Counter({
      name: 'fleetwave_store_rows_written_total',
      help: 'Agent rows written to the store (upserts and re-judgements).',
      registers,
    });
    this.branchTipValid = new Gauge({
      name: 'fleetwave_branch_tip_valid',
      help: '0 when the newest revision of the fleet branch was refused as invalid (it is not served); 1 when it is valid or none was read yet.',
      registers,
    });
    this.branchTipValid.set(1);
    this.lastCheckinAt = now();
    const lastCheckin = () => this.lastCheckinAt / 1000;
    new Gauge({
      name: 'fleetwave_last_checkin_timestamp_seconds',
      help: 'When an agent last checked in here; until the first check-in, when the reconciler started.',
      registers,
      collect() {
        this.set(lastCheckin());
      },
    });
    this.checkinDuration = new Histogram({
      name: 'fleetwave_checkin_duration_seconds',
      help: 'Time to answer a check-in that is not held (a target or 304 at once), from the request to the answer.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.rejections = new Counter({
      name: 'fleetwave_rollout_rejections_total',
      help: 'Candidates rejected by this replica (by the gates or an operator rollback), by the wave they were on.',
      labelNames: ['wave'],
      registers,
    });
    this.decisions = new Counter({
      name: 'fleetwave_rollout_evaluations_total',
      help: 'Rollout evaluations, by decision (start, promote, complete, reject, wait).',
      labelNames: ['decision'],
      registers,
    });
    for (const decision of ['start', 'promote', 'complete', 'reject', 'wait']) {
      this.decisions.inc({ decision }, 0);
    }
    for (const result of KNOWN_LABELS.fetches) this.fetches.inc({ result }, 0);
    for (const kind of KNOWN_LABELS.revisionsRefused) this.revisionsRefused.inc({ kind }, 0);
    for (const code of KNOWN_LABELS.renderErrors) this.renderErrors.inc({ code }, 0);
    for (const result of KNOWN_LABELS.webhooks) this.webhooks.inc({ result }, 0);
    this.candidateWave = new Gauge({
      name: 'fleetwave_rollout_candidate_wave',
      help: 'Index of the wave the candidate runs up to (0 is the first wave); -1 when nothing rolls out. Set at each evaluation.',
      registers,
    });
    this.candidateWave.set(-1);
    this.waveStarted = new Gauge({
      name: 'fleetwave_rollout_wave_started_timestamp_seconds',
      help: "When the candidate's current wave started; absent when nothing rolls out.",
      labelNames: ['wave'],
      registers,
    });
    this.paused = new Gauge({
      name: 'fleetwave_rollout_paused',
      help: '1 when the rollout is paused by an operator, else 0.',
      registers,
    });
    this.gateValue = new Gauge({
      name: 'fleetwave_gate_value',
      help: "Each gate's value at the last evaluation of the candidate's wave (ratios, seconds, agents).",
      labelNames: ['wave', 'gate'],
      registers,
    });
    this.gateThreshold = new Gauge({
      name: 'fleetwave_gate_threshold',
      help: "Each gate's threshold at the last evaluation of the candidate's wave.",
      labelNames: ['wave', 'gate'],
      registers,
    });
    this.gateVerdict = new Gauge({
      name: 'fleetwave_gate_verdict',
      help: "1 for each gate's verdict (pass, fail, wait) at the last evaluation of the candidate's wave, 0 for the others.",
      labelNames: ['wave', 'gate', 'verdict'],
      registers,
    });
    this.cohortAgents = new Gauge({
      name: 'fleetwave_rollout_agents',
      help: 'The cohorts at the last evaluation: candidate (waves 0..k) and stable, by state (eligible, applied, silent, failed, degraded).',
      labelNames: ['cohort', 'state'],
      registers,
    });
  }

  /**
   * The waves of the rollout now served: their rejection counters exist from now on, at 0
   * until a rejection (a wave's series starts before its first rejection, see KNOWN_LABELS).
   */
  waves(names: readonly string[]): void {
    for (const wave of names) this.rejections.inc({ wave }, 0);
  }

  /** The rollout gauges after one evaluation (every replica that evaluates sets its own). */
  evaluated(e: EvaluationMetrics): void {
    this.paused.set(e.paused ? 1 : 0);
    this.candidateWave.set(e.candidate?.index ?? -1);
    this.waveStarted.reset();
    if (e.candidate) this.waveStarted.set({ wave: e.candidate.wave }, e.candidate.startedAt / 1000);
    this.gateValue.reset();
    this.gateThreshold.reset();
    this.gateVerdict.reset();
    const wave = e.candidate?.wave;
    if (wave !== undefined) {
      for (const g of e.gates) {
        const labels = { wave, gate: g.gate };
        if (g.value !== undefined && Number.isFinite(g.value)) this.gateValue.set(labels, g.value);
        if (g.threshold !== undefined && Number.isFinite(g.threshold))
          this.gateThreshold.set(labels, g.threshold);
        for (const verdict of ['pass', 'fail', 'wait'] as const) {
          this.gateVerdict.set({ ...labels, verdict }, g.verdict === verdict ? 1 : 0);
        }
      }
    }
    this.cohortAgents.reset();
    if (e.cohorts) {
      for (const cohort of ['candidate', 'stable'] as const) {
        const s = e.cohorts[cohort];
        const states = {
          eligible: s.agents,
          applied: s.applied,
          silent: s.silent,
          failed: s.failed,
          degraded: s.degraded,
        };
        for (const [state, n] of Object.entries(states))
          this.cohortAgents.set({ cohort, state }, n);
      }
    }
  }
}
