/**
 * Exponential backoff with jitter: each failure doubles the wait up to a cap, and every
 * wait is drawn from [delay/2, delay] so daemons that failed together do not retry in
 * lockstep. A success resets it.
 */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  readonly random?: () => number;
}

export class Backoff {
  private delayMs: number;

  constructor(private readonly options: BackoffOptions) {
    this.delayMs = options.initialMs;
  }

  /** The wait before the next attempt; grows the one after. */
  next(): number {
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.options.maxMs);
    const random = this.options.random ?? Math.random;
    return Math.round(delay / 2 + (random() * delay) / 2);
  }

  reset(): void {
    this.delayMs = this.options.initialMs;
  }
}
