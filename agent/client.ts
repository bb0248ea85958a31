// The reference agent as a library: enroll, then check in forever (long-polling with
// If-None-Match), apply each new target only after its artifact is verified (sha256, and the
// Release's signature with a key trusted here: agent/signature.ts) and its secretRefs
// resolved (agent/secrets.ts: only --apply, or the installer's config file, sees the values),
// remember the last applied target on disk, and report health with every check-in. Errors back
// off with full jitter, honour Retry-After and rotate through the reconciler URLs. A target that
// fails for a passing reason (a download reset) is retried until the target changes, reported
// as `retrying`. With `install` (agent/install/) the agent installs, switches, restarts and
// watches the software itself, and switches back when the new version fails its watch.
//
//   const agent = new Agent({ urls, id, labels, enrollToken, cacheDir, apply: 'systemctl …' });
//   await agent.start();   // throws CACHE_UNWRITABLE before anything else happens
//   …
//   await agent.stop();

import type { KeyObject } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import type { Labels, Target } from '../core/target/model.ts';
import type { CheckinBody } from '../wire/checkin.ts';
import type { Health } from '../wire/health.ts';
import { applyEnv, childEnv, describeResult, healthOf, runCommand } from './apply.ts';
import { fetchArtifact } from './artifact.ts';
import { backoffDelay, pollDelay } from './backoff.ts';
import { TargetCache, writeFileAtomic, type CachedState } from './cache.ts';
import { systemClock, type Clock } from './clock.ts';
import { AgentError, describe } from './errors.ts';
import { Installer, type InstallerOptions } from './install/installer.ts';
import { checkin, enroll } from './protocol.ts';
import { DEFAULT_RETRY, failureOf, retryAfter, type Retry, type RetryPolicy } from './retry.ts';
import { resolveSecrets } from './secrets.ts';
import {
  checkSignaturePolicy,
  trustedKeysOf,
  verifyArtifactSignature,
  type TrustedKeys,
} from './signature.ts';

export interface ApplyContext {
  /** The target with its secretRefs resolved: never logged, reported or cached. */
  target: Target;
  /** The verified artifact. */
  artifactPath: string;
  /** The target (secrets resolved) as JSON on disk, mode 0600, removed once apply returns. */
  targetFile: string;
}

/** The built-in installer's settings (agent/install/installer.ts); env and dispatcher are the agent's. */
export type InstallOptions = Omit<InstallerOptions, 'env' | 'dispatcher'>;

export interface AgentOptions {
  /** Reconciler base URLs, tried in turn: an error moves to the next one. */
  urls: readonly string[];
  id: string;
  labels: Labels;
  enrollToken?: string | undefined;
  cacheDir: string;
  /** A shell command (target JSON on stdin, FLEETWAVE_* env), or a function; throw to fail. */
  apply?: string | ((context: ApplyContext) => Promise<void>) | undefined;
  /** A shell command (exit 0 ok, 1 degraded, else failed), or a function. */
  health?: string | (() => Promise<Health>) | undefined;
  /**
   * The built-in installer instead of `apply`: unpack into installDir/versions/<version>, write
   * the config file, switch `current`, restart (run or service), watch, switch back on failure.
   */
  install?: InstallOptions | undefined;
  /** For every request (reconciler and artifacts): connection limits, a private CA, tests. */
  dispatcher?: Dispatcher | undefined;
  clock?: Clock | undefined;
  random?: (() => number) | undefined;
  /** Long-poll wait asked of the server; default: the target's pollAfterSeconds, or 30. */
  waitSeconds?: number | undefined;
  /** Timeout of each request beyond the long-poll wait (headers, and between body chunks). */
  timeoutMs?: number | undefined;
  applyTimeoutMs?: number | undefined;
  healthTimeoutMs?: number | undefined;
  /**
   * After a failed check-in (agent/retry.ts): backoff of passing failures, the cap of a
   * Retry-After, and the interval of retries after a refusal (stalledMs).
   */
  backoff?: Partial<RetryPolicy> | undefined;
  /**
   * Tries of one target before the agent stops asking for it (until the target changes). A
   * failure that may pass (a download reset, a 5xx) does not count: it is retried with backoff
   * until the target changes.
   */
  maxApplyAttempts?: number | undefined;
  maxArtifactBytes?: number | undefined;
  maxRedirects?: number | undefined;
  /**
   * Public keys (PEM text or KeyObjects; ECDSA as cosign makes them, or Ed25519) by the names
   * Releases give as `signature.keyRef` (`default` when they give none). A signed artifact is
   * applied only when its signature verifies with the key it names (agent/signature.ts).
   */
  trustedKeys?: Readonly<Record<string, KeyObject | string>> | undefined;
  /** Refuse an artifact whose Release does not sign it (ARTIFACT_SIGNATURE_INVALID). */
  requireSignatures?: boolean | undefined;
  /**
   * The agent's environment (default: process.env): where `env` secrets and VAULT_ADDR,
   * VAULT_TOKEN, VAULT_NAMESPACE are read. Commands it runs (--apply, --health, the installer's
   * hook and child) get only its allowlisted part (childEnv in apply.ts) and `passEnv`.
   */
  env?: NodeJS.ProcessEnv | undefined;
  /** More variables of `env` the commands may see (--pass-env). */
  passEnv?: readonly string[] | undefined;
  /** The directory `file` secretRefs are relative to (default: /etc/fleetwave/secrets). */
  secretDir?: string | undefined;
  onEvent?: ((event: AgentEvent) => void) | undefined;
}

