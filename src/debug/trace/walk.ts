/**
 * The path computation: a packet walked hop by hop through the NetStates of the nodes it
 * crosses, each hop naming the kernel entry or rule that decided it. A pure function of the
 * snapshots and the request (no kernel, no network), so it runs on committed fixtures.
 *
 * The walk follows what the kernel does for the first packet of a connection:
 *   pod eth0 (link, route) → veth peer → bridge (port, learned MAC) → prerouting (DNAT)
 *   → routing decision (local? ip_forward, rp_filter, route) → forward → postrouting
 *   (masquerade) → egress device (up, MTU) → bridge port of a local pod, or an
 *   encapsulation (vxlan: neighbour + FDB; ipip; flannel udp) whose outer packet is routed
 *   again from the same node → underlay next hop → the node owning it (input, decap) → ...
 * It stops at the first hop that kills the packet and says why.
 */
import { netContains, parseIpNet, tryParseIp } from '../../lib/ip.js';
import type { LinkState, NetState, PodSandboxState } from '../netstate.js';
import { NodeNetfilter } from './netfilter.js';
import type { Hook, NetfilterOutcome } from './nft-eval.js';
import type { Hop, L4Proto, Packet, TraceResult } from './packet.js';
import { deviceWithAddress, isLocalAddress, lookupRoute, renderRoute, sourceFor } from './routing.js';

/** What the walk knows about a node besides its snapshot (from the apiserver). */
export interface NodeFacts {
  name: string;
  /** Pod CIDR (the flannel udp backend's lease table is the Nodes' podCIDRs and public IPs). */
  podCidr?: string;
  publicIp?: string;
}

export interface TraceRequest {
  /** The nodes the walk may visit: snapshot and facts by node name. */
  nodes: ReadonlyMap<string, { state: NetState; facts: NodeFacts }>;
  from: { kind: 'pod'; node: string; ip: string; name: string } | { kind: 'node'; node: string };
  dst: string;
  proto: L4Proto;
  dport?: number;
  /** Total IP packet size; default the source interface's MTU (a full-size segment). */
  size?: number;
  /** The destination as asked, e.g. `svc/web:80` or `pod/web-1`, for messages. */
  dstLabel: string;
  /** Pod names by IP, for messages. */
  podNames?: ReadonlyMap<string, string>;
  /** The Service the destination address is, with its endpoints as the API lists them. */
  service?: { name: string; endpoints: string[] };
  /** Service DNAT: follow this candidate endpoint (`ip:port`); default the first. */
  preferEndpoint?: string;
}

const VXLAN_OVERHEAD = 50;
const IPIP_OVERHEAD = 20;
const FLANNEL_UDP_OVERHEAD = 28;
const FLANNEL_UDP_PORT = 8285;
const NUD_FAILED = 0x20;
const NUD_INCOMPLETE = 0x01;
const MAX_NODE_VISITS = 12;

type Encapsulated = Packet & { inner?: { packet: Packet; kind: 'vxlan' | 'ipip' | 'udp'; vni?: number } };

class Walk {
  readonly hops: Hop[] = [];
  private visits = 0;
  private readonly netfilters = new Map<string, NodeNetfilter>();

  constructor(private readonly request: TraceRequest) {}

  pass(node: string, step: string, detail: string, at?: Hop['at']): void {
    this.hops.push({ node, step, detail, verdict: 'pass', ...(at ? { at } : {}) });
  }

  die(node: string, step: string, detail: string, reason: string): false {
    this.hops.push({ node, step, detail, verdict: 'drop', reason });
    return false;
  }

  private netfilter(node: string, state: NetState): NodeNetfilter {
    let nf = this.netfilters.get(node);
    if (!nf) this.netfilters.set(node, (nf = new NodeNetfilter(state)));
    return nf;
  }

  private state(node: string): NetState | undefined {
    return this.request.nodes.get(node)?.state;
  }

  /** Starts the walk; true when the packet arrives. */
  run(packet: Encapsulated): boolean {
    const from = this.request.from;
    const state = this.state(from.node);
    if (!state) return this.die(from.node, 'snapshot', 'no netstate', `no snapshot of node ${from.node}`);
    if (from.kind === 'pod') return this.fromPod(from, state, packet);
    return this.fromNode(from.node, state, packet);
  }

