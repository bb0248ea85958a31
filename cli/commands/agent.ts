// fleetwave agent: the reference agent's entry point. Reads flags and environment once into
// AgentOptions, logs the agent's events one line each on stderr, stops on SIGTERM/SIGINT.

import { readFile } from 'node:fs/promises';
import { arch, hostname, platform } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent as HttpAgent } from 'undici';
import { FleetwaveError } from '../../core/errors.ts';
import { labelKeyProblem, labelValueProblem } from '../../core/fleet/selector.ts';
import { isAgentId } from '../../wire/agent.ts';
import {
  Agent,
  type AgentEvent,
  type AgentOptions,
  type InstallOptions,
} from '../../agent/client.ts';
import { configFormat } from '../../agent/install/config.ts';
import { parseMetricProbe } from '../../agent/install/health.ts';
import { parseDuration } from '../../core/fleet/duration.ts';
import { isAgentError } from '../../agent/errors.ts';
import { refusalHint } from '../../agent/retry.ts';
import { trustedKey } from '../../agent/signature.ts';
import { DEFAULT_KEY_REF } from '../../core/fleet/signature.ts';
import { DEFAULT_SECRET_DIR } from '../../agent/secrets.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { parseFlags } from '../options.ts';

export const AGENT_HELP = `Usage: fleetwave agent --url URL [--url URL…] [options]

The reference agent: enrolls with the reconciler, long-polls for its target, downloads the
artifact and verifies its sha256 (and its signature, when the Release signs it), runs
--apply with the new target, and reports its health with every check-in. The last applied
target is kept in --cache-dir and used while the reconciler is unreachable.

Options:
  --url URL            a reconciler (repeat, or comma-separate, for failover) (required;
                       env FLEETWAVE_URL)
  --id ID              this agent's id (default: the host name)
  --labels k=v,…       labels; os and arch default to this machine's (e.g. os=linux,arch=amd64)
  --enroll-token TOKEN the enrollment token (env FLEETWAVE_ENROLL_TOKEN; prefer the env)
  --cache-dir DIR      where the last target and artifacts live (default: $STATE_DIRECTORY
                       under systemd, else .fleetwave-agent)
  --apply CMD          shell command run with each new verified target: the target as JSON on
                       stdin; FLEETWAVE_TARGET_FILE, FLEETWAVE_ARTIFACT, FLEETWAVE_VERSION,
                       FLEETWAVE_ETAG, FLEETWAVE_REVISION, FLEETWAVE_AGENT_ID in its env. Exit
                       0 applies; anything else fails the target (the last good one stays).
                       Its target has every secretRef resolved here (the file is mode 0600):
                       env from this agent's environment, file from --secret-dir, vault
                       (MOUNT/PATH#FIELD, KV v2) with VAULT_ADDR and VAULT_TOKEN (and
                       VAULT_NAMESPACE) from the environment; one that cannot be resolved
                       fails the target (SECRET_UNRESOLVED) and --apply does not run
  --pass-env NAME      a variable of this agent's environment that --apply, --health, --run
                       and install hooks may see (repeatable); they get only PATH, HOME,
                       USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR, TERM and
                       systemd's *_DIRECTORY and INVOCATION_ID otherwise: never the
                       enrollment token or VAULT_TOKEN
  --secret-dir DIR     where file secrets are read: their key is a path inside DIR (no
                       absolute paths, .. or symlinks out) (default: /etc/fleetwave/secrets)
  --health CMD         shell command run before each check-in: exit 0 ok, 1 degraded, else
                       failed; its output is the message (a JSON object may give "message",
                       "errors" and "requests")

The built-in installer (instead of --apply):
  --install-dir DIR    unpack each verified artifact (tar.gz or zip) into DIR/versions/VERSION
                       (paths out of it, links out, devices, sparse or oversized archives are
                       refused: ARTIFACT_INVALID), run its own fleetwave-install hook there if
                       it has one (the target on stdin), write the config, switch DIR/current
                       atomically, restart the software and watch it; on a failed watch switch
                       back to the previous version and report failed with rolledBack. The
                       current and the previous version are kept, older ones removed
  --config-file PATH   where the target's config goes, secrets resolved (mode 0600); the
                       format by the extension: .yaml/.yml, .json, .toml, .env
  --run CMD            run the software as this agent's child: /bin/sh -c CMD in
                       DIR/versions/VERSION (FLEETWAVE_VERSION, FLEETWAVE_CONFIG_FILE,
                       FLEETWAVE_INSTALL_DIR in its env), restarted with backoff when it
                       exits, stopped on an upgrade; its output as JSON lines on stdout
  --service UNIT       or restart this systemd unit after each switch
  --health-watch DUR   how long a new version is watched after a switch (default 2m; e.g.
                       90s, 5m): the process stays up and the probe passes
  --health-url URL     the probe: a GET answering 2xx
  --health-metric URL#NAME  the probe: a Prometheus text endpoint whose gauge NAME must be 1
                       (e.g. http://127.0.0.1:8000/metrics#agent_health)
                       (--health CMD is the probe too: exit 0 passes)

  --wait SECONDS       long-poll wait asked of the server (default: the target's poll interval)
  --timeout SECONDS    timeout of each request beyond the long-poll wait (default: 30)
  --apply-timeout SECONDS  longest --apply run (default: 600)
  --ca FILE            extra trusted CA certificates (PEM) for the reconciler and artifacts
  --trusted-key NAME=PATH  a public key (PEM: cosign.pub, or Ed25519) that Releases name as
                       signature.keyRef NAME (repeatable; PATH alone is the key "default").
                       A signed artifact is applied only if its signature verifies with the
                       key it names (else ARTIFACT_SIGNATURE_INVALID, the last target stays)
  --require-signatures refuse artifacts whose Release does not sign them (needs a
                       --trusted-key)
  -h, --help           show this help

Exit status: 0 stopped by a signal, 1 the cache or install directory is not writable, 2
usage error.
`;

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };
const NODE_OS: Record<string, string> = { win32: 'windows', linux: 'linux', darwin: 'darwin' };

