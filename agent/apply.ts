// Runs the operator's commands: --apply with a verified target, --health for the report. Each
// runs through /bin/sh -c in its own process group, bounded in time (the whole group is killed
// on timeout) and in the output kept.

import { spawn } from 'node:child_process';
import type { Target } from '../core/target/model.ts';
import type { Health, HealthStatus } from '../wire/health.ts';

export interface CommandResult {
  /** The exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last bytes of stdout and stderr together. */
  output: string;
}

const OUTPUT_LIMIT = 4096;

export async function runCommand(
  command: string,
  options: { env: NodeJS.ProcessEnv; input?: string; timeoutMs: number; cwd?: string },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut, output: `cannot run: ${e.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output: output.trim() });
    });
    // A command that does not read stdin must not fail the apply with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

export function describeResult(what: string, r: CommandResult): string {
  const how = r.timedOut
    ? 'timed out and was killed'
    : r.signal
      ? `was killed by ${r.signal}`
      : `exited with ${r.code}`;
  const tail = r.output === '' ? '' : `: ${r.output.split('\n').slice(-5).join(' | ').slice(-500)}`;
  return `${what} ${how}${tail}`;
}

/**
 * What the agent's own environment passes to the commands it runs (--apply, --health, --run, an
 * install hook): the basics of a process, never the agent's credentials (the enrollment token,
 * VAULT_TOKEN). `--pass-env NAME` adds more.
 */
export const PASSED_ENV: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TERM',
  'INVOCATION_ID',
  'STATE_DIRECTORY',
  'RUNTIME_DIRECTORY',
  'CACHE_DIRECTORY',
  'LOGS_DIRECTORY',
  'CONFIGURATION_DIRECTORY',
];

/** The allowlisted part of `env`: PASSED_ENV, every LC_* variable, and `extra`. */
export function childEnv(env: NodeJS.ProcessEnv, extra: readonly string[] = []): NodeJS.ProcessEnv {
  const allowed = new Set([...PASSED_ENV, ...extra]);
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env))
    if (value !== undefined && (allowed.has(name) || name.startsWith('LC_'))) out[name] = value;
  return out;
}

/** The environment an --apply command sees (`base` already allowlisted: childEnv). */
export function applyEnv(
  base: NodeJS.ProcessEnv,
  agentId: string,
  target: Target,
  targetFile: string,
  artifactPath: string,
): NodeJS.ProcessEnv {
  return {
    ...base,
    FLEETWAVE_AGENT_ID: agentId,
    FLEETWAVE_TARGET_FILE: targetFile,
    FLEETWAVE_ARTIFACT: artifactPath,
    FLEETWAVE_VERSION: target.version,
    FLEETWAVE_ETAG: target.etag,
    FLEETWAVE_REVISION: target.revision,
  };
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/**
 * A --health command's result as a report, like a Nagios plugin: exit 0 ok, 1 degraded,
 * anything else (or killed, or timed out) failed. Its output is the message; when the output
 * is a JSON object, its `message`, `errors` and `requests` are taken from it.
 */
export function healthOf(r: CommandResult): Health {
  const status: HealthStatus =
    r.code === 0 && !r.timedOut ? 'ok' : r.code === 1 && !r.timedOut ? 'degraded' : 'failed';
  const report: Health = { status };
  let parsed: unknown;
  try {
    parsed = r.output.startsWith('{') ? JSON.parse(r.output) : undefined;
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const p = parsed as Record<string, unknown>;
    if (typeof p.message === 'string') report.message = p.message.slice(0, 500);
    const errors = count(p.errors);
    const requests = count(p.requests);
    if (errors !== undefined && requests !== undefined && errors <= requests) {
      report.errors = errors;
      report.requests = requests;
    }
  } else if (r.output !== '') {
    report.message = r.output.slice(0, 500);
  }
  if (status !== 'ok' && report.message === undefined)
    report.message = describeResult('--health', r);
  return report;
}
