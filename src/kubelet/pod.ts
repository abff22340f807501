/**
 * One pod on this node: its sandbox, its network, its containers and their probes, and the
 * record on disk that lets a restarted kubelet pick it up again.
 *
 * Start: record → volumes (volumes.ts; a missing ConfigMap or Secret keeps the pod in
 * ContainerCreating with FailedMount events, retried with backoff, before any address is
 * taken) → sandbox namespace → CNI ADD (retried with backoff; a failed ADD is
 * followed by a DEL so a half-made network does not leak an address) → init containers one
 * at a time, each started only when the one before exited 0 → containers in spec order.
 * A failing init container is restarted with backoff unless restartPolicy is Never, which
 * fails the pod (the kubelet runs init containers as OnFailure under Always). Their records
 * are kept with the pod's, so a restarted kubelet finds them done and never runs them again.
 *
 * A hostNetwork pod has no sandbox and no CNI: its containers run in the node's namespace
 * (the kubelet's own, or `hostNetns` when the kubelet acts on another), its IPs are the
 * node's, and its deletion has no network to tear down. A pod whose containers are all done for good (phase Succeeded or Failed) has its
 * network torn down at once, as the kubelet does for terminal pods, so its address returns
 * to the pool; its status and logs stay until the pod is deleted. Terminate: containers get
 * SIGTERM and the grace period, then CNI DEL, the sandbox, the volumes' mounts and the pod
 * directory go.
 *
 * Every container gets its own mount and UTS namespaces (mounts.ts) holding the files this
 * runner writes into the pod directory, `etc-hosts`, `resolv.conf` (by dnsPolicy) and
 * `hostname`, bound over /etc/hosts, /etc/resolv.conf and /etc/hostname, plus its
 * volumeMounts. The node's own files are never written.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Container, Pod, PodStatus } from '../api/types.js';
import { retry } from '../lib/backoff.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { netnsPath } from '../lib/netns.js';
import type { CniNetwork, PodNetworkRef, PortMapping } from './cni.js';
import { type ContainerEvent, type ContainerRecord, ContainerRunner, type RestartPolicy, stdinFifoPath } from './containers.js';
import { formatResolvConf, hostsFile, type NodeDnsSettings, podDns, utsHostname } from './dns-config.js';
import { containerArgv, containerEnv } from './env.js';
import type { BindMount } from './mounts.js';
import { PodLifecycle } from './pod-lifecycle.js';
import { Prober, type ProbeKind, type ProbeTarget } from './probes.js';
import { deleteSandbox, ensureSandbox, sandboxExists, sandboxName } from './sandbox.js';
import type { PodObjectSource } from './sources.js';
import { containerLogDir, podDir, type PodRecord, removePodDir, writePodRecord } from './state.js';
import { PodVolumes, VolumeMountError } from './volumes.js';
import { computePodStatus, initSucceeded, isTerminalPhase, type ObservedContainer, type ObservedPod, podPhase } from './status.js';
import { rfc3339 } from './time.js';

export type PodEventType = 'Normal' | 'Warning';

export interface PodRunnerOptions {
  rootDir: string;
  netnsPrefix: string;
  cni: CniNetwork;
  nodeName: string;
  hostIPs: readonly string[];
  hostNetns?: string;
  backoffBaseMs: number;
  backoffCapMs: number;
  log: Logger;
  /** ConfigMaps, Secrets, tokens and Services the pod's volumes and env read. */
  objects?: PodObjectSource;
  /** --cluster-dns, --cluster-domain and the node's resolv.conf. */
  dns: NodeDnsSettings;
  /** The node's /etc/hosts, which hostNetwork pods get a copy of. */
  nodeHostsPath: string;
  /** --host-path-root. */
  hostPathRoot: string;
  /** Something changed that may change the pod's status. */
  onChange: () => void;
  /** Kubernetes Events worth recording (Created, Started, Killing, Unhealthy, BackOff…). */
  onEvent?: (type: PodEventType, reason: string, message: string, fieldPath?: string) => void;
}

