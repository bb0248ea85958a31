// How the installer judges the software it switched to: one probe (--health-url: a 2xx answer;
// --health-metric URL#NAME: a Prometheus text endpoint whose gauge NAME must be 1; --health CMD:
// exit 0), and the watch after a switch: for --health-watch the process must stay up and the
// probe must pass. A probe that cannot connect yet is "not yet" (the software may be starting);
// an answer that says unhealthy, three times in a row, fails the watch at once.

import { request, type Dispatcher } from 'undici';
import { describeResult, runCommand } from '../apply.ts';
import { describe } from '../errors.ts';

export type Probe =
  | { kind: 'url'; url: string }
  | { kind: 'metric'; url: string; name: string }
  | { kind: 'command'; command: string };

export type ProbeResult =
  | { ok: true }
  /** definite: the software answered and said it is unhealthy (not merely "not up yet"). */
  | { ok: false; definite: boolean; reason: string };

export interface ProbeContext {
  dispatcher?: Dispatcher | undefined;
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
  cwd?: string | undefined;
}

const MAX_METRICS_BYTES = 4 * 1024 * 1024;

/** `URL#NAME` as a metric probe; undefined when it is not one. */
export function parseMetricProbe(spec: string): { url: string; name: string } | undefined {
  const hash = spec.lastIndexOf('#');
  if (hash <= 0) return undefined;
  const name = spec.slice(hash + 1);
  const url = spec.slice(0, hash);
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) return undefined;
  try {
    const { protocol } = new URL(url);
    if (protocol !== 'http:' && protocol !== 'https:') return undefined;
  } catch {
    return undefined;
  }
  return { url, name };
}

/** The values of every sample of `name` in Prometheus text exposition (any labels). */
export function gaugeValues(text: string, name: string): number[] {
  const values: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) values.push(Number(m[3]));
  }
  return values;
}

async function get(
  url: string,
  context: ProbeContext,
): Promise<{ status: number; text: string } | { error: string }> {
  try {
    const res = await request(url, {
      ...(context.dispatcher ? { dispatcher: context.dispatcher } : {}),
      headersTimeout: context.timeoutMs,
      bodyTimeout: context.timeoutMs,
      signal: AbortSignal.timeout(context.timeoutMs),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_METRICS_BYTES) {
        res.body.destroy();
        return { error: `the answer is larger than ${MAX_METRICS_BYTES} bytes` };
      }
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') };
  } catch (e) {
    return { error: describe(e) };
  }
}

export async function probe(p: Probe, context: ProbeContext): Promise<ProbeResult> {
  if (p.kind === 'command') {
    const r = await runCommand(p.command, {
      env: context.env,
      timeoutMs: context.timeoutMs,
      ...(context.cwd ? { cwd: context.cwd } : {}),
    });
    return r.code === 0 && !r.timedOut
      ? { ok: true }
      : { ok: false, definite: true, reason: describeResult('--health', r) };
  }
  const answer = await get(p.url, context);
  if ('error' in answer) return { ok: false, definite: false, reason: `${p.url}: ${answer.error}` };
  if (answer.status < 200 || answer.status > 299)
    return { ok: false, definite: true, reason: `${p.url} answered ${answer.status}` };
  if (p.kind === 'url') return { ok: true };
  const values = gaugeValues(answer.text, p.name);
  if (values.length === 0)
    return { ok: false, definite: true, reason: `${p.url} has no sample of ${p.name}` };
  const bad = values.find((v) => v !== 1);
  if (bad !== undefined)
    return { ok: false, definite: true, reason: `${p.url}: ${p.name} is ${bad}, not 1` };
  return { ok: true };
}

export interface WatchOptions {
  windowMs: number;
  /** Between probes (default: a tenth of the window, from 200 ms to 5 s). */
  intervalMs?: number;
  probe?: (() => Promise<ProbeResult>) | undefined;
  /** Why the software is down (it exited since the switch), or undefined while it is up. */
  down?: (() => string | undefined) | undefined;
  signal: AbortSignal;
}

export type WatchResult = { ok: true } | { ok: false; reason: string } | { ok: 'cancelled' };

/** How many definite failures in a row fail the watch before its end. */
const STRIKES = 3;

export async function watchHealth(options: WatchOptions): Promise<WatchResult> {
  const interval =
    options.intervalMs ?? Math.min(5_000, Math.max(200, Math.floor(options.windowMs / 10)));
  const end = Date.now() + options.windowMs;
  let strikes = 0;
  let last: ProbeResult | undefined;
  for (;;) {
    if (options.signal.aborted) return { ok: 'cancelled' };
    const down = options.down?.();
    if (down !== undefined) return { ok: false, reason: down };
    if (options.probe) {
      last = await options.probe();
      if (options.signal.aborted) return { ok: 'cancelled' };
      if (last.ok) strikes = 0;
      else if (last.definite && ++strikes >= STRIKES)
        return { ok: false, reason: `${last.reason} (${STRIKES} probes in a row)` };
    }
    if (Date.now() >= end) break;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(interval, Math.max(0, end - Date.now())));
      function done(): void {
        clearTimeout(timer);
        options.signal.removeEventListener('abort', done);
        resolve();
      }
      options.signal.addEventListener('abort', done, { once: true });
    });
  }
  const down = options.down?.();
  if (down !== undefined) return { ok: false, reason: down };
  if (last && !last.ok)
    return { ok: false, reason: `the probe did not pass by the end of the watch: ${last.reason}` };
  return { ok: true };
}