  private fromPod(from: { node: string; ip: string; name: string }, state: NetState, packet: Encapsulated): boolean {
    const where = `pod ${from.name}`;
    const sandbox = podWithAddress(state, from.ip);
    if (!sandbox) return this.die(where, 'pod', `no sandbox with ${from.ip} on ${from.node}`, `node ${from.node} has no pod namespace holding ${from.ip}`);
    const eth0 = sandbox.eth0;
    if (!eth0) return this.die(where, 'pod', `sandbox ${sandbox.netns} has no eth0`, 'pod has no eth0');
    if (!eth0.up) return this.die(where, 'pod', `eth0 mtu ${eth0.mtu} DOWN`, 'interface eth0 in the pod is down');
    const route = lookupRoute(sandbox.routes, packet.dst);
    if (!route) return this.die(where, 'route', `no route to ${packet.dst} in the pod`, `no route to ${packet.dst} in pod ${from.name}`);
    if (packet.size > eth0.mtu) return this.die(where, 'mtu', `eth0 mtu ${eth0.mtu}`, `MTU: packet of ${packet.size} bytes > eth0 mtu ${eth0.mtu} in the pod`);
    this.pass(where, 'pod', `eth0 ${from.ip} mac ${eth0.mac ?? '?'} mtu ${eth0.mtu}, ${renderRoute(route)}`, { podNetns: sandbox.netns, iface: 'eth0' });
    const veth = state.links.find((l) => l.name === sandbox.hostVeth);
    if (!veth) return this.die(from.node, 'veth', `peer of ${sandbox.netns} eth0 (ifindex ${eth0.peerIndex ?? '?'})`, `the pod's veth peer is missing on ${from.node}`);
    const linkProblem = downReason(veth);
    if (linkProblem) return this.die(from.node, 'veth', `${veth.name} mtu ${veth.mtu}`, linkProblem);
    if (!veth.master) {
      this.pass(from.node, 'veth', `${veth.name} (no bridge) mtu ${veth.mtu}`);
      return this.ingress(from.node, state, veth.name, packet);
    }
    const bridge = state.links.find((l) => l.name === veth.master);
    if (!bridge) return this.die(from.node, 'bridge', `${veth.name} master ${veth.master}`, `bridge ${veth.master} is missing`);
    const bridgeProblem = downReason(bridge);
    if (bridgeProblem) return this.die(from.node, 'bridge', `${bridge.name} mtu ${bridge.mtu}`, bridgeProblem);
    const learned = state.fdb.some((f) => f.mac === eth0.mac && f.dev === veth.name && !f.self);
    this.pass(from.node, 'veth', `${veth.name} mtu ${veth.mtu} up, port of ${bridge.name}${veth.hairpin === undefined ? '' : veth.hairpin ? ' (hairpin on)' : ' (hairpin off)'}`, { node: from.node, iface: veth.name });
    if (!route.gateway) return this.bridged(from.node, state, bridge, veth, eth0.mac, learned, packet);
    if (state.sysctls.bridgeNfCallIptables) return this.brNetfilter(from.node, state, bridge, veth, eth0.mac, learned, packet);
    this.pass(from.node, 'bridge', `${bridge.name} ${learned ? `learned ${eth0.mac ?? '?'} on ${veth.name}` : `${eth0.mac ?? '?'} not learned yet`} → to the host (${bridge.mac ?? '?'})`, { node: from.node, iface: bridge.name });
    return this.ingress(from.node, state, bridge.name, packet);
  }

