/**
 * The node agent: the Node and its heartbeats (node.ts), a pod informer on
 * `spec.nodeName=<node>`, and one worker per pod running the reconciler's three steps:
 *
 *   desired  = the pod object (running, or deleting once deletionTimestamp is set)
 *   observed = the runtime (sandbox, network, processes, probes)
 *   apply    = start/adopt, or stop + CNI DEL + sandbox removal + the final DELETE with
 *              gracePeriodSeconds=0; then the computed status, written through the status
 *              subresource only when it differs from what the apiserver holds.
 *
 * A worker never runs twice at once for a pod: triggers while it runs (informer events,
 * runtime changes, the periodic resync) coalesce into one more pass.
 *
 * Restart: pods on disk that the apiserver no longer has on this node are torn down once
 * the first list arrives; the others are adopted with their containers still running (see
 * containers.ts for why adoption over restart). A pod whose status is already terminal is
 * never started again, as upstream.
 *
 * Status writes are merge patches of `status`, keeping conditions this kubelet does not own.
 * "Changed" is judged against the newest status we know: the informer's copy, or the answer
 * to our own last write while the informer still shows a version from before it.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Secret } from '../api/serviceaccount.js';
import type { ConfigMap, Pod, PodCondition, PodStatus, Service, Taint } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import { Informer } from '../client/informer.js';
import { EventRecorder } from '../client/events.js';
import { Backoff, type BackoffOptions, retry } from '../lib/backoff.js';
import { describeError, PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { KubeletApiServer, type KubeletServingOptions } from './api-server.js';
import { type KubeletServerType, LogsServer } from './logs-server.js';
import { KubeletMetrics } from './metrics.js';
import { StreamingServer } from './streaming/server.js';
import { NodeAgent } from './node.js';
import { DEFAULT_GRACE_SECONDS } from './pod.js';
import { PodRuntime } from './runtime.js';
import type { PodObjectSource } from './sources.js';
import { isTerminalPhase, sameJson } from './status.js';
import { CniHelper } from './cni-helper.js';

export interface KubeletOptions {
  api: KubeApi;
  nodeName: string;
  nodeIP: string;
  rootDir: string;
  cniConfDir: string;
  cniBinDirs: readonly string[];
  netnsPrefix: string;
  maxPods: number;
  registerTaints?: Taint[];
  /** The node namespace to act from when this process is not inside it (tests). */
  hostNetns?: string;
  statusIntervalMs?: number;
  leaseRenewIntervalMs?: number;
  leaseDurationSeconds?: number;
  resyncIntervalMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** --cluster-dns, --cluster-domain, --resolv-conf (see dns-config.ts). */
  clusterDNS?: readonly string[];
  clusterDomain?: string;
  resolvConf?: string;
  /** --host-path-root. */
  hostPathRoot?: string;
  /**
   * --cni-helper: run our own CNI plugins in a long-lived `pontoon cni-server` child (this
   * argv runs `pontoon`) instead of exec'ing them per call; other plugins are exec'd as ever.
   */
  cniHelper?: { command: readonly string[] };
  /**
   * Add the ServiceAccount token volume to pods that arrive without one (default false:
   * upstream's admission adds it in the apiserver; this is for apiservers without that step).
   */
  automountServiceAccountToken?: boolean;
  /**
   * The kubelet API over TLS on TCP (--port 10250 with --tls-cert-file, --tls-private-key-file,
   * --client-ca-file); absent: the unix socket only. The Node advertises its port.
   */
  serving?: KubeletServingOptions;
  /** The unix socket the API is also served on, unauthenticated (default `<root-dir>/kubelet.sock`); false: none. */
  socketPath?: string | false;
  log: Logger;
}

export class KubeletError extends PontoonError {}

const OWNED_CONDITIONS = new Set<string>(['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']);
const RETRY_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

interface Worker {
  running: boolean;
  dirty: boolean;
  backoff: Backoff;
  retryTimer?: NodeJS.Timeout;
}

