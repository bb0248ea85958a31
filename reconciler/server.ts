// buildServer(config, deps): the reconciler as a fastify app that never listens. The entry
// point (cli/commands/serve.ts) listens and handles signals; tests and benchmarks build
// servers freely, with their own clock, randomness and Prometheus registry.

import { hostname } from 'node:os';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { Registry } from 'prom-client';
import { AgentRegistry } from './agents.ts';
import { deriveTokenKey } from './auth.ts';
import { defaultMaxConnections, type ServeConfig } from './config.ts';
import { AgentHttp } from './agent-http.ts';
import { AgentPort } from './agent-port.ts';
import type { Reconciler } from './context.ts';
import { expireWaiter, releaseWaiter, type CheckinWaiter } from './agent-api.ts';
import { FleetwaveError } from '../core/errors.ts';
import { clientError, errorBody, handleError } from './errors.ts';
import { ConnectionCap, createHttpServer, requestIds, requestLevel } from './http-server.ts';
import { LongPoll } from './longpoll.ts';
import { Metrics } from './metrics.ts';
import { RolloutEngine } from './engine.ts';
import { Mirror } from '../rollout/mirror.ts';
import { Reports } from './reports.ts';
import { openStore } from './store/store.ts';
import { DEFAULT_FORGET_AFTER_SECONDS } from './config.ts';
import { fleetSilentAfterMs } from './routes/status.ts';
import { agentRoutes } from './routes/agents.ts';
import { healthRoutes } from './routes/health.ts';
import { inventoryRoutes } from './routes/inventory.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { pageRoutes } from './routes/page.ts';
import { rolloutRoutes } from './routes/rollout.ts';
import { statusRoutes } from './routes/status.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { FleetSync } from './sync.ts';
import { Targets } from './targets.ts';

export interface ServerDeps {
  now?: () => number;
  random?: () => number;
  registry?: Registry;
  /** fastify's logger option (pino); false for none. */
  logger?: FastifyServerOptions['logger'];
}

declare module 'fastify' {
  interface FastifyInstance {
    reconciler: Reconciler;
    rollout: RolloutEngine;
    /** The strict agent port (--agent-port), or null without one. */
    agentPort: AgentPort | null;
  }
}

