/**
 * The pure half of the DaemonSet controller (after upstream's pkg/controller/daemon): which
 * nodes should run a daemon pod, the pod a node gets, what a node's pods need (create, delete
 * extras and failures), one step of a rolling update, and the status counters. No API calls:
 * the controller feeds these from its informer caches and applies what they return.
 */
import type { Affinity, DaemonSet, DaemonSetStatus, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Toleration } from '../api/types.js';
import { toleratesTaint } from '../scheduler/filter.js';
import { computeTemplateHash, resolveIntOrPercent } from './deployment-util.js';
import { controllerReferenceTo, creationMs, isPodAvailable, isPodReady, isTerminating } from '../api/pods.js';

/** The template's hash on every daemon pod: old and new pods tell apart by it. */
export const CONTROLLER_REVISION_HASH_LABEL = 'controller-revision-hash';
/** Deprecated upstream but still written: the DaemonSet generation the pod was made from. */
export const POD_TEMPLATE_GENERATION_LABEL = 'pod-template-generation';

/**
 * Tolerations every daemon pod gets (upstream's AddOrUpdateDaemonPodTolerations): a daemon
 * belongs on a node whatever its pressure or cordon, and stays through not-ready/unreachable
 * (node agents are what make a node ready in the first place).
 */
export function daemonPodTolerations(hostNetwork: boolean): Toleration[] {
  const tolerations: Toleration[] = [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
  ];
  // A hostNetwork pod is the network: it must start before the node's pod network exists.
  if (hostNetwork) tolerations.push({ key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' });
  return tolerations;
}

/** The template's tolerations plus the daemon defaults, one entry per key and effect. */
export function withDaemonTolerations(own: readonly Toleration[] | undefined, hostNetwork: boolean): Toleration[] {
  const result = [...(own ?? [])];
  for (const extra of daemonPodTolerations(hostNetwork)) {
    const index = result.findIndex((t) => t.key === extra.key && t.effect === extra.effect);
    if (index >= 0) result[index] = extra;
    else result.push(extra);
  }
  return result;
}

/** The template hash the DaemonSet's current pods carry. */
export function daemonSetHash(ds: DaemonSet): string {
  return computeTemplateHash(ds.spec.template, ds.status?.collisionCount);
}

/**
 * The pod `ds` runs on `nodeName`. It is bound directly (spec.nodeName), not through the
 * scheduler: our scheduler has no node affinity, and a daemon pod must land on exactly that
 * node even when the scheduler is down — the way DaemonSets worked upstream before 1.12.
 */
export function newDaemonPod(ds: DaemonSet, nodeName: string, hash: string): Pod {
  const template = ds.spec.template;
  const spec = structuredClone(template.spec);
  spec.nodeName = nodeName;
  spec.tolerations = withDaemonTolerations(spec.tolerations, spec.hostNetwork === true);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${ds.metadata.name}-`,
      namespace: ds.metadata.namespace,
      labels: {
        ...template.metadata?.labels,
        [CONTROLLER_REVISION_HASH_LABEL]: hash,
        [POD_TEMPLATE_GENERATION_LABEL]: String(ds.metadata.generation ?? 1),
      },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ...(template.metadata?.finalizers ? { finalizers: [...template.metadata.finalizers] } : {}),
      ownerReferences: [controllerReferenceTo(ds, 'apps/v1', 'DaemonSet')],
    },
    spec,
  };
}

// ---- eligibility ---------------------------------------------------------------------------------

function requirementMatches(requirement: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const have = Number.parseInt(value ?? '', 10);
      const want = Number.parseInt(values[0] ?? '', 10);
      if (!Number.isFinite(have) || !Number.isFinite(want)) return false;
      return requirement.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}

/** A NodeSelectorTerm: every expression on labels and every field (only metadata.name) holds. */
function termMatches(term: NodeSelectorTerm, node: Node): boolean {
  const labels = node.metadata.labels ?? {};
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  // An empty term matches nothing, as upstream's nodeaffinity helper says.
  if (expressions.length === 0 && fields.length === 0) return false;
  return (
    expressions.every((r) => requirementMatches(r, labels[r.key])) &&
    fields.every((r) => r.key === 'metadata.name' && requirementMatches(r, node.metadata.name))
  );
}

/** nodeSelector and required node affinity (terms ORed) both hold for `node`. */
export function nodeMatchesPodPlacement(spec: { nodeSelector?: Record<string, string>; affinity?: Affinity }, node: Node): boolean {
  const labels = node.metadata.labels ?? {};
  for (const [key, value] of Object.entries(spec.nodeSelector ?? {})) if (labels[key] !== value) return false;
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms && !terms.some((term) => termMatches(term, node))) return false;
  return true;
}

export interface NodePlacement {
  /** A daemon pod should be created here if missing. */
  shouldRun: boolean;
  /** A daemon pod already here may stay (a NoSchedule taint added later does not evict it). */
  shouldContinueRunning: boolean;
}

/** Upstream's NodeShouldRunDaemonPod: node name, selector/affinity, then taints vs tolerations. */
export function nodeShouldRunDaemonPod(ds: DaemonSet, node: Node): NodePlacement {
  const spec = ds.spec.template.spec;
  const no: NodePlacement = { shouldRun: false, shouldContinueRunning: false };
  if (spec.nodeName && spec.nodeName !== node.metadata.name) return no;
  if (!nodeMatchesPodPlacement(spec, node)) return no;
  const tolerations = withDaemonTolerations(spec.tolerations, spec.hostNetwork === true);
  let shouldRun = true;
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect === 'PreferNoSchedule' || tolerations.some((t) => toleratesTaint(t, taint))) continue;
    if (taint.effect === 'NoExecute') return no;
    shouldRun = false;
  }
  return { shouldRun, shouldContinueRunning: true };
}

// ---- per-node management --------------------------------------------------------------------------

function isFinished(pod: Pod): boolean {
  return pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded';
}

/** Oldest first; on equal creation times, running before pending (podByCreationTimestampAndPhase). */
export function byCreationAndPhase(a: Pod, b: Pod): number {
  const created = creationMs(a) - creationMs(b);
  if (created !== 0) return created;
  const rank = (pod: Pod): number => (pod.status?.phase === 'Running' ? 0 : 1);
  return rank(a) - rank(b) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
}

export interface NodePlan {
  create: boolean;
  delete: Pod[];
  /** Failed pods seen here: the controller deletes them only outside their back-off. */
  failed: Pod[];
}

/**
 * What one node's daemon pods need (upstream's podsShouldBeOnNode). `pods` are the
 * DaemonSet's pods bound to the node, terminating ones included: a replacement is created
 * only once the old pod is gone, so two copies of a hostNetwork daemon never fight over a
 * port. With surge allowed a node may hold one old and one new pod during a rollout.
 */
export function planNode(placement: NodePlacement, pods: readonly Pod[], hash: string, allowSurge: boolean): NodePlan {
  const plan: NodePlan = { create: false, delete: [], failed: [] };
  if (placement.shouldRun && pods.length === 0) {
    plan.create = true;
    return plan;
  }
  if (!placement.shouldContinueRunning) {
    plan.delete = pods.filter((pod) => !isTerminating(pod));
    return plan;
  }
  const running: Pod[] = [];
  for (const pod of pods) {
    if (isTerminating(pod)) continue;
    if (pod.status?.phase === 'Failed') plan.failed.push(pod);
    else if (pod.status?.phase === 'Succeeded') plan.delete.push(pod);
    else running.push(pod);
  }
  running.sort(byCreationAndPhase);
  if (!allowSurge) {
    plan.delete.push(...running.slice(1));
    return plan;
  }
  // Surge: keep the oldest current pod and the oldest old one; an old pod goes once the new is available (rollingUpdate).
  const current = running.filter((pod) => pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] === hash);
  const old = running.filter((pod) => pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] !== hash);
  plan.delete.push(...current.slice(1), ...old.slice(1));
  return plan;
}

// ---- rolling update -----------------------------------------------------------------------------

export interface RollingBudget {
  maxSurge: number;
  maxUnavailable: number;
}

/** maxSurge and maxUnavailable of `desired` nodes (both round up for DaemonSets); never both 0. */
export function rollingBudget(ds: DaemonSet, desired: number): RollingBudget {
  const rolling = ds.spec.updateStrategy?.rollingUpdate;
  const maxSurge = resolveIntOrPercent(rolling?.maxSurge, desired, true, '0');
  let maxUnavailable = resolveIntOrPercent(rolling?.maxUnavailable, desired, true, '1');
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable };
}

export interface RollingStep {
  /** Old pods to delete now (their nodes then get a current pod from planNode). */
  delete: Pod[];
  /** Nodes that get a current pod beside their old one (surge). */
  surgeNodes: string[];
}

/**
 * One step of a RollingUpdate (upstream's rollingUpdate). `podsByNode` holds each eligible
 * node's live (not terminating, not finished) daemon pods.
 *
 * Without surge, an unavailable old pod is replaced at once (deleting it costs nothing); an
 * available one only while fewer than maxUnavailable nodes lack an available current pod.
 * With surge, a current pod starts beside the old one on up to maxSurge nodes; the old pod is
 * deleted once the new one is available.
 */
export function planRollingUpdate(
  ds: DaemonSet,
  podsByNode: ReadonlyMap<string, readonly Pod[]>,
  hash: string,
  budget: RollingBudget,
  nowMs: number,
): RollingStep {
  const minReadySeconds = ds.spec.minReadySeconds ?? 0;
  const available = (pod: Pod): boolean => isPodAvailable(pod, minReadySeconds, nowMs);
  const step: RollingStep = { delete: [], surgeNodes: [] };
  const nodes = [...podsByNode.keys()].sort();
  const split = (pods: readonly Pod[]): { current?: Pod; old?: Pod; ok: boolean } => {
    const current = pods.filter((pod) => pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] === hash);
    const old = pods.filter((pod) => pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] !== hash);
    return { current: current[0], old: old[0], ok: current.length <= 1 && old.length <= 1 };
  };

  if (budget.maxSurge === 0) {
    let unavailable = 0;
    const candidates: Pod[] = [];
    for (const node of nodes) {
      const { current, old, ok } = split(podsByNode.get(node) ?? []);
      if (!ok) continue; // planNode removes the extras first
      if ((!current && !old) || (current && old)) unavailable += 1;
      else if (current) {
        if (!available(current)) unavailable += 1;
      } else if (old) {
        if (!available(old)) step.delete.push(old);
        else candidates.push(old);
      }
    }
    const room = Math.max(0, budget.maxUnavailable - unavailable - step.delete.length);
    step.delete.push(...candidates.slice(0, room));
    return step;
  }

  let surging = 0;
  const candidates: string[] = [];
  const urgent: string[] = [];
  for (const node of nodes) {
    const { current, old, ok } = split(podsByNode.get(node) ?? []);
    if (!ok || !old) continue;
    if (!current) {
      if (!available(old)) urgent.push(node);
      else candidates.push(node);
    } else if (!available(current)) surging += 1;
    else step.delete.push(old);
  }
  const room = Math.max(0, budget.maxSurge - surging);
  step.surgeNodes = [...urgent, ...candidates.slice(0, room)];
  return step;
}

// ---- status ---------------------------------------------------------------------------------------

/**
 * The status counters (upstream's updateDaemonSetStatus) from each node's placement and live
 * daemon pods; the oldest pod on a node stands for it.
 */
export function computeDaemonSetStatus(
  ds: DaemonSet,
  nodes: readonly { node: Node; placement: NodePlacement; pods: readonly Pod[] }[],
  hash: string,
  nowMs: number,
): DaemonSetStatus {
  const minReadySeconds = ds.spec.minReadySeconds ?? 0;
  let desired = 0;
  let current = 0;
  let ready = 0;
  let availableCount = 0;
  let updated = 0;
  let misscheduled = 0;
  for (const { placement, pods } of nodes) {
    const live = pods.filter((pod) => !isTerminating(pod) && !isFinished(pod)).sort(byCreationAndPhase);
    if (!placement.shouldRun) {
      if (live.length > 0) misscheduled += 1;
      continue;
    }
    desired += 1;
    const pod = live[0];
    if (!pod) continue;
    current += 1;
    if (isPodReady(pod)) {
      ready += 1;
      if (isPodAvailable(pod, minReadySeconds, nowMs)) availableCount += 1;
    }
    if (pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] === hash) updated += 1;
  }
  return {
    currentNumberScheduled: current,
    numberMisscheduled: misscheduled,
    desiredNumberScheduled: desired,
    numberReady: ready,
    observedGeneration: ds.metadata.generation ?? 0,
    updatedNumberScheduled: updated,
    numberAvailable: availableCount,
    ...(desired - availableCount > 0 ? { numberUnavailable: desired - availableCount } : {}),
    ...(ds.status?.collisionCount !== undefined ? { collisionCount: ds.status.collisionCount } : {}),
  };
}
