/**
 * `pontoon cluster pods`: where each Pod's packets go, from the kernel's point of view. For
 * every Pod it follows the pod's `eth0` to its veth peer in the node namespace (IFLA_LINK of a
 * veth is the peer's index) and that peer's bridge, and shows the node route that carries
 * the pod's subnet to the other nodes, so a "pod can't reach pod" question starts from facts.
 */
import { RESOURCE } from '../../api/resources.js';
import type { Pod } from '../../api/types.js';
import { sandboxName } from '../../kubelet/sandbox.js';
import { describeError } from '../../lib/errors.js';
import { listNetns, openRtnl } from '../../lib/netns.js';
import { netnsFile } from './topology.js';
import { adminClient, type ClusterState, podNetnsPrefix } from './state.js';

export interface PodPath {
  pod: string;
  node: string;
  ip: string;
  phase: string;
  sandbox: string;
  podLink: string;
  hostVeth: string;
  bridge: string;
}

/** Each Pod of the cluster with its sandbox, veth pair and bridge ("-" where absent). */
export async function podPaths(state: ClusterState, namespace?: string): Promise<PodPath[]> {
  const pods = await adminClient(state).list<Pod>(RESOURCE.pods, namespace);
  const existing = new Set(listNetns());
  return pods.items.map((pod) => {
    const node = state.nodes.find((n) => n.name === pod.spec.nodeName);
    const path: PodPath = {
      pod: `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`,
      node: pod.spec.nodeName ?? '<unscheduled>',
      ip: pod.status?.podIP ?? '-',
      phase: pod.status?.phase ?? '-',
      sandbox: '-',
      podLink: '-',
      hostVeth: '-',
      bridge: '-',
    };
    if (!node || pod.spec.hostNetwork) {
      if (pod.spec.hostNetwork) path.sandbox = `${node?.netns ?? '-'} (hostNetwork)`;
      return path;
    }
    const sandbox = sandboxName(podNetnsPrefix(state.name, node.name), pod.metadata.uid ?? '');
    if (!existing.has(sandbox)) return path;
    path.sandbox = sandbox;
    try {
      followVeth(path, sandbox, node.netns);
    } catch (err) {
      path.podLink = `? (${describeError(err)})`;
    }
    return path;
  });
}

function followVeth(path: PodPath, sandbox: string, nodeNetns: string): void {
  const inPod = openRtnl(netnsFile(sandbox));
  let peerIndex: number | undefined;
  try {
    const eth0 = inPod.linkByName('eth0');
    if (!eth0) return;
    path.podLink = `eth0 (${eth0.mac ?? '?'}, mtu ${eth0.mtu})`;
    peerIndex = eth0.parentIndex;
  } finally {
    inPod.close();
  }
  if (peerIndex === undefined) return;
  const inNode = openRtnl(netnsFile(nodeNetns));
  try {
    const veth = inNode.linkByIndex(peerIndex);
    if (!veth) return;
    path.hostVeth = veth.name;
    const bridge = veth.masterIndex === undefined ? undefined : inNode.linkByIndex(veth.masterIndex);
    path.bridge = bridge?.name ?? '-';
  } finally {
    inNode.close();
  }
}
