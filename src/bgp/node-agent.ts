/**
 * `pontoon bgp node`: the speaker as a cluster backend, the way Calico's BIRD runs on
 * every node. Its configuration comes from Node objects instead of a file:
 *
 *   own Node   → router id and listen address (InternalIP), the block to announce (podCIDR)
 *   all Nodes  → peers: a full iBGP mesh, or — when some Nodes carry the route-reflector
 *                label — every node peers with every reflector, and reflectors peer with
 *                everyone (clients: the others; non-clients: the other reflectors). Each
 *                reflector's cluster id is its router id.
 *   --topology tor → the only peer is the rack's router (eBGP, `torPeer`); our AS comes from
 *                the Node's pontoon.io/bgp-asn annotation, and learned routes go `via` the
 *                router (its NEXT_HOP may be another rack's gateway address).
 *
 * A Node added or deleted changes the peer set at run time (no restart); its routes leave
 * with its session.
 *
 * Kernel routes for each best route, by IPIP mode:
 *   never        `<block> via <node IP>` (nodes must share an L2 segment)
 *   always       `<block> dev pipip0`, the tunnel's peer table mapping block → node IP
 *   cross-subnet IPIP only towards nodes outside our underlay segment, plain routes within
 * and a blackhole for our own block (metric 1000: below the bridge's connected route, so
 * it only catches traffic for our block while no pod network is up, as Calico's does).
 */
import type { Node } from '../api/types.js';
import { RESOURCE } from '../api/resources.js';
import type { KubeApi } from '../client/api.js';
import { Informer } from '../client/informer.js';
import { formatIp, formatIpNet, type Ip, type IpNet, netContains, networkOf, parseIpNet, tryParseIp } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import type { Rtnl } from '../lib/netlink/rtnl.js';
import { BgpConfigError, type BgpConfig, type PeerConfig } from './config.js';
import { type IpipControlClient, ensureIpipDaemon } from './ipip/daemon.js';
import { DEFAULT_IPIP_DEVICE } from './ipip/index.js';
import { KernelRoutes } from './kernel.js';
import type { DesiredRoute } from './kernel.js';
import { Speaker } from './speaker.js';
import type { Route } from './types.js';

export const ROUTE_REFLECTOR_LABEL = 'pontoon.io/route-reflector';
export const ASN_ANNOTATION = 'pontoon.io/bgp-asn';
export const DEFAULT_CLUSTER_ASN = 64512;
export const IPIP_MODES = ['always', 'cross-subnet', 'never'] as const;
export type IpipMode = (typeof IPIP_MODES)[number];
/** mesh: full iBGP mesh or route reflectors (from the label); tor: eBGP to the rack's router only */
export const BGP_TOPOLOGIES = ['mesh', 'tor'] as const;
export type BgpTopology = (typeof BGP_TOPOLOGIES)[number];
export const DEFAULT_TOR_ASN = 65000;
const BLACKHOLE_METRIC = 1000;

export interface NodeAgentOptions {
  readonly api: KubeApi;
  readonly nodeName: string;
  readonly rtnl: Rtnl;
  readonly ipip: IpipMode;
  readonly controlSocket: string;
  /** the IPIP tunnel process's socket (started when missing; it outlives the agent) */
  readonly ipipSocket: string;
  /** the `pontoon` CLI, to start the tunnel process with */
  readonly cli: string;
  readonly metricsAddress?: { host: string; port: number };
  readonly holdTimeSeconds?: number;
  /** default mesh */
  readonly topology?: BgpTopology;
  /** topology tor: the rack's router (our only peer, eBGP) */
  readonly torPeer?: { readonly address: Ip; readonly asn: number };
  readonly log: Logger;
}

export interface NodeFacts {
  readonly name: string;
  readonly address: Ip;
  readonly asn: number;
  readonly reflector: boolean;
  readonly block?: IpNet;
}

