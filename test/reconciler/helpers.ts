// Real parts for reconciler tests: a fleet repository (a work clone and a bare origin in a
// temp dir), a `git daemon` serving it on loopback, and the real server on a loopback port.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { ServeConfig } from '../../reconciler/config.ts';
import { buildServer, type ServerDeps } from '../../reconciler/server.ts';
import { serializeRolloutState, type RolloutState } from '../../core/rollout/state.ts';
import { GIT_ENV, git } from '../helpers/git.ts';
import { until } from '../helpers/until.ts';

export const FLEET_DIR = fileURLToPath(new URL('../../fleet/', import.meta.url));
export const ENROLL_TOKEN = 'enroll-token-0123456789abcdef';
export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
export const WEBHOOK_SECRET = 'webhook-secret-0123456789abcdef';

export class FleetRepo {
  readonly root: string;
  readonly work: string;
  readonly origin: string;

  private constructor(root: string) {
    this.root = root;
    this.work = join(root, 'work');
    this.origin = join(root, 'origin.git');
  }

  /** A repository whose main holds the example fleet, pushed to a bare origin. */
  static async create(): Promise<FleetRepo> {
    const repo = new FleetRepo(await mkdtemp(join(tmpdir(), 'fleetwave-reconciler-')));
    await mkdir(repo.work);
    git(repo.work, 'init', '-q', '-b', 'main');
    await cp(FLEET_DIR, join(repo.work, 'fleet'), { recursive: true });
    git(repo.work, 'add', '-A');
    git(repo.work, 'commit', '-qm', 'the example fleet');
    git(repo.root, 'init', '-q', '--bare', 'origin.git');
    git(repo.work, 'remote', 'add', 'origin', repo.origin);
    git(repo.work, 'push', '-q', 'origin', 'main');
    return repo;
  }

  head(): string {
    return git(this.work, 'rev-parse', 'HEAD');
  }

  /** Commits changes on main (a null content deletes) and pushes; returns the commit. */
  async commit(files: Record<string, string | null>, message: string): Promise<string> {
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.work, path);
      if (content === null) await rm(full);
      else {
        await mkdir(dirname(full), { recursive: true });
        await writeFile(full, content);
      }
    }
    git(this.work, 'add', '-A');
    git(this.work, 'commit', '-qm', message);
    git(this.work, 'push', '-q', 'origin', 'main');
    return this.head();
  }

  async read(path: string): Promise<string> {
    return readFile(join(this.work, path), 'utf8');
  }

  /** Writes rollout.yaml on the state branch, as the promote action would, and pushes it. */
  writeState(state: RolloutState | string, message = 'test: change the rollout'): string {
    const dir = join(this.root, 'state-work');
    if (existsSync(dir)) {
      git(dir, 'fetch', '-q', 'origin');
      git(dir, 'reset', '-q', '--hard', 'origin/fleetwave/state');
    } else {
      git(this.root, 'clone', '-q', '--branch', 'fleetwave/state', this.origin, 'state-work');
    }
    const text = typeof state === 'string' ? state : serializeRolloutState(state);
    execFileSync('sh', ['-c', 'cat > rollout.yaml'], { cwd: dir, input: text });
    git(dir, 'add', 'rollout.yaml');
    git(dir, 'commit', '-qm', message);
    git(dir, 'push', '-q', 'origin', 'HEAD:refs/heads/fleetwave/state');
    return git(dir, 'rev-parse', 'HEAD');
  }

  stateTip(): string | undefined {
    try {
      return git(this.origin, 'rev-parse', '--verify', '--quiet', 'refs/heads/fleetwave/state');
    } catch {
      return undefined;
    }
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `git daemon` serving every repository under `base` on 127.0.0.1:`port`, pushes allowed. */
export class GitDaemon {
  readonly port: number;
  readonly base: string;
  private child: ChildProcess | undefined;

  constructor(base: string, port: number) {
    this.base = base;
    this.port = port;
  }

  url(name: string): string {
    return `git://127.0.0.1:${this.port}/${name}`;
  }

  async start(): Promise<void> {
    this.child = spawn(
      'git',
      [
        'daemon',
        `--base-path=${this.base}`,
        '--export-all',
        '--enable=receive-pack',
        '--reuseaddr',
        '--listen=127.0.0.1',
        `--port=${this.port}`,
        this.base,
      ],
      { stdio: 'ignore', env: GIT_ENV },
    );
    await until(() => accepting(this.port), 'git daemon accepts connections', {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    this.child = undefined;
    // Wait until nothing answers any more.
    for (let i = 0; i < 200 && (await accepting(this.port)); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export function testConfig(
  overrides: Partial<ServeConfig> & { repo: string; dataDir: string },
): ServeConfig {
  return {
    branch: 'main',
    stateBranch: 'fleetwave/state',
    fleetDir: 'fleet',
    host: '127.0.0.1',
    port: 0,
    // Long: tests drive syncs themselves (webhooks, sync()), the interval never interferes.
    fetchIntervalSeconds: 3600,
    enrollToken: ENROLL_TOKEN,
    adminToken: ADMIN_TOKEN,
    webhookSecret: WEBHOOK_SECRET,
    insecureLocalDemo: false,
    maxWaitSeconds: 60,
    maxWaiters: 1000,
    bodyLimit: 16 * 1024,
    logLevel: 'silent',
    ...overrides,
  };
}

export interface Running {
  app: FastifyInstance;
  url: string;
  registry: Registry;
  close(): Promise<void>;
}

/** The real server on a loopback port, after its first sync. */
export async function startServer(config: ServeConfig, deps: ServerDeps = {}): Promise<Running> {
  const registry = deps.registry ?? new Registry();
  const app = await buildServer(config, { logger: false, registry, ...deps });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.reconciler.sync.sync();
  const { port } = app.server.address() as { port: number };
  return { app, url: `http://127.0.0.1:${port}`, registry, close: () => app.close() };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

export async function call(
  url: string,
  options: {
    method?: 'GET' | 'POST';
    token?: string;
    body?: unknown;
    raw?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await request(url, {
    method: options.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.body.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.statusCode, headers: res.headers, body: parsed, text };
}

export const LINUX_PROD = { env: 'prod', os: 'linux', arch: 'amd64', region: 'us-east-1' };

export async function enroll(
  url: string,
  id: string,
  labels: Record<string, string> = LINUX_PROD,
): Promise<string> {
  const res = await call(`${url}/v1/enroll`, { token: ENROLL_TOKEN, body: { id, labels } });
  if (res.status !== 200) throw new Error(`enroll failed: ${res.status} ${res.text}`);
  return (res.body as { token: string }).token;
}

/** A metric's value from the exposition text, or undefined. */
export function metric(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}
