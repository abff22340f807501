/**
 * The generic REST registry: every kind's create/get/list/update/patch/delete over the Store,
 * with the bookkeeping upstream's genericregistry.Store does around a kind's strategy.
 *
 * Design notes:
 * - Storage keys are `/registry/<group or "core">/<resource>/<namespace>/<name>` (no namespace
 *   segment for cluster-scoped kinds), so a namespace's objects are one prefix and all
 *   namespaces another; the store's per-key revision is the object's resourceVersion.
 * - Every write that depends on the current value is a read-modify-write with the read
 *   revision as the store's precondition, retried when another writer got there first. A
 *   client that sent a resourceVersion gets 409 instead of a retry, because its change was
 *   computed from a value that no longer exists; without one the update is unconditional.
 * - Nothing is written until the whole object validated, so a bad request stores nothing.
 * - Updates that change nothing are not written: no new revision, no watch event.
 * - Deletion: objects with finalizers, and pods running on a node, are only marked
 *   (deletionTimestamp) and go when the finalizers are gone / the kubelet confirms with a
 *   zero grace period. Removal of an owner cascades to its dependents (cascade.ts).
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { KubeList, KubeObject, Status } from '../api/meta.js';
import { apiVersionOf, RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { DeleteOptions } from '../api/meta.js';
import { strategyFor } from './kinds/strategy.js';
import { jsonEqual } from './kinds/values.js';
import { applyPatch, APPLY_PATCH, PATCH_CONTENT_TYPES, patchMediaType, PatchError, UnsupportedPatchTypeError } from './patch.js';
import type { Selection } from './selection.js';
import {
  ApiStatusError,
  alreadyExists,
  badRequest,
  conflict,
  forbidden,
  invalid,
  notFound,
  qualifiedResource,
  success,
  tooLargeResourceVersion,
  unsupportedMediaType,
} from './status.js';
import { KeyExistsError, KeyNotFoundError, ResourceVersionConflictError, type Store, type StoredObject } from './store/store.js';
import { unknownFields, type FieldValidation } from './strict.js';

export function storageKey(descriptor: ResourceDescriptor, namespace: string | undefined, name: string): string {
  return `${storagePrefix(descriptor, descriptor.namespaced ? namespace ?? '' : undefined)}${name}`;
}

/** The prefix of one namespace's objects, or of all of them when `namespace` is undefined. */
export function storagePrefix(descriptor: ResourceDescriptor, namespace?: string): string {
  const base = `/registry/${descriptor.group === '' ? 'core' : descriptor.group}/${descriptor.resource}/`;
  return descriptor.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

/** Per-request write settings from the query string. */
/** The subresources that write part of the object through update and patch. */
export type UpdateSubresource = 'status' | 'approval';

export interface WriteOptions {
  dryRun: boolean;
  fieldValidation: FieldValidation;
  /** Filled with `unknown field "x"` under fieldValidation=Warn; sent as Warning headers. */
  warnings: string[];
}

export interface ListParams {
  selection: Selection;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
}

export interface RemovalOptions extends DeleteOptions {
  dryRun?: boolean;
}

export interface DeleteResult {
  /** The object as last stored (removed) or as now marked for deletion. */
  object: KubeObject;
  /** False when deletion only started (finalizers, graceful pod termination). */
  removed: boolean;
}

/**
 * Kind-specific side effects around writes that the strategies (pure functions of the
 * objects) cannot do: allocating service IPs, refusing content in terminating namespaces,
 * cascading removal. The server wires the implementations; all are optional.
 */
export interface RegistryHooks {
  /** Before a new object is stored; may change it (cluster IP) and must undo on `abort`. */
  beforeCreate?(descriptor: ResourceDescriptor, object: KubeObject): Promise<{ abort(): void; commit(): void } | void>;
  beforeUpdate?(descriptor: ResourceDescriptor, object: KubeObject, old: KubeObject): Promise<{ abort(): void; commit(): void } | void>;
  /** After an object left the store. */
  afterRemove?(descriptor: ResourceDescriptor, object: KubeObject, policy: DeleteOptions['propagationPolicy']): void;
  /** After deletion started on an object that stays for now (finalizers, grace period). */
  afterMarkedForDeletion?(descriptor: ResourceDescriptor, object: KubeObject): void;
}

const GENERATED_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const GENERATED_NAME_LENGTH = 5;
const MAX_NAME_ATTEMPTS = 8;
const MAX_UPDATE_ATTEMPTS = 16;

/** RFC 3339 with seconds precision, as upstream's metav1.Time serializes. */
export function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parseResourceVersion(value: string | undefined, what = 'resourceVersion'): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw badRequest(`invalid ${what}: "${value}" is not a resource version this server issued`);
  return Number(value);
}

