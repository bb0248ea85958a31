// The rollout loop (DESIGN §1, §2), as named steps in the manner of Flux's reconcilers:
// sync (fetch git, find the base to write on) → observe (the fleet's cohorts from the store of
// agent reports, Prometheus answers, the branch history) → decide (the pure core) → write (one
// commit on the state branch, pushed without force) → reconcile reverts. A refused push means someone else wrote first: fetch, decide
// again from their state, retry. After a rejection the revert of the rejected revision goes to
// the fleet branch (pushed, or as a pull request); reverts are reconciled on every evaluation,
// so a writer killed between the two steps loses nothing.

import { isFleetwaveError, FleetwaveError } from '../core/errors.ts';
import type { FleetModel } from '../core/fleet/model.ts';
import {
  applyDecision,
  decide,
  describeDecision,
  silentAfterMs,
  type Decision,
  type Observations,
  type RolloutPolicy,
} from '../core/rollout/decide.ts';
import type { GateResult } from '../core/rollout/gates/gate.ts';
import type { QueryOutcome } from '../core/rollout/gates/prometheus.ts';
import type { FleetObservation } from '../core/rollout/observations.ts';
import { serializeRolloutState, type RolloutState } from '../core/rollout/state.ts';
import { sameTargets } from '../core/target/same.ts';
import type { Reconciler } from './context.ts';
import { ensurePullRequest } from './github.ts';
import { runPrometheusGates } from '../rollout/prometheus.ts';
import { branchHistory } from '../rollout/history.ts';
import { hasRevert, makeRevert, revertMessage, subjectOf } from '../rollout/revert.ts';
import { writeState } from '../rollout/state.ts';
import { operatorDecision, type OperatorDecision } from '../core/rollout/operator.ts';
import type { Logger, ServedRollout } from './sync.ts';

/** Writes tried before giving up on one evaluation or action (each after a fetch). */
export const MAX_WRITE_ATTEMPTS = 6;
/** Rejections whose revert is checked on each evaluation (the newest). */
const MAX_REVERT_CHECKS = 20;

export type OperatorAction = 'pause' | 'resume' | 'promote' | 'rollback';

export interface ActionResult {
  action: OperatorAction;
  /** False when the state already was as asked (another writer got there first). */
  changed: boolean;
  stateCommit: string;
  message: string;
}

export interface RevertStatus {
  revision: string;
  mode: 'push' | 'pull-request';
  state: 'done' | 'pushed' | 'pull-request' | 'conflict' | 'failed';
  at: string;
  message: string;
  commit?: string;
  pullRequest?: { number: number; url: string };
}

export interface EngineStatus {
  /** Seconds between evaluations; 0 when only operator actions move the rollout. */
  evaluateIntervalSeconds: number;
  lastEvaluation: {
    at: string;
    decision: Decision['kind'];
    reason: string | null;
    revision: string | null;
    wave: string | null;
    gates: GateResult[];
    prometheus: Record<string, QueryOutcome> | null;
  } | null;
  lastWrite: { at: string; commit: string; subject: string } | null;
  /** Why automatic decisions are not written now; a person must act. */
  stalled: string | null;
  lastError: { at: string; message: string } | null;
  reverts: RevertStatus[];
  /** The candidate's cohorts at its wave, as last observed; null when nothing rolls out. */
  observation: RolloutObservation | null;
}

/**
 * What GET /v1/status publishes as `rollout.observation` and the promote action decides on: the
 * FleetObservation decide() gets (JSON-safe: strings and counts) and when it was made.
 */
export interface RolloutObservation extends FleetObservation {
  at: string;
}

interface Base {
  served: ServedRollout;
  /** The state branch's commit the next write goes on top of. */
  parent: string;
  state: RolloutState;
  policy: RolloutPolicy;
  branchTip: string;
}

