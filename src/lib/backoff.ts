/**
 * The one retry schedule every daemon uses (issue 15: six hand-rolled copies, none jittered).
 *
 * Exponential backoff with "equal jitter" (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): each failure doubles the nominal delay up to a cap, and the wait actually used is
 * drawn uniformly from [delay/2, delay]. Half the delay is guaranteed, so a flapping peer is
 * never hammered; the other half is random, so daemons that failed together (every kubelet
 * and informer when the apiserver restarts) spread out instead of retrying in lockstep. A
 * success resets it.
 *
 * `exponentialDelayMs` is the un-jittered schedule, for the few places where Kubernetes
 * documents exact steps users see (CrashLoopBackOff 10 s → 5 min, the workqueue's per-key
 * rate limiter, DaemonSet failed-pod and Job pod-failure backoff): those keep upstream's
 * numbers, but the arithmetic lives here too.
 */
import { setTimeout as sleepTimer } from 'node:timers/promises';
import { PontoonError } from './errors.js';

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  readonly random?: () => number;
}

/** `initialMs · 2^failures`, capped at `maxMs` (failures = 0 gives `initialMs`). */
export function exponentialDelayMs(initialMs: number, maxMs: number, failures: number): number {
  // 2^30 already overflows any sane cap; the bound keeps the product finite.
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(failures, 0), 30));
}

/** The step after `previousMs` on that schedule (`initialMs` when there was none yet). */
export function nextExponentialDelayMs(previousMs: number | undefined, initialMs: number, maxMs: number): number {
  return Math.min(previousMs === undefined || previousMs <= 0 ? initialMs : previousMs * 2, maxMs);
}

export class Backoff {
  private failures = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The nominal (un-jittered) delay the next `next()` draws from. */
  get currentMs(): number {
    return exponentialDelayMs(this.options.initialMs, this.options.maxMs, this.failures);
  }

  /** The wait before the next attempt, in [delay/2, delay]; grows the one after. */
  next(): number {
    const delay = this.currentMs;
    this.failures++;
    const random = this.options.random ?? Math.random;
    return Math.round(delay / 2 + (random() * delay) / 2);
  }

  reset(): void {
    this.failures = 0;
  }
}

export interface RetryOptions {
  /** A fresh Backoff per call unless the caller keeps one across calls. */
  readonly backoff: Backoff | BackoffOptions;
  /** Aborting ends the wait at once; `retry` then rethrows the last failure. */
  readonly signal?: AbortSignal;
  /** Called after each failed attempt with the wait before the next one (log, event). */
  readonly onError: (err: unknown, retryInMs: number, attempt: number) => void;
  /** Errors this returns false for are rethrown at once (default: every error is retried). */
  readonly retryable?: (err: unknown) => boolean;
  /** How to wait; tests inject one that records the delays instead of sleeping. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export class RetryAbortedError extends PontoonError {
  constructor() {
    super('retry aborted before the first attempt');
  }
}

async function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleepTimer(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}

/** Runs `step` until it succeeds, waiting a jittered, growing delay after each failure. */
export async function retry<T>(step: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = options.backoff instanceof Backoff ? options.backoff : new Backoff(options.backoff);
  const sleep = options.sleep ?? defaultSleep;
  if (options.signal?.aborted) throw new RetryAbortedError();
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await step(attempt);
      backoff.reset();
      return result;
    } catch (err) {
      if (options.signal?.aborted || (options.retryable && !options.retryable(err))) throw err;
      const delayMs = backoff.next();
      options.onError(err, delayMs, attempt);
      await sleep(delayMs, options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}
