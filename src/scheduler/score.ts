/**
 * Score plugins: pure functions rating each feasible node 0..100 for a pod; the scheduler
 * takes the weighted sum and picks the best node, breaking ties at random so equal nodes
 * share the load instead of the first one in the list taking everything.
 *
 * - least allocated: prefer nodes with the most free cpu and memory after placing the pod
 *   (containers without requests count as upstream's 100m / 200Mi defaults, so best-effort
 *   pods still spread);
 * - spread: prefer nodes running fewer pods of the same controller (ReplicaSet), so a
 *   Deployment's replicas survive the loss of one node;
 * - taint toleration: prefer nodes with fewer PreferNoSchedule taints the pod does not
 *   tolerate.
 * Weights follow upstream's default profile in spirit: spread and taints outweigh packing.
 */
import type { Node, Pod } from '../api/types.js';
import { tolerates } from './filter.js';
import { nodeCapacity, podHoldsResources, podRequests, sumRequests } from './resources.js';

export const MAX_NODE_SCORE = 100;

export type ScorePlugin = (pod: Pod, nodes: readonly Node[], podsByNode: ReadonlyMap<string, readonly Pod[]>) => number[];

export interface WeightedScorePlugin {
  name: string;
  weight: number;
  score: ScorePlugin;
}

function nodeName(node: Node): string {
  return node.metadata.name ?? '';
}

export const scoreLeastAllocated: ScorePlugin = (pod, nodes, podsByNode) => {
  const wanted = podRequests(pod, true);
  return nodes.map((node) => {
    const capacity = nodeCapacity(node);
    const used = sumRequests(podsByNode.get(nodeName(node)) ?? [], true);
    const fractions: number[] = [];
    if (capacity.milliCpu) fractions.push(Math.max(0, capacity.milliCpu - used.milliCpu - wanted.milliCpu) / capacity.milliCpu);
    if (capacity.memoryBytes) {
      fractions.push(Math.max(0, capacity.memoryBytes - used.memoryBytes - wanted.memoryBytes) / capacity.memoryBytes);
    }
    if (fractions.length === 0) return 0;
    return Math.floor((MAX_NODE_SCORE * fractions.reduce((a, b) => a + b, 0)) / fractions.length);
  });
};

/** The uid of the pod's controller (its ReplicaSet), if it has one. */
export function controllerUid(pod: Pod): string | undefined {
  return pod.metadata.ownerReferences?.find((ref) => ref.controller)?.uid;
}

/** Fewer of the node's count → higher score: MAX × (maxCount − count) / maxCount. */
function inverseNormalize(counts: number[]): number[] {
  const max = Math.max(0, ...counts);
  if (max === 0) return counts.map(() => MAX_NODE_SCORE);
  return counts.map((count) => Math.floor((MAX_NODE_SCORE * (max - count)) / max));
}

export const scoreSpread: ScorePlugin = (pod, nodes, podsByNode) => {
  const owner = controllerUid(pod);
  if (!owner) return nodes.map(() => MAX_NODE_SCORE);
  const counts = nodes.map(
    (node) =>
      (podsByNode.get(nodeName(node)) ?? []).filter(
        (other) => podHoldsResources(other) && !other.metadata.deletionTimestamp && controllerUid(other) === owner,
      ).length,
  );
  return inverseNormalize(counts);
};

export const scoreTaintToleration: ScorePlugin = (pod, nodes) => {
  const tolerations = (pod.spec.tolerations ?? []).filter((t) => !t.effect || t.effect === 'PreferNoSchedule');
  const counts = nodes.map(
    (node) => (node.spec?.taints ?? []).filter((taint) => taint.effect === 'PreferNoSchedule' && !tolerates(tolerations, taint)).length,
  );
  return inverseNormalize(counts);
};

export const DEFAULT_SCORERS: readonly WeightedScorePlugin[] = [
  { name: 'NodeResourcesLeastAllocated', weight: 1, score: scoreLeastAllocated },
  { name: 'SelectorSpread', weight: 2, score: scoreSpread },
  { name: 'TaintToleration', weight: 3, score: scoreTaintToleration },
];

/** The weighted total per node, in the order of `nodes`. */
export function score(
  pod: Pod,
  nodes: readonly Node[],
  podsByNode: ReadonlyMap<string, readonly Pod[]>,
  plugins: readonly WeightedScorePlugin[] = DEFAULT_SCORERS,
): number[] {
  const totals = nodes.map(() => 0);
  for (const plugin of plugins) {
    const scores = plugin.score(pod, nodes, podsByNode);
    scores.forEach((value, i) => (totals[i] = (totals[i] ?? 0) + plugin.weight * value));
  }
  return totals;
}

/** The best-scoring node; ties broken with `random` (0 ≤ x < 1). */
export function selectNode(nodes: readonly Node[], scores: readonly number[], random: () => number = Math.random): Node | undefined {
  const best = Math.max(...scores);
  const top = nodes.filter((_, i) => scores[i] === best);
  return top[Math.floor(random() * top.length)];
}
