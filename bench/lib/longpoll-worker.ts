// One process of waiting agents for the fan-out benchmark: one raw TCP connection per agent
// (no HTTP client in between, so an arrival is timed when its first byte lands), each holding
// a `POST /v1/checkin?wait=N` with the etag the agent runs, or, for the etcd yardstick, an
// etcd watch (`POST /v3/watch` on one key, through its HTTP gateway). Reports when every
// request is sent, then, when asked, each agent's arrival time, status and whether the etag
// changed (for a watch: 200 and changed once an event arrived).

import { connect, type Socket } from 'node:net';
import { watchRequest } from './etcd.ts';
import { wallMs } from './stats.ts';

export interface LongpollAgent {
  id: string;
  token: string;
  labels: Record<string, string>;
  etag: string;
  version: string;
}

export type LongpollMessage =
  | { kind: 'start'; port: number; wait: number; agents: LongpollAgent[] }
  | { kind: 'watch'; port: number; key: string; count: number }
  | { kind: 'watching' }
  | { kind: 'report' }
  | { kind: 'close' };

export type LongpollReply =
  | { kind: 'sent'; sent: number; errors: number }
  /** Watches etcd confirmed (`"created": true`). */
  | { kind: 'watching'; created: number }
  | {
      kind: 'report';
      /** Wall-clock ms of each agent's answer (NaN: none yet). */
      arrivals: number[];
      /** Status of each answer (0: none yet). */
      statuses: number[];
      /** Whether each answer carried an etag other than the agent's. */
      changed: boolean[];
      errors: number;
    };

/** Connections opening at once: enough to be quick, few enough not to overflow the backlog. */
const CONNECTING = 200;

const sockets: Socket[] = [];
let arrivals: number[] = [];
let statuses: number[] = [];
let changed: boolean[] = [];
let errors = 0;

function send(reply: LongpollReply): void {
  process.send!(reply);
}

function request(port: number, wait: number, a: LongpollAgent): string {
  const body = JSON.stringify({
    id: a.id,
    labels: a.labels,
    current: { etag: a.etag, version: a.version },
    health: { status: 'ok' },
  });
  return (
    `POST /v1/checkin?wait=${wait} HTTP/1.1\r\n` +
    `host: 127.0.0.1:${port}\r\n` +
    `authorization: Bearer ${a.token}\r\n` +
    `content-type: application/json\r\n` +
    `if-none-match: "${a.etag}"\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n\r\n` +
    body
  );
}

function open(port: number, wait: number, agent: LongpollAgent, i: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let head = '';
    socket.setEncoding('latin1');
    socket.once('connect', () => {
      socket.write(request(port, wait, agent));
      resolve();
    });
    socket.on('data', (chunk: string) => {
      if (statuses[i] !== 0) return; // the body, or a later answer: not timed
      if (Number.isNaN(arrivals[i])) arrivals[i] = wallMs();
      head += chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 16_384) return;
      statuses[i] = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? -1);
      const etag = /\r\netag: "([^"]*)"/i.exec(head)?.[1];
      changed[i] = etag !== undefined && etag !== agent.etag;
    });
    socket.on('error', () => {
      errors++;
      resolve();
    });
  });
}

async function start(port: number, wait: number, agents: LongpollAgent[]): Promise<void> {
  arrivals = agents.map(() => NaN);
  statuses = agents.map(() => 0);
  changed = agents.map(() => false);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < agents.length) {
      const i = next++;
      await open(port, wait, agents[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTING, agents.length) }, lane));
  send({ kind: 'sent', sent: agents.length - errors, errors });
}

let created = 0;

function watch(port: number, key: string, i: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let seen = '';
    let confirmed = false;
    socket.setEncoding('latin1');
    socket.once('connect', () => {
      socket.write(watchRequest(port, key));
      resolve();
    });
    socket.on('data', (chunk: string) => {
      if (statuses[i] !== 0) return;
      if (confirmed && chunk.includes('"events"')) {
        arrivals[i] = wallMs();
        statuses[i] = 200;
        changed[i] = true;
        return;
      }
      seen += chunk;
      if (!confirmed && seen.includes('"created":true')) {
        confirmed = true;
        created++;
        if (seen.indexOf('"events"') > seen.indexOf('"created":true')) {
          arrivals[i] = wallMs();
          statuses[i] = 200;
          changed[i] = true;
        }
        seen = '';
      }
    });
    socket.on('error', () => {
      errors++;
      resolve();
    });
  });
}

async function startWatches(port: number, key: string, count: number): Promise<void> {
  arrivals = Array.from({ length: count }, () => NaN);
  statuses = Array.from({ length: count }, () => 0);
  changed = Array.from({ length: count }, () => false);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await watch(port, key, next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTING, count) }, lane));
  send({ kind: 'sent', sent: count - errors, errors });
}

process.on('message', (m: LongpollMessage) => {
  if (m.kind === 'start') void start(m.port, m.wait, m.agents);
  else if (m.kind === 'watch') void startWatches(m.port, m.key, m.count);
  else if (m.kind === 'watching') send({ kind: 'watching', created });
  else if (m.kind === 'report') send({ kind: 'report', arrivals, statuses, changed, errors });
  else {
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
});
// Never outlive the parent.
process.on('disconnect', () => process.exit(0));