  /**
   * br_netfilter (bridge-nf-call-iptables=1): the frame meets the IP prerouting hook at the
   * bridge, before the host stack. When DNAT sends it to an address behind the same bridge
   * (a Service endpoint on this node), br_netfilter bridges it straight to that port
   * (br_nf_pre_routing_finish_bridge): the bridge device itself never receives it.
   */
  private brNetfilter(node: string, state: NetState, bridge: LinkState, veth: LinkState, mac: string | undefined, learned: boolean, packet: Encapsulated): boolean {
    this.pass(node, 'bridge', `${bridge.name} ${learned ? `learned ${mac ?? '?'} on ${veth.name}` : `${mac ?? '?'} not learned yet`}; br_netfilter: prerouting at the bridge`);
    const pre = this.hook(node, state, 'prerouting', packet, { iif: bridge.name });
    if (pre === false) return false;
    const route = lookupRoute(state.routes, packet.dst);
    if (pre.dnat && route?.dev === bridge.name && route.type !== 2) {
      this.pass(node, 'bridge', `br_netfilter: ${packet.dst} is behind ${bridge.name} too: bridged to its port, not through the host`);
      const fwd = this.hook(node, state, 'forward', packet, { iif: bridge.name, oif: bridge.name });
      if (fwd === false) return false;
      const post = this.hook(node, state, 'postrouting', packet, { iif: bridge.name, oif: bridge.name });
      if (post === false) return false;
      if (post.masquerade) {
        const src = sourceFor(state, route);
        if (src) {
          this.pass(node, 'nf postrouting', `masquerade ${packet.src} → ${src}`);
          packet.src = src;
        }
      }
      return this.toLocalPod(node, state, bridge, packet, false);
    }
    this.pass(node, 'bridge', `→ to the host (${bridge.mac ?? '?'})`, { node, iface: bridge.name });
    return this.ingress(node, state, bridge.name, packet, true);
  }

  /**
   * The pod's route to the destination is on-link (same subnet): the pod ARPs for it and the
   * bridge forwards port to port. The host's IP stack (routes, netfilter — unless
   * br_netfilter is on) never sees the packet.
   */
  private bridged(node: string, state: NetState, bridge: LinkState, fromVeth: LinkState, fromMac: string | undefined, learned: boolean, packet: Encapsulated): boolean {
    const pod = podWithAddress(state, packet.dst);
    const to = pod ? state.links.find((l) => l.name === pod.hostVeth && l.master === bridge.name) : undefined;
    if (!pod?.eth0 || !to) return this.die(node, 'bridge', `${bridge.name}: no port holds ${packet.dst}`, `nothing on ${bridge.name} answers ARP for ${packet.dst} (on-link from the pod)`);
    const toLearned = state.fdb.some((f) => f.mac === pod.eth0?.mac && f.dev === to.name && !f.self);
    this.pass(node, 'bridge', `${bridge.name} bridges ${fromVeth.name} → ${to.name} (L2, on-link: ${learned ? `${fromMac ?? '?'} learned` : 'source not learned yet'}, ${toLearned ? `${pod.eth0.mac ?? '?'} learned on ${to.name}` : 'destination MAC flooded'})`);
    // br_netfilter runs the IP hooks for bridged frames too (prerouting, forward, postrouting).
    if (state.sysctls.bridgeNfCallIptables) {
      for (const hook of ['prerouting', 'forward', 'postrouting'] as const) {
        if (this.hook(node, state, hook, packet, { iif: bridge.name, oif: bridge.name }) === false) return false;
      }
    }
    const problem = downReason(to);
    if (problem) return this.die(node, 'veth', `${to.name} mtu ${to.mtu}`, problem);
    if (packet.size > to.mtu) return this.die(node, 'mtu', `${to.name} mtu ${to.mtu}`, `MTU: packet of ${packet.size} bytes > ${to.name} mtu ${to.mtu} on ${node}`);
    this.pass(node, 'veth', `${to.name} mtu ${to.mtu} → ${pod.netns} eth0`, { node, iface: to.name });
    const where = `pod ${this.request.podNames?.get(packet.dst) ?? pod.netns}`;
    if (!pod.eth0.up) return this.die(where, 'pod', 'eth0 DOWN', 'interface eth0 in the destination pod is down');
    this.pass(where, 'deliver', `eth0 ${packet.dst} (${packet.src} → ${packet.dst}${packet.dport !== undefined ? `:${packet.dport}` : ''} ${packet.proto})`, { podNetns: pod.netns, iface: 'eth0' });
    return true;
  }

