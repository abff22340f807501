/**
 * The pod runtime of one node, without any Kubernetes client: pods go in as objects, status
 * comes out through `onStatusChange`. The node agent (kubelet.ts) feeds it from the
 * apiserver; tests feed it directly.
 *
 * At start it reads the records under `<root>/pods`: pods the caller still wants are adopted
 * (their containers keep running), the rest are torn down (containers killed, CNI DEL with
 * the cached result, sandbox deleted). Only sandboxes with a record are ever touched, so
 * kubelets of simulated nodes sharing /run/netns and a prefix cannot remove each other's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pod, PodStatus } from '../api/types.js';
import { describeError, PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { CniNetwork } from './cni.js';
import type { ThickPluginRunner } from './cni-helper.js';
import { DEFAULT_CLUSTER_DOMAIN, DEFAULT_RESOLV_CONF, type NodeDnsSettings, parseResolvConf } from './dns-config.js';
import type { LogLocator } from './logs-server.js';
import type { StreamTargets } from './streaming/target.js';
import { DEFAULT_GRACE_SECONDS, type PodEventType, PodRunner } from './pod.js';
import { DEFAULT_NETNS_PREFIX } from './sandbox.js';
import { withServiceAccountVolume } from './service-account.js';
import type { PodObjectSource } from './sources.js';
import { type PodRecord, readPodRecords, removePodDir } from './state.js';

export class PodRuntimeError extends PontoonError {}

export const DEFAULT_ROOT_DIR = '/var/lib/pontoon/kubelet';

export interface PodRuntimeOptions {
  rootDir: string;
  nodeName: string;
  nodeIP: string;
  cniConfDir: string;
  cniBinDirs: readonly string[];
  netnsPrefix?: string;
  /** The node namespace to act from when this process is not inside it (tests). */
  hostNetns?: string;
  /** Runs our own CNI plugins without an exec per call (cni-helper.ts). */
  cniHelper?: ThickPluginRunner;
  /** First restart backoff step (10 s in Kubernetes) and its cap (5 min). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  log: Logger;
  /** ConfigMaps, Secrets, tokens and Services for volumes and env. */
  objects?: PodObjectSource;
  /** --cluster-dns (none: ClusterFirst falls back to Default, as upstream). */
  clusterDNS?: readonly string[];
  /** --cluster-domain, default cluster.local. */
  clusterDomain?: string;
  /** --resolv-conf: the node's resolver for dnsPolicy Default; "" for none. */
  resolvConf?: string;
  /** --host-path-root: hostPath volumes resolve under it (default /). */
  hostPathRoot?: string;
  /** The node's hosts file, copied for hostNetwork pods (default /etc/hosts). */
  nodeHostsPath?: string;
  /**
   * Add the ServiceAccount token volume to pods that arrive without it (service-account.ts);
   * needs objects.requestToken.
   */
  automountServiceAccountToken?: boolean;
  onStatusChange?: (uid: string) => void;
  onEvent?: (pod: Pod, type: PodEventType, reason: string, message: string, fieldPath?: string) => void;
}

export class PodRuntime {
  private readonly runners = new Map<string, PodRunner>();
  private readonly recovered = new Map<string, PodRecord>();
  private readonly terminating = new Map<string, Promise<void>>();
  readonly cni: CniNetwork;
  private readonly dns: NodeDnsSettings;

  constructor(private readonly options: PodRuntimeOptions) {
    this.cni = new CniNetwork({
      confDir: options.cniConfDir,
      binDirs: options.cniBinDirs,
      cacheDir: join(options.rootDir, 'cni', 'results'),
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
      ...(options.cniHelper ? { helper: options.cniHelper } : {}),
    });
    for (const record of readPodRecords(options.rootDir)) this.recovered.set(record.uid, record);
    const resolvConf = options.resolvConf ?? DEFAULT_RESOLV_CONF;
    let hostResolv = '';
    try {
      hostResolv = resolvConf === '' ? '' : readFileSync(resolvConf, 'utf8');
    } catch (err) {
      options.log.warn({ resolvConf, err: describeError(err) }, 'cannot read the node resolv.conf; dnsPolicy Default gets no nameserver');
    }
    this.dns = { clusterDNS: options.clusterDNS ?? [], clusterDomain: options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN, host: parseResolvConf(hostResolv) };
  }

