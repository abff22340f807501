/**
 * A list+watch cache of one resource, the way client-go's informers work, so every daemon
 * reconciles from a local copy instead of polling the apiserver:
 *
 *   list (resourceVersion R) → cache, `add` for each → watch from R → apply events
 *
 * Nothing is missed across a broken watch or an apiserver restart: a watch that ends is
 * re-opened from the last resourceVersion seen (events and bookmarks both advance it), and
 * when the apiserver says that version is gone (410) the informer lists again and diffs the
 * fresh list against its cache, emitting `add`/`update`/`delete` for whatever changed while
 * it was not watching. Handlers therefore see every object's latest state, though a
 * sequence of changes during an outage collapses into one `update`, as upstream.
 */
import { EventEmitter } from 'node:events';
import type { KubeObject, WatchEvent } from '../api/meta.js';
import { objectKey } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import { Backoff } from '../lib/backoff.js';
import { createLogger, type Logger } from '../lib/log.js';
import { isGone, type KubeApi, type WatchHandle } from './api.js';

export interface InformerOptions<T extends KubeObject = KubeObject> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Re-deliver every cached object as an `update` this often (0: never). */
  resyncSeconds?: number;
  /**
   * What the cache keeps of each object, and what handlers get (client-go's SetTransform):
   * a daemon that reads a few fields of 10k objects keeps only those. It must keep
   * metadata.name, namespace and resourceVersion, which the informer itself reads.
   */
  transform?: (object: T) => T;
  log?: Logger;
}

type Handlers<T> = {
  add: (object: T) => void;
  update: (old: T, object: T) => void;
  delete: (object: T) => void;
};

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
/**
 * A watch that stayed open this long worked, so the backoff starts over when it ends. Without
 * this, a quiet informer (no events to reset it) would wait longer after every apiserver
 * restart, up to RETRY_MAX_MS; with it, only watches that fail at once back off.
 */
const HEALTHY_WATCH_MS = 1_000;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly events = new EventEmitter();
  private readonly log: Logger;
  private lastResourceVersion = '';
  private watchHandle: WatchHandle | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly retryBackoff = new Backoff({ initialMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS });
  private watchOpenedAt = 0;
  private stopped = false;
  private hasSynced = false;

  constructor(
    private readonly api: KubeApi,
    readonly resource: ResourceDescriptor,
    private readonly options: InformerOptions<T> = {},
  ) {
    this.log = options.log ?? createLogger('informer');
  }

  on<E extends keyof Handlers<T>>(event: E, handler: Handlers<T>[E]): this {
    this.events.on(event, handler as (...args: unknown[]) => void);
    return this;
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /** Lists (retrying until the apiserver answers), delivers `add`s, then keeps watching. */
  async start(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        await this.relist();
        break;
      } catch (err) {
        this.log.warn({ resource: this.resource.resource, err: String(err) }, 'list failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, this.nextRetryDelay()));
      }
    }
    this.hasSynced = true;
    this.openWatch();
    const resyncMs = (this.options.resyncSeconds ?? 0) * 1000;
    if (resyncMs > 0) {
      this.resyncTimer = setInterval(() => {
        for (const object of this.cache.values()) this.emit('update', object, object);
      }, resyncMs);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.watchHandle?.stop();
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** The newest resourceVersion this informer has seen (for tests and debugging). */
  get resourceVersion(): string {
    return this.lastResourceVersion;
  }

  private async relist(): Promise<void> {
    const { namespace, labelSelector, fieldSelector } = this.options;
    const list = await this.api.list<T>(this.resource, namespace, { labelSelector, fieldSelector });
    const fresh = new Map<string, T>();
    for (const item of list.items) {
      // Lists carry apiVersion/kind on the list, not on each item; handlers expect them.
      const object = this.keep({ ...item, apiVersion: item.apiVersion ?? list.apiVersion, kind: item.kind ?? this.resource.kind } as T);
      fresh.set(objectKey(object.metadata), object);
    }
    for (const [key, old] of this.cache) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    for (const [key, object] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, object);
      if (!old) this.emit('add', object);
      else if (old.metadata.resourceVersion !== object.metadata.resourceVersion) this.emit('update', old, object);
    }
    this.lastResourceVersion = list.metadata.resourceVersion ?? '';
    this.retryBackoff.reset();
  }

  private openWatch(): void {
    if (this.stopped) return;
    const { namespace, labelSelector, fieldSelector } = this.options;
    this.watchOpenedAt = Date.now();
    this.watchHandle = this.api.watch<T>(
      this.resource,
      namespace,
      { labelSelector, fieldSelector, resourceVersion: this.lastResourceVersion, allowWatchBookmarks: true },
      {
        onEvent: (event) => this.apply(event),
        onClose: (err) => this.watchClosed(err),
      },
    );
  }

  private apply(event: WatchEvent<T>): void {
    const resourceVersion = event.object.metadata?.resourceVersion;
    if (resourceVersion) this.lastResourceVersion = resourceVersion;
    this.retryBackoff.reset();
    if (event.type === 'BOOKMARK') return;
    const object = this.keep(event.object);
    const key = objectKey(object.metadata);
    const old = this.cache.get(key);
    if (event.type === 'DELETED') {
      this.cache.delete(key);
      // The event carries the object's final state (stamped with the deletion's version), which
      // may be newer than the cached copy; handlers get that, as client-go's OnDelete does.
      this.emit('delete', object);
      return;
    }
    this.cache.set(key, object);
    if (old) this.emit('update', old, object);
    else this.emit('add', object);
  }

  private watchClosed(err: unknown): void {
    this.watchHandle = undefined;
    if (this.stopped) return;
    const healthy = Date.now() - this.watchOpenedAt >= HEALTHY_WATCH_MS;
    if (healthy) this.retryBackoff.reset();
    if (err === undefined && healthy) {
      // A watch timeout: resume at once from where we are.
      this.openWatch();
      return;
    }
    // 410: the version we would resume from is gone; list again now. Anything else (the
    // apiserver is restarting, or closed the watch at once): resume from the same version later.
    if (isGone(err)) this.resume('relist', 0);
    else {
      const delay = this.nextRetryDelay();
      this.log.debug({ resource: this.resource.resource, err: String(err), delay }, 'watch broke; resuming');
      this.resume('watch', delay);
    }
  }

  private resume(how: 'watch' | 'relist', delayMs: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped) return;
      if (how === 'watch') {
        this.openWatch();
        return;
      }
      this.relist().then(
        () => this.openWatch(),
        (listErr: unknown) => {
          // Watching from the old version would only be answered 410 again: keep re-listing.
          this.log.warn({ resource: this.resource.resource, err: String(listErr) }, 're-list failed; retrying');
          this.resume('relist', this.nextRetryDelay());
        },
      );
    }, delayMs);
  }

  private keep(object: T): T {
    return this.options.transform ? this.options.transform(object) : object;
  }

  private nextRetryDelay(): number {
    return this.retryBackoff.next();
  }

  private emit(event: 'add' | 'delete', object: T): void;
  private emit(event: 'update', old: T, object: T): void;
  private emit(event: keyof Handlers<T>, ...args: T[]): void {
    // A re-list that was under way when stop() was called must not reach the handlers.
    if (this.stopped) return;
    try {
      this.events.emit(event, ...args);
    } catch (err) {
      this.log.error({ resource: this.resource.resource, event, err: String(err) }, 'informer handler threw');
    }
  }
}