interface ContinueToken {
  rv: number;
  key: string;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'pontoon.dev/v1', rv: token.rv, start: token.key })).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  try {
    const parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as { v?: unknown; rv?: unknown; start?: unknown };
    if (parsed.v === 'pontoon.dev/v1' && typeof parsed.rv === 'number' && typeof parsed.start === 'string') return { rv: parsed.rv, key: parsed.start };
  } catch {
    // answered below
  }
  throw badRequest('continue key is not valid: the token was not issued by this server');
}

export class Registry {
  private readonly now: () => Date;

  constructor(
    readonly store: Store,
    private readonly hooks: RegistryHooks = {},
    now?: () => Date,
  ) {
    this.now = now ?? (() => new Date());
  }

  // ---- reads ----------------------------------------------------------------------------

  async get(descriptor: ResourceDescriptor, namespace: string | undefined, name: string): Promise<KubeObject> {
    const found = await this.store.get(storageKey(descriptor, namespace, name));
    if (!found) throw notFound(descriptor, name);
    return found.object;
  }

  async list(descriptor: ResourceDescriptor, namespace: string | undefined, params: ListParams): Promise<KubeList> {
    const requested = parseResourceVersion(params.resourceVersion);
    if (requested !== undefined && requested > 0) {
      const current = await this.store.currentResourceVersion();
      if (requested > current) throw tooLargeResourceVersion(requested, current);
    }
    const token = params.continueToken ? decodeContinue(params.continueToken) : undefined;
    const listed = await this.store.list(storagePrefix(descriptor, namespace));
    let items = listed.items;
    if (token) items = items.filter((item) => keyOf(descriptor, item.object) > token.key);
    const matching = items.filter((item) => params.selection.matches(item.object));
    const listVersion = token?.rv ?? listed.resourceVersion;
    const limit = params.limit !== undefined && params.limit > 0 ? params.limit : undefined;
    const page = limit !== undefined ? matching.slice(0, limit) : matching;
    const more = limit !== undefined && matching.length > limit;
    const metadata: KubeList['metadata'] = { resourceVersion: String(listVersion) };
    if (more) {
      metadata.continue = encodeContinue({ rv: listVersion, key: keyOf(descriptor, page[page.length - 1]!.object) });
      if (params.selection.everything) metadata.remainingItemCount = matching.length - page.length;
    }
    return { apiVersion: apiVersionOf(descriptor), kind: `${descriptor.kind}List`, metadata, items: page.map((item) => withTypeMeta(descriptor, item.object)) };
  }

  // ---- create ---------------------------------------------------------------------------

  async create(descriptor: ResourceDescriptor, namespace: string | undefined, body: Record<string, unknown>, options: WriteOptions): Promise<KubeObject> {
    const object = this.decodeObject(descriptor, namespace, body, options);
    return this.createObject(descriptor, object, options);
  }

