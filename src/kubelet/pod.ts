/**
 * One pod on this node: its sandbox, its network, its containers and their probes, and the
 * record on disk that lets a restarted kubelet pick it up again.
 *
 * Start: record → sandbox namespace → CNI ADD (retried with backoff; a failed ADD is
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
 * SIGTERM and the grace period, then CNI DEL, the sandbox and the pod directory go.
 */
import { randomBytes } from 'node:crypto';
import type { Container, Pod, PodStatus } from '../api/types.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { netnsPath } from '../lib/netns.js';
import type { CniNetwork, PodNetworkRef, PortMapping } from './cni.js';
import { type ContainerEvent, type ContainerRecord, ContainerRunner, type RestartPolicy } from './containers.js';
import { containerArgv, containerEnv } from './env.js';
import { Prober, type ProbeKind, type ProbeTarget } from './probes.js';
import { deleteSandbox, ensureSandbox, sandboxExists, sandboxName } from './sandbox.js';
import { containerLogDir, type PodRecord, removePodDir, writePodRecord } from './state.js';
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
  configMapKey?: (namespace: string, name: string, key: string) => Promise<string | undefined>;
  /** Something changed that may change the pod's status. */
  onChange: () => void;
  /** Kubernetes Events worth recording (Created, Started, Killing, Unhealthy, BackOff…). */
  onEvent?: (type: PodEventType, reason: string, message: string, fieldPath?: string) => void;
}

const SANDBOX_RETRY_MAX_MS = 30_000;
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
  private mainStarted = false;
  private readonly probes = new Map<string, ContainerProbes>();
  private readonly envs = new Map<string, Record<string, string>>();
  private stopping = false;
  private finished = false;
  private sandboxTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private started = false;

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

  /** The latest pod object (labels, annotations and deletion fields may change). */
  update(pod: Pod): void {
    this.record.pod = pod;
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
    if (this.started) return;
    this.started = true;
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
    if (!this.record.networkReady && !terminal) await this.setupSandbox(1000);
    if (this.stopping) return;
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
    if (this.mainStarted) return;
    this.mainStarted = true;
    this.changed();
    for (const runner of this.containers.values()) {
      if (this.stopping) return;
      await runner.run();
    }
    this.checkFinished();
  }

  private async setupSandbox(retryMs: number): Promise<void> {
    if (this.hostNetwork) {
      this.record.podIPs = [...this.options.hostIPs];
      this.record.networkReady = true;
      this.save();
      return;
    }
    for (let delayMs = retryMs; !this.stopping; delayMs = Math.min(delayMs * 2, SANDBOX_RETRY_MAX_MS)) {
      try {
        ensureSandbox(this.record.sandbox);
        const result = await this.options.cni.add(this.networkRef());
        this.record.podIPs = (result.ips ?? []).map((ip) => addressOf(ip.address));
        this.record.networkReady = true;
        this.save();
        this.log.info({ sandbox: this.record.sandbox, podIPs: this.record.podIPs }, 'sandbox ready');
        return;
      } catch (err) {
        this.log.error({ err: describeError(err), retryInMs: delayMs }, 'failed to set up the pod sandbox');
        this.options.onEvent?.('Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${describeError(err)}`);
        await this.options.cni.del(this.networkRef()).catch((delErr: unknown) => this.log.warn({ err: describeError(delErr) }, 'CNI DEL after a failed ADD failed'));
        this.options.onChange();
        await new Promise<void>((resolve) => (this.sandboxTimer = setTimeout(resolve, delayMs)));
      }
    }
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
        const env = await containerEnv(container, {
          pod: this.record.pod,
          podIPs: this.record.podIPs,
          hostIPs: this.options.hostIPs,
          nodeName: this.options.nodeName,
          ...(this.options.configMapKey ? { configMapKey: this.options.configMapKey } : {}),
        });
        this.envs.set(container.name, env);
        return { argv: containerArgv(container, env), env };
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
      case 'adopted':
        this.startProbes(container);
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
    if (this.finished || this.stopping || this.containers.size === 0) return;
    if (!isTerminalPhase(podPhase(this.restartPolicy, [...this.containers.values()].map((c) => c.snapshot()), this.initRecords()))) return;
    this.finished = true;
    this.log.info('all containers finished; releasing the pod network');
    void this.teardownNetwork()
      .catch((err: unknown) => this.log.error({ err: describeError(err) }, 'failed to tear down the network of a finished pod'))
      .finally(() => this.changed());
  }

  private probeTarget(container: Container): ProbeTarget {
    const target: ProbeTarget = { sandbox: this.containerNetns, podIP: this.record.podIPs[0], container, env: this.envs.get(container.name) ?? {} };
    if (this.options.hostNetns) target.hostNetns = this.options.hostNetns;
    return target;
  }

  private startProbes(container: Container): void {
    this.stopProbes(container.name);
    const probes: ContainerProbes = { started: container.startupProbe === undefined };
    this.probes.set(container.name, probes);
    const fieldPath = `spec.containers{${container.name}}`;
    const make = (kind: ProbeKind, onResult: (ok: boolean, message: string) => void): Prober | undefined => {
      const probe = kind === 'startup' ? container.startupProbe : kind === 'readiness' ? container.readinessProbe : container.livenessProbe;
      if (!probe) return undefined;
      const label = kind[0]?.toUpperCase() + kind.slice(1);
      return new Prober({
        kind,
        probe,
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
        const snapshot = runner?.snapshot() ?? { name: container.name, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } }, lastState: {}, backoffMs: 0 };
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

  /** The log file of a container's current (or previous) run, and whether it still grows. */
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
    this.stopping = true;
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
    removePodDir(this.options.rootDir, this.record.uid);
    this.log.info('pod terminated');
  }

  /** Stops timers without touching processes (the kubelet is exiting; pods keep running). */
  detach(): void {
    this.stopping = true;
    if (this.sandboxTimer) clearTimeout(this.sandboxTimer);
    for (const name of [...this.probes.keys()]) this.stopProbes(name);
    for (const runner of [...this.initContainers.values(), ...this.containers.values()]) runner.detach();
  }
}
