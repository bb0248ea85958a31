// The floor for memory per waiting agent: a bare node:http server (no framework, no logic)
// that reads each request and holds its response open. The fan-out benchmark measures its RSS
// with the same clients, so the reconciler's figure can be read against what Node itself costs.

import { createServer, type ServerResponse } from 'node:http';

const held: ServerResponse[] = [];
const server = createServer((request, response) => {
  request.resume();
  request.once('end', () => held.push(response));
});
server.listen(0, '127.0.0.1', () => {
  process.send!({ kind: 'listening', port: (server.address() as { port: number }).port });
});
process.on('message', (m: { kind: 'count' | 'close' }) => {
  if (m.kind === 'count') process.send!({ kind: 'count', held: held.length });
  else process.exit(0);
});
process.on('disconnect', () => process.exit(0));
