// Small statistics for benchmarks: medians, percentiles of raw samples, and a log-scale
// latency histogram that worker processes fill and the parent merges.

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile of raw samples (0 when there are none). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

/** Buckets per decade: ~2.3% resolution, enough to tell 1.0 ms from 1.1 ms. */
const PER_DECADE = 100;
/** 1 µs .. 100 s. */
const BUCKETS = 8 * PER_DECADE;

/** Latencies in microseconds, bucketed on a log scale; plain arrays so it crosses IPC. */
export type Histogram = number[];

export function newHistogram(): Histogram {
  return new Array<number>(BUCKETS).fill(0);
}

export function record(h: Histogram, micros: number): void {
  const b = micros <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log10(micros) * PER_DECADE));
  h[b]!++;
}

export function merge(into: Histogram, from: Histogram): void {
  for (let i = 0; i < BUCKETS; i++) into[i]! += from[i] ?? 0;
}

/** The upper edge of the bucket holding the p-th percentile, in milliseconds. */
export function histogramPercentile(h: Histogram, p: number): number {
  const total = h.reduce((s, n) => s + n, 0);
  if (total === 0) return 0;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += h[i]!;
    if (seen >= rank) return 10 ** ((i + 1) / PER_DECADE) / 1000;
  }
  return 10 ** (BUCKETS / PER_DECADE) / 1000;
}

export const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
