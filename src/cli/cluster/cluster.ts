/**
 * `pontoon cluster up|down|status|exec`: a multi-node cluster of network namespaces on one
 * machine. `up` builds the fabric, starts the Kubernetes control plane (apiserver,
 * controller-manager, scheduler; see control-plane.ts) and, in every node namespace, a
 * flanneld and a kubelet with their own state paths. Leases come from the apiserver
 * (node-ipam's podCIDR, flannel annotations) or, with `subnetStore: 'etcd'`, from etcd in a
 * control namespace; `controlPlane: false` keeps the flanneld-only lab of the overlay tests.
 * Static pods (`podsPerNode`) are networked by calling the CNI plugin directly. Everything it
 * makes is named `<name>-...`, and the state file under /run/pontoon/<name> is what `down`
 * and the tests use to find it again.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PontoonError } from '../../lib/errors.js';
import { run, startDetached } from '../../lib/exec.js';
import { formatIpNet, networkOf, parseIpNet } from '../../lib/ip.js';
import { deleteNetns, deleteNetnsWithPrefix, listNetns } from '../../lib/netns.js';
import { readSubnetEnv } from '../../flanneld/subnetenv.js';
import { cniDistDir, packageRoot } from '../paths.js';
import { formatTable } from '../table.js';
import { makeFabric, makeNamespace, makeRouter, netnsFile, plug, rackGateway, routeServiceNetwork } from './topology.js';
import {
  CONTROL_PLANE_COMPONENTS,
  type ControlPlaneComponent,
  type ControlPlaneState,
  kubeletArgs,
  logTail,
  pickApiserverPort,
  readTokens,
  startComponent,
  startControlPlane,
  writeNodeKubeconfig,
} from './control-plane.js';
import { KubeClient } from '../../client/client.js';
import { RESOURCE } from '../../api/resources.js';
import { ASN_ANNOTATION, BGP_TOPOLOGIES, type BgpTopology, DEFAULT_CLUSTER_ASN, DEFAULT_TOR_ASN, IPIP_MODES, type IpipMode, ROUTE_REFLECTOR_LABEL } from '../../bgp/node-agent.js';
import { stringify as toYaml } from 'yaml';
import { IPIP_OVERHEAD } from '../../bgp/ipip/index.js';

export const DEFAULT_CLUSTER_NAME = 'pontoon';
export const STATE_ROOT = '/run/pontoon';
export const POD_NETWORK = '10.244.0.0/16';
const ETCD_IP = '198.18.0.2';
const BACKENDS = ['host-gw', 'vxlan', 'udp', 'bgp'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const PROXY_CHOICES = ['nftables', 'iptables', 'none'] as const;
export type ProxyChoice = (typeof PROXY_CHOICES)[number];
/** The Service range the apiserver allocates cluster IPs from (its default). */
export const SERVICE_NETWORK = '10.96.0.0/12';

export interface PodState {
  name: string;
  netns: string;
  containerId: string;
  ip: string;
}

export interface NodeState {
  name: string;
  netns: string;
  rack: number;
  underlayIp: string;
  dir: string;
  flanneldPid: number;
  kubeletPid?: number;
  proxyPid?: number;
  /** the BGP node agent (backend bgp) */
  bgpPid?: number;
  subnet: string;
  pods: PodState[];
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
  nodes: NodeState[];
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
  /** Progress lines go here (stdout for the CLI, nowhere in tests). */
  progress: (line: string) => void;
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

/** Starts a long-running process inside a namespace, detached, output to `logFile`. */
function startDaemon(netns: string, argv: readonly string[], logFile: string, sharedMounts = false): number {
  // `ip netns exec` also gives the process a private mount namespace (to show the netns's
  // own /sys), where new mounts do not propagate back. A kubelet mounts every pod sandbox
  // it creates on /run/netns/<name>, and those must be visible to everyone else (CNI DEL
  // from a restarted kubelet, `cluster exec pod/...`), so it enters the network namespace
  // alone, with nsenter.
  const enter = sharedMounts ? ['nsenter', `--net=${netnsFile(netns)}`, '--'] : ['ip', 'netns', 'exec', netns];
  return startDetached([...enter, ...argv], logFile);
}


/**
 * True when `pid` runs and its command line contains `marker`. Checking the command line
 * keeps us from signalling an unrelated process that inherited a recycled pid.
 */
export function isAlive(pid: number, marker?: string): boolean {
  if (pid <= 0) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return marker === undefined || cmdline.includes(marker);
  } catch {
    return false;
  }
}