export type AgentEvent =
  | { kind: 'started'; cached: Target | undefined; cacheProblem?: string }
  | { kind: 'enrolled'; url: string }
  | { kind: 'target'; url: string; target: Target }
  | { kind: 'unchanged'; url: string }
  | { kind: 'applied'; target: Target }
  | {
      kind: 'apply-failed';
      target: Target;
      error: AgentError;
      attempts: number;
      gaveUp: boolean;
      /** A passing failure: tried again after a backoff, for as long as the target stays. */
      retrying: boolean;
    }
  /** The new version passed its health watch. */
  | { kind: 'watch-passed'; target: Target }
  /** The new version failed its health watch and the agent switched back to `to`. */
  | { kind: 'rolled-back'; from: Target; to: Target; reason: string }
  /** The new version failed its health watch and there was nothing to switch back to. */
  | { kind: 'watch-failed'; target: Target; reason: string; error?: AgentError }
  /** A check-in failed; `retry` is what follows from the failure's kind (agent/retry.ts). */
  | {
      kind: 'error';
      url: string;
      error: AgentError;
      retry: Retry['kind'];
      retryInMs: number;
      nextUrl: string;
    }
  | { kind: 'cache-error'; error: AgentError }
  | { kind: 'stopped' };

/** A target the agent could not verify or apply, reported as failed until the target moves. */
interface Failure {
  etag: string;
  version: string;
  message: string;
  attempts: number;
  /** A passing failure: reported as `retrying`, tried again until the target changes. */
  retrying?: boolean;
  /** It was installed, failed its health watch, and the previous version runs again. */
  rolledBack?: boolean;
  reason?: string;
}

export interface AgentStatus {
  current: Target | undefined;
  failure: Readonly<Failure> | undefined;
  lastError: AgentError | undefined;
  url: string;
  consecutiveErrors: number;
  checkins: number;
}

const DEFAULT_WAIT_SECONDS = 30;
const APPLY_TARGET_FILE = 'apply-target.json';

export class Agent {
  private readonly options: AgentOptions;
  private readonly cache: TargetCache;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: RetryPolicy;
  private readonly trustedKeys: TrustedKeys;
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;
  private token: string | undefined;
  private urlIndex = 0;
  private state: CachedState | undefined;
  /** The artifact of the target before the current one, kept for a quick rollback. */
  private previousArtifact: string | undefined;
  private readonly installer: Installer | undefined;
  /** The health watch after a switch, running beside the check-ins. */
  private watch: { target: Target; controller: AbortController; done: Promise<void> } | undefined;
  /** Aborted to end a held check-in early (a rollback to report at once). */
  private wake = new AbortController();
  private failure: Failure | undefined;
  private cacheError: AgentError | undefined;
  private lastError: AgentError | undefined;
  private consecutiveErrors = 0;
  private pollAfterSeconds: number | undefined;
  private checkins = 0;

