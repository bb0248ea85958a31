// Real parts for agent tests: a TLS artifact server on loopback with a throwaway CA (fleet
// artifact URLs must be https), releases of the example fleet pointing at it, and a reconciler
// that can be stopped and started again on the same port.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent as HttpAgent } from 'undici';
import type { AgentEvent } from '../../agent/client.ts';
import { buildServer } from '../../reconciler/server.ts';
import type { FleetRepo } from '../reconciler/helpers.ts';
import { testConfig, type Running } from '../reconciler/helpers.ts';

export function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A self-signed certificate for 127.0.0.1 (openssl), and a dispatcher that trusts it. */
export function loopbackCertificate(): { key: string; cert: string; dispatcher: HttpAgent } {
  const dir = mkdtempSync(join(tmpdir(), 'fleetwave-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    return { key, cert, dispatcher: new HttpAgent({ connect: { ca: cert } }) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Serves `files` (path → bytes, changeable) over https or http; counts requests per path. */
export class ArtifactServer {
  readonly files = new Map<string, Buffer>();
  readonly requests = new Map<string, number>();
  readonly server: Server;
  port = 0;
  private readonly scheme: string;

  constructor(tls?: { key: string; cert: string }, extra?: RequestListener) {
    const handler: RequestListener = (req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
      const bytes = this.files.get(path);
      if (bytes) {
        res.writeHead(200, { 'content-length': bytes.length });
        res.end(bytes);
      } else if (extra) extra(req, res);
      else res.writeHead(404).end();
    };
    this.server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
    this.scheme = tls ? 'https' : 'http';
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  url(path: string): string {
    return `${this.scheme}://127.0.0.1:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    await close(this.server);
  }
}

/** A Release for `version` whose every artifact is `url` with the sha256 of `bytes`. */
export function releaseYaml(version: string, url: string, bytes: Buffer): string {
  const artifact = (os: string, arch: string) =>
    `    - os: ${os}\n      arch: ${arch}\n      url: ${url}\n      sha256: ${sha256(bytes)}\n`;
  return (
    `apiVersion: fleetwave.dev/v1\nkind: Release\nmetadata:\n  name: metrics-agent-${version}\n` +
    `spec:\n  version: ${version}\n  artifacts:\n` +
    artifact('linux', 'amd64') +
    artifact('linux', 'arm64') +
    artifact('windows', 'amd64')
  );
}

/** The real reconciler on a fixed loopback port, so it can come back where agents look. */
export async function startReconcilerOn(repo: FleetRepo, port: number): Promise<Running> {
  const config = testConfig({ repo: repo.origin, dataDir: join(repo.root, 'data'), port });
  const app = await buildServer(config, { logger: false });
  await app.listen({ port, host: '127.0.0.1' });
  await app.reconciler.sync.sync();
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    registry: app.reconciler.registry,
    close: () => app.close(),
  };
}

/** Collects an agent's events and lets a test wait for one (bounded by the test's timeout). */
export class Events {
  readonly all: AgentEvent[] = [];
  private waiters: Array<{ test: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void }> =
    [];

  readonly push = (event: AgentEvent): void => {
    this.all.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(event)) return true;
      w.resolve(event);
      return false;
    });
  };

  /** The first event from now on (or already seen after `since`) that passes `test`. */
  next<K extends AgentEvent['kind']>(
    kind: K,
    test: (e: Extract<AgentEvent, { kind: K }>) => boolean = () => true,
    since = this.all.length,
  ): Promise<Extract<AgentEvent, { kind: K }>> {
    const match = (e: AgentEvent): boolean =>
      e.kind === kind && test(e as Extract<AgentEvent, { kind: K }>);
    const seen = this.all.slice(since).find(match);
    if (seen) return Promise.resolve(seen as Extract<AgentEvent, { kind: K }>);
    return new Promise((resolve) =>
      this.waiters.push({ test: match, resolve: resolve as (e: AgentEvent) => void }),
    );
  }

  count(kind: AgentEvent['kind'], since = 0): number {
    return this.all.slice(since).filter((e) => e.kind === kind).length;
  }
}
