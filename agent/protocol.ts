// The agent side of the reconciler's API (DESIGN §5): enroll, and check in with If-None-Match
// and ?wait= long-polling. Every answer becomes a typed value or an AgentError with what to do
// next; nothing the server sends is trusted before it is checked. Shared by the reference agent
// and the simulator, so simulated reports are exactly real ones.

import { request, type Dispatcher } from 'undici';
import { ERROR_CODES, type ErrorKind } from '../core/errors.ts';
import type { Labels, Target } from '../core/target/model.ts';
import type { CheckinBody } from '../wire/checkin.ts';
import type { ErrorBody } from '../wire/error.ts';
import { parseRetryAfter } from './backoff.ts';
import { AgentError, describe } from './errors.ts';
import { checkTarget, etagHeader } from './target.ts';

export type CheckinAnswer =
  | { kind: 'target'; target: Target }
  /** 304: the agent has its target. `etag` is the server's, `pollAfterSeconds` its pacing. */
  | { kind: 'unchanged'; etag: string | undefined; pollAfterSeconds: number | undefined };

export interface RequestOptions {
  dispatcher?: Dispatcher | undefined;
  /** Time allowed for headers beyond the long-poll wait, and between body chunks, in ms. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  now?: () => number;
}

export const MAX_ANSWER_BYTES = 1024 * 1024;

export function endpoint(base: string, path: string): string {
  return new URL(path, base.endsWith('/') ? base : `${base}/`).toString();
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy();
      throw new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * An error answer (wire/error.ts) as one line, and the kind of its code when it is one the
 * API knows; else the start of the text (a proxy's page) and no kind.
 */
function errorOf(text: string): { message: string; kind: ErrorKind | undefined } {
  try {
    const body = JSON.parse(text) as Partial<ErrorBody> | null;
    const code: unknown = body?.error?.code;
    if (typeof body?.error?.message === 'string')
      return {
        message: `${String(code)}: ${body.error.message}`.slice(0, 500),
        kind:
          typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
            ? ERROR_CODES[code as keyof typeof ERROR_CODES].kind
            : undefined,
      };
  } catch {
    // not the API's error format
  }
  return { message: JSON.stringify(text.slice(0, 200)), kind: undefined };
}

async function send(
  url: string,
  options: RequestOptions & {
    method: 'GET' | 'POST';
    headers: Record<string, string>;
    body?: string;
    headersTimeoutMs: number;
  },
): Promise<{ status: number; headers: Dispatcher.ResponseData['headers']; text: string }> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: options.method,
      headers: options.headers,
      ...(options.body === undefined ? {} : { body: options.body }),
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  } catch (e) {
    if (options.signal?.aborted) throw e;
    throw new AgentError('AGENT_UNREACHABLE', `${url}: ${describe(e)}`, { cause: e });
  }
  let text: string;
  try {
    text = await readLimited(res.body);
  } catch (e) {
    if (options.signal?.aborted) throw e;
    throw new AgentError('AGENT_BAD_ANSWER', `${url}: reading the answer failed: ${describe(e)}`, {
      cause: e,
      status: res.statusCode,
    });
  }
  const status = res.statusCode;
  if (status < 400) return { status, headers: res.headers, text };
  // What the agent does next follows the kind of the answer's code (client.ts, retry.ts);
  // an answer that is not the API's (a proxy) is read by its status.
  const { message, kind } = errorOf(text);
  const said = `${url} answered ${status} ${message}`;
  if (status === 429 || status === 503 || kind === 'waiting') {
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], (options.now ?? Date.now)());
    throw new AgentError('AGENT_BUSY', said, {
      status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (status >= 500 || kind === 'transient')
    throw new AgentError('AGENT_SERVER_ERROR', said, { status });
  throw new AgentError('AGENT_REFUSED', said, { status });
}

function json(url: string, text: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AgentError(
      'AGENT_BAD_ANSWER',
      `${url} answered ${status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      { status },
    );
  }
}

/** POST /v1/enroll: the agent's credential. */
export async function enroll(
  base: string,
  agent: { id: string; labels: Labels; enrollToken?: string | undefined },
  options: RequestOptions,
): Promise<string> {
  const url = endpoint(base, 'v1/enroll');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (agent.enrollToken !== undefined) headers.authorization = `Bearer ${agent.enrollToken}`;
  const res = await send(url, {
    ...options,
    method: 'POST',
    headers,
    body: JSON.stringify({ id: agent.id, labels: agent.labels }),
    headersTimeoutMs: options.timeoutMs,
  });
  const body = json(url, res.text, res.status) as { token?: unknown };
  if (res.status !== 200 || typeof body?.token !== 'string' || body.token.length > 2048)
    throw new AgentError('AGENT_BAD_ANSWER', `${url} answered ${res.status} without a token`, {
      status: res.status,
    });
  return body.token;
}

/**
 * POST /v1/checkin?wait=N. `has` are the etags the agent does not want again (the one it runs;
 * also one it gave up applying), sent as If-None-Match.
 */
export async function checkin(
  base: string,
  token: string,
  body: CheckinBody,
  has: readonly string[],
  waitSeconds: number,
  options: RequestOptions,
): Promise<CheckinAnswer> {
  const url = endpoint(base, `v1/checkin?wait=${Math.max(0, Math.floor(waitSeconds))}`);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: `Bearer ${token}`,
  };
  if (has.length > 0) headers['if-none-match'] = has.map((e) => `"${e}"`).join(', ');
  const res = await send(url, {
    ...options,
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    headersTimeoutMs: waitSeconds * 1000 + options.timeoutMs,
  });
  if (res.status === 304) {
    const pollAfter = Number(res.headers['fleetwave-poll-after']);
    return {
      kind: 'unchanged',
      etag: etagHeader(res.headers.etag),
      pollAfterSeconds:
        Number.isInteger(pollAfter) && pollAfter >= 1 && pollAfter <= 86_400
          ? pollAfter
          : undefined,
    };
  }
  if (res.status !== 200)
    throw new AgentError('AGENT_BAD_ANSWER', `${url} answered ${res.status}, not 200 or 304`, {
      status: res.status,
    });
  const checked = checkTarget(json(url, res.text, res.status), etagHeader(res.headers.etag));
  if (!checked.ok)
    throw new AgentError(
      'AGENT_BAD_ANSWER',
      `${url} answered a target refused: ${checked.problem}`,
      {
        status: res.status,
      },
    );
  return { kind: 'target', target: checked.target };
}
