/** Route lookups and address facts over a NetState (pure; no kernel). */
import { netContains, parseIp, parseIpNet, tryParseIp } from '../../lib/ip.js';
import type { NetState, RouteState } from '../netstate.js';

export const RT_TABLE_LOCAL = 255;
export const RT_TABLE_MAIN = 254;
const RTN_LOCAL = 2;
const RTN_BROADCAST = 3;

const PROTOCOL_NAMES: Record<number, string> = { 2: 'kernel', 3: 'boot', 4: 'static', 88: 'pontoon-bgp', 186: 'bgp', 200: 'flanneld' };
const TABLE_NAMES: Record<number, string> = { 254: 'main', 255: 'local', 253: 'default' };
const TYPE_NAMES: Record<number, string> = { 1: 'unicast', 2: 'local', 3: 'broadcast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit', 9: 'throw' };

export function protocolName(protocol: number): string {
  return PROTOCOL_NAMES[protocol] ?? String(protocol);
}

export function routeTypeName(type: number): string {
  return TYPE_NAMES[type] ?? String(type);
}

function contains(dst: string, ip: string): { hit: boolean; length: number } {
  const address = tryParseIp(ip);
  if (!address) return { hit: false, length: -1 };
  if (dst === 'default') return { hit: address.family === 4, length: 0 };
  const net = parseIpNet(dst);
  return { hit: net.family === address.family && netContains(net, address), length: net.prefixLength };
}

/**
 * The kernel's choice among `routes` for `ip`: the local table first, then main (policy
 * rules beyond those two are not in the snapshot), longest prefix, then lowest metric.
 */
export function lookupRoute(routes: readonly RouteState[], ip: string): RouteState | undefined {
  for (const table of [RT_TABLE_LOCAL, RT_TABLE_MAIN]) {
    let best: RouteState | undefined;
    let bestLength = -1;
    for (const route of routes) {
      if (route.table !== table || route.family !== 4) continue;
      const { hit, length } = contains(route.dst, ip);
      if (!hit) continue;
      if (length > bestLength || (length === bestLength && (route.metric ?? 0) < (best?.metric ?? 0))) {
        best = route;
        bestLength = length;
      }
    }
    if (best && !(table === RT_TABLE_LOCAL && best.type === RTN_BROADCAST)) return best;
  }
  return undefined;
}

/** True when `ip` is one of this namespace's own addresses (a local-table local route). */
export function isLocalAddress(state: NetState, ip: string): boolean {
  const route = lookupRoute(state.routes, ip);
  return route?.table === RT_TABLE_LOCAL && route.type === RTN_LOCAL;
}

export function addressesOf(state: NetState, dev: string): string[] {
  return state.addresses.filter((a) => a.dev === dev && a.family === 4).map((a) => a.address.split('/')[0] ?? '');
}

/** The device holding `ip` as an address, if any. */
export function deviceWithAddress(state: NetState, ip: string): string | undefined {
  const wanted = tryParseIp(ip);
  if (!wanted) return undefined;
  return state.addresses.find((a) => {
    const own = tryParseIp(a.address.split('/')[0] ?? '');
    return own !== undefined && own.family === wanted.family && own.value === wanted.value;
  })?.dev;
}

/** The source address the kernel picks for a locally generated packet over `route`. */
export function sourceFor(state: NetState, route: RouteState): string | undefined {
  if (route.prefsrc) return route.prefsrc;
  const onDev = route.dev ? state.addresses.filter((a) => a.dev === route.dev && a.family === 4 && a.scope === 0) : [];
  if (route.gateway) {
    const gateway = parseIp(route.gateway);
    const sameNet = onDev.find((a) => netContains(parseIpNet(a.address), gateway));
    if (sameNet) return sameNet.address.split('/')[0];
  }
  const first = onDev[0] ?? state.addresses.find((a) => a.family === 4 && a.scope === 0);
  return first?.address.split('/')[0];
}

export function renderRoute(route: RouteState): string {
  const parts = [route.dst];
  if (route.type !== 1) parts.unshift(routeTypeName(route.type));
  if (route.gateway) parts.push(`via ${route.gateway}`);
  if (route.dev) parts.push(`dev ${route.dev}`);
  if (route.onlink) parts.push('onlink');
  if (route.mtu) parts.push(`mtu ${route.mtu}`);
  parts.push(`table ${TABLE_NAMES[route.table] ?? route.table}`, `proto ${protocolName(route.protocol)}`);
  return parts.join(' ');
}