export function networkConfigJson(backend: BackendName, directRouting: boolean, ipip: IpipMode = 'cross-subnet'): string {
  // bgp: flanneld only leases subnets (flannel's alloc backend); the BGP agent routes, and
  // pods get IPIP's MTU when any packet may be wrapped.
  const backendConfig: Record<string, unknown> = backend === 'bgp' ? { Type: 'alloc', MTU: ipip === 'never' ? 1500 : 1500 - IPIP_OVERHEAD } : { Type: backend };
  if (backend === 'vxlan') Object.assign(backendConfig, { VNI: 1, Port: 8472, DirectRouting: directRouting });
  if (backend === 'udp') Object.assign(backendConfig, { Port: 8285 });
  return JSON.stringify({ Network: POD_NETWORK, SubnetLen: 24, Backend: backendConfig });
}

function flanneldArgs(state: ClusterState, node: NodeState): string[] {
  const store =
    state.subnetStore === 'kube'
      ? ['--kube-subnet-mgr', '--kubeconfig-file', join(node.dir, 'kubeconfig'), '--node-name', node.name, '--net-config-path', join(state.stateDir, 'net-conf.json')]
      : ['--etcd-endpoints', state.etcd.endpoint];
  return [
    process.execPath,
    cliPath(),
    'flanneld',
    ...store,
    '--iface',
    'eth0',
    '--subnet-file',
    join(node.dir, 'subnet.env'),
    '--ip-masq',
    '--subnet-lease-ttl',
    String(state.leaseTtlSeconds),
    '--subnet-lease-renew-margin',
    String(Math.max(1, Math.floor(state.leaseTtlSeconds / 3))),
    '--resync',
    '5',
  ];
}

/** (Re)starts a node's flanneld; returns its pid. */
export function startFlanneld(state: ClusterState, node: NodeState): number {
  return startDaemon(node.netns, flanneldArgs(state, node), join(node.dir, 'flanneld.log'));
}

/** (Re)starts a node's kubelet; returns its pid. */
export function startKubelet(state: ClusterState, node: NodeState): number {
  const args = kubeletArgs({
    cli: [process.execPath, cliPath()],
    kubeconfig: join(node.dir, 'kubeconfig'),
    nodeName: node.name,
    nodeIp: node.underlayIp,
    cniConfDir: join(node.dir, 'net.d'),
    rootDir: join(node.dir, 'kubelet'),
    netnsPrefix: podNetnsPrefix(state.name, node.name),
  });
  return startDaemon(node.netns, args, join(node.dir, 'kubelet.log'), true);
}

/** The node's service proxy, in the node's namespace, with the node's credentials. */
function proxyArgs(state: ClusterState, node: NodeState): string[] {
  return [process.execPath, cliPath(), 'proxy', '--kubeconfig', join(node.dir, 'kubeconfig'), '--node-name', node.name, '--mode', state.proxy ?? 'nftables', '--cluster-cidr', POD_NETWORK];
}

/** (Re)starts a node's service proxy; returns its pid. */
export function startProxy(state: ClusterState, node: NodeState): number {
  return startDaemon(node.netns, proxyArgs(state, node), join(node.dir, 'proxy.log'));
}

/** The node's BGP agent (backend bgp): peers, announcements and routes from Node objects. */
function bgpArgs(state: ClusterState, node: NodeState): string[] {
  const tor = state.bgp?.topology === 'tor' ? ['--topology', 'tor', '--tor-peer', rackGateway(node.rack), '--tor-asn', String(DEFAULT_TOR_ASN)] : [];
  return [process.execPath, cliPath(), 'bgp', 'node', '--kubeconfig', join(node.dir, 'kubeconfig'), '--node-name', node.name, '--ipip', state.bgp?.ipip ?? 'cross-subnet', '--control-socket', bgpSocket(node), '--ipip-socket', join(node.dir, 'ipip.sock'), '--hold-time', '9', ...tor];
}

/** Topology tor: rack r is AS 64512 + r. */
export const rackAsn = (rack: number): number => DEFAULT_CLUSTER_ASN + rack;

