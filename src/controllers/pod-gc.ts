/**
 * Pod garbage collection (upstream's podgc, the orphan part): a pod bound to a Node that no
 * longer exists has no kubelet to stop it or to confirm its deletion, so it would stay
 * Terminating forever. Such pods are force-deleted (grace period 0).
 *
 * A pod is only judged orphaned after the node is missing both from the cache and from a
 * direct read, and after a quarantine (upstream's 40 s), so a pod bound to a node that is
 * still registering, or a node informer that lags, never costs a pod.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Node, Pod } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

export const ORPHAN_QUARANTINE_MS = 40_000;

export class PodGcController implements Controller {
  readonly name = 'pod-gc';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly reconciler: Reconciler;
  /** Pod key → when we first found its node missing. */
  private readonly suspects = new Map<string, number>();

  constructor(
    context: ControllerContext,
    private readonly quarantineMs = ORPHAN_QUARANTINE_MS,
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.nodes = context.informers.informer<Node>(RESOURCE.nodes);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    const check = (pod: Pod): void => {
      if (pod.spec.nodeName && !this.nodes.get(pod.spec.nodeName)) this.reconciler.enqueue(objectKey(pod.metadata));
    };
    this.pods.on('add', check);
    this.pods.on('update', (_old, pod) => check(pod));
    this.pods.on('delete', (pod) => this.suspects.delete(objectKey(pod.metadata)));
    this.nodes.on('delete', (node) => {
      for (const pod of this.pods.list()) if (pod.spec.nodeName === node.metadata.name) this.reconciler.enqueue(objectKey(pod.metadata));
    });
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(key: string): Promise<SyncResult | void> {
    const pod = this.pods.get(key);
    const nodeName = pod?.spec.nodeName;
    if (!pod || !nodeName || this.nodes.get(nodeName) || (await this.api.get(RESOURCE.nodes, nodeName))) {
      this.suspects.delete(key);
      return;
    }
    const nowMs = Date.now();
    const since = this.suspects.get(key) ?? nowMs;
    this.suspects.set(key, since);
    if (nowMs - since < this.quarantineMs) return { requeueAfterMs: since + this.quarantineMs - nowMs + 1 };
    try {
      await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, {
        gracePeriodSeconds: 0,
        preconditions: { uid: pod.metadata.uid },
      });
      this.log.info({ pod: key, node: nodeName }, 'force-deleted pod bound to a node that no longer exists');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.suspects.delete(key);
  }
}