interface Written {
  status: PodStatus;
  /** The pod's resourceVersion after our last write. */
  after: string;
  /** Versions older than our last write: an informer still showing one of them is behind. */
  stale: Set<string>;
}

/** The fields of a status this kubelet owns, for comparison. */
function ownedStatus(status: PodStatus | undefined): Partial<PodStatus> {
  if (!status) return {};
  const { phase, conditions, hostIP, hostIPs, podIP, podIPs, startTime, initContainerStatuses, containerStatuses, qosClass, reason, message } = status;
  return { phase, conditions, hostIP, hostIPs, podIP, podIPs, startTime, initContainerStatuses, containerStatuses, qosClass, reason, message };
}

export class Kubelet {
  readonly runtime: PodRuntime;
  private readonly cniHelper: CniHelper | undefined;
  private readonly node: NodeAgent;
  private readonly logs: LogsServer;
  private readonly streaming: StreamingServer;
  private readonly apiServer: KubeletApiServer | undefined;
  private readonly metrics: KubeletMetrics;
  private readonly pods: Informer<Pod>;
  /** Services of every namespace, for the env of new containers (service links). */
  private readonly services: Informer<Service>;
  private readonly events: EventRecorder;
  private readonly workers = new Map<string, Worker>();
  /** uid → informer key, and the last object seen (also after it left the informer). */
  private readonly known = new Map<string, Pod>();
  private readonly written = new Map<string, Written>();
  /** Pods force-deleted from the apiserver: stop them, nothing left to confirm. */
  private readonly gone = new Set<string>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Ends retry waits (node registration) when the kubelet stops. */
  private readonly stopSignal = new AbortController();
  private ready = false;
  private resyncs = 0;
  /** The unix socket the API is served on, or undefined when there is none. */
  readonly socketPath: string | undefined;

  constructor(private readonly options: KubeletOptions) {
    const { api, log } = options;
    this.socketPath = options.socketPath === false ? undefined : (options.socketPath ?? join(options.rootDir, 'kubelet.sock'));
    this.events = new EventRecorder(api, 'kubelet', log, options.nodeName);
    this.cniHelper = options.cniHelper
      ? new CniHelper({
          command: options.cniHelper.command,
          socketPath: join(options.rootDir, 'cni-helper.sock'),
          logFile: join(options.rootDir, 'cni-helper.log'),
          ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
          log: log.child({ component: 'cni-helper' }),
        })
      : undefined;
    this.runtime = new PodRuntime({
      rootDir: options.rootDir,
      nodeName: options.nodeName,
      nodeIP: options.nodeIP,
      cniConfDir: options.cniConfDir,
      cniBinDirs: options.cniBinDirs,
      netnsPrefix: options.netnsPrefix,
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
      ...(this.cniHelper ? { cniHelper: this.cniHelper } : {}),
      ...(options.backoffBaseMs !== undefined ? { backoffBaseMs: options.backoffBaseMs } : {}),
      ...(options.backoffCapMs !== undefined ? { backoffCapMs: options.backoffCapMs } : {}),
      log,
      objects: this.objectSource(),
      ...(options.clusterDNS ? { clusterDNS: options.clusterDNS } : {}),
      ...(options.clusterDomain ? { clusterDomain: options.clusterDomain } : {}),
      ...(options.resolvConf !== undefined ? { resolvConf: options.resolvConf } : {}),
      ...(options.hostPathRoot ? { hostPathRoot: options.hostPathRoot } : {}),
      automountServiceAccountToken: options.automountServiceAccountToken ?? false,
      onStatusChange: (uid) => this.enqueue(uid),
      onEvent: (pod, type, reason, message) => this.events.record(pod, type, reason, message),
    });
    this.streaming = new StreamingServer(this.runtime.streamTargets, log);
    this.metrics = new KubeletMetrics(options.nodeName, () => this.runtime.uids().length);
    const upgrade = (serverType: KubeletServerType) => (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      this.metrics.observe(req, serverType);
      this.streaming.handleUpgrade(req, socket, head);
    };
    this.logs = new LogsServer(this.socketPath ?? '', this.runtime.locateLog, log, upgrade('unix'), (req, res, serverType) => this.frontRoutes(req, res, serverType));
    this.apiServer = options.serving
      ? new KubeletApiServer(options.serving, { request: (req, res) => this.logs.serve(req, res, 'https'), upgrade: upgrade('https') }, log)
      : undefined;
    this.node = new NodeAgent({
      api,
      nodeName: options.nodeName,
      nodeIP: options.nodeIP,
      maxPods: options.maxPods,
      ...(this.socketPath ? { socketPath: this.socketPath } : {}),
      kubeletPort: options.serving?.port ?? 0,
      cniConfDir: options.cniConfDir,
      ...(options.registerTaints ? { registerTaints: options.registerTaints } : {}),
      statusIntervalMs: options.statusIntervalMs ?? 10_000,
      leaseRenewIntervalMs: options.leaseRenewIntervalMs ?? 10_000,
      leaseDurationSeconds: options.leaseDurationSeconds ?? 40,
      log,
    });
    this.pods = new Informer<Pod>(api, RESOURCE.pods, { fieldSelector: `spec.nodeName=${options.nodeName}`, resyncSeconds: 0, log });
    this.services = new Informer<Service>(api, RESOURCE.services, { resyncSeconds: 0, log });
    this.pods.on('add', (pod) => this.seen(pod));
    this.pods.on('update', (_old, pod) => this.seen(pod));
    this.pods.on('delete', (pod) => {
      const uid = pod.metadata.uid;
      if (!uid) return;
      this.known.set(uid, { ...pod, metadata: { ...pod.metadata, deletionTimestamp: pod.metadata.deletionTimestamp ?? new Date().toISOString() } });
      this.gone.add(uid);
      this.enqueue(uid);
    });
  }

