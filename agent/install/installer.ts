// The built-in installer (--install-dir): a verified artifact becomes DIR/versions/<version>
// (agent/install/archive.ts, with its own `fleetwave-install` hook run there), the target's
// config is written to --config-file (secrets resolved only into that file), `current` is
// switched atomically (switch.ts), and the software restarted: supervised as a child (--run,
// supervise.ts) or through systemd (--service). After a switch the agent watches its health
// (health.ts) and switches back on failure; the agent's loop (client.ts) decides when.

import { execFile } from 'node:child_process';
import { lstat, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import type { Target } from '../../core/target/model.ts';
import type { Health } from '../../wire/health.ts';
import { describeResult, runCommand } from '../apply.ts';
import type { BackoffPolicy } from '../backoff.ts';
import { AgentError, describe } from '../errors.ts';
import { DEFAULT_UNPACK_LIMITS, unpackArchive, type UnpackLimits } from './archive.ts';
import { configFormat, writeConfig, type ConfigFormat } from './config.ts';
import { probe, watchHealth, type Probe, type ProbeResult, type WatchResult } from './health.ts';
import { InstallDir, versionDirName } from './switch.ts';
import { Supervisor } from './supervise.ts';

export const INSTALL_HOOK = 'fleetwave-install';
export const DEFAULT_HEALTH_WATCH_MS = 2 * 60_000;
/** Exits within this window after the watch count as a crash loop (reported, not undone). */
const CRASH_LOOP_WINDOW_MS = 5 * 60_000;
const CRASH_LOOP_EXITS = 3;

export interface InstallerOptions {
  installDir: string;
  /** Where the target's config goes; its extension names the format. */
  configFile?: string | undefined;
  /** Supervise the software as a child: a shell command run in the version's directory. */
  run?: string | undefined;
  /** Or restart this systemd unit after a switch. */
  service?: string | undefined;
  healthWatchMs?: number | undefined;
  probe?: Probe | undefined;
  /** The environment of the hook, the child and the probe: already stripped of the agent's tokens. */
  env: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher | undefined;
  hookTimeoutMs?: number | undefined;
  probeTimeoutMs?: number | undefined;
  limits?: UnpackLimits | undefined;
  /** Each line the child writes, as a JSON line (default: the agent's stdout). */
  log?: ((line: string) => void) | undefined;
  restartBackoff?: BackoffPolicy | undefined;
  stopTimeoutMs?: number | undefined;
}

function failed(message: string, cause?: unknown): AgentError {
  return new AgentError('INSTALL_FAILED', message, cause === undefined ? {} : { cause });
}

export class Installer {
  readonly options: InstallerOptions;
  readonly dir: InstallDir;
  private readonly format: ConfigFormat | undefined;
  private readonly supervisor: Supervisor | undefined;
  /** The version that runs (what `current` names once switched), and since when. */
  private running: { version: string; since: number } | undefined;
  private watching = false;

  constructor(options: InstallerOptions) {
    if (options.run !== undefined && options.service !== undefined)
      throw new Error(
        'an installer runs the software (run) or restarts its unit (service), not both',
      );
    this.options = options;
    this.dir = new InstallDir(options.installDir);
    if (options.configFile !== undefined) {
      this.format = configFormat(options.configFile);
      if (!this.format)
        throw new Error(
          `the config file ${options.configFile} must end in .yaml, .yml, .json, .toml or .env`,
        );
    }
    if (options.run !== undefined)
      this.supervisor = new Supervisor({
        command: options.run,
        pidFile: join(options.installDir, '.run.pid'),
        tag: `FLEETWAVE_INSTALL_DIR=${this.dir.dir}`,
        log: options.log ?? ((line) => process.stdout.write(line + '\n')),
        ...(options.restartBackoff ? { backoff: options.restartBackoff } : {}),
        ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
      });
  }

  get healthWatchMs(): number {
    return this.options.healthWatchMs ?? DEFAULT_HEALTH_WATCH_MS;
  }

  /** Creates the directories, removes half-made versions, stops an orphaned child. */
  async prepare(): Promise<void> {
    await this.dir.prepare();
    if (this.options.configFile !== undefined) {
      try {
        await mkdir(dirname(this.options.configFile), { recursive: true, mode: 0o755 });
      } catch (e) {
        throw failed(
          `cannot create the directory of ${this.options.configFile}: ${describe(e)}`,
          e,
        );
      }
    }
    await this.supervisor?.reapOrphan();
  }

  private env(target: Target): NodeJS.ProcessEnv {
    const name = versionDirName(target.version);
    return {
      ...this.options.env,
      FLEETWAVE_VERSION: target.version,
      FLEETWAVE_ETAG: target.etag,
      FLEETWAVE_INSTALL_DIR: this.dir.dir,
      FLEETWAVE_VERSION_DIR: this.dir.versionPath(name),
      ...(this.options.configFile ? { FLEETWAVE_CONFIG_FILE: this.options.configFile } : {}),
    };
  }

  /**
   * On the agent's start: makes `current` agree with the target the agent last recorded (a crash
   * between the switch and that record leaves them apart) and starts the software. False when
   * that version is not installed here: the agent then installs its target again.
   */
  async resume(target: Target): Promise<boolean> {
    const name = versionDirName(target.version);
    if (!(await this.dir.installed(name, target.artifact.sha256))) return false;
    if ((await this.dir.current()) !== name) await this.dir.switchTo(name);
    await this.restart(target);
    return true;
  }

  /** Unpacks (unless installed already) and runs the hook, writes the config, switches. */
  async install(
    target: Target,
    config: Record<string, unknown>,
    artifactPath: string,
  ): Promise<void> {
    const name = versionDirName(target.version);
    const sha256 = target.artifact.sha256;
    const live = this.running?.version === name || (await this.dir.current()) === name;
    if (!(await this.dir.installed(name, sha256))) {
      // The same version from other bytes while it runs: never pull it from under the process.
      if (live)
        throw failed(
          `version ${target.version} runs here from another artifact; a new artifact needs a new version`,
        );
      const partial = await this.dir.partial();
      try {
        await unpackArchive(artifactPath, partial, this.options.limits ?? DEFAULT_UNPACK_LIMITS);
      } catch (e) {
        await this.dir.remove(partial.slice(this.dir.versions.length + 1));
        throw e;
      }
      const path = await this.dir.promote(partial, name);
      try {
        await this.runHook(target, path);
      } catch (e) {
        await this.dir.remove(name);
        throw e;
      }
      await this.dir.markInstalled(name, sha256);
    }
    await this.writeConfig(config);
    await this.dir.switchTo(name);
  }

  /** Back to an installed version: its config, `current`, then a restart. */
  async restore(target: Target, config: Record<string, unknown>): Promise<void> {
    const name = versionDirName(target.version);
    if (!(await this.dir.installed(name, target.artifact.sha256)))
      throw failed(`version ${target.version} is no longer installed; cannot switch back to it`);
    await this.writeConfig(config);
    await this.dir.switchTo(name);
    await this.restart(target);
  }

  private async writeConfig(config: Record<string, unknown>): Promise<void> {
    if (this.options.configFile && this.format)
      await writeConfig(this.options.configFile, config, this.format);
  }

  /** The artifact's own install step, if it has one: the target (references only) on stdin. */
  private async runHook(target: Target, path: string): Promise<void> {
    const hook = join(path, INSTALL_HOOK);
    const info = await lstat(hook).catch(() => undefined);
    if (!info) return;
    if (!info.isFile()) throw failed(`${INSTALL_HOOK} in ${target.version} is not a regular file`);
    const command = info.mode & 0o100 ? `./${INSTALL_HOOK}` : `/bin/sh ./${INSTALL_HOOK}`;
    const result = await runCommand(command, {
      env: this.env(target),
      input: JSON.stringify(target),
      timeoutMs: this.options.hookTimeoutMs ?? 10 * 60_000,
      cwd: path,
    });
    if (result.code !== 0 || result.timedOut)
      throw failed(
        `the install hook of ${target.version}: ${describeResult(INSTALL_HOOK, result)}`,
      );
  }

  /** (Re)starts the software of `target` (the version `current` names). */
  async restart(target: Target): Promise<void> {
    const name = versionDirName(target.version);
    this.running = { version: name, since: Date.now() };
    if (this.supervisor) {
      await this.supervisor.start(name, this.dir.versionPath(name), this.env(target));
    } else if (this.options.service !== undefined) {
      const r = await systemctl(['restart', this.options.service], this.options.env);
      if (r.code !== 0)
        throw failed(
          `systemctl restart ${this.options.service} failed: ${r.output || `exit ${r.code}`}`,
        );
    }
  }

  private async probeOnce(): Promise<ProbeResult | undefined> {
    if (this.options.service !== undefined) {
      const r = await systemctl(['is-active', '--quiet', this.options.service], this.options.env);
      if (r.code !== 0)
        return { ok: false, definite: true, reason: `${this.options.service} is not active` };
    }
    if (!this.options.probe) return this.options.service !== undefined ? { ok: true } : undefined;
    return probe(this.options.probe, {
      dispatcher: this.options.dispatcher,
      timeoutMs: this.options.probeTimeoutMs ?? 10_000,
      env: this.options.env,
      cwd: this.running ? this.dir.versionPath(this.running.version) : undefined,
    });
  }

  /** Why the supervised process is down since the last (re)start, or undefined. */
  private down(): string | undefined {
    if (!this.supervisor || !this.running) return undefined;
    const exit = this.supervisor.crashesSince(this.running.since)[0];
    if (!exit) return undefined;
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`;
    const after = ((exit.exitedAt! - exit.startedAt) / 1000).toFixed(1);
    return `the process of ${exit.version} ${how} after ${after}s`;
  }

  /** Restarts the software, then watches it for --health-watch. */
  async restartAndWatch(target: Target, signal: AbortSignal): Promise<WatchResult> {
    this.watching = true;
    try {
      try {
        await this.restart(target);
      } catch (e) {
        return { ok: false, reason: describe(e) };
      }
      return await watchHealth({
        windowMs: this.healthWatchMs,
        probe:
          this.options.probe || this.options.service
            ? () => this.probeOnce().then((r) => r!)
            : undefined,
        down: () => this.down(),
        signal,
      });
    } finally {
      this.watching = false;
    }
  }

  /** The health the agent reports with each check-in. */
  async health(): Promise<Health> {
    if (this.watching)
      return { status: 'ok', message: 'health watch after a switch', watching: true };
    if (this.supervisor && this.running) {
      const exits = this.supervisor
        .crashesSince(this.running.since)
        .filter((r) => r.exitedAt! >= Date.now() - CRASH_LOOP_WINDOW_MS);
      const last = exits.at(-1);
      const how = last ? (last.signal ? `killed by ${last.signal}` : `exit ${last.code}`) : '';
      if (exits.length >= CRASH_LOOP_EXITS)
        return {
          status: 'failed',
          message: `crash loop: ${exits.length} exits in the last ${CRASH_LOOP_WINDOW_MS / 60_000} minutes (the last: ${how})`,
          crashLoop: true,
        };
      if (!this.supervisor.running)
        return {
          status: 'degraded',
          message: `the process is restarting (${how || 'not started'})`,
        };
    }
    const result = await this.probeOnce();
    if (!result || result.ok) return { status: 'ok' };
    return { status: 'failed', message: result.reason.slice(0, 500) };
  }

  /** Removes every installed version but these (the current and the previous one). */
  async prune(keep: Array<string | undefined>): Promise<void> {
    await this.dir.prune(new Set(keep.filter((k): k is string => k !== undefined)));
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }
}

function systemctl(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile('systemctl', args, { env, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim().slice(-500) });
    });
  });
}
