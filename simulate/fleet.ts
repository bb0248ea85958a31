// A simulated fleet in one process: N agents speaking the real protocol (agent/protocol.ts,
// so their reports are exactly a real agent's), labelled like a real fleet (labels.ts), each
// following its fate under the fault model (faults.ts). They share one undici dispatcher with
// bounded connections; each agent's loop awaits I/O or a sleep on every turn, so thousands
// share the event loop fairly. The demo, benchmarks and tests drive it through
// startSimulation().

import { Agent as HttpAgent, type Dispatcher } from 'undici';
import type { Labels, Target } from '../core/target/model.ts';
import { pollDelay } from '../agent/backoff.ts';
import { DEFAULT_RETRY, failureOf, retryAfter, type RetryPolicy } from '../agent/retry.ts';
import { systemClock, type Clock } from '../agent/clock.ts';
import { AgentError } from '../agent/errors.ts';
import { checkin, enroll } from '../agent/protocol.ts';
import type { CheckinBody } from '../wire/checkin.ts';
import type { Health } from '../wire/health.ts';
import { fateOf, type Fault } from './faults.ts';
import { prng, syntheticAgents } from './labels.ts';

export interface SimulationOptions {
  url: string;
  agents: number;
  enrollToken?: string | undefined;
  seed?: number;
  faults?: readonly Fault[];
  /** Long-poll wait asked; default: the target's pollAfterSeconds. */
  waitSeconds?: number;
  /** Agents start spread over this many seconds (default: 0, all at once). */
  rampSeconds?: number;
  /** Connections to the reconciler; past this, agents poll (wait=0) instead of long-polling. */
  maxConnections?: number;
  /** Requests a healthy agent reports per check-in (the denominator of errorRate). */
  requestsPerReport?: number;
  dispatcher?: Dispatcher;
  clock?: Clock;
  timeoutMs?: number;
  backoff?: Partial<RetryPolicy>;
  /** Agents' ids and labels; default: simulate/labels.ts's seeded mix. */
  inventory?: ReadonlyArray<{ id: string; labels: Labels }>;
}

export interface SimulationStats {
  agents: number;
  enrolled: number;
  /** Agents running each version. */
  versions: Record<string, number>;
  health: { ok: number; degraded: number; failed: number };
  silent: number;
  crashed: number;
  checkins: number;
  errors: number;
  lastError: string | undefined;
}

export interface Simulation {
  stop(): Promise<void>;
  stats(): SimulationStats;
  /**
   * Settles with the reason when the simulation gives up by itself: the reconciler refused
   * enrollment (401/403), which no retry mends. Never settles otherwise.
   */
  readonly refused: Promise<AgentError>;
}

interface SimAgent {
  id: string;
  labels: Labels;
  token?: string;
  current?: Target;
  health: Health;
  errorRate: number;
  silent: boolean;
  crashes: number;
}

