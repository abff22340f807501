/**
 * What a pod asks for and what a node offers, in integer units the scheduler can add up:
 * millicores of cpu, bytes of memory, and a pod count.
 *
 * A pod's request is the larger of the sum over its containers and the largest init
 * container (init containers run one at a time before the others), as upstream computes it.
 * A container with limits but no request requests its limit (the apiserver's defaulting).
 */
import { quantityMilliValue, quantityValue } from '../api/quantity.js';
import type { Container, Node, Pod, ResourceList } from '../api/types.js';

export interface Resources {
  milliCpu: number;
  memoryBytes: number;
}

/** Node capacity: undefined fields were not reported and are not enforced. */
export interface NodeCapacity {
  milliCpu?: number;
  memoryBytes?: number;
  pods?: number;
}

/**
 * What the scorer assumes a container without requests uses, so least-allocated still
 * spreads best-effort pods (upstream's DefaultMilliCPURequest / DefaultMemoryRequest).
 */
export const DEFAULT_SCORING_REQUEST: Resources = { milliCpu: 100, memoryBytes: 200 * 1024 * 1024 };

function containerRequests(container: Container, nonZeroDefaults: boolean): Resources {
  const requests: ResourceList = { ...container.resources?.limits, ...container.resources?.requests };
  const cpu = requests['cpu'];
  const memory = requests['memory'];
  return {
    milliCpu: cpu !== undefined ? quantityMilliValue(cpu) : nonZeroDefaults ? DEFAULT_SCORING_REQUEST.milliCpu : 0,
    memoryBytes: memory !== undefined ? quantityValue(memory) : nonZeroDefaults ? DEFAULT_SCORING_REQUEST.memoryBytes : 0,
  };
}

/**
 * The pod's effective request. With `nonZeroDefaults`, containers that request nothing count
 * as DEFAULT_SCORING_REQUEST (for scoring only; filtering uses the real requests).
 */
export function podRequests(pod: Pod, nonZeroDefaults = false): Resources {
  const total: Resources = { milliCpu: 0, memoryBytes: 0 };
  for (const container of pod.spec.containers ?? []) {
    const r = containerRequests(container, nonZeroDefaults);
    total.milliCpu += r.milliCpu;
    total.memoryBytes += r.memoryBytes;
  }
  for (const container of pod.spec.initContainers ?? []) {
    const r = containerRequests(container, nonZeroDefaults);
    total.milliCpu = Math.max(total.milliCpu, r.milliCpu);
    total.memoryBytes = Math.max(total.memoryBytes, r.memoryBytes);
  }
  return total;
}

/** Allocatable, falling back to capacity, per resource. */
export function nodeCapacity(node: Node): NodeCapacity {
  const offered: ResourceList = { ...node.status?.capacity, ...node.status?.allocatable };
  const capacity: NodeCapacity = {};
  const cpu = offered['cpu'];
  const memory = offered['memory'];
  const pods = offered['pods'];
  if (cpu !== undefined) capacity.milliCpu = quantityMilliValue(cpu);
  if (memory !== undefined) capacity.memoryBytes = quantityValue(memory);
  if (pods !== undefined) capacity.pods = quantityValue(pods);
  return capacity;
}

/** Pods that hold resources on their node: everything not finished. */
export function podHoldsResources(pod: Pod): boolean {
  return pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
}

export function sumRequests(pods: readonly Pod[], nonZeroDefaults = false): Resources {
  const total: Resources = { milliCpu: 0, memoryBytes: 0 };
  for (const pod of pods) {
    if (!podHoldsResources(pod)) continue;
    const r = podRequests(pod, nonZeroDefaults);
    total.milliCpu += r.milliCpu;
    total.memoryBytes += r.memoryBytes;
  }
  return total;
}
