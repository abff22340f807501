/**
 * The pure arithmetic of Deployment rollouts, after upstream's deployment/util: the pod
 * template hash, maxSurge/maxUnavailable resolution, how far the new ReplicaSet may grow and
 * the old ones shrink in one step, proportional scaling, and the status summary.
 *
 * Rounding as upstream: maxSurge percentages round up, maxUnavailable round down (so "25%" of
 * 3 replicas allows 1 extra pod and 0 missing ones), and when both come out 0 maxUnavailable
 * becomes 1 so a rollout can always make progress.
 */
import type { KubeObject } from '../api/meta.js';
import type { Deployment, DeploymentStatus, PodTemplateSpec, ReplicaSet } from '../api/types.js';
import { PontoonError } from '../lib/errors.js';
import { creationMs } from '../api/pods.js';

export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const DESIRED_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/max-replicas';

export class InvalidIntOrPercentError extends PontoonError {}

// ---- template hash ------------------------------------------------------------------------

/** JSON with object keys sorted, so equal templates hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function fnv32a(bytes: Uint8Array, hash = 0x811c9dc5): number {
  let h = hash;
  for (const byte of bytes) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** apimachinery's rand.SafeEncodeString alphabet: no vowels (no words), no look-alikes. */
const SAFE_ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

export function safeEncodeString(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) out += SAFE_ALPHANUMS[text.charCodeAt(i) % SAFE_ALPHANUMS.length];
  return out;
}

function withoutHashLabel(template: PodTemplateSpec): PodTemplateSpec {
  const copy = structuredClone(template);
  if (copy.metadata?.labels) {
    delete copy.metadata.labels[POD_TEMPLATE_HASH_LABEL];
    if (Object.keys(copy.metadata.labels).length === 0) delete copy.metadata.labels;
  }
  return copy;
}

/**
 * The pod-template-hash: FNV-32a of the template (canonical JSON, hash label excluded), then
 * the collision count as a little-endian uint32 when set, rendered as upstream renders its
 * decimal digits (ComputeHash + SafeEncodeString). Stable across restarts and processes.
 */
export function computeTemplateHash(template: PodTemplateSpec, collisionCount?: number): string {
  let hash = fnv32a(Buffer.from(canonicalJson(withoutHashLabel(template)), 'utf8'));
  if (collisionCount !== undefined) {
    const count = Buffer.alloc(4);
    count.writeUInt32LE(collisionCount >>> 0);
    hash = fnv32a(count, hash);
  }
  return safeEncodeString(String(hash));
}

/** Template equality ignoring the pod-template-hash label (upstream's EqualIgnoreHash). */
export function templatesEqualIgnoringHash(a: PodTemplateSpec, b: PodTemplateSpec): boolean {
  return canonicalJson(withoutHashLabel(a)) === canonicalJson(withoutHashLabel(b));
}

// ---- maxSurge / maxUnavailable ------------------------------------------------------------

/** An int, or "N%" of `total` rounded up or down. */
export function resolveIntOrPercent(value: number | string | undefined, total: number, roundUp: boolean, fallback: string): number {
  const v = value ?? fallback;
  if (typeof v === 'number') return v;
  const match = /^(\d+)%$/.exec(v.trim());
  if (!match) {
    if (/^\d+$/.test(v.trim())) return Number(v.trim());
    throw new InvalidIntOrPercentError(`invalid value "${v}": must be an integer or a percentage`);
  }
  const scaled = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

export interface Fenceposts {
  maxSurge: number;
  maxUnavailable: number;
}

export function resolveFenceposts(deployment: Deployment): Fenceposts {
  const replicas = deployment.spec.replicas ?? 1;
  if (deployment.spec.strategy?.type === 'Recreate') return { maxSurge: 0, maxUnavailable: replicas };
  const rolling = deployment.spec.strategy?.rollingUpdate;
  const maxSurge = resolveIntOrPercent(rolling?.maxSurge, replicas, true, '25%');
  let maxUnavailable = resolveIntOrPercent(rolling?.maxUnavailable, replicas, false, '25%');
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  // More unavailable than replicas is the same as all of them.
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) };
}

// ---- replica set bookkeeping --------------------------------------------------------------

