/**
 * An in-process Store for unit tests and the reference for the contract's semantics:
 * a sorted map, a global revision counter and a bounded event history that watches replay
 * from (older revisions answer ResourceVersionTooOldError, as a compacted etcd does).
 */
import type { KubeObject } from '../../api/meta.js';
import {
  KeyExistsError,
  KeyNotFoundError,
  ResourceVersionConflictError,
  ResourceVersionTooOldError,
  stamp,
  type Store,
  type StoredObject,
  type StoreEvent,
  type StoreWatch,
  type StoreWatchListener,
} from './store.js';

interface Watcher {
  prefix: string;
  sinceResourceVersion: number;
  listener: StoreWatchListener;
}

export class MemoryStore implements Store {
  readonly description = 'memory';
  private readonly values = new Map<string, StoredObject>();
  private readonly history: StoreEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  /** Events waiting for delivery: a write made from inside onEvent queues behind the current one. */
  private readonly pending: StoreEvent[] = [];
  private delivering = false;
  private revision = 0;
  /** The revision below which history was dropped. */
  private compactedThrough = 0;

  constructor(private readonly historyLimit = 10_000) {}

  async get(key: string): Promise<StoredObject | undefined> {
    const found = this.values.get(key);
    return found && { object: structuredClone(found.object), resourceVersion: found.resourceVersion };
  }

  async list(prefix: string): Promise<{ items: StoredObject[]; resourceVersion: number }> {
    const keys = [...this.values.keys()].filter((key) => key.startsWith(prefix)).sort();
    const items = keys.map((key) => {
      const found = this.values.get(key)!;
      return { object: structuredClone(found.object), resourceVersion: found.resourceVersion };
    });
    return { items, resourceVersion: this.revision };
  }

  async create(key: string, object: KubeObject): Promise<StoredObject> {
    if (this.values.has(key)) throw new KeyExistsError(key);
    return this.write(key, object, 'ADDED', undefined);
  }

  async update(key: string, object: KubeObject, expectedResourceVersion?: number): Promise<StoredObject> {
    const current = this.checkCurrent(key, expectedResourceVersion);
    return this.write(key, object, 'MODIFIED', current);
  }

  async delete(key: string, expectedResourceVersion?: number): Promise<StoredObject> {
    const current = this.checkCurrent(key, expectedResourceVersion);
    this.revision += 1;
    this.values.delete(key);
    const deleted = { object: stamp(current.object, this.revision), resourceVersion: this.revision };
    this.publish({ type: 'DELETED', key, object: deleted.object, prevObject: current.object, resourceVersion: this.revision });
    return { object: structuredClone(deleted.object), resourceVersion: deleted.resourceVersion };
  }

  async watch(prefix: string, sinceResourceVersion: number, listener: StoreWatchListener): Promise<StoreWatch> {
    if (sinceResourceVersion < this.compactedThrough) {
      throw new ResourceVersionTooOldError(sinceResourceVersion, this.compactedThrough + 1);
    }
    for (const event of this.history) {
      if (event.resourceVersion > sinceResourceVersion && event.key.startsWith(prefix)) listener.onEvent(structuredClone(event));
    }
    const watcher: Watcher = { prefix, sinceResourceVersion, listener };
    this.watchers.add(watcher);
    return { stop: () => this.watchers.delete(watcher) };
  }

  async currentResourceVersion(): Promise<number> {
    return this.revision;
  }

  async close(): Promise<void> {
    for (const watcher of this.watchers) watcher.listener.onError(new Error('store closed'));
    this.watchers.clear();
  }

  private checkCurrent(key: string, expectedResourceVersion: number | undefined): StoredObject {
    const current = this.values.get(key);
    if (!current) throw new KeyNotFoundError(key);
    if (expectedResourceVersion !== undefined && current.resourceVersion !== expectedResourceVersion) {
      throw new ResourceVersionConflictError(key, expectedResourceVersion, current.resourceVersion);
    }
    return current;
  }

  private write(key: string, object: KubeObject, type: 'ADDED' | 'MODIFIED', previous: StoredObject | undefined): StoredObject {
    this.revision += 1;
    const stored = { object: stamp(object, this.revision), resourceVersion: this.revision };
    this.values.set(key, stored);
    this.publish({ type, key, object: stored.object, prevObject: previous?.object, resourceVersion: this.revision });
    return { object: structuredClone(stored.object), resourceVersion: stored.resourceVersion };
  }

  private publish(event: StoreEvent): void {
    this.history.push(event);
    while (this.history.length > this.historyLimit) {
      this.compactedThrough = this.history.shift()!.resourceVersion;
    }
    this.pending.push(event);
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let next = this.pending.shift(); next; next = this.pending.shift()) {
        for (const watcher of [...this.watchers]) {
          if (!this.watchers.has(watcher)) continue;
          if (next.resourceVersion <= watcher.sinceResourceVersion || !next.key.startsWith(watcher.prefix)) continue;
          watcher.listener.onEvent(structuredClone(next));
        }
      }
    } finally {
      this.delivering = false;
    }
  }
}