/**
 * The router namespace's speaker (topology tor) as `pontoon bgp --config` YAML: AS 65000, one
 * process acting for every rack. It does not listen (one listen address could not serve every
 * rack's gateway address); it connects to each node from the rack's gateway address, which is
 * the address the node expects, and installs the nodes' blocks into the router's kernel.
 */
export function routerBgpConfig(state: ClusterState): string {
  return toYaml({
    localAsn: DEFAULT_TOR_ASN,
    routerId: rackGateway(0),
    holdTime: 9,
    controlSocket: routerBgpSocket(state),
    metricsAddress: '',
    gracefulRestart: { enabled: true, restartTime: 120 },
    kernelSync: true,
    // One NEXT_HOP for every rack; a node routes it via its own rack's gateway (node-agent.ts).
    nextHops: { ipv4: rackGateway(0) },
    announce: [],
    peers: state.nodes.map((n) => ({ address: n.underlayIp, asn: rackAsn(n.rack), port: 179, passive: false, description: `tor rack ${n.rack} ${n.name}` })),
  });
}

export const routerBgpSocket = (state: ClusterState): string => join(state.stateDir, 'router-bgp.sock');

/** (Re)writes the router speaker's configuration and (re)starts it; returns its pid. */
export function startRouterBgp(state: ClusterState): number {
  if (!state.router) throw new ClusterError('topology tor needs the router namespace');
  const config = join(state.stateDir, 'router-bgp.yaml');
  writeFileSync(config, routerBgpConfig(state));
  return startDaemon(state.router, [process.execPath, cliPath(), 'bgp', '--config', config], join(state.stateDir, 'router-bgp.log'));
}

export const bgpSocket = (node: NodeState): string => join(node.dir, 'bgp.sock');

/** (Re)starts a node's BGP agent; returns its pid. */
export function startBgp(state: ClusterState, node: NodeState): number {
  return startDaemon(node.netns, bgpArgs(state, node), join(node.dir, 'bgp.log'));
}

const BGP_MARKER = 'bgp';

/** Peers of a node's agent that are Established, as `established/configured`, or why not. */
function bgpPeers(node: NodeState): string {
  return speakerPeers(node.bgpPid, bgpSocket(node));
}

function speakerPeers(pid: number | undefined, socket: string): string {
  if (pid === undefined) return '-';
  if (!isAlive(pid, BGP_MARKER)) return 'DOWN';
  const result = spawnSync(process.execPath, [cliPath(), 'bgp', 'status', '--socket', socket, '--json'], { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0) return 'starting';
  const status = JSON.parse(result.stdout) as { peers: { state: string }[] };
  return `${status.peers.filter((p) => p.state === 'Established').length}/${status.peers.length} peers`;
}

/** What a proxy's command line contains (its subcommand word), to tell it from a recycled pid. */
const PROXY_MARKER = 'proxy';

const runsProxy = (state: ClusterState): boolean => state.controlPlane !== undefined && state.proxy !== undefined && state.proxy !== 'none';

/** Pod sandboxes are `<cluster>-<node>-pod-...`, so `down` deletes them with the rest. */
export function podNetnsPrefix(clusterName: string, nodeName: string): string {
  return `${clusterName}-${nodeName}-pod-`;
}

/** SIGTERM, then SIGKILL after 3 s, for a process whose command line contains `marker`. */
export async function stopProcess(pid: number, marker: string): Promise<void> {
  if (!isAlive(pid, marker)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 30 && isAlive(pid, marker); i++) await sleep(100);
  if (isAlive(pid, marker)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 20 && isAlive(pid, marker); i++) await sleep(50);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined, explain: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new ClusterError(`timed out waiting for ${what}\n${explain()}`);
    await sleep(100);
  }
}

export function pontoonNetwork(node: NodeState): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: 'pontoon',
    type: 'pontoon-flannel',
    subnetFile: join(node.dir, 'subnet.env'),
    dataDir: join(node.dir, 'flannel'),
    delegate: { bridge: 'cni0', isDefaultGateway: true, hairpinMode: true, ipam: { dataDir: join(node.dir, 'ipam') } },
  };
}

