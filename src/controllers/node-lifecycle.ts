/**
 * Node lifecycle controller: notices kubelets that stopped checking in.
 *
 *   observed = when we last saw each node's heartbeat: its Lease in kube-node-lease being
 *              renewed, or its Ready condition's lastHeartbeatTime moving
 *   desired  = a node silent for longer than --node-monitor-grace-period has every condition
 *              Unknown (reason NodeStatusUnknown, "Kubelet stopped posting node status."), the
 *              taints node.kubernetes.io/unreachable:NoSchedule and :NoExecute, and its pods
 *              marked not Ready (so Endpoints drop them); when heartbeats resume the taints go
 *              (the kubelet rewrites its own conditions on its next status update)
 *   eviction = pods on an unreachable node are deleted once the NoExecute taint is older than
 *              their toleration of it (tolerationSeconds), or --pod-eviction-timeout for pods
 *              that do not tolerate it (upstream's default toleration is 300 s); 0 disables
 *
 * Design note: "when we saw it" is this process's clock, not the timestamps the kubelet
 * wrote, as upstream does — the node's clock may be wrong, and a controller that just
 * started has seen nothing yet, so every node first gets a full grace period.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Lease, Node, NodeCondition, Pod, Taint } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import type { EventRecorder } from '../client/events.js';
import { isPodReady, nowTimestamp } from '../api/pods.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
export const UNREACHABLE_TAINT_KEY = 'node.kubernetes.io/unreachable';
const WATCHED_CONDITIONS = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];

export interface NodeLifecycleOptions {
  /** How long a node may be silent before it is Unknown. */
  nodeMonitorGracePeriodMs: number;
  /** Evict pods without an unreachable toleration this long after the taint; 0: never. */
  podEvictionTimeoutMs: number;
}

interface Heartbeat {
  /** Local time of the last heartbeat seen. */
  seenAtMs: number;
  leaseRenewTime?: string;
  statusHeartbeat?: string;
}

export class NodeLifecycleController implements Controller {
  readonly name = 'node-lifecycle';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly nodes: Informer<Node>;
  private readonly leases: Informer<Lease>;
  private readonly pods: Informer<Pod>;
  private readonly reconciler: Reconciler;
  private readonly heartbeats = new Map<string, Heartbeat>();

