/**
 * Owner-reference cascading, the part of upstream's garbage collector that matters here:
 * when an object leaves the store, objects whose ownerReferences name its uid are deleted
 * too (the default, "Background") or have that reference removed ("Orphan"). So
 * `kubectl delete deployment web` takes its ReplicaSets and their Pods with it, and deleting
 * a Node takes its Lease.
 *
 * Design notes:
 * - It runs inside the apiserver, after the owner's removal, without blocking the DELETE
 *   answer. "Foreground" is treated as Background: the owner goes first, dependents right
 *   after, rather than an owner kept alive by a finalizer no controller would remove.
 * - Dependents are found by scanning the resource prefixes they can live in (the owner's
 *   namespace, or everything for a cluster-scoped owner): fine for clusters of this size,
 *   and it needs no index that could drift from the store.
 * - Dependents are deleted through the registry, so pods still get their grace period and
 *   grandchildren cascade in turn.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCES, type ResourceDescriptor } from '../api/resources.js';
import type { DeleteOptions } from '../api/meta.js';
import type { Logger } from '../lib/log.js';
import type { Registry } from './registry.js';
import { storagePrefix } from './registry.js';
import { ApiStatusError } from './status.js';

export class Cascader {
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {}

  /** Called after `owner` left the store; returns at once, the work goes on in the background. */
  ownerRemoved(descriptor: ResourceDescriptor, owner: KubeObject, policy: DeleteOptions['propagationPolicy']): void {
    const uid = owner.metadata.uid;
    if (!uid) return;
    const work = this.cascade(descriptor, owner, uid, policy ?? 'Background').catch((err: unknown) => {
      this.log.warn({ err, owner: owner.metadata.name, kind: descriptor.kind }, 'failed to cascade the deletion to dependents');
    });
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  /** Waits for cascades in flight (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private async cascade(ownerDescriptor: ResourceDescriptor, owner: KubeObject, uid: string, policy: string): Promise<void> {
    const namespace = ownerDescriptor.namespaced ? owner.metadata.namespace : undefined;
    for (const descriptor of RESOURCES) {
      // A namespaced owner only owns objects in its own namespace; cluster-scoped ones may own anything.
      if (ownerDescriptor.namespaced && !descriptor.namespaced) continue;
      const listed = await this.registry.store.list(storagePrefix(descriptor, namespace));
      for (const { object } of listed.items) {
        if (!object.metadata.ownerReferences?.some((ref) => ref.uid === uid)) continue;
        const name = object.metadata.name ?? '';
        try {
          if (policy === 'Orphan') {
            await this.registry.guaranteedUpdate(descriptor, object.metadata.namespace, name, { dryRun: false }, (current) => {
              const next = structuredClone(current.object);
              const refs = (next.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid);
              if (refs.length > 0) next.metadata.ownerReferences = refs;
              else delete next.metadata.ownerReferences;
              return next;
            });
          } else if (!object.metadata.deletionTimestamp) {
            await this.registry.delete(descriptor, object.metadata.namespace, name, { propagationPolicy: 'Background' });
          }
        } catch (err) {
          // Gone meanwhile: nothing left to do for this one.
          if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
        }
      }
    }
  }
}
