/**
 * The lab's node and router daemons as processes: their command lines, starting one inside
 * its namespace (detached, logging to its state dir), telling it from a recycled pid,
 * stopping, restarting, and what the health check watches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../../lib/errors.js';
import { run, startDetached } from '../../lib/exec.js';
import { cniDistDir } from '../paths.js';
import { type DaemonWatch, logStartOffset, markLogStart, READY_MESSAGES } from './health.js';
import { onNode } from './agents.js';
import { labKubeletFlags, restartAgentPod } from './daemonset-mode.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from '../../kubelet/cni.js';
import { kubeletServingFlags } from './kubelet-serving.js';
import { netnsFile, rackGateway } from './topology.js';
import { podNetworks } from './addressing.js';
import { CONTROL_PLANE_COMPONENTS, type ControlPlaneComponent, kubeletArgs, startComponent } from './control-plane.js';
import { findMember, startEtcdMember, waitMemberHealthy } from './etcd-cluster.js';
import { DEFAULT_CLUSTER_ASN, DEFAULT_TOR_ASN } from '../../bgp/node-agent.js';
import { stringify as toYaml } from 'yaml';
import { type NodeState, type ClusterState, type NodeDaemon, ClusterError, ETCD_IP, saveState, cliPath, findNode, labPodNetnsPrefix, podNetnsPrefix } from './state.js';

/** Starts a long-running process inside a namespace, detached, output to `logFile`. */
export function startDaemon(netns: string, argv: readonly string[], logFile: string, sharedMounts = false, env?: Record<string, string>): number {
  // `ip netns exec` also gives the process a private mount namespace (to show the netns's
  // own /sys), where new mounts do not propagate back. A kubelet mounts every pod sandbox
  // it creates on /run/netns/<name>, and those must be visible to everyone else (CNI DEL
  // from a restarted kubelet, `cluster exec pod/...`), so it enters the network namespace
  // alone, with nsenter.
  const enter = sharedMounts ? ['nsenter', `--net=${netnsFile(netns)}`, '--'] : ['ip', 'netns', 'exec', netns];
  markLogStart(logFile);
  // env(1) execs the daemon, so the pid we record is still the daemon's own.
  const withEnv = env && Object.keys(env).length > 0 ? ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)] : [];
  return startDetached([...enter, ...withEnv, ...argv], logFile);
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
    // pontoon trace reads this node's pods through flanneld's /debug/netstate.
    '--node-name',
    node.name,
    '--pod-netns-prefix',
    labPodNetnsPrefix(state.name, node.name),
  ];
}

/** (Re)starts a node's flanneld; returns its pid. */
export function startFlanneld(state: ClusterState, node: NodeState, env?: Record<string, string>): number {
  return startDaemon(node.netns, flanneldArgs(state, node), join(node.dir, 'flanneld.log'), false, env);
}

/** (Re)starts a node's kubelet; returns its pid. */
export function startKubelet(state: ClusterState, node: NodeState, env?: Record<string, string>): number {
  const args = kubeletArgs({
    cli: [process.execPath, cliPath()],
    kubeconfig: join(node.dir, 'kubeconfig'),
    nodeName: node.name,
    nodeIp: node.underlayIp,
    cniConfDir: node.hostRoot ? onNode(node.hostRoot, DEFAULT_CNI_CONF_DIR) : join(node.dir, 'net.d'),
    rootDir: join(node.dir, 'kubelet'),
    netnsPrefix: podNetnsPrefix(state.name, node.name),
    // daemonset mode: the agents install the plugins there; the reference plugins stay reachable.
    ...(node.hostRoot ? { cniBinDir: `${onNode(node.hostRoot, DEFAULT_CNI_BIN_DIR)}:${cniDistDir()}` } : {}),
    extra: [
      ...labKubeletFlags({ ...(node.hostRoot ? { hostRoot: node.hostRoot } : {}), clusterDns: state.dns === true, cniHelper: state.cni === 'helper' }),
      ...(state.controlPlane ? kubeletServingFlags(state.controlPlane, node) : []),
    ],
  });
  return startDaemon(node.netns, args, join(node.dir, 'kubelet.log'), true, env);
}

/** The node's service proxy, in the node's namespace, as system:kube-proxy. */
function proxyArgs(state: ClusterState, node: NodeState): string[] {
  const kubeconfig = existsSync(join(node.dir, 'proxy.kubeconfig')) ? join(node.dir, 'proxy.kubeconfig') : join(node.dir, 'kubeconfig');
  return [process.execPath, cliPath(), 'proxy', '--kubeconfig', kubeconfig, '--node-name', node.name, '--mode', state.proxy ?? 'nftables', '--cluster-cidr', podNetworks(state.ipFamily ?? 'ipv4').join(',')];
}

/** (Re)starts a node's service proxy; returns its pid. */
export function startProxy(state: ClusterState, node: NodeState, env?: Record<string, string>): number {
  return startDaemon(node.netns, proxyArgs(state, node), join(node.dir, 'proxy.log'), false, env);
}

