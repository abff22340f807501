/**
 * The hypothetical packet a trace walks, and the hops it records. A Packet is the first
 * packet of a new connection (conntrack state "new"), so NAT chains see it.
 */

export type L4Proto = 'tcp' | 'udp' | 'icmp';

export interface Packet {
  src: string;
  dst: string;
  /** ipip: an outer IPIP packet (protocol 4). */
  proto: L4Proto | 'ipip';
  /** Destination port (tcp/udp). */
  dport?: number;
  sport: number;
  /** Total IP length in bytes; checked against every MTU on the way. */
  size: number;
  /** skb mark, as netfilter rules set and test it. */
  mark: number;
}

export type Verdict = 'pass' | 'drop';

export interface Hop {
  /** The node (or `pod <name>`) whose state decided this hop. */
  node: string;
  /** What kind of step: pod, veth, bridge, route, netfilter, encap, underlay, decap, deliver, ... */
  step: string;
  /** One line: the entry or rule that decided it. */
  detail: string;
  verdict: Verdict;
  /** When the packet dies here: why, in one line. */
  reason?: string;
  /** Service DNAT: every endpoint the rule could have picked. */
  candidates?: string[];
  /**
   * The interface the packet crosses at this hop (for --probe: where to capture). `outer`:
   * the packet there is the encapsulating one.
   */
  at?: { node?: string; podNetns?: string; iface: string; outer?: boolean };
}

export interface TraceResult {
  arrived: boolean;
  hops: Hop[];
  /** The packet as it was when it arrived (after DNAT/masquerade) or died. */
  final: Packet;
}

export const L4_NUMBERS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, sctp: 132 };
