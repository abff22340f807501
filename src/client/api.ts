/**
 * What every Pontoon daemon needs from the apiserver, as an interface: the REST verbs over
 * the resource table, plus watch. `KubeClient` (client.ts) implements it over HTTP, HTTPS or
 * a unix socket; tests may substitute a fake.
 */
import type { ResourceDescriptor, Subresource } from '../api/resources.js';
import type { TokenRequest, TokenRequestSpec } from '../api/serviceaccount.js';
import type { DeleteOptions, KubeList, KubeObject, Status, WatchEvent } from '../api/meta.js';

export type { DeleteOptions };
import { PontoonError } from '../lib/errors.js';

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** "" or undefined: most recent (quorum read); "0": any. */
  resourceVersion?: string;
  limit?: number;
}

export interface WatchOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Events after this version; undefined starts with synthetic ADDED events for every object. */
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}


export type PatchType = 'merge' | 'strategic' | 'json';

export interface WatchHandle {
  stop(): void;
}

export interface WatchCallbacks<T extends KubeObject> {
  onEvent(event: WatchEvent<T>): void;
  /** The stream ended: `err` is undefined for a clean end (timeout, server closed). */
  onClose(err?: unknown): void;
}

export interface KubeApi {
  /** undefined on 404. */
  get<T extends KubeObject>(resource: ResourceDescriptor, name: string, namespace?: string): Promise<T | undefined>;
  list<T extends KubeObject>(resource: ResourceDescriptor, namespace?: string, options?: ListOptions): Promise<KubeList<T>>;
  create<T extends KubeObject>(resource: ResourceDescriptor, object: T): Promise<T>;
  /** PUT of the whole object; 409 (ApiError reason Conflict) when its resourceVersion is stale. */
  update<T extends KubeObject>(resource: ResourceDescriptor, object: T, subresource?: Subresource): Promise<T>;
  patch<T extends KubeObject>(
    resource: ResourceDescriptor,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    type: PatchType,
    subresource?: Subresource,
  ): Promise<T>;
  /** Resolves true when deleted (or deletion started), false when it was already gone. */
  delete(resource: ResourceDescriptor, name: string, namespace?: string, options?: DeleteOptions): Promise<boolean>;
  /** POST pods/<name>/binding. */
  bind(namespace: string, podName: string, nodeName: string): Promise<void>;
  /** POST serviceaccounts/<name>/token: a signed token, bound to a Pod or Secret when spec.boundObjectRef says so. */
  createToken(namespace: string, serviceAccount: string, spec: TokenRequestSpec): Promise<TokenRequest>;
  watch<T extends KubeObject>(
    resource: ResourceDescriptor,
    namespace: string | undefined,
    options: WatchOptions,
    callbacks: WatchCallbacks<T>,
  ): WatchHandle;
}

/** An error answer from the apiserver, carrying its Status. */
export class ApiError extends PontoonError {
  constructor(readonly status: Status) {
    super(status.message ?? `apiserver answered ${status.code} ${status.reason ?? ''}`.trim());
  }
  get code(): number {
    return this.status.code;
  }
  get reason(): string | undefined {
    return this.status.reason;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.code === 404;
}
export function isConflict(err: unknown): boolean {
  return err instanceof ApiError && err.code === 409 && err.reason === 'Conflict';
}
export function isAlreadyExists(err: unknown): boolean {
  return err instanceof ApiError && err.code === 409 && err.reason === 'AlreadyExists';
}
export function isGone(err: unknown): boolean {
  return err instanceof ApiError && (err.code === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}
