// GET /: the status page, one static file that renders /v1/status in the browser. Its inline
// script is allowed by hash in the Content-Security-Policy, so nothing else can run there.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const html = readFileSync(new URL('../page/status.html', import.meta.url), 'utf8');

function scriptHashes(page: string): string {
  return [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)]
    .map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`)
    .join(' ');
}

const policy = [
  "default-src 'none'",
  `script-src ${scriptHashes(html)}`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export async function pageRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .send(html),
  );
}