export function startSimulation(options: SimulationOptions): Simulation {
  const seed = options.seed ?? 1;
  const faults = options.faults ?? [];
  const clock = options.clock ?? systemClock;
  const random = prng(seed ^ 0x5eed);
  const backoff = { ...DEFAULT_RETRY, ...options.backoff };
  const maxConnections = options.maxConnections ?? 4096;
  const longPoll = options.agents <= maxConnections;
  const owned = options.dispatcher
    ? undefined
    : new HttpAgent({ connections: Math.min(options.agents, maxConnections), pipelining: 1 });
  const dispatcher = options.dispatcher ?? owned!;
  const controller = new AbortController();
  const inventory = options.inventory ?? syntheticAgents(options.agents, seed);
  const agents: SimAgent[] = inventory.slice(0, options.agents).map((a) => ({
    id: a.id,
    labels: a.labels,
    health: { status: 'ok' },
    errorRate: 0,
    silent: false,
    crashes: 0,
  }));
  const counters = { checkins: 0, errors: 0, lastError: undefined as string | undefined };
  let refuse: (e: AgentError) => void = () => {};
  const refused = new Promise<AgentError>((resolve) => (refuse = resolve));
  const requestsPerReport = options.requestsPerReport ?? 100;
  const request = {
    dispatcher,
    timeoutMs: options.timeoutMs ?? 30_000,
    signal: controller.signal,
    now: () => clock.now(),
  };

  function report(agent: SimAgent): CheckinBody {
    const body: CheckinBody = { id: agent.id, labels: agent.labels, health: agent.health };
    if (agent.current) body.current = { etag: agent.current.etag, version: agent.current.version };
    if (agent.current && agent.health.status !== 'failed') {
      let errors = 0;
      for (let i = 0; i < requestsPerReport; i++) if (random() < agent.errorRate) errors++;
      body.health = { ...agent.health, errors, requests: requestsPerReport };
    }
    return body;
  }

  async function apply(agent: SimAgent, target: Target): Promise<'ok' | 'silent' | 'crashed'> {
    const fate = fateOf(faults, seed, agent.id, target);
    if (fate.applySeconds > 0) await clock.sleep(fate.applySeconds * 1000, controller.signal);
    if (fate.crashes) {
      agent.crashes++;
      await clock.sleep(fate.crashSeconds * 1000, controller.signal);
      // Back from the crash: a restarted agent enrolls again and says what happened.
      delete agent.token;
      agent.health = {
        status: 'failed',
        message: `crashed applying ${target.version}`,
        failedTarget: { etag: target.etag, version: target.version },
      };
      return 'crashed';
    }
    agent.current = target;
    agent.errorRate = fate.errorRate;
    agent.health = fate.fails
      ? { status: 'failed', message: `${target.version} is unhealthy (simulated)` }
      : { status: 'ok' };
    return fate.silent ? 'silent' : 'ok';
  }

  async function live(agent: SimAgent, index: number): Promise<void> {
    const ramp = (options.rampSeconds ?? 0) * 1000;
    if (ramp > 0) await clock.sleep((ramp * index) / options.agents, controller.signal);
    let attempt = 0;
    let goSilent = false;
    while (!controller.signal.aborted) {
      const started = clock.now();
      let delay = 0;
      let enrolling = false;
      try {
        if (agent.token === undefined) {
          enrolling = true;
          agent.token = await enroll(
            options.url,
            { id: agent.id, labels: agent.labels, enrollToken: options.enrollToken },
            request,
          );
          enrolling = false;
        }
        const wait =
          longPoll && !goSilent
            ? (options.waitSeconds ?? agent.current?.pollAfterSeconds ?? 30)
            : 0;
        const answer = await checkin(
          options.url,
          agent.token,
          report(agent),
          agent.current ? [agent.current.etag] : [],
          wait,
          request,
        );
        counters.checkins++;
        attempt = 0;
        if (goSilent) {
          agent.silent = true;
          return;
        }
        if (answer.kind === 'target') {
          const outcome = await apply(agent, answer.target);
          // A silent agent reports once, that it runs the target, then is never heard again.
          if (outcome === 'silent') goSilent = true;
        } else {
          const pace = longPoll
            ? wait
            : (answer.pollAfterSeconds ?? agent.current?.pollAfterSeconds ?? 30);
          delay = pollDelay(pace * 1000, longPoll ? clock.now() - started : 0, random);
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        // A missing or wrong enrollment token is refused for every agent, for ever: stop and
        // say so rather than retry.
        if (enrolling && e instanceof AgentError && (e.status === 401 || e.status === 403)) {
          refuse(e);
          controller.abort();
          return;
        }
        counters.errors++;
        counters.lastError = e instanceof Error ? e.message : String(e);
        // As the reference agent does (agent/retry.ts): the failure's kind says what follows.
        const failure =
          e instanceof AgentError
            ? failureOf(e, agent.token !== undefined)
            : { kind: 'transient' as const };
        if (e instanceof AgentError && e.status === 401) delete agent.token;
        const pace = (agent.current?.pollAfterSeconds ?? 30) * 1000;
        delay = retryAfter(backoff, failure, attempt++, pace, random).delayMs;
      }
      // Every turn yields: even a zero delay lets other agents and I/O run.
      await clock.sleep(delay, controller.signal);
    }
  }

  const loops = agents.map((agent, i) => live(agent, i));

  return {
    refused,
    async stop() {
      controller.abort();
      await Promise.allSettled(loops);
      await owned?.close();
    },
    stats() {
      const stats: SimulationStats = {
        agents: agents.length,
        enrolled: 0,
        versions: {},
        health: { ok: 0, degraded: 0, failed: 0 },
        silent: 0,
        crashed: 0,
        checkins: counters.checkins,
        errors: counters.errors,
        lastError: counters.lastError,
      };
      for (const a of agents) {
        if (a.token !== undefined) stats.enrolled++;
        if (a.current)
          stats.versions[a.current.version] = (stats.versions[a.current.version] ?? 0) + 1;
        if (a.health.status !== 'retrying') stats.health[a.health.status]++;
        if (a.silent) stats.silent++;
        if (a.crashes > 0) stats.crashed++;
      }
      return stats;
    },
  };
}