export function policyOf(model: FleetModel): RolloutPolicy {
  return {
    pollIntervalSeconds: model.fleet.spec.pollIntervalSeconds,
    waves: model.fleet.spec.waves,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export class RolloutEngine {
  private readonly ctx: Reconciler;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private scheduled = false;
  /** Evidence of rejections decided here, for the revert's message. */
  private readonly evidence = new Map<string, string>();
  /** Rejected revisions whose revert is known to be on the fleet branch (or opened). */
  private readonly reverted = new Set<string>();
  private historyCache: { tip: string; entries: object[] } | undefined;
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

  /** A new revision: evaluate soon (calls coalesce). */
  trigger(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.tick();
    });
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

  /** One evaluation: decide, and write the decision unless it is to wait. */
  evaluate(): Promise<Decision | undefined> {
    return this.serialized(async () => {
      try {
        const decision = await this.evaluateOnce();
        this.status.lastError = null;
        return decision;
      } catch (e) {
        this.status.lastError = { at: this.iso(), message: (e as Error).message };
        this.log.error({ err: (e as Error).message }, 'rollout evaluation failed');
        throw e;
      }
    });
  }

  private async evaluateOnce(): Promise<Decision | undefined> {
    for (let attempt = 1; ; attempt++) {
      const base = await this.syncStep();
      if (typeof base === 'string') {
        this.status.stalled = base;
        return undefined;
      }
      this.status.stalled = null;
      const observations = await this.observeStep(base);
      const decision = this.decideStep(base, observations);
      if ((await this.writeStep(base, decision)) === 'refused') {
        await this.afterRefusedWrite(attempt);
        continue;
      }
      await this.reconcileReverts();
      return decision;
    }
  }

  /** Sync: the remote fetched, and the base a decision is written on (or why there is none). */
  private async syncStep(): Promise<Base | string> {
    await this.ctx.sync.sync();
    return this.base(false);
  }

  /** Decide: the pure core's decision, recorded in status and metrics. */
  private decideStep(base: Base, observations: Observations): Decision {
    const decision = decide(base.policy, base.state, observations, this.ctx.now());
    this.record(decision, base, observations);
    if (decision.kind === 'reject') {
      this.evidence.set(decision.revision, describeDecision(decision, base.policy));
    }
    return decision;
  }

  /** Write: the state the decision leads to, as one commit; 'refused' when someone wrote first. */
  private async writeStep(
    base: Base,
    decision: Decision,
  ): Promise<'written' | 'unchanged' | 'refused'> {
    const next = applyDecision(base.state, decision, this.ctx.now());
    if (serializeRolloutState(next) === serializeRolloutState(base.state)) return 'unchanged';
    const written = await this.write(base, next, describeDecision(decision, base.policy));
    if (written === undefined) return 'refused';
    this.log.info(
      {
        decision: decision.kind,
        revision: 'revision' in decision ? decision.revision : undefined,
        commit: written,
      },
      'wrote a rollout decision',
    );
    if (decision.kind === 'reject') {
      this.ctx.metrics.rejections.inc({
        wave: base.policy.waves[decision.wave]?.name ?? String(decision.wave),
      });
    }
    // A new candidate may change no agent's target (a revert, a comment): decide on it now.
    if (decision.kind === 'start') this.trigger();
    return 'written';
  }

  /** Someone else moved the state branch: back off (full jitter), or give up after the last try. */
  private async afterRefusedWrite(attempt: number): Promise<void> {
    if (attempt >= MAX_WRITE_ATTEMPTS) {
      throw new FleetwaveError(
        'ROLLOUT_WRITE_FAILED',
        `the state branch moved under every one of ${MAX_WRITE_ATTEMPTS} writes`,
      );
    }
    await this.backoff(attempt);
  }

  private backoff(attempt: number): Promise<void> {
    // Full jitter: replicas that collided do not collide again in step.
    return sleep(Math.round(this.ctx.random() * Math.min(2000, 50 * 2 ** attempt)));
  }

  /**
   * What a write starts from: the served state when it is the state branch's tip. A tip that
   * could not be served (edited into nonsense) stalls automatic decisions; an operator action
   * (`overInvalid`) writes the last good state, changed as asked, on top of it.
   */
  private async base(overInvalid: boolean): Promise<Base | string> {
    const mirror = this.ctx.mirror;
    const served = this.ctx.sync.served;
    if (!served) return 'no valid rollout state is served yet (see git.state.lastError)';
    const tip = await mirror.repo.readRef(mirror.stateRef);
    const branchTip = await mirror.repo.readRef(mirror.branchRef);
    if (branchTip === undefined) return `the fleet branch ${mirror.branchRef} does not exist`;
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
      return (
        `the state branch's tip ${tip.slice(0, 12)} is not a rollout state that can be served ` +
        `(${lastError.errors.slice(0, 3).join('; ')}); serving ${served.stateCommit.slice(0, 12)} ` +
        'until a person fixes or reverts it, or an operator action writes over it'
      );
    }
    return `the state branch's tip ${tip.slice(0, 12)} is not applied yet`;
  }

  /** Commits and pushes `next`; undefined when the push was refused (someone wrote first). */
  private async write(
    base: Base,
    next: RolloutState,
    message: string,
  ): Promise<string | undefined> {
    let commit: string;
    try {
      commit = await writeState(this.ctx.mirror, next, {
        parent: base.parent,
        message,
        now: new Date(this.ctx.now()),
      });
    } catch (e) {
      if (isFleetwaveError(e, 'GIT_PUSH_REJECTED')) {
        this.log.info(
          { parent: base.parent },
          'the state branch moved; deciding again from the new state',
        );
        return undefined;
      }
      throw e;
    }
    this.status.lastWrite = { at: this.iso(), commit, subject: message.split('\n')[0]! };
    // Serve it at once: a rejection sends every agent back to stable now, waiters included.
    await this.ctx.sync.sync();
    return commit;
  }

  private record(decision: Decision, base: Base, observations: Observations): void {
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

  // --- Observations

  /** Observe: the branch's history, the candidate's cohorts fleet-wide, Prometheus answers. */
  private async observeStep(base: Base): Promise<Observations> {
    const observations: Observations = {
      history: await branchHistory(this.ctx.mirror, base.branchTip, base.state),
    };
    const candidate = base.served.candidate;
    if (candidate && candidate.commit === base.state.candidate?.revision) {
      observations.sameTargets = sameTargets(candidate.model, base.served.stable.model);
    }
    let fleet: FleetObservation | undefined;
    try {
      fleet = await this.observeCandidate(base.served, base.policy);
    } catch (e) {
      observations.unavailable = `the store of agent reports is unavailable (${(e as Error).message})`;
      return observations;
    }
    if (!fleet) return observations;
    observations.fleet = fleet;
    const wave = base.policy.waves[fleet.wave]!;
    const queries = wave.gates?.prometheus ?? [];
    const url = this.ctx.config.prometheusUrl;
    if (queries.length > 0) {
      observations.prometheus = url
        ? await runPrometheusGates(url, queries)
        : Object.fromEntries(
            queries.map((q) => [q.name, { ok: false, error: 'no --prometheus-url is configured' }]),
          );
    }
    return observations;
  }

  /**
   * The served candidate's cohorts at its wave, now, over every agent in the store (whichever
   * replica it talks to), with the tallies of every check-in since the wave started. Kept as
   * status.observation.
   */
  private async observeCandidate(
    served: ServedRollout,
    policy: RolloutPolicy,
  ): Promise<FleetObservation | undefined> {
    const candidate = served.state.candidate;
    const wave = candidate ? policy.waves[candidate.wave] : undefined;
    if (!candidate || !wave || served.candidate?.commit !== candidate.revision) {
      this.status.observation = null;
      return undefined;
    }
    let aggregate;
    try {
      aggregate = await this.ctx.reports.cohorts({
        candidate: candidate.revision,
        stable: served.stable.commit,
        wave: candidate.wave,
        silentBefore: this.ctx.now() - silentAfterMs(policy, wave),
      });
    } catch (e) {
      this.status.observation = null;
      throw e;
    }
    const fleet: FleetObservation = {
      revision: candidate.revision,
      wave: candidate.wave,
      candidate: aggregate.candidate,
      stable: aggregate.stable,
      tally: aggregate.tally,
    };
    this.status.observation = { ...fleet, at: this.iso() };
    return fleet;
  }

  /**
   * The observation GET /v1/status publishes: the last evaluation's while it is younger than
   * the evaluate interval, else one made now (always, when the engine does not evaluate on its
   * own and the promote action decides on what it reads here).
   */
  async observation(): Promise<RolloutObservation | null> {
    const served = this.ctx.sync.served;
    if (!served) return null;
    const last = this.status.observation;
    const c = served.state.candidate;
    if (
      last &&
      c &&
      last.revision === c.revision &&
      last.wave === c.wave &&
      this.ctx.now() - Date.parse(last.at) < this.intervalMs
    ) {
      return last;
    }
    await this.observeCandidate(served, policyOf(served.stable.model)).catch(() => undefined);
    return this.status.observation;
  }

  // --- Reverts

  /** Every recent rejection that is on the fleet branch without its revert gets one. */
  private async reconcileReverts(): Promise<void> {
    const served = this.ctx.sync.served;
    if (!served) return;
    for (const rejection of served.state.rejected.slice(-MAX_REVERT_CHECKS)) {
      if (this.reverted.has(rejection.revision)) continue;
      try {
        await this.revert(rejection.revision, rejection.reason);
      } catch (e) {
        this.setRevert({
          revision: rejection.revision,
          mode: served.stable.model.fleet.spec.rollback?.revert ?? 'push',
          state: 'failed',
          at: this.iso(),
          message: (e as Error).message,
        });
        this.log.error(
          { revision: rejection.revision, err: (e as Error).message },
          'REVERT FAILED: the rejected revision is still on the fleet branch; retrying on the next evaluation',
        );
      }
    }
  }

  private setRevert(status: RevertStatus): void {
    const list = this.status.reverts.filter((r) => r.revision !== status.revision);
    list.push(status);
    this.status.reverts = list.slice(-MAX_REVERT_CHECKS);
  }

  private async revert(revision: string, reason: string): Promise<void> {
    const mirror = this.ctx.mirror;
    const repo = mirror.repo;
    const mode = this.ctx.sync.served?.stable.model.fleet.spec.rollback?.revert ?? 'push';
    for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt++) {
      const tip = await repo.readRef(mirror.branchRef);
      if (
        tip === undefined ||
        !(await mirror.has(revision)) ||
        !(await repo.isAncestor(revision, tip))
      ) {
        this.reverted.add(revision); // not on the branch (force-pushed away): nothing to undo
        return;
      }
      if (await hasRevert(repo, revision, tip)) {
        this.reverted.add(revision);
        if (!this.status.reverts.some((r) => r.revision === revision)) {
          this.setRevert({
            revision,
            mode,
            state: 'done',
            at: this.iso(),
            message: 'the revert is on the fleet branch',
          });
        }
        return;
      }
      const evidence =
        this.evidence.get(revision) ?? `fleetwave rejected ${revision.slice(0, 12)}: ${reason}`;
      const message = revertMessage(await subjectOf(repo, revision), revision, evidence);
      const made = await makeRevert(repo, {
        revision,
        onto: tip,
        message,
        now: new Date(this.ctx.now()),
      });
      if (!made.ok) {
        this.setRevert({
          revision,
          mode,
          state: 'conflict',
          at: this.iso(),
          message: made.conflict,
        });
        this.log.error(
          { revision, conflict: made.conflict },
          'REVERT CONFLICT: the rejected revision cannot be reverted mechanically; a person must revert it',
        );
        this.reverted.add(revision);
        return;
      }
      if (mode === 'pull-request') {
        await this.openPullRequest(revision, made.commit, message);
        return;
      }
      try {
        await repo.pushCommit(mirror.remote, made.commit, mirror.branchRef);
      } catch (e) {
        if (!isFleetwaveError(e, 'GIT_PUSH_REJECTED')) throw e;
        await this.ctx.sync.sync(); // someone pushed to the branch: revert on top of theirs
        await this.backoff(attempt);
        continue;
      }
      await repo.updateRef(mirror.branchRef, made.commit);
      this.reverted.add(revision);
      this.setRevert({
        revision,
        mode,
        state: 'pushed',
        at: this.iso(),
        commit: made.commit,
        message: message.split('\n')[0]!,
      });
      this.log.warn({ revision, commit: made.commit }, 'pushed the revert of a rejected revision');
      // The revert is a new revision: fetch it and evaluate it like any other.
      void this.ctx.sync.sync();
      return;
    }
    throw new FleetwaveError(
      'ROLLOUT_WRITE_FAILED',
      `the fleet branch moved under every one of ${MAX_WRITE_ATTEMPTS} revert pushes`,
    );
  }

  private async openPullRequest(revision: string, commit: string, message: string): Promise<void> {
    const mirror = this.ctx.mirror;
    const head = `fleetwave/revert-${revision.slice(0, 12)}`;
    try {
      await mirror.repo.pushCommit(mirror.remote, commit, `refs/heads/${head}`);
    } catch (e) {
      // Another writer pushed the branch first: its pull request is the one.
      if (!isFleetwaveError(e, 'GIT_PUSH_REJECTED')) throw e;
    }
    const [title, ...rest] = message.split('\n');
    const branch = mirror.branchRef.slice('refs/heads/'.length);
    const pull = await ensurePullRequest(
      this.ctx.config.github ?? { apiUrl: 'https://api.github.com' },
      {
        head,
        base: branch,
        title: title!,
        body:
          rest.join('\n').trim() + '\n\nOpened by fleetwave (`rollback.revert: pull-request`).\n',
      },
    );
    this.reverted.add(revision);
    this.setRevert({
      revision,
      mode: 'pull-request',
      state: 'pull-request',
      at: this.iso(),
      commit,
      pullRequest: { number: pull.number, url: pull.url },
      message: `${pull.created ? 'opened' : 'found'} pull request #${pull.number} from ${head}`,
    });
    this.log.warn({ revision, pull: pull.number, url: pull.url }, 'revert pull request');
  }

  // --- Operators

  /** An operator action, written to the state branch like any decision. */
  operate(action: OperatorAction, who: { actor: string; reason: string }): Promise<ActionResult> {
    return this.serialized(async () => {
      let fixed: OperatorDecision | undefined;
      for (let attempt = 1; ; attempt++) {
        await this.ctx.sync.sync();
        const base = await this.base(true);
        if (typeof base === 'string') throw new FleetwaveError('ROLLOUT_CONFLICT', base);
        const now = this.ctx.now();
        const by = `by ${who.actor}: ${who.reason}`;
        let next: RolloutState;
        let message: string;
        switch (action) {
          case 'pause':
          case 'resume': {
            next = { ...base.state, paused: action === 'pause' };
            message = `fleetwave: ${action} the rollout (operator)\n\n${by}\n`;
            break;
          }
          case 'promote':
          case 'rollback': {
            if (!fixed) {
              fixed = operatorDecision(action, base.state, base.policy, by);
              if (!fixed)
                throw new FleetwaveError(
                  'ROLLOUT_CONFLICT',
                  `nothing to ${action}: no candidate is rolling out`,
                );
            }
            next = applyDecision(base.state, fixed, now);
            const short = 'revision' in fixed ? fixed.revision.slice(0, 12) : '';
            message =
              fixed.kind === 'reject'
                ? `fleetwave: roll back ${short} at wave ${fixed.evidence.wave} (operator)\n\n${by}\n`
                : fixed.kind === 'complete'
                  ? `fleetwave: ${short} is stable (operator promote)\n\n${by}\n`
                  : `fleetwave: promote ${short} to wave ${base.policy.waves[fixed.wave]?.name} (operator)\n\n${by}\n`;
            if (fixed.kind === 'reject') this.evidence.set(fixed.revision, `Rolled back ${by}`);
            break;
          }
        }
        if (base.parent !== base.served.stateCommit) {
          message += `\nThe state branch's tip ${base.parent} could not be served; this replaces it with the last good state, changed as above.\n`;
        } else if (serializeRolloutState(next) === serializeRolloutState(base.state)) {
          return {
            action,
            changed: false,
            stateCommit: base.parent,
            message: `nothing to change: the rollout already is as asked`,
          };
        }
        const written = await this.write(base, next, message);
        if (written === undefined) {
          await this.afterRefusedWrite(attempt);
          continue;
        }
        if (fixed?.kind === 'reject') {
          this.ctx.metrics.rejections.inc({ wave: fixed.evidence.wave });
        }
        if (action === 'rollback') await this.reconcileReverts();
        return { action, changed: true, stateCommit: written, message: message.split('\n')[0]! };
      }
    });
  }

  // --- Status

  /** The state branch's recent commits, newest first: what happened and why. */
  async history(limit = 20): Promise<object[]> {
    const mirror = this.ctx.mirror;
    const tip = await mirror.repo.readRef(mirror.stateRef);
    if (tip === undefined) return [];
    if (this.historyCache?.tip === tip) return this.historyCache.entries.slice(0, limit);
    const r = await mirror.repo.exec([
      'log',
      '--first-parent',
      `--max-count=${Math.max(limit, 20)}`,
      '--format=%H%x1f%cI%x1f%an%x1f%B%x1e',
      tip,
      '--',
    ]);
    if (r.code !== 0) return [];
    const entries = r.stdout
      .split('\x1e')
      .map((e) => e.replace(/^\n/, ''))
      .filter((e) => e.includes('\x1f'))
      .map((e) => {
        const [commit, at, author, body] = e.split('\x1f') as [string, string, string, string];
        const [subject, ...rest] = body.trim().split('\n');
        return { commit, at, author, subject: subject ?? '', body: rest.join('\n').trim() };
      });
    this.historyCache = { tip, entries };
    return entries.slice(0, limit);
  }
}
