// Keeps the served rollout in step with git: fetch on an interval and on demand (webhooks),
// load and validate each new tip once, read rollout.yaml from the state branch, and switch
// what is served only to a state whose every revision is valid. Failures never take the last
// good rollout down: they show in status, logs and metrics.

import type { GitStatus } from '../wire/status.ts';
import { isFleetwaveError } from '../core/errors.ts';
import type { FleetModel } from '../core/fleet/model.ts';
import type { RolloutState } from '../core/rollout/state.ts';
import type { Mirror } from '../rollout/mirror.ts';
import type { Metrics } from './metrics.ts';
import { subjectOf } from '../rollout/revert.ts';
import { createState, readState, type StateRead } from '../rollout/state.ts';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ServedRevision {
  commit: string;
  model: FleetModel;
  /** The commit's subject line, for people (the status page). */
  subject?: string;
}

/** What the agents are served: a valid rollout state and the fleets of its revisions. */
export interface ServedRollout {
  stateCommit: string;
  state: RolloutState;
  stable: ServedRevision;
  candidate?: ServedRevision & { wave: number };
  /** When this rollout started being served (clock ms). */
  since: number;
}

/** What readRollout found at a state commit. */
interface RolloutRead {
  read: StateRead;
  stable?: ServedRevision;
  candidate?: ServedRevision & { wave: number };
  /** Why the state cannot be served (when `read` is ok). */
  errors: string[];
}

/** `git` in GET /v1/status: the remote, the fleet branch and the state branch. */
export type SyncStatus = GitStatus;
export type RevisionAttempt = NonNullable<GitStatus['branch']['lastAttempted']>;

