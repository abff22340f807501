/** Small builders for the RIB tests and the timing script: peers, routes and UPDATEs from text. */
import { parseIp, parseIpNet, type Ip, type IpNet } from '../../src/lib/ip.js';
import type { Family, PathAttributes, PeerRef, Route, UpdateMessage } from '../../src/bgp/types.js';

/** A BGP Identifier written as a dotted quad. */
export function rid(text: string): number {
  return Number(parseIp(text).value);
}

export function net(text: string): IpNet {
  return parseIpNet(text);
}

export function ip(text: string): Ip {
  return parseIp(text);
}

export function peer(address: string, fields: Partial<Omit<PeerRef, 'id' | 'address'>> & { type: PeerRef['type'] }): PeerRef {
  return {
    id: address,
    address: parseIp(address),
    asn: fields.asn ?? 65000,
    routerId: fields.routerId ?? Number(parseIp(address).family === 4 ? parseIp(address).value : 1n),
    type: fields.type,
    rrClient: fields.rrClient ?? false,
  };
}

export function attrs(fields: Partial<PathAttributes> = {}): PathAttributes {
  return { origin: 'igp', asPath: [], ...fields };
}

export function seq(...asns: number[]): PathAttributes['asPath'] {
  return [{ type: 'sequence', asns }];
}

export function route(prefix: string, from: PeerRef, fields: Partial<PathAttributes> = {}): Route {
  const p = parseIpNet(prefix);
  const family: Family = p.family === 4 ? 'ipv4-unicast' : 'ipv6-unicast';
  return { prefix: p, family, from, attributes: attrs(fields) };
}

export function announce(prefixes: readonly (string | IpNet)[], attributes: PathAttributes): UpdateMessage {
  const nets = prefixes.map((p) => (typeof p === 'string' ? parseIpNet(p) : p));
  const v4 = nets.filter((p) => p.family === 4);
  const v6 = nets.filter((p) => p.family === 6);
  return {
    type: 'update',
    withdrawn: [],
    attributes,
    nlri: v4,
    ...(v6.length > 0 ? { mpReach: { family: 'ipv6-unicast' as const, nlri: v6 } } : {}),
  };
}

export function withdraw(prefixes: readonly string[]): UpdateMessage {
  const nets = prefixes.map((p) => parseIpNet(p));
  const v6 = nets.filter((p) => p.family === 6);
  return {
    type: 'update',
    withdrawn: nets.filter((p) => p.family === 4),
    nlri: [],
    ...(v6.length > 0 ? { mpUnreach: { family: 'ipv6-unicast' as const, withdrawn: v6 } } : {}),
  };
}

/** mulberry32: a tiny seeded PRNG so property tests are reproducible. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = copy[i] as T;
    copy[i] = copy[j] as T;
    copy[j] = a;
  }
  return copy;
}

/** `count` distinct /24s from 10.0.0.0 up, as the ingest and size tests use. */
export function slash24s(count: number, offset = 0): IpNet[] {
  return Array.from({ length: count }, (_, i) => ({ family: 4 as const, value: BigInt((0x0a000000 + (i + offset) * 256) >>> 0), prefixLength: 24 }));
}

export function prefixesOf(updates: readonly UpdateMessage[]): { announced: string[]; withdrawn: string[] } {
  const text = (p: IpNet): string => `${p.family}:${p.value.toString(16)}/${p.prefixLength}`;
  return {
    announced: updates.flatMap((u) => [...u.nlri, ...(u.mpReach?.nlri ?? [])]).map(text),
    withdrawn: updates.flatMap((u) => [...u.withdrawn, ...(u.mpUnreach?.withdrawn ?? [])]).map(text),
  };
}