  constructor(
    context: ControllerContext,
    private readonly options: NodeLifecycleOptions,
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'node-controller');
    this.nodes = context.informers.informer<Node>(RESOURCE.nodes);
    this.leases = context.informers.informer<Lease>(RESOURCE.leases);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });

    this.nodes.on('add', (node) => this.nodeSeen(node));
    this.nodes.on('update', (_old, node) => this.nodeSeen(node));
    this.nodes.on('delete', (node) => this.heartbeats.delete(node.metadata.name ?? ''));
    this.leases.on('add', (lease) => this.leaseSeen(lease));
    this.leases.on('update', (_old, lease) => this.leaseSeen(lease));
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  private heartbeat(name: string): Heartbeat {
    let beat = this.heartbeats.get(name);
    if (!beat) {
      beat = { seenAtMs: Date.now() };
      this.heartbeats.set(name, beat);
    }
    return beat;
  }

  private nodeSeen(node: Node): void {
    const name = node.metadata.name ?? '';
    const beat = this.heartbeat(name);
    const posted = node.status?.conditions?.find((c) => c.type === 'Ready')?.lastHeartbeatTime;
    if (posted && posted !== beat.statusHeartbeat) {
      if (beat.statusHeartbeat !== undefined || this.nodes.synced) beat.seenAtMs = Date.now();
      beat.statusHeartbeat = posted;
    }
    this.reconciler.enqueue(name);
  }

  private leaseSeen(lease: Lease): void {
    if (lease.metadata.namespace !== NODE_LEASE_NAMESPACE) return;
    const name = lease.metadata.name ?? '';
    const beat = this.heartbeat(name);
    const renewed = lease.spec?.renewTime ?? lease.metadata.resourceVersion;
    if (renewed !== beat.leaseRenewTime) {
      // What the first list shows (our startup) is not evidence the kubelet is alive now.
      if (beat.leaseRenewTime !== undefined || this.leases.synced) beat.seenAtMs = Date.now();
      beat.leaseRenewTime = renewed;
    }
    this.reconciler.enqueue(name);
  }

  private async sync(name: string): Promise<SyncResult | void> {
    const cached = this.nodes.get(name);
    if (!cached) return;
    const nowMs = Date.now();
    const silentMs = nowMs - this.heartbeat(name).seenAtMs;
    const grace = this.options.nodeMonitorGracePeriodMs;
    if (silentMs < grace) {
      if (hasUnreachableTaints(cached)) {
        await this.setUnreachableTaints(cached, false);
        this.log.info({ node: name }, 'node heartbeats resumed; removed unreachable taints');
      }
      return { requeueAfterMs: grace - silentMs + 1 };
    }
    let node = structuredClone(cached);
    if (markConditionsUnknown(node, nowTimestamp(nowMs))) {
      node = await this.api.update(RESOURCE.nodes, node, 'status');
      this.log.warn({ node: name, silentSeconds: Math.round(silentMs / 1000) }, 'node stopped posting status; marked Unknown');
      this.recorder.record(node, 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
    }
    if (!hasUnreachableTaints(node)) node = await this.setUnreachableTaints(node, true);
    await this.markPodsNotReady(name);
    return this.evictPods(node, nowMs);
  }

  private async setUnreachableTaints(node: Node, present: boolean): Promise<Node> {
    const updated = structuredClone(node);
    const others = (updated.spec?.taints ?? []).filter((t) => t.key !== UNREACHABLE_TAINT_KEY);
    const taints: Taint[] = present
      ? [...others, { key: UNREACHABLE_TAINT_KEY, effect: 'NoSchedule' }, { key: UNREACHABLE_TAINT_KEY, effect: 'NoExecute', timeAdded: nowTimestamp() }]
      : others;
    updated.spec = { ...updated.spec, taints };
    return this.api.update(RESOURCE.nodes, updated);
  }

  private podsOn(name: string): Pod[] {
    return this.pods.list().filter((pod) => pod.spec.nodeName === name);
  }

  /** Ready=False on the node's pods: the kubelet cannot vouch for them any more. */
  private async markPodsNotReady(name: string): Promise<void> {
    for (const pod of this.podsOn(name)) {
      if (!isPodReady(pod)) continue;
      const updated = structuredClone(pod);
      const ready = updated.status?.conditions?.find((c) => c.type === 'Ready');
      if (!ready) continue;
      ready.status = 'False';
      ready.reason = 'NodeNotReady';
      ready.message = 'Node is not reachable';
      ready.lastTransitionTime = nowTimestamp();
      try {
        await this.api.update(RESOURCE.pods, updated, 'status');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  private async evictPods(node: Node, nowMs: number): Promise<SyncResult | void> {
    const taint = node.spec?.taints?.find((t) => t.key === UNREACHABLE_TAINT_KEY && t.effect === 'NoExecute');
    const taintedAtMs = Date.parse(taint?.timeAdded ?? '') || nowMs;
    let nextMs: number | undefined;
    for (const pod of this.podsOn(node.metadata.name ?? '')) {
      if (pod.metadata.deletionTimestamp) continue;
      const allowedMs = tolerationMs(pod, this.options.podEvictionTimeoutMs);
      if (allowedMs === undefined) continue;
      const dueMs = taintedAtMs + allowedMs;
      if (dueMs > nowMs) {
        nextMs = Math.min(nextMs ?? Number.POSITIVE_INFINITY, dueMs - nowMs);
        continue;
      }
      try {
        await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, { preconditions: { uid: pod.metadata.uid } });
        this.log.warn({ node: node.metadata.name, pod: objectKey(pod.metadata) }, 'evicted pod from unreachable node');
        this.recorder.record(pod, 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${objectKey(pod.metadata)}`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return nextMs !== undefined ? { requeueAfterMs: nextMs + 1 } : undefined;
  }
}

function hasUnreachableTaints(node: Node): boolean {
  const taints = node.spec?.taints ?? [];
  return ['NoSchedule', 'NoExecute'].every((effect) => taints.some((t) => t.key === UNREACHABLE_TAINT_KEY && t.effect === effect));
}

/** Sets the kubelet-owned conditions to Unknown; true when anything changed. */
export function markConditionsUnknown(node: Node, now: string): boolean {
  node.status ??= {};
  const conditions: NodeCondition[] = (node.status.conditions ??= []);
  let changed = false;
  for (const type of WATCHED_CONDITIONS) {
    const condition = conditions.find((c) => c.type === type);
    if (!condition) {
      if (type !== 'Ready') continue;
      conditions.push({ type, status: 'Unknown', reason: 'NodeStatusNeverUpdated', message: 'Kubelet never posted node status.', lastTransitionTime: now });
      changed = true;
    } else if (condition.status !== 'Unknown') {
      condition.status = 'Unknown';
      condition.reason = 'NodeStatusUnknown';
      condition.message = 'Kubelet stopped posting node status.';
      condition.lastTransitionTime = now;
      changed = true;
    }
  }
  return changed;
}

/**
 * How long a pod may stay on an unreachable node: its unreachable NoExecute toleration's
 * seconds, forever for a toleration without seconds, or the eviction timeout (undefined when
 * eviction is off).
 */
export function tolerationMs(pod: Pod, evictionTimeoutMs: number): number | undefined {
  const toleration = (pod.spec.tolerations ?? []).find(
    (t) =>
      (!t.effect || t.effect === 'NoExecute') &&
      (t.operator === 'Exists' ? !t.key || t.key === UNREACHABLE_TAINT_KEY : t.key === UNREACHABLE_TAINT_KEY && !t.value),
  );
  if (toleration) return toleration.tolerationSeconds === undefined ? undefined : Math.max(0, toleration.tolerationSeconds) * 1000;
  return evictionTimeoutMs > 0 ? evictionTimeoutMs : undefined;
}