  private fromNode(node: string, state: NetState, packet: Encapsulated): boolean {
    let route = lookupRoute(state.routes, packet.dst);
    if (!route) return this.die(node, 'route', `no route to ${packet.dst}`, `no route to ${packet.dst} on ${node}`);
    if (!packet.src) packet.src = sourceFor(state, route) ?? '0.0.0.0';
    if (route.type === 2) {
      this.pass(node, 'route', renderRoute(route));
      return this.localDelivery(node, state, 'lo', packet);
    }
    const nf = this.hook(node, state, 'output', packet, { oif: route.dev ?? '' });
    if (nf === false) return false;
    if (nf.dnat) {
      const rerouted = lookupRoute(state.routes, packet.dst);
      if (!rerouted) return this.die(node, 'route', `no route to ${packet.dst} (after DNAT)`, `no route to ${packet.dst} on ${node}`);
      route = rerouted;
      if (route.type === 2) {
        this.pass(node, 'route', renderRoute(route));
        return this.localDelivery(node, state, 'lo', packet);
      }
    }
    const blocked = unusableRoute(route);
    if (blocked) return this.die(node, 'route', renderRoute(route), blocked);
    this.pass(node, 'route', renderRoute(route));
    return this.postAndEgress(node, state, route, packet, undefined);
  }

  private hook(node: string, state: NetState, hook: Hook, packet: Packet, ifaces: { iif?: string; oif?: string }): NetfilterOutcome | false {
    const before = `${packet.dst}:${packet.dport ?? ''}`;
    const outcome = this.netfilter(node, state).run(hook, packet, { ...ifaces, isLocal: (ip) => isLocalAddress(state, ip), ...(this.request.preferEndpoint ? { preferEndpoint: this.request.preferEndpoint } : {}) });
    const step = `nf ${hook}`;
    for (const hit of outcome.hits) {
      if (hit === outcome.killer) continue;
      this.pass(node, step, describeHit(hit));
    }
    for (const skipped of outcome.unknown) this.pass(node, step, `not evaluated (expression not modelled): ${describeHit(skipped)}`);
    if (outcome.dnat) {
      const hop: Hop = { node, step: `nf ${hook}`, detail: `DNAT ${before} → ${packet.dst}${packet.dport !== undefined ? `:${packet.dport}` : ''} (candidates: ${outcome.dnat.candidates.join(', ') || 'none'})`, verdict: 'pass', candidates: outcome.dnat.candidates };
      this.hops.push(hop);
    }
    if (outcome.verdict !== 'accept') {
      const killer = outcome.killer;
      const noEndpoints = this.request.service && this.request.service.endpoints.length === 0 ? ` — Service ${this.request.service.name} has no endpoints` : '';
      return this.die(node, step, killer ? describeHit(killer) : outcome.verdict, `${outcome.verdict === 'reject' ? 'rejected' : 'dropped'} by ${killer?.where ?? 'netfilter'}${killer?.comment ? ` ("${killer.comment}")` : ''}${noEndpoints}`);
    }
    return outcome;
  }

  /** A packet entering a node on `iif`. */
  private ingress(node: string, state: NetState, iif: string, packet: Encapsulated, preroutingDone = false): boolean {
    if (++this.visits > MAX_NODE_VISITS) return this.die(node, 'loop', `visited ${MAX_NODE_VISITS} nodes`, 'routing loop');
    if (!preroutingDone && this.hook(node, state, 'prerouting', packet, { iif }) === false) return false;
    if (isLocalAddress(state, packet.dst)) {
      this.pass(node, 'route', `${packet.dst} is local (table local)`);
      return this.localDelivery(node, state, iif, packet);
    }
    if (!state.sysctls.ipForward) return this.die(node, 'forward', 'net.ipv4.ip_forward = 0', `ip_forward off on ${node}: it does not route packets arriving on ${iif}`);
    const rp = Math.max(state.sysctls.rpFilter['all'] ?? 0, state.sysctls.rpFilter[iif] ?? 0);
    if (rp > 0) {
      const back = lookupRoute(state.routes, packet.src);
      const ok = rp === 1 ? back?.dev === iif : back !== undefined;
      const backText = back ? renderRoute(back) : 'no route';
      if (!ok) return this.die(node, 'rp_filter', `rp_filter ${rp === 1 ? 'strict' : 'loose'} on ${iif}: reverse route to ${packet.src} is ${backText}`, `rp_filter ${rp === 1 ? 'strict' : 'loose'} on ${node} drops ${packet.src} arriving on ${iif} (reverse path ${back?.dev ? `via ${back.dev}` : 'missing'})`);
      this.pass(node, 'rp_filter', `rp_filter ${rp === 1 ? 'strict' : 'loose'} on ${iif}: reverse path ok (${backText})`);
    }
    const route = lookupRoute(state.routes, packet.dst);
    if (!route) return this.die(node, 'route', `no route to ${packet.dst}`, `no route to ${packet.dst} on ${node}`);
    const blocked = unusableRoute(route);
    if (blocked) return this.die(node, 'route', renderRoute(route), blocked);
    this.pass(node, 'route', renderRoute(route));
    const fwd = this.hook(node, state, 'forward', packet, { iif, oif: route.dev ?? '' });
    if (fwd === false) return false;
    return this.postAndEgress(node, state, route, packet, iif);
  }

