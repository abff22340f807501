/**
 * The lab's state: what `cluster up` built (nodes, pods, daemons' pids, the control plane),
 * kept in /run/pontoon/<name>/state.json so `down`, `status`, `restart` and the tests find it
 * again; the names and addresses everything derives from; how to reach its apiserver.
 */
import { unmountUnder } from '../../lib/mounts.js';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PontoonError } from '../../lib/errors.js';
import { packageRoot } from '../paths.js';
import { type AgentsMode, onNode } from './agents.js';
import { DEFAULT_SUBNET_FILE } from '../../api/subnet-env.js';
import { type IpFamilyChoice, POD_NETWORK, POD_NETWORK_V6, POD_SUBNET_LENGTH_V6, usesIpv4, usesIpv6 } from './addressing.js';
import { type ControlPlaneAccess, type ControlPlaneState, readTokens } from './control-plane.js';
import { KubeClient } from '../../client/client.js';
import { type EtcdClusterState } from './etcd-cluster.js';
import { type BgpTopology, type IpipMode } from '../../bgp/node-agent.js';
import { IPIP_OVERHEAD } from '../../bgp/ipip/index.js';

export const DEFAULT_CLUSTER_NAME = 'pontoon';

export const STATE_ROOT = '/run/pontoon';
export { POD_NETWORK, SERVICE_NETWORK } from './addressing.js';

/** The control namespace's fabric address: etcd and the apiserver's pod-facing listener. */
export const CTL_IP = '198.18.0.2';

export const ETCD_IP = CTL_IP;

/** The apiserver's port in the control namespace (its --secure-port upstream). */
export const APISERVER_FABRIC_PORT = 6443;

export const BACKENDS = ['host-gw', 'vxlan', 'udp', 'bgp'] as const;

export type BackendName = (typeof BACKENDS)[number];

export const PROXY_CHOICES = ['nftables', 'iptables', 'none'] as const;

export type ProxyChoice = (typeof PROXY_CHOICES)[number];

/** `cluster up --cni`: kubelets exec every plugin per call, or run ours in a cni-server child. */
export type CniMode = 'exec' | 'helper';

export interface PodState {
  name: string;
  netns: string;
  containerId: string;
  ip: string;
  /** Dual-stack: the pod's IPv6 address. */
  ipv6?: string;
}

export interface NodeState {
  name: string;
  netns: string;
  rack: number;
  underlayIp: string;
  /** The node's IPv6 underlay address (ip family ipv6 or dual). */
  underlayIpv6?: string;
  dir: string;
  flanneldPid: number;
  kubeletPid?: number;
  proxyPid?: number;
  /** the BGP node agent (backend bgp) */
  bgpPid?: number;
  /** The primary family's pod subnet (IPv6 on an IPv6-only cluster). */
  subnet: string;
  /** Dual-stack: the IPv6 pod subnet. */
  subnetV6?: string;
  pods: PodState[];
  /** daemonset mode: the node's own "host filesystem" (its kubelet's --host-path-root). */
  hostRoot?: string;
}

export type SubnetStoreKind = 'kube' | 'etcd';

export interface ClusterState {
  name: string;
  backend: BackendName;
  racks: number;
  directRouting: boolean;
  stateDir: string;
  etcd: { netns: string; pid: number; endpoint: string };
  subnetStore: SubnetStoreKind;
  /** The service proxy mode every node runs (absent in state files of older labs: none). */
  proxy?: ProxyChoice;
  /**
   * backend bgp: route reflectors per rack (0: full mesh) and the IPIP mode; topology tor
   * (absent: mesh) adds the router namespace's speaker (its pid, config and socket).
   */
  bgp?: { routeReflectors: number; ipip: IpipMode; topology?: BgpTopology; routerPid?: number; routerConfig?: string; routerSocket?: string };
  controlPlane?: ControlPlaneState;
  fabric: string;
  router?: string;
  leaseTtlSeconds: number;
  /** Pod and Service address families (absent in older state files: ipv4). */
  ipFamily?: IpFamilyChoice;
  nodes: NodeState[];
  /** How the node agents run (absent in state files of older labs: process). */
  agents?: AgentsMode;
  /** Cluster DNS deployed (deploy/dns.yaml) and the kubelets pointing pods at it. */
  dns?: boolean;
  /** How kubelets run our CNI plugins: helper (a long-lived cni-server child) or exec; absent: exec. */
  cni?: CniMode;
  /** `--store etcd`: the apiserver's etcd members (etcd-cluster.ts); absent: SQLite. */
  etcdCluster?: EtcdClusterState;
}

