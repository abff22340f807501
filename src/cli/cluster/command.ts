/** Registers `pontoon cluster ...`. */
import { parseIpFamilyChoice } from './addressing.js';
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import type { KubeList } from '../../api/meta.js';
import { RESOURCE } from '../../api/resources.js';
import type { Node, Pod } from '../../api/types.js';
import type { BgpTopology, IpipMode } from '../../bgp/node-agent.js';
import { sandboxName } from '../../kubelet/sandbox.js';
import { listNetns } from '../../lib/netns.js';
import { leaseOf } from '../../flanneld/subnet/kube.js';
import { formatIpNet } from '../../lib/ip.js';
import { formatTable } from '../table.js';
import { podPaths } from './pods.js';
import { addNode } from './add-node.js';
import type { AgentsMode } from './agents.js';
import type { ControlPlaneAccess } from './control-plane.js';
import { agentStatus } from './daemonset-mode.js';
import {
  adminClient,
  podNetnsPrefix,
  type BackendName,
  type ProxyChoice,
  type ApiserverStoreKind,
  ClusterError,
  clusterDown,
  clusterUp,
  cliPath,
  DEFAULT_CLUSTER_NAME,
  findNode,
  loadState,
  removeNode,
  restartComponent,
  summary,
  type ClusterState,
} from './cluster.js';

function positiveInt(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new ClusterError(`${flag} must be a positive integer, got "${value}"`);
  return parsed;
}

/**
 * `n1` → node netns, `n1-p1` → static pod netns, `pod/web-abc12` or `pod/<ns>/<name>` → the
 * sandbox the kubelet made for that Pod, `ctl`/`fabric`/`router` → those.
 */
export async function resolveNetns(state: ClusterState, target: string): Promise<string> {
  if (target.startsWith('pod/')) return podSandbox(state, target.slice('pod/'.length));
  const node = state.nodes.find((n) => n.name === target);
  if (node) return node.netns;
  const pod = state.nodes.flatMap((n) => n.pods).find((p) => p.name === target);
  if (pod) return pod.netns;
  if (['ctl', 'fabric', 'router'].includes(target)) return `${state.name}-${target}`;
  throw new ClusterError(`no node or pod "${target}" in cluster ${state.name}`);
}

