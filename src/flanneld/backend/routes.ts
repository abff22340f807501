/** Diff-and-apply for the routes and neighbour entries backends own. */
import { hasErrno } from '../../lib/errors.js';
import { formatIp, formatIpNet, ipEqual, type IpFamily } from '../../lib/ip.js';
import { AF_BRIDGE, type Neighbour, NUD_PERMANENT, type Route, type Rtnl, NTF_SELF } from '../../lib/netlink/rtnl.js';
import { FLANNEL_ROUTE_PROTOCOL } from './backend.js';

function routeKey(route: Route): string {
  return route.dst ? formatIpNet(route.dst) : 'default';
}

function sameRoute(a: Route, b: Route): boolean {
  const gateway = a.gateway && b.gateway ? ipEqual(a.gateway, b.gateway) : a.gateway === b.gateway;
  return gateway && a.oif === b.oif && Boolean(a.onlink) === Boolean(b.onlink);
}

/**
 * Makes our routes (by protocol) of one family in the main table exactly `desired`. Per
 * family because a dual-stack node runs one backend per family, each owning its own routes.
 */
export function syncRoutes(rtnl: Rtnl, family: IpFamily, desired: readonly Route[]): { added: number; removed: number } {
  const owned = rtnl.routes(family).filter((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL);
  const observed = new Map(owned.map((r) => [routeKey(r), r]));
  const wanted = new Map(desired.map((r) => [routeKey(r), { ...r, protocol: FLANNEL_ROUTE_PROTOCOL }]));
  let added = 0;
  let removed = 0;
  for (const [key, route] of wanted) {
    const current = observed.get(key);
    if (current && sameRoute(current, route)) continue;
    rtnl.addRoute(route, { replace: true });
    added++;
  }
  for (const [key, route] of observed) {
    if (wanted.has(key)) continue;
    try {
      rtnl.deleteRoute(route);
    } catch (err) {
      if (!hasErrno(err, 'ESRCH', 'ENOENT')) throw err;
    }
    removed++;
  }
  return { added, removed };
}

function neighbourKey(n: Neighbour): string {
  return `${n.ip ? formatIp(n.ip) : ''}|${n.family === AF_BRIDGE ? (n.mac ?? '') : ''}`;
}

/**
 * Makes the permanent neighbour (family AF_INET/6: ARP/NDP) or FDB (AF_BRIDGE) entries on
 * one device exactly `desired`. Deletion is separate so callers can order it after routes.
 */
export function planNeighbours(rtnl: Rtnl, family: number, index: number, desired: readonly Neighbour[]): { add: Neighbour[]; remove: Neighbour[] } {
  const observed = rtnl
    .neighbours(family, index)
    .filter((n) => (n.state & NUD_PERMANENT) !== 0 && (family !== AF_BRIDGE || ((n.flags & NTF_SELF) !== 0 && n.mac !== '00:00:00:00:00:00')));
  const have = new Map(observed.map((n) => [neighbourKey(n), n]));
  const want = new Map(desired.map((n) => [neighbourKey(n), n]));
  const add = [...want].filter(([key, n]) => have.get(key)?.mac !== n.mac).map(([, n]) => n);
  const remove = [...have].filter(([key]) => !want.has(key)).map(([, n]) => n);
  return { add, remove };
}

export function applyNeighbours(rtnl: Rtnl, entries: readonly Neighbour[], remove = false): void {
  for (const entry of entries) {
    try {
      if (remove) rtnl.deleteNeighbour(entry);
      else rtnl.setNeighbour(entry);
    } catch (err) {
      if (!(remove && hasErrno(err, 'ENOENT'))) throw err;
    }
  }
}
