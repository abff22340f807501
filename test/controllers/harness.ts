/**
 * An in-process control plane for controller and scheduler tests: a real apiserver (memory
 * store) on 127.0.0.1:0, a KubeClient, the controller-manager and/or scheduler, and a fake
 * kubelet that plays the node side without containers — it gives bound pods an IP and a
 * Ready condition (which tests may flip) and confirms graceful deletions.
 */
import { objectKey } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Node, Pod } from '../../src/api/types.js';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/server.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { isConflict, isNotFound } from '../../src/client/api.js';
import { KubeClient } from '../../src/client/client.js';
import { Informer } from '../../src/client/informer.js';
import { ControllerManager, type ControllerManagerOptions, type ControllerName } from '../../src/controllers/manager.js';
import { Reconciler } from '../../src/client/workqueue.js';
import { createLogger } from '../../src/lib/log.js';
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.js';
import { poll } from '../helpers/wait.js';

export const log = createLogger('controllers-test', { level: process.env['PONTOON_TEST_LOG_LEVEL'] ?? 'silent' });

export interface ControlPlaneOptions {
  controllers?: ControllerName[];
  managerOptions?: Partial<ControllerManagerOptions>;
  scheduler?: boolean | Partial<SchedulerOptions>;
  fakeKubelet?: boolean;
}

export interface ControlPlane {
  server: RunningApiServer;
  api: KubeClient;
  manager?: ControllerManager;
  scheduler?: Scheduler;
  kubelet?: FakeKubelet;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const server = await startApiServer({ store: new MemoryStore(), log, closeStore: true });
  const api = new KubeClient({ server: server.url });
  const plane: ControlPlane = {
    server,
    api,
    close: async () => {
      await plane.kubelet?.stop();
      await plane.scheduler?.stop();
      await plane.manager?.stop();
      await server.close();
    },
  };
  try {
    if (options.controllers) {
      plane.manager = new ControllerManager({ api, log, controllers: options.controllers, ...options.managerOptions });
      await plane.manager.start();
    }
    if (options.scheduler) {
      plane.scheduler = new Scheduler({ api, log, ...(typeof options.scheduler === 'object' ? options.scheduler : {}) });
      await plane.scheduler.start();
    }
    if (options.fakeKubelet) {
      plane.kubelet = new FakeKubelet(api);
      await plane.kubelet.start();
    }
  } catch (err) {
    await plane.close();
    throw err;
  }
  return plane;
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  return poll(what, probe, { timeoutMs, retryErrors: true });
}

export interface NodeOptions {
  cpu?: string;
  memory?: string;
  pods?: number;
  labels?: Record<string, string>;
  taints?: NonNullable<Node['spec']>['taints'];
  ready?: boolean;
  podCIDR?: string;
}

/** A Node as a kubelet would register it: Ready, with allocatable resources. */
export async function createNode(api: KubeClient, name: string, options: NodeOptions = {}): Promise<Node> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status: Node['status'] = {
    capacity: { cpu: options.cpu ?? '4', memory: options.memory ?? '8Gi', pods: String(options.pods ?? 110) },
    allocatable: { cpu: options.cpu ?? '4', memory: options.memory ?? '8Gi', pods: String(options.pods ?? 110) },
    conditions: [
      { type: 'Ready', status: options.ready === false ? 'False' : 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now },
    ],
    addresses: [{ type: 'InternalIP', address: `198.18.0.${10 + Number(name.replace(/\D/g, '') || 0)}` }],
  };
  const created = await api.create<Node>(RESOURCE.nodes, {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...options.labels } },
    spec: { ...(options.taints ? { taints: options.taints } : {}), ...(options.podCIDR ? { podCIDR: options.podCIDR, podCIDRs: [options.podCIDR] } : {}) },
    status,
  });
  if (JSON.stringify(created.status?.conditions) === JSON.stringify(status.conditions)) return created;
  return api.update<Node>(RESOURCE.nodes, { ...created, status }, 'status');
}

export async function listPods(api: KubeClient, namespace: string, labelSelector?: string): Promise<Pod[]> {
  return (await api.list<Pod>(RESOURCE.pods, namespace, labelSelector ? { labelSelector } : {})).items;
}

/**
 * The node side of pods, minus containers: a bound pod gets phase Running, a pod IP and a
 * Ready condition (true unless a test says otherwise); a pod marked for deletion is removed
 * with a zero grace period, as the kubelet does once its containers stopped.
 */
export class FakeKubelet {
  readonly pods: Informer<Pod>;
  private readonly reconciler: Reconciler;
  private readonly readiness = new Map<string, boolean>();
  private nextIp = 2;
  /** Set false to make new pods come up not ready. */
  defaultReady = true;
  /** Nodes this kubelet serves; empty = every node. */
  readonly nodes = new Set<string>();

  constructor(private readonly api: KubeClient) {
    this.pods = new Informer<Pod>(api, RESOURCE.pods, { log });
    this.reconciler = new Reconciler({ name: 'fake-kubelet', log, sync: (key) => this.sync(key), queue: { baseDelayMs: 10, maxDelayMs: 500 } });
    const enqueue = (pod: Pod): void => this.reconciler.enqueue(objectKey(pod.metadata));
    this.pods.on('add', enqueue);
    this.pods.on('update', (_old, pod) => enqueue(pod));
  }

  async start(): Promise<void> {
    await this.pods.start();
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    this.pods.stop();
    await this.reconciler.stop();
  }

  setReady(podKey: string, ready: boolean): void {
    this.readiness.set(podKey, ready);
    this.reconciler.enqueue(podKey);
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.get(key);
    const nodeName = pod?.spec.nodeName;
    if (!pod || !nodeName || (this.nodes.size > 0 && !this.nodes.has(nodeName))) return;
    if (pod.metadata.deletionTimestamp) {
      try {
        await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
      return;
    }
    const ready = this.readiness.get(key) ?? this.defaultReady;
    const status = structuredClone(pod.status ?? {});
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    let changed = false;
    if (status.phase !== 'Running' || !status.podIP) {
      const ip = `10.244.${Math.floor(this.nextIp / 250)}.${(this.nextIp % 250) + 2}`;
      this.nextIp += 1;
      Object.assign(status, { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '198.18.0.11', startTime: now });
      changed = true;
    }
    const conditions = (status.conditions ??= []);
    for (const type of ['Ready', 'ContainersReady'] as const) {
      const wanted = ready ? 'True' : 'False';
      const condition = conditions.find((c) => c.type === type);
      if (condition?.status === wanted) continue;
      if (condition) Object.assign(condition, { status: wanted, lastTransitionTime: now });
      else conditions.push({ type, status: wanted, lastTransitionTime: now });
      changed = true;
    }
    if (!changed) return;
    await this.api.update(RESOURCE.pods, { ...pod, status }, 'status');
  }
}
