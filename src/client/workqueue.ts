/**
 * The work queue every controller (and the scheduler) reconciles through, after client-go's
 * workqueue.
 *
 * Design note: informer handlers only ever enqueue an object key ("ns/name"); a worker then
 * calls `sync(key)`, which reads the current state from the informer caches. That makes three
 * properties cheap and uniform:
 * - dedup: a key waiting in the queue is not added twice, so a burst of events for one object
 *   costs one sync that sees the newest state;
 * - per-key serialization: a key being synced is never handed to a second worker; an add that
 *   arrives meanwhile marks it dirty and it is queued again when the first sync is done, so
 *   two syncs of one object never race each other's writes;
 * - rate-limited retry: a failed sync is retried after an exponential per-key backoff (base ×
 *   2^failures, capped), and a successful one forgets the failures. A 409 Conflict means "the
 *   cache was stale", so it is retried the same way without a warning.
 * Delayed adds (`addAfter`) keep the earliest deadline per key, for syncs that want to look
 * again later (minReadySeconds, lease expiry).
 */
import { exponentialDelayMs } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { isAlreadyExists, isConflict, isNotFound } from './api.js';

export interface WorkQueueOptions {
  /** First retry delay after a failure. */
  baseDelayMs?: number;
  /** Longest retry delay. */
  maxDelayMs?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys that need a sync: queued, or added while being processed. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly waiting = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // queued again by done()
    const getter = this.getters.shift();
    if (getter) {
      this.dirty.delete(key);
      this.processing.add(key);
      getter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds `key` after `delayMs`; an earlier pending deadline for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.waiting.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, timer });
  }

  /** Adds `key` after its backoff, which doubles with every call until `forget`. */
  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.addAfter(key, this.backoffMs(failures));
  }

  backoffMs(failures: number): number {
    return exponentialDelayMs(this.baseDelayMs, this.maxDelayMs, failures);
  }

  /** Clears the failure count of `key` (its next rate-limited add waits the base delay). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  requeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to sync, or undefined once the queue shuts down. Call `done(key)` after. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Keys queued and not yet handed out. */
  get length(): number {
    return this.queue.length;
  }

  /** True when nothing is queued, being processed, or waiting on a timer. */
  get idle(): boolean {
    return this.queue.length === 0 && this.processing.size === 0 && this.waiting.size === 0;
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const getter of this.getters.splice(0)) getter(undefined);
  }
}

/** What a sync may ask for besides success: a look again after a delay. */
export interface SyncResult {
  requeueAfterMs?: number;
}

export interface ReconcilerOptions {
  name: string;
  sync: (key: string) => Promise<SyncResult | void>;
  log: Logger;
  workers?: number;
  queue?: WorkQueueOptions;
}

/** A work queue with workers that call `sync(key)` and handle its errors as described above. */
export class Reconciler {
  readonly queue: WorkQueue;
  private readonly workers: Promise<void>[] = [];
  private started = false;

  constructor(private readonly options: ReconcilerOptions) {
    this.queue = new WorkQueue(options.queue);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, delayMs: number): void {
    this.queue.addAfter(key, delayMs);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < (this.options.workers ?? 1); i++) this.workers.push(this.work());
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        const result = await this.options.sync(key);
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        const attempt = this.queue.requeues(key) + 1;
        if (isConflict(err) || isNotFound(err) || isAlreadyExists(err)) {
          // A stale cache: the informer will catch up; look again soon.
          this.options.log.debug({ key, attempt, err: describeError(err) }, `${this.options.name}: requeue after stale write`);
        } else {
          this.options.log.warn({ key, attempt, err: describeError(err) }, `${this.options.name}: sync failed, will retry`);
        }
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }
}