/** Runs a CNI verb of pontoon-flannel for a pod, inside its node. */
export function podCni(node: NodeState, command: 'ADD' | 'DEL', pod: { netns: string; containerId: string }): string {
  const plugin = join(cniDistDir(), 'pontoon-flannel');
  const result = spawnSync('ip', ['netns', 'exec', node.netns, plugin], {
    input: JSON.stringify(pontoonNetwork(node)),
    encoding: 'utf8',
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: pod.containerId, CNI_NETNS: netnsFile(pod.netns), CNI_IFNAME: 'eth0', CNI_PATH: cniDistDir() },
  });
  if (result.status !== 0) throw new ClusterError(`CNI ${command} of ${pod.netns} on ${node.name} failed: ${result.stdout}${result.stderr}`);
  return result.stdout;
}

export async function addPod(state: ClusterState, node: NodeState, index: number): Promise<PodState> {
  const name = `${node.name}-p${index}`;
  const netns = makeNamespace(`${state.name}-${name}`);
  const containerId = `${state.name}-${name}`;
  const result = JSON.parse(podCni(node, 'ADD', { netns, containerId })) as { ips: { address: string }[] };
  const ip = result.ips[0]?.address.split('/')[0] ?? '';
  const pod = { name, netns, containerId, ip };
  node.pods.push(pod);
  saveState(state);
  return pod;
}

