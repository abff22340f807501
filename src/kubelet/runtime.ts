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
import { join } from 'node:path';
import type { Pod, PodStatus } from '../api/types.js';
import { describeError, PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { CniNetwork } from './cni.js';
import type { LogLocator } from './logs-server.js';
import { DEFAULT_GRACE_SECONDS, type PodEventType, PodRunner } from './pod.js';
import { DEFAULT_NETNS_PREFIX } from './sandbox.js';
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
  /** First restart backoff step (10 s in Kubernetes) and its cap (5 min). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  log: Logger;
  configMapKey?: (namespace: string, name: string, key: string) => Promise<string | undefined>;
  onStatusChange?: (uid: string) => void;
  onEvent?: (pod: Pod, type: PodEventType, reason: string, message: string, fieldPath?: string) => void;
}

export class PodRuntime {
  private readonly runners = new Map<string, PodRunner>();
  private readonly recovered = new Map<string, PodRecord>();
  private readonly terminating = new Map<string, Promise<void>>();
  readonly cni: CniNetwork;

  constructor(private readonly options: PodRuntimeOptions) {
    this.cni = new CniNetwork({
      confDir: options.cniConfDir,
      binDirs: options.cniBinDirs,
      cacheDir: join(options.rootDir, 'cni', 'results'),
      ...(options.hostNetns ? { hostNetns: options.hostNetns } : {}),
    });
    for (const record of readPodRecords(options.rootDir)) this.recovered.set(record.uid, record);
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
        ...(this.options.configMapKey ? { configMapKey: this.options.configMapKey } : {}),
        onChange: () => this.options.onStatusChange?.(uid),
        onEvent: (type, reason, message, fieldPath) => this.options.onEvent?.(latest(), type, reason, message, fieldPath),
      },
      record,
    );
    latest = () => runner.pod;
    return runner;
  }

  /** Runs `pod` (starting, adopting or just updating it); returns its runner. */
  runPod(pod: Pod): PodRunner {
    const uid = pod.metadata.uid;
    if (!uid) throw new PodRuntimeError(`pod ${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''} has no metadata.uid`);
    const existing = this.runners.get(uid);
    if (existing) {
      existing.update(pod);
      return existing;
    }
    const record = this.recovered.get(uid);
    this.recovered.delete(uid);
    const runner = this.makeRunner(pod, record);
    this.runners.set(uid, runner);
    runner.start().catch((err: unknown) => this.options.log.error({ uid, err: describeError(err) }, 'failed to start pod'));
    return runner;
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

  /** Stops timers, leaves pods running: what a kubelet does when it exits. */
  detach(): void {
    for (const runner of this.runners.values()) runner.detach();
  }
}