/** `k=v,k=v` as labels, checked like the reconciler checks them. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text.trim() === '') return labels;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new FleetwaveError('USAGE', `--labels: "${pair}" is not key=value`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem) throw new FleetwaveError('USAGE', `--labels: ${problem}`);
    if (key in labels) throw new FleetwaveError('USAGE', `--labels: "${key}" is given twice`);
    labels[key] = value;
  }
  return labels;
}

function seconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,6}$/.test(value) || Number(value) > 86_400)
    throw new FleetwaveError('USAGE', `${flag} must be a whole number of seconds, not "${value}"`);
  return Number(value);
}

function urlList(values: string[]): string[] {
  const urls = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  for (const url of urls) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new FleetwaveError('USAGE', `--url: "${url}" is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new FleetwaveError('USAGE', `--url: "${url}" is not http(s)`);
  }
  return urls;
}

export function formatEvent(event: AgentEvent): string | undefined {
  switch (event.kind) {
    case 'started':
      return event.cached
        ? `running the cached target ${event.cached.version} (${event.cached.etag.slice(0, 12)})`
        : `no cached target${event.cacheProblem ? ` (ignored the cache: ${event.cacheProblem})` : ''}`;
    case 'enrolled':
      return `enrolled with ${event.url}`;
    case 'target':
      return `new target ${event.target.version} (${event.target.etag.slice(0, 12)}) from ${event.url}, wave ${event.target.wave}`;
    case 'applied':
      return `applied ${event.target.version} (${event.target.etag.slice(0, 12)})`;
    case 'apply-failed':
      return `error: target ${event.target.version} (${event.target.etag.slice(0, 12)}) not applied (attempt ${event.attempts}${event.gaveUp ? ', giving up until the target changes' : event.retrying ? ', retrying' : ''}): ${event.error.code}: ${event.error.message}`;
    case 'watch-passed':
      return `${event.target.version} (${event.target.etag.slice(0, 12)}) passed its health watch`;
    case 'rolled-back':
      return `error: HEALTH_WATCH_FAILED: ${event.from.version} (${event.from.etag.slice(0, 12)}) failed its health watch: ${event.reason}; switched back to ${event.to.version}`;
    case 'watch-failed':
      return `error: ${event.error?.code ?? 'HEALTH_WATCH_FAILED'}: ${event.target.version} (${event.target.etag.slice(0, 12)}): ${event.reason}${event.error ? '' : '; nothing to switch back to'}`;
    case 'error': {
      const what = `error: ${event.error.code}: ${event.error.message}`;
      const when = `${event.nextUrl} in ${(event.retryInMs / 1000).toFixed(1)}s`;
      switch (event.retry) {
        case 'backoff':
          return `${what}; retrying ${when}`;
        case 'wait':
          return `${what}; waiting as the reconciler asks, retrying ${when}`;
        case 'stalled':
          return `${what}; refused: a person must act (${refusalHint(event.error.status)}); retrying only slowly, ${when}`;
      }
      return what;
    }
    case 'cache-error':
      return `error: ${event.error.code}: ${event.error.message}`;
    case 'stopped':
      return 'stopped';
    case 'unchanged':
      return undefined;
  }
}

export async function readAgentOptions(
  args: string[],
  io: CommandIO,
): Promise<AgentOptions | undefined> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string', multiple: true },
      id: { type: 'string' },
      labels: { type: 'string' },
      'enroll-token': { type: 'string' },
      'cache-dir': { type: 'string' },
      'secret-dir': { type: 'string' },
      apply: { type: 'string' },
      health: { type: 'string' },
      wait: { type: 'string' },
      timeout: { type: 'string' },
      'apply-timeout': { type: 'string' },
      ca: { type: 'string' },
      'trusted-key': { type: 'string', multiple: true },
      'pass-env': { type: 'string', multiple: true },
      'install-dir': { type: 'string' },
      'config-file': { type: 'string' },
      run: { type: 'string' },
      service: { type: 'string' },
      'health-watch': { type: 'string' },
      'health-url': { type: 'string' },
      'health-metric': { type: 'string' },
      'require-signatures': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  if (positionals.length > 0)
    throw new FleetwaveError('USAGE', `agent takes no arguments, not "${positionals[0]}"`);
  const urls = urlList(values.url ?? (io.env.FLEETWAVE_URL ? [io.env.FLEETWAVE_URL] : []));
  if (urls.length === 0)
    throw new FleetwaveError('USAGE', 'agent needs --url URL (a reconciler; repeat for failover)');
  const id = values.id ?? io.env.FLEETWAVE_AGENT_ID ?? hostname();
  if (!isAgentId(id))
    throw new FleetwaveError(
      'USAGE',
      `--id "${id}" is not an agent id (letters, digits and . _ : @ -, at most 253)`,
    );
  const labels = parseLabels(values.labels ?? io.env.FLEETWAVE_LABELS ?? '');
  labels.os ??= NODE_OS[platform()] ?? platform();
  labels.arch ??= NODE_ARCH[arch()] ?? arch();
  const cacheDir =
    values['cache-dir'] ?? io.env.STATE_DIRECTORY?.split(':')[0] ?? '.fleetwave-agent';
  const options: AgentOptions = {
    urls,
    id,
    labels,
    enrollToken: values['enroll-token'] ?? io.env.FLEETWAVE_ENROLL_TOKEN,
    cacheDir: isAbsolute(cacheDir) ? cacheDir : resolve(io.cwd, cacheDir),
    secretDir: resolve(io.cwd, values['secret-dir'] ?? DEFAULT_SECRET_DIR),
    apply: values.apply,
    health: values.health,
    timeoutMs: seconds('--timeout', values.timeout, 30) * 1000,
    applyTimeoutMs: seconds('--apply-timeout', values['apply-timeout'], 600) * 1000,
    env: io.env,
  };
  if (values.wait !== undefined) options.waitSeconds = seconds('--wait', values.wait, 30);
  if (values['pass-env'] !== undefined) {
    for (const name of values['pass-env'])
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw new FleetwaveError('USAGE', `--pass-env: "${name}" is not a variable name`);
    options.passEnv = values['pass-env'];
  }
  const install = readInstallOptions(values, io.cwd);
  if (install) {
    if (options.apply !== undefined)
      throw new FleetwaveError(
        'USAGE',
        '--apply and --install-dir both install: give one (--apply for your own installer)',
      );
    // With the installer, --health is its probe (and the check-ins' health).
    if (values.health !== undefined) {
      install.probe ??= { kind: 'command', command: values.health };
      delete options.health;
    }
    options.install = install;
  }
  if (values.ca !== undefined) {
    let ca: string;
    try {
      ca = await readFile(resolve(io.cwd, values.ca), 'utf8');
    } catch (e) {
      throw new FleetwaveError('USAGE', `--ca: cannot read ${values.ca}: ${(e as Error).message}`);
    }
    options.dispatcher = new HttpAgent({ connect: { ca: [...rootCertificates, ca] } });
  }
  if (values['trusted-key'] !== undefined)
    options.trustedKeys = await readTrustedKeys(values['trusted-key'], io.cwd);
  if (values['require-signatures']) {
    // Nothing could ever be applied: every artifact unsigned or signed by an unknown key.
    if (options.trustedKeys === undefined)
      throw new FleetwaveError('USAGE', '--require-signatures needs a --trusted-key NAME=PATH');
    options.requireSignatures = true;
  }
  return options;
}

/** The installer's flags, checked; undefined without --install-dir (then none may be given). */
function readInstallOptions(
  values: Record<string, string | boolean | string[] | undefined>,
  cwd: string,
): InstallOptions | undefined {
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const dir = text('install-dir');
  if (dir === undefined) {
    for (const flag of [
      'config-file',
      'run',
      'service',
      'health-watch',
      'health-url',
      'health-metric',
    ])
      if (values[flag] !== undefined)
        throw new FleetwaveError('USAGE', `--${flag} needs --install-dir (the built-in installer)`);
    return undefined;
  }
  const install: InstallOptions = { installDir: resolve(cwd, dir) };
  const configFile = text('config-file');
  if (configFile !== undefined) {
    if (!configFormat(configFile))
      throw new FleetwaveError(
        'USAGE',
        `--config-file ${configFile}: the name must end in .yaml, .yml, .json, .toml or .env (the format)`,
      );
    install.configFile = resolve(cwd, configFile);
  }
  const run = text('run');
  const service = text('service');
  if (run !== undefined && service !== undefined)
    throw new FleetwaveError('USAGE', '--run and --service: give one (a child, or a systemd unit)');
  if (run !== undefined) install.run = run;
  if (service !== undefined) {
    if (!/^[A-Za-z0-9:_.@\\-]+$/.test(service) || service.startsWith('-'))
      throw new FleetwaveError('USAGE', `--service: "${service}" is not a unit name`);
    install.service = service;
  }
  const watch = text('health-watch');
  if (watch !== undefined) {
    const ms = /^\d+$/.test(watch) ? Number(watch) * 1000 : parseDuration(watch);
    if (ms === undefined || ms > 86_400_000)
      throw new FleetwaveError(
        'USAGE',
        `--health-watch must be a duration like 90s or 2m (at most 24h), not "${watch}"`,
      );
    install.healthWatchMs = ms;
  }
  const url = text('health-url');
  const metric = text('health-metric');
  if (url !== undefined && metric !== undefined)
    throw new FleetwaveError('USAGE', '--health-url and --health-metric: give one probe');
  if (url !== undefined) {
    const parsed = parseMetricProbe(`${url}#x`);
    if (!parsed) throw new FleetwaveError('USAGE', `--health-url: "${url}" is not an http(s) URL`);
    install.probe = { kind: 'url', url };
  }
  if (metric !== undefined) {
    const parsed = parseMetricProbe(metric);
    if (!parsed)
      throw new FleetwaveError(
        'USAGE',
        `--health-metric: "${metric}" is not URL#NAME (an http(s) URL and a metric name)`,
      );
    install.probe = { kind: 'metric', ...parsed };
  }
  return install;
}

