/**
 * The picture `pontoon topology` draws, as data: racks of nodes, the tunnels (or plain
 * routes) between them, BGP sessions, Services and where their endpoints run. Built from a
 * status snapshot (`topologyOf`), drawn by dot.ts and svg.ts; the renderers see only this,
 * so their tests can hand them any cluster, e.g. a synthetic 50-node one.
 *
 * A full mesh of 50 nodes is 1225 tunnels or sessions: drawn one by one it is a black
 * smudge. So a mesh is one object ("VXLAN VNI 1: every node with every other", `members`),
 * drawn as a bus the members hang on; only sessions that are not a mesh (route-reflector
 * clients, eBGP to a rack router) and broken ones are drawn singly.
 */
import type { ClusterSnapshot } from './snapshot.js';

export type TunnelKind = 'vxlan' | 'udp' | 'ipip' | 'host-gw' | 'routes' | 'ibgp-mesh';

export interface TopologyNode {
  readonly name: string;
  readonly ip: string;
  readonly subnet: string;
  readonly backend: string;
  readonly ready: boolean;
  /** every expected daemon healthy */
  readonly healthy: boolean;
  readonly routeReflector: boolean;
  readonly pods: number;
}

export interface TopologyRack {
  readonly id: string;
  readonly nodes: readonly TopologyNode[];
}

/**
 * Members reach each other through it. Scope: `cluster` (every member with every other),
 * `cross-rack` (only between racks; within a rack the rack-scoped one carries), `rack`
 * (only within a rack: plain routes need one L2 segment).
 */
export interface TopologyTunnel {
  readonly id: string;
  readonly kind: TunnelKind;
  readonly label: string;
  readonly scope: 'cluster' | 'cross-rack' | 'rack';
  readonly members: readonly string[];
}

export interface TopologySession {
  /** node names, or `peer/<ip>` for a speaker that is not a node */
  readonly a: string;
  readonly b: string;
  readonly state: string;
  readonly kind: 'ibgp' | 'rr' | 'ebgp';
}

export interface TopologyPeer {
  readonly id: string;
  readonly label: string;
  /** the rack whose segment holds its address, if any */
  readonly rack?: string;
}

export interface TopologyService {
  readonly id: string;
  readonly label: string;
  /** endpoints per node */
  readonly endpoints: readonly { readonly node: string; readonly count: number }[];
  /** endpoints without a node (or on a node not in the model) */
  readonly unplaced: number;
}

export interface TopologyModel {
  readonly cluster: string;
  readonly racks: readonly TopologyRack[];
  readonly tunnels: readonly TopologyTunnel[];
  readonly sessions: readonly TopologySession[];
  readonly peers: readonly TopologyPeer[];
  readonly services: readonly TopologyService[];
}

function tunnelsFor(backend: string, vni: number | undefined, members: string[], options: { directRouting: boolean }): TopologyTunnel[] {
  const base = backend.split(/[/ ]/)[0] ?? backend;
  if (base === 'vxlan') {
    const vxlan: TopologyTunnel = { id: 'tunnel/vxlan', kind: 'vxlan', label: `VXLAN${vni !== undefined ? ` VNI ${vni}` : ''} (udp/8472)`, scope: options.directRouting ? 'cross-rack' : 'cluster', members };
    return options.directRouting ? [vxlan, { id: 'tunnel/routes', kind: 'routes', label: 'direct routes (same rack)', scope: 'rack', members }] : [vxlan];
  }
  if (base === 'udp') return [{ id: 'tunnel/udp', kind: 'udp', label: 'UDP encapsulation (udp/8285)', scope: 'cluster', members }];
  if (base === 'host-gw') return [{ id: 'tunnel/host-gw', kind: 'host-gw', label: 'host-gw routes (same L2 only)', scope: 'rack', members }];
  if (base === 'bgp') {
    const mode = backend.includes('ipip') ? backend.slice(backend.indexOf('ipip') + 5) : 'cross-subnet';
    if (mode === 'always') return [{ id: 'tunnel/ipip', kind: 'ipip', label: 'IPIP (always)', scope: 'cluster', members }];
    if (mode === 'never') return [{ id: 'tunnel/routes', kind: 'routes', label: 'BGP routes, no encapsulation', scope: 'cluster', members }];
    return [
      { id: 'tunnel/ipip', kind: 'ipip', label: 'IPIP (across racks)', scope: 'cross-rack', members },
      { id: 'tunnel/routes', kind: 'routes', label: 'BGP routes (same rack)', scope: 'rack', members },
    ];
  }
  return [];
}

