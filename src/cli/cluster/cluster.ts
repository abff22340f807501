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
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.js';
import { formatIpNet, networkOf, parseIpNet } from '../../lib/ip.js';
import { deleteNetns, deleteNetnsWithPrefix, listNetns } from '../../lib/netns.js';
import { readSubnetEnv } from '../../api/subnet-env.js';
import { cniDistDir } from '../paths.js';
import { waitHealthy } from './health.js';
import { AGENTS_MODES, deployFile, nodeHostRoot } from './agents.js';
import { deployAgents, deployDns } from './daemonset-mode.js';
import { unplug } from './unplug.js';
import { makeFabric, makeNamespace, makeRouter, netnsFile, plug, rackGateway, routeServiceNetwork } from './topology.js';
import { nodeUnderlayV6, POD_NETWORK, POD_SUBNET_LENGTH_V6, podNetworks, rackGatewayV6, SERVICE_NETWORK, SERVICE_NETWORK_V6, serviceNetworks, parseIpFamilyChoice, usesIpv4, usesIpv6 } from './addressing.js';
import { CONTROL_PLANE_ACCESS, pickApiserverPort, startControlPlane, writeNodeKubeconfig, writeProxyKubeconfig } from './control-plane.js';
import { etcdStoreUrl, planEtcdCluster, startEtcdCluster } from './etcd-cluster.js';
import { RESOURCE } from '../../api/resources.js';
import { ASN_ANNOTATION, BGP_TOPOLOGIES, DEFAULT_CLUSTER_ASN, DEFAULT_TOR_ASN, IPIP_MODES, type IpipMode, ROUTE_REFLECTOR_LABEL } from '../../bgp/node-agent.js';
import { DEFAULT_CLUSTER_NAME, CTL_IP, ETCD_IP, APISERVER_FABRIC_PORT, BACKENDS, PROXY_CHOICES, type PodState, type NodeState, type ClusterState, type UpOptions, APISERVER_STORES, removeStateDir, ClusterError, stateDirOf, loadState, saveState, cliPath, podNetnsPrefix, nodeSubnetFile, adminClient, networkConfigJson } from './state.js';
import { startFlanneld, startSubnetEtcd, startKubelet, startProxy, rackAsn, routerBgpSocket, startRouterBgp, startBgp, BGP_MARKER, PROXY_MARKER, runsProxy, stopProcess, nodeDaemonWatches, stopProcessesMentioning } from './supervision.js';

// The lab's surface for the CLI and the tests: state, supervision and output live in their
// own files (state.ts, supervision.ts, summary.ts); this one builds and tears down.
export * from './state.js';
export * from './supervision.js';
export { summary } from './summary.js';

