/**
 * The apiserver's storage contract, shaped after the parts of etcd the Kubernetes registry
 * relies on: one monotonically increasing revision for the whole store, a per-key
 * modification revision that doubles as `metadata.resourceVersion`, compare-and-swap writes,
 * prefix lists that are a consistent snapshot at a known revision, and a watch that replays
 * every change after a given revision in order (or says the revision was compacted).
 *
 * Keys are opaque to the store (the registry uses `/registry/<resource>/<ns>/<name>`). Values
 * are Kubernetes objects; the store stamps `metadata.resourceVersion` on everything it
 * returns, so callers never keep the revision in two places.
 */
import { PontoonError } from '../../lib/errors.js';
import type { KubeObject } from '../../api/meta.js';

export interface StoredObject {
  object: KubeObject;
  /** The revision of the write that produced this value (etcd's mod_revision). */
  resourceVersion: number;
}

export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  key: string;
  /** The new value; for DELETED, the last value stamped with the deletion's revision. */
  object: KubeObject;
  /** The value before this change (MODIFIED and DELETED), for selector transitions. */
  prevObject?: KubeObject;
  resourceVersion: number;
}

export interface StoreWatchListener {
  /** Events arrive in revision order, at most once each, with no gaps. */
  onEvent(event: StoreEvent): void;
  /** The watch ended and will deliver nothing more (store closed, connection lost). */
  onError(err: unknown): void;
}

export interface StoreWatch {
  stop(): void;
}

export interface Store {
  /** For logs: "sqlite /var/lib/pontoon/state.db", "etcd http://127.0.0.1:2379". */
  readonly description: string;
  get(key: string): Promise<StoredObject | undefined>;
  /** Every key starting with `prefix`, sorted by key, as of `resourceVersion`. */
  list(prefix: string): Promise<{ items: StoredObject[]; resourceVersion: number }>;
  /** Fails with KeyExistsError when the key is present. */
  create(key: string, object: KubeObject): Promise<StoredObject>;
  /**
   * Replaces the value. With `expectedResourceVersion`, fails with ResourceVersionConflictError
   * unless the stored value still has that revision. Fails with KeyNotFoundError when absent.
   */
  update(key: string, object: KubeObject, expectedResourceVersion?: number): Promise<StoredObject>;
  /** Removes the key; returns the last value stamped with the deletion's revision. */
  delete(key: string, expectedResourceVersion?: number): Promise<StoredObject>;
  /**
   * Delivers every change under `prefix` with a revision greater than `sinceResourceVersion`.
   * Rejects with ResourceVersionTooOldError when those changes were compacted away.
   */
  watch(prefix: string, sinceResourceVersion: number, listener: StoreWatchListener): Promise<StoreWatch>;
  /** The revision of the newest write in the whole store. */
  currentResourceVersion(): Promise<number>;
  /**
   * The store's check in `/readyz` and `/healthz` (`etcd` for etcd, as upstream names it);
   * absent when the store lives in the apiserver's process and cannot be down without it.
   */
  readonly health?: { name: string; check(): Promise<void> };
  close(): Promise<void>;
}

export class StoreError extends PontoonError {}

export class KeyExistsError extends StoreError {
  constructor(readonly key: string) {
    super(`key "${key}" already exists`);
  }
}

export class KeyNotFoundError extends StoreError {
  constructor(readonly key: string) {
    super(`key "${key}" not found`);
  }
}

export class ResourceVersionConflictError extends StoreError {
  constructor(
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`key "${key}" is at resourceVersion ${actual}, not ${expected}`);
  }
}

export class ResourceVersionTooOldError extends StoreError {
  constructor(
    readonly requested: number,
    readonly oldestAvailable: number,
  ) {
    super(`resourceVersion ${requested} is too old; the oldest available is ${oldestAvailable}`);
  }
}

/** Returns a deep copy with `metadata.resourceVersion` set: what every store hands out. */
export function stamp(object: KubeObject, resourceVersion: number): KubeObject {
  const copy = structuredClone(object);
  copy.metadata = { ...copy.metadata, resourceVersion: String(resourceVersion) };
  return copy;
}