  private isServiceAddress(ip: string): boolean {
    return this.request.service !== undefined && ip === this.request.dst;
  }

  private postAndEgress(node: string, state: NetState, route: NonNullable<ReturnType<typeof lookupRoute>>, packet: Encapsulated, iif: string | undefined): boolean {
    const post = this.hook(node, state, 'postrouting', packet, { ...(iif ? { iif } : {}), oif: route.dev ?? '' });
    if (post === false) return false;
    if (post.masquerade) {
      const src = sourceFor(state, route);
      if (src) {
        this.pass(node, 'nf postrouting', `masquerade ${packet.src} → ${src}`);
        packet.src = src;
      }
    }
    if (this.request.service && this.request.service.endpoints.length === 0 && this.isServiceAddress(packet.dst)) {
      return this.die(node, 'service', `${this.request.service.name} → no endpoints`, `Service ${this.request.service.name} has no endpoints: nothing answers ${packet.dst}`);
    }
    const dev = state.links.find((l) => l.name === route.dev);
    if (!dev) return this.die(node, 'egress', `dev ${route.dev ?? '?'}`, `route points at ${route.dev ?? 'no device'}, which does not exist`);
    // A bridge loses its carrier when its last port goes down: name the port, not the bridge.
    if (dev.kind === 'bridge' && dev.up) return this.toLocalPod(node, state, dev, packet);
    const problem = downReason(dev);
    if (problem) return this.die(node, 'egress', `${dev.name} mtu ${dev.mtu}`, problem);
    const mtu = route.mtu ?? dev.mtu;
    if (packet.size > mtu) return this.die(node, 'mtu', `${dev.name} mtu ${mtu}`, `MTU: packet of ${packet.size} bytes > ${route.mtu ? 'route' : dev.name} mtu ${mtu} on ${node}`);
    if (dev.kind === 'bridge') return this.toLocalPod(node, state, dev, packet);
    if (dev.kind === 'vxlan') return this.vxlanEncap(node, state, dev, route.gateway ?? packet.dst, packet);
    if (dev.kind === 'ipip' || dev.name === 'tunl0') return this.ipipEncap(node, state, dev, route.gateway, packet);
    // A TUN device is flannel's udp backend (flannel0) or, where the kernel has no ipip
    // module, the BGP backend's userspace IPIP tunnel (its routes carry the bgp protocol).
    if (dev.kind === 'tun' && isUserspaceIpip(dev, route.protocol)) return this.ipipEncap(node, state, dev, route.gateway ?? this.ownerOfPodAddress(packet.dst), packet);
    if (dev.kind === 'tun') return this.udpEncap(node, state, dev, packet);
    return this.underlay(node, state, dev, route.gateway ?? packet.dst, packet);
  }

