/**
 * Garbage collector: deletes objects whose owners are all gone (Background propagation) and
 * drops references to vanished owners from objects that still have a living one.
 *
 * The apiserver already cascades a DELETE to the dependents it finds at that moment
 * (src/apiserver/cascade.ts). This controller is the reconciling backstop for what that
 * misses: a dependent created from a stale cache just after its owner went (a ReplicaSet's
 * pod racing the ReplicaSet's deletion), a cascade cut short by an apiserver restart, objects
 * written with references to owners that never existed.
 *
 *   observed = every object of every kind (shared informers), indexed by uid, and the reverse
 *              index owner uid → dependents
 *   desired  = no object whose owner references all point at missing uids
 *
 * Design note: an owner missing from the cache may just be newer than the cache, so before
 * acting on a dangling reference the collector reads the owner from the apiserver (by kind,
 * namespace and name) and compares uids, as upstream's attemptToDeleteItem does. Owners of a
 * kind the apiserver does not serve are assumed alive: we cannot tell, and deleting is the
 * irreversible mistake.
 */
import type { KubeObject, OwnerReference } from '../api/meta.js';
import { objectKey } from '../api/meta.js';
import { findKind, RESOURCE, RESOURCES, type ResourceDescriptor } from '../api/resources.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';

/** Events never own anything and are the busiest kind; the collector does not watch them. */
const UNWATCHED = new Set([RESOURCE.events]);

/** `<resource>.<group>|<ns/name>`: a queue key naming an object of any kind. */
function itemKey(descriptor: ResourceDescriptor, object: KubeObject): string {
  return `${descriptor.resource}.${descriptor.group}|${objectKey(object.metadata)}`;
}

export class GarbageCollector implements Controller {
  readonly name = 'garbage-collector';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly informers = new Map<string, { descriptor: ResourceDescriptor; informer: Informer<KubeObject> }>();
  private readonly uids = new Set<string>();
  private readonly dependents = new Map<string, Set<string>>();
  private readonly reconciler: Reconciler;

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });
    for (const descriptor of RESOURCES) {
      if (UNWATCHED.has(descriptor)) continue;
      const informer = context.informers.informer<KubeObject>(descriptor);
      this.informers.set(`${descriptor.resource}.${descriptor.group}`, { descriptor, informer });
      informer.on('add', (object) => this.seen(descriptor, undefined, object));
      informer.on('update', (old, object) => this.seen(descriptor, old, object));
      informer.on('delete', (object) => this.gone(descriptor, object));
    }
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  /**
   * Whether the collector has seen `object` (its informer is at the object's resourceVersion or
   * later) and has nothing queued, syncing or waiting. Once true, whatever the collector was
   * going to do about that object is done: tests wait on it before asserting that something
   * was left alone, instead of sleeping and hoping the collector had its turn.
   */
  settled(descriptor: ResourceDescriptor, object: KubeObject): boolean {
    const entry = this.informers.get(`${descriptor.resource}.${descriptor.group}`);
    const wanted = object.metadata.resourceVersion;
    if (!entry || !wanted) return false;
    const seen = entry.informer.resourceVersion;
    return seen !== '' && BigInt(seen) >= BigInt(wanted) && this.reconciler.queue.idle;
  }

  private seen(descriptor: ResourceDescriptor, old: KubeObject | undefined, object: KubeObject): void {
    const key = itemKey(descriptor, object);
    if (object.metadata.uid) this.uids.add(object.metadata.uid);
    for (const ref of old?.metadata.ownerReferences ?? []) this.dependents.get(ref.uid)?.delete(key);
    const refs = object.metadata.ownerReferences ?? [];
    for (const ref of refs) {
      let set = this.dependents.get(ref.uid);
      if (!set) {
        set = new Set();
        this.dependents.set(ref.uid, set);
      }
      set.add(key);
    }
    if (refs.some((ref) => !this.uids.has(ref.uid))) this.reconciler.enqueue(key);
  }

  private gone(descriptor: ResourceDescriptor, object: KubeObject): void {
    const key = itemKey(descriptor, object);
    for (const ref of object.metadata.ownerReferences ?? []) this.dependents.get(ref.uid)?.delete(key);
    const uid = object.metadata.uid;
    if (!uid) return;
    this.uids.delete(uid);
    for (const dependent of this.dependents.get(uid) ?? []) this.reconciler.enqueue(dependent);
    this.dependents.delete(uid);
  }

  private async ownerExists(dependent: KubeObject, ref: OwnerReference): Promise<boolean> {
    if (this.uids.has(ref.uid)) return true;
    const descriptor = findKind(ref.apiVersion, ref.kind);
    if (!descriptor) return true;
    const namespace = descriptor.namespaced ? dependent.metadata.namespace : undefined;
    if (descriptor.namespaced && !namespace) return true; // an invalid reference; not ours to judge
    const live = await this.api.get(descriptor, ref.name, namespace);
    return live?.metadata.uid === ref.uid;
  }

  private async sync(key: string): Promise<void> {
    const bar = key.indexOf('|');
    const entry = this.informers.get(key.slice(0, bar));
    if (!entry) return;
    const cached = entry.informer.get(key.slice(bar + 1));
    const refs = cached?.metadata.ownerReferences ?? [];
    if (!cached || refs.length === 0 || cached.metadata.deletionTimestamp) return;
    const dangling: OwnerReference[] = [];
    for (const ref of refs) if (!(await this.ownerExists(cached, ref))) dangling.push(ref);
    if (dangling.length === 0) return;
    const { descriptor } = entry;
    const name = cached.metadata.name ?? '';
    if (dangling.length === refs.length) {
      try {
        await this.api.delete(descriptor, name, cached.metadata.namespace, {
          propagationPolicy: 'Background',
          preconditions: { uid: cached.metadata.uid },
        });
        this.log.info({ kind: descriptor.kind, object: objectKey(cached.metadata), owners: dangling.map((r) => `${r.kind}/${r.name}`) }, 'deleted object whose owners are gone');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return;
    }
    const gone = new Set(dangling.map((r) => r.uid));
    const updated = structuredClone(cached);
    updated.metadata.ownerReferences = refs.filter((r) => !gone.has(r.uid));
    try {
      await this.api.update(descriptor, updated);
      this.log.info({ kind: descriptor.kind, object: objectKey(cached.metadata) }, 'removed references to deleted owners');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
