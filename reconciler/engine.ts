// The rollout loop (DESIGN §1, §2), as named steps in the manner of Flux's reconcilers:
// sync (fetch git, find the base to write on) → observe (git's history, the fleet's cohorts
// from the store of agent reports, Prometheus answers) → decide (the pure core) → write (one
// commit on the state branch through the one writer, rollout/write.ts, which fetches, decides
// again and retries when someone else wrote first) → reconcile reverts (reverts.ts). What an
// error does next follows its kind: transient retries at the next evaluation, waiting waits,
// stalled stops automatic writes until a person acts (writes either branch, or acts here).

import { FleetwaveError, isFleetwaveError, type ErrorKind } from '../core/errors.ts';
import {
  decide,
  describeDecision,
  policyOf,
  type Decision,
  type Observations,
  type RolloutPolicy,
} from '../core/rollout/decide.ts';
import type { FleetObservation } from '../core/rollout/observations.ts';
import {
  byWhom,
  operatorStep,
  type OperatorAction,
  type OperatorDecision,
} from '../core/rollout/operator.ts';
import { stepOf, type Step } from '../core/rollout/step.ts';
import { branchLog, type LogEntry } from '../rollout/history.ts';
import { writeState, type StateBase } from '../rollout/state.ts';
import type { RetryOptions } from '../rollout/write.ts';
import type { ActionResult } from '../wire/operator.ts';
import type { EngineStatus as WireEngineStatus } from '../wire/status.ts';
import type { Reconciler } from './context.ts';
import { Observer } from './observe.ts';
import { Reverts } from './reverts.ts';
import type { Logger, ServedRollout } from './sync.ts';

export type { ActionResult };

/** What GET /v1/status publishes as `rollout`, the observation kept as the core has it. */
export type EngineStatus = Omit<WireEngineStatus, 'observation'> & {
  /** The candidate's cohorts at its wave, as last observed; null when nothing rolls out. */
  observation: RolloutObservation | null;
};

/** The FleetObservation decide() got, and when: published by the status route (wire/status.ts). */
export interface RolloutObservation extends FleetObservation {
  at: string;
}

/** What a decision is written on: the served state at the state branch's tip. */
export interface Base extends StateBase {
  served: ServedRollout;
  policy: RolloutPolicy;
  branchTip: string;
}

interface ObservedBase extends Base {
  observations: Observations;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function kindOf(e: unknown): ErrorKind {
  // Anything untyped is a bug or the machine: as transient as INTERNAL.
  return isFleetwaveError(e) ? e.kind : 'transient';
}

export class RolloutEngine {
  private readonly ctx: Reconciler;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private scheduled = false;
  private readonly observer: Observer;
  private readonly reverts: Reverts;
  /** The branches' tips an evaluation stalled on: nothing is written until one moves. */
  private stalledOn: string | undefined;
  private historyCache: { tip: string; entries: LogEntry[] } | undefined;
  readonly status: EngineStatus;

  constructor(ctx: Reconciler, log: Logger, evaluateIntervalSeconds: number) {
    this.ctx = ctx;
    this.log = log;
    this.intervalMs = evaluateIntervalSeconds * 1000;
    this.status = {
      evaluateIntervalSeconds,
      lastEvaluation: null,
      lastWrite: null,
      stalled: null,
      lastError: null,
      reverts: [],
      observation: null,
    };
    this.observer = new Observer(ctx, this.status, this.intervalMs);
    this.reverts = new Reverts(ctx, log, this.status);
  }

  private iso(): string {
    return new Date(this.ctx.now()).toISOString();
  }

  /** Evaluates on the interval (when it is not 0) until stop(). */
  start(): void {
    if (this.intervalMs === 0) return;
    this.stopped = false;
    this.schedule(0);
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.race([this.queue.catch(() => {}), sleep(graceMs)]);
  }

  /**
   * A new revision: evaluate soon (calls coalesce), once the sync in progress and the release
   * of waiting agents it started are over. The agents' new targets come first: an evaluation
   * fetches again and reads the store, which would only slow the release down, and it waits
   * for that sync anyway.
   */
  trigger(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    void this.ctx.sync
      .idle()
      .then(() => this.ctx.longpoll.idle())
      .then(() =>
        setImmediate(() => {
          this.scheduled = false;
          this.tick();
        }),
      );
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms).unref();
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.evaluate()
      .catch(() => {}) // recorded in status.lastError by evaluate
      .finally(() => this.schedule(this.intervalMs));
  }

