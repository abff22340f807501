/** Small builders for scheduler unit tests. */
import type { Node, Pod, Taint } from '../../src/api/types.js';

export function node(
  name: string,
  options: { cpu?: string; memory?: string; pods?: number; ready?: boolean; labels?: Record<string, string>; taints?: Taint[]; unschedulable?: boolean } = {},
): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...options.labels } },
    spec: { taints: options.taints ?? [], unschedulable: options.unschedulable ?? false },
    status: {
      allocatable: { cpu: options.cpu ?? '4', memory: options.memory ?? '8Gi', pods: String(options.pods ?? 110) },
      conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
    },
  };
}

export function pod(
  name: string,
  options: {
    cpu?: string;
    memory?: string;
    nodeName?: string;
    nodeSelector?: Record<string, string>;
    tolerations?: Pod['spec']['tolerations'];
    ownerUid?: string;
    phase?: 'Pending' | 'Running' | 'Succeeded';
  } = {},
): Pod {
  const requests: Record<string, string> = {};
  if (options.cpu) requests['cpu'] = options.cpu;
  if (options.memory) requests['memory'] = options.memory;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      uid: `uid-${name}`,
      ...(options.ownerUid ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: options.ownerUid, controller: true }] } : {}),
    },
    spec: {
      containers: [{ name: 'c', image: 'busybox', resources: { requests } }],
      ...(options.nodeName ? { nodeName: options.nodeName } : {}),
      ...(options.nodeSelector ? { nodeSelector: options.nodeSelector } : {}),
      ...(options.tolerations ? { tolerations: options.tolerations } : {}),
    },
    status: { phase: options.phase ?? 'Pending' },
  };
}

export function byNode(pods: Pod[]): Map<string, Pod[]> {
  const map = new Map<string, Pod[]>();
  for (const p of pods) {
    const name = p.spec.nodeName;
    if (!name) continue;
    map.set(name, [...(map.get(name) ?? []), p]);
  }
  return map;
}

/** A deterministic generator for tie breaks. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
