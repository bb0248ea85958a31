// Downloads a target's artifact and verifies its sha256 before anything may use it. The bytes
// stream to a temp file next to their final place while they are hashed; only a file whose
// hash is the target's is renamed to artifacts/<sha256>. Redirects are followed by hand, to a
// limit, and a loop is named as one; size and time are bounded. openDownload holds these rules
// for every download of the agent (signature.ts fetches signature files with them).

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { syncDirectory } from './cache.ts';
import { AgentError, describe } from './errors.ts';

export interface DownloadOptions {
  url: string;
  sha256: string;
  /** Where verified artifacts live, named by their sha256. */
  dir: string;
  dispatcher?: Dispatcher;
  maxBytes?: number;
  maxRedirects?: number;
  /** Headers and body idle timeouts, in ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_MAX_ARTIFACT_BYTES = 1024 ** 3;
export const DEFAULT_MAX_REDIRECTS = 5;

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** How any download of the agent goes: redirects by hand, http(s) only, bounded size and time. */
export interface DownloadRules {
  dispatcher?: Dispatcher | undefined;
  maxBytes: number;
  maxRedirects: number;
  /** Headers and body idle timeouts, in ms. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Makes the error for a failed download. `transient` says whether trying again later may help
 * (no connection, a timeout, 5xx, 408, 429) rather than needing someone to fix the URL or the
 * file (4xx, a redirect loop, too large).
 */
export type DownloadFailure = (message: string, transient: boolean, cause?: unknown) => AgentError;

/**
 * GETs `url`, following up to `maxRedirects` redirects (never to anything but http(s), never
 * in a loop), and returns the body of its 200 answer, refused early when its Content-Length is
 * above `maxBytes` (the reader must still count: a body may have no Content-Length).
 */
export async function openDownload(
  start: string,
  rules: DownloadRules,
  failed: DownloadFailure,
): Promise<Dispatcher.ResponseData['body']> {
  let url = start;
  const seen = new Set<string>([url]);
  for (let hop = 0; ; hop++) {
    const protocol = new URL(url).protocol;
    if (protocol !== 'https:' && protocol !== 'http:')
      throw failed(`a redirect led to ${url}, which is not http(s)`, false);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        ...(rules.dispatcher ? { dispatcher: rules.dispatcher } : {}),
        headersTimeout: rules.timeoutMs,
        bodyTimeout: rules.timeoutMs,
        ...(rules.signal ? { signal: rules.signal } : {}),
      });
    } catch (e) {
      throw failed(describe(e), true, e);
    }
    if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
      await res.body.dump().catch(() => {});
      const location = res.headers.location;
      if (typeof location !== 'string') throw failed(`${res.statusCode} without a Location`, false);
      const next = new URL(location, url).toString();
      if (seen.has(next)) throw failed(`redirect loop: ${url} leads back to ${next}`, false);
      if (hop + 1 > rules.maxRedirects)
        throw failed(`more than ${rules.maxRedirects} redirects`, false);
      seen.add(next);
      url = next;
      continue;
    }
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      const status = res.statusCode;
      throw failed(`answered ${status}`, status >= 500 || status === 408 || status === 429);
    }
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > rules.maxBytes) {
      await res.body.dump().catch(() => {});
      throw failed(`${length} bytes is more than the limit of ${rules.maxBytes}`, false);
    }
    return res.body;
  }
}

/** The path of the verified artifact (downloaded now, or already there and still intact). */
export async function fetchArtifact(options: DownloadOptions): Promise<string> {
  const want = options.sha256.toLowerCase();
  const final = join(options.dir, want);
  if ((await stat(final).catch(() => undefined))?.isFile()) {
    if ((await sha256OfFile(final)) === want) return final;
    await rm(final, { force: true });
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;
  const failed = (message: string, transient: boolean, cause?: unknown): AgentError =>
    new AgentError('ARTIFACT_DOWNLOAD_FAILED', `artifact ${options.url}: ${message}`, {
      cause,
      transient,
    });
  const body = await openDownload(
    options.url,
    {
      dispatcher: options.dispatcher,
      maxBytes,
      maxRedirects: options.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
      timeoutMs: options.timeoutMs ?? 60_000,
      signal: options.signal,
    },
    failed,
  );
  return await receive(body, options.dir, final, want, maxBytes, failed);
}

async function receive(
  body: Dispatcher.ResponseData['body'],
  dir: string,
  final: string,
  want: string,
  maxBytes: number,
  failed: DownloadFailure,
): Promise<string> {
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.partial`);
  const hash = createHash('sha256');
  let size = 0;
  const file = await open(temp, 'wx', 0o600);
  try {
    try {
      for await (const chunk of body) {
        const buffer = chunk as Buffer;
        size += buffer.length;
        if (size > maxBytes) throw failed(`more than the limit of ${maxBytes} bytes`, false);
        hash.update(buffer);
        await file.write(buffer);
      }
    } catch (e) {
      body.destroy();
      throw e instanceof AgentError ? e : failed(describe(e), true, e);
    }
    const got = hash.digest('hex');
    if (got !== want) {
      throw new AgentError(
        'ARTIFACT_MISMATCH',
        `artifact refused: its sha256 is ${got}, the target says ${want} (${size} bytes received)`,
      );
    }
    await file.sync();
    await file.close();
    await rename(temp, final);
    await syncDirectory(dir);
    return final;
  } finally {
    await file.close().catch(() => {});
    await rm(temp, { force: true }).catch(() => {});
  }
}
