/**
 * What `pontoon status` and `pontoon topology` show, gathered in one pass: the API's view
 * (Nodes, their leases, Pods per node, Services and their EndpointSlices) and each daemon's
 * own word (its /healthz and /metrics). Every request starts at once — three API lists and
 * two GETs per daemon — so the pass takes as long as the slowest answer, not the sum.
 *
 * Where a daemon is reached is the `StatusSource`'s business: the namespace lab hands out
 * targets inside each node's namespace, a real cluster the node's InternalIP (sources.ts).
 */
import type { KubeList } from '../../api/meta.js';
import { RESOURCE } from '../../api/resources.js';
import type { EndpointSlice, Node, Pod, Service } from '../../api/types.js';
import type { KubeClient } from '../../client/client.js';
import { ASN_ANNOTATION, ROUTE_REFLECTOR_LABEL } from '../../bgp/node-agent.js';
import { leaseOf } from '../../flanneld/subnet/kube.js';
import { describeError } from '../../lib/errors.js';
import { formatIpNet } from '../../lib/ip.js';
import { type Exposition, parseExposition, samplesOf, valueOf } from '../../lib/prom-text.js';
import { describeTarget, httpGet, type ProbeTarget } from './probe.js';

export const NODE_DAEMONS = ['kubelet', 'flanneld', 'proxy', 'bgp'] as const;
export type NodeDaemon = (typeof NODE_DAEMONS)[number];

/** Default ports of the node daemons (docs/metrics.md); the proxy's health is apart, as kube-proxy's. */
export const NODE_DAEMON_PORTS: Record<NodeDaemon, { metrics: number; health: number }> = {
  kubelet: { metrics: 10248, health: 10248 },
  flanneld: { metrics: 8471, health: 8471 },
  proxy: { metrics: 10249, health: 10256 },
  bgp: { metrics: 9179, health: 9179 },
};

/** A daemon's answer: healthy (200), unhealthy (it answered otherwise), unreachable (no answer). */
export type Health = 'healthy' | 'unhealthy' | 'unreachable';

export interface DaemonStatus {
  readonly daemon: string;
  /** where it was asked */
  readonly at: string;
  readonly health: Health;
  readonly detail: string;
  /** A node daemon this node should run; an unexpected one that does not answer is left out. */
  readonly expected: boolean;
}

export interface BgpPeerStatus {
  readonly peer: string;
  /** the Node whose InternalIP the peer is, when it is one */
  readonly node?: string;
  readonly asn: string;
  readonly role: string;
  readonly state: string;
  readonly since?: string;
  readonly prefixesReceived?: number;
  readonly prefixesAdvertised?: number;
}

export interface ProxyStatus {
  readonly mode: string;
  readonly lastSync?: string;
  readonly rules?: number;
}

export interface NodeStatusView {
  readonly name: string;
  /** True, False or Unknown, from the Ready condition */
  readonly ready: string;
  readonly internalIp: string;
  /** rack: topology.kubernetes.io/zone, else the /24 of the InternalIP (one L2 segment) */
  readonly rack: string;
  readonly podCidr: string;
  readonly lease?: { readonly subnet: string; readonly backendType: string; readonly publicIp: string; readonly vni?: number };
  /** what carries its pod traffic: vxlan, udp, host-gw, bgp/ipip … */
  readonly backend: string;
  readonly routeReflector: boolean;
  readonly asn?: string;
  readonly daemons: readonly DaemonStatus[];
  readonly proxy?: ProxyStatus;
  readonly bgpPeers: readonly BgpPeerStatus[];
  readonly pods: number;
}

export interface ServiceView {
  readonly namespace: string;
  readonly name: string;
  readonly type: string;
  readonly clusterIp: string;
  readonly ports: readonly string[];
  readonly endpoints: readonly { readonly ip: string; readonly node?: string; readonly ready: boolean }[];
}

export interface ControlPlaneView {
  readonly apiserver: { readonly url: string; readonly health: Health; readonly detail: string; readonly latencyMs?: number; readonly store?: string };
  readonly components: readonly DaemonStatus[];
}

