// The floors for check-in cost: servers that read the same check-in requests as the reconciler
// and answer them with the same bytes, but do no work (no credential, no JSON, no targeting),
// so the check-in benchmark can tell what the runtime costs per request from what fleetwave
// adds. `node-http`: node:http, reading the body and answering with writeHead + end, as
// reconciler/agent-http.ts does; `net`: a bare net.Socket that finds each request's end by its
// Content-Length and writes a prepared answer (not HTTP-complete: a yardstick, never a server).
//   FLOOR_BODY='<the 200 body>' node bench/lib/floor-server.ts node-http|net PORT
// A request whose If-None-Match is "stale" gets the 200 with the body, any other a 304.

import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';

const [kind, portText] = process.argv.slice(2);
const body = process.env.FLOOR_BODY ?? '{}';
const ETAG = '"floor"';
const head = (status: string, more: string): string =>
  `HTTP/1.1 ${status}\r\netag: ${ETAG}\r\ncache-control: no-cache\r\n${more}x-request-id: req-1\r\n` +
  `date: ${new Date().toUTCString()}\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n`;
const NOT_MODIFIED = Buffer.from(`${head('304 Not Modified', 'fleetwave-poll-after: 30\r\n')}\r\n`);
const OK = Buffer.from(
  `${head('200 OK', `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`)}\r\n${body}`,
);

const port = Number(portText);
if (kind === 'node-http') {
  createHttpServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      if (req.headers['if-none-match'] === '"stale"') {
        res.writeHead(200, [
          'etag',
          ETAG,
          'cache-control',
          'no-cache',
          'content-type',
          'application/json; charset=utf-8',
          'content-length',
          String(Buffer.byteLength(body)),
          'x-request-id',
          'req-1',
        ]);
        res.end(body);
      } else {
        res.writeHead(304, [
          'etag',
          ETAG,
          'cache-control',
          'no-cache',
          'fleetwave-poll-after',
          '30',
          'x-request-id',
          'req-1',
        ]);
        res.end();
      }
    });
  }).listen(port, '127.0.0.1');
} else if (kind === 'net') {
  createNetServer({ noDelay: true }, (socket) => {
    let pending = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      pending += chunk;
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /\r\ncontent-length: *(\d+)/i.exec(pending.slice(0, end));
        const length = m ? Number(m[1]) : 0;
        if (pending.length < end + 4 + length) return;
        const stale = pending.slice(0, end).includes('"stale"');
        pending = pending.slice(end + 4 + length);
        socket.write(stale ? OK : NOT_MODIFIED);
      }
    });
    socket.on('error', () => socket.destroy());
  }).listen(port, '127.0.0.1');
} else {
  throw new Error(`floor-server: unknown kind ${kind}`);
}
process.on('SIGTERM', () => process.exit(0));
