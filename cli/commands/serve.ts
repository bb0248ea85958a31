// fleetwave serve: the reconciler's entry point. Reads the config, builds the server, listens,
// and shuts down gracefully on SIGTERM/SIGINT (held long-polls are answered, the sync stops).

import { FleetwaveError } from '../../core/errors.ts';
import { SERVE_HELP, readServeConfig } from '../../reconciler/config.ts';
import { buildServer } from '../../reconciler/server.ts';
import { EXIT, type CommandIO } from '../io.ts';

export async function serveCommand(args: string[], io: CommandIO): Promise<number> {
  const config = readServeConfig(args, io.env, io.cwd);
  if (!config) {
    io.stdout(SERVE_HELP);
    return EXIT.ok;
  }
  const app = await buildServer(config);
  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (e) {
    await app.close();
    const code = (e as NodeJS.ErrnoException).code;
    const where = `${config.host}:${config.port}`;
    if (code === 'EADDRINUSE')
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `cannot listen on ${where}: the port is in use by another process; pick another with --port (0 picks a free one)`,
        { cause: e },
      );
    if (code === 'EACCES' || code === 'EADDRNOTAVAIL')
      throw new FleetwaveError(
        'CONFIG_INVALID',
        `cannot listen on ${where}: ${code === 'EACCES' ? 'not allowed (ports below 1024 need privileges); pick another with --port' : `no interface of this machine has the address ${config.host}; check --host`}`,
        { cause: e },
      );
    throw e;
  }
  // One human line whatever the log level: scripts (and the demo) read the address from it.
  io.stderr(`fleetwave serve: listening on ${address}/\n`);
  if (app.agentPort !== null) {
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    io.stderr(`fleetwave serve: agent port listening on http://${host}:${app.agentPort.port}/\n`);
  }
  return new Promise<number>((resolve) => {
    let closing = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (closing) {
        app.log.warn({ signal }, 'second signal: exiting without waiting');
        process.exit(1);
      }
      closing = true;
      app.log.info({ signal }, 'shutting down');
      app.close().then(
        () => {
          app.log.info('stopped');
          resolve(EXIT.ok);
        },
        (e: unknown) => {
          app.log.error({ err: e }, 'shutdown failed');
          resolve(EXIT.invalid);
        },
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
