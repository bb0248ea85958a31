// fleetwave agent: the reference agent's entry point. Reads flags and environment once into
// AgentOptions, logs the agent's events one line each on stderr, stops on SIGTERM/SIGINT.

import { readFile } from 'node:fs/promises';
import { arch, hostname, platform } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent as HttpAgent } from 'undici';
import { FleetwaveError } from '../../core/errors.ts';
import { labelKeyProblem, labelValueProblem } from '../../core/fleet/selector.ts';
import { isAgentId } from '../../reconciler/auth.ts';
import { Agent, type AgentEvent, type AgentOptions } from '../../agent/client.ts';
import { isAgentError } from '../../agent/errors.ts';
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
  --secret-dir DIR     where file secrets are read: their key is a path inside DIR (no
                       absolute paths, .. or symlinks out) (default: /etc/fleetwave/secrets)
  --health CMD         shell command run before each check-in: exit 0 ok, 1 degraded, else
                       failed; its output is the message (a JSON object may give "message",
                       "errors" and "requests")
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

Exit status: 0 stopped by a signal, 1 the cache directory is not writable, 2 usage error.
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
      return `error: target ${event.target.version} (${event.target.etag.slice(0, 12)}) not applied (attempt ${event.attempts}${event.gaveUp ? ', giving up until the target changes' : ''}): ${event.error.code}: ${event.error.message}`;
    case 'error':
      return `error: ${event.error.code}: ${event.error.message}; retrying ${event.nextUrl} in ${(event.retryInMs / 1000).toFixed(1)}s`;
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