export async function clusterUp(options: UpOptions): Promise<ClusterState> {
  if (!BACKENDS.includes(options.backend)) throw new ClusterError(`--backend must be one of ${BACKENDS.join(', ')}`);
  if (options.nodes < 1 || options.nodes > 200) throw new ClusterError('--nodes must be between 1 and 200');
  if (options.racks < 1 || options.racks > 16) throw new ClusterError('--racks must be between 1 and 16');
  if (options.subnetStore === 'kube' && !options.controlPlane) throw new ClusterError('the kube subnet store needs the control plane');
  if (options.backend === 'bgp' && !options.controlPlane) throw new ClusterError('--backend bgp takes its peers from Node objects: it needs the control plane');
  if (options.ipip !== undefined && !IPIP_MODES.includes(options.ipip)) throw new ClusterError(`--ipip must be one of ${IPIP_MODES.join(', ')}, got "${options.ipip}"`);
  if (options.bgpTopology !== undefined && !BGP_TOPOLOGIES.includes(options.bgpTopology)) throw new ClusterError(`--bgp-topology must be one of ${BGP_TOPOLOGIES.join(', ')}, got "${options.bgpTopology}"`);
  const tor = options.backend === 'bgp' && options.bgpTopology === 'tor';
  if (options.bgpTopology === 'tor' && options.backend !== 'bgp') throw new ClusterError('--bgp-topology tor needs --backend bgp');
  // The router routes plainly between racks; IPIP towards it would wrap nothing useful.
  if (tor && options.ipip !== undefined && options.ipip !== 'never') throw new ClusterError(`--bgp-topology tor routes through the rack router without IPIP: --ipip must be never, got "${options.ipip}"`);
  if (tor && (options.routeReflectors ?? 0) > 0) throw new ClusterError('--bgp-topology tor has no route reflectors (the rack router is every node’s only peer)');
  const ipip: IpipMode = options.ipip ?? (tor ? 'never' : 'cross-subnet');
  if ((options.routeReflectors ?? 0) < 0 || (options.routeReflectors ?? 0) > 8) throw new ClusterError('--route-reflectors must be between 0 and 8');
  if (!PROXY_CHOICES.includes(options.proxy)) throw new ClusterError(`--proxy must be one of ${PROXY_CHOICES.join(', ')}, got "${options.proxy}"`);

  const stateDir = stateDirOf(options.name);
  if (existsSync(join(stateDir, 'state.json')) || listNetns().some((n) => n.startsWith(`${options.name}-`))) {
    throw new ClusterError(`cluster "${options.name}" already exists: run "pontoon cluster down --name ${options.name}" first`);
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const step = (text: string, started: number): void => options.progress(`✔ ${text} (${Date.now() - started} ms)`);
  const ns = (suffix: string): string => `${options.name}-${suffix}`;
  const state: ClusterState = {
    name: options.name,
    backend: options.backend,
    racks: options.racks,
    directRouting: options.directRouting,
    stateDir,
    etcd: { netns: ns('ctl'), pid: 0, endpoint: `http://${ETCD_IP}:2379` },
    subnetStore: options.subnetStore,
    proxy: options.controlPlane ? options.proxy : 'none',
    ...(options.backend === 'bgp' ? { bgp: { routeReflectors: options.routeReflectors ?? 0, ipip, ...(tor ? { topology: 'tor' as const } : {}) } } : {}),
    fabric: ns('fabric'),
    leaseTtlSeconds: options.leaseTtlSeconds,
    nodes: [],
  };
  saveState(state);
  // tor: even a single rack has its router (the nodes' only BGP peer and default gateway).
  const routed = options.racks > 1 || tor;
  const gatewayFor = (rack: number): string | undefined => (routed ? rackGateway(rack) : undefined);

  let started = Date.now();
  makeNamespace(state.fabric);
  makeFabric(state.fabric, options.racks);
  if (routed) {
    state.router = ns('router');
    makeRouter(state.fabric, state.router, options.racks);
  }
  step(`fabric: ${options.racks} rack(s) 198.18.0.0/24${options.racks > 1 ? ` … 198.18.${options.racks - 1}.0/24 joined by a router` : ''}`, started);

  if (options.subnetStore === 'etcd') await startEtcd(state, options, gatewayFor);
  if (options.controlPlane) {
    started = Date.now();
    const nodeNames = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    state.controlPlane = await startControlPlane({
      clusterName: options.name,
      stateDir,
      cli: [process.execPath, cliPath()],
      nodeNames,
      store: `sqlite:${join(stateDir, 'apiserver.db')}`,
      clusterCidr: POD_NETWORK,
      nodeCidrMaskSize: 24,
      // The default cluster gets the well-known 6443 when free; others (tests) any free port.
      port: await pickApiserverPort(options.name === DEFAULT_CLUSTER_NAME ? 6443 : 0),
    });
    writeFileSync(join(stateDir, 'net-conf.json'), networkConfigJson(options.backend, options.directRouting, ipip));
    saveState(state);
    step(`control plane: apiserver ${state.controlPlane.url} (SQLite store), controller-manager, scheduler`, started);
  }

  started = Date.now();
  for (let i = 1; i <= options.nodes; i++) {
    const rack = (i - 1) % options.racks;
    const name = `n${i}`;
    const node: NodeState = {
      name,
      netns: makeNamespace(ns(name), true),
      rack,
      underlayIp: `198.18.${rack}.${10 + i}`,
      dir: join(stateDir, name),
      flanneldPid: 0,
      subnet: '',
      pods: [],
    };
    mkdirSync(join(node.dir, 'net.d'), { recursive: true });
    plug(state.fabric, rack, name, node.netns, 'eth0', parseIpNet(`${node.underlayIp}/24`), gatewayFor(rack));
    // A real node has a default route; a lab node of a single rack has none, and the kernel
    // would refuse a cluster-IP packet (no route) before the proxy's DNAT ever saw it.
    if (!gatewayFor(rack)) routeServiceNetwork(node.netns, SERVICE_NETWORK);
    const conflist = JSON.stringify({ cniVersion: '1.1.0', name: 'pontoon', plugins: [pontoonNetwork(node)] }, null, 2);
    writeFileSync(join(node.dir, 'net.d', '10-pontoon.conflist'), conflist);
    state.nodes.push(node);
    if (state.controlPlane) {
      writeNodeKubeconfig(state.controlPlane, state.name, node.name, join(node.dir, 'kubeconfig'));
      node.kubeletPid = startKubelet(state, node);
      if (runsProxy(state)) node.proxyPid = startProxy(state, node);
    }
    node.flanneldPid = startFlanneld(state, node);
    saveState(state);
  }
  for (const node of state.nodes) {
    const env = await waitFor(
      `flanneld on ${node.name} to write subnet.env`,
      30_000,
      () => (existsSync(join(node.dir, 'subnet.env')) ? readSubnetEnv(join(node.dir, 'subnet.env')) : undefined),
      () => `flanneld log (${join(node.dir, 'flanneld.log')}):\n${logTail(join(node.dir, 'flanneld.log'))}\nkubelet log:\n${logTail(join(node.dir, 'kubelet.log'))}`,
    );
    node.subnet = formatIpNet(networkOf(env.subnet));
  }
  if (state.bgp) await startBgpAgents(state);
  saveState(state);
  const bgpShape = state.bgp?.topology === 'tor' ? `eBGP with the rack router, AS ${DEFAULT_TOR_ASN}; rack r is AS ${DEFAULT_CLUSTER_ASN}+r` : state.bgp?.routeReflectors ? `${state.bgp.routeReflectors} route reflector(s) per rack` : 'full mesh';
  const daemons = [...(state.controlPlane ? ['kubelet'] : []), ...(runsProxy(state) ? [`proxy (${state.proxy})`] : []), `flanneld (${options.subnetStore} leases)`, ...(state.bgp ? [`bgp (${bgpShape}, ipip ${state.bgp.ipip})`] : [])];
  step(`${options.nodes} node(s), ${daemons.join(', ')} running in each`, started);

  started = Date.now();
  for (const node of state.nodes) {
    for (let p = 1; p <= options.podsPerNode; p++) await addPod(state, node, p);
  }
  if (options.podsPerNode > 0) step(`${options.nodes * options.podsPerNode} static pod(s) networked through pontoon-flannel → pontoon-bridge`, started);
  return state;
}

/**
 * Labels the first K nodes of each rack as route reflectors (Calico picks them by a node
 * label too), then starts every node's agent; the agents read the labels from the Nodes.
 */
async function startBgpAgents(state: ClusterState): Promise<void> {
  const k = state.bgp?.routeReflectors ?? 0;
  const client = adminClient(state);
  if (state.bgp?.topology === 'tor') {
    // Each rack its own AS, read by the agents from their Node before they start.
    for (const node of state.nodes) await client.patch(RESOURCE.nodes, node.name, undefined, { metadata: { annotations: { [ASN_ANNOTATION]: String(rackAsn(node.rack)) } } }, 'merge');
    state.bgp.routerConfig = join(state.stateDir, 'router-bgp.yaml');
    state.bgp.routerSocket = routerBgpSocket(state);
    state.bgp.routerPid = startRouterBgp(state);
    saveState(state);
  }
  const perRack = new Map<number, number>();
  for (const node of state.nodes) {
    const count = perRack.get(node.rack) ?? 0;
    if (count >= k) continue;
    perRack.set(node.rack, count + 1);
    await client.patch(RESOURCE.nodes, node.name, undefined, { metadata: { labels: { [ROUTE_REFLECTOR_LABEL]: 'true' } } }, 'merge');
  }
  for (const node of state.nodes) node.bgpPid = startBgp(state, node);
}

async function startEtcd(state: ClusterState, options: UpOptions, gatewayFor: (rack: number) => string | undefined): Promise<void> {
  const started = Date.now();
  makeNamespace(state.etcd.netns);
  plug(state.fabric, 0, 'ctl', state.etcd.netns, 'eth0', parseIpNet(`${ETCD_IP}/24`), gatewayFor(0));
  const etcdDir = join(state.stateDir, 'etcd');
  state.etcd.pid = startDaemon(
    state.etcd.netns,
    [
      'etcd',
      '--name', 'pontoon',
      '--data-dir', etcdDir,
      '--listen-client-urls', `http://${ETCD_IP}:2379,http://127.0.0.1:2379`,
      '--advertise-client-urls', `http://${ETCD_IP}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380',
      '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'pontoon=http://127.0.0.1:2380',
      '--log-level', 'warn',
    ],
    join(state.stateDir, 'etcd.log'),
  );
  saveState(state);
  run(process.execPath, [cliPath(), 'network', 'config', '--etcd-endpoints', 'http://127.0.0.1:2379', '--wait', '20', '--set', networkConfigJson(options.backend, options.directRouting)], { netns: state.etcd.netns });
  options.progress(`✔ etcd at ${state.etcd.endpoint}, network ${POD_NETWORK}, backend ${options.backend} (${Date.now() - started} ms)`);
}

export function summary(state: ClusterState): string {
  const rows = state.nodes.map((node) => [
    node.name,
    String(node.rack),
    node.underlayIp,
    node.subnet,
    state.backend + (state.directRouting ? '+direct' : '') + (state.bgp ? `/ipip ${state.bgp.ipip}` : ''),
    isAlive(node.flanneldPid, 'flanneld') ? 'running' : 'DOWN',
    node.kubeletPid === undefined ? '-' : isAlive(node.kubeletPid, 'kubelet') ? 'running' : 'DOWN',
    node.proxyPid === undefined ? '-' : `${state.proxy ?? '?'} ${isAlive(node.proxyPid, PROXY_MARKER) ? 'running' : 'DOWN'}`,
    ...(state.bgp ? [bgpPeers(node)] : []),
    node.pods.map((p) => `${p.name}=${p.ip}`).join(' ') || '-',
  ]);
  const table = formatTable(['NODE', 'RACK', 'UNDERLAY IP', 'SUBNET', 'BACKEND', 'FLANNELD', 'KUBELET', 'PROXY', ...(state.bgp ? ['BGP'] : []), 'STATIC PODS'], rows);
  const router = state.bgp?.topology === 'tor' && state.router ? `router ${state.router}: bgp AS ${DEFAULT_TOR_ASN} ${speakerPeers(state.bgp.routerPid, routerBgpSocket(state))}\n` : '';
  const cp = state.controlPlane;
  if (!cp) return router ? `${router}\n${table}` : table;
  const daemon = (pid: number, marker: string): string => `${marker} ${isAlive(pid, marker) ? 'running' : 'DOWN'}`;
  const line = CONTROL_PLANE_COMPONENTS.map((component) => daemon(cp.pids[component], component)).join(', ');
  return `control plane: ${cp.url} — ${line}\n${router}\n${table}`;
}

export function findNode(state: ClusterState, name: string): NodeState {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new ClusterError(`no node "${name}" in cluster ${state.name}: it has ${state.nodes.map((n) => n.name).join(', ')}`);
  return node;
}

/**
 * Stops and starts one daemon with the same command line: a control-plane component, or a
 * node's kubelet or flanneld. Pods, routes and leases stay in place meanwhile; what the
 * daemon missed it learns again from the apiserver (informers re-list and resume).
 */
export async function restartComponent(state: ClusterState, component: string, nodeName?: string): Promise<number> {
  if ((CONTROL_PLANE_COMPONENTS as readonly string[]).includes(component)) {
    const cp = state.controlPlane;
    if (!cp) throw new ClusterError(`cluster ${state.name} runs no control plane`);
    const which = component as ControlPlaneComponent;
    await stopProcess(cp.pids[which], component);
    const pid = await startComponent(cp, state.stateDir, which);
    saveState(state);
    return pid;
  }
  if (component !== 'kubelet' && component !== 'flanneld' && component !== 'proxy' && component !== 'bgp') {
    throw new ClusterError(`cannot restart "${component}": want ${[...CONTROL_PLANE_COMPONENTS, 'kubelet', 'flanneld', 'proxy', 'bgp'].join(', ')}`);
  }
  if (!nodeName) throw new ClusterError(`restarting ${component} needs a node name`);
  const node = findNode(state, nodeName);
  if (component === 'flanneld') {
    await restartFlanneld(state, node);
    return node.flanneldPid;
  }
  if (component === 'bgp') {
    if (node.bgpPid === undefined) throw new ClusterError(`node ${nodeName} runs no BGP agent (cluster up --backend bgp)`);
    // SIGTERM: the agent leaves without a Cease and keeps its routes (graceful restart).
    await stopProcess(node.bgpPid, BGP_MARKER);
    node.bgpPid = startBgp(state, node);
    saveState(state);
    return node.bgpPid;
  }
  if (component === 'proxy') {
    if (node.proxyPid === undefined) throw new ClusterError(`node ${nodeName} runs no service proxy (cluster up --proxy none)`);
    await stopProcess(node.proxyPid, PROXY_MARKER);
    node.proxyPid = startProxy(state, node);
    saveState(state);
    return node.proxyPid;
  }
  if (node.kubeletPid === undefined) throw new ClusterError(`node ${nodeName} runs no kubelet`);
  await stopProcess(node.kubeletPid, 'kubelet');
  node.kubeletPid = startKubelet(state, node);
  saveState(state);
  return node.kubeletPid;
}

/** Stops and starts a node's flanneld; the kernel data plane stays up meanwhile. */
export async function restartFlanneld(state: ClusterState, node: NodeState): Promise<void> {
  await stopProcess(node.flanneldPid, 'flanneld');
  node.flanneldPid = startFlanneld(state, node);
  saveState(state);
}

/**
 * Takes a node out for good, as deleting a Node does in Kubernetes: stop its flanneld, delete
 * its lease (the other nodes' watches then drop its routes), delete its namespaces.
 */
export async function removeNode(state: ClusterState, node: NodeState): Promise<void> {
  await stopProcess(node.flanneldPid, 'flanneld');
  if (node.kubeletPid !== undefined) await stopProcess(node.kubeletPid, 'kubelet');
  if (node.proxyPid !== undefined) await stopProcess(node.proxyPid, PROXY_MARKER);
  if (node.bgpPid !== undefined) await stopProcess(node.bgpPid, BGP_MARKER);
  // The IPIP tunnel process outlives its agent on purpose; a removed node takes it along.
  await stopProcessesMentioning(`${node.dir}/`);
  // The subnet it holds now: node-ipam may have re-assigned it since state.json was written.
  if (existsSync(join(node.dir, 'subnet.env'))) node.subnet = formatIpNet(networkOf(readSubnetEnv(join(node.dir, 'subnet.env')).subnet));
  if (state.subnetStore === 'etcd') {
    run(process.execPath, [cliPath(), 'network', 'remove-lease', '--etcd-endpoints', 'http://127.0.0.1:2379', node.subnet], { netns: state.etcd.netns });
  }
  // With the kube store the Node object is the lease: deleting it drops the routes elsewhere
  // (and pod-gc removes the Pods that were bound to it).
  if (state.controlPlane) await adminClient(state).delete(RESOURCE.nodes, node.name);
  const failures = deleteNetnsWithPrefix(podNetnsPrefix(state.name, node.name), { killProcesses: true });
  if (failures.length > 0) throw namespaceFailures(failures);
  for (const pod of node.pods) deleteNetns(pod.netns);
  deleteNetns(node.netns);
  rmSync(node.dir, { recursive: true, force: true });
  state.nodes = state.nodes.filter((n) => n !== node);
  saveState(state);
}

/** SIGTERM, then SIGKILL, every process whose command line contains `marker`. */
async function stopProcessesMentioning(marker: string): Promise<void> {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  await Promise.all(pids.map((pid) => stopProcess(pid, marker)));
}

/** A client with the admin token over the apiserver's unix socket. */
export function adminClient(state: ClusterState): KubeClient {
  const cp = state.controlPlane;
  if (!cp) throw new ClusterError(`cluster ${state.name} runs no control plane`);
  return new KubeClient({ server: `unix:${cp.socket}`, token: readTokens(cp.tokensFile).get('admin') ?? '' });
}

/** Stops every process and deletes every namespace and file of the cluster. */
export async function clusterDown(name: string): Promise<void> {
  let state: ClusterState | undefined;
  try {
    state = loadState(name);
  } catch {
    state = undefined;
  }
  if (state) {
    const cp = state.controlPlane;
    await Promise.all([
      ...state.nodes.map((n) => stopProcess(n.flanneldPid, 'flanneld')),
      ...state.nodes.map((n) => (n.kubeletPid === undefined ? undefined : stopProcess(n.kubeletPid, 'kubelet'))),
      ...state.nodes.map((n) => (n.proxyPid === undefined ? undefined : stopProcess(n.proxyPid, PROXY_MARKER))),
      ...state.nodes.map((n) => (n.bgpPid === undefined ? undefined : stopProcess(n.bgpPid, BGP_MARKER))),
      ...(state.bgp?.routerPid === undefined ? [] : [stopProcess(state.bgp.routerPid, BGP_MARKER)]),
      stopProcess(state.etcd.pid, 'etcd'),
      ...(cp ? [stopProcess(cp.pids.scheduler, 'scheduler'), stopProcess(cp.pids['controller-manager'], 'controller-manager')] : []),
    ]);
    // Last, so the kubelets could still report while they stopped.
    if (cp) await stopProcess(cp.pids.apiserver, 'apiserver');
  }
  // Daemons someone restarted by hand have pids state.json does not know; they all name a
  // path under the state dir on their command line.
  await stopProcessesMentioning(`${stateDirOf(name)}/`);
  // Containers outlive their kubelet (as in Kubernetes); a lab going away takes them along.
  const failures = deleteNetnsWithPrefix(`${name}-`, { killProcesses: true });
  rmSync(stateDirOf(name), { recursive: true, force: true });
  if (failures.length > 0) throw namespaceFailures(failures);
}

function namespaceFailures(failures: readonly { name: string; error: unknown }[]): ClusterError {
  return new ClusterError(`could not delete namespace(s) ${failures.map((f) => `${f.name}: ${String(f.error)}`).join('; ')}`);
}
