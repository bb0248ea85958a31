// The reconciler's Prometheus metrics, registered on an injected Registry. No per-agent
// labels: agents are counted by wave, revision and health, whose values are few.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AgentRegistry } from './agents.ts';

export type CheckinResult =
  | 'target'
  | 'not_modified'
  | 'released'
  | 'timeout'
  | 'too_many_waiters'
  | 'render_error'
  | 'not_ready';

export class Metrics {
  readonly checkins: Counter<'result'>;
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

  constructor(
    registry: Registry,
    sources: { agents: AgentRegistry; waiters: () => number; shortRevision: (r: string) => string },
  ) {
    const registers = [registry];
    this.checkins = new Counter({
      name: 'fleetwave_checkins_total',
      help: 'Check-ins answered, by result.',
      labelNames: ['result'],
      registers,
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
      help: 'Agents known to this replica by wave, the revision they report running, and health.',
      labelNames: ['wave', 'revision', 'health'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<
          string,
          { wave: string; revision: string; health: string; n: number }
        >();
        for (const agent of sources.agents.values()) {
          const running = sources.agents.runningRevision(agent);
          const wave = agent.wave ?? 'unknown';
          const revision = running === undefined ? 'unknown' : sources.shortRevision(running);
          const health = agent.health?.status ?? 'unknown';
          const key = `${wave}\0${revision}\0${health}`;
          const entry = counts.get(key);
          if (entry) entry.n++;
          else counts.set(key, { wave, revision, health, n: 1 });
        }
        for (const { wave, revision, health, n } of counts.values()) {
          this.set({ wave, revision, health }, n);
        }
      },
    });
  }
}
