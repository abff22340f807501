/**
 * ReplicaSet controller: keeps `spec.replicas` active pods that match the selector and carry
 * the ReplicaSet's controller reference, and reports what it sees in `status`.
 *
 *   desired = spec.replicas
 *   observed = claimed pods that are neither finished nor terminating
 *   apply    = create from the template (generateName "<rs>-") or delete the pods whose loss
 *              hurts least (unscheduled, then pending, not ready, most recently ready/created)
 *
 * Design note: creates and deletes are guarded by Expectations (see expectations.ts) because
 * the pod informer lags behind our own writes; while an owner has writes outstanding its sync
 * only refreshes status. Creates go out in doubling batches (1, 2, 4, …) like upstream's
 * slowStartBatch, so a template the apiserver rejects fails once, not `replicas` times.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Pod, ReplicaSet, ReplicaSetStatus } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { claim, ownerSelector } from './claim.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import type { EventRecorder } from '../client/events.js';
import { Expectations } from './expectations.js';
import { inNamespace, onAnyChange } from './informers.js';
import { OwnedPodEvents } from './owned-pods.js';
import {
  controllerReferenceTo,
  creationMs,
  isPodActive,
  isPodAvailable,
  isPodReady,
  msUntilAvailable,
  podCondition,
} from '../api/pods.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

/** Most pods one sync creates or deletes (upstream's burstReplicas). */
const BURST_REPLICAS = 500;

