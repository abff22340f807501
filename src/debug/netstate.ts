/**
 * The node snapshot `pontoon trace` walks: one node namespace's kernel state at one moment,
 * as the node agent's read-only `GET /debug/netstate` serves it (see server.ts) and as the
 * golden fixtures under test/fixtures/trace/ hold it.
 *
 * Design note: the snapshot is plain JSON with addresses as text, not our netlink types, so
 * that (1) an agent of another version can be read (the `version` field says which shape it
 * is; readers reject versions they do not know), (2) fixtures stay readable and diffable, and
 * (3) the path computation in trace/ is a pure function of snapshots — no kernel, no
 * namespaces, unit-testable. Interface references are by name (indexes differ per namespace
 * and mean nothing in a fixture), except `index`/`peerIndex`, which join a pod's eth0 to its
 * veth peer on the node.
 */

export const NETSTATE_VERSION = 1;
/** Where every agent serves the snapshot. */
export const NETSTATE_PATH = '/debug/netstate';
/** flanneld's debug port (a free one near kube-proxy's 10249/10256; see docs/debugging.md). */
export const FLANNELD_DEBUG_PORT = 10271;
/** The BGP node agent's debug port (it runs beside flanneld's alloc backend on backend bgp). */
export const BGP_DEBUG_PORT = 10272;

export interface NetState {
  version: typeof NETSTATE_VERSION;
  /** The agent's node name (or the namespace's, for a direct read). */
  node: string;
  /** ISO time the snapshot was taken. */
  takenAt: string;
  /** How long gathering took, in milliseconds. */
  gatherMs: number;
  links: LinkState[];
  addresses: AddressState[];
  /** Every table, both families. */
  routes: RouteState[];
  neighbours: NeighbourState[];
  fdb: FdbState[];
  sysctls: SysctlState;
  /** `nft -j list ruleset` (with counters where rules have them); null when nft is missing. */
  nftables: NftRuleset | null;
  /** `iptables-save -c`; null when iptables is missing. */
  iptables: string | null;
  pods: PodSandboxState[];
  /** What could not be read, one line each (a part missing is not an error of the whole). */
  errors: string[];
}

export interface LinkState {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: veth, bridge, vxlan, tun, ipip, ... (absent for physical/loopback). */
  kind?: string;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** IFF_LOWER_UP: carrier (a veth whose peer is down has none). */
  lowerUp: boolean;
  mtu: number;
  mac?: string;
  /** The bridge (or other master) this link is a port of. */
  master?: string;
  /** IFLA_LINK: a veth's peer index (in the peer's namespace), a vxlan's underlay index. */
  peerIndex?: number;
  /** The veth peer lives in another namespace. */
  peerInOtherNetns?: boolean;
  /** Bridge ports: hairpin mode (from sysfs brport/hairpin_mode). */
  hairpin?: boolean;
  vxlan?: { vni: number; port: number; local?: string; underlay?: string; learning: boolean };
}

export interface AddressState {
  dev: string;
  /** `ip/prefix` */
  address: string;
  family: 4 | 6;
  scope: number;
}

export interface RouteState {
  family: 4 | 6;
  /** `ip/prefix`, or `default` */
  dst: string;
  table: number;
  /** RTPROT_* number (kernel 2, boot 3, static 4, flanneld 11, bgp 186 ...). */
  protocol: number;
  scope: number;
  /** RTN_* number: 1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable, 8 prohibit. */
  type: number;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  metric?: number;
  mtu?: number;
  onlink?: boolean;
}

export interface NeighbourState {
  family: 4 | 6;
  ip: string;
  mac?: string;
  dev: string;
  /** NUD_* bits: 0x02 reachable, 0x04 stale, 0x20 failed, 0x40 noarp, 0x80 permanent. */
  state: number;
}

export interface FdbState {
  mac: string;
  dev: string;
  /** VXLAN FDB: the remote VTEP (underlay address). */
  dst?: string;
  /** Bridge FDB: the bridge this entry is in. */
  master?: string;
  state: number;
  /** NTF_SELF: an entry of the device itself (vxlan) rather than of its master bridge. */
  self: boolean;
}

export interface SysctlState {
  /** net.ipv4.ip_forward */
  ipForward: boolean;
  /** net.ipv6.conf.all.forwarding */
  ipv6Forward: boolean;
  /** net.ipv4.conf.<dev>.rp_filter, including `all` and `default` (0 off, 1 strict, 2 loose). */
  rpFilter: Record<string, number>;
  /** net.bridge.bridge-nf-call-iptables (br_netfilter loaded and on): bridged frames meet netfilter. */
  bridgeNfCallIptables?: boolean;
}

/** nft's JSON output: `{ nftables: [ { metainfo }, { table }, { chain }, { rule }, { set }, { map } ... ] }`. */
export interface NftRuleset {
  nftables: NftObject[];
}

/** One nft JSON object; the shapes the trace reads are typed in trace/nft-eval.ts. */
export type NftObject = Record<string, unknown>;

export interface PodSandboxState {
  /** The sandbox's namespace name. */
  netns: string;
  /** The pod end of the veth pair; absent when the namespace has no eth0. */
  eth0?: { index: number; up: boolean; lowerUp: boolean; mtu: number; mac?: string; peerIndex?: number };
  addresses: AddressState[];
  routes: RouteState[];
  /** The node-side veth (by name) whose peer is this eth0. */
  hostVeth?: string;
  error?: string;
}

export function isNetState(value: unknown): value is NetState {
  return typeof value === 'object' && value !== null && (value as { version?: unknown }).version === NETSTATE_VERSION && Array.isArray((value as { links?: unknown }).links);
}
