/**
 * The kubelet's Node: registration, the status heartbeat and the node Lease.
 *
 * Two heartbeats, as upstream since 1.17: the Lease `kube-node-lease/<node>` renewed every
 * 10 s (cheap, what the node lifecycle controller watches) and the Node status with a fresh
 * Ready `lastHeartbeatTime`, posted every `statusIntervalMs`. Ready follows the runtime's
 * network: without a CNI config the node is NotReady (reason NetworkPluginNotReady, "network
 * plugin is not ready: cni config uninitialized"), so the scheduler keeps pods away until the
 * agents' install-cni (or an operator) writes one; DaemonSet pods are bound directly and run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { arch, cpus, release, totalmem } from 'node:os';
import { RESOURCE } from '../api/resources.js';
import type { Lease, Node, NodeCondition, Taint } from '../api/types.js';
import { isAlreadyExists, isConflict, isNotFound, type KubeApi } from '../client/api.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { pontoonVersion } from '../lib/version.js';
import { loadNetworkConfig } from './cni.js';
import { rfc3339 } from './time.js';

export const KUBELET_VERSION = 'v1.32.0-pontoon';
export const KUBELET_SOCKET_ANNOTATION = 'pontoon.dev/kubelet-socket';
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
/** The Ready condition until a CNI config exists (the runtime's NetworkReady=false). */
export const NETWORK_NOT_READY_REASON = 'NetworkPluginNotReady';
export const NETWORK_NOT_READY_MESSAGE = 'network plugin is not ready: cni config uninitialized';
const NETWORK_CHECK_INTERVAL_MS = 1000;

export interface NodeAgentOptions {
  api: KubeApi;
  nodeName: string;
  nodeIP: string;
  maxPods: number;
  /** Path of the kubelet's unix socket, advertised for a single-host apiserver's pods/log; absent: none. */
  socketPath?: string;
  /** The kubelet API's TLS port (daemonEndpoints.kubeletEndpoint.Port); 0: none. */
  kubeletPort: number;
  cniConfDir: string;
  registerTaints?: Taint[];
  labels?: Record<string, string>;
  statusIntervalMs: number;
  leaseRenewIntervalMs: number;
  leaseDurationSeconds: number;
  log: Logger;
}

function goArch(): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return names[arch()] ?? arch();
}

function readTrimmed(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function osImage(): string {
  const match = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readTrimmed('/etc/os-release'));
  return match?.[1] ?? 'Linux';
}

/** metav1.MicroTime: RFC 3339 with microseconds, what Lease times carry. */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/Z$/, '000Z');
}

export function nodeInfo(): Record<string, string> {
  return {
    machineID: readTrimmed('/etc/machine-id'),
    systemUUID: readTrimmed('/sys/class/dmi/id/product_uuid'),
    bootID: readTrimmed('/proc/sys/kernel/random/boot_id'),
    kernelVersion: release(),
    osImage: osImage(),
    containerRuntimeVersion: `pontoon://${pontoonVersion}`,
    kubeletVersion: KUBELET_VERSION,
    kubeProxyVersion: '',
    operatingSystem: 'linux',
    architecture: goArch(),
  };
}