async function podSandbox(state: ClusterState, ref: string): Promise<string> {
  const [namespace, name] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  const pod = await adminClient(state).get<Pod>(RESOURCE.pods, name ?? '', namespace);
  if (!pod) throw new ClusterError(`no pod ${namespace}/${name} in cluster ${state.name}`);
  const nodeName = pod.spec.nodeName;
  if (!nodeName) throw new ClusterError(`pod ${namespace}/${name} is not scheduled yet`);
  const sandbox = sandboxName(podNetnsPrefix(state.name, nodeName), pod.metadata.uid ?? '');
  if (!listNetns().includes(sandbox)) throw new ClusterError(`pod ${namespace}/${name} has no sandbox on ${nodeName} yet (${sandbox})`);
  return sandbox;
}

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('a multi-node cluster of network namespaces on this machine');

  cluster
    .command('up')
    .description('build the fabric, start etcd and flanneld on every node, network some pods')
    .option('--name <name>', 'cluster name (prefix of every namespace)', DEFAULT_CLUSTER_NAME)
    .option('--nodes <n>', 'number of nodes', '3')
    .option('--backend <type>', 'host-gw, vxlan, udp (flanneld) or bgp (a BGP speaker per node, Calico-style)', 'vxlan')
    .option('--route-reflectors <k>', 'bgp: route reflectors per rack (0: full mesh of nodes)', '0')
    .option('--ipip <mode>', 'bgp: IPIP towards other nodes: always, cross-subnet or never (default: cross-subnet; never with --bgp-topology tor)')
    .option('--bgp-topology <kind>', 'bgp: mesh (full mesh or route reflectors) or tor (each rack its own AS, eBGP with the rack router)', 'mesh')
    .option('--racks <n>', 'L2 segments joined by a router (nodes are spread round-robin)', '1')
    .option('--pods <n>', 'static pods per node, networked by calling the CNI plugin directly', '0')
    .option('--subnet-store <kind>', 'where flanneld keeps leases: kube (Node podCIDR + annotations) or etcd', 'kube')
    .option('--no-control-plane', 'no apiserver, controllers, scheduler or kubelets: flanneld and static pods only (implies --subnet-store etcd)')
    .option('--direct-routing', 'vxlan: plain routes to nodes on the same rack', false)
    .option('--lease-ttl <seconds>', 'subnet lease TTL', String(24 * 3600))
    .option('--proxy <mode>', 'service proxy on every node: nftables, iptables or none', 'nftables')
    .option('--agents <mode>', 'node agents as DaemonSet pods (kubectl apply -f deploy/pontoon.yaml, plus cluster DNS) or as processes the lab starts: daemonset or process (default: daemonset; process without a control plane)')
    .option('--cni <mode>', 'how kubelets run our CNI plugins: helper (a long-lived pontoon cni-server per kubelet, no Node start per pod) or exec (one process per plugin call, as for any plugin)', 'helper')
    .option('--store <kind>', 'the apiserver’s store: sqlite (one file) or etcd (an etcd cluster, each member in its own namespace)', 'sqlite')
    .option('--etcd-members <n>', 'store etcd: members of the etcd cluster (1-5)', '1')
    .option('--apiservers <n>', 'apiservers on the store (1-3; more than one needs --store etcd); clients fail over between them', '1')
    .option('--ip-family <family>', 'pod and Service addresses: ipv4, ipv6 (fd00:10:244::/56, fd00:10:96::/112) or dual (IPv4 primary)', 'ipv4')
    .option('--control-plane-access <mode>', 'how nodes reach the apiserver: network (https://198.18.0.2:6443 on the fabric, kubelets on TLS :10250) or socket (its unix socket; one host only)', 'network')
    .action(async (flags: { controlPlaneAccess: string; name: string; nodes: string; backend: string; racks: string; pods: string; directRouting: boolean; leaseTtl: string; subnetStore: string; controlPlane: boolean; proxy: string; routeReflectors: string; ipip?: string; bgpTopology: string; agents?: string; cni: string; ipFamily: string; store: string; etcdMembers: string; apiservers: string }) => {
      if (flags.cni !== 'helper' && flags.cni !== 'exec') throw new ClusterError(`--cni must be helper or exec, got "${flags.cni}"`);
      if (flags.subnetStore !== 'kube' && flags.subnetStore !== 'etcd') throw new ClusterError(`--subnet-store must be kube or etcd, got "${flags.subnetStore}"`);
      const state = await clusterUp({
        name: flags.name,
        nodes: positiveInt(flags.nodes, '--nodes'),
        backend: flags.backend as BackendName,
        racks: positiveInt(flags.racks, '--racks'),
        podsPerNode: Number(flags.pods),
        directRouting: flags.directRouting,
        leaseTtlSeconds: positiveInt(flags.leaseTtl, '--lease-ttl'),
        controlPlane: flags.controlPlane,
        subnetStore: flags.controlPlane ? flags.subnetStore : 'etcd',
        proxy: flags.proxy as ProxyChoice,
        routeReflectors: Number(flags.routeReflectors),
        ...(flags.ipip !== undefined ? { ipip: flags.ipip as IpipMode } : {}),
        bgpTopology: flags.bgpTopology as BgpTopology,
        agents: (flags.agents ?? (flags.controlPlane && flags.subnetStore === 'kube' && flags.bgpTopology !== 'tor' ? 'daemonset' : 'process')) as AgentsMode,
        cni: flags.cni,
        ipFamily: parseIpFamilyChoice(flags.ipFamily),
        store: flags.store as ApiserverStoreKind,
        etcdMembers: positiveInt(flags.etcdMembers, '--etcd-members'),
        apiservers: positiveInt(flags.apiservers, '--apiservers'),
        controlPlaneAccess: flags.controlPlaneAccess as ControlPlaneAccess,
        progress: (line) => console.log(line),
      }).catch(async (err: unknown) => {
        console.error(`cluster up failed; tearing down what was built`);
        await clusterDown(flags.name);
        throw err;
      });
      console.log(`\n${summary(state, state.agents === 'daemonset' ? await agentStatus(state) : undefined)}\n`);
      const firstPod = state.nodes[0]?.pods[0];
      const lastPod = state.nodes.at(-1)?.pods[0];
      if (firstPod && lastPod) console.log(`try: pontoon cluster exec --name ${state.name} ${firstPod.name} -- ping -c 2 ${lastPod.ip}`);
      // Last line, so `eval "$(pontoon cluster up | tail -1)"` points kubectl at the cluster.
      if (state.controlPlane) console.log(`export KUBECONFIG=${state.controlPlane.kubeconfig}`);
    });

  cluster
    .command('down')
    .description('stop the cluster’s processes and delete its namespaces and state')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .action(async (flags: { name: string }) => {
      await clusterDown(flags.name);
      console.log(`cluster ${flags.name} removed`);
    });

  cluster
    .command('status')
    .description('the lab’s own view: nodes, subnets, daemon pids or agent pods, static pods (what the daemons themselves say: pontoon status --cluster NAME)')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .action(async (flags: { name: string }) => {
      const state = loadState(flags.name);
      console.log(summary(state, state.agents === 'daemonset' ? await agentStatus(state) : undefined));
    });

  cluster
    .command('add-node')
    .description('add a node to a running cluster: namespace, kubelet, registration; its agents come from the DaemonSets (or are started, --agents process)')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .argument('[node]', 'the new node’s name (default: n<next>)')
    .option('--rack <r>', 'the rack to plug it into (default: round-robin)')
    .option('--token <token>', 'bootstrap token to join with (pontoon token create); default: a new 15-minute token')
    .option('--no-token', 'reference path: a static token for the node and an apiserver restart instead of pontoon join')
    .action(async (nodeName: string | undefined, flags: { name: string; rack?: string; token?: string | boolean }) => {
      const state = loadState(flags.name);
      if (flags.rack !== undefined && !/^\d+$/.test(flags.rack)) throw new ClusterError(`--rack must be a rack number, got "${flags.rack}"`);
      const node = await addNode(state, {
        ...(nodeName ? { name: nodeName } : {}),
        ...(flags.rack !== undefined ? { rack: Number(flags.rack) } : {}),
        ...(typeof flags.token === 'string' ? { token: flags.token } : {}),
        ...(flags.token === false ? { noToken: true } : {}),
        progress: (line) => console.log(line),
      });
      console.log(`node ${node.name} joined cluster ${state.name}`);
    });

  cluster
    .command('leases')
    .description('the subnet leases: Node podCIDRs and flannel annotations, or the cluster’s etcd')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .action(async (flags: { name: string }) => {
      const state = loadState(flags.name);
      if (state.subnetStore === 'kube') {
        console.log(formatKubeLeases(await adminClient(state).list<Node>(RESOURCE.nodes)));
        return;
      }
      const argv = [process.execPath, cliPath(), 'network', 'leases', '--etcd-endpoints', 'http://127.0.0.1:2379'];
      const result = spawnSync('ip', ['netns', 'exec', state.etcd.netns, ...argv], { stdio: 'inherit' });
      process.exitCode = result.status ?? 1;
    });

  cluster
    .command('pods')
    .description('every Pod with its node, IP, sandbox namespace, veth pair and bridge')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .option('-n, --namespace <namespace>', 'only this namespace (default: all)')
    .action(async (flags: { name: string; namespace?: string }) => {
      const paths = await podPaths(loadState(flags.name), flags.namespace);
      const rows = paths.map((p) => [p.pod, p.node, p.ip, p.phase, p.sandbox, p.podLink, p.hostVeth, p.bridge]);
      console.log(formatTable(['POD', 'NODE', 'IP', 'PHASE', 'SANDBOX NETNS', 'POD SIDE', 'HOST VETH', 'BRIDGE'], rows));
    });

  cluster
    .command('exec')
    .description('run a command in a node or pod namespace: pontoon cluster exec pod/web-7d9f-x2bq4 -- wget -qO- 10.244.2.3:8080')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .argument('<target>', 'node (n1), Pod (pod/<name> or pod/<namespace>/<name>), static pod (n1-p1), ctl, fabric or router')
    .argument('<command...>', 'command and arguments')
    .action(async (target: string, command: string[], flags: { name: string }) => {
      const netns = await resolveNetns(loadState(flags.name), target);
      const result = spawnSync('ip', ['netns', 'exec', netns, ...command], { stdio: 'inherit' });
      process.exitCode = result.status ?? 1;
    });

  cluster
    .command('restart-flanneld')
    .description('stop and start one node’s flanneld (the data plane stays up meanwhile)')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .argument('<node>', 'node name, e.g. n2')
    .action(async (nodeName: string, flags: { name: string }) => {
      const pid = await restartComponent(loadState(flags.name), 'flanneld', nodeName);
      console.log(`flanneld on ${nodeName} restarted (${pid === 0 ? 'its pod deleted and recreated by the DaemonSet' : `pid ${pid}`})`);
    });

  cluster
    .command('restart')
    .description('stop and start one daemon with the same command line: apiserver, controller-manager, scheduler, a node’s kubelet, flanneld, proxy or bgp, or etcd: a member of the apiserver’s (etcd etcd2), or flanneld’s without a control plane (etcd)')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .argument('<component>', 'apiserver, controller-manager, scheduler, kubelet, flanneld, proxy or bgp')
    .argument('[node]', 'the node, for kubelet, flanneld, proxy and bgp; the member for etcd')
    .action(async (component: string, nodeName: string | undefined, flags: { name: string }) => {
      const state = loadState(flags.name);
      const pid = await restartComponent(state, component, nodeName);
      const how = pid === 0 ? 'its pod deleted and recreated by the DaemonSet' : `pid ${pid}`;
      console.log(`${component}${nodeName ? ` on ${nodeName}` : ''} restarted (${how})`);
    });

  cluster
    .command('remove-node')
    .description('take a node out for good: stop its flanneld, delete its lease and namespaces')
    .option('--name <name>', 'cluster name', DEFAULT_CLUSTER_NAME)
    .argument('<node>', 'node name, e.g. n3')
    .action(async (nodeName: string, flags: { name: string }) => {
      const state = loadState(flags.name);
      const node = findNode(state, nodeName);
      await removeNode(state, node);
      console.log(`node ${nodeName} (${node.subnet}) removed`);
    });
}

/** One row per Node: its podCIDR and the lease flanneld published on it. */
export function formatKubeLeases(nodes: KubeList<Node>): string {
  const rows = nodes.items.map((node) => {
    const lease = leaseOf(node);
    return [
      node.metadata.name ?? '',
      node.spec?.podCIDR ?? '<none>',
      lease ? formatIpNet(lease.subnet) : '<none>',
      lease?.attrs.publicIp ?? '-',
      lease?.attrs.backendType ?? '-',
      lease ? JSON.stringify(lease.attrs.backendData) : '-',
    ];
  });
  return formatTable(['NODE', 'POD CIDR', 'LEASE', 'PUBLIC IP', 'BACKEND', 'BACKEND DATA'], rows);
}