/** A URL without its user:password part, for status and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

export class FleetSync {
  private readonly mirror: Mirror;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly onChange: (served: ServedRollout) => void;
  private readonly onBranch: ((tip: string) => void) | undefined;
  private readonly intervalMs: number;
  private readonly branch: string;
  private servedRollout: ServedRollout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** A push webhook arrived since the last fetch began. */
  private pushed = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly status: SyncStatus;

  constructor(options: {
    mirror: Mirror;
    metrics: Metrics;
    log: Logger;
    now: () => number;
    intervalSeconds: number;
    branch: string;
    stateBranch: string;
    onChange: (served: ServedRollout) => void;
    /** A new valid tip of the fleet branch was applied (the rollout engine evaluates). */
    onBranch?: (tip: string) => void;
  }) {
    this.mirror = options.mirror;
    this.metrics = options.metrics;
    this.log = options.log;
    this.now = options.now;
    this.onChange = options.onChange;
    this.onBranch = options.onBranch;
    this.intervalMs = options.intervalSeconds * 1000;
    this.branch = options.branch;
    this.status = {
      remote: {
        url: redactUrl(options.mirror.remote),
        reachable: null,
        lastFetchAt: null,
        lastSuccessAt: null,
        lastError: null,
        consecutiveFailures: 0,
      },
      branch: {
        name: options.branch,
        tip: null,
        lastApplied: null,
        lastAttempted: null,
        forcePush: null,
      },
      state: { branch: options.stateBranch, commit: null, lastError: null },
    };
  }

  get served(): ServedRollout | undefined {
    return this.servedRollout;
  }

  /** Syncs now, then on the interval until stop(). */
  start(): Promise<void> {
    this.stopped = false;
    return this.sync();
  }

  /** Stops the interval; waits for a sync in progress, but not longer than `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running.catch(() => {}),
      new Promise((resolve) => (timeout = setTimeout(resolve, graceMs).unref())),
    ]);
    clearTimeout(timeout);
  }

  /** Settles once no sync is in progress, without asking for one (sync() would). */
  idle(): Promise<void> {
    return this.running?.catch(() => {}) ?? Promise.resolve();
  }

  /**
   * Fetches now. Calls that arrive during a sync coalesce into one more sync after it; the
   * promise settles when a sync that started after the call has finished.
   */
  sync(options: { pushed?: boolean } = {}): Promise<void> {
    // A push webhook: the next fetch goes straight for both branches (Mirror.fetch).
    if (options.pushed) this.pushed = true;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = (async () => {
      do {
        this.again = false;
        await this.once();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
      if (!this.stopped) this.timer = setTimeout(() => void this.sync(), this.intervalMs).unref();
    });
    return this.running;
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  private async once(): Promise<void> {
    const started = this.now();
    const remote = this.status.remote;
    remote.lastFetchAt = this.iso();
    let tips;
    const stopTimer = this.metrics.fetchDuration.startTimer();
    try {
      const pushed = this.pushed;
      this.pushed = false;
      tips = await this.mirror.fetch(pushed);
      stopTimer();
      this.metrics.fetches.inc({ result: 'ok' });
      this.metrics.remoteUp.set(1);
      this.metrics.lastFetchSuccess.set(started / 1000);
      if (remote.reachable === false)
        this.log.info({ remote: remote.url }, 'the fleet repository is reachable again');
      remote.reachable = true;
      remote.lastSuccessAt = remote.lastFetchAt;
      remote.lastError = null;
      remote.consecutiveFailures = 0;
    } catch (e) {
      stopTimer();
      this.metrics.fetches.inc({ result: 'failed' });
      this.metrics.remoteUp.set(0);
      remote.reachable = false;
      remote.lastError = (e as Error).message;
      remote.consecutiveFailures++;
      this.log.warn(
        { remote: remote.url, err: remote.lastError, failures: remote.consecutiveFailures },
        this.servedRollout
          ? 'fetching the fleet repository failed; still serving the last good rollout'
          : `cannot read the fleet repository ${remote.url}: ${remote.lastError}; nothing is served until it can be read (retrying every ${this.intervalMs / 1000} s)`,
      );
      return;
    }
    // Both branches are read at once (their git processes overlap); they are applied, logged
    // and served in order all the same: the fleet branch first, then the rollout state.
    const state = tips.state;
    const reading =
      state !== undefined &&
      state !== this.servedRollout?.stateCommit &&
      state !== this.status.state.lastError?.commit
        ? this.readRollout(state)
        : undefined;
    reading?.catch(() => {}); // awaited below unless applyBranch throws first
    try {
      await this.applyBranch(tips.branch);
      await this.applyState(tips.state, reading);
    } catch (e) {
      // Git failing locally (disk, a missing object): transient, logged, retried next interval.
      this.log.error({ err: (e as Error).message }, `sync failed; ${this.fallback()}`);
      this.recordStateError(null, [(e as Error).message]);
    }
  }

  private async applyBranch(tip: string | undefined): Promise<void> {
    const status = this.status.branch;
    if (tip === undefined) {
      if (status.tip !== null || status.lastAttempted === null) {
        this.log.error({ branch: this.branch }, 'the fleet branch does not exist on the remote');
      }
      status.tip = null;
      return;
    }
    if (tip === status.tip) return;
    status.tip = tip;
    const loading = this.mirror.load(tip); // read while the ancestry is checked
    const lastApplied = status.lastApplied?.revision;
    if (
      lastApplied !== undefined &&
      lastApplied !== tip &&
      !(await this.mirror.repo.isAncestor(lastApplied, tip))
    ) {
      status.forcePush = { from: lastApplied, to: tip, at: this.iso() };
      this.metrics.forcePushes.inc();
      this.log.error(
        { branch: this.branch, from: lastApplied, to: tip },
        `FORCE PUSH: the tip of ${this.branch} does not descend from the last applied revision; history was rewritten`,
      );
    }
    const loaded = await loading;
    status.lastAttempted = {
      revision: tip,
      at: this.iso(),
      valid: loaded.valid,
      errors: loaded.valid ? [] : loaded.errors,
    };
    this.metrics.branchTipValid.set(loaded.valid ? 1 : 0);
    if (!loaded.valid) {
      this.metrics.revisionsRefused.inc({ kind: 'fleet' });
      this.log.error(
        { branch: this.branch, revision: tip, errors: loaded.errors.slice(0, 20) },
        'the tip of the fleet branch is invalid; it will not be served',
      );
      return;
    }
    status.lastApplied = { revision: tip, at: this.iso() };
    this.setRevisionInfo();
    this.log.info({ branch: this.branch, revision: tip }, 'applied the tip of the fleet branch');
    this.onBranch?.(tip);
  }

  /** `reading`: readRollout(tip), when it was started already. */
  private async applyState(
    tip: string | undefined,
    reading: Promise<RolloutRead> | undefined,
  ): Promise<void> {
    let commit = tip;
    if (commit === undefined) {
      const branchTip = this.status.branch.tip;
      if (branchTip === null) return;
      const created = await createState(
        this.mirror,
        branchTip,
        this.branch,
        new Date(this.now()),
      ).catch((e: unknown) => {
        if (isFleetwaveError(e)) {
          this.recordStateError(null, [e.message]);
          return null;
        }
        throw e;
      });
      if (created === null) return;
      if (created === undefined) {
        this.again = true; // another writer created it first: read theirs
        return;
      }
      this.log.info(
        { branch: this.status.state.branch, commit: created },
        'created the rollout state branch',
      );
      commit = created;
    }
    if (commit === this.servedRollout?.stateCommit) return;
    if (commit === this.status.state.lastError?.commit) return; // already refused
    this.status.state.commit = commit;
    const { read, stable, candidate, errors } = await (reading ?? this.readRollout(commit));
    if (!read.ok) {
      this.recordStateError(commit, read.errors);
      return;
    }
    if (!stable || errors.length > 0) {
      this.recordStateError(commit, errors);
      return;
    }
    const served: ServedRollout = {
      stateCommit: commit,
      state: read.state,
      stable,
      since: this.now(),
    };
    if (candidate) served.candidate = candidate;
    await Promise.all([
      this.mirror.keep('stable', stable.commit),
      candidate && this.mirror.keep('candidate', candidate.commit),
    ]);
    this.servedRollout = served;
    this.status.state.lastError = null;
    this.setRevisionInfo();
    this.log.info(
      {
        stateCommit: commit,
        stable: stable.commit,
        candidate: candidate?.commit,
        wave: candidate?.wave,
      },
      'serving a new rollout state',
    );
    this.onChange(served);
  }

  /**
   * rollout.yaml at `commit` and the revisions it names, each loaded (read and validated), with
   * what makes the state unservable: the revisions are read at once.
   */
  private async readRollout(commit: string): Promise<RolloutRead> {
    const read = await readState(this.mirror, commit);
    if (!read.ok) return { read, errors: [] };
    const want = read.state.candidate;
    const [stable, candidate] = await Promise.all([
      this.loadServed('stable', read.state.stable),
      want && this.loadServed('candidate', want.revision),
    ]);
    const errors = [...stable.errors, ...(candidate?.errors ?? [])];
    const result: RolloutRead = { read, errors };
    if (stable.revision) result.stable = stable.revision;
    if (want) {
      if (candidate?.revision) result.candidate = { ...candidate.revision, wave: want.wave };
      const waves = stable.revision?.model.fleet.spec.waves.length ?? Infinity;
      if (want.wave >= waves) {
        errors.push(
          `candidate.wave: ${want.wave} is past the last wave of the stable policy (${waves} waves)`,
        );
      }
    }
    return result;
  }

  private async loadServed(
    role: string,
    commit: string,
  ): Promise<{ revision?: ServedRevision; errors: string[] }> {
    // Asked at once; for a commit that is not there, the answers of the other two are unused.
    const loading = this.mirror.load(commit);
    loading.catch(() => {}); // a missing commit's load fails: `has` says why
    const subject = subjectOf(this.mirror.repo, commit);
    if (!(await this.mirror.has(commit))) {
      return { errors: [`${role} revision ${commit} is not in the repository`] };
    }
    const loaded = await loading;
    if (!loaded.valid) {
      return {
        errors: [`${role} revision ${commit} is invalid:`, ...loaded.errors.map((e) => `  ${e}`)],
      };
    }
    return { revision: { commit, model: loaded.model, subject: await subject }, errors: [] };
  }

  private recordStateError(commit: string | null, errors: string[]): void {
    this.status.state.lastError = { commit, at: this.iso(), errors };
    this.metrics.revisionsRefused.inc({ kind: 'state' });
    this.log.error(
      { stateCommit: commit, errors: errors.slice(0, 20) },
      `the rollout state cannot be served; ${this.fallback()}`,
    );
  }

  /** What agents get meanwhile: there is no last good rollout before the first one. */
  private fallback(): string {
    return this.servedRollout
      ? 'still serving the last good rollout'
      : 'nothing is served until a valid rollout is read';
  }

  private setRevisionInfo(): void {
    const info = this.metrics.revisionInfo;
    info.reset();
    const applied = this.status.branch.lastApplied?.revision;
    if (applied) info.set({ role: 'branch', revision: applied }, 1);
    if (this.servedRollout) {
      info.set({ role: 'stable', revision: this.servedRollout.stable.commit }, 1);
      if (this.servedRollout.candidate) {
        info.set({ role: 'candidate', revision: this.servedRollout.candidate.commit }, 1);
      }
    }
  }
}