  constructor(options: AgentOptions) {
    if (options.urls.length === 0) throw new Error('an agent needs at least one reconciler URL');
    this.options = options;
    this.cache = new TargetCache(options.cacheDir);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.backoff = { ...DEFAULT_RETRY, ...options.backoff };
    // Throws (naming the key) for a key that is not an ECDSA or Ed25519 public key.
    this.trustedKeys = trustedKeysOf(options.trustedKeys);
    if (options.install && options.apply !== undefined)
      throw new Error('an agent installs with its built-in installer (install) or apply, not both');
    if (options.install)
      this.installer = new Installer({
        // An install hook is bounded like --apply, a probe like --health.
        hookTimeoutMs: options.applyTimeoutMs,
        probeTimeoutMs: options.healthTimeoutMs,
        ...options.install,
        env: this.commandBaseEnv(),
        dispatcher: options.dispatcher,
      });
  }

  /** What commands see of the agent's environment: never its tokens. */
  private commandBaseEnv(): NodeJS.ProcessEnv {
    return childEnv(this.options.env ?? process.env, this.options.passEnv);
  }

  get current(): Target | undefined {
    return this.state?.target;
  }

  status(): AgentStatus {
    return {
      current: this.state?.target,
      failure: this.failure,
      lastError: this.lastError,
      url: this.options.urls[this.urlIndex]!,
      consecutiveErrors: this.consecutiveErrors,
      checkins: this.checkins,
    };
  }

  /** Prepares the cache (throws CACHE_UNWRITABLE), loads the last target, starts checking in. */
  async start(): Promise<void> {
    if (this.loop) throw new Error('the agent is already started');
    await this.cache.prepare();
    // A crash during --apply left the resolved target behind: it must not outlive the apply.
    await rm(join(this.cache.dir, APPLY_TARGET_FILE), { force: true });
    const { state, problem } = await this.cache.read();
    this.state = state;
    this.previous = state?.previous;
    this.previousArtifact = state?.previous?.artifactPath;
    if (this.installer) {
      await this.installer.prepare();
      // `current` follows the recorded target; a version missing here is installed again.
      if (state && !(await this.installer.resume(state.target))) this.state = undefined;
    }
    this.pollAfterSeconds = state?.target.pollAfterSeconds;
    this.emit({
      kind: 'started',
      cached: state?.target,
      ...(problem === undefined ? {} : { cacheProblem: problem }),
    });
    this.loop = this.run();
  }

  /** Ends the loop: an in-flight check-in or download is aborted; a running --apply finishes. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
    this.loop = undefined;
    await this.cancelWatch();
    await this.installer?.stop();
  }

  private emit(event: AgentEvent): void {
    this.options.onEvent?.(event);
  }

  private get stopping(): boolean {
    return this.controller.signal.aborted;
  }

  private requestOptions() {
    return {
      dispatcher: this.options.dispatcher,
      timeoutMs: this.options.timeoutMs ?? 30_000,
      signal: AbortSignal.any([this.controller.signal, this.wake.signal]),
      now: () => this.clock.now(),
    };
  }

  /** Ends a held check-in (or the sleep before the next) so news is reported at once. */
  private wakeUp(): void {
    this.wake.abort();
  }

  private async run(): Promise<void> {
    const urls = this.options.urls;
    // Bounded by stop(): every iteration awaits I/O or a sleep that the abort ends.
    while (!this.stopping) {
      const url = urls[this.urlIndex]!;
      const started = this.clock.now();
      let delay: number;
      try {
        delay = await this.exchange(url, started);
        this.consecutiveErrors = 0;
        this.lastError = undefined;
      } catch (e) {
        if (this.stopping) break;
        if (this.wake.signal.aborted) {
          this.wake = new AbortController();
          continue;
        }
        const error =
          e instanceof AgentError
            ? e
            : new AgentError('AGENT_UNREACHABLE', `${url}: ${describe(e)}`);
        // What follows is the failure's kind: back off, wait as asked, or retry a refusal only
        // slowly. A credential the server no longer knows (its key changed): enroll again.
        const retry = retryAfter(
          this.backoff,
          failureOf(error, this.token !== undefined),
          this.consecutiveErrors,
          // Not told how long: one poll interval, the server's pace.
          (this.pollAfterSeconds ?? DEFAULT_WAIT_SECONDS) * 1000,
          this.random,
        );
        if (error.status === 401) this.token = undefined;
        delay = retry.delayMs;
        this.consecutiveErrors++;
        this.lastError = error;
        this.urlIndex = (this.urlIndex + 1) % urls.length;
        this.emit({
          kind: 'error',
          url,
          error,
          retry: retry.kind,
          retryInMs: delay,
          nextUrl: urls[this.urlIndex]!,
        });
      }
      if (delay > 0 && !this.stopping)
        await this.clock.sleep(delay, AbortSignal.any([this.controller.signal, this.wake.signal]));
      if (this.wake.signal.aborted) this.wake = new AbortController();
    }
    this.emit({ kind: 'stopped' });
  }

