// Runs the prometheus gate's queries against the Prometheus HTTP API (`/api/v1/query`) with
// undici and a timeout per query; the outcome goes to the pure gate (core/rollout/gates) as
// data. Nothing here throws: every failure is an outcome that says what went wrong.

import { request, type Dispatcher } from 'undici';
import { parseDuration } from '../core/fleet/duration.ts';
import type { PrometheusGate } from '../core/fleet/model.ts';
import {
  MAX_RESPONSE_BYTES,
  parseQueryResponse,
  type QueryOutcome,
} from '../core/rollout/gates/prometheus.ts';

export const DEFAULT_QUERY_TIMEOUT_MS = 10_000;

export interface QueryOptions {
  /** Base URL of the Prometheus API, e.g. http://prometheus:9090 */
  url: string;
  query: string;
  timeoutMs: number;
  dispatcher?: Dispatcher;
  /** Evaluation time (clock ms); Prometheus's own now when absent. */
  time?: number;
}

export async function runQuery(options: QueryOptions): Promise<QueryOutcome> {
  let url: URL;
  try {
    url = new URL('api/v1/query', options.url.endsWith('/') ? options.url : `${options.url}/`);
  } catch {
    return { ok: false, error: `not a URL: ${options.url}` };
  }
  url.searchParams.set('query', options.query);
  if (options.time !== undefined) url.searchParams.set('time', String(options.time / 1000));
  // Prometheus stops evaluating at its own timeout; we stop waiting at ours. The signal bounds
  // the whole exchange, headersTimeout/bodyTimeout a server that stalls.
  url.searchParams.set('timeout', `${Math.max(1, Math.floor(options.timeoutMs / 1000))}s`);
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const res = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      signal,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_RESPONSE_BYTES) {
        res.body.destroy();
        return { ok: false, error: `the answer is larger than ${MAX_RESPONSE_BYTES} bytes` };
      }
      chunks.push(chunk as Buffer);
    }
    return parseQueryResponse(res.statusCode, Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    if (signal.aborted) return { ok: false, error: `timed out after ${options.timeoutMs} ms` };
    const err = e as Error & { code?: string };
    return {
      ok: false,
      error: `request failed: ${err.code ? `${err.code}: ` : ''}${err.message}`,
    };
  }
}

/** Runs every query of a wave's prometheus gate, concurrently; outcomes by query name. */
export async function runPrometheusGates(
  url: string,
  gates: readonly PrometheusGate[],
  options: { dispatcher?: Dispatcher; time?: number } = {},
): Promise<Record<string, QueryOutcome>> {
  const entries = await Promise.all(
    gates.map(async (g) => {
      const timeoutMs = (g.timeout && parseDuration(g.timeout)) || DEFAULT_QUERY_TIMEOUT_MS;
      const outcome = await runQuery({ url, query: g.query, timeoutMs, ...options });
      return [g.name, outcome] as const;
    }),
  );
  return Object.fromEntries(entries);
}