const NETWORK_POLL_MS = 1000;
const SANDBOX_RETRY_MAX_MS = 30_000;
/** upstream's volume manager starts its retries at 500 ms. */
const MOUNT_RETRY_MIN_MS = 500;
export const DEFAULT_GRACE_SECONDS = 30;

interface ContainerProbes {
  /** The startup probe succeeded, or there is none. */
  started: boolean;
  startup?: Prober;
  readiness?: Prober;
  liveness?: Prober;
}

function portMappings(pod: Pod): PortMapping[] {
  const mappings: PortMapping[] = [];
  for (const container of pod.spec.containers) {
    for (const port of container.ports ?? []) {
      if (!port.hostPort) continue;
      mappings.push({ hostPort: port.hostPort, containerPort: port.containerPort, protocol: (port.protocol ?? 'TCP').toLowerCase() as PortMapping['protocol'] });
    }
  }
  return mappings;
}

function addressOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

export class PodRunner {
  private readonly record: PodRecord;
  private readonly containers = new Map<string, ContainerRunner>();
  private readonly initContainers = new Map<string, ContainerRunner>();
  /** Init containers this runner has run (or adopted), so each is run once. */
  private readonly initLaunched = new Set<string>();
  private readonly probes = new Map<string, ContainerProbes>();
  private readonly envs = new Map<string, Record<string, string>>();
  /** created → starting → initializing → running → finished, or terminating/detached (pod-lifecycle.ts). */
  private readonly lifecycle = new PodLifecycle();
  /** Ends the retry waits (volumes, sandbox) when the pod is terminated or detached. */
  private readonly stopSignal = new AbortController();
  private sandboxTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly volumes: PodVolumes;
  private refreshing = false;
  private dnsWarned = false;

  constructor(
    pod: Pod,
    private readonly options: PodRunnerOptions,
    record?: PodRecord,
  ) {
    const uid = pod.metadata.uid ?? '';
    this.log = options.log.child({ pod: `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''}` });
    this.record = record
      ? { ...record, pod }
      : {
          version: 1,
          uid,
          namespace: pod.metadata.namespace ?? 'default',
          name: pod.metadata.name ?? '',
          pod,
          sandbox: sandboxName(options.netnsPrefix, uid),
          sandboxId: randomBytes(32).toString('hex'),
          networkReady: false,
          podIPs: [],
          startTime: rfc3339(),
          containers: [],
        };
    this.volumes = new PodVolumes(this.record.pod, {
      podDir: podDir(options.rootDir, uid),
      hostPathRoot: options.hostPathRoot,
      ...(options.objects ? { objects: options.objects } : {}),
      log: this.log,
    });
  }

  get uid(): string {
    return this.record.uid;
  }
  get pod(): Pod {
    return this.record.pod;
  }
  get sandbox(): string {
    return this.record.sandbox;
  }
  get podIPs(): readonly string[] {
    return this.record.podIPs;
  }
  get isTerminated(): boolean {
    return this.stopping;
  }

  /** Terminating or detached: nothing new may start. */
  private get stopping(): boolean {
    return this.lifecycle.stopping;
  }

  /** The pod's start failed before its containers existed; the next sync retries it. */
  get startFailed(): boolean {
    return this.lifecycle.phase === 'startFailed';
  }

  /** The latest pod object (labels, annotations and deletion fields may change). */
  update(pod: Pod): void {
    this.record.pod = pod;
    this.refreshVolumes();
  }

