/**
 * DaemonSet controller: one pod of the template on every eligible node, replaced node by node
 * when the template changes, and a status `kubectl rollout status ds/...` reads.
 *
 *   desired  = per node: nodeShouldRunDaemonPod (node name, nodeSelector, required node
 *              affinity, taints vs the template's tolerations plus the daemon defaults)
 *   observed = the DaemonSet's pods (claimed by selector and controller reference), by node
 *   apply    = create the missing pod (bound to the node), delete extras, failed pods (with a
 *              per-node back-off), pods on nodes that no longer qualify or no longer exist,
 *              then one RollingUpdate step (OnDelete: nothing — a pod deleted by hand comes
 *              back from the current template)
 *
 * Design note: the shape is the ReplicaSet controller's (informers → queue keyed by
 * DaemonSet → sync; Expectations guard against acting on a cache that has not yet seen our
 * own creates and deletes). Node events enqueue every DaemonSet, since a label or taint change
 * can move any of them. Pods are bound with spec.nodeName rather than through the scheduler
 * (see newDaemonPod), which also means a DaemonSet works with the scheduler down, as node
 * agents must.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { DaemonSet, DaemonSetStatus, Node, Pod } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { EventRecorder } from '../client/events.js';
import type { Informer } from '../client/informer.js';
import { nextExponentialDelayMs } from '../lib/backoff.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { claim, ownerSelector } from './claim.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import {
  computeDaemonSetStatus,
  daemonSetHash,
  newDaemonPod,
  nodeShouldRunDaemonPod,
  planNode,
  planRollingUpdate,
  rollingBudget,
  type NodePlacement,
} from './daemonset-util.js';
import { Expectations } from './expectations.js';
import { inNamespace, onAnyChange } from './informers.js';
import { OwnedPodEvents } from './owned-pods.js';
import { isPodActive, isTerminating, msUntilAvailable } from '../api/pods.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

/** Upstream's failedPodsBackoff: 1 s doubling to 15 min per DaemonSet and node. */
const FAILED_POD_BACKOFF_BASE_MS = 1000;
const FAILED_POD_BACKOFF_MAX_MS = 15 * 60_000;

interface NodeView {
  node: Node;
  placement: NodePlacement;
  /** The DaemonSet's pods bound to this node, terminating and finished ones included. */
  pods: Pod[];
}

