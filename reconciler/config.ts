// The reconciler's settings, read once from flags and environment into one typed value.

import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { FleetwaveError } from '../core/errors.ts';
import { hostname } from 'node:os';
import { parseDuration } from '../core/fleet/duration.ts';
import { labelKeyProblem } from '../core/fleet/selector.ts';
import { parseStoreUrl, type StoreLocation } from './store/store.ts';
import { MAX_LABEL_VALUES } from './metrics.ts';
import { parseFlags } from '../cli/options.ts';

/** Labels `--metric-labels` may name: each multiplies the series by its values. */
const MAX_METRIC_LABELS = 8;

/** Descriptors kept for what is not a connection: git processes, the mirror, logs. */
export const FD_RESERVE = 256;

/**
 * The default of --max-connections: the soft open-file limit (RLIMIT_NOFILE, from
 * /proc/self/limits) less FD_RESERVE, so that connections never take the descriptors git
 * needs (EMFILE); 100,000 where the limit cannot be read.
 */
export function defaultMaxConnections(limits = '/proc/self/limits'): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(limits, 'utf8'));
    if (m && m[1] !== 'unlimited') return Math.max(16, Number(m[1]) - FD_RESERVE);
  } catch {
    // Not Linux: no /proc.
  }
  return 100_000;
}

export interface ServeConfig {
  /** A git URL, or an absolute path to a repository on disk. */
  repo: string;
  branch: string;
  stateBranch: string;
  /** The fleet's directory inside the repository. */
  fleetDir: string;
  host: string;
  port: number;
  /**
   * --agent-port: the agent routes also on this port (same host), on the strict hand-written
   * HTTP/1.1 server of agent-port.ts. Absent: agents use the main port.
   */
  agentPort?: number;
  dataDir: string;
  fetchIntervalSeconds: number;
  /** Undefined only with insecureLocalDemo: enrollment is then open. */
  enrollToken?: string;
  adminToken?: string;
  webhookSecret?: string;
  /** Key of the per-agent credentials; when absent it is derived from the enrollment token. */
  tokenSecret?: string;
  insecureLocalDemo: boolean;
  /** Longest long-poll the server holds, whatever `?wait=` asks. */
  maxWaitSeconds: number;
  /** Long-polls held at once before check-ins that would wait get 429. */
  maxWaiters: number;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /**
   * Open connections past which a new one is answered 503 and closed. Absent: the open-file
   * limit less a reserve for git and files (defaultMaxConnections()).
   */
  maxConnections?: number;
  /** Seconds a request may take to arrive completely (head and body); absent: 30. */
  requestTimeoutSeconds?: number;
  logLevel: string;
  /**
   * Seconds between rollout evaluations (also run on each new revision). 0 or absent: the
   * rollout moves only by operator actions (tests that drive it themselves, read-only replicas).
   */
  evaluateIntervalSeconds?: number;
  /** Base URL of the Prometheus HTTP API the `prometheus` gates query. */
  prometheusUrl?: string;
  /** Where `rollback.revert: pull-request` opens the revert's pull request. */
  github?: GitHubConfig;
  /** Agent labels that break agents down in `fleetwave_agents_by_label` (default: region). */
  metricLabels?: string[];
  /** Where agent reports live: SQLite in the data dir unless `--store` says otherwise. */
  store?: StoreLocation;
  /** This replica's name in the store (which replica saw an agent last; default: host name). */
  replica?: string;
  /** Agents not seen for this long are forgotten (default: a week). */
  forgetAfterSeconds?: number;
  /** How often reports are written to the store, in ms (default: 1000). */
  storeFlushMs?: number;
}

/** `--forget-after` when not given: a week. */
export const DEFAULT_FORGET_AFTER_SECONDS = 7 * 86_400;

export interface GitHubConfig {
  /** REST API base, https://api.github.com unless GitHub Enterprise or a test fake. */
  apiUrl: string;
  token?: string;
  /** owner/name */
  repo?: string;
}

