/**
 * PodStatus from what the runtime observes, computed as the kubelet does (pkg/kubelet
 * getPhase and the status generators): a pure function, so the pod worker can compare the
 * result with the object's status and write only when something changed. Transition times
 * are kept from the previous status while a condition's value stays the same.
 */
import type { ContainerStatus, Pod, PodCondition, PodPhase, PodStatus } from '../api/types.js';
import type { ContainerRecord, RestartPolicy } from './containers.js';
import { rfc3339 } from './time.js';

export interface ObservedContainer {
  name: string;
  image: string;
  record: ContainerRecord;
  ready: boolean;
  started: boolean;
}

export interface ObservedPod {
  /** Sandbox and network are up (PodReadyToStartContainers). */
  sandboxReady: boolean;
  podIPs: readonly string[];
  hostIPs: readonly string[];
  startTime?: string;
  /** spec.initContainers in order; empty when the pod has none. */
  initContainers: readonly ObservedContainer[];
  containers: readonly ObservedContainer[];
}

/** An init container that exited 0: done for good. */
export function initSucceeded(record: ContainerRecord): boolean {
  return record.state.terminated?.exitCode === 0;
}

/**
 * The kubelet's getPhase over the containers' states. Until every init container has exited
 * 0 the pod is Pending, or Failed once one has failed under restartPolicy Never (nothing
 * will run it again).
 */
export function podPhase(restartPolicy: RestartPolicy, containers: readonly ContainerRecord[], initContainers: readonly ContainerRecord[] = []): PodPhase {
  if (!initContainers.every(initSucceeded)) {
    const failed = initContainers.some((c) => c.state.terminated !== undefined && c.state.terminated.exitCode !== 0);
    return failed && restartPolicy === 'Never' ? 'Failed' : 'Pending';
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const { state, lastState } of containers) {
    if (state.running) running++;
    else if (state.terminated) {
      stopped++;
      if (state.terminated.exitCode === 0) succeeded++;
    } else if (lastState.terminated) stopped++;
    else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (restartPolicy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (restartPolicy === 'Never') return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

export function isTerminalPhase(phase: PodPhase | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

function qosClass(pod: Pod): string {
  const containers = pod.spec.containers;
  const all = containers.map((c) => ({ requests: c.resources?.requests ?? {}, limits: c.resources?.limits ?? {} }));
  if (all.every((c) => Object.keys(c.requests).length === 0 && Object.keys(c.limits).length === 0)) return 'BestEffort';
  const guaranteed = all.every(
    (c) => ['cpu', 'memory'].every((r) => c.limits[r] !== undefined) && Object.entries(c.requests).every(([r, q]) => String(c.limits[r]) === String(q)),
  );
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function containerStatus(observed: ObservedContainer): ContainerStatus {
  const { record } = observed;
  const status: ContainerStatus = {
    name: observed.name,
    image: observed.image,
    imageID: '',
    ready: observed.ready,
    started: observed.started,
    restartCount: record.restartCount,
    state: record.state,
    lastState: record.lastState,
  };
  if (record.containerId) status.containerID = `pontoon://${record.containerId}`;
  return status;
}

export function computePodStatus(pod: Pod, observed: ObservedPod, now: string = rfc3339()): PodStatus {
  const restartPolicy = pod.spec.restartPolicy ?? 'Always';
  const phase = podPhase(restartPolicy, observed.containers.map((c) => c.record), observed.initContainers.map((c) => c.record));
  const incomplete = observed.initContainers.filter((c) => !initSucceeded(c.record)).map((c) => c.name);
  const previous = new Map((pod.status?.conditions ?? []).map((c) => [c.type, c]));
  const condition = (type: PodCondition['type'], ok: boolean, reason?: string, message?: string): PodCondition => {
    const status = ok ? 'True' : 'False';
    const before = previous.get(type);
    const result: PodCondition = { type, status, lastProbeTime: null, lastTransitionTime: before?.status === status ? (before.lastTransitionTime ?? now) : now };
    if (!ok && reason) result.reason = reason;
    if (!ok && message) result.message = message;
    return result;
  };
  const unready = observed.containers.filter((c) => !c.ready).map((c) => c.name);
  const terminal = isTerminalPhase(phase);
  const notReadyReason = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const notReadyMessage = terminal ? undefined : `containers with unready status: [${unready.join(' ')}]`;
  const scheduled = previous.get('PodScheduled') ?? condition('PodScheduled', true);
  const conditions: PodCondition[] = [
    condition('PodReadyToStartContainers', observed.sandboxReady),
    condition('Initialized', incomplete.length === 0, 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`),
    condition('Ready', !terminal && unready.length === 0, notReadyReason, notReadyMessage),
    condition('ContainersReady', !terminal && unready.length === 0, notReadyReason, notReadyMessage),
    scheduled,
  ];
  const status: PodStatus = {
    phase,
    conditions,
    hostIP: observed.hostIPs[0] ?? '',
    hostIPs: observed.hostIPs.map((ip) => ({ ip })),
    ...(observed.initContainers.length > 0 ? { initContainerStatuses: observed.initContainers.map(containerStatus) } : {}),
    containerStatuses: observed.containers.map(containerStatus),
    qosClass: qosClass(pod),
  };
  if (observed.podIPs.length > 0) {
    status.podIP = observed.podIPs[0] ?? '';
    status.podIPs = observed.podIPs.map((ip) => ({ ip }));
  }
  if (observed.startTime) status.startTime = observed.startTime;
  return status;
}

/** Key-order-independent equality of two JSON values (a status as computed vs. as stored). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  const ak = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bk = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
