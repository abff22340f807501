/** Sample statistics and number formatting the benchmarks share. */
import { PontoonError } from '../../src/lib/errors.js';

export class NoSamplesError extends PontoonError {
  constructor(what: string) {
    super(`failed to summarize ${what}: there are no samples`);
  }
}

/** Linear interpolation between closest ranks, so p99 of 300 samples is not just the maximum. */
export function percentile(sorted: readonly number[], fraction: number, what = 'samples'): number {
  const rank = (sorted.length - 1) * fraction;
  const below = sorted[Math.floor(rank)];
  const above = sorted[Math.ceil(rank)];
  if (below === undefined || above === undefined) throw new NoSamplesError(what);
  return below + (above - below) * (rank - Math.floor(rank));
}

export function median(values: readonly number[], what = 'samples'): number {
  return percentile([...values].sort((a, b) => a - b), 0.5, what);
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarizeLatencies(samples: readonly number[], what = 'latencies'): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5, what),
    p90: percentile(sorted, 0.9, what),
    p99: percentile(sorted, 0.99, what),
    max: percentile(sorted, 1, what),
  };
}

/** `value / reference` as "0.42x"; "—" when either side is missing or zero. */
export function formatRatio(value: number | undefined, reference: number | undefined, digits = 2): string {
  if (value === undefined || reference === undefined || !Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return '—';
  const ratio = value / reference;
  return `${ratio < 0.1 ? ratio.toFixed(3) : ratio.toFixed(digits)}x`;
}

/** Rates and durations with as many digits as are worth reading. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 10) return value.toFixed(1);
  if (magnitude >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** 0.734 → "73%". */
export function percent(fraction: number): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(0)}%` : '—';
}

/** Milliseconds since an arbitrary origin, fractional; only differences mean anything. */
export function nowMs(): number {
  return performance.now();
}