/** `--trusted-key NAME=PATH` (or PATH alone, the key `default`): each file read and checked. */
async function readTrustedKeys(specs: string[], cwd: string): Promise<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const name = eq < 0 ? DEFAULT_KEY_REF : spec.slice(0, eq);
    const path = eq < 0 ? spec : spec.slice(eq + 1);
    if (name === '' || path === '')
      throw new FleetwaveError('USAGE', `--trusted-key: "${spec}" is not NAME=PATH`);
    if (Object.hasOwn(keys, name))
      throw new FleetwaveError('USAGE', `--trusted-key: the name "${name}" is given twice`);
    let pem: string;
    try {
      pem = await readFile(resolve(cwd, path), 'utf8');
    } catch (e) {
      throw new FleetwaveError(
        'USAGE',
        `--trusted-key: cannot read ${path}: ${(e as Error).message}`,
      );
    }
    try {
      trustedKey(pem);
    } catch (e) {
      throw new FleetwaveError('USAGE', `--trusted-key ${name}: ${path}: ${(e as Error).message}`);
    }
    keys[name] = pem;
  }
  return keys;
}

export async function agentCommand(args: string[], io: CommandIO): Promise<number> {
  const options = await readAgentOptions(args, io);
  if (!options) {
    io.stdout(AGENT_HELP);
    return EXIT.ok;
  }
  const agent = new Agent({
    ...options,
    onEvent: (event) => {
      const line = formatEvent(event);
      if (line !== undefined) io.stderr(`fleetwave agent ${options.id}: ${line}\n`);
    },
  });
  try {
    await agent.start();
  } catch (e) {
    if (isAgentError(e)) {
      await agent.stop().catch(() => {});
      io.stderr(`fleetwave agent: ${e.code}: ${e.message}\n`);
      return EXIT.invalid;
    }
    throw e;
  }
  return new Promise<number>((resolveExit) => {
    const shutdown = (): void => {
      process.removeListener('SIGTERM', shutdown);
      process.removeListener('SIGINT', shutdown);
      void agent.stop().then(() => resolveExit(EXIT.ok));
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