  /** The pod as this node runs it: with the token volume when the node adds it. */
  private effective(pod: Pod): Pod {
    return this.options.automountServiceAccountToken && this.options.objects?.requestToken ? withServiceAccountVolume(pod) : pod;
  }

  get rootDir(): string {
    return this.options.rootDir;
  }

  /** Pods found on disk from before this process started. */
  recoveredPods(): PodRecord[] {
    return [...this.recovered.values()];
  }

  /**
   * Tears down recovered pods the caller no longer wants (deleted from the apiserver while
   * the kubelet was down); returns their uids.
   */
  async cleanupOrphans(wanted: (uid: string) => boolean): Promise<string[]> {
    const orphans = [...this.recovered.values()].filter((record) => !wanted(record.uid) && !this.runners.has(record.uid));
    await Promise.all(
      orphans.map(async (record) => {
        this.recovered.delete(record.uid);
        this.options.log.info({ pod: `${record.namespace}/${record.name}`, uid: record.uid }, 'tearing down a pod the apiserver no longer has');
        const runner = this.makeRunner(record.pod, record);
        try {
          await runner.terminate(Math.min(record.pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS, DEFAULT_GRACE_SECONDS));
        } catch (err) {
          this.options.log.error({ uid: record.uid, err: describeError(err) }, 'failed to tear down an orphaned pod');
          removePodDir(this.options.rootDir, record.uid);
        }
      }),
    );
    return orphans.map((r) => r.uid);
  }

  private makeRunner(pod: Pod, record?: PodRecord): PodRunner {
    const uid = pod.metadata.uid ?? '';
    // The runner's latest pod object, for events (labels and names as they are now).
    let latest = (): Pod => pod;
    const runner = new PodRunner(
      pod,
      {
        rootDir: this.options.rootDir,
        netnsPrefix: this.options.netnsPrefix ?? DEFAULT_NETNS_PREFIX,
        cni: this.cni,
        nodeName: this.options.nodeName,
        hostIPs: [this.options.nodeIP],
        ...(this.options.hostNetns ? { hostNetns: this.options.hostNetns } : {}),
        backoffBaseMs: this.options.backoffBaseMs ?? 10_000,
        backoffCapMs: this.options.backoffCapMs ?? 300_000,
        log: this.options.log,
        ...(this.options.objects ? { objects: this.options.objects } : {}),
        dns: this.dns,
        nodeHostsPath: this.options.nodeHostsPath ?? '/etc/hosts',
        hostPathRoot: this.options.hostPathRoot ?? '/',
        onChange: () => this.options.onStatusChange?.(uid),
        onEvent: (type, reason, message, fieldPath) => this.options.onEvent?.(latest(), type, reason, message, fieldPath),
      },
      record,
    );
    latest = () => runner.pod;
    return runner;
  }

  /** Runs `pod` (starting, adopting or just updating it); returns its runner. */
  runPod(object: Pod): PodRunner {
    const pod = this.effective(object);
    const uid = pod.metadata.uid;
    if (!uid) throw new PodRuntimeError(`pod ${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''} has no metadata.uid`);
    const existing = this.runners.get(uid);
    if (existing) {
      existing.update(pod);
      // A start that failed before the containers existed is retried on every sync.
      if (existing.startFailed) this.startRunner(uid, existing);
      return existing;
    }
    const record = this.recovered.get(uid);
    this.recovered.delete(uid);
    const runner = this.makeRunner(pod, record);
    this.runners.set(uid, runner);
    this.startRunner(uid, runner);
    return runner;
  }