function factsOf(node: Node): NodeFacts | undefined {
  const address = tryParseIp(node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '');
  if (!address || !node.metadata.name) return undefined;
  const asnText = node.metadata.annotations?.[ASN_ANNOTATION];
  const asn = asnText && /^\d+$/.test(asnText) ? Number(asnText) : DEFAULT_CLUSTER_ASN;
  const cidr = node.spec?.podCIDR;
  return { name: node.metadata.name, address, asn, reflector: node.metadata.labels?.[ROUTE_REFLECTOR_LABEL] === 'true', ...(cidr ? { block: networkOf(parseIpNet(cidr)) } : {}) };
}

/**
 * Who peers with whom (pure; tested on its own). With `tor` given (the top-of-rack topology)
 * the node's only peer is its rack's router, over eBGP: the node waits for the router to
 * connect (the lab's router speaker is active-only, acting for every rack from one process).
 */
export function peersFor(self: NodeFacts, nodes: readonly NodeFacts[], tor?: { readonly address: Ip; readonly asn: number }): PeerConfig[] {
  if (tor) return [{ address: tor.address, asn: tor.asn, port: 179, routeReflectorClient: false, passive: true, description: 'tor' }];
  const others = nodes.filter((n) => n.name !== self.name);
  const reflectors = nodes.filter((n) => n.reflector);
  const peer = (n: NodeFacts, rrClient: boolean, description: string): PeerConfig => ({ address: n.address, asn: n.asn, port: 179, routeReflectorClient: rrClient, passive: false, description });
  if (reflectors.length === 0) return others.map((n) => peer(n, false, 'mesh'));
  if (self.reflector) return others.map((n) => (n.reflector ? peer(n, false, 'rr') : peer(n, true, 'rr-client')));
  return others.filter((n) => n.reflector).map((n) => peer(n, false, 'rr'));
}