export function pontoonNetwork(node: NodeState): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: 'pontoon',
    type: 'pontoon-flannel',
    subnetFile: nodeSubnetFile(node),
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
  const addresses = result.ips.map((ip) => ip.address.split('/')[0] ?? '');
  const ip = addresses[0] ?? '';
  const ipv6 = addresses.slice(1).find((address) => address.includes(':'));
  const pod: PodState = { name, netns, containerId, ip, ...(ipv6 ? { ipv6 } : {}) };
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
  const agents = options.agents ?? 'process';
  if (!AGENTS_MODES.includes(agents)) throw new ClusterError(`--agents must be one of ${AGENTS_MODES.join(', ')}, got "${String(agents)}"`);
  if (agents === 'daemonset' && !options.controlPlane) throw new ClusterError('--agents daemonset runs the agents as pods: it needs the control plane (or use --agents process)');
  if (agents === 'daemonset' && options.subnetStore !== 'kube') throw new ClusterError('--agents daemonset uses the kube subnet store (flanneld --kube-subnet-mgr, as kube-flannel.yml)');
  // The rack router's address differs per rack, and one DaemonSet template serves every node.
  if (agents === 'daemonset' && tor) throw new ClusterError('--bgp-topology tor needs per-node agent flags: use --agents process');
  const access = options.controlPlaneAccess ?? 'network';
  if (!CONTROL_PLANE_ACCESS.includes(access)) throw new ClusterError(`--control-plane-access must be one of ${CONTROL_PLANE_ACCESS.join(', ')}, got "${String(access)}"`);
  if (!PROXY_CHOICES.includes(options.proxy)) throw new ClusterError(`--proxy must be one of ${PROXY_CHOICES.join(', ')}, got "${options.proxy}"`);
  const ipFamily = parseIpFamilyChoice(options.ipFamily);
  if (usesIpv6(ipFamily)) {
    // Leases with an IPv6 half live on Node objects (podCIDRs), as with flannel's kube subnet manager.
    if (options.subnetStore !== 'kube') throw new ClusterError(`--ip-family ${ipFamily} needs the kube subnet store (the control plane)`);
    if (options.backend === 'udp') throw new ClusterError(`--ip-family ${ipFamily}: the udp backend carries IPv4 only (as flannel's); use vxlan or host-gw`);
    if (options.backend === 'bgp') throw new ClusterError(`--ip-family ${ipFamily}: the bgp backend is IPv4-only here; use vxlan or host-gw`);
  }

  const stateDir = stateDirOf(options.name);
  if (existsSync(join(stateDir, 'state.json')) || listNetns().some((n) => n.startsWith(`${options.name}-`))) {
    throw new ClusterError(`cluster "${options.name}" already exists: run "pontoon cluster down --name ${options.name}" first`);
  }
  removeStateDir(stateDir);
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
    ipFamily,
    nodes: [],
    agents,
    // Only when this checkout has the manifest: a kubelet pointing pods at a DNS that never comes would break every lookup.
    dns: (options.dns ?? agents === 'daemonset') && options.controlPlane && existsSync(deployFile('dns.yaml')),
    cni: options.cni ?? 'helper',
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
    makeRouter(state.fabric, state.router, options.racks, usesIpv6(ipFamily));
  }
  const v6Underlay = usesIpv6(ipFamily) ? ` + fd00:198:18:<rack>::/64` : '';
  step(`fabric: ${options.racks} rack(s) 198.18.0.0/24${options.racks > 1 ? ` … 198.18.${options.racks - 1}.0/24 joined by a router` : ''}${v6Underlay}`, started);

  if (options.subnetStore === 'etcd' || options.controlPlane) makeControlNamespace(state, gatewayFor);
  if (options.subnetStore === 'etcd') await startEtcd(state, options);
  const storeKind = options.store ?? 'sqlite';
  if (!APISERVER_STORES.includes(storeKind)) throw new ClusterError(`--store must be one of ${APISERVER_STORES.join(', ')}, got "${String(storeKind)}"`);
  if (storeKind === 'etcd' && options.controlPlane) {
    started = Date.now();
    state.etcdCluster = planEtcdCluster(options.name, stateDir, options.etcdMembers ?? 1);
    saveState(state);
    await startEtcdCluster(state.etcdCluster, state.fabric, gatewayFor(0));
    step(`etcd: ${state.etcdCluster.members.map((m) => `${m.name} ${m.ip}`).join(', ')} (the apiserver's store)`, started);
  }
  if (options.controlPlane) {
    started = Date.now();
    const nodeNames = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    state.controlPlane = await startControlPlane({
      clusterName: options.name,
      stateDir,
      cli: [process.execPath, cliPath()],
      nodeNames,
      store: state.etcdCluster ? etcdStoreUrl(state.etcdCluster) : `sqlite:${join(stateDir, 'apiserver.db')}`,
      apiservers: options.apiservers ?? 1,
      clusterCidr: podNetworks(ipFamily).join(','),
      nodeCidrMaskSize: usesIpv4(ipFamily) ? 24 : POD_SUBNET_LENGTH_V6,
      ...(ipFamily === 'ipv4' ? {} : { serviceCidr: serviceNetworks(ipFamily).join(',') }),
      // The default cluster gets the well-known 6443 when free; others (tests) any free port.
      port: await pickApiserverPort(options.name === DEFAULT_CLUSTER_NAME ? 6443 : 0),
      fabric: { netnsPath: netnsFile(state.etcd.netns), address: CTL_IP, port: APISERVER_FABRIC_PORT },
      access,
    });
    writeFileSync(join(stateDir, 'net-conf.json'), networkConfigJson(options.backend, options.directRouting, ipip, ipFamily));
    saveState(state);
    const others = (state.controlPlane.replicas ?? []).map((r) => r.url).join(', ');
    const nodesReach = access === 'network' ? `nodes reach it at ${[state.controlPlane.fabricUrl, ...(state.controlPlane.replicas ?? []).map((r) => r.fabricUrl)].filter(Boolean).join(', ')} (TLS), kubelets serve TLS on :10250` : `nodes reach it at unix:${state.controlPlane.socket}`;
    step(`control plane: apiserver ${state.controlPlane.url}${others ? ` + ${others}` : ''} (${state.etcdCluster ? `etcd, ${state.etcdCluster.members.length} member(s)` : 'SQLite'} store), controller-manager, scheduler; ${nodesReach}`, started);
  }

  started = Date.now();
  for (let i = 1; i <= options.nodes; i++) createNode(state, `n${i}`, (i - 1) % options.racks, i, options.daemonEnv);
  // Healthy, not merely started: see health.ts.
  await waitHealthy(state.nodes.flatMap((node) => nodeDaemonWatches(node)));
  if (state.agents === 'daemonset') {
    step(`${options.nodes} node(s), kubelet running in each (NotReady until the agents install the CNI config)`, started);
    started = Date.now();
    const deployed = await deployAgents(state);
    step(`agents: ${deployed.join(', ')} rolled out (kubectl apply -f deploy/pontoon.yaml)`, started);
  }
  for (const node of state.nodes) readNodeSubnets(node);
  if (state.bgp && state.agents !== 'daemonset') {
    await startBgpAgents(state, options.daemonEnv?.bgp);
    await waitHealthy(state.nodes.flatMap((node) => nodeDaemonWatches(node).filter((w) => w.marker === BGP_MARKER)));
  }
  saveState(state);
  if (state.dns) {
    started = Date.now();
    const dns = await deployDns(state);
    if (dns) step(dns, started);
    saveState(state);
  }
  const bgpShape = state.bgp?.topology === 'tor' ? `eBGP with the rack router, AS ${DEFAULT_TOR_ASN}; rack r is AS ${DEFAULT_CLUSTER_ASN}+r` : state.bgp?.routeReflectors ? `${state.bgp.routeReflectors} route reflector(s) per rack` : 'full mesh';
  const daemons = [...(state.controlPlane ? ['kubelet'] : []), ...(runsProxy(state) ? [`proxy (${state.proxy})`] : []), `flanneld (${options.subnetStore} leases)`, ...(state.bgp ? [`bgp (${bgpShape}, ipip ${state.bgp.ipip})`] : [])];
  if (state.agents !== 'daemonset') step(`${options.nodes} node(s), ${daemons.join(', ')} running in each`, started);

  started = Date.now();
  for (const node of state.nodes) {
    for (let p = 1; p <= options.podsPerNode; p++) await addPod(state, node, p);
  }
  if (options.podsPerNode > 0) step(`${options.nodes * options.podsPerNode} static pod(s) networked through pontoon-flannel → pontoon-bridge`, started);
  return state;
}

