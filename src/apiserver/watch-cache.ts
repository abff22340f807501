/**
 * The watch cache: one Store watch per resource, shared by every HTTP watch of that resource,
 * after kube-apiserver's cacher.
 *
 * Design notes:
 * - Without it every watch request opened its own Store watch, so with N watchers each change
 *   was decoded (etcd) or cloned (SQLite, memory) N times and serialized N times. Here a
 *   resource's change is received once, kept as one `WatchEventRecord`, and its JSON text is
 *   made at most once (twice when some watcher sees it leave its selector) and shared by all
 *   watchers that send plain objects. Tables and metadata-only watches still render per
 *   watcher, but from the shared object.
 * - The Store watch starts lazily with the first watch of a resource, from the store's current
 *   revision, and then runs until it fails or the apiserver closes; an idle cache costs one
 *   Store watch and its ring.
 * - A bounded ring of the newest events lets a watch resume from a resourceVersion R as long
 *   as the ring still holds every change after R (`floor` <= R). An older R is not refused
 *   here: the caller falls back to its own Store watch, which replays from the store's history
 *   or answers 410. A small ring only makes old resumes costlier, never wrong.
 * - Records are shared: nothing may mutate `object` or `prevObject` (renderers build new
 *   objects).
 * - When the Store watch fails (etcd connection lost, store closed) every attached watcher is
 *   ended, as a direct Store watch failure would have ended it, and the resource's cache is
 *   dropped; clients re-watch and the next watch starts a fresh one.
 */