  private toLocalPod(node: string, state: NetState, bridge: LinkState, packet: Encapsulated, viaBridgeDevice = true): boolean {
    const pod = podWithAddress(state, packet.dst);
    if (!pod?.eth0) return this.die(node, 'bridge', `${bridge.name}: no port holds ${packet.dst}`, `no pod with ${packet.dst} behind ${bridge.name} on ${node}`);
    const veth = state.links.find((l) => l.name === pod.hostVeth);
    if (!veth) return this.die(node, 'bridge', `${bridge.name}: pod ${pod.netns} has no veth peer here`, `the veth of ${packet.dst} is missing on ${node}`);
    const neighbour = state.neighbours.find((n) => n.ip === packet.dst && n.dev === bridge.name);
    const learned = state.fdb.some((f) => f.mac === pod.eth0?.mac && f.dev === veth.name && !f.self);
    this.pass(node, 'bridge', `${bridge.name} ${neighbour?.mac ? `neighbour ${packet.dst} lladdr ${neighbour.mac}` : `${packet.dst} not in the neighbour table yet (ARP)`}, ${learned ? `${pod.eth0.mac ?? '?'} learned on ${veth.name}` : 'MAC not learned yet (flooded)'}`, viaBridgeDevice ? { node, iface: bridge.name } : undefined);
    const problem = downReason(veth);
    if (problem) return this.die(node, 'veth', `${veth.name} mtu ${veth.mtu}`, problem);
    const bridgeProblem = downReason(bridge);
    if (bridgeProblem) return this.die(node, 'bridge', `${bridge.name} mtu ${bridge.mtu}`, bridgeProblem);
    if (packet.size > bridge.mtu) return this.die(node, 'mtu', `${bridge.name} mtu ${bridge.mtu}`, `MTU: packet of ${packet.size} bytes > ${bridge.name} mtu ${bridge.mtu} on ${node}`);
    if (packet.size > veth.mtu) return this.die(node, 'mtu', `${veth.name} mtu ${veth.mtu}`, `MTU: packet of ${packet.size} bytes > ${veth.name} mtu ${veth.mtu} on ${node}`);
    this.pass(node, 'veth', `${veth.name} mtu ${veth.mtu} → ${pod.netns} eth0`, { node, iface: veth.name });
    const where = `pod ${this.request.podNames?.get(packet.dst) ?? pod.netns}`;
    if (!pod.eth0.up) return this.die(where, 'pod', 'eth0 DOWN', 'interface eth0 in the destination pod is down');
    if (packet.size > pod.eth0.mtu) return this.die(where, 'mtu', `eth0 mtu ${pod.eth0.mtu}`, `MTU: packet of ${packet.size} bytes > eth0 mtu ${pod.eth0.mtu} in the pod`);
    this.pass(where, 'deliver', `eth0 ${packet.dst} (${packet.src} → ${packet.dst}${packet.dport !== undefined ? `:${packet.dport}` : ''} ${packet.proto})`, { podNetns: pod.netns, iface: 'eth0' });
    return true;
  }

  private vxlanEncap(node: string, state: NetState, dev: LinkState, gateway: string, packet: Encapsulated): boolean {
    const neighbour = state.neighbours.find((n) => n.ip === gateway && n.dev === dev.name && n.mac);
    if (!neighbour?.mac || (neighbour.state & (NUD_FAILED | NUD_INCOMPLETE)) !== 0) {
      return this.die(node, 'neighbour', `${gateway} on ${dev.name}: ${neighbour ? 'FAILED' : 'none'}`, `missing neighbour entry for VTEP ${gateway} on ${dev.name} (flanneld installs it; a VXLAN device without one cannot resolve the remote VTEP's MAC)`);
    }
    this.pass(node, 'neighbour', `${gateway} lladdr ${neighbour.mac} on ${dev.name} (${nudName(neighbour.state)})`);
    const fdb = state.fdb.find((f) => f.dev === dev.name && f.mac === neighbour.mac && f.dst);
    if (!fdb?.dst) return this.die(node, 'fdb', `${neighbour.mac} on ${dev.name}: none`, `missing FDB entry for ${neighbour.mac} on ${dev.name}: the kernel does not know which VTEP to send to`);
    this.pass(node, 'fdb', `${fdb.mac} dst ${fdb.dst} on ${dev.name} (${nudName(fdb.state)})`);
    const vni = dev.vxlan?.vni ?? 0;
    const port = dev.vxlan?.port ?? 8472;
    const outer: Encapsulated = { src: dev.vxlan?.local ?? '', dst: fdb.dst, proto: 'udp', dport: port, sport: 49152, size: packet.size + VXLAN_OVERHEAD, mark: 0, inner: { packet, kind: 'vxlan', vni } };
    this.pass(node, 'encap', `VXLAN VNI ${vni}: ${packet.src} → ${packet.dst} inside ${outer.src || '?'} → ${fdb.dst}:${port}/udp (${outer.size} bytes)`, { node, iface: dev.name });
    return this.fromNode(node, state, outer);
  }