export class NodeAgent {
  private readonly nodes: Informer<Node>;
  private speaker: Speaker | undefined;
  private tunnel: IpipControlClient | undefined;
  /** what the tunnel process should hold: block → node, sent whole after each change */
  private readonly tunnelPeers = new Map<string, { block: IpNet; underlay: Ip }>();
  private tunnelFlushScheduled = false;
  private segment: IpNet | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: NodeAgentOptions) {
    if (options.topology === 'tor' && !options.torPeer) throw new BgpConfigError('torPeer', 'topology tor needs the rack router');
    this.nodes = new Informer<Node>(options.api, RESOURCE.nodes, { log: options.log });
    // Node events arrive in bursts (the initial list is one `add` per Node); reconciles run
    // one at a time, or two would each start a speaker and a tunnel.
    const changed = (): void => {
      this.queue = this.queue.then(() => this.reconcile()).catch((err: unknown) => options.log.error({ err: String(err) }, 'BGP node agent reconcile failed'));
    };
    this.nodes.on('add', changed).on('update', changed).on('delete', changed);
  }

  async start(): Promise<void> {
    await this.nodes.start();
    await this.queue;
    await this.reconcile();
  }

  async stop(graceful: boolean): Promise<void> {
    this.nodes.stop();
    // The tunnel process stays: the data path must outlive a restart of the control plane.
    await this.speaker?.stop(graceful);
    this.tunnel?.close();
  }

  get status(): Speaker | undefined {
    return this.speaker;
  }

  private async reconcile(): Promise<void> {
    const all = this.nodes.list().map(factsOf).filter((f): f is NodeFacts => f !== undefined);
    const self = all.find((n) => n.name === this.options.nodeName);
    if (!self?.block) {
      this.options.log.info({ node: this.options.nodeName }, 'waiting for this Node’s InternalIP and podCIDR');
      return;
    }
    if (!this.speaker) await this.startSpeaker(self, all);
    this.speaker?.setPeers(this.peersOf(self, all));
  }

  private peersOf(self: NodeFacts, all: readonly NodeFacts[]): PeerConfig[] {
    return peersFor(self, all, this.options.topology === 'tor' ? this.options.torPeer : undefined);
  }

  private async startSpeaker(self: NodeFacts, all: readonly NodeFacts[]): Promise<void> {
    const { options } = this;
    const block = self.block as IpNet;
    this.segment = this.segmentOf(self.address);
    if (options.ipip !== 'never') this.tunnel = await ensureIpipDaemon(options.ipipSocket, { cli: options.cli, underlay: self.address, block });
    // Routes of ours already in the kernel: we restarted, and forwarding went on meanwhile.
    const restarting = new KernelRoutes(options.rtnl, { log: options.log }).dump().length > 0;
    const config: BgpConfig = {
      localAsn: self.asn,
      routerId: Number(self.address.value),
      listenAddress: self.address,
      listenPort: 179,
      ...(self.reflector ? { clusterId: Number(self.address.value) } : {}),
      holdTimeSeconds: options.holdTimeSeconds ?? 90,
      controlSocket: options.controlSocket,
      ...(options.metricsAddress ? { metricsAddress: options.metricsAddress } : {}),
      gracefulRestart: { enabled: true, restartTimeSeconds: 120 },
      kernelSync: true,
      nextHops: { ipv4: self.address },
      announce: [block],
      // The peers known now, so a restarted speaker's selection deferral waits for them.
      peers: this.peersOf(self, all),
    };
    this.speaker = new Speaker({ config, log: options.log, rtnl: options.rtnl, restarting, kernelRoute: (route) => this.kernelRoute(route) });
    await this.speaker.start();
    options.log.info({ node: self.name, block: formatIpNet(block), address: formatIp(self.address), reflector: self.reflector, topology: options.topology ?? 'mesh', asn: self.asn, ipip: options.ipip, tunnel: this.tunnel ? DEFAULT_IPIP_DEVICE : undefined, restarting }, 'BGP node agent started');
  }

  /** The connected subnet our InternalIP is on: nodes inside it are reached without IPIP in cross-subnet mode. */
  private segmentOf(address: Ip): IpNet | undefined {
    for (const a of this.options.rtnl.addresses()) {
      if (a.address.family === address.family && a.address.value === address.value) return networkOf(a.address);
    }
    return undefined;
  }

  private kernelRoute(route: Route): DesiredRoute | undefined {
    if (route.from.id === '') return { prefix: route.prefix, kind: 'blackhole', metric: BLACKHOLE_METRIC };
    const next = route.attributes.nextHop;
    if (!next || next.family !== route.prefix.family) return undefined;
    // tor: the router advertises one NEXT_HOP (its own id address) to every rack; the way
    // to it is always our rack's router address, on our segment.
    const tor = this.options.topology === 'tor' ? this.options.torPeer : undefined;
    const gateway = tor && next.family === tor.address.family && !(this.segment !== undefined && netContains(this.segment, next)) ? tor.address : next;
    const local = this.segment !== undefined && netContains(this.segment, gateway);
    const encapsulate = this.tunnel !== undefined && (this.options.ipip === 'always' || !local);
    const key = formatIpNet(route.prefix);
    if (encapsulate) {
      this.tunnelPeers.set(key, { block: route.prefix, underlay: gateway });
      this.flushTunnel();
      return { prefix: route.prefix, kind: 'dev', device: DEFAULT_IPIP_DEVICE };
    }
    if (this.tunnelPeers.delete(key)) this.flushTunnel();
    return { prefix: route.prefix, kind: 'via', gateway };
  }

  /** One full table to the tunnel process per event-loop turn of changes. */
  private flushTunnel(): void {
    if (this.tunnelFlushScheduled || !this.tunnel) return;
    this.tunnelFlushScheduled = true;
    setImmediate(() => {
      this.tunnelFlushScheduled = false;
      this.tunnel?.setPeers(this.tunnelPeers);
    });
  }
}