  /** The runner reports a failed start in its status and events; here it is only logged. */
  private startRunner(uid: string, runner: PodRunner): void {
    runner.start().catch((err: unknown) => this.options.log.error({ uid, err: describeError(err) }, 'failed to start pod'));
  }

  get(uid: string): PodRunner | undefined {
    return this.runners.get(uid);
  }

  find(namespace: string, name: string): PodRunner | undefined {
    for (const runner of this.runners.values()) {
      if ((runner.pod.metadata.namespace ?? 'default') === namespace && runner.pod.metadata.name === name) return runner;
    }
    return undefined;
  }

  /**
   * The main pid of a running container of pod `namespace/name`, for commands that enter it
   * (enter.ts); undefined when the pod or container is not running here.
   */
  containerPid(namespace: string, name: string, container: string): number | undefined {
    return this.find(namespace, name)?.containerPid(container);
  }

  uids(): string[] {
    return [...this.runners.keys()];
  }

  status(uid: string): PodStatus | undefined {
    return this.runners.get(uid)?.status();
  }

  /** Kills a pod and removes everything it had on this node; concurrent calls share the work. */
  killPod(uid: string, gracePeriodSeconds?: number): Promise<void> {
    const pending = this.terminating.get(uid);
    if (pending) return pending;
    const runner = this.runners.get(uid);
    if (!runner) return Promise.resolve();
    const done = runner.terminate(gracePeriodSeconds).finally(() => {
      this.runners.delete(uid);
      this.terminating.delete(uid);
    });
    this.terminating.set(uid, done);
    return done;
  }

  /** Answers the logs server: which file holds a container's log. */
  readonly locateLog: LogLocator = (namespace, name, container, previous) => {
    const runner = this.find(namespace, name);
    if (!runner) return { code: 404, message: `pod ${namespace}/${name} is not running on node ${this.options.nodeName}` };
    if (![...runner.pod.spec.containers, ...(runner.pod.spec.initContainers ?? [])].some((c) => c.name === container)) return { code: 400, message: `container ${container} is not valid for pod ${name}` };
    const found = runner.containerLog(container, previous);
    if (found) return found;
    return previous
      ? { code: 400, message: `previous terminated container "${container}" in pod "${name}" not found` }
      : { code: 400, message: `container "${container}" in pod "${name}" is waiting to start: ContainerCreating` };
  };

  /** Answers the streaming server (exec, attach, port-forward), with upstream's errors. */
  readonly streamTargets: StreamTargets = {
    container: (namespace, name, container) => {
      const runner = this.find(namespace, name);
      if (!runner) return { ok: false, code: 404, message: `pod ${namespace}/${name} is not running on node ${this.options.nodeName}` };
      const running = runner.runningContainer(container);
      if (!running) {
        const known = [...runner.pod.spec.containers, ...(runner.pod.spec.initContainers ?? [])].some((c) => c.name === container);
        return known
          ? { ok: false, code: 400, message: `container ${container} is not running in pod ${name}` }
          : { ok: false, code: 404, message: `container not found ("${container}")` };
      }
      const log = runner.containerLog(container, false);
      const stdinPath = running.container.stdin ? runner.stdinPath(container) : undefined;
      return { ok: true, target: { namespace, pod: name, ...running, ...(log ? { log } : {}), ...(stdinPath ? { stdinPath } : {}) } };
    },
    podNetwork: (namespace, name) => {
      const runner = this.find(namespace, name);
      if (!runner || runner.isTerminated) return { ok: false, code: 404, message: `pod ${namespace}/${name} is not running on node ${this.options.nodeName}` };
      return { ok: true, target: { namespace, pod: name, netns: runner.networkNamespace } };
    },
  };

  /** Stops timers, leaves pods running: what a kubelet does when it exits. */
  detach(): void {
    for (const runner of this.runners.values()) runner.detach();
  }
}