  private ipipEncap(node: string, state: NetState, dev: LinkState, gateway: string | undefined, packet: Encapsulated): boolean {
    if (!gateway) return this.die(node, 'encap', `${dev.name} route without a gateway`, `IPIP route on ${dev.name} has no next-hop node`);
    const outer: Encapsulated = { src: '', dst: gateway, proto: 'ipip', sport: 0, size: packet.size + IPIP_OVERHEAD, mark: 0, inner: { packet, kind: 'ipip' } };
    this.pass(node, 'encap', `IPIP on ${dev.name}: ${packet.src} → ${packet.dst} inside → ${gateway} (${outer.size} bytes)`, { node, iface: dev.name });
    return this.fromNode(node, state, outer);
  }

  private udpEncap(node: string, state: NetState, dev: LinkState, packet: Encapsulated): boolean {
    const dst = tryParseIp(packet.dst);
    const peer = [...this.request.nodes.values()].find(({ facts }) => facts.podCidr && dst && netContains(parseIpNet(facts.podCidr), dst));
    if (!peer?.facts.publicIp) return this.die(node, 'encap', `${dev.name}: no lease for ${packet.dst}`, `flannel udp: no node's subnet holds ${packet.dst}`);
    const outer: Encapsulated = { src: '', dst: peer.facts.publicIp, proto: 'udp', dport: FLANNEL_UDP_PORT, sport: FLANNEL_UDP_PORT, size: packet.size + FLANNEL_UDP_OVERHEAD, mark: 0, inner: { packet, kind: 'udp' } };
    this.pass(node, 'encap', `flannel udp via ${dev.name}: lease ${peer.facts.podCidr ?? '?'} of ${peer.facts.name} → ${peer.facts.publicIp}:${FLANNEL_UDP_PORT}/udp (${outer.size} bytes)`, { node, iface: dev.name });
    return this.fromNode(node, state, outer);
  }

  /** The packet leaves `dev` towards `nextHop` on the underlay. */
  private underlay(node: string, state: NetState, dev: LinkState, nextHop: string, packet: Encapsulated): boolean {
    const neighbour = state.neighbours.find((n) => n.ip === nextHop && n.dev === dev.name);
    if (neighbour && (neighbour.state & NUD_FAILED) !== 0) return this.die(node, 'neighbour', `${nextHop} on ${dev.name}: FAILED`, `neighbour ${nextHop} on ${dev.name} does not answer ARP (FAILED)`);
    const peer = this.nodeWithAddress(nextHop) ?? this.nodeWithAddress(packet.dst);
    const neighbourText = neighbour?.mac ? `lladdr ${neighbour.mac} (${nudName(neighbour.state)})` : 'not resolved yet (ARP)';
    const outer = packet.inner !== undefined;
    if (!peer) {
      this.pass(node, 'underlay', `${dev.name} → ${nextHop} ${neighbourText}: leaves the cluster`, { node, iface: dev.name, outer });
      return true;
    }
    const via = peer.owns === nextHop ? '' : ` via ${nextHop} (not a node: no snapshot)`;
    this.pass(node, 'underlay', `${dev.name} → ${peer.name} (${peer.owns})${via} ${neighbourText}`, { node, iface: dev.name, outer });
    const iif = deviceWithAddress(peer.state, peer.owns) ?? 'eth0';
    this.pass(peer.name, 'ingress', `on ${iif}`, { node: peer.name, iface: iif, outer });
    return this.ingress(peer.name, peer.state, iif, packet);
  }

  /** The public address of the node whose pod CIDR holds `ip` (the lease table). */
  private ownerOfPodAddress(ip: string): string | undefined {
    const address = tryParseIp(ip);
    return [...this.request.nodes.values()].find(({ facts }) => facts.podCidr && address && netContains(parseIpNet(facts.podCidr), address))?.facts.publicIp;
  }

  private nodeWithAddress(ip: string): { name: string; state: NetState; owns: string } | undefined {
    for (const [name, { state }] of this.request.nodes) if (deviceWithAddress(state, ip) && !ip.startsWith('127.')) return { name, state, owns: ip };
    return undefined;
  }