  /**
   * Reads straight from the apiserver: volumes are read at setup and on resync, env at each
   * container start, so freshness beats the cost of an informer per ConfigMap and Secret.
   */
  private objectSource(): PodObjectSource {
    const { api } = this.options;
    return {
      configMap: (namespace, name) => api.get<ConfigMap>(RESOURCE.configmaps, name, namespace),
      secret: (namespace, name) => api.get<Secret>(RESOURCE.secrets, name, namespace),
      requestToken: async (namespace, serviceAccount, spec) => {
        const answer = await api.createToken(namespace, serviceAccount, {
          audiences: spec.audiences,
          expirationSeconds: spec.expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: spec.podName, uid: spec.podUid },
        });
        if (!answer.status?.token) throw new KubeletError(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
        return { token: answer.status.token, expirationTimestamp: answer.status.expirationTimestamp };
      },
      services: (namespace) => this.services.list().filter((s) => (s.metadata.namespace ?? 'default') === namespace),
    };
  }

  /** /pods and /metrics, upstream's; everything else is the log server's and the streams'. */
  private frontRoutes(req: IncomingMessage, res: ServerResponse, serverType: KubeletServerType): boolean {
    this.metrics.observe(req, serverType);
    const path = new URL(req.url ?? '/', 'http://kubelet').pathname;
    if (path === '/pods' || path === '/pods/') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: this.pods.list() }));
      return true;
    }
    if (path === '/metrics') {
      this.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': this.metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(describeError(err));
        },
      );
      return true;
    }
    return false;
  }

  private seen(pod: Pod): void {
    const uid = pod.metadata.uid;
    if (!uid) return;
    if (!this.known.has(uid)) this.options.log.debug({ pod: objectKey(pod.metadata) }, 'pod seen');
    this.known.set(uid, pod);
    this.enqueue(uid);
  }

  /** For /metrics and /healthz: started (node registered, pods listed) and pods known to it. */
  /** `resyncs`: periodic full syncs done (every pod worker re-run) since start. */
  stats(): { ready: boolean; pods: number; sandboxes: number; resyncs: number } {
    return { ready: this.ready, pods: this.known.size, sandboxes: this.runtime.uids().length, resyncs: this.resyncs };
  }

  /** Registers the node, serves logs, starts heartbeats and pod workers. */
  async start(): Promise<void> {
    // Node reports a missing directory under a unix socket path as EACCES, not ENOENT.
    await mkdir(this.options.rootDir, { recursive: true, mode: 0o700 });
    this.cniHelper?.start();
    if (this.socketPath) await this.logs.start();
    await this.apiServer?.start();
    try {
      await retry(() => this.node.register(), {
        backoff: RETRY_BACKOFF,
        signal: this.stopSignal.signal,
        onError: (err, retryInMs) => this.options.log.warn({ err: describeError(err), retryInMs }, 'failed to register the node; retrying'),
      });
    } catch (err) {
      if (this.stopped) return;
      throw err;
    }
    this.node.start();
    await this.services.start();
    await this.pods.start();
    if (this.stopped) return;
    const wanted = new Set(this.pods.list().map((p) => p.metadata.uid));
    const orphans = await this.runtime.cleanupOrphans((uid) => wanted.has(uid));
    if (orphans.length > 0) this.options.log.info({ count: orphans.length }, 'tore down pods deleted while the kubelet was away');
    this.ready = true;
    for (const uid of this.known.keys()) this.enqueue(uid);
    const resync = (): void => {
      this.resyncs++;
      for (const uid of new Set([...this.known.keys(), ...this.runtime.uids()])) this.enqueue(uid);
      this.resyncTimer = setTimeout(resync, this.options.resyncIntervalMs ?? 10_000);
    };
    this.resyncTimer = setTimeout(resync, this.options.resyncIntervalMs ?? 10_000);
    this.options.log.info({ node: this.options.nodeName, pods: this.known.size }, 'kubelet running');
  }

  /** Stops watching and serving; pods keep running for the next kubelet to adopt. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal.abort();
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    for (const worker of this.workers.values()) if (worker.retryTimer) clearTimeout(worker.retryTimer);
    this.node.stop();
    this.pods.stop();
    this.services.stop();
    this.runtime.detach();
    this.streaming.close();
    await this.apiServer?.stop();
    if (this.socketPath) await this.logs.stop();
    await this.cniHelper?.stop();
    await this.events.flush();
  }

  private enqueue(uid: string): void {
    if (this.stopped || !this.ready) return;
    let worker = this.workers.get(uid);
    if (!worker) {
      worker = { running: false, dirty: false, backoff: new Backoff(RETRY_BACKOFF) };
      this.workers.set(uid, worker);
    }
    if (worker.running) {
      worker.dirty = true;
      return;
    }
    void this.work(uid, worker);
  }

  private async work(uid: string, worker: Worker): Promise<void> {
    worker.running = true;
    try {
      do {
        worker.dirty = false;
        if (worker.retryTimer) clearTimeout(worker.retryTimer);
        worker.retryTimer = undefined;
        try {
          await this.sync(uid);
          worker.backoff.reset();
        } catch (err) {
          const pod = this.known.get(uid);
          const retryInMs = worker.backoff.next();
          this.options.log.warn({ pod: pod ? objectKey(pod.metadata) : uid, err: describeError(err), retryInMs }, 'pod sync failed; retrying');
          worker.retryTimer = setTimeout(() => this.enqueue(uid), retryInMs);
        }
      } while (worker.dirty && !this.stopped);
    } finally {
      worker.running = false;
    }
  }

  /** One pass of the pod worker. */
  private async sync(uid: string): Promise<void> {
    const pod = this.known.get(uid);
    const runner = this.runtime.get(uid);
    if (!pod) {
      // Only the runtime knows it (resync after the object left): stop it.
      if (runner) await this.runtime.killPod(uid);
      this.forget(uid);
      return;
    }
    if (this.gone.has(uid)) {
      await this.runtime.killPod(uid, Math.min(pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS, DEFAULT_GRACE_SECONDS));
      this.forget(uid);
      return;
    }
    if (pod.metadata.deletionTimestamp) return this.deletePod(pod, uid);

    if (!runner) {
      const recovered = this.runtime.recoveredPods().some((r) => r.uid === uid);
      // A finished pod is never run again; one that finished before a kubelet restart keeps its record.
      if (isTerminalPhase(pod.status?.phase) && !recovered) return;
      if (!recovered && this.runtime.uids().length >= this.options.maxPods) return this.reject(pod, 'OutOfpods', `Node didn't have enough resource: pods, limit ${this.options.maxPods}`);
    }
    const running = this.runtime.runPod(pod);
    await this.writeStatus(pod, running.status());
  }

  private forget(uid: string): void {
    this.known.delete(uid);
    this.gone.delete(uid);
    this.written.delete(uid);
    const worker = this.workers.get(uid);
    if (worker?.retryTimer) clearTimeout(worker.retryTimer);
    this.workers.delete(uid);
  }

  /** Graceful deletion: stop everything within the grace period, then confirm with grace 0. */
  private async deletePod(pod: Pod, uid: string): Promise<void> {
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
    if (this.runtime.get(uid)) this.events.record(pod, 'Normal', 'Killing', `Stopping pod ${pod.metadata.name ?? ''}`);
    await this.runtime.killPod(uid, grace);
    // A pod we never ran may still have a record from before a restart.
    await this.runtime.cleanupOrphans((other) => other !== uid);
    try {
      await this.options.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace ?? 'default', { gracePeriodSeconds: 0, preconditions: { uid } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.options.log.info({ pod: objectKey(pod.metadata) }, 'pod deleted');
    this.forget(uid);
  }

  /** Admission failure: the pod fails without running, as upstream's OutOfpods. */
  private async reject(pod: Pod, reason: string, message: string): Promise<void> {
    if (pod.status?.phase === 'Failed' && pod.status.reason === reason) return;
    this.events.record(pod, 'Warning', reason, message);
    await this.options.api.patch(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace ?? 'default', { status: { phase: 'Failed', reason, message } }, 'merge', 'status');
  }

  private async writeStatus(pod: Pod, computed: PodStatus): Promise<void> {
    const uid = pod.metadata.uid ?? '';
    // Conditions others own (DisruptionTarget, readiness gates) stay; PodScheduled is the scheduler's if it set one.
    const foreign = (pod.status?.conditions ?? []).filter((c) => !OWNED_CONDITIONS.has(c.type));
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    const conditions: PodCondition[] = [...(computed.conditions ?? []).map((c) => (c.type === 'PodScheduled' && scheduled ? scheduled : c)), ...foreign];
    const status: PodStatus = { ...computed, conditions };
    if (pod.status?.reason) status.reason = pod.status.reason;
    if (pod.status?.message) status.message = pod.status.message;

    const last = this.written.get(uid);
    const version = pod.metadata.resourceVersion ?? '';
    if (last && version === last.after) last.stale.clear();
    const current = last && last.stale.has(version) ? last.status : pod.status;
    // Transition times count from the newest status we know, not from a lagging informer copy.
    for (const condition of status.conditions ?? []) {
      const before = current?.conditions?.find((c) => c.type === condition.type);
      if (before?.status === condition.status && before.lastTransitionTime) condition.lastTransitionTime = before.lastTransitionTime;
    }
    if (sameJson(ownedStatus(status), ownedStatus(current))) return;
    const updated = await this.options.api.patch<Pod>(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace ?? 'default', { status }, 'merge', 'status');
    const stale = last?.stale ?? new Set<string>();
    stale.add(version);
    if (last) stale.add(last.after);
    this.written.set(uid, { status: updated.status ?? status, after: updated.metadata.resourceVersion ?? '', stale });
    this.options.log.debug({ pod: objectKey(pod.metadata), phase: status.phase, podIP: status.podIP }, 'pod status written');
  }
}