export interface ClusterSnapshot {
  readonly cluster: string;
  readonly gatheredAt: string;
  readonly tookMs: number;
  readonly controlPlane: ControlPlaneView;
  readonly nodes: readonly NodeStatusView[];
  readonly services: readonly ServiceView[];
  /** bgp: IPIP always, cross-subnet or never, when the source knows */
  readonly ipipMode?: string;
  /** vxlan: plain routes within a rack */
  readonly directRouting?: boolean;
}

export interface DaemonTargets {
  readonly metrics: ProbeTarget;
  readonly health: ProbeTarget;
}

export interface StatusSource {
  readonly cluster: string;
  readonly api: KubeClient;
  /** the apiserver as the user knows it (kubeconfig's server) */
  readonly apiUrl: string;
  /** where `daemon` of `node` answers */
  nodeTargets(node: Node, daemon: NodeDaemon): DaemonTargets;
  /** does this node run `daemon` (absent: kubelet, flanneld and proxy always; bgp when it answers) */
  expects?(node: Node, daemon: NodeDaemon): boolean | undefined;
  readonly controlPlane: readonly { readonly component: string; readonly target: ProbeTarget }[];
  readonly ipipMode?: string;
  readonly directRouting?: boolean;
  readonly timeoutMs: number;
}

interface DaemonProbe {
  status: Omit<DaemonStatus, 'expected'>;
  metrics?: Exposition;
}

/** /healthz and /metrics of one daemon, both at once. */
async function probeDaemon(daemon: string, targets: DaemonTargets, timeoutMs: number): Promise<DaemonProbe> {
  const at = describeTarget(targets.health);
  const [health, metrics] = await Promise.allSettled([httpGet(targets.health, '/healthz', timeoutMs), httpGet(targets.metrics, '/metrics', timeoutMs)]);
  let exposition: Exposition | undefined;
  if (metrics.status === 'fulfilled' && metrics.value.status === 200) {
    try {
      exposition = parseExposition(metrics.value.body);
    } catch {
      exposition = undefined;
    }
  }
  const status: Omit<DaemonStatus, 'expected'> =
    health.status === 'rejected'
      ? { daemon, at, health: 'unreachable', detail: describeError(health.reason) }
      : health.value.status === 200
        ? { daemon, at, health: 'healthy', detail: 'ok' }
        : { daemon, at, health: 'unhealthy', detail: `HTTP ${health.value.status}: ${health.value.body.trim().slice(0, 200)}` };
  return { status, ...(exposition ? { metrics: exposition } : {}) };
}

const isoOfSeconds = (seconds: number | undefined): string | undefined => (seconds && seconds > 0 ? new Date(seconds * 1000).toISOString() : undefined);

function internalIpOf(node: Node): string {
  const addresses = node.status?.addresses ?? [];
  return addresses.find((a) => a.type === 'InternalIP')?.address ?? addresses[0]?.address ?? '';
}

export function rackOf(node: Node, internalIp: string): string {
  const zone = node.metadata.labels?.['topology.kubernetes.io/zone'];
  if (zone) return zone;
  const octets = internalIp.split('.');
  return octets.length === 4 ? `${octets.slice(0, 3).join('.')}.0/24` : internalIp.includes(':') ? `${internalIp.split(':').slice(0, 4).join(':')}::/64` : '?';
}