  private localDelivery(node: string, state: NetState, iif: string, packet: Encapsulated): boolean {
    const input = this.hook(node, state, 'input', packet, { iif });
    if (input === false) return false;
    const inner = packet.inner;
    if (!inner) {
      this.pass(node, 'deliver', `local to ${node} (${packet.src} → ${packet.dst}${packet.dport !== undefined ? `:${packet.dport}` : ''} ${packet.proto})`);
      return true;
    }
    let device: LinkState | undefined;
    if (inner.kind === 'vxlan') device = state.links.find((l) => l.kind === 'vxlan' && l.vxlan?.vni === inner.vni && l.vxlan?.port === packet.dport);
    else if (inner.kind === 'ipip') device = state.links.find((l) => l.kind === 'ipip' || l.name === 'tunl0') ?? state.links.find((l) => l.kind === 'tun' && isUserspaceIpip(l, BGP_ROUTE_PROTOCOL));
    else device = state.links.find((l) => l.kind === 'tun');
    const what = inner.kind === 'vxlan' ? `VXLAN VNI ${inner.vni ?? '?'} port ${packet.dport ?? '?'}` : inner.kind === 'ipip' ? 'IPIP' : `flannel udp port ${packet.dport ?? '?'}`;
    if (!device) return this.die(node, 'decap', `${what}: no device`, `${node} has no ${what} device: the encapsulated packet is dropped`);
    const problem = downReason(device);
    if (problem) return this.die(node, 'decap', `${device.name}`, problem);
    this.pass(node, 'decap', `${what} on ${device.name} → ${inner.packet.src} → ${inner.packet.dst}`, { node, iface: device.name });
    return this.ingress(node, state, device.name, inner.packet);
  }
}

/** Our BGP routes' protocol number (src/bgp/kernel.ts RTPROT_PONTOON_BGP). */
const BGP_ROUTE_PROTOCOL = 88;

function isUserspaceIpip(link: LinkState, routeProtocol: number): boolean {
  return link.name !== 'flannel0' && (routeProtocol === BGP_ROUTE_PROTOCOL || link.name.includes('ipip'));
}

function podWithAddress(state: NetState, ip: string): PodSandboxState | undefined {
  return state.pods.find((p) => p.addresses.some((a) => a.dev === 'eth0' && a.address.split('/')[0] === ip));
}

function downReason(link: LinkState): string | undefined {
  if (!link.up) return `interface ${link.name} is down`;
  if (!link.lowerUp) return `interface ${link.name} has no carrier (its peer is down)`;
  return undefined;
}

function unusableRoute(route: { type: number; dst: string }): string | undefined {
  if (route.type === 6) return `blackhole route ${route.dst}`;
  if (route.type === 7) return `unreachable route ${route.dst}`;
  if (route.type === 8) return `prohibit route ${route.dst}`;
  return undefined;
}

function nudName(state: number): string {
  const names: [number, string][] = [[0x80, 'PERMANENT'], [0x40, 'NOARP'], [0x02, 'REACHABLE'], [0x04, 'STALE'], [0x08, 'DELAY'], [0x10, 'PROBE'], [0x20, 'FAILED'], [0x01, 'INCOMPLETE']];
  return names.filter(([bit]) => (state & bit) !== 0).map(([, name]) => name).join(',') || 'NONE';
}

function describeHit(hit: { where: string; text: string; counter?: { packets: number; bytes: number }; comment?: string }): string {
  const counter = hit.counter ? ` [${hit.counter.packets} pkts ${hit.counter.bytes} bytes]` : '';
  return `${hit.where}: ${hit.text}${counter}`;
}

/** Walks `request`; pure. */
export function tracePath(request: TraceRequest): TraceResult {
  const fromState = request.nodes.get(request.from.node)?.state;
  const src = request.from.kind === 'pod' ? request.from.ip : '';
  // A full-size packet: TCP's MSS follows the sending interface's MTU (the pod's eth0, or
  // for a node the device of its route to the destination).
  const nodeRoute = fromState && request.from.kind === 'node' ? lookupRoute(fromState.routes, request.dst) : undefined;
  const defaultSize =
    request.from.kind === 'pod'
      ? fromState ? podWithAddress(fromState, request.from.ip)?.eth0?.mtu : undefined
      : (nodeRoute?.mtu ?? fromState?.links.find((l) => l.name === nodeRoute?.dev)?.mtu);
  const packet: Packet = { src, dst: request.dst, proto: request.proto, sport: 40000, size: request.size ?? defaultSize ?? 1500, mark: 0, ...(request.dport !== undefined ? { dport: request.dport } : {}) };
  const walk = new Walk(request);
  const arrived = walk.run(packet);
  return { arrived, hops: walk.hops, final: packet };
}