export interface UpOptions {
  name: string;
  nodes: number;
  backend: BackendName;
  racks: number;
  podsPerNode: number;
  directRouting: boolean;
  leaseTtlSeconds: number;
  /** Start the apiserver, controllers, scheduler and a kubelet per node. */
  controlPlane: boolean;
  /** Where flanneld keeps leases; 'kube' needs the control plane. */
  subnetStore: SubnetStoreKind;
  /** The service proxy on every node ('none': no proxy); needs the control plane. */
  proxy: ProxyChoice;
  /** backend bgp: route reflectors per rack (0: full mesh; default 0) */
  routeReflectors?: number;
  /** backend bgp: always, cross-subnet (default with mesh) or never (default with tor) */
  ipip?: IpipMode;
  /** backend bgp: mesh (default: full mesh or route reflectors) or tor (each rack its own AS, eBGP with the router) */
  bgpTopology?: BgpTopology;
  /**
   * Extra environment for a node daemon, e.g. a PATH without iptables to see what a machine
   * lacking it does (the daemon then fails and `up` must say so).
   */
  daemonEnv?: Partial<Record<NodeDaemon, Record<string, string>>>;
  /** Node agents as DaemonSet pods (deploy/pontoon.yaml) or as processes the lab starts; default process. */
  agents?: AgentsMode;
  /** Deploy cluster DNS (deploy/dns.yaml) and give kubelets --cluster-dns; default: with daemonset agents. */
  dns?: boolean;
  /** How kubelets run our CNI plugins (default helper). */
  cni?: CniMode;
  /** Pod and Service address families: ipv4 (default), ipv6 or dual (IPv4 primary). */
  ipFamily?: IpFamilyChoice;
  /** The apiserver's store: sqlite (default, one file) or etcd (etcdMembers members, default 1). */
  store?: ApiserverStoreKind;
  etcdMembers?: number;
  /** Apiservers on the store (default 1; more need store etcd): apiservers.ts. */
  apiservers?: number;
  /** How nodes reach the apiserver: network (TLS on the fabric, default) or socket (its unix socket). */
  controlPlaneAccess?: ControlPlaneAccess;
  /** Progress lines go here (stdout for the CLI, nowhere in tests). */
  progress: (line: string) => void;
}

export const APISERVER_STORES = ['sqlite', 'etcd'] as const;

export type ApiserverStoreKind = (typeof APISERVER_STORES)[number];

export type NodeDaemon = 'flanneld' | 'kubelet' | 'proxy' | 'bgp';

/**
 * Removes a cluster's or node's state dir. Pods' volumes (tmpfs for secrets and tokens, bind
 * mounts) stay mounted under it when their kubelet is gone, so they are detached first: a
 * directory holding a mount point cannot be removed.
 */
export function removeStateDir(dir: string): void {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

export class ClusterError extends PontoonError {}

export function stateDirOf(name: string): string {
  return join(STATE_ROOT, name);
}

export function loadState(name: string): ClusterState {
  const path = join(stateDirOf(name), 'state.json');
  if (!existsSync(path)) throw new ClusterError(`no cluster "${name}" (no ${path}): run "pontoon cluster up --name ${name}" first`);
  return JSON.parse(readFileSync(path, 'utf8')) as ClusterState;
}

export function saveState(state: ClusterState): void {
  writeFileSync(join(state.stateDir, 'state.json'), JSON.stringify(state, null, 2));
}

export function cliPath(): string {
  return join(packageRoot(), 'dist', 'cli', 'pontoon.cjs');
}

export function networkConfigJson(backend: BackendName, directRouting: boolean, ipip: IpipMode = 'cross-subnet', ipFamily: IpFamilyChoice = 'ipv4'): string {
  // bgp: flanneld only leases subnets (flannel's alloc backend); the BGP agent routes, and
  // pods get IPIP's MTU when any packet may be wrapped.
  const backendConfig: Record<string, unknown> = backend === 'bgp' ? { Type: 'alloc', MTU: ipip === 'never' ? 1500 : 1500 - IPIP_OVERHEAD } : { Type: backend };
  if (backend === 'vxlan') Object.assign(backendConfig, { VNI: 1, Port: 8472, DirectRouting: directRouting });
  if (backend === 'udp') Object.assign(backendConfig, { Port: 8285 });
  // flannel's dual-stack fields; IPv6-only turns IPv4 off.
  const families = {
    ...(usesIpv4(ipFamily) ? { Network: POD_NETWORK, SubnetLen: 24 } : { EnableIPv4: false }),
    ...(usesIpv6(ipFamily) ? { EnableIPv6: true, IPv6Network: POD_NETWORK_V6, IPv6SubnetLen: POD_SUBNET_LENGTH_V6 } : {}),
  };
  return JSON.stringify({ ...families, Backend: backendConfig });
}

/** Pod sandboxes are `<cluster>-<node>-pod-...`, so `down` deletes them with the rest. */
/** Both the kubelet's sandboxes (<node>-pod-...) and the static pods (<node>-p<i>). */
export function labPodNetnsPrefix(clusterName: string, nodeName: string): string {
  return `${clusterName}-${nodeName}-p`;
}

export function podNetnsPrefix(clusterName: string, nodeName: string): string {
  return `${clusterName}-${nodeName}-pod-`;
}

/** The node's subnet.env, where its flanneld (process or pod) writes it. */
export function nodeSubnetFile(node: NodeState): string {
  return node.hostRoot ? onNode(node.hostRoot, DEFAULT_SUBNET_FILE) : join(node.dir, 'subnet.env');
}

export function findNode(state: ClusterState, name: string): NodeState {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new ClusterError(`no node "${name}" in cluster ${state.name}: it has ${state.nodes.map((n) => n.name).join(', ')}`);
  return node;
}

/** A client with the admin token over the apiserver's unix socket. */
export function adminClient(state: ClusterState): KubeClient {
  const cp = state.controlPlane;
  if (!cp) throw new ClusterError(`cluster ${state.name} runs no control plane`);
  return new KubeClient({ server: `unix:${cp.socket}`, token: readTokens(cp.tokensFile).get('admin') ?? '' });
}