export function specReplicas(rs: ReplicaSet): number {
  return rs.spec.replicas ?? 0;
}

export function sumSpecReplicas(sets: readonly ReplicaSet[]): number {
  return sets.reduce((total, rs) => total + specReplicas(rs), 0);
}

export function sumStatus(sets: readonly ReplicaSet[], field: 'replicas' | 'readyReplicas' | 'availableReplicas'): number {
  return sets.reduce((total, rs) => total + (rs.status?.[field] ?? 0), 0);
}

export function revisionOf(object: KubeObject): number {
  const revision = Number(object.metadata.annotations?.[REVISION_ANNOTATION]);
  return Number.isInteger(revision) && revision > 0 ? revision : 0;
}

/** Oldest first; ties by name so the order is stable. */
export function byCreation(a: KubeObject, b: KubeObject): number {
  return creationMs(a) - creationMs(b) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
}

/**
 * RollingUpdate: the new ReplicaSet's next size. It grows while the total stays within
 * replicas + maxSurge, and never past replicas.
 */
export function newReplicaSetReplicas(deployment: Deployment, allSets: readonly ReplicaSet[], newSet: ReplicaSet | undefined): number {
  const replicas = deployment.spec.replicas ?? 1;
  const current = newSet ? specReplicas(newSet) : 0;
  if (deployment.spec.strategy?.type === 'Recreate') return replicas;
  const { maxSurge } = resolveFenceposts(deployment);
  const total = sumSpecReplicas(allSets);
  const maxTotal = replicas + maxSurge;
  if (total >= maxTotal) return current;
  const scaleUp = Math.min(maxTotal - total, replicas - current);
  return current + Math.max(0, scaleUp);
}

/**
 * RollingUpdate: how many old pods may go now without availability dropping below
 * replicas − maxUnavailable, counting the new set's not-yet-available pods as already missing.
 */
export function maxOldScaleDown(deployment: Deployment, allSets: readonly ReplicaSet[], newSet: ReplicaSet | undefined): number {
  const replicas = deployment.spec.replicas ?? 1;
  const { maxUnavailable } = resolveFenceposts(deployment);
  const minAvailable = replicas - maxUnavailable;
  const newUnavailable = newSet ? specReplicas(newSet) - (newSet.status?.availableReplicas ?? 0) : 0;
  return sumSpecReplicas(allSets) - minAvailable - Math.max(0, newUnavailable);
}

export interface ScaleStep {
  set: ReplicaSet;
  replicas: number;
}

/**
 * Shrinks old sets' unhealthy pods first (spec replicas beyond their available ones), oldest
 * set first, by at most `budget` in total.
 */
export function cleanupUnhealthy(oldSets: readonly ReplicaSet[], budget: number): ScaleStep[] {
  const steps: ScaleStep[] = [];
  let left = budget;
  for (const rs of [...oldSets].sort(byCreation)) {
    if (left <= 0) break;
    const replicas = specReplicas(rs);
    if (replicas === 0) continue;
    const unhealthy = replicas - (rs.status?.availableReplicas ?? 0);
    if (unhealthy <= 0) continue;
    const down = Math.min(left, unhealthy);
    steps.push({ set: rs, replicas: replicas - down });
    left -= down;
  }
  return steps;
}

/**
 * Shrinks old sets (oldest first) by available pods, keeping at least minAvailable available
 * across all sets.
 */
export function scaleDownOld(deployment: Deployment, allSets: readonly ReplicaSet[], oldSets: readonly ReplicaSet[]): ScaleStep[] {
  const replicas = deployment.spec.replicas ?? 1;
  const { maxUnavailable } = resolveFenceposts(deployment);
  const minAvailable = replicas - maxUnavailable;
  const available = sumStatus(allSets, 'availableReplicas');
  if (available <= minAvailable) return [];
  let left = available - minAvailable;
  const steps: ScaleStep[] = [];
  for (const rs of [...oldSets].sort(byCreation)) {
    if (left <= 0) break;
    const current = specReplicas(rs);
    if (current === 0) continue;
    const down = Math.min(current, left);
    steps.push({ set: rs, replicas: current - down });
    left -= down;
  }
  return steps;
}

