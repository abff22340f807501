/**
 * When syncs run: kube-proxy's bounded frequency runner. A request runs the sync at once
 * unless one ran less than `minIntervalMs` ago, in which case it runs when that interval
 * ends — every request meanwhile coalesces into that one run, so a burst of 1,000 endpoint
 * changes costs one sync, not 1,000. A failed sync retries with jittered backoff, and a
 * full resync runs every `fullIntervalMs` regardless (repairing drift).
 */
import { Backoff } from '../lib/backoff.js';

export interface RunnerOptions {
  readonly minIntervalMs: number;
  readonly fullIntervalMs: number;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  readonly now?: () => number;
}

export class SyncRunner {
  private timer: NodeJS.Timeout | undefined;
  private fullTimer: NodeJS.Timeout | undefined;
  private lastRunAt = Number.NEGATIVE_INFINITY;
  private running = false;
  private again = false;
  private stopped = false;
  /** Requests before start() wait for it: its full sync covers them. */
  private started = false;
  private readonly backoff: Backoff;
  private readonly now: () => number;

  /** `sync(full)` throws to report a failure. */
  constructor(
    private readonly sync: (full: boolean) => Promise<void> | void,
    private readonly options: RunnerOptions,
  ) {
    this.backoff = new Backoff({ initialMs: options.retryInitialMs ?? 500, maxMs: options.retryMaxMs ?? 30_000 });
    this.now = options.now ?? Date.now;
  }

  /** Starts with a full sync (a restarted daemon reconciles everything it owns). */
  start(): void {
    this.started = true;
    this.scheduleFull();
    this.timer = setTimeout(() => void this.runOnce(true), 0);
  }

  /**
   * Asks for a sync; runs it now, or when the minimum interval allows. Before start() it
   * does nothing: informers deliver their lists one after another, and a sync between them
   * would program Services without the endpoints still being listed.
   */
  request(): void {
    if (this.stopped || !this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.lastRunAt + this.options.minIntervalMs - this.now());
    this.timer = setTimeout(() => void this.runOnce(false), wait);
  }

  private scheduleFull(): void {
    if (this.options.fullIntervalMs <= 0) return;
    this.fullTimer = setInterval(() => void this.runOnce(true), this.options.fullIntervalMs);
    this.fullTimer.unref();
  }

  private async runOnce(full: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.lastRunAt = this.now();
    let failed = false;
    try {
      await this.sync(full);
      this.backoff.reset();
    } catch {
      failed = true;
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (failed) {
      this.timer = setTimeout(() => void this.runOnce(false), this.backoff.next());
      return;
    }
    if (this.again) {
      this.again = false;
      this.request();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.fullTimer);
  }
}