/** The node's BGP agent (backend bgp): peers, announcements and routes from Node objects. */
function bgpArgs(state: ClusterState, node: NodeState): string[] {
  const tor = state.bgp?.topology === 'tor' ? ['--topology', 'tor', '--tor-peer', rackGateway(node.rack), '--tor-asn', String(DEFAULT_TOR_ASN)] : [];
  return [process.execPath, cliPath(), 'bgp', 'node', '--kubeconfig', join(node.dir, 'kubeconfig'), '--node-name', node.name, '--pod-netns-prefix', labPodNetnsPrefix(state.name, node.name), '--ipip', state.bgp?.ipip ?? 'cross-subnet', '--control-socket', bgpSocket(node), '--ipip-socket', join(node.dir, 'ipip.sock'), '--hold-time', '9', ...tor];
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
export function startBgp(state: ClusterState, node: NodeState, env?: Record<string, string>): number {
  return startDaemon(node.netns, bgpArgs(state, node), join(node.dir, 'bgp.log'), false, env);
}

export const BGP_MARKER = 'bgp';

/** Peers of a node's agent that are Established, as `established/configured`, or why not. */
export function bgpPeers(node: NodeState): string {
  return speakerPeers(node.bgpPid, bgpSocket(node));
}

export function speakerPeers(pid: number | undefined, socket: string): string {
  if (pid === undefined) return '-';
  if (!isAlive(pid, BGP_MARKER)) return 'DOWN';
  return socketPeers(socket);
}

/** The BGP agent pod's control socket, on the node's host filesystem (deploy/pontoon.yaml). */
export const BGP_POD_SOCKET = '/run/pontoon-bgp/bgp.sock';

export function socketPeers(socket: string): string {
  const result = spawnSync(process.execPath, [cliPath(), 'bgp', 'status', '--socket', socket, '--json'], { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0) return 'starting';
  const status = JSON.parse(result.stdout) as { peers: { state: string }[] };
  return `${status.peers.filter((p) => p.state === 'Established').length}/${status.peers.length} peers`;
}

/** What a proxy's command line contains (its subcommand word), to tell it from a recycled pid. */
export const PROXY_MARKER = 'proxy';

export const runsProxy = (state: ClusterState): boolean => state.controlPlane !== undefined && state.proxy !== undefined && state.proxy !== 'none';

/** SIGTERM, then SIGKILL after 3 s, for a process whose command line contains `marker`. */
export async function stopProcess(pid: number, marker: string): Promise<void> {
  if (!isAlive(pid, marker)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 30 && isAlive(pid, marker); i++) await sleep(100);
  if (isAlive(pid, marker)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 20 && isAlive(pid, marker); i++) await sleep(50);
}

/** What `waitHealthy` watches for each daemon a node runs as a process. */
export function nodeDaemonWatches(node: NodeState): DaemonWatch[] {
  const watch = (daemon: NodeDaemon, pid: number | undefined, marker: string): DaemonWatch[] =>
    pid === undefined || pid === 0 ? [] : [{ what: `${daemon} on ${node.name}`, pid, marker, logFile: join(node.dir, `${daemon}.log`), readyMessage: READY_MESSAGES[daemon], logOffset: logStartOffset(join(node.dir, `${daemon}.log`)) }];
  return [...watch('kubelet', node.kubeletPid, 'kubelet'), ...watch('proxy', node.proxyPid, PROXY_MARKER), ...watch('flanneld', node.flanneldPid, 'flanneld'), ...watch('bgp', node.bgpPid, BGP_MARKER)];
}

/** The subnet store's etcd (`--subnet-store etcd`) in the control namespace; its pid. */
export function startSubnetEtcd(state: ClusterState): number {
  return startDaemon(
    state.etcd.netns,
    [
      'etcd',
      '--name', 'pontoon',
      '--data-dir', join(state.stateDir, 'etcd'),
      '--listen-client-urls', `http://${ETCD_IP}:2379,http://127.0.0.1:2379`,
      '--advertise-client-urls', `http://${ETCD_IP}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380',
      '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'pontoon=http://127.0.0.1:2380',
      '--log-level', 'warn',
    ],
    join(state.stateDir, 'etcd.log'),
  );
}

/** Waits until the subnet store's etcd answers (the network config reads back). */
function waitSubnetEtcd(state: ClusterState): void {
  try {
    run(process.execPath, [cliPath(), 'network', 'config', '--etcd-endpoints', 'http://127.0.0.1:2379', '--wait', '30'], { netns: state.etcd.netns, timeoutMs: 40_000 });
  } catch (err) {
    throw new ClusterError(`the subnet store's etcd did not come back: ${describeError(err)}`, { cause: err });
  }
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
  if (component === 'etcd' && !state.etcdCluster && state.etcd.pid) {
    // `cluster restart etcd`: the subnet store's etcd, from its data directory.
    await stopProcess(state.etcd.pid, 'etcd');
    state.etcd.pid = startSubnetEtcd(state);
    saveState(state);
    waitSubnetEtcd(state);
    return state.etcd.pid;
  }
  if (component === 'etcd') {
    // `cluster restart etcd etcd2`: the member rejoins from its data directory.
    if (!state.etcdCluster) throw new ClusterError(`cluster ${state.name} runs no etcd (cluster up --store etcd, or --no-control-plane for the subnet store's)`);
    const member = findMember(state.etcdCluster, nodeName ?? '');
    await stopProcess(member.pid, 'etcd');
    startEtcdMember(state.etcdCluster, member);
    saveState(state);
    await waitMemberHealthy(member);
    return member.pid;
  }
  if (component !== 'kubelet' && component !== 'flanneld' && component !== 'proxy' && component !== 'bgp') {
    throw new ClusterError(`cannot restart "${component}": want ${[...CONTROL_PLANE_COMPONENTS, 'kubelet', 'flanneld', 'proxy', 'bgp'].join(', ')}`);
  }
  if (!nodeName) throw new ClusterError(`restarting ${component} needs a node name`);
  const node = findNode(state, nodeName);
  if (state.agents === 'daemonset' && component !== 'kubelet') {
    // The DaemonSet recreates the pod; there is no pid to report.
    await restartAgentPod(state, component, node.name);
    return 0;
  }
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

/** SIGTERM, then SIGKILL, every process whose command line contains `marker`. */
export async function stopProcessesMentioning(marker: string): Promise<void> {
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
