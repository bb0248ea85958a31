// `fleetwave serve` with the hand-written HTTP/1.1 fast path of before issue 15
// (old-fastpath.ts) in front of today's server: kept only so the benchmarks can measure it
// against Node's parser in the same run, on the same code otherwise. Never used in production.
//   node bench/lib/old-serve.ts serve [the flags of fleetwave serve]

import { readServeConfig } from '../../reconciler/config.ts';
import { defaultMaxConnections } from '../../reconciler/config.ts';
import { requestIds } from '../../reconciler/http-server.ts';
import { buildServer } from '../../reconciler/server.ts';
import { FastPath } from './old-fastpath.ts';

const config = readServeConfig(process.argv.slice(3), process.env, process.cwd());
if (!config) throw new Error('usage: old-serve.ts serve FLAGS');
const app = await buildServer(config);
// As the fast path was wired: it takes the server's connection listeners and hands what it
// does not answer to them (node:http, then the agent routes' raw handlers and fastify).
const fastPath = new FastPath(app.server, {
  ctx: app.reconciler,
  log: app.log,
  requestId: requestIds(),
  bodyLimit: config.bodyLimit,
  maxConnections: config.maxConnections ?? defaultMaxConnections(),
});
app.addHook('preClose', async () => fastPath.close());
const address = await app.listen({ host: config.host, port: config.port });
process.stderr.write(`fleetwave serve (old fast path): listening on ${address}/\n`);
const stop = (): void => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