  /** Runs `job` after every write in progress: one writer per process. */
  private serialized<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => {});
    return run;
  }

  private retry(): RetryOptions<Base> {
    return {
      random: this.ctx.random,
      onRefused: (attempt, base) =>
        this.log.info(
          { parent: base.parent, attempt },
          'the state branch moved; deciding again from the new state',
        ),
    };
  }

  /**
   * One evaluation: decide, and write the decision unless it is to wait. Undefined when it
   * waits for the rollout to be served, or stalls; a transient failure throws (and is retried
   * at the next evaluation).
   */
  evaluate(): Promise<Decision | undefined> {
    return this.serialized(async () => {
      try {
        const decision = (await this.stillStalled()) ? undefined : await this.evaluateOnce();
        this.status.lastError = null;
        return decision;
      } catch (e) {
        return await this.failed(e);
      }
    });
  }

  private async evaluateOnce(): Promise<Decision> {
    const written = await writeState(this.ctx.mirror, {
      ...this.retry(),
      now: this.ctx.now,
      read: () => this.observedBase(),
      decide: (base) => {
        const now = this.ctx.now();
        const decision = decide(base.policy, base.state, base.observations, now);
        return stepOf(decision, base.policy, base.state, now);
      },
    });
    const step = written.value;
    const decision = step.from;
    this.record(decision, written.base);
    if (written.commit !== undefined && step.kind === 'write') {
      await this.written(written.commit, step);
      // A new candidate may change no agent's target (a revert, a comment): decide on it now.
      if (decision.kind === 'start') this.trigger();
    }
    await this.reverts.reconcile();
    return decision;
  }

  /** What an evaluation that failed does next, by the error's kind. */
  private async failed(e: unknown): Promise<undefined> {
    const message = (e as Error).message;
    switch (kindOf(e)) {
      case 'waiting':
        this.status.lastError = null;
        this.status.lastEvaluation = {
          at: this.iso(),
          decision: 'wait',
          reason: message,
          revision: null,
          wave: null,
          gates: [],
          prometheus: null,
        };
        return undefined;
      case 'stalled':
        this.status.lastError = null;
        if (this.status.stalled !== message) {
          this.log.error({ err: message }, 'automatic rollout decisions stop until a person acts');
        }
        this.status.stalled = message;
        this.stalledOn = await this.tips();
        return undefined;
      case 'transient':
        this.status.lastError = { at: this.iso(), message };
        this.log.error({ err: message }, 'rollout evaluation failed');
        throw e;
    }
  }

  /**
   * A stalled rollout stays stalled until a person acts: until either branch's tip moves (a fix,
   * a revert, an operator action from anywhere). Then evaluation goes on.
   */
  private async stillStalled(): Promise<boolean> {
    if (this.status.stalled === null) return false;
    await this.ctx.sync.sync();
    if ((await this.tips()) === this.stalledOn) return true;
    this.status.stalled = null;
    return false;
  }

  private async tips(): Promise<string> {
    const { repo, stateRef, branchRef } = this.ctx.mirror;
    return `${await repo.readRef(stateRef)} ${await repo.readRef(branchRef)}`;
  }

  /** After a write: status, log, metrics, and the new state served at once. */
  private async written(commit: string, step: Extract<Step, { kind: 'write' }>): Promise<void> {
    this.status.lastWrite = { at: this.iso(), commit, subject: step.message.split('\n')[0]! };
    // Serve it at once: a rejection sends every agent back to stable now, waiters included.
    await this.ctx.sync.sync();
    const revision = step.from && 'revision' in step.from ? step.from.revision : undefined;
    this.log.info({ decision: step.decision, revision, commit }, 'wrote a rollout decision');
    if (step.from?.kind === 'reject') {
      this.ctx.metrics.rejections.inc({ wave: step.wave });
    }
  }

  /**
   * Sync: what a write starts from, the served state when it is the state branch's tip. A tip
   * that could not be served (edited into nonsense) stalls automatic decisions; an operator
   * action (`overInvalid`) writes the last good state, changed as asked, on top of it.
   */
  private async base(overInvalid: boolean): Promise<Base> {
    const mirror = this.ctx.mirror;
    const served = this.ctx.sync.served;
    if (!served) {
      throw new FleetwaveError(
        'NOT_READY',
        'no valid rollout state is served yet (see git.state.lastError)',
      );
    }
    const tip = await mirror.repo.readRef(mirror.stateRef);
    const branchTip = await mirror.repo.readRef(mirror.branchRef);
    if (branchTip === undefined) {
      throw new FleetwaveError(
        'FLEET_NOT_FOUND',
        `the fleet branch ${mirror.branchRef} does not exist`,
      );
    }
    const base: Base = {
      served,
      parent: served.stateCommit,
      state: served.state,
      policy: policyOf(served.stable.model),
      branchTip,
    };
    if (tip === undefined || tip === served.stateCommit) return base;
    const lastError = this.ctx.sync.status.state.lastError;
    if (lastError?.commit === tip) {
      if (overInvalid) return { ...base, parent: tip };
      throw new FleetwaveError(
        'ROLLOUT_STATE_INVALID',
        `the state branch's tip ${tip.slice(0, 12)} is not a rollout state that can be served ` +
          `(${lastError.errors.slice(0, 3).join('; ')}); serving ${served.stateCommit.slice(0, 12)} ` +
          'until a person fixes or reverts it, or an operator action writes over it',
      );
    }
    throw new FleetwaveError(
      'NOT_READY',
      `the state branch's tip ${tip.slice(0, 12)} is not applied yet`,
    );
  }

  /** Sync, then observe: the base an evaluation decides on, with what it observed. */
  private async observedBase(): Promise<ObservedBase> {
    // Never during a release of waiting agents: its git processes and the store's read would
    // only slow the answers down, and a few hundred ms change nothing to a decision.
    await this.ctx.longpoll.idle();
    await this.ctx.sync.sync();
    await this.ctx.longpoll.idle();
    const base = await this.base(false);
    return { ...base, observations: await this.observer.observe(base) };
  }

  private record(decision: Decision, base: ObservedBase): void {
    const { observations } = base;
    const evidence = decision.kind === 'start' ? undefined : decision.evidence;
    this.status.lastEvaluation = {
      at: this.iso(),
      decision: decision.kind,
      reason:
        decision.kind === 'wait' || decision.kind === 'reject'
          ? decision.reason
          : decision.kind === 'start' && decision.supersedes
            ? `supersedes ${decision.supersedes}`
            : null,
      revision:
        'revision' in decision ? decision.revision : (base.state.candidate?.revision ?? null),
      wave: evidence?.wave ?? null,
      gates: evidence?.gates ?? [],
      prometheus: observations.prometheus ? { ...observations.prometheus } : null,
    };
    if (decision.kind === 'reject') {
      this.reverts.evidence.set(decision.revision, describeDecision(decision, base.policy));
    }
    const c = base.state.candidate;
    const wave = c ? base.policy.waves[c.wave] : undefined;
    this.ctx.metrics.decisions.inc({ decision: decision.kind });
    this.ctx.metrics.evaluated({
      ...(c && wave
        ? {
            candidate: {
              wave: wave.name,
              index: c.wave,
              startedAt: Date.parse(c.waveStartedAt),
            },
          }
        : {}),
      gates: evidence?.gates ?? [],
      ...(observations.fleet
        ? {
            cohorts: { candidate: observations.fleet.candidate, stable: observations.fleet.stable },
          }
        : {}),
      paused: base.state.paused,
    });
  }

  /** The candidate's cohorts as GET /v1/status publishes them (observe.ts). */
  observation(): Promise<RolloutObservation | null> {
    return this.observer.published();
  }

  // --- Operators

  /**
   * An operator action, decided by the core (core/rollout/operator.ts) as the promote action
   * decides it, and written to the state branch like any decision. The admin token's promote
   * approves a wave marked `approval: manual`.
   */
  operate(action: OperatorAction, who: { actor: string; reason: string }): Promise<ActionResult> {
    return this.serialized(async () => {
      const request = { action, ...who, approves: true };
      let decided: OperatorDecision | undefined; // the first try's: a retry never promotes twice
      const written = await writeState(this.ctx.mirror, {
        ...this.retry(),
        now: this.ctx.now,
        read: () => this.operatorBase(),
        decide: (base) => {
          const step = operatorStep(request, base.state, base.policy, this.ctx.now(), {
            ...(decided ? { decided } : {}),
            ...(base.parent === base.served.stateCommit ? {} : { replaces: base.parent }),
          });
          decided ??= step.from;
          return step;
        },
      });
      const step = written.value;
      if (written.commit === undefined || step.kind !== 'write') {
        const reason = step.kind === 'write' ? '' : step.reason;
        if (step.kind === 'none' && step.conflict) {
          throw new FleetwaveError('ROLLOUT_CONFLICT', reason);
        }
        return {
          action,
          changed: false,
          stateCommit: written.base.parent,
          message: `nothing to change: ${reason}`,
        };
      }
      if (step.from?.kind === 'reject') {
        this.reverts.evidence.set(step.from.revision, `Rolled back ${byWhom(who)}`);
      }
      await this.written(written.commit, step);
      // A person acted: automatic decisions go on from what they wrote.
      this.status.stalled = null;
      if (action === 'rollback') await this.reverts.reconcile();
      return {
        action,
        changed: true,
        stateCommit: written.commit,
        message: step.message.split('\n')[0]!,
      };
    });
  }

  private async operatorBase(): Promise<Base> {
    await this.ctx.sync.sync();
    try {
      return await this.base(true);
    } catch (e) {
      if (!isFleetwaveError(e)) throw e;
      throw new FleetwaveError('ROLLOUT_CONFLICT', e.message);
    }
  }

  // --- Status

  /** The state branch's recent commits, newest first: what happened and why. */
  async history(limit = 20): Promise<object[]> {
    const mirror = this.ctx.mirror;
    const tip = await mirror.repo.readRef(mirror.stateRef);
    if (tip === undefined) return [];
    if (this.historyCache?.tip !== tip) {
      const entries = await branchLog(mirror, tip, Math.max(limit, 20));
      if (entries.length === 0) return [];
      this.historyCache = { tip, entries };
    }
    return this.historyCache.entries.slice(0, limit);
  }
}