export class NodeAgent {
  private statusTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private node: Node | undefined;
  private stopped = false;
  private lastNetworkProblem: string | undefined;
  private networkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NodeAgentOptions) {}

  private get name(): string {
    return this.options.nodeName;
  }

  private resources(): Record<string, string> {
    return { cpu: String(cpus().length), memory: `${Math.floor(totalmem() / 1024)}Ki`, pods: String(this.options.maxPods), 'ephemeral-storage': '0' };
  }

  private async networkProblem(): Promise<string | undefined> {
    if (!existsSync(this.options.cniConfDir)) return `no CNI conf dir ${this.options.cniConfDir}`;
    try {
      await loadNetworkConfig(this.options.cniConfDir);
      return undefined;
    } catch (err) {
      return describeError(err);
    }
  }

  private async conditions(previous: readonly NodeCondition[]): Promise<NodeCondition[]> {
    const now = rfc3339();
    const problem = await this.networkProblem();
    if (problem !== undefined && problem !== this.lastNetworkProblem) this.options.log.info({ problem }, 'network plugin is not ready');
    this.lastNetworkProblem = problem;
    const condition = (type: string, ok: boolean, reason: string, message: string): NodeCondition => {
      const status = type === 'Ready' ? (ok ? 'True' : 'False') : ok ? 'False' : 'True';
      const before = previous.find((c) => c.type === type);
      return { type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: before?.status === status ? (before.lastTransitionTime ?? now) : now };
    };
    return [
      condition('MemoryPressure', true, 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', true, 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', true, 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      problem === undefined
        ? condition('Ready', true, 'KubeletReady', 'kubelet is posting ready status')
        : condition('Ready', false, NETWORK_NOT_READY_REASON, NETWORK_NOT_READY_MESSAGE),
    ];
  }

  private async status(previous: readonly NodeCondition[]): Promise<NonNullable<Node['status']>> {
    const resources = this.resources();
    return {
      capacity: resources,
      allocatable: resources,
      conditions: await this.conditions(previous),
      addresses: [
        { type: 'InternalIP', address: this.options.nodeIP },
        { type: 'Hostname', address: this.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: this.options.kubeletPort } },
      nodeInfo: nodeInfo(),
    };
  }

  private metadata(): { labels: Record<string, string>; annotations: Record<string, string | null> } {
    return {
      labels: {
        'kubernetes.io/hostname': this.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': goArch(),
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': goArch(),
        ...this.options.labels,
      },
      // null removes a socket an earlier run of this kubelet advertised (merge patch).
      annotations: { [KUBELET_SOCKET_ANNOTATION]: this.options.socketPath ?? null },
    };
  }

  /** Creates the Node, or brings an existing one (a kubelet restart) up to date. */
  async register(): Promise<Node> {
    const { api } = this.options;
    const existing = await api.get<Node>(RESOURCE.nodes, this.name);
    let node: Node;
    if (!existing) {
      const created: Node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: this.name, labels: this.metadata().labels, annotations: Object.fromEntries(Object.entries(this.metadata().annotations).filter((e): e is [string, string] => e[1] !== null)) },
        spec: this.options.registerTaints && this.options.registerTaints.length > 0 ? { taints: this.options.registerTaints } : {},
        status: await this.status([]),
      };
      try {
        node = await api.create(RESOURCE.nodes, created);
        this.options.log.info({ node: this.name }, 'registered node');
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        return this.register();
      }
    } else {
      node = await api.patch<Node>(RESOURCE.nodes, this.name, undefined, { metadata: this.metadata() }, 'merge');
      this.options.log.info({ node: this.name }, 'node already registered; updated its labels and annotations');
    }
    this.node = node;
    await this.postStatus();
    return this.node;
  }

  /** One status heartbeat; re-registers a Node that was deleted under us. */
  async postStatus(): Promise<void> {
    const { api } = this.options;
    try {
      const status = await this.status(this.node?.status?.conditions ?? []);
      this.node = await api.patch<Node>(RESOURCE.nodes, this.name, undefined, { status }, 'merge', 'status');
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.options.log.warn({ node: this.name }, 'our Node was deleted; registering again');
      this.node = undefined;
      await this.register();
    }
  }

  /** Creates or renews `kube-node-lease/<node>`, owned by the Node so it goes with it. */
  async renewLease(): Promise<void> {
    const { api } = this.options;
    const now = microTime();
    const spec = { holderIdentity: this.name, leaseDurationSeconds: this.options.leaseDurationSeconds, renewTime: now };
    const lease = await api.get<Lease>(RESOURCE.leases, this.name, NODE_LEASE_NAMESPACE);
    if (!lease) {
      const owner = this.node?.metadata.uid ? [{ apiVersion: 'v1', kind: 'Node', name: this.name, uid: this.node.metadata.uid }] : undefined;
      try {
        await api.create<Lease>(RESOURCE.leases, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: NODE_LEASE_NAMESPACE, ...(owner ? { ownerReferences: owner } : {}) },
          spec: { ...spec, acquireTime: now },
        });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      return;
    }
    try {
      await api.update<Lease>(RESOURCE.leases, { ...lease, spec: { ...lease.spec, ...spec } });
    } catch (err) {
      // Someone else wrote it since our read: the next tick reads it again.
      if (!isConflict(err) && !isNotFound(err)) throw err;
    }
  }

  /** Starts both heartbeats (after a successful register). */
  start(): void {
    const loop = (what: string, intervalMs: number, step: () => Promise<void>, set: (t: NodeJS.Timeout) => void): void => {
      const tick = (): void => {
        if (this.stopped) return;
        step()
          .catch((err: unknown) => this.options.log.warn({ err: describeError(err) }, `${what} failed`))
          .finally(() => {
            if (!this.stopped) set(setTimeout(tick, intervalMs));
          });
      };
      tick();
    };
    this.watchNetwork();
    loop('lease renewal', this.options.leaseRenewIntervalMs, () => this.renewLease(), (t) => (this.leaseTimer = t));
    // register() has just posted a status: the first heartbeat is one interval away.
    this.statusTimer = setTimeout(
      () => loop('node status update', this.options.statusIntervalMs, () => this.postStatus(), (t) => (this.statusTimer = t)),
      this.options.statusIntervalMs,
    );
  }

  /**
   * Posts the status as soon as the network's readiness flips (a conflist appeared or went),
   * instead of at the next heartbeat: the agents' install-cni makes a new node Ready within a
   * second, as the runtime's status change makes upstream's kubelet sync its node status.
   */
  private watchNetwork(): void {
    const tick = (): void => {
      if (this.stopped) return;
      void this.networkProblem()
        .then(async (problem) => {
          if ((problem === undefined) !== (this.lastNetworkProblem === undefined)) await this.postStatus();
        })
        .catch((err: unknown) => this.options.log.warn({ err: describeError(err) }, 'node status update failed'))
        .finally(() => {
          if (!this.stopped) this.networkTimer = setTimeout(tick, NETWORK_CHECK_INTERVAL_MS);
        });
    };
    this.networkTimer = setTimeout(tick, NETWORK_CHECK_INTERVAL_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.networkTimer) clearTimeout(this.networkTimer);
    if (this.statusTimer) clearTimeout(this.statusTimer);
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
  }
}