export const SERVE_HELP = `Usage: fleetwave serve --repo URL|PATH [options]

Runs the reconciler: mirrors the fleet repository, reads the rollout state and serves every
agent its target, with long-polling.

Options:
  --repo URL|PATH          the fleet repository (required)
  --branch NAME            the branch people merge to (default: main)
  --state-branch NAME      the robot-owned branch holding rollout.yaml (default: fleetwave/state)
  --fleet-dir PATH         the fleet's directory in the repository (default: fleet)
  --host HOST              address to listen on (default: 127.0.0.1)
  --port PORT              port to listen on (default: 8080; 0 picks a free one)
  --agent-port PORT        also serve the agent routes (check-in, enroll, target) on this
                           port, with a lean HTTP/1.1 server that costs less CPU per check-in
                           and refuses every unusual request shape (default: none, agents use
                           --port); point agents' server URL at it through its own listener
  --data-dir PATH          where the git mirror lives (default: .fleetwave)
  --fetch-interval SECONDS how often to fetch the repository (default: 30)
  --enroll-token TOKEN     token agents present to enroll (env FLEETWAVE_ENROLL_TOKEN)
  --admin-token TOKEN      token for operator actions (env FLEETWAVE_ADMIN_TOKEN)
  --webhook-secret SECRET  secret of the GitHub push webhook (env FLEETWAVE_WEBHOOK_SECRET)
  --token-secret SECRET    key of agent credentials (env FLEETWAVE_TOKEN_SECRET; default:
                           derived from the enrollment token, so replicas agree)
  --max-wait SECONDS       longest long-poll held (default: 300)
  --max-waiters N          long-polls held at once before answering 429 (default: 100000)
  --body-limit BYTES       largest request body (default: 65536)
  --max-connections N      open connections past which new ones get 503 and are closed
                           (default: the open-file limit less ${FD_RESERVE})
  --request-timeout SECONDS
                           how long a request may take to arrive, head and body
                           (default: 30; then 408 and the connection is closed)
  --log-level LEVEL        fatal|error|warn|info|debug (default: info)
  --store URL              where agent reports live: sqlite:PATH (default: sqlite:DATA_DIR/agents.db)
                           or postgres://USER:PASSWORD@HOST:PORT/DATABASE, shared by replicas
                           (env FLEETWAVE_STORE)
  --replica NAME           this replica's name in the store (default: the host name)
  --forget-after DURATION  forget agents not seen for this long (default: 7d)
  --metric-labels KEYS     agent labels that break agents down in
                           fleetwave_agents_by_label, comma-separated, at most ${MAX_METRIC_LABELS}
                           (default: region; each at most ${MAX_LABEL_VALUES} values, the rest "other")
  --evaluate-interval SECONDS
                           how often the rollout is evaluated, besides on each new
                           revision (default: 10; 0: only operator actions move it)
  --prometheus-url URL     Prometheus HTTP API for the waves' prometheus gates
  --github-api-url URL     GitHub REST API for revert pull requests
                           (default: https://api.github.com)
  --github-repo OWNER/NAME the repository revert pull requests are opened on
  --github-token TOKEN     token that may open pull requests (env FLEETWAVE_GITHUB_TOKEN)
  --insecure-local-demo    run without tokens (anyone may enroll and act): for demos only
  -h, --help               show this help

Prefer the environment variables to the flags for secrets: flags show in the process list.
`;

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new FleetwaveError(
      'CONFIG_INVALID',
      `${flag} must be a whole number from ${min} to ${max}, not "${value}"`,
    );
  }
  return n;
}