import type { KubeObject } from '../api/meta.js';
import { PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { Store, StoreEvent, StoreWatch } from './store/store.js';

export class WatchCacheStoppedError extends PontoonError {
  constructor() {
    super('failed to watch through the watch cache: the apiserver is shutting down');
  }
}

/** Recent events kept per resource when the server is given no size. */
export const DEFAULT_WATCH_CACHE_EVENTS = 1000;

/** One store change, with its serializations made on first use and then shared. */
export class WatchEventRecord {
  private objectText: string | undefined;
  private leftObject: KubeObject | undefined;
  private leftText: string | undefined;

  constructor(readonly event: StoreEvent) {}

  get resourceVersion(): number {
    return this.event.resourceVersion;
  }

  objectJson(): string {
    return (this.objectText ??= JSON.stringify(this.event.object));
  }

  /** What a watcher whose selector the object left is sent: the last matching state at this revision. */
  left(): KubeObject {
    const previous = this.event.prevObject ?? this.event.object;
    return (this.leftObject ??= { ...previous, metadata: { ...previous.metadata, resourceVersion: String(this.event.resourceVersion) } });
  }

  leftJson(): string {
    return (this.leftText ??= JSON.stringify(this.left()));
  }
}

/** One HTTP watch attached to a resource's cache. */
export interface CacheSubscriber {
  /** Only changes under `keyPrefix` (a namespace or the whole resource) are delivered. */
  readonly keyPrefix: string;
  deliver(record: WatchEventRecord): void;
  /** The shared Store watch ended: the subscriber must end its response. */
  close(): void;
}

export interface Attachment {
  detach(): void;
}

export interface WatchCacheOptions {
  /** Recent events kept per resource for watches to resume from. */
  eventsPerResource: number;
  log: Logger;
}

/** A caller asked the cache for a revision outside its ring (callers check `covers` first). */
export class WatchCacheRangeError extends PontoonError {
  constructor(readonly since: number) {
    super(`failed to serve a watch from resourceVersion ${since}: outside the watch cache's window`);
  }
}

export class WatchCache {
  private readonly resources = new Map<string, Promise<ResourceCache>>();
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly options: WatchCacheOptions,
  ) {}

  /**
   * The running cache of the resource stored under `resourcePrefix`, started on first use.
   * Rejects when its Store watch cannot start (the caller then watches the store directly).
   */
  resource(resourcePrefix: string): Promise<ResourceCache> {
    if (this.stopped) return Promise.reject(new WatchCacheStoppedError());
    let found = this.resources.get(resourcePrefix);
    if (!found) {
      found = this.start(resourcePrefix);
      this.resources.set(resourcePrefix, found);
      found.catch(() => {
        if (this.resources.get(resourcePrefix) === found) this.resources.delete(resourcePrefix);
      });
    }
    return found;
  }

  /** Ends every shared Store watch and the watchers on it (apiserver shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.resources.values()];
    this.resources.clear();
    for (const result of await Promise.allSettled(running)) {
      if (result.status === 'fulfilled') result.value.fail(new WatchCacheStoppedError());
    }
  }

  private async start(resourcePrefix: string): Promise<ResourceCache> {
    const since = await this.store.currentResourceVersion();
    const cache = new ResourceCache(since, this.options.eventsPerResource, (err) => {
      this.options.log.debug({ prefix: resourcePrefix, err }, 'watch cache: store watch ended; closing its watchers');
      void this.resources.get(resourcePrefix)?.then((current) => {
        if (current === cache) this.resources.delete(resourcePrefix);
      });
    });
    const storeWatch = await this.store.watch(resourcePrefix, since, {
      onEvent: (event) => cache.receive(event),
      onError: (err) => cache.fail(err),
    });
    cache.running(storeWatch);
    if (this.stopped) cache.fail(new WatchCacheStoppedError());
    return cache;
  }
}

/** One resource's shared Store watch, ring of recent events and attached watchers. */
export class ResourceCache {
  private readonly ring: (WatchEventRecord | undefined)[];
  /** Index of the oldest record in `ring`, and how many records it holds. */
  private head = 0;
  private size = 0;
  /** Every change after this revision is in the ring (or still on its way from the store). */
  private floor: number;
  private readonly subscribers = new Set<CacheSubscriber>();
  private storeWatch: StoreWatch | undefined;
  private failed = false;

  constructor(
    since: number,
    capacity: number,
    private readonly onFailed: (err: unknown) => void,
  ) {
    this.floor = since;
    this.ring = new Array<WatchEventRecord | undefined>(Math.max(1, capacity));
  }

  /** Whether a watch from `resourceVersion` can be served: the ring holds every change after it. */
  covers(resourceVersion: number): boolean {
    return !this.failed && resourceVersion >= this.floor;
  }

  /**
   * Replays the ring's changes after `since` under the subscriber's prefix, then delivers new
   * ones as they come. Synchronous, so nothing falls between replay and live delivery; call
   * only when `covers(since)`.
   */
  attach(since: number, subscriber: CacheSubscriber): Attachment {
    if (!this.covers(since)) throw new WatchCacheRangeError(since);
    for (let i = this.firstAfter(since); i < this.size; i++) {
      const record = this.at(i);
      if (record.event.key.startsWith(subscriber.keyPrefix)) subscriber.deliver(record);
    }
    this.subscribers.add(subscriber);
    return { detach: () => this.subscribers.delete(subscriber) };
  }

  /** @internal the cache's Store watch resolved. */
  running(storeWatch: StoreWatch): void {
    if (this.failed) storeWatch.stop();
    else this.storeWatch = storeWatch;
  }

  /** @internal a change from the Store watch: remember it, then fan it out. */
  receive(event: StoreEvent): void {
    if (this.failed) return;
    const record = new WatchEventRecord(event);
    if (this.size === this.ring.length) {
      this.floor = this.at(0).resourceVersion;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.size -= 1;
    }
    this.ring[(this.head + this.size) % this.ring.length] = record;
    this.size += 1;
    for (const subscriber of this.subscribers) {
      if (event.key.startsWith(subscriber.keyPrefix)) subscriber.deliver(record);
    }
  }

  /** @internal the Store watch ended (or the cache is stopped): end every watcher, serve no more. */
  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.storeWatch?.stop();
    this.ring.fill(undefined);
    this.size = 0;
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    this.onFailed(err);
    for (const subscriber of subscribers) subscriber.close();
  }

  private at(index: number): WatchEventRecord {
    return this.ring[(this.head + index) % this.ring.length]!;
  }

  /** Index of the first record newer than `resourceVersion` (binary search: the ring is in revision order). */
  private firstAfter(resourceVersion: number): number {
    let low = 0;
    let high = this.size;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.at(middle).resourceVersion <= resourceVersion) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