  /** One check-in and what follows from it; returns the delay before the next one. */
  private async exchange(url: string, started: number): Promise<number> {
    const options = this.requestOptions();
    if (this.token === undefined) {
      this.token = await enroll(
        url,
        { id: this.options.id, labels: this.options.labels, enrollToken: this.options.enrollToken },
        options,
      );
      this.emit({ kind: 'enrolled', url });
    }
    const body: CheckinBody = { id: this.options.id, labels: this.options.labels };
    if (this.state)
      body.current = { etag: this.state.target.etag, version: this.state.target.version };
    body.health = await this.health();
    const has: string[] = this.state ? [this.state.target.etag] : [];
    if (this.gaveUp) has.push(this.failure!.etag);
    const wait = this.options.waitSeconds ?? this.pollAfterSeconds ?? DEFAULT_WAIT_SECONDS;
    const answer = await checkin(url, this.token, body, has, wait, options);
    this.checkins++;
    if (answer.kind === 'unchanged') {
      this.emit({ kind: 'unchanged', url });
      if (answer.pollAfterSeconds !== undefined) this.pollAfterSeconds = answer.pollAfterSeconds;
      // The target moved back to what runs here (a rollback): the failed one is history.
      if (this.failure && answer.etag !== undefined && answer.etag === this.state?.target.etag)
        this.failure = undefined;
      // Check-ins start at most once per wait asked: a poll answered early (a server shutting
      // down answers every held poll at once) is not repeated at once.
      return pollDelay(wait * 1000, this.clock.now() - started, this.random);
    }
    const target = answer.target;
    this.emit({ kind: 'target', url, target });
    this.pollAfterSeconds = target.pollAfterSeconds;
    if (target.etag === this.state?.target.etag) {
      this.failure = undefined;
      return 0;
    }
    const ok = await this.applyTarget(target);
    if (ok) return 0; // report the new target at once
    return backoffDelay(this.backoff, this.failure!.attempts - 1, this.random);
  }

  private get maxApplyAttempts(): number {
    return this.options.maxApplyAttempts ?? 3;
  }

  /** Whether the failed target is no longer tried (until the reconciler serves another). */
  private get gaveUp(): boolean {
    const f = this.failure;
    return f !== undefined && !f.retrying && (f.rolledBack || f.attempts >= this.maxApplyAttempts);
  }

  private async health(): Promise<Health> {
    const f = this.failure;
    // Retrying: what runs is the old target (the check-in says so), and the gates count this
    // agent as not having applied the new one rather than as failed.
    if (f?.retrying) {
      return {
        status: 'retrying',
        message: f.message.slice(0, 500),
        retryingTarget: { etag: f.etag, version: f.version },
        attempts: f.attempts,
      };
    }
    if (f) {
      return {
        status: 'failed',
        message: f.message.slice(0, 500),
        failedTarget: { etag: f.etag, version: f.version },
        ...(f.rolledBack ? { rolledBack: true, reason: (f.reason ?? '').slice(0, 500) } : {}),
      };
    }
    let report: Health = { status: 'ok' };
    const health = this.options.health;
    if (this.installer) {
      report = await this.installer.health();
    } else if (typeof health === 'string') {
      report = healthOf(
        await runCommand(health, {
          env: this.commandEnv(),
          timeoutMs: this.options.healthTimeoutMs ?? 30_000,
        }),
      );
    } else if (health) {
      try {
        report = await health();
      } catch (e) {
        report = { status: 'failed', message: `health check threw: ${describe(e)}` };
      }
    }
    if (this.cacheError && report.status === 'ok')
      report = { ...report, status: 'degraded', message: this.cacheError.message.slice(0, 500) };
    return report;
  }

