// prometheus: PromQL queries whose single value must lie within [min, max]. Pure: the shell
// (rollout/prometheus.ts) runs the queries and hands their outcomes in as data. Errors,
// timeouts, empty results and NaN are never a pass: they wait, and decide() turns a wait
// that outlasts failAfter into a fail.

import { num, type GateContext, type GateResult } from './gate.ts';

export type QueryOutcome = { ok: true; value: number } | { ok: false; error: string };

/** The HTTP API's largest answer we read; a single-sample query is far smaller. */
export const MAX_RESPONSE_BYTES = 1 << 20;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sampleValue(sample: unknown): QueryOutcome {
  if (!Array.isArray(sample) || sample.length !== 2 || typeof sample[1] !== 'string') {
    return { ok: false, error: 'a sample is not [time, "value"]' };
  }
  const text = sample[1];
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) {
    return { ok: false, error: `the value is ${JSON.stringify(text)}, not a finite number` };
  }
  return { ok: true, value };
}

/**
 * Reads an `/api/v1/query` answer strictly: status success, a vector of exactly one sample or
 * a scalar, and a finite number. Everything else is an error that says what was wrong.
 */
export function parseQueryResponse(statusCode: number, body: string): QueryOutcome {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return {
      ok: false,
      error: `HTTP ${statusCode}: the answer is not JSON (${JSON.stringify(body.slice(0, 60))})`,
    };
  }
  if (!isObject(json))
    return { ok: false, error: `HTTP ${statusCode}: the answer is not an object` };
  if (json.status !== 'success') {
    const why = typeof json.error === 'string' ? json.error.slice(0, 200) : 'no error given';
    const type = typeof json.errorType === 'string' ? `${json.errorType}: ` : '';
    return { ok: false, error: `HTTP ${statusCode}: query failed: ${type}${why}` };
  }
  if (statusCode < 200 || statusCode > 299) {
    return { ok: false, error: `HTTP ${statusCode} with status success` };
  }
  const data = json.data;
  if (!isObject(data)) return { ok: false, error: 'the answer has no data' };
  if (data.resultType === 'scalar') return sampleValue(data.result);
  if (data.resultType !== 'vector') {
    return {
      ok: false,
      error: `result type ${JSON.stringify(data.resultType)}; the query must return a vector or a scalar`,
    };
  }
  if (!Array.isArray(data.result)) return { ok: false, error: 'the vector result is not a list' };
  if (data.result.length === 0) return { ok: false, error: 'empty result (no series matched)' };
  if (data.result.length > 1) {
    return {
      ok: false,
      error: `${data.result.length} series; the query must return exactly one (aggregate it, e.g. with sum or max)`,
    };
  }
  const series: unknown = data.result[0];
  if (!isObject(series)) return { ok: false, error: 'the series is not an object' };
  return sampleValue(series.value);
}

export function prometheusGates(ctx: GateContext): GateResult[] {
  const out: GateResult[] = [];
  for (const q of ctx.wave.gates?.prometheus ?? []) {
    const gate = `prometheus:${q.name}`;
    const bounds = [
      q.min === undefined ? undefined : `min ${num(q.min)}`,
      q.max === undefined ? undefined : `max ${num(q.max)}`,
    ]
      .filter((b) => b !== undefined)
      .join(', ');
    const outcome = ctx.prometheus[q.name];
    if (!outcome) {
      out.push({ gate, verdict: 'wait', message: `${q.name}: not queried yet` });
      continue;
    }
    if (!outcome.ok) {
      out.push({ gate, verdict: 'wait', message: `${q.name}: ${outcome.error}` });
      continue;
    }
    const v = outcome.value;
    if (!Number.isFinite(v)) {
      out.push({ gate, verdict: 'wait', message: `${q.name}: value ${v} is not a finite number` });
      continue;
    }
    const low = q.min !== undefined && v < q.min;
    const high = q.max !== undefined && v > q.max;
    const threshold = high ? q.max : low ? q.min : (q.max ?? q.min);
    out.push({
      gate,
      verdict: low || high ? 'fail' : 'pass',
      message: `${q.name} = ${num(v)} ${low || high ? 'outside' : 'within'} ${bounds || 'no bounds'}`,
      value: v,
      ...(threshold === undefined ? {} : { threshold }),
    });
  }
  return out;
}