/**
 * A node namespace on its rack with a kubelet, registered through the apiserver. In process
 * mode the lab writes its conflist and starts flanneld (and the proxy) itself; in daemonset
 * mode the node gets an empty "host filesystem" and its agents come from the DaemonSets.
 */
export function createNode(state: ClusterState, name: string, rack: number, index: number, daemonEnv?: UpOptions['daemonEnv']): NodeState {
  const node = createNodeNamespace(state, name, rack, index);
  if (state.controlPlane) writeNodeKubeconfig(state.controlPlane, state.name, node.name, join(node.dir, 'kubeconfig'));
  startNodeDaemons(state, node, daemonEnv);
  return node;
}

/**
 * The node's namespace on its rack, its state dir and (process mode) its conflist, recorded
 * in the state; no credentials, no daemons yet. A joining node gets its kubeconfig from
 * `pontoon join` before startNodeDaemons.
 */
export function createNodeNamespace(state: ClusterState, name: string, rack: number, index: number): NodeState {
  const gateway = state.router ? rackGateway(rack) : undefined;
  const ipFamily = state.ipFamily ?? 'ipv4';
  const node: NodeState = {
    name,
    netns: makeNamespace(`${state.name}-${name}`, true),
    rack,
    underlayIp: `198.18.${rack}.${10 + index}`,
    ...(usesIpv6(ipFamily) ? { underlayIpv6: nodeUnderlayV6(rack, index) } : {}),
    dir: join(state.stateDir, name),
    flanneldPid: 0,
    subnet: '',
    pods: [],
  };
  mkdirSync(join(node.dir, 'net.d'), { recursive: true });
  const v6 = node.underlayIpv6 ? { address: parseIpNet(`${node.underlayIpv6}/64`), ...(state.router ? { gateway: rackGatewayV6(rack) } : {}) } : undefined;
  plug(state.fabric, rack, name, node.netns, 'eth0', parseIpNet(`${node.underlayIp}/24`), gateway, v6);
  // A real node has a default route; a lab node of a single rack has none, and the kernel
  // would refuse a cluster-IP packet (no route) before the proxy's DNAT ever saw it.
  if (!gateway) {
    if (usesIpv4(ipFamily)) routeServiceNetwork(node.netns, SERVICE_NETWORK);
    if (usesIpv6(ipFamily)) routeServiceNetwork(node.netns, SERVICE_NETWORK_V6);
  }
  if (state.agents === 'daemonset') {
    node.hostRoot = nodeHostRoot(node.dir);
    mkdirSync(node.hostRoot, { recursive: true });
  } else {
    const conflist = JSON.stringify({ cniVersion: '1.1.0', name: 'pontoon', plugins: [pontoonNetwork(node)] }, null, 2);
    writeFileSync(join(node.dir, 'net.d', '10-pontoon.conflist'), conflist);
  }
  state.nodes.push(node);
  saveState(state);
  return node;
}