  private async createObject(descriptor: ResourceDescriptor, object: KubeObject, options: WriteOptions): Promise<KubeObject> {
    const strategy = strategyFor(descriptor.kind);
    strategy.applyDefaults(object);
    strategy.prepareForCreate(object);
    const meta = object.metadata;
    delete meta.resourceVersion;
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp(this.now());
    const generated = !meta.name && !!meta.generateName;
    if (generated) meta.name = generateName(meta.generateName!);
    if (descriptor.namespaced && meta.namespace) await this.checkNamespaceOpen(descriptor, meta.namespace, meta.name ?? '');
    const causes = strategy.validate(object);
    if (causes.length > 0) throw invalid(descriptor, meta.name || meta.generateName || '', causes);
    if (options.dryRun) return withTypeMeta(descriptor, object);

    const reservation = await this.hooks.beforeCreate?.(descriptor, object);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const stored = await this.store.create(storageKey(descriptor, meta.namespace, meta.name!), object);
          reservation?.commit();
          return withTypeMeta(descriptor, stored.object);
        } catch (err) {
          if (!(err instanceof KeyExistsError)) throw err;
          if (!generated || attempt >= MAX_NAME_ATTEMPTS) throw alreadyExists(descriptor, meta.name!);
          meta.name = generateName(meta.generateName!);
        }
      }
    } catch (err) {
      reservation?.abort();
      throw err;
    }
  }

  /** Creating inside a namespace needs the namespace, and not one being deleted. */
  private async checkNamespaceOpen(descriptor: ResourceDescriptor, namespace: string, name: string): Promise<void> {
    const found = await this.store.get(storageKey(RESOURCE.namespaces, undefined, namespace));
    if (!found) throw notFound(RESOURCE.namespaces, namespace);
    if (found.object.metadata.deletionTimestamp) {
      throw forbidden(
        `${qualifiedResource(descriptor)} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        descriptor,
        name,
      );
    }
  }

  // ---- update and patch ------------------------------------------------------------------

  async update(
    descriptor: ResourceDescriptor,
    namespace: string | undefined,
    name: string,
    body: Record<string, unknown>,
    options: WriteOptions,
    subresource?: UpdateSubresource,
  ): Promise<KubeObject> {
    const object = this.decodeObject(descriptor, namespace, body, options);
    if (!object.metadata.name) object.metadata.name = name;
    if (object.metadata.name !== name) {
      throw badRequest(`the name of the object (${object.metadata.name}) does not match the name on the URL (${name})`);
    }
    const expected = parseResourceVersion(object.metadata.resourceVersion, 'metadata.resourceVersion');
    return this.guaranteedUpdate(descriptor, namespace, name, options, (current) => {
      if (expected !== undefined && expected !== current.resourceVersion) throw conflict(descriptor, name);
      return this.prepareUpdate(descriptor, structuredClone(object), current.object, subresource);
    });
  }

  /** Returns the object and whether it was created (server-side apply of a new object). */
  async patch(
    descriptor: ResourceDescriptor,
    namespace: string | undefined,
    name: string,
    contentType: string,
    body: Buffer,
    options: WriteOptions,
    subresource?: UpdateSubresource,
  ): Promise<{ object: KubeObject; created: boolean }> {
    const type = patchMediaType(contentType);
    if (!PATCH_CONTENT_TYPES.includes(type)) throw unsupportedMediaType(type, PATCH_CONTENT_TYPES);
    const patch = parsePatchBody(body);
    if (type === APPLY_PATCH && subresource === undefined && !(await this.store.get(storageKey(descriptor, namespace, name)))) {
      // Server-side apply creates what does not exist yet.
      const base: KubeObject = {
        apiVersion: apiVersionOf(descriptor),
        kind: descriptor.kind,
        metadata: { name, ...(descriptor.namespaced && namespace ? { namespace } : {}) },
      };
      const object = this.patched(descriptor, base, type, patch, options);
      if (object.metadata.name !== name) {
        throw badRequest(`the name of the object (${object.metadata.name ?? ''}) does not match the name on the URL (${name})`);
      }
      const checked = this.decodeObject(descriptor, namespace, object as Record<string, unknown>, { ...options, fieldValidation: 'Ignore' });
      return { object: await this.createObject(descriptor, checked, options), created: true };
    }
    const object = await this.guaranteedUpdate(descriptor, namespace, name, options, (current) => {
      const patched = this.patched(descriptor, current.object, type, patch, options);
      const sent = parseResourceVersion(patched.metadata.resourceVersion, 'metadata.resourceVersion');
      if (sent !== undefined && sent !== current.resourceVersion) throw conflict(descriptor, name);
      return this.prepareUpdate(descriptor, patched, current.object, subresource);
    });
    return { object, created: false };
  }

  private patched(descriptor: ResourceDescriptor, current: KubeObject, type: string, patch: unknown, options: WriteOptions): KubeObject {
    let result: KubeObject;
    try {
      result = applyPatch(type, structuredClone(current), patch, descriptor.kind);
    } catch (err) {
      if (err instanceof UnsupportedPatchTypeError) throw unsupportedMediaType(type, PATCH_CONTENT_TYPES);
      if (err instanceof PatchError) {
        if (err.kind === 'malformed') throw badRequest(err.message);
        throw new ApiStatusError({
          apiVersion: 'v1',
          kind: 'Status',
          metadata: {},
          status: 'Failure',
          message: err.message,
          reason: 'Invalid',
          details: { name: current.metadata.name ?? '', kind: descriptor.kind, ...(descriptor.group ? { group: descriptor.group } : {}) },
          code: 422,
        });
      }
      throw err;
    }
    if ((result.kind !== undefined && result.kind !== descriptor.kind) || (result.apiVersion !== undefined && result.apiVersion !== apiVersionOf(descriptor))) {
      throw badRequest(`a patch may not change the kind or apiVersion (to ${String(result.apiVersion)}/${String(result.kind)})`);
    }
    // Only fields the patch introduced count as unknown: stored objects may predate a check.
    const before = new Set(unknownFields(descriptor.kind, current));
    const introduced = unknownFields(descriptor.kind, result).filter((f) => !before.has(f));
    this.checkUnknownFields(descriptor, introduced, options);
    if (introduced.length > 0) unknownFields(descriptor.kind, result, true);
    return result;
  }

  private prepareUpdate(descriptor: ResourceDescriptor, object: KubeObject, old: KubeObject, subresource: UpdateSubresource | undefined): KubeObject {
    const strategy = strategyFor(descriptor.kind);
    if (subresource === 'approval') {
      if (!strategy.prepareForApprovalUpdate) throw notFound(descriptor, old.metadata.name ?? '');
      strategy.prepareForApprovalUpdate(object, old);
    } else if (subresource === 'status') {
      strategy.prepareForStatusUpdate(object, old);
      strategy.applyDefaults(object);
    } else {
      strategy.applyDefaults(object);
      strategy.prepareForUpdate(object, old);
    }
    const causes = [...strategy.validate(object), ...strategy.validateUpdate(object, old)];
    if (causes.length > 0) throw invalid(descriptor, object.metadata.name ?? '', dedupe(causes));
    return object;
  }

  /**
   * Read-modify-write with the read revision as precondition, retried when someone else
   * wrote in between. `mutate` may throw to refuse (409, 422). Exposed for subresources.
   */
  async guaranteedUpdate(
    descriptor: ResourceDescriptor,
    namespace: string | undefined,
    name: string,
    options: Pick<WriteOptions, 'dryRun'>,
    mutate: (current: StoredObject) => KubeObject | Promise<KubeObject>,
  ): Promise<KubeObject> {
    const key = storageKey(descriptor, namespace, name);
    for (let attempt = 1; ; attempt++) {
      const current = await this.store.get(key);
      if (!current) throw notFound(descriptor, name);
      const next = await mutate(current);
      delete next.metadata.resourceVersion;
      if (sameObject(next, current.object)) return withTypeMeta(descriptor, current.object);
      if (options.dryRun) return withTypeMeta(descriptor, { ...next, metadata: { ...next.metadata, resourceVersion: String(current.resourceVersion) } });
      try {
        // A deleting object whose last finalizer went (and whose grace period is over) goes now.
        if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length && (next.metadata.deletionGracePeriodSeconds ?? 0) === 0) {
          const removed = await this.store.delete(key, current.resourceVersion);
          this.hooks.afterRemove?.(descriptor, removed.object, undefined);
          return withTypeMeta(descriptor, removed.object);
        }
        const reservation = await this.hooks.beforeUpdate?.(descriptor, next, current.object);
        try {
          const stored = await this.store.update(key, next, current.resourceVersion);
          reservation?.commit();
          return withTypeMeta(descriptor, stored.object);
        } catch (err) {
          reservation?.abort();
          throw err;
        }
      } catch (err) {
        if (err instanceof KeyNotFoundError) throw notFound(descriptor, name);
        if (!(err instanceof ResourceVersionConflictError)) throw err;
        if (attempt >= MAX_UPDATE_ATTEMPTS) throw conflict(descriptor, name);
      }
    }
  }

  // ---- delete ---------------------------------------------------------------------------

  async delete(descriptor: ResourceDescriptor, namespace: string | undefined, name: string, options: RemovalOptions): Promise<DeleteResult> {
    const key = storageKey(descriptor, namespace, name);
    if (options.gracePeriodSeconds !== undefined && (!Number.isInteger(options.gracePeriodSeconds) || options.gracePeriodSeconds < 0)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'DeleteOptions' }, '', [
        { reason: 'FieldValueInvalid', field: 'gracePeriodSeconds', message: `Invalid value: ${options.gracePeriodSeconds}: must be >= 0` },
      ]);
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.store.get(key);
      if (!current) throw notFound(descriptor, name);
      const object = current.object;
      this.checkPreconditions(descriptor, name, object, options);
      const refusal = strategyFor(descriptor.kind).deletionRefusal?.(object);
      if (refusal) throw forbidden(`${qualifiedResource(descriptor)} "${name}" is forbidden: ${refusal}`, descriptor, name);
      const marked = this.markForDeletion(descriptor, object, options);
      try {
        if (marked) {
          if (sameObject(marked, object)) return { object: withTypeMeta(descriptor, object), removed: false };
          if (options.dryRun) return { object: withTypeMeta(descriptor, marked), removed: false };
          delete marked.metadata.resourceVersion;
          const stored = await this.store.update(key, marked, current.resourceVersion);
          this.hooks.afterMarkedForDeletion?.(descriptor, stored.object);
          return { object: withTypeMeta(descriptor, stored.object), removed: false };
        }
        if (options.dryRun) return { object: withTypeMeta(descriptor, object), removed: true };
        const removed = await this.store.delete(key, current.resourceVersion);
        this.hooks.afterRemove?.(descriptor, removed.object, options.propagationPolicy);
        return { object: withTypeMeta(descriptor, removed.object), removed: true };
      } catch (err) {
        if (err instanceof KeyNotFoundError) throw notFound(descriptor, name);
        if (!(err instanceof ResourceVersionConflictError)) throw err;
        if (attempt >= MAX_UPDATE_ATTEMPTS) throw conflict(descriptor, name);
      }
    }
  }

  private checkPreconditions(descriptor: ResourceDescriptor, name: string, object: KubeObject, options: RemovalOptions): void {
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== object.metadata.uid) {
      throw conflict(descriptor, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${object.metadata.uid ?? ''}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== object.metadata.resourceVersion) {
      throw conflict(
        descriptor,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${object.metadata.resourceVersion ?? ''}`,
      );
    }
  }

  /**
   * The object as it should be stored while deletion is pending, or undefined when it can be
   * removed now. The kind's strategy says how long it stays (pods bound to a node get a
   * grace period for the kubelet to stop them; a later delete may shorten it, never extend
   * it) and what starting deletion adds (a namespace's contents finalizer); anything with
   * finalizers waits for them.
   */
  private markForDeletion(descriptor: ResourceDescriptor, object: KubeObject, options: RemovalOptions): KubeObject | undefined {
    const strategy = strategyFor(descriptor.kind);
    const meta = object.metadata;
    const marked = structuredClone(object);
    if (!meta.deletionTimestamp) strategy.prepareForDeletion?.(marked);
    const grace = strategy.deletionGracePeriodSeconds?.(object, options.gracePeriodSeconds) ?? 0;
    const hasFinalizers = (marked.metadata.finalizers?.length ?? 0) > 0;
    if (grace === 0 && !hasFinalizers) return undefined;
    const now = this.now();
    if (!meta.deletionTimestamp) {
      marked.metadata.deletionTimestamp = timestamp(new Date(now.getTime() + grace * 1000));
      marked.metadata.deletionGracePeriodSeconds = grace;
    } else if (meta.deletionGracePeriodSeconds === undefined || grace < meta.deletionGracePeriodSeconds) {
      // Shortening: the new deadline counts from now, but never later than the old one.
      const shortened = Math.min(Date.parse(meta.deletionTimestamp), now.getTime() + grace * 1000);
      marked.metadata.deletionTimestamp = timestamp(new Date(shortened));
      marked.metadata.deletionGracePeriodSeconds = grace;
    }
    if (grace === 0 && hasFinalizers && !meta.deletionTimestamp) marked.metadata.deletionGracePeriodSeconds = 0;
    return marked;
  }

  async deleteCollection(descriptor: ResourceDescriptor, namespace: string | undefined, selection: Selection, options: RemovalOptions): Promise<KubeList> {
    const listed = await this.store.list(storagePrefix(descriptor, namespace));
    const items: KubeObject[] = [];
    for (const item of listed.items) {
      if (!selection.matches(item.object)) continue;
      try {
        const result = await this.delete(descriptor, item.object.metadata.namespace, item.object.metadata.name ?? '', options);
        items.push(result.object);
      } catch (err) {
        if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
      }
    }
    return { apiVersion: apiVersionOf(descriptor), kind: `${descriptor.kind}List`, metadata: { resourceVersion: String(listed.resourceVersion) }, items };
  }

  /** The DELETE answer: the object while it stays (or always, if its kind says so), else a Status. */
  deleteAnswer(descriptor: ResourceDescriptor, result: DeleteResult): KubeObject | Status {
    if (!result.removed || strategyFor(descriptor.kind).deleteAnswersWithObject) return result.object;
    return success({
      name: result.object.metadata.name ?? '',
      ...(descriptor.group ? { group: descriptor.group } : {}),
      kind: descriptor.resource,
      ...(result.object.metadata.uid ? { uid: result.object.metadata.uid } : {}),
    });
  }

  // ---- decoding -------------------------------------------------------------------------

  /**
   * A request body as an object of this resource: kind and apiVersion must match the URL
   * (filled in when absent), the namespace must match the URL's, unknown fields are refused
   * or warned about per fieldValidation.
   */
  decodeObject(descriptor: ResourceDescriptor, namespace: string | undefined, body: Record<string, unknown>, options: WriteOptions): KubeObject {
    const apiVersion = apiVersionOf(descriptor);
    if (body['apiVersion'] !== undefined && body['apiVersion'] !== apiVersion) {
      throw badRequest(`the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${apiVersion})`);
    }
    if (body['kind'] !== undefined && body['kind'] !== descriptor.kind) {
      throw badRequest(`the kind in the data (${String(body['kind'])}) does not match the expected kind (${descriptor.kind})`);
    }
    const metadata = body['metadata'];
    if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
      throw badRequest(`${descriptor.kind} in version "${descriptor.version}" cannot be handled as a ${descriptor.kind}: metadata must be an object`);
    }
    const object = structuredClone({ ...body, apiVersion, kind: descriptor.kind, metadata: metadata ?? {} }) as KubeObject;
    this.checkUnknownFields(descriptor, unknownFields(descriptor.kind, object, options.fieldValidation !== 'Strict'), options);
    const meta = object.metadata;
    if (descriptor.namespaced) {
      if (meta.namespace && namespace !== undefined && meta.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      if (namespace !== undefined) meta.namespace = namespace;
      else if (!meta.namespace) throw badRequest(`${descriptor.resource} must be created or changed through a namespaced URL`);
    } else {
      delete meta.namespace;
    }
    return object;
  }

  private checkUnknownFields(descriptor: ResourceDescriptor, unknown: string[], options: WriteOptions): void {
    if (unknown.length === 0 || options.fieldValidation === 'Ignore') return;
    const described = unknown.map((f) => `unknown field "${f}"`);
    if (options.fieldValidation === 'Strict') {
      throw badRequest(
        `${descriptor.kind} in version "${descriptor.version}" cannot be handled as a ${descriptor.kind}: strict decoding error: ${described.join(', ')}`,
      );
    }
    options.warnings.push(...described);
  }
}

