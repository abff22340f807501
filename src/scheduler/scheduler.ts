/**
 * The scheduler loop: informers on Pods and Nodes → a work queue of pods that need a node →
 * `sync(pod)` = filter → score → bind.
 *
 * Design note: binding is the only write that matters, and the pod informer sees it a moment
 * later. Until it does, the scheduler "assumes" the pod is on its node (upstream's scheduler
 * cache does the same) so the next pod in the queue is placed against the cluster as it will
 * be, not as the cache last saw it — without this, six replicas created at once all score the
 * same empty node best. Assumptions end when the informer shows the binding, the pod goes
 * away, or after ASSUME_TTL_MS.
 *
 * A pod no node can take gets PodScheduled=False/Unschedulable with upstream's histogram
 * message (status subresource) and a FailedScheduling event, and joins the unschedulable set;
 * the whole set is queued again when something that could make room changes (a node is added
 * or changes, a pod goes away or finishes) and every `unschedulableRetrySeconds` regardless.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Node, Pod, PodCondition } from '../api/types.js';
import { isConflict, isNotFound, type KubeApi } from '../client/api.js';
import { Informer } from '../client/informer.js';
import { EventRecorder } from '../client/events.js';
import { nowTimestamp, setCondition } from '../api/pods.js';
import { Reconciler } from '../client/workqueue.js';
import { describeError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { DEFAULT_FILTERS, filter, unschedulableMessage, type FilterPlugin } from './filter.js';
import { podHoldsResources } from './resources.js';
import { DEFAULT_SCORERS, score, selectNode, type WeightedScorePlugin } from './score.js';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';
const ASSUME_TTL_MS = 30_000;

export interface SchedulerOptions {
  api: KubeApi;
  /** Pods whose spec.schedulerName is this (or unset, for the default name) are ours. */
  schedulerName?: string;
  log?: Logger;
  /** Tie breaker, 0 ≤ x < 1; tests pass a seeded one. */
  random?: () => number;
  filters?: readonly FilterPlugin[];
  scorers?: readonly WeightedScorePlugin[];
  unschedulableRetrySeconds?: number;
  /** Re-deliver every cached object this often, as a safety net (0: never). */
  resyncSeconds?: number;
}

interface Assumed {
  pod: Pod;
  atMs: number;
}