/** The kubelet (and in process mode the proxy and flanneld), with the kubeconfig in the node's dir. */
export function startNodeDaemons(state: ClusterState, node: NodeState, daemonEnv?: UpOptions['daemonEnv']): void {
  if (state.controlPlane) {
    writeProxyKubeconfig(state.controlPlane, state.name, join(node.dir, 'proxy.kubeconfig'));
    node.kubeletPid = startKubelet(state, node, daemonEnv?.kubelet);
    if (runsProxy(state) && state.agents !== 'daemonset') node.proxyPid = startProxy(state, node, daemonEnv?.proxy);
  }
  if (state.agents !== 'daemonset') node.flanneldPid = startFlanneld(state, node, daemonEnv?.flanneld);
  saveState(state);
}

/** The node's pod subnet(s) from its subnet.env. */
export function readNodeSubnets(node: NodeState): void {
  const env = readSubnetEnv(nodeSubnetFile(node));
  node.subnet = formatIpNet(networkOf(env.subnet));
  if (env.ipv6Subnet) node.subnetV6 = formatIpNet(networkOf(env.ipv6Subnet));
}

/**
 * Labels the first K nodes of each rack as route reflectors (Calico picks them by a node
 * label too), then starts every node's agent; the agents read the labels from the Nodes.
 */
async function startBgpAgents(state: ClusterState, env?: Record<string, string>): Promise<void> {
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
  for (const node of state.nodes) node.bgpPid = startBgp(state, node, env);
}

/**
 * The `ctl` namespace on rack 0 (198.18.0.2, default route via the rack router when there is
 * one, so other racks reach it): etcd and the apiserver's fabric listener live there.
 */
function makeControlNamespace(state: ClusterState, gatewayFor: (rack: number) => string | undefined): void {
  makeNamespace(state.etcd.netns);
  plug(state.fabric, 0, 'ctl', state.etcd.netns, 'eth0', parseIpNet(`${CTL_IP}/24`), gatewayFor(0));
}

async function startEtcd(state: ClusterState, options: UpOptions): Promise<void> {
  const started = Date.now();
  state.etcd.pid = startSubnetEtcd(state);
  saveState(state);
  run(process.execPath, [cliPath(), 'network', 'config', '--etcd-endpoints', 'http://127.0.0.1:2379', '--wait', '20', '--set', networkConfigJson(options.backend, options.directRouting)], { netns: state.etcd.netns });
  options.progress(`✔ etcd at ${state.etcd.endpoint}, network ${POD_NETWORK}, backend ${options.backend} (${Date.now() - started} ms)`);
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
  // The kernel frees a namespace (and with it our veth pair) only once nothing holds it; the
  // fabric end goes now, so a node added later under the same name can be plugged in.
  unplug(state.fabric, node.name);
  removeStateDir(node.dir);
  state.nodes = state.nodes.filter((n) => n !== node);
  saveState(state);
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
  removeStateDir(stateDirOf(name));
  if (failures.length > 0) throw namespaceFailures(failures);
}

function namespaceFailures(failures: readonly { name: string; error: unknown }[]): ClusterError {
  return new ClusterError(`could not delete namespace(s) ${failures.map((f) => `${f.name}: ${String(f.error)}`).join('; ')}`);
}