export function topologyOf(snapshot: ClusterSnapshot): TopologyModel {
  const racks = new Map<string, TopologyNode[]>();
  for (const n of snapshot.nodes) {
    const node: TopologyNode = {
      name: n.name,
      ip: n.internalIp,
      subnet: n.lease?.subnet ?? n.podCidr,
      backend: n.backend,
      ready: n.ready === 'True',
      healthy: n.daemons.every((d) => !d.expected || d.health === 'healthy'),
      routeReflector: n.routeReflector,
      pods: n.pods,
    };
    racks.set(n.rack, [...(racks.get(n.rack) ?? []), node]);
  }
  // One tunnel set per backend in use (a cluster normally has one).
  const byBackend = new Map<string, string[]>();
  for (const n of snapshot.nodes) byBackend.set(n.backend, [...(byBackend.get(n.backend) ?? []), n.name]);
  const tunnels = [...byBackend].flatMap(([backend, members]) =>
    tunnelsFor(backend, snapshot.nodes.find((n) => n.backend === backend)?.lease?.vni, members, { directRouting: snapshot.directRouting === true }),
  );

  const nodeNames = new Set(snapshot.nodes.map((n) => n.name));
  const sessions = new Map<string, TopologySession>();
  const peers = new Map<string, TopologyPeer>();
  for (const n of snapshot.nodes) {
    for (const p of n.bgpPeers) {
      const other = p.node && nodeNames.has(p.node) ? p.node : `peer/${p.peer}`;
      if (!p.node) {
        const rack = [...racks.keys()].find((r) => r.endsWith('.0/24') && p.peer.startsWith(r.slice(0, r.length - '0/24'.length)));
        peers.set(other, { id: other, label: `AS ${p.asn} ${p.peer}`, ...(rack ? { rack } : {}) });
      }
      const key = [n.name, other].sort().join('|');
      const kind: TopologySession['kind'] = p.role.startsWith('rr') ? 'rr' : p.role === 'mesh' || (p.node && !p.role.startsWith('tor')) ? 'ibgp' : 'ebgp';
      const existing = sessions.get(key);
      // Both ends report a session; a broken state on either end wins.
      if (!existing || (existing.state === 'Established' && p.state !== 'Established')) sessions.set(key, { a: n.name < other ? n.name : other, b: n.name < other ? other : n.name, state: p.state, kind });
    }
  }
  let sessionList = [...sessions.values()];
  const mesh = sessionList.filter((s) => s.kind === 'ibgp');
  const meshMembers = [...new Set(mesh.flatMap((s) => [s.a, s.b]))];
  // A full mesh becomes one bus; its broken sessions stay as lines, so they stand out.
  if (meshMembers.length > 3 && mesh.length >= (meshMembers.length * (meshMembers.length - 1)) / 2) {
    const broken = mesh.filter((s) => s.state !== 'Established');
    tunnels.push({ id: 'tunnel/ibgp-mesh', kind: 'ibgp-mesh', label: `iBGP full mesh: ${mesh.length} sessions, ${mesh.length - broken.length} Established`, scope: 'cluster', members: meshMembers });
    sessionList = sessionList.filter((s) => s.kind !== 'ibgp' || s.state !== 'Established');
  }

  const services = snapshot.services.map((s) => {
    const perNode = new Map<string, number>();
    let unplaced = 0;
    for (const e of s.endpoints) {
      if (e.node && nodeNames.has(e.node)) perNode.set(e.node, (perNode.get(e.node) ?? 0) + 1);
      else unplaced++;
    }
    return {
      id: `svc/${s.namespace}/${s.name}`,
      label: `${s.namespace}/${s.name} ${s.clusterIp}${s.ports.length ? ` ${s.ports.join(',')}` : ''}`,
      endpoints: [...perNode].map(([node, count]) => ({ node, count })),
      unplaced,
    };
  });
  return {
    cluster: snapshot.cluster,
    racks: [...racks].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true })).map(([id, nodes]) => ({ id, nodes })),
    tunnels,
    sessions: sessionList,
    peers: [...peers.values()],
    services,
  };
}