function proxyOf(metrics: Exposition | undefined): ProxyStatus | undefined {
  if (!metrics) return undefined;
  const mode = samplesOf(metrics, 'pontoon_proxy_info')[0]?.labels['mode'] ?? '?';
  const rules = samplesOf(metrics, 'pontoon_proxy_rules').reduce((sum, s) => sum + s.value, 0);
  const lastSync = isoOfSeconds(valueOf(metrics, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds'));
  return { mode, rules, ...(lastSync ? { lastSync } : {}) };
}

function bgpPeersOf(metrics: Exposition | undefined, nodeByIp: ReadonlyMap<string, string>): BgpPeerStatus[] {
  if (!metrics) return [];
  return samplesOf(metrics, 'pontoon_bgp_peer_info').map((s) => {
    const peer = s.labels['peer'] ?? '';
    const since = isoOfSeconds(valueOf(metrics, 'pontoon_bgp_peer_state_change_timestamp_seconds', { peer }));
    const node = nodeByIp.get(peer);
    const received = valueOf(metrics, 'pontoon_bgp_prefixes_received', { peer });
    const advertised = valueOf(metrics, 'pontoon_bgp_prefixes_advertised', { peer });
    return {
      peer,
      ...(node ? { node } : {}),
      asn: s.labels['asn'] ?? '',
      role: s.labels['role'] ?? '',
      state: s.labels['state'] ?? '',
      ...(since ? { since } : {}),
      ...(received !== undefined ? { prefixesReceived: received } : {}),
      ...(advertised !== undefined ? { prefixesAdvertised: advertised } : {}),
    };
  });
}

function backendOf(backendType: string | undefined, bgpAnswers: boolean, ipipMode: string | undefined): string {
  // With the bgp backend flanneld only leases (flannel's "alloc"); the BGP agent routes.
  if (bgpAnswers || backendType === 'alloc') return ipipMode ? `bgp/ipip ${ipipMode}` : 'bgp';
  return backendType ?? '?';
}

async function nodeStatus(source: StatusSource, node: Node, pods: number, nodeByIp: ReadonlyMap<string, string>): Promise<NodeStatusView> {
  const name = node.metadata.name ?? '';
  const internalIp = internalIpOf(node);
  const probes = await Promise.all(NODE_DAEMONS.map((daemon) => probeDaemon(daemon, source.nodeTargets(node, daemon), source.timeoutMs)));
  const byDaemon = new Map(NODE_DAEMONS.map((daemon, i) => [daemon, probes[i]!]));
  const lease = leaseOf(node);
  const bgp = byDaemon.get('bgp');
  const bgpAnswers = bgp !== undefined && bgp.status.health !== 'unreachable';
  const daemons: DaemonStatus[] = [];
  for (const daemon of NODE_DAEMONS) {
    const probe = byDaemon.get(daemon)!;
    const declared = source.expects?.(node, daemon);
    const expected = declared ?? (daemon === 'bgp' ? bgpAnswers || lease?.attrs.backendType === 'alloc' : true);
    if (!expected && probe.status.health === 'unreachable') continue;
    daemons.push({ ...probe.status, expected });
  }
  const readyCondition = node.status?.conditions?.find((c) => c.type === 'Ready');
  const vni = (lease?.attrs.backendData as { VNI?: unknown } | undefined)?.VNI;
  const proxy = proxyOf(byDaemon.get('proxy')?.metrics);
  const asn = node.metadata.annotations?.[ASN_ANNOTATION];
  return {
    name,
    ready: readyCondition?.status ?? 'Unknown',
    internalIp,
    rack: rackOf(node, internalIp),
    podCidr: node.spec?.podCIDR ?? '',
    ...(lease ? { lease: { subnet: formatIpNet(lease.subnet), backendType: lease.attrs.backendType, publicIp: lease.attrs.publicIp, ...(typeof vni === 'number' ? { vni } : {}) } } : {}),
    backend: backendOf(lease?.attrs.backendType, bgpAnswers, source.ipipMode),
    routeReflector: node.metadata.labels?.[ROUTE_REFLECTOR_LABEL] === 'true',
    ...(asn ? { asn } : {}),
    daemons,
    ...(proxy ? { proxy } : {}),
    bgpPeers: bgpPeersOf(bgp?.metrics, nodeByIp),
    pods,
  };
}

async function apiserverStatus(source: StatusSource): Promise<ControlPlaneView['apiserver']> {
  const started = Date.now();
  try {
    await source.api.requestText('GET', '/readyz');
    const latencyMs = Date.now() - started;
    let store: string | undefined;
    try {
      store = samplesOf(parseExposition(await source.api.requestText('GET', '/metrics')), 'pontoon_apiserver_store_info')[0]?.labels['store'];
    } catch {
      store = undefined; // an apiserver without our metric (or without /metrics access)
    }
    return { url: source.apiUrl, health: 'healthy', detail: 'ready', latencyMs, ...(store ? { store } : {}) };
  } catch (err) {
    return { url: source.apiUrl, health: 'unhealthy', detail: describeError(err) };
  }
}

function serviceViews(services: KubeList<Service>, slices: KubeList<EndpointSlice>): ServiceView[] {
  const bySvc = new Map<string, EndpointSlice[]>();
  for (const slice of slices.items) {
    const owner = slice.metadata.labels?.['kubernetes.io/service-name'];
    if (!owner) continue;
    const key = `${slice.metadata.namespace ?? ''}/${owner}`;
    bySvc.set(key, [...(bySvc.get(key) ?? []), slice]);
  }
  return services.items
    .filter((s) => s.spec.type !== 'ExternalName')
    .map((s) => {
      const key = `${s.metadata.namespace ?? ''}/${s.metadata.name ?? ''}`;
      const endpoints = (bySvc.get(key) ?? []).flatMap((slice) =>
        slice.endpoints.flatMap((e) => e.addresses.map((ip) => ({ ip, ...(e.nodeName ? { node: e.nodeName } : {}), ready: e.conditions?.ready !== false }))),
      );
      return {
        namespace: s.metadata.namespace ?? '',
        name: s.metadata.name ?? '',
        type: s.spec.type ?? 'ClusterIP',
        clusterIp: s.spec.clusterIP ?? '',
        ports: (s.spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`),
        endpoints,
      };
    });
}

export async function gatherSnapshot(source: StatusSource): Promise<ClusterSnapshot> {
  const started = Date.now();
  const [nodes, pods, services, slices, apiserver, components] = await Promise.all([
    source.api.list<Node>(RESOURCE.nodes),
    source.api.list<Pod>(RESOURCE.pods),
    source.api.list<Service>(RESOURCE.services),
    source.api.list<EndpointSlice>(RESOURCE.endpointslices),
    apiserverStatus(source),
    Promise.all(source.controlPlane.map(async ({ component, target }) => ({ ...(await probeDaemon(component, { metrics: target, health: target }, source.timeoutMs)).status, expected: true }))),
  ]);
  const podsPerNode = new Map<string, number>();
  for (const pod of pods.items) {
    const node = pod.spec.nodeName;
    if (node && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') podsPerNode.set(node, (podsPerNode.get(node) ?? 0) + 1);
  }
  const nodeByIp = new Map(nodes.items.map((n) => [internalIpOf(n), n.metadata.name ?? '']));
  const sorted = [...nodes.items].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '', undefined, { numeric: true }));
  const nodeViews = await Promise.all(sorted.map((node) => nodeStatus(source, node, podsPerNode.get(node.metadata.name ?? '') ?? 0, nodeByIp)));
  return {
    cluster: source.cluster,
    gatheredAt: new Date(started).toISOString(),
    tookMs: Date.now() - started,
    controlPlane: { apiserver, components },
    nodes: nodeViews,
    services: serviceViews(services, slices),
    ...(source.ipipMode ? { ipipMode: source.ipipMode } : {}),
    ...(source.directRouting !== undefined ? { directRouting: source.directRouting } : {}),
  };
}

/** Everything a healthy cluster has: every node Ready, every expected daemon healthy, the control plane healthy. */
export function problemsOf(snapshot: ClusterSnapshot): string[] {
  const problems: string[] = [];
  const cp = snapshot.controlPlane;
  if (cp.apiserver.health !== 'healthy') problems.push(`apiserver ${cp.apiserver.health}: ${cp.apiserver.detail}`);
  for (const c of cp.components) if (c.health !== 'healthy') problems.push(`${c.daemon} ${c.health}: ${c.detail}`);
  for (const node of snapshot.nodes) {
    if (node.ready !== 'True') problems.push(`node ${node.name} Ready=${node.ready}`);
    for (const d of node.daemons) if (d.expected && d.health !== 'healthy') problems.push(`${d.daemon} on ${node.name} ${d.health}: ${d.detail}`);
    for (const p of node.bgpPeers) if (p.state !== 'Established') problems.push(`bgp on ${node.name}: peer ${p.peer} ${p.state}`);
  }
  return problems;
}