export class Scheduler {
  readonly pods: Informer<Pod>;
  readonly nodes: Informer<Node>;
  private readonly api: KubeApi;
  private readonly name: string;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly reconciler: Reconciler;
  private readonly assumed = new Map<string, Assumed>();
  private readonly unschedulable = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SchedulerOptions) {
    this.api = options.api;
    this.name = options.schedulerName ?? DEFAULT_SCHEDULER_NAME;
    this.log = options.log ?? createLogger('scheduler');
    this.recorder = new EventRecorder(this.api, this.name, this.log);
    const informerOptions = { log: this.log, resyncSeconds: options.resyncSeconds ?? 0 };
    this.pods = new Informer<Pod>(this.api, RESOURCE.pods, informerOptions);
    this.nodes = new Informer<Node>(this.api, RESOURCE.nodes, informerOptions);
    this.reconciler = new Reconciler({ name: 'scheduler', sync: (key) => this.sync(key), log: this.log });

    this.pods.on('add', (pod) => this.podChanged(undefined, pod));
    this.pods.on('update', (old, pod) => this.podChanged(old, pod));
    this.pods.on('delete', (pod) => {
      const key = objectKey(pod.metadata);
      this.assumed.delete(key);
      this.unschedulable.delete(key);
      if (pod.spec.nodeName) this.retryUnschedulable();
    });
    this.nodes.on('add', () => this.retryUnschedulable());
    this.nodes.on('update', (old, node) => {
      if (nodeSchedulingChanged(old, node)) this.retryUnschedulable();
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.nodes.start(), this.pods.start()]);
    this.reconciler.start();
    const retryMs = (this.options.unschedulableRetrySeconds ?? 60) * 1000;
    this.retryTimer = setInterval(() => this.retryUnschedulable(), retryMs);
    this.retryTimer.unref();
    this.log.info({ schedulerName: this.name }, 'scheduler started');
  }

  async stop(): Promise<void> {
    clearInterval(this.retryTimer);
    this.pods.stop();
    this.nodes.stop();
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  /** True when this scheduler should place `pod`. */
  responsibleFor(pod: Pod): boolean {
    return (
      !pod.spec.nodeName &&
      (pod.spec.schedulerName || DEFAULT_SCHEDULER_NAME) === this.name &&
      !pod.metadata.deletionTimestamp &&
      podHoldsResources(pod)
    );
  }

  private podChanged(old: Pod | undefined, pod: Pod): void {
    const key = objectKey(pod.metadata);
    if (pod.spec.nodeName) this.assumed.delete(key);
    if (this.responsibleFor(pod)) {
      this.reconciler.enqueue(key);
      return;
    }
    this.unschedulable.delete(key);
    // A pod that finished or started terminating frees room on its node.
    if (old?.spec.nodeName && podHoldsResources(old) && !old.metadata.deletionTimestamp && (!podHoldsResources(pod) || pod.metadata.deletionTimestamp)) {
      this.retryUnschedulable();
    }
  }

  private retryUnschedulable(): void {
    for (const key of this.unschedulable) this.reconciler.enqueue(key);
  }

  /** Pods per node name, including the ones bound by us that the informer has not caught up on. */
  private podsByNode(): Map<string, Pod[]> {
    const byNode = new Map<string, Pod[]>();
    const add = (pod: Pod, nodeName: string): void => {
      const list = byNode.get(nodeName);
      if (list) list.push(pod);
      else byNode.set(nodeName, [pod]);
    };
    const nowMs = Date.now();
    for (const [key, assumed] of this.assumed) {
      const current = this.pods.get(key);
      if (!current || current.spec.nodeName || nowMs - assumed.atMs > ASSUME_TTL_MS) this.assumed.delete(key);
    }
    for (const pod of this.pods.list()) {
      const assumed = this.assumed.get(objectKey(pod.metadata));
      if (pod.spec.nodeName) add(pod, pod.spec.nodeName);
      else if (assumed?.pod.spec.nodeName) add(assumed.pod, assumed.pod.spec.nodeName);
    }
    return byNode;
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod || !this.responsibleFor(pod)) {
      this.unschedulable.delete(key);
      return;
    }
    if (this.assumed.has(key)) return; // bound; the informer has not caught up yet
    const nodes = this.nodes.list();
    const podsByNode = this.podsByNode();
    let feasible: Node[];
    let message: string;
    try {
      const result = filter(pod, nodes, podsByNode, this.options.filters ?? DEFAULT_FILTERS);
      feasible = result.feasible;
      message = unschedulableMessage(nodes.length, result.failures);
    } catch (err) {
      // A malformed resource quantity: no node will ever fit, say why.
      feasible = [];
      message = `0/${nodes.length} nodes are available: ${describeError(err)}.`;
    }
    if (feasible.length === 0) {
      await this.markUnschedulable(pod, message);
      return;
    }
    const scores = score(pod, feasible, podsByNode, this.options.scorers ?? DEFAULT_SCORERS);
    const node = selectNode(feasible, scores, this.options.random);
    const nodeName = node?.metadata.name;
    if (!nodeName) return;
    const namespace = pod.metadata.namespace ?? 'default';
    const podName = pod.metadata.name ?? '';
    try {
      await this.api.bind(namespace, podName, nodeName);
    } catch (err) {
      // 409: someone bound it first; 404: it is gone. Either way the informer will tell.
      if (isConflict(err) || isNotFound(err)) {
        this.log.debug({ pod: key, err: describeError(err) }, 'binding refused; the pod changed');
        return;
      }
      throw err;
    }
    this.unschedulable.delete(key);
    this.assumed.set(key, { pod: { ...pod, spec: { ...pod.spec, nodeName } }, atMs: Date.now() });
    this.log.info({ pod: key, node: nodeName }, 'pod scheduled');
    this.recorder.record(pod, 'Normal', 'Scheduled', `Successfully assigned ${namespace}/${podName} to ${nodeName}`);
  }

  private async markUnschedulable(pod: Pod, message: string): Promise<void> {
    const key = objectKey(pod.metadata);
    this.unschedulable.add(key);
    const updated = structuredClone(pod);
    updated.status ??= {};
    updated.status.phase ??= 'Pending';
    const conditions: PodCondition[] = (updated.status.conditions ??= []);
    const wanted: PodCondition = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastProbeTime: null };
    if (!setCondition(conditions, wanted, nowTimestamp())) return;
    this.log.info({ pod: key, message }, 'pod unschedulable');
    this.recorder.record(pod, 'Warning', 'FailedScheduling', message);
    await this.api.update(RESOURCE.pods, updated, 'status');
  }
}

/** Whether a node change could let an unschedulable pod fit now. */
function nodeSchedulingChanged(old: Node, node: Node): boolean {
  const relevant = (n: Node): string =>
    JSON.stringify([
      n.metadata.labels,
      n.spec?.unschedulable,
      n.spec?.taints,
      n.status?.allocatable,
      n.status?.capacity,
      n.status?.conditions?.find((c) => c.type === 'Ready')?.status,
    ]);
  return relevant(old) !== relevant(node);
}