  private commandEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...this.commandBaseEnv(),
      FLEETWAVE_AGENT_ID: this.options.id,
    };
    if (this.state) {
      env.FLEETWAVE_VERSION = this.state.target.version;
      env.FLEETWAVE_ETAG = this.state.target.etag;
      env.FLEETWAVE_ARTIFACT = this.state.artifactPath;
    }
    return env;
  }

  /**
   * Verifies and applies a target. Nothing is recorded unless every step succeeded: the
   * artifact's sha256 and its signature (agent/signature.ts), then the config's secretRefs resolved on this machine (SECRET_UNRESOLVED),
   * then --apply. A failure leaves the last good target in place.
   */
  private async applyTarget(target: Target): Promise<boolean> {
    // A watch of the version before is moot now (a rollback it started finishes first).
    await this.cancelWatch();
    try {
      // Unsigned under --require-signatures, or a key not trusted here: refused before download.
      checkSignaturePolicy(
        target.artifact,
        this.trustedKeys,
        this.options.requireSignatures ?? false,
      );
      const artifactPath = await fetchArtifact({
        url: target.artifact.url,
        sha256: target.artifact.sha256,
        dir: this.cache.artifactsDir,
        dispatcher: this.options.dispatcher,
        signal: this.controller.signal,
        timeoutMs: this.options.timeoutMs ?? 30_000,
        ...(this.options.maxArtifactBytes === undefined
          ? {}
          : { maxBytes: this.options.maxArtifactBytes }),
        ...(this.options.maxRedirects === undefined
          ? {}
          : { maxRedirects: this.options.maxRedirects }),
      });
      // The bytes on disk, hash-checked, must also carry the Release's signature.
      if (target.artifact.signature) {
        await verifyArtifactSignature({
          signature: target.artifact.signature,
          artifactPath,
          keys: this.trustedKeys,
          dispatcher: this.options.dispatcher,
          signal: this.controller.signal,
          timeoutMs: this.options.timeoutMs ?? 30_000,
          maxRedirects: this.options.maxRedirects,
        });
      }
      // Only --apply (or the config file) sees the secrets: the cache, events and check-ins
      // keep the references.
      const resolved = await this.resolveSecrets(target);
      if (this.installer) {
        await this.installer.install(target, resolved.config, artifactPath);
      } else {
        const targetFile = join(this.cache.dir, APPLY_TARGET_FILE);
        // writeFileAtomic creates the file 0600 and renames it over the old one: always 0600.
        await writeFileAtomic(targetFile, JSON.stringify(resolved, null, 2) + '\n');
        try {
          await this.runApply({ target: resolved, artifactPath, targetFile });
        } finally {
          // The secrets were for this apply only.
          await rm(targetFile, { force: true });
        }
      }
      const before = this.state;
      if (before && before.target.etag !== target.etag)
        this.previous = { target: before.target, artifactPath: before.artifactPath };
      if (this.previous && this.previous.artifactPath !== artifactPath)
        this.previousArtifact = this.previous.artifactPath;
      this.state = { target, artifactPath, appliedAt: this.clock.now() };
      this.failure = undefined;
      await this.record();
      await this.pruneArtifacts();
      this.emit({ kind: 'applied', target });
      if (this.installer) this.startWatch(target);
      return true;
    } catch (e) {
      if (this.stopping && !(e instanceof AgentError)) throw e;
      const error =
        e instanceof AgentError ? e : new AgentError('APPLY_FAILED', describe(e), { cause: e });
      const attempts = this.failure?.etag === target.etag ? this.failure.attempts + 1 : 1;
      const retrying = error.transient;
      this.failure = {
        etag: target.etag,
        version: target.version,
        message: `${error.code}: ${error.message}`,
        attempts,
        ...(retrying ? { retrying } : {}),
      };
      this.emit({
        kind: 'apply-failed',
        target,
        error,
        attempts,
        gaveUp: this.gaveUp,
        retrying,
      });
      return false;
    }
  }

  /** The target that ran before the current one (the installer switches back to it). */
  private previous: { target: Target; artifactPath: string } | undefined;

  /** Writes the state (and the previous target) to the cache; a failure degrades the health. */
  private async record(): Promise<void> {
    if (!this.state) return;
    try {
      await this.cache.write({
        ...this.state,
        ...(this.previous ? { previous: this.previous } : {}),
      });
      this.cacheError = undefined;
    } catch (e) {
      this.cacheError = e as AgentError;
      this.emit({ kind: 'cache-error', error: this.cacheError });
    }
  }

  /** Restarts the new version and watches it beside the check-ins; switches back on failure. */
  private startWatch(target: Target): void {
    const installer = this.installer!;
    const controller = new AbortController();
    const done = (async () => {
      const result = await installer.restartAndWatch(target, controller.signal);
      if (result.ok === 'cancelled') return;
      if (result.ok === true) {
        await installer.prune([target.version, this.previous?.target.version]);
        this.emit({ kind: 'watch-passed', target });
        return;
      }
      await this.rollBack(target, result.reason);
    })().catch((e: unknown) => {
      this.emit({
        kind: 'watch-failed',
        target,
        reason: describe(e),
        error: e instanceof AgentError ? e : new AgentError('INSTALL_FAILED', describe(e)),
      });
    });
    this.watch = { target, controller, done };
  }

  private async cancelWatch(): Promise<void> {
    const watch = this.watch;
    if (!watch) return;
    watch.controller.abort();
    await watch.done;
    if (this.watch === watch) this.watch = undefined;
  }

  /**
   * The new version failed its watch: back to the previous one (its config resolved again, its
   * directory still installed), restarted; the failed target is refused until it changes.
   */
  private async rollBack(failed: Target, reason: string): Promise<void> {
    const installer = this.installer!;
    const previous = this.previous;
    const message = `HEALTH_WATCH_FAILED: ${reason}`;
    if (!previous) {
      this.failure = {
        etag: failed.etag,
        version: failed.version,
        message: `${message}; nothing to switch back to`,
        attempts: Number.POSITIVE_INFINITY,
      };
      this.emit({ kind: 'watch-failed', target: failed, reason });
      this.wakeUp();
      return;
    }
    const resolved = await this.resolveSecrets(previous.target);
    await installer.restore(previous.target, resolved.config);
    this.state = {
      target: previous.target,
      artifactPath: previous.artifactPath,
      appliedAt: this.clock.now(),
    };
    this.previous = undefined;
    this.failure = {
      etag: failed.etag,
      version: failed.version,
      message,
      attempts: Number.POSITIVE_INFINITY,
      rolledBack: true,
      reason,
    };
    await this.record();
    this.emit({ kind: 'rolled-back', from: failed, to: previous.target, reason });
    this.wakeUp();
  }

  /** The target with its config's secretRefs resolved here (throws SECRET_UNRESOLVED). */
  private async resolveSecrets(target: Target): Promise<Target> {
    const config = await resolveSecrets(target.config, {
      env: this.options.env ?? process.env,
      secretDir: this.options.secretDir,
      dispatcher: this.options.dispatcher,
      timeoutMs: this.options.timeoutMs ?? 30_000,
      signal: this.controller.signal,
    });
    return { ...target, config: config as Target['config'] };
  }

  private async runApply(context: ApplyContext): Promise<void> {
    const apply = this.options.apply;
    if (apply === undefined) return;
    if (typeof apply === 'function') {
      try {
        await apply(context);
      } catch (e) {
        throw new AgentError('APPLY_FAILED', `apply failed: ${describe(e)}`, { cause: e });
      }
      return;
    }
    const result = await runCommand(apply, {
      env: applyEnv(
        this.commandBaseEnv(),
        this.options.id,
        context.target,
        context.targetFile,
        context.artifactPath,
      ),
      input: JSON.stringify(context.target),
      timeoutMs: this.options.applyTimeoutMs ?? 10 * 60_000,
    });
    if (result.code !== 0 || result.timedOut)
      throw new AgentError('APPLY_FAILED', describeResult('--apply', result));
  }

  /** Keeps the current and the previous artifact; removes the rest (and crash leftovers). */
  private async pruneArtifacts(): Promise<void> {
    const keep = new Set([
      this.state?.artifactPath,
      this.previousArtifact,
      this.previous?.artifactPath,
    ]);
    const dir = this.cache.artifactsDir;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (!keep.has(path)) await rm(path, { force: true }).catch(() => {});
    }
  }
}