export async function buildServer(
  config: ServeConfig,
  deps: ServerDeps = {},
): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const registry = deps.registry ?? new Registry();
  const requestId = requestIds();
  const requestTimeoutMs = (config.requestTimeoutSeconds ?? 30) * 1000;
  // One --max-connections for the main port and the agent port.
  const connections = new ConnectionCap(config.maxConnections ?? defaultMaxConnections(), random);
  // Set once ctx exists (below), long before the server listens.
  const agentRoutesOf: { http?: AgentHttp } = {};
  const app = Fastify({
    // One node:http server for every route (http-server.ts: timeouts, connection cap); the
    // agent routes' raw handlers first, fastify's routing for the rest.
    serverFactory: (fastify) =>
      createHttpServer({ requestTimeoutMs, connections, requestId }, (req, res) => {
        if (!agentRoutesOf.http?.route(req, res)) fastify(req, res);
      }),
    genReqId: requestId,
    logger: deps.logger ?? { level: config.logLevel },
    // One line per request comes from the onResponse hook below instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    // Agent ids (GET /v1/agents/{id}/target) may be 253 characters.
    routerOptions: { maxParamLength: 256 },
    bodyLimit: config.bodyLimit,
    // Whatever node:http or the router refuse before a route runs answers in the API's one
    // error shape too (never the URL echoed back).
    clientErrorHandler: clientError,
    frameworkErrors: (error, request, reply) => {
      const answer =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? Object.assign(new Error('a segment of the URL is longer than 256 characters'), {
              statusCode: 414,
            })
          : new FleetwaveError('REQUEST_INVALID', 'the URL is malformed (bad percent-encoding)');
      handleError(answer, request, reply);
    },
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        allErrors: true,
        useDefaults: false,
      },
    },
    return503OnClosing: true,
  });

  const mirror = await Mirror.open({
    dataDir: config.dataDir,
    remote: config.repo,
    branch: config.branch,
    stateBranch: config.stateBranch,
    fleetDir: config.fleetDir,
    // A process this large (thousands of sockets) is slow to fork and waits while it does:
    // git starts from a small helper instead, off the way from a push to the agents.
    launcher: true,
  });
  // A store that cannot be opened (refused, wrong credentials, a newer schema) fails the start.
  const store = await openStore(
    config.store ?? { kind: 'sqlite', path: join(config.dataDir, 'agents.db') },
  );
  const agents = new AgentRegistry();
  const ctx = {
    config,
    now,
    random,
    registry,
    agents,
    mirror,
    targets: undefined,
  } as Partial<Reconciler> as Reconciler;
  ctx.tokenKey = deriveTokenKey({
    ...(config.tokenSecret === undefined ? {} : { tokenSecret: config.tokenSecret }),
    ...(config.enrollToken === undefined ? {} : { enrollToken: config.enrollToken }),
  });
  ctx.longpoll = new LongPoll<CheckinWaiter>({
    maxWaiters: config.maxWaiters,
    maxWaitSeconds: config.maxWaitSeconds,
    now,
    random,
    evaluate: (waiter) => releaseWaiter(ctx, waiter),
    expire: (waiter) => expireWaiter(ctx, waiter),
  });
  ctx.metrics = new Metrics(registry, {
    counts: async () => {
      const targets = ctx.targets;
      const waves = targets?.waveNames ?? [];
      const silentAfter = targets ? fleetSilentAfterMs(targets.rollout.stable.model) : 0;
      // While the store is down and nothing was counted yet, no series (fleetwave_store_up says why).
      const rows = await ctx.reports.counts(now() - silentAfter).catch(() => []);
      return { rows, waves };
    },
    labelCounts: (label) => store.labelCounts(label).catch(() => []),
    waiters: () => ctx.longpoll.size,
    shortRevision: (r) => r.slice(0, 12),
    now,
    ...(config.metricLabels === undefined ? {} : { breakdownLabels: config.metricLabels }),
  });
  ctx.reports = new Reports({
    store,
    agents,
    replica: config.replica ?? hostname(),
    now,
    log: app.log,
    metrics: ctx.metrics,
    targets: () => ctx.targets,
    flushIntervalMs: config.storeFlushMs ?? 1000,
    forgetAfterMs: (config.forgetAfterSeconds ?? DEFAULT_FORGET_AFTER_SECONDS) * 1000,
  });
  ctx.sync = new FleetSync({
    mirror,
    metrics: ctx.metrics,
    log: app.log,
    now,
    intervalSeconds: config.fetchIntervalSeconds,
    branch: config.branch,
    stateBranch: config.stateBranch,
    onChange: (served) => {
      ctx.metrics.waves(served.stable.model.fleet.spec.waves.map((w) => w.name));
      try {
        ctx.targets = new Targets(served, ctx.targets);
      } catch (e) {
        app.log.error({ err: e }, 'cannot render the new rollout; still serving the last one');
        return;
      }
      // The waiting agents first: re-judging every known agent for the status and metrics
      // (the next store flush) waits until they are answered, and then finds the targets the
      // release rendered instead of rendering each again.
      ctx.longpoll.changed(() => ctx.reports.rolloutChanged());
    },
    onBranch: () => engine.trigger(),
  });
  const engine = new RolloutEngine(ctx, app.log, config.evaluateIntervalSeconds ?? 0);
  const agentHttp = new AgentHttp({ ctx, log: app.log, requestId, bodyLimit: config.bodyLimit });
  agentRoutesOf.http = agentHttp;
  const agentPort =
    config.agentPort === undefined
      ? null
      : new AgentPort({
          ctx,
          log: app.log,
          requestId,
          bodyLimit: config.bodyLimit,
          requestTimeoutMs,
          connections,
        });
  app.decorate('agentPort', agentPort);
  app.decorate('rollout', engine);
  app.decorate('reconciler', ctx);

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
  // Hooks on every request take fastify's callback form: no promise and no microtask each.
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      // fastify would read gzip bytes as JSON and answer "not valid JSON".
      done(
        new FleetwaveError(
          'REQUEST_ENCODING_UNSUPPORTED',
          `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported; send the body uncompressed`,
        ),
      );
      return;
    }
    done();
  });
  // One log line per request; the steady stream of agent check-ins only at debug level.
  // The agent routes' raw handlers (agent-http.ts) do what these two hooks do themselves.
  app.addHook('onResponse', (request, reply, done) => {
    const level = requestLevel(reply.statusCode, request.url);
    const line = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    request.log[level](line, 'request');
    done();
  });

  await app.register(agentRoutes, { ctx });
  await app.register(statusRoutes, { ctx, engine });
  await app.register(rolloutRoutes, { ctx, engine });
  await app.register(inventoryRoutes, { ctx });
  await app.register(webhookRoutes, { ctx });
  await app.register(healthRoutes, { ctx });
  await app.register(metricsRoutes, { ctx });
  await app.register(pageRoutes);

  app.addHook('onReady', async () => {
    // The agent port listens when the server gets ready to listen: a port in use fails the start.
    if (agentPort !== null && config.agentPort !== undefined) {
      await agentPort.listen(config.agentPort, config.host).catch((e: unknown) => {
        throw new FleetwaveError(
          'CONFIG_INVALID',
          `cannot listen on ${config.host}:${config.agentPort} (--agent-port): ${(e as Error).message}`,
          { cause: e },
        );
      });
    }
    if (config.insecureLocalDemo) {
      app.log.warn(
        '--insecure-local-demo: anyone who can reach this server may enroll agents and act on the rollout',
      );
    }
    ctx.reports.start();
    void ctx.sync.start().then(() => engine.start());
  });
  let agentPortClosed: Promise<void> | undefined;
  // Held long-polls would keep close() waiting for their full wait: answer them now (304), so
  // agents come back to another replica or to this one after the restart.
  app.addHook('preClose', async () => {
    await engine.stop();
    await ctx.sync.stop();
    await ctx.reports.stop();
    // Closing first, so the answers to held long-polls say `connection: close`.
    agentHttp.closing = true;
    if (agentPort !== null) agentPort.closing = true;
    ctx.longpoll.drain();
    agentPortClosed = agentPort?.close();
  });
  // Its connections end once answered (or at --request-timeout), as the main port's.
  app.addHook('onClose', async () => {
    await agentPortClosed;
    mirror.close();
  });
  return app;
}