/**
 * One RollingUpdate step (upstream's reconcileNewReplicaSet, then reconcileOldReplicaSets):
 * grow (or trim) the new set within maxSurge; if it is at its size, shrink old sets within
 * maxUnavailable, unhealthy pods first. Empty when the rollout waits for pods to become
 * available (or is done).
 */
export function planRollingStep(deployment: Deployment, newSet: ReplicaSet, oldSets: readonly ReplicaSet[]): ScaleStep[] {
  const replicas = deployment.spec.replicas ?? 1;
  const allSets = [newSet, ...oldSets];
  const current = specReplicas(newSet);
  const next = current > replicas ? replicas : newReplicaSetReplicas(deployment, allSets, newSet);
  if (next !== current) return [{ set: newSet, replicas: next }];
  if (sumSpecReplicas(oldSets) === 0) return [];
  const budget = maxOldScaleDown(deployment, allSets, newSet);
  if (budget <= 0) return [];
  const cleanup = cleanupUnhealthy(oldSets, budget);
  if (cleanup.length > 0) return cleanup;
  return scaleDownOld(deployment, allSets, oldSets);
}

/**
 * A change of spec.replicas in the middle of a rollout spreads over the active sets in
 * proportion to their size (upstream's getProportion), so neither side of the rollout is
 * starved. Returns the new size of every active set; leftovers go to the largest (for growth)
 * or smallest (for shrinkage) set, newest first on ties.
 */
export function proportionalScale(deployment: Deployment, activeSets: readonly ReplicaSet[]): Map<ReplicaSet, number> {
  const replicas = deployment.spec.replicas ?? 1;
  const { maxSurge } = resolveFenceposts(deployment);
  const allowed = replicas > 0 ? replicas + maxSurge : 0;
  const toAdd = allowed - sumSpecReplicas(activeSets);
  const result = new Map<ReplicaSet, number>(activeSets.map((rs) => [rs, specReplicas(rs)]));
  if (toAdd === 0) return result;
  const sorted = [...activeSets].sort((a, b) => {
    const size = toAdd > 0 ? specReplicas(b) - specReplicas(a) : specReplicas(a) - specReplicas(b);
    return size !== 0 ? size : byCreation(b, a);
  });
  let added = 0;
  for (const rs of sorted) {
    const current = specReplicas(rs);
    if (current === 0) continue;
    let proportion: number;
    if (replicas === 0) {
      proportion = -current;
    } else {
      const annotated = Number(rs.metadata.annotations?.[MAX_REPLICAS_ANNOTATION]);
      const previousMax = Number.isInteger(annotated) && annotated > 0 ? annotated : sumSpecReplicas(activeSets);
      proportion = Math.ceil((current * allowed) / previousMax) - current;
    }
    const remaining = toAdd - added;
    proportion = toAdd > 0 ? Math.min(proportion, remaining) : Math.max(proportion, remaining);
    result.set(rs, current + proportion);
    added += proportion;
  }
  const leftover = toAdd - added;
  const first = sorted[0];
  if (leftover !== 0 && first) result.set(first, Math.max(0, (result.get(first) ?? 0) + leftover));
  return result;
}

// ---- status -------------------------------------------------------------------------------

export function computeDeploymentStatus(
  deployment: Deployment,
  allSets: readonly ReplicaSet[],
  newSet: ReplicaSet | undefined,
): Omit<DeploymentStatus, 'conditions'> {
  const available = sumStatus(allSets, 'availableReplicas');
  const total = sumSpecReplicas(allSets);
  return {
    observedGeneration: deployment.metadata.generation ?? 0,
    replicas: sumStatus(allSets, 'replicas'),
    updatedReplicas: newSet ? newSet.status?.replicas ?? 0 : 0,
    readyReplicas: sumStatus(allSets, 'readyReplicas'),
    availableReplicas: available,
    unavailableReplicas: Math.max(0, total - available),
  };
}

/** All pods are updated, available and nothing old remains (upstream's DeploymentComplete). */
export function rolloutComplete(deployment: Deployment, status: Omit<DeploymentStatus, 'conditions'>): boolean {
  const replicas = deployment.spec.replicas ?? 1;
  return (
    status.updatedReplicas === replicas &&
    status.replicas === replicas &&
    status.availableReplicas === replicas &&
    (status.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0)
  );
}