function generateName(prefix: string): string {
  let suffix = '';
  for (let i = 0; i < GENERATED_NAME_LENGTH; i++) suffix += GENERATED_NAME_ALPHABET[randomInt(GENERATED_NAME_ALPHABET.length)];
  // Upstream trims the prefix so the name stays within 63 characters.
  return `${prefix.slice(0, 63 - GENERATED_NAME_LENGTH)}${suffix}`;
}

function keyOf(descriptor: ResourceDescriptor, object: KubeObject): string {
  return storageKey(descriptor, object.metadata.namespace, object.metadata.name ?? '');
}

/** Equal apart from resourceVersion and managedFields: an update that changes nothing. */
function sameObject(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject): KubeObject => {
    const { resourceVersion: _rv, managedFields: _mf, ...meta } = o.metadata;
    return { ...o, metadata: meta };
  };
  return jsonEqual(strip(a), strip(b));
}

/** Objects go out with apiVersion and kind even when stored without them. */
export function withTypeMeta(descriptor: ResourceDescriptor, object: KubeObject): KubeObject {
  return { apiVersion: apiVersionOf(descriptor), kind: descriptor.kind, ...object };
}

function dedupe<T extends { field?: string; message?: string }>(causes: T[]): T[] {
  const seen = new Set<string>();
  return causes.filter((c) => {
    const key = `${c.field ?? ''}\u0000${c.message ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function parsePatchBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`error decoding patch: ${(err as Error).message}`);
  }
}