export class ReplicaSetController implements Controller {
  readonly name = 'replicaset';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly pods: Informer<Pod>;
  private readonly expectations = new Expectations();
  private readonly reconciler: Reconciler;

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'replicaset-controller');
    this.replicaSets = context.informers.informer<ReplicaSet>(RESOURCE.replicasets);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });

    onAnyChange(this.replicaSets, (rs) => this.reconciler.enqueue(objectKey(rs.metadata)));
    new OwnedPodEvents('ReplicaSet', this.replicaSets, this.expectations, this.reconciler).follow(this.pods);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  // ---- event handlers: map pod events to owning ReplicaSets ----------------------------

  // ---- sync -------------------------------------------------------------------------------

  private async sync(key: string): Promise<SyncResult | void> {
    const cached = this.replicaSets.get(key);
    if (!cached) {
      this.expectations.delete(key);
      return;
    }
    const rs = structuredClone(cached);
    const selector = ownerSelector(rs.spec.selector);
    if (!selector) {
      this.log.warn({ replicaSet: key }, 'invalid selector; not managing pods');
      return;
    }
    const namespace = rs.metadata.namespace ?? '';
    const candidates = inNamespace(this.pods, namespace);
    const claimed = await claim({
      api: this.api,
      log: this.log,
      owner: rs,
      ownerApiVersion: 'apps/v1',
      ownerKind: 'ReplicaSet',
      selector,
      candidates,
      resource: RESOURCE.pods,
    });
    const active = claimed.filter(isPodActive);

    let manageError: unknown;
    if (this.expectations.satisfied(key) && !rs.metadata.deletionTimestamp) {
      try {
        await this.manageReplicas(rs, key, active);
      } catch (err) {
        manageError = err;
      }
    }
    const nowMs = Date.now();
    const minReadySeconds = rs.spec.minReadySeconds ?? 0;
    await this.updateStatus(rs, computeReplicaSetStatus(rs, active, nowMs));
    if (manageError) throw manageError;
    // Look again when the next ready pod becomes available.
    const waits = active.map((pod) => msUntilAvailable(pod, minReadySeconds, nowMs)).filter((ms): ms is number => ms !== undefined && ms > 0);
    if (waits.length > 0) return { requeueAfterMs: Math.min(...waits) + 1 };
  }

  private async manageReplicas(rs: ReplicaSet, key: string, active: Pod[]): Promise<void> {
    const wanted = rs.spec.replicas ?? 1;
    const diff = active.length - wanted;
    if (diff < 0) {
      const count = Math.min(-diff, BURST_REPLICAS);
      this.expectations.expectCreations(key, count);
      let created = 0;
      try {
        for (let batch = 1; created < count; batch *= 2) {
          const size = Math.min(batch, count - created);
          const results = await Promise.allSettled(Array.from({ length: size }, () => this.createPod(rs)));
          created += size;
          const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          for (const r of results) if (r.status === 'rejected') this.expectations.creationObserved(key);
          if (failure) throw failure.reason;
        }
      } finally {
        // Pods never attempted will never be observed.
        for (let i = created; i < count; i++) this.expectations.creationObserved(key);
      }
    } else if (diff > 0) {
      const victims = podsToDelete(active, Math.min(diff, BURST_REPLICAS));
      this.expectations.expectDeletions(key, victims.map((pod) => objectKey(pod.metadata)));
      const results = await Promise.allSettled(victims.map((pod) => this.deletePod(rs, pod)));
      results.forEach((r, i) => {
        if (r.status === 'rejected') this.expectations.deletionObserved(key, objectKey(victims[i]!.metadata));
      });
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
    }
  }

  private async createPod(rs: ReplicaSet): Promise<void> {
    const template = rs.spec.template;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${rs.metadata.name}-`,
        namespace: rs.metadata.namespace,
        labels: { ...template.metadata?.labels },
        ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
        ...(template.metadata?.finalizers ? { finalizers: [...template.metadata.finalizers] } : {}),
        ownerReferences: [controllerReferenceTo(rs, 'apps/v1', 'ReplicaSet')],
      },
      spec: structuredClone(template.spec),
    };
    try {
      const created = await this.api.create(RESOURCE.pods, pod);
      this.recorder.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
    } catch (err) {
      this.recorder.record(rs, 'Warning', 'FailedCreate', `Error creating: ${describeError(err)}`);
      throw err;
    }
  }

  private async deletePod(rs: ReplicaSet, pod: Pod): Promise<void> {
    try {
      await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, {
        preconditions: { uid: pod.metadata.uid },
      });
      this.recorder.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
    } catch (err) {
      if (isNotFound(err)) return;
      this.recorder.record(rs, 'Warning', 'FailedDelete', `Error deleting: ${describeError(err)}`);
      throw err;
    }
  }

  private async updateStatus(rs: ReplicaSet, status: ReplicaSetStatus): Promise<void> {
    if (JSON.stringify(normalizeStatus(rs.status)) === JSON.stringify(normalizeStatus(status))) return;
    try {
      await this.api.update(RESOURCE.replicasets, { ...rs, status }, 'status');
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }
}

function normalizeStatus(status: ReplicaSetStatus | undefined): ReplicaSetStatus {
  return {
    replicas: status?.replicas ?? 0,
    fullyLabeledReplicas: status?.fullyLabeledReplicas ?? 0,
    readyReplicas: status?.readyReplicas ?? 0,
    availableReplicas: status?.availableReplicas ?? 0,
    observedGeneration: status?.observedGeneration ?? 0,
  };
}

export function computeReplicaSetStatus(rs: ReplicaSet, active: readonly Pod[], nowMs: number): ReplicaSetStatus {
  const templateLabels = rs.spec.template.metadata?.labels ?? {};
  const minReadySeconds = rs.spec.minReadySeconds ?? 0;
  return {
    replicas: active.length,
    fullyLabeledReplicas: active.filter((pod) => Object.entries(templateLabels).every(([k, v]) => pod.metadata.labels?.[k] === v)).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: active.filter((pod) => isPodAvailable(pod, minReadySeconds, nowMs)).length,
    observedGeneration: rs.metadata.generation ?? 0,
  };
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/**
 * The `count` pods whose deletion hurts least, in upstream's order (ActivePods' Less):
 * unassigned before assigned, Pending before Unknown before Running, not ready before ready,
 * more recently ready before longer ready, more restarts before fewer, newer before older.
 */
export function podsToDelete(pods: readonly Pod[], count: number): Pod[] {
  const readySince = (pod: Pod): number => Date.parse(podCondition(pod, 'Ready')?.lastTransitionTime ?? '') || 0;
  const restarts = (pod: Pod): number => Math.max(0, ...(pod.status?.containerStatuses ?? []).map((c) => c.restartCount));
  const sorted = [...pods].sort((a, b) => {
    const assigned = Number(Boolean(a.spec.nodeName)) - Number(Boolean(b.spec.nodeName));
    if (assigned !== 0) return assigned;
    const phase = (PHASE_RANK[a.status?.phase ?? 'Pending'] ?? 0) - (PHASE_RANK[b.status?.phase ?? 'Pending'] ?? 0);
    if (phase !== 0) return phase;
    const ready = Number(isPodReady(a)) - Number(isPodReady(b));
    if (ready !== 0) return ready;
    if (isPodReady(a) && isPodReady(b) && readySince(a) !== readySince(b)) return readySince(b) - readySince(a);
    if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
    return creationMs(b) - creationMs(a);
  });
  return sorted.slice(0, count);
}