  /** ConfigMap/Secret/downwardAPI/token contents follow their sources on every sync. */
  private refreshVolumes(): void {
    if (this.refreshing || this.stopping || !this.volumes.isReady) return;
    this.refreshing = true;
    this.volumes
      .refresh(this.record.pod)
      .catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'volume refresh failed'))
      .finally(() => (this.refreshing = false));
  }

  private get restartPolicy(): RestartPolicy {
    return this.record.pod.spec.restartPolicy ?? 'Always';
  }

  /** Init containers run to completion: an exit 0 is never restarted, even under Always. */
  private get initRestartPolicy(): RestartPolicy {
    return this.restartPolicy === 'Never' ? 'Never' : 'OnFailure';
  }

  private get hostNetwork(): boolean {
    return this.record.pod.spec.hostNetwork === true;
  }

  /** Where the containers and exec probes run: undefined is the kubelet's own namespace. */
  private get containerNetns(): string | undefined {
    return this.hostNetwork ? this.options.hostNetns : this.record.sandbox;
  }

  private get initSpecs(): Container[] {
    return this.record.pod.spec.initContainers ?? [];
  }

  private initRecords(): ContainerRecord[] {
    const recorded = new Map((this.record.initContainers ?? []).map((c) => [c.name, c]));
    return this.initSpecs.map(
      (c) => this.initContainers.get(c.name)?.snapshot() ?? recorded.get(c.name) ?? { name: c.name, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } }, lastState: {}, backoffMs: 0 },
    );
  }

  private get initialized(): boolean {
    return this.initRecords().every(initSucceeded);
  }

  private get graceSeconds(): number {
    return this.record.pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
  }

  private networkRef(): PodNetworkRef {
    return {
      namespace: this.record.namespace,
      name: this.record.name,
      uid: this.record.uid,
      sandboxId: this.record.sandboxId,
      netnsPath: netnsPath(this.record.sandbox),
      portMappings: portMappings(this.record.pod),
    };
  }

  private save(): void {
    // Containers not instantiated yet (adoption in progress) keep their recorded state.
    const recorded = new Map(this.record.containers.map((c) => [c.name, c]));
    this.record.containers = this.record.pod.spec.containers.flatMap((c) => {
      const current = this.containers.get(c.name)?.snapshot() ?? recorded.get(c.name);
      return current ? [current] : [];
    });
    if (this.initSpecs.length > 0) this.record.initContainers = this.initRecords();
    writePodRecord(this.options.rootDir, this.record);
  }

  private changed(): void {
    if (!this.stopping) this.save();
    this.options.onChange();
  }

  /** Brings the pod up, or picks up where a previous kubelet left it. */
  async start(): Promise<void> {
    if (!this.lifecycle.tryTo({ phase: 'starting' })) return;
    try {
      await this.startSteps();
    } catch (err) {
      const message = describeError(err);
      // Failed before the containers existed: the pod shows it and the next sync retries.
      // Later failures belong to a container, which reports and retries them itself.
      if (this.lifecycle.tryTo({ phase: 'startFailed', message })) {
        this.options.onEvent?.('Warning', 'Failed', `Error: ${message}`);
        this.options.onChange();
      }
      throw err;
    }
  }

  private async startSteps(): Promise<void> {
    this.save();
    if (this.record.networkReady && !this.hostNetwork && !sandboxExists(this.record.sandbox)) {
      // The namespace vanished (node reboot, someone deleted it): everything in it is gone.
      this.log.warn({ sandbox: this.record.sandbox }, 'sandbox namespace is gone; recreating the sandbox');
      await this.options.cni.del(this.networkRef()).catch(() => undefined);
      this.record.networkReady = false;
      this.record.sandboxId = randomBytes(32).toString('hex');
      // A new sandbox is initialized anew, as the kubelet re-runs init containers when it recreates one.
      delete this.record.initContainers;
    }
    const terminal = isTerminalPhase(podPhase(this.restartPolicy, this.record.containers, this.initRecords()));
    if (!terminal && this.record.networkReady) {
      // Adopted: its volumes are on disk from before; re-check them without holding up the
      // adoption (containers keep running, and a failure keeps the old contents).
      this.volumes.setUp(this.record.pod).catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'failed to re-check the volumes of an adopted pod'));
    } else if (!terminal) {
      await this.mountVolumes();
    }
    if (this.stopping) return;
    if (!this.record.networkReady && !terminal) await this.setupSandbox(1000);
    if (this.stopping) return;
    if (!terminal) this.writePodFiles();
    if (!this.lifecycle.tryTo({ phase: 'initializing' })) return;
    for (const container of this.initSpecs) this.initContainers.set(container.name, this.makeContainer(container, true));
    for (const container of this.record.pod.spec.containers) this.containers.set(container.name, this.makeContainer(container, false));
    this.changed();
    await this.advance();
  }

  /**
   * Runs the first init container that has not exited 0 yet, or, with all of them done, the
   * containers. Called at start and after each init container exits 0.
   */
  private async advance(): Promise<void> {
    if (this.stopping) return;
    const next = this.initSpecs.find((c) => !initSucceeded(this.initContainers.get(c.name)?.snapshot() ?? { name: c.name, restartCount: 0, state: {}, lastState: {}, backoffMs: 0 }));
    if (next) {
      if (this.initLaunched.has(next.name)) return;
      this.initLaunched.add(next.name);
      // Runs, adopts, or (after a failure) leaves it to the restart policy; exits come back as events.
      await this.initContainers.get(next.name)?.run();
      this.checkFinished();
      return;
    }
    if (!this.lifecycle.tryTo({ phase: 'running' })) return;
    this.changed();
    for (const runner of this.containers.values()) {
      if (this.stopping) return;
      await runner.run();
    }
    this.checkFinished();
  }

  /** Sets up every volume, retrying with backoff and a FailedMount event per failure. */
  private async mountVolumes(): Promise<void> {
    await retry(() => this.volumes.setUp(this.record.pod), {
      backoff: { initialMs: MOUNT_RETRY_MIN_MS, maxMs: SANDBOX_RETRY_MAX_MS },
      signal: this.stopSignal.signal,
      retryable: (err) => err instanceof VolumeMountError,
      onError: (err, retryInMs) => {
        const message = err instanceof Error ? err.message : String(err);
        this.log.warn({ err: message, retryInMs }, 'failed to set up the pod volumes');
        this.options.onEvent?.('Warning', 'FailedMount', message);
        this.options.onChange();
      },
    }).catch((err: unknown) => {
      // Stopped while waiting: the pod is going away, nothing to report.
      if (!this.stopping) throw err;
    });
  }

  private get clusterDomain(): string {
    return this.options.dns.clusterDomain;
  }

  private file(name: string): string {
    return join(podDir(this.options.rootDir, this.record.uid), name);
  }

  /**
   * etc-hosts, resolv.conf and hostname in the pod directory. Written in place, never
   * renamed: a running container binds the file's inode, and a rename would leave it the old one.
   */
  private writePodFiles(): void {
    const pod = this.record.pod;
    const dns = podDns(pod, this.options.dns);
    if (dns.fallbackWarning && !this.dnsWarned) {
      this.dnsWarned = true;
      this.options.onEvent?.('Warning', 'MissingClusterDNS', dns.fallbackWarning);
    }
    let nodeHosts = '';
    try {
      nodeHosts = readFileSync(this.options.nodeHostsPath, 'utf8');
    } catch {
      // a node without /etc/hosts: the pod's file is the managed part alone
    }
    const files: [string, string][] = [
      ['etc-hosts', hostsFile(pod, this.record.podIPs, this.clusterDomain, nodeHosts)],
      ['resolv.conf', formatResolvConf(dns.resolv)],
      ['hostname', `${utsHostname(pod, this.clusterDomain, this.options.nodeName)}\n`],
    ];
    for (const [name, content] of files) {
      const path = this.file(name);
      let current: string | undefined;
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        current = undefined;
      }
      if (current !== content) writeFileSync(path, content, { mode: 0o644 });
    }
  }

  /** The binds every container gets before its volumeMounts. */
  private podFileMounts(): BindMount[] {
    return [
      { source: this.file('etc-hosts'), target: '/etc/hosts', readOnly: false, directory: false },
      { source: this.file('resolv.conf'), target: '/etc/resolv.conf', readOnly: false, directory: false },
      { source: this.file('hostname'), target: '/etc/hostname', readOnly: false, directory: false },
    ];
  }

  private async setupSandbox(retryMs: number): Promise<void> {
    if (this.hostNetwork) {
      this.record.podIPs = [...this.options.hostIPs];
      this.record.networkReady = true;
      this.save();
      return;
    }
    // As upstream: a pod on the pod network waits (event NetworkNotReady) until the runtime's
    // network is ready, i.e. a conflist exists; hostNetwork pods, such as the agents that
    // install it, ran above regardless. Polled every second, not backed off, so pods start as
    // soon as install-cni wrote the file.
    let reported = false;
    for (let problem = await this.options.cni.networkProblem(); problem !== undefined && !this.stopping; problem = await this.options.cni.networkProblem()) {
      if (!reported) {
        reported = true;
        this.log.info({ problem }, 'waiting for the pod network');
        this.options.onEvent?.('Warning', 'NetworkNotReady', `network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized`);
      }
      await new Promise<void>((resolve) => (this.sandboxTimer = setTimeout(resolve, NETWORK_POLL_MS)));
    }
    const attempt = async (): Promise<void> => {
      try {
        ensureSandbox(this.record.sandbox);
        const result = await this.options.cni.add(this.networkRef());
        this.record.podIPs = (result.ips ?? []).map((ip) => addressOf(ip.address));
        this.record.networkReady = true;
        this.save();
        this.log.info({ sandbox: this.record.sandbox, podIPs: this.record.podIPs }, 'sandbox ready');
      } catch (err) {
        // A half-made network must not keep its address while we wait.
        await this.options.cni.del(this.networkRef()).catch((delErr: unknown) => this.log.warn({ err: describeError(delErr) }, 'CNI DEL after a failed ADD failed'));
        throw err;
      }
    };
    await retry(attempt, {
      backoff: { initialMs: retryMs, maxMs: SANDBOX_RETRY_MAX_MS },
      signal: this.stopSignal.signal,
      onError: (err, retryInMs) => {
        this.log.error({ err: describeError(err), retryInMs }, 'failed to set up the pod sandbox');
        this.options.onEvent?.('Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${describeError(err)}`);
        this.options.onChange();
      },
    }).catch((err: unknown) => {
      if (!this.stopping) throw err;
    });
  }

  private makeContainer(container: Container, init: boolean): ContainerRunner {
    const record = (init ? (this.record.initContainers ?? []) : this.record.containers).find((c) => c.name === container.name);
    const fieldPath = init ? `spec.initContainers{${container.name}}` : `spec.containers{${container.name}}`;
    return new ContainerRunner({
      podKey: `${this.record.namespace}/${this.record.name}`,
      container,
      restartPolicy: init ? this.initRestartPolicy : this.restartPolicy,
      sandbox: this.containerNetns,
      logDir: containerLogDir(this.options.rootDir, this.record.uid, container.name),
      prepare: async () => {
        const hostname = utsHostname(this.record.pod, this.clusterDomain, this.options.nodeName);
        const env = await containerEnv(container, {
          pod: this.record.pod,
          podIPs: this.record.podIPs,
          hostIPs: this.options.hostIPs,
          nodeName: this.options.nodeName,
          hostname,
          ...(this.options.objects ? { objects: this.options.objects } : {}),
        });
        this.envs.set(container.name, env);
        // A pod adopted after a kubelet restart may not have its files written by this process yet.
        this.writePodFiles();
        const fs = { hostname, mounts: [...this.podFileMounts(), ...this.volumes.mountsFor(container)], workingDir: container.workingDir ?? '/' };
        return { argv: containerArgv(container, env), env, fs };
      },
      backoffBaseMs: this.options.backoffBaseMs,
      backoffCapMs: this.options.backoffCapMs,
      onEvent: (event) => (init ? this.initContainerEvent(container, event, fieldPath) : this.containerEvent(container, event, fieldPath)),
      log: this.log,
      ...(record ? { record } : {}),
    });
  }

  /** Events as for any container, but no probes; an exit 0 lets the next one run. */
  private initContainerEvent(container: Container, event: ContainerEvent, fieldPath: string): void {
    this.emitContainerEvent(container, event, fieldPath);
    this.changed();
    if (event.type === 'exited' && event.exitCode === 0) {
      this.advance().catch((err: unknown) => this.log.error({ err: describeError(err) }, 'failed to start the next container'));
    } else {
      this.checkFinished();
    }
  }

  private containerEvent(container: Container, event: ContainerEvent, fieldPath: string): void {
    this.emitContainerEvent(container, event, fieldPath);
    switch (event.type) {
      case 'started':
        this.startProbes(container);
        break;
      case 'adopted':
        this.startProbes(container, this.record.pod.status?.containerStatuses?.find((c) => c.name === container.name));
        break;
      case 'exited':
        this.stopProbes(container.name);
        break;
      default:
        break;
    }
    this.changed();
    this.checkFinished();
  }

  private emitContainerEvent(container: Container, event: ContainerEvent, fieldPath: string): void {
    const emit = this.options.onEvent;
    switch (event.type) {
      case 'started':
        emit?.('Normal', 'Created', `Created container ${container.name}`, fieldPath);
        emit?.('Normal', 'Started', `Started container ${container.name}`, fieldPath);
        break;
      case 'adopted':
      case 'exited':
        break;
      case 'failed':
        emit?.('Warning', 'Failed', `Error: ${event.message}`, fieldPath);
        break;
      case 'backoff':
        emit?.('Warning', 'BackOff', `Back-off restarting failed container ${container.name} in pod ${this.record.name}_${this.record.namespace}(${this.record.uid})`, fieldPath);
        break;
      case 'killing':
        emit?.('Normal', 'Killing', event.reason.startsWith('Container') ? event.reason : `Stopping container ${container.name}`, fieldPath);
        break;
    }
  }

  /** Once every container is done for good the network goes; status and logs stay. */
  private checkFinished(): void {
    if (!this.lifecycle.can('finished')) return;
    if (!isTerminalPhase(podPhase(this.restartPolicy, [...this.containers.values()].map((c) => c.snapshot()), this.initRecords()))) return;
    this.lifecycle.to({ phase: 'finished' });
    this.log.info('all containers finished; releasing the pod network');
    void this.teardownNetwork()
      .catch((err: unknown) => this.log.error({ err: describeError(err) }, 'failed to tear down the network of a finished pod'))
      .finally(() => this.changed());
  }

  private probeTarget(container: Container): ProbeTarget {
    const target: ProbeTarget = { sandbox: this.containerNetns, podIP: this.record.podIPs[0], container, env: this.envs.get(container.name) ?? {} };
    const pid = this.containerPid(container.name);
    if (pid !== undefined) target.pid = pid;
    if (this.options.hostNetns) target.hostNetns = this.options.hostNetns;
    return target;
  }

  /** `reported`: the status the previous kubelet wrote for an adopted container, kept until probed. */
  private startProbes(container: Container, reported?: { ready?: boolean; started?: boolean }): void {
    this.stopProbes(container.name);
    const probes: ContainerProbes = { started: container.startupProbe === undefined || reported?.started === true };
    this.probes.set(container.name, probes);
    const fieldPath = `spec.containers{${container.name}}`;
    const make = (kind: ProbeKind, onResult: (ok: boolean, message: string) => void): Prober | undefined => {
      const probe = kind === 'startup' ? container.startupProbe : kind === 'readiness' ? container.readinessProbe : container.livenessProbe;
      if (!probe) return undefined;
      const label = kind[0]?.toUpperCase() + kind.slice(1);
      return new Prober({
        kind,
        probe,
        ...(kind === 'readiness' && reported?.ready !== undefined ? { initial: reported.ready } : {}),
        target: () => this.probeTarget(container),
        onResult,
        onFailure: (message) => this.options.onEvent?.('Warning', 'Unhealthy', `${label} probe failed: ${message}`, fieldPath),
      });
    };
    const killFor = (kind: string, message: string): void => {
      const runner = this.containers.get(container.name);
      const grace = (kind === 'liveness' ? container.livenessProbe : container.startupProbe) as { terminationGracePeriodSeconds?: number } | undefined;
      this.log.info({ container: container.name, probe: kind, message }, 'probe failed; killing the container');
      void runner?.kill(grace?.terminationGracePeriodSeconds ?? this.graceSeconds, `Container ${container.name} failed ${kind} probe, will be restarted`);
    };
    const startMain = (): void => {
      probes.readiness = make('readiness', () => this.changed());
      probes.liveness = make('liveness', (ok, message) => {
        if (!ok) killFor('liveness', message);
      });
      probes.readiness?.start();
      probes.liveness?.start();
      this.changed();
    };
    if (probes.started) {
      startMain();
      return;
    }
    probes.startup = make('startup', (ok, message) => {
      if (ok) {
        probes.startup?.stop();
        probes.started = true;
        startMain();
      } else killFor('startup', message);
    });
    if (probes.startup) probes.startup.start();
    else startMain();
  }

  private stopProbes(name: string): void {
    const probes = this.probes.get(name);
    probes?.startup?.stop();
    probes?.readiness?.stop();
    probes?.liveness?.stop();
    this.probes.delete(name);
  }

  /** What the runtime sees now, for the status. */
  observe(): ObservedPod {
    // Containers held back by init containers wait with PodInitializing, as the kubelet shows them.
    const initialized = this.initialized;
    // A start that failed before any container existed shows on them, as upstream's kubelet shows it.
    const state = this.lifecycle.state;
    const notCreated = state.phase === 'startFailed' ? { reason: 'CreateContainerError', message: state.message } : { reason: 'ContainerCreating' };
    const held = (record: ContainerRecord): ContainerRecord =>
      record.state.waiting?.reason === 'ContainerCreating' && record.containerId === undefined ? { ...record, state: { waiting: { reason: 'PodInitializing' } } } : record;
    const initContainers: ObservedContainer[] = this.initSpecs.map((container, i) => {
      const record = this.initRecords()[i] ?? { name: container.name, restartCount: 0, state: {}, lastState: {}, backoffMs: 0 };
      const running = this.initContainers.get(container.name)?.isRunning() ?? false;
      return { name: container.name, image: container.image ?? '', record: running ? record : held(record), ready: initSucceeded(record), started: running };
    });
    return {
      sandboxReady: this.record.networkReady && !this.stopping,
      podIPs: this.record.podIPs,
      hostIPs: this.options.hostIPs,
      startTime: this.record.startTime,
      initContainers,
      containers: this.record.pod.spec.containers.map((container) => {
        const runner = this.containers.get(container.name);
        const snapshot = runner?.snapshot() ?? { name: container.name, restartCount: 0, state: { waiting: notCreated }, lastState: {}, backoffMs: 0 };
        const record = initialized ? snapshot : held(snapshot);
        const probes = this.probes.get(container.name);
        const running = runner?.isRunning() ?? false;
        const started = running && probes?.started === true;
        const ready = started && (probes?.readiness ? probes.readiness.ok : container.readinessProbe === undefined);
        return { name: container.name, image: container.image ?? '', record, ready, started };
      }),
    };
  }

  status(): PodStatus {
    return computePodStatus(this.record.pod, this.observe());
  }

  /** The main pid of a running container (what enter.ts joins), or undefined. */
  containerPid(name: string): number | undefined {
    const runner = this.containers.get(name) ?? this.initContainers.get(name);
    return runner?.isRunning() ? runner.snapshot().pid : undefined;
  }

  /** The log file of a container's current (or previous) run, and whether it still grows. */
  /** A container's running process (for exec and attach); undefined when it is not running. */
  runningContainer(name: string): { container: Container; pid: number } | undefined {
    const runner = this.containers.get(name) ?? this.initContainers.get(name);
    const pid = runner?.snapshot().pid;
    const container = [...this.record.pod.spec.containers, ...this.initSpecs].find((c) => c.name === name);
    if (!runner || !container || !runner.isRunning() || pid === undefined) return undefined;
    return { container, pid };
  }

  /** The stdin fifo of a `stdin: true` container. */
  stdinPath(name: string): string {
    return stdinFifoPath(containerLogDir(this.options.rootDir, this.record.uid, name));
  }

  /** The namespace port-forward connects from: the sandbox, or the node's for hostNetwork. */
  get networkNamespace(): string | undefined {
    return this.containerNetns;
  }

  containerLog(name: string, previous: boolean): { path: string; active: () => boolean } | undefined {
    const runner = this.containers.get(name) ?? this.initContainers.get(name);
    const path = runner?.logPath(previous);
    if (!runner || !path) return undefined;
    const restartCount = runner.snapshot().restartCount;
    return { path, active: () => !previous && runner.isRunning() && runner.snapshot().restartCount === restartCount };
  }

  /**
   * CNI DEL, then the sandbox. A network that was never made (a failed ADD is followed by
   * its own DEL) needs no DEL; the cached result catches an ADD whose success we did not
   * get to record.
   */
  private async teardownNetwork(): Promise<void> {
    if (this.hostNetwork) {
      // The node's network is not the pod's to tear down.
      this.record.networkReady = false;
      if (!this.stopping) this.save();
      return;
    }
    if (this.record.networkReady || (await this.options.cni.cachedResult(this.record.sandboxId)) !== undefined) {
      await this.options.cni.del(this.networkRef());
      this.record.networkReady = false;
      if (!this.stopping) this.save();
    }
    deleteSandbox(this.record.sandbox);
  }

  /**
   * Kills the pod: containers get SIGTERM and `gracePeriodSeconds`, then SIGKILL; then the
   * network, the sandbox and the pod's directory (its logs included) go.
   */
  async terminate(gracePeriodSeconds = this.graceSeconds): Promise<void> {
    this.lifecycle.tryTo({ phase: 'terminating' });
    this.stopSignal.abort();
    if (this.sandboxTimer) clearTimeout(this.sandboxTimer);
    for (const name of [...this.probes.keys()]) this.stopProbes(name);
    // A pod torn down without being started (an orphan) still has processes in its record.
    if (this.containers.size === 0) {
      for (const container of this.initSpecs) this.initContainers.set(container.name, this.makeContainer(container, true));
      for (const container of this.record.pod.spec.containers) this.containers.set(container.name, this.makeContainer(container, false));
    }
    await Promise.all([...this.initContainers.values(), ...this.containers.values()].map((c) => c.stop(gracePeriodSeconds)));
    this.initContainers.clear();
    this.containers.clear();
    await this.teardownNetwork();
    // Bind mounts died with the containers' namespaces; tmpfs volumes live on the node's.
    await this.volumes.teardown();
    removePodDir(this.options.rootDir, this.record.uid);
    this.log.info('pod terminated');
  }

  /** Stops timers without touching processes (the kubelet is exiting; pods keep running). */
  detach(): void {
    this.lifecycle.tryTo({ phase: 'detached' });
    this.stopSignal.abort();
    if (this.sandboxTimer) clearTimeout(this.sandboxTimer);
    for (const name of [...this.probes.keys()]) this.stopProbes(name);
    for (const runner of [...this.initContainers.values(), ...this.containers.values()]) runner.detach();
  }
}