export class DaemonSetController implements Controller {
  readonly name = 'daemonset';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly daemonSets: Informer<DaemonSet>;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly expectations = new Expectations();
  private readonly reconciler: Reconciler;
  /** `<ds key>|<node>` → when a failed pod there may next be replaced, and the current delay. */
  private readonly failedBackoff = new Map<string, { untilMs: number; delayMs: number }>();

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'daemonset-controller');
    this.daemonSets = context.informers.informer<DaemonSet>(RESOURCE.daemonsets);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.nodes = context.informers.informer<Node>(RESOURCE.nodes);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });

    onAnyChange(this.daemonSets, (ds) => this.reconciler.enqueue(objectKey(ds.metadata)));
    onAnyChange(this.nodes, () => this.enqueueAll());
    new OwnedPodEvents('DaemonSet', this.daemonSets, this.expectations, this.reconciler).follow(this.pods);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  // ---- event handlers ---------------------------------------------------------------------

  private enqueueAll(): void {
    for (const ds of this.daemonSets.list()) this.reconciler.enqueue(objectKey(ds.metadata));
  }

  // ---- sync -------------------------------------------------------------------------------

  private async sync(key: string): Promise<SyncResult | void> {
    const cached = this.daemonSets.get(key);
    if (!cached) {
      this.expectations.delete(key);
      for (const backoffKey of this.failedBackoff.keys()) if (backoffKey.startsWith(`${key}|`)) this.failedBackoff.delete(backoffKey);
      return;
    }
    const ds = structuredClone(cached);
    const selector = ownerSelector(ds.spec.selector);
    if (!selector) {
      this.log.warn({ daemonSet: key }, 'invalid selector; not managing pods');
      return;
    }
    const claimed = await claim({
      api: this.api,
      log: this.log,
      owner: ds,
      ownerApiVersion: 'apps/v1',
      ownerKind: 'DaemonSet',
      selector,
      candidates: inNamespace(this.pods, ds.metadata.namespace ?? ''),
      resource: RESOURCE.pods,
    });
    const hash = daemonSetHash(ds);
    const nowMs = Date.now();
    const views = this.nodeViews(ds, claimed);

    let requeueAfterMs: number | undefined;
    let manageError: unknown;
    if (this.expectations.satisfied(key) && !ds.metadata.deletionTimestamp) {
      try {
        requeueAfterMs = await this.manage(ds, key, claimed, views, hash, nowMs);
      } catch (err) {
        manageError = err;
      }
    }
    await this.updateStatus(ds, computeDaemonSetStatus(ds, [...views.values()], hash, nowMs));
    if (manageError) throw manageError;

    const minReadySeconds = ds.spec.minReadySeconds ?? 0;
    const waits = claimed.map((pod) => msUntilAvailable(pod, minReadySeconds, nowMs)).filter((ms): ms is number => ms !== undefined && ms > 0);
    if (requeueAfterMs !== undefined) waits.push(requeueAfterMs);
    if (waits.length > 0) return { requeueAfterMs: Math.min(...waits) + 1 };
  }

  private nodeViews(ds: DaemonSet, claimed: readonly Pod[]): Map<string, NodeView> {
    const views = new Map<string, NodeView>();
    for (const node of this.nodes.list()) {
      views.set(node.metadata.name ?? '', { node, placement: nodeShouldRunDaemonPod(ds, node), pods: [] });
    }
    for (const pod of claimed) {
      const view = pod.spec.nodeName ? views.get(pod.spec.nodeName) : undefined;
      view?.pods.push(pod);
    }
    return views;
  }

  /** Creates and deletes what the nodes need, then one rolling step; returns when to look again (back-off). */
  private async manage(ds: DaemonSet, key: string, claimed: readonly Pod[], views: Map<string, NodeView>, hash: string, nowMs: number): Promise<number | undefined> {
    const createOn: string[] = [];
    const deletes: Pod[] = [];
    let retryInMs: number | undefined;
    const rollingSurge = ds.spec.updateStrategy?.type !== 'OnDelete' && rollingBudget(ds, 1).maxSurge > 0;

    for (const [nodeName, view] of views) {
      const plan = planNode(view.placement, view.pods, hash, rollingSurge);
      if (plan.create) createOn.push(nodeName);
      deletes.push(...plan.delete);
      for (const pod of plan.failed) {
        // A pod the kubelet keeps failing (a bad command, a port in use) must not hot-loop.
        const backoffKey = `${key}|${nodeName}`;
        const backoff = this.failedBackoff.get(backoffKey);
        if (backoff && backoff.untilMs > nowMs) {
          retryInMs = Math.min(retryInMs ?? Infinity, backoff.untilMs - nowMs);
          continue;
        }
        const delayMs = nextExponentialDelayMs(backoff?.delayMs, FAILED_POD_BACKOFF_BASE_MS, FAILED_POD_BACKOFF_MAX_MS);
        this.failedBackoff.set(backoffKey, { untilMs: nowMs + delayMs, delayMs });
        this.recorder.record(ds, 'Warning', 'FailedDaemonPod', `Found failed daemon pod ${pod.metadata.namespace}/${pod.metadata.name} on node ${nodeName}, will try to kill it`);
        deletes.push(pod);
      }
    }
    // Pods bound to nodes that left the cluster (or never existed) have nowhere to run.
    for (const pod of claimed) {
      if (!pod.spec.nodeName || views.has(pod.spec.nodeName) || isTerminating(pod)) continue;
      deletes.push(pod);
    }

    if (createOn.length === 0 && deletes.length === 0 && ds.spec.updateStrategy?.type !== 'OnDelete') {
      // Nothing to repair: take the next rolling-update step.
      const desired = [...views.values()].filter((view) => view.placement.shouldRun);
      const live = new Map(desired.map((view) => [view.node.metadata.name ?? '', view.pods.filter(isPodActive)]));
      const step = planRollingUpdate(ds, live, hash, rollingBudget(ds, desired.length), nowMs);
      deletes.push(...step.delete);
      createOn.push(...step.surgeNodes);
    }
    await this.syncNodes(ds, key, createOn, deletes, hash);
    return retryInMs;
  }

  private async syncNodes(ds: DaemonSet, key: string, createOn: readonly string[], deletes: readonly Pod[], hash: string): Promise<void> {
    if (createOn.length === 0 && deletes.length === 0) return;
    // One expectation record covering both halves: creates to observe and deletes to see go.
    this.expectations.expectDeletions(key, deletes.map((pod) => objectKey(pod.metadata)));
    for (let i = 0; i < createOn.length; i++) this.expectations.raiseCreations(key);
    const results = await Promise.allSettled([
      ...createOn.map((node) => this.createPod(ds, node, hash, key)),
      ...deletes.map((pod) => this.deletePod(ds, pod, key)),
    ]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  private async createPod(ds: DaemonSet, nodeName: string, hash: string, key: string): Promise<void> {
    try {
      const created = await this.api.create(RESOURCE.pods, newDaemonPod(ds, nodeName, hash));
      this.recorder.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
    } catch (err) {
      this.expectations.creationObserved(key);
      this.recorder.record(ds, 'Warning', 'FailedCreate', `Error creating: ${describeError(err)}`);
      throw err;
    }
  }

  private async deletePod(ds: DaemonSet, pod: Pod, key: string): Promise<void> {
    try {
      await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, { preconditions: { uid: pod.metadata.uid } });
      this.recorder.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
    } catch (err) {
      this.expectations.deletionObserved(key, objectKey(pod.metadata));
      if (isNotFound(err)) return;
      this.recorder.record(ds, 'Warning', 'FailedDelete', `Error deleting: ${describeError(err)}`);
      throw err;
    }
  }

  private async updateStatus(ds: DaemonSet, status: DaemonSetStatus): Promise<void> {
    const normalize = (s: DaemonSetStatus | undefined): string =>
      JSON.stringify([
        s?.currentNumberScheduled ?? 0,
        s?.numberMisscheduled ?? 0,
        s?.desiredNumberScheduled ?? 0,
        s?.numberReady ?? 0,
        s?.observedGeneration ?? 0,
        s?.updatedNumberScheduled ?? 0,
        s?.numberAvailable ?? 0,
        s?.numberUnavailable ?? 0,
      ]);
    if (normalize(ds.status) === normalize(status)) return;
    try {
      await this.api.update(RESOURCE.daemonsets, { ...ds, status: { ...status, ...(ds.status?.conditions ? { conditions: ds.status.conditions } : {}) } }, 'status');
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }
}