function httpUrl(flag: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new FleetwaveError('CONFIG_INVALID', `${flag} "${value}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FleetwaveError('CONFIG_INVALID', `${flag} must be an http or https URL`);
  }
  return value;
}

function branchName(flag: string, value: string): string {
  // A conservative subset of git's ref rules: no option-like, no ranges, no odd characters.
  if (
    !/^[A-Za-z0-9._/-]+$/.test(value) ||
    value.startsWith('-') ||
    value.startsWith('/') ||
    value.endsWith('/') ||
    value.endsWith('.lock') ||
    value.includes('..') ||
    value.includes('//')
  ) {
    throw new FleetwaveError('CONFIG_INVALID', `${flag} "${value}" is not a branch name`);
  }
  return value;
}

function secret(
  flag: string,
  fromFlag: string | undefined,
  fromEnv: string | undefined,
): string | undefined {
  const value = fromFlag ?? (fromEnv === '' ? undefined : fromEnv);
  if (value !== undefined && value.length < 16) {
    throw new FleetwaveError('CONFIG_INVALID', `${flag} must be at least 16 characters`);
  }
  return value;
}

/** `--metric-labels`: distinct label keys, few, so the series stay bounded. */
function metricLabels(value: string): string[] {
  const keys = [...new Set(value.split(',').map((k) => k.trim()))].filter((k) => k !== '');
  if (keys.length > MAX_METRIC_LABELS) {
    throw new FleetwaveError(
      'CONFIG_INVALID',
      `--metric-labels names at most ${MAX_METRIC_LABELS} labels, not ${keys.length}`,
    );
  }
  for (const key of keys) {
    const problem = labelKeyProblem(key);
    if (problem) throw new FleetwaveError('CONFIG_INVALID', `--metric-labels: ${problem}`);
  }
  return keys;
}

/** Returns undefined when --help was asked for. */
export function readServeConfig(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): ServeConfig | undefined {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      branch: { type: 'string', default: 'main' },
      'state-branch': { type: 'string', default: 'fleetwave/state' },
      'fleet-dir': { type: 'string', default: 'fleet' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'agent-port': { type: 'string' },
      'data-dir': { type: 'string', default: '.fleetwave' },
      'fetch-interval': { type: 'string', default: '30' },
      'enroll-token': { type: 'string' },
      'admin-token': { type: 'string' },
      'webhook-secret': { type: 'string' },
      'token-secret': { type: 'string' },
      'max-wait': { type: 'string', default: '300' },
      'max-waiters': { type: 'string', default: '100000' },
      'body-limit': { type: 'string', default: '65536' },
      'max-connections': { type: 'string' },
      'request-timeout': { type: 'string', default: '30' },
      'log-level': { type: 'string', default: 'info' },
      'metric-labels': { type: 'string', default: 'region' },
      store: { type: 'string' },
      replica: { type: 'string' },
      'forget-after': { type: 'string', default: '7d' },
      'insecure-local-demo': { type: 'boolean', default: false },
      'evaluate-interval': { type: 'string', default: '10' },
      'prometheus-url': { type: 'string' },
      'github-api-url': { type: 'string', default: 'https://api.github.com' },
      'github-repo': { type: 'string' },
      'github-token': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  if (positionals.length > 0)
    throw new FleetwaveError('USAGE', `serve takes no positional arguments`);
  if (!values.repo) throw new FleetwaveError('CONFIG_INVALID', '--repo URL|PATH is required');
  const repo =
    /^[a-z][a-z0-9+.-]*:\/\//i.test(values.repo) || /^[^/]+@[^/]+:/.test(values.repo)
      ? values.repo
      : resolve(cwd, values.repo);
  if (repo.startsWith('-'))
    throw new FleetwaveError('CONFIG_INVALID', '--repo is not a repository');
  const branch = branchName('--branch', values.branch);
  const stateBranch = branchName('--state-branch', values['state-branch']);
  if (branch === stateBranch) {
    throw new FleetwaveError('CONFIG_INVALID', '--state-branch must differ from --branch');
  }
  const insecureLocalDemo = values['insecure-local-demo'];
  const enrollToken = secret('--enroll-token', values['enroll-token'], env.FLEETWAVE_ENROLL_TOKEN);
  const adminToken = secret('--admin-token', values['admin-token'], env.FLEETWAVE_ADMIN_TOKEN);
  if (!insecureLocalDemo) {
    const missing = [
      enrollToken === undefined ? '--enroll-token (or FLEETWAVE_ENROLL_TOKEN)' : undefined,
      adminToken === undefined ? '--admin-token (or FLEETWAVE_ADMIN_TOKEN)' : undefined,
    ].filter((m) => m !== undefined);
    if (missing.length > 0) {
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `refusing to start without ${missing.join(' and ')}: anyone could enroll agents or change the rollout. ` +
          'Set them, or pass --insecure-local-demo on a machine of your own.',
      );
    }
  }
  const logLevel = values['log-level'];
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new FleetwaveError('CONFIG_INVALID', `--log-level "${logLevel}" is not a level`);
  }
  const dataDir = values['data-dir'];
  const config: ServeConfig = {
    repo,
    branch,
    stateBranch,
    fleetDir: values['fleet-dir'],
    host: values.host,
    port: integer('--port', values.port, 0, 65535),
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir),
    fetchIntervalSeconds: integer('--fetch-interval', values['fetch-interval'], 1, 86400),
    insecureLocalDemo,
    maxWaitSeconds: integer('--max-wait', values['max-wait'], 1, 3600),
    maxWaiters: integer('--max-waiters', values['max-waiters'], 0, 10_000_000),
    bodyLimit: integer('--body-limit', values['body-limit'], 1024, 16 * 1024 * 1024),
    maxConnections:
      values['max-connections'] === undefined
        ? defaultMaxConnections()
        : integer('--max-connections', values['max-connections'], 1, 10_000_000),
    requestTimeoutSeconds: integer('--request-timeout', values['request-timeout'], 1, 3600),
    logLevel,
  };
  if (values['agent-port'] !== undefined) {
    config.agentPort = integer('--agent-port', values['agent-port'], 0, 65535);
    if (config.agentPort !== 0 && config.agentPort === config.port) {
      throw new FleetwaveError('CONFIG_INVALID', '--agent-port must differ from --port');
    }
  }
  const absolute = (p: string): string => (isAbsolute(p) ? p : resolve(cwd, p));
  config.store = parseStoreUrl(
    values.store ?? (env.FLEETWAVE_STORE || `sqlite:${join(config.dataDir, 'agents.db')}`),
    absolute,
  );
  config.replica = values.replica ?? hostname();
  if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(config.replica)) {
    throw new FleetwaveError(
      'CONFIG_INVALID',
      `--replica "${config.replica}" must be 1 to 128 letters, digits, '.', '_', ':', '@' or '-'`,
    );
  }
  const forget = parseDuration(values['forget-after']);
  if (forget === undefined || forget < 3_600_000) {
    throw new FleetwaveError(
      'CONFIG_INVALID',
      `--forget-after must be a duration of at least 1h such as 7d, not "${values['forget-after']}"`,
    );
  }
  config.forgetAfterSeconds = forget / 1000;
  if (enrollToken !== undefined) config.enrollToken = enrollToken;
  if (adminToken !== undefined) config.adminToken = adminToken;
  const webhookSecret = secret(
    '--webhook-secret',
    values['webhook-secret'],
    env.FLEETWAVE_WEBHOOK_SECRET,
  );
  if (webhookSecret !== undefined) config.webhookSecret = webhookSecret;
  const tokenSecret = secret('--token-secret', values['token-secret'], env.FLEETWAVE_TOKEN_SECRET);
  if (tokenSecret !== undefined) config.tokenSecret = tokenSecret;
  config.evaluateIntervalSeconds = integer(
    '--evaluate-interval',
    values['evaluate-interval'],
    0,
    86400,
  );
  if (values['prometheus-url'] !== undefined) {
    config.prometheusUrl = httpUrl('--prometheus-url', values['prometheus-url']);
  }
  const github: GitHubConfig = { apiUrl: httpUrl('--github-api-url', values['github-api-url']) };
  const githubToken = values['github-token'] ?? (env.FLEETWAVE_GITHUB_TOKEN || undefined);
  if (githubToken !== undefined) github.token = githubToken;
  const githubRepo = values['github-repo'];
  if (githubRepo !== undefined) {
    if (
      !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(githubRepo) ||
      githubRepo.split('/').some((part) => /^\.+$/.test(part))
    ) {
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `--github-repo must be OWNER/NAME, not "${githubRepo}"`,
      );
    }
    github.repo = githubRepo;
  }
  config.github = github;
  config.metricLabels = metricLabels(values['metric-labels']);
  return config;
}
