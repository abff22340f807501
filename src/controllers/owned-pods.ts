/**
 * Pod events routed to the workload controller that owns the pod, the shape upstream's
 * ReplicaSet and DaemonSet controllers share:
 * - a pod with a controller reference of our kind wakes its owner, and its creation or
 *   deletion is observed in the owner's expectations (a pod whose graceful deletion starts
 *   counts as deleted, as far as replicas go);
 * - a pod that changed owner wakes the old owner too;
 * - an orphan wakes every owner whose selector matches it now or matched it before a label
 *   change (candidates to adopt it, or to release it);
 * - an owner with minReadySeconds is woken again when the pod becomes available.
 */
import { objectKey, type KubeObject, type LabelSelector } from '../api/meta.js';
import { controllerRef, msUntilAvailable } from '../api/pods.js';
import { matchesLabels } from '../api/selectors.js';
import type { Pod } from '../api/types.js';
import type { Informer } from '../client/informer.js';
import type { Reconciler } from '../client/workqueue.js';
import { controllerKey, ownerSelector } from './claim.js';
import type { Expectations } from './expectations.js';
import { inNamespace } from './informers.js';

/** What the routing needs of an owner: its selector and its minReadySeconds. */
export type PodOwner = KubeObject & { spec: { selector?: LabelSelector; minReadySeconds?: number } };

export class OwnedPodEvents<T extends PodOwner> {
  constructor(
    private readonly kind: string,
    private readonly owners: Informer<T>,
    private readonly expectations: Expectations,
    private readonly reconciler: Pick<Reconciler, 'enqueue' | 'enqueueAfter'>,
  ) {}

  /** Subscribes to the pod informer. */
  follow(pods: Informer<Pod>): void {
    pods.on('add', (pod) => this.added(pod));
    pods.on('update', (old, pod) => this.updated(old, pod));
    pods.on('delete', (pod) => this.deleted(pod));
  }

  ownerKey(pod: Pod): string | undefined {
    return controllerKey(pod, this.kind, this.owners);
  }

  /** Owners in the pod's namespace whose selector matches it: candidates to adopt it. */
  matchingKeys(pod: Pod): string[] {
    return inNamespace(this.owners, pod.metadata.namespace ?? '')
      .filter((owner) => {
        const selector = ownerSelector(owner.spec.selector);
        return selector !== undefined && matchesLabels(selector, pod.metadata.labels);
      })
      .map((owner) => objectKey(owner.metadata));
  }

  private added(pod: Pod): void {
    // A pod already being deleted when we first see it (a relist) is gone for the count.
    if (pod.metadata.deletionTimestamp) {
      this.deleted(pod);
      return;
    }
    const owner = this.ownerKey(pod);
    if (owner) {
      this.expectations.creationObserved(owner);
      this.reconciler.enqueue(owner);
    } else if (!controllerRef(pod)) {
      for (const key of this.matchingKeys(pod)) this.reconciler.enqueue(key);
    }
  }

  private updated(old: Pod, pod: Pod): void {
    const owner = this.ownerKey(pod);
    if (owner && pod.metadata.deletionTimestamp && !old.metadata.deletionTimestamp) {
      this.expectations.deletionObserved(owner, objectKey(pod.metadata));
    }
    const oldOwner = this.ownerKey(old);
    if (oldOwner && oldOwner !== owner) this.reconciler.enqueue(oldOwner);
    if (owner) {
      this.reconciler.enqueue(owner);
      // Availability needs minReadySeconds of readiness: look again when it is reached.
      const wait = msUntilAvailable(pod, this.owners.get(owner)?.spec.minReadySeconds ?? 0, Date.now());
      if (wait) this.reconciler.enqueueAfter(owner, wait + 1);
    } else if (!controllerRef(pod)) {
      const keys = new Set(this.matchingKeys(pod));
      if (JSON.stringify(old.metadata.labels) !== JSON.stringify(pod.metadata.labels)) {
        for (const key of this.matchingKeys(old)) keys.add(key);
      }
      for (const key of keys) this.reconciler.enqueue(key);
    }
  }

  private deleted(pod: Pod): void {
    const owner = this.ownerKey(pod);
    if (!owner) return;
    this.expectations.deletionObserved(owner, objectKey(pod.metadata));
    this.reconciler.enqueue(owner);
  }
}
