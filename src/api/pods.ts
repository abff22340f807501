/**
 * Pod facts the controllers agree on (after upstream's podutil): ready, available,
 * active, and the controller owner reference.
 */
import type { KubeObject, OwnerReference } from './meta.js';
import type { Pod, PodCondition } from './types.js';

export function podCondition(pod: Pod, type: PodCondition['type']): PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === type);
}

export function isPodReady(pod: Pod): boolean {
  return podCondition(pod, 'Ready')?.status === 'True';
}

/** Ready for at least `minReadySeconds` (ready counts from the condition's transition time). */
export function isPodAvailable(pod: Pod, minReadySeconds: number, nowMs: number): boolean {
  if (!isPodReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = Date.parse(podCondition(pod, 'Ready')?.lastTransitionTime ?? '');
  return Number.isFinite(since) && since + minReadySeconds * 1000 <= nowMs;
}

/** Milliseconds until a ready pod becomes available, or undefined when it is not ready. */
export function msUntilAvailable(pod: Pod, minReadySeconds: number, nowMs: number): number | undefined {
  if (!isPodReady(pod) || minReadySeconds <= 0) return undefined;
  const since = Date.parse(podCondition(pod, 'Ready')?.lastTransitionTime ?? '');
  if (!Number.isFinite(since)) return undefined;
  return Math.max(0, since + minReadySeconds * 1000 - nowMs);
}

export function isTerminating(object: KubeObject): boolean {
  return Boolean(object.metadata.deletionTimestamp);
}

/** Counts toward a ReplicaSet's replicas: not finished and not being deleted. */
export function isPodActive(pod: Pod): boolean {
  return pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed' && !isTerminating(pod);
}

export function controllerRef(object: KubeObject): OwnerReference | undefined {
  return object.metadata.ownerReferences?.find((ref) => ref.controller === true);
}

/** An owner reference making `owner` the controller of a dependent. */
export function controllerReferenceTo(owner: KubeObject, apiVersion: string, kind: string): OwnerReference {
  return {
    apiVersion,
    kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function creationMs(object: KubeObject): number {
  const at = Date.parse(object.metadata.creationTimestamp ?? '');
  return Number.isFinite(at) ? at : 0;
}

/** Sets or replaces a condition; lastTransitionTime moves only when the status changes. True when anything changed. */
export function setCondition<C extends { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }>(
  conditions: C[],
  wanted: C,
  now: string,
): boolean {
  const index = conditions.findIndex((c) => c.type === wanted.type);
  const current = index >= 0 ? conditions[index] : undefined;
  if (current && current.status === wanted.status && current.reason === wanted.reason && current.message === wanted.message) {
    return false;
  }
  const next = { ...current, ...wanted, lastTransitionTime: current?.status === wanted.status ? current.lastTransitionTime ?? now : now };
  if (index >= 0) conditions[index] = next;
  else conditions.push(next);
  return true;
}

/** RFC 3339 seconds, as Kubernetes writes timestamps. */
export function nowTimestamp(nowMs = Date.now()): string {
  return new Date(nowMs).toISOString().replace(/\.\d+Z$/, 'Z');
}
