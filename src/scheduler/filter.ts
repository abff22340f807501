/**
 * Filter plugins: pure predicates that say whether a pod may run on a node, and if not, why,
 * in upstream's words so `kubectl describe pod` reads the same ("0/3 nodes are available:
 * 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.").
 *
 * Each plugin returns the reasons the node fails (empty when it passes); a node is feasible
 * when every plugin passes. As in upstream's framework the first failing plugin decides a
 * node's reasons (one plugin may give several: "Insufficient cpu" and "Insufficient memory").
 */
import type { Node, Pod, Taint, Toleration } from '../api/types.js';
import { nodeCapacity, podRequests, podHoldsResources, sumRequests } from './resources.js';

export const REASON_NOT_READY = "node(s) had condition Ready != True";
export const REASON_UNSCHEDULABLE = 'node(s) were unschedulable';
export const REASON_SELECTOR = "node(s) didn't match Pod's node affinity/selector";
export const REASON_NODE_NAME = "node(s) didn't match the requested node name";
export const REASON_TOO_MANY_PODS = 'Too many pods';
export const REASON_INSUFFICIENT_CPU = 'Insufficient cpu';
export const REASON_INSUFFICIENT_MEMORY = 'Insufficient memory';

export type FilterPlugin = (pod: Pod, node: Node, podsOnNode: readonly Pod[]) => string[];

export function nodeReady(node: Node): boolean {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
}

export const filterNodeReady: FilterPlugin = (_pod, node) => (nodeReady(node) ? [] : [REASON_NOT_READY]);

export const filterNodeUnschedulable: FilterPlugin = (pod, node) => {
  if (!node.spec?.unschedulable) return [];
  // `kubectl cordon` pods may still land when they tolerate the cordon taint.
  const cordon: Taint = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };
  return tolerates(pod.spec.tolerations ?? [], cordon) ? [] : [REASON_UNSCHEDULABLE];
};

export const filterNodeName: FilterPlugin = (pod, node) =>
  pod.spec.nodeName && pod.spec.nodeName !== node.metadata.name ? [REASON_NODE_NAME] : [];

export const filterNodeSelector: FilterPlugin = (pod, node) => {
  const labels = node.metadata.labels ?? {};
  for (const [key, value] of Object.entries(pod.spec.nodeSelector ?? {})) {
    if (labels[key] !== value) return [REASON_SELECTOR];
  }
  return [];
};

export const filterResourcesFit: FilterPlugin = (pod, node, podsOnNode) => {
  const capacity = nodeCapacity(node);
  const reasons: string[] = [];
  const holding = podsOnNode.filter(podHoldsResources).length;
  if (capacity.pods !== undefined && holding + 1 > capacity.pods) reasons.push(REASON_TOO_MANY_PODS);
  const wanted = podRequests(pod);
  const used = sumRequests(podsOnNode);
  // A pod that requests none of a resource fits however full the node is, as upstream.
  if (capacity.milliCpu !== undefined && wanted.milliCpu > 0 && used.milliCpu + wanted.milliCpu > capacity.milliCpu) {
    reasons.push(REASON_INSUFFICIENT_CPU);
  }
  if (capacity.memoryBytes !== undefined && wanted.memoryBytes > 0 && used.memoryBytes + wanted.memoryBytes > capacity.memoryBytes) {
    reasons.push(REASON_INSUFFICIENT_MEMORY);
  }
  return reasons;
};

/** Toleration matching as core/v1 `Toleration.ToleratesTaint`. */
export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  const operator = toleration.operator ?? 'Equal';
  if (operator === 'Exists') return true;
  // An empty key with Equal is invalid upstream; it tolerates nothing here.
  if (!toleration.key) return false;
  return (toleration.value ?? '') === (taint.value ?? '');
}

export function tolerates(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => toleratesTaint(t, taint));
}

export const filterTaintToleration: FilterPlugin = (pod, node) => {
  const tolerations = pod.spec.tolerations ?? [];
  const untolerated = (node.spec?.taints ?? []).find(
    (taint) => (taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') && !tolerates(tolerations, taint),
  );
  return untolerated ? [`node(s) had untolerated taint {${untolerated.key}: ${untolerated.value ?? ''}}`] : [];
};

export const DEFAULT_FILTERS: readonly FilterPlugin[] = [
  filterNodeName,
  filterNodeReady,
  filterNodeUnschedulable,
  filterNodeSelector,
  filterTaintToleration,
  filterResourcesFit,
];

export interface FilterResult {
  feasible: Node[];
  /** Why each infeasible node failed, by node name. */
  failures: Map<string, string[]>;
}

/**
 * Runs every plugin for every node. `podsByNode` holds the pods already on (or assumed onto)
 * each node by node name.
 */
export function filter(
  pod: Pod,
  nodes: readonly Node[],
  podsByNode: ReadonlyMap<string, readonly Pod[]>,
  plugins: readonly FilterPlugin[] = DEFAULT_FILTERS,
): FilterResult {
  const feasible: Node[] = [];
  const failures = new Map<string, string[]>();
  for (const node of nodes) {
    const name = node.metadata.name ?? '';
    const podsOnNode = podsByNode.get(name) ?? [];
    let reasons: string[] = [];
    for (const plugin of plugins) {
      reasons = plugin(pod, node, podsOnNode);
      if (reasons.length > 0) break;
    }
    if (reasons.length === 0) feasible.push(node);
    else failures.set(name, reasons);
  }
  return { feasible, failures };
}

/**
 * "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient
 * cpu." — reasons counted over nodes, each "<count> <reason>" sorted as text like upstream.
 */
export function unschedulableMessage(nodeCount: number, failures: ReadonlyMap<string, readonly string[]>): string {
  if (nodeCount === 0) return '0/0 nodes are available: no nodes available to schedule pods.';
  const histogram = new Map<string, number>();
  for (const reasons of failures.values()) {
    for (const reason of new Set(reasons)) histogram.set(reason, (histogram.get(reason) ?? 0) + 1);
  }
  const parts = [...histogram].map(([reason, count]) => `${count} ${reason}`).sort();
  return `0/${nodeCount} nodes are available: ${parts.join(', ')}.`;
}
