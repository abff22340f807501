/** `cluster up` / `cluster status` output: the cluster as one table. */
import { existsSync } from 'node:fs';
import { formatTable } from '../table.js';
import { onNode } from './agents.js';
import { CONTROL_PLANE_COMPONENTS } from './control-plane.js';
import { DEFAULT_TOR_ASN } from '../../bgp/node-agent.js';
import { type ClusterState } from './state.js';
import { isAlive, routerBgpSocket, bgpPeers, speakerPeers, BGP_POD_SOCKET, socketPeers, PROXY_MARKER, runsProxy } from './supervision.js';

/**
 * The cluster as a table. In daemonset mode the agent columns come from the agents' pods
 * (`agentPods`, from daemonset-mode.ts's agentStatus), in process mode from their pids.
 */
export function summary(state: ClusterState, agentPods?: ReadonlyMap<string, Record<'flanneld' | 'proxy' | 'bgp', string>>): string {
  const rows = state.nodes.map((node) => [
    node.name,
    String(node.rack),
    node.underlayIpv6 ? `${node.underlayIp} ${node.underlayIpv6}` : node.underlayIp,
    node.subnetV6 ? `${node.subnet} ${node.subnetV6}` : node.subnet,
    state.backend + (state.directRouting ? '+direct' : '') + (state.bgp ? `/ipip ${state.bgp.ipip}` : ''),
    agentPods ? `pod ${agentPods.get(node.name)?.flanneld ?? '?'}` : isAlive(node.flanneldPid, 'flanneld') ? 'running' : 'DOWN',
    node.kubeletPid === undefined ? '-' : isAlive(node.kubeletPid, 'kubelet') ? 'running' : 'DOWN',
    agentPods ? (runsProxy(state) ? `${state.proxy ?? '?'} pod ${agentPods.get(node.name)?.proxy ?? '?'}` : '-') : node.proxyPid === undefined ? '-' : `${state.proxy ?? '?'} ${isAlive(node.proxyPid, PROXY_MARKER) ? 'running' : 'DOWN'}`,
    ...(state.bgp ? [agentPods ? `pod ${agentPods.get(node.name)?.bgp ?? '?'}${node.hostRoot && existsSync(onNode(node.hostRoot, BGP_POD_SOCKET)) ? `, ${socketPeers(onNode(node.hostRoot, BGP_POD_SOCKET))}` : ''}` : bgpPeers(node)] : []),
    node.pods.map((p) => `${p.name}=${p.ip}${p.ipv6 ? `,${p.ipv6}` : ''}`).join(' ') || '-',
  ]);
  const table = formatTable(['NODE', 'RACK', 'UNDERLAY IP', 'SUBNET', 'BACKEND', 'FLANNELD', 'KUBELET', 'PROXY', ...(state.bgp ? ['BGP'] : []), 'STATIC PODS'], rows);
  const router = state.bgp?.topology === 'tor' && state.router ? `router ${state.router}: bgp AS ${DEFAULT_TOR_ASN} ${speakerPeers(state.bgp.routerPid, routerBgpSocket(state))}\n` : '';
  const cp = state.controlPlane;
  if (!cp) return router ? `${router}\n${table}` : table;
  const daemon = (pid: number, marker: string): string => `${marker} ${isAlive(pid, marker) ? 'running' : 'DOWN'}`;
  const line = CONTROL_PLANE_COMPONENTS.map((component) => daemon(cp.pids[component], component)).join(', ');
  const replicas = (cp.replicas ?? []).map((r) => `\n  apiserver-${r.index} ${r.url}: ${isAlive(r.pid, 'apiserver') ? 'running' : 'DOWN'}`).join('');
  const etcd = state.etcdCluster ? `\netcd: ${state.etcdCluster.members.map((m) => `${m.name} ${m.ip} ${isAlive(m.pid, 'etcd') ? 'running' : 'DOWN'}`).join(', ')}` : '';
  return `control plane: ${cp.url} — ${line}${replicas}${etcd}\n${router}\n${table}`;
}
