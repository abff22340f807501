/**
 * The BGP decision process (RFC 4271 §9.1), as changed by route reflection (RFC 4456 §9).
 *
 * `compareRoutes(a, b)` applies the tie-breaking steps in order; negative means `a` is
 * preferred. Steps, with where they come from:
 *   0. a route whose next hop is unusable is not considered (§9.1.2 "resolvable NEXT_HOP");
 *      only learned routes are asked, our own have no next hop to resolve
 *   -  a locally originated route beats any learned one (as every implementation's "weight" /
 *      "local route" check; a node must never prefer a peer's path to its own pod CIDR)
 *   1. highest degree of preference: LOCAL_PREF, `defaultLocalPref` (100) when absent. Import
 *      policy strips LOCAL_PREF from eBGP-learned routes (§5.1.5), so those get the default.
 *   2. shortest AS_PATH: an AS_SET counts 1, confederation segments 0 (§9.1.2.2 a, RFC 5065)
 *   3. lowest ORIGIN: igp < egp < incomplete (§9.1.2.2 b)
 *   4. lowest MULTI_EXIT_DISC, missing = 0, only between routes from the same neighbour AS,
 *      the leftmost AS of the path (§9.1.2.2 c)
 *   5. eBGP-learned over iBGP-learned (§9.1.2.2 d)
 *   6. lowest IGP cost to the next hop (§9.1.2.2 e): skipped, this speaker has no IGP; all
 *      next hops are on connected networks or reached through the kernel's routes
 *   7. shorter CLUSTER_LIST (RFC 4456 §9, inserted between f and g)
 *   8. lowest BGP Identifier, ORIGINATOR_ID standing in for it when present (§9.1.2.2 f,
 *      RFC 4456 §9)
 *   9. lowest peer address (§9.1.2.2 g); then the peer id, so the order is total
 *
 * Step 4 makes pairwise comparison intransitive (A beats B on MED, B beats C on router id,
 * C beats A on router id, with C from another AS). `selectBest` therefore does what
 * implementations call "deterministic MED": it groups the candidates by neighbour AS, picks
 * each group's best (within a group every step applies, so the order is total), then picks
 * among the group winners (MED never applies between different ASes, so again total). The
 * result does not depend on arrival order. Stale routes (RFC 4724) compete like any other.
 */
import type { AsPathSegment, Origin, Route } from '../types.js';

export const DEFAULT_LOCAL_PREF = 100;

/** The `id` of the PeerRef on routes this speaker originates (types.ts). */
export const LOCAL_PEER_ID = '';

export interface DecisionOptions {
  /** false: the route's next hop cannot be reached, so the route is not a candidate */
  readonly nextHopUsable?: (route: Route) => boolean;
  /** LOCAL_PREF assumed for routes that carry none */
  readonly defaultLocalPref?: number;
}

const originRank: Record<Origin, number> = { igp: 0, egp: 1, incomplete: 2 };

export function isLocallyOriginated(route: Route): boolean {
  return route.from.id === LOCAL_PEER_ID;
}

export function asPathLength(path: readonly AsPathSegment[]): number {
  let length = 0;
  for (const segment of path) {
    if (segment.type === 'sequence') length += segment.asns.length;
    else if (segment.type === 'set') length += 1;
  }
  return length;
}

/**
 * The AS the route entered ours from, for MED comparison: the leftmost AS of the first
 * non-confederation segment. 'local' for an empty path (originated inside our AS), undefined
 * when the path starts with an AS_SET, which names no single neighbour.
 */
export function neighborAs(route: Route): number | 'local' | undefined {
  for (const segment of route.attributes.asPath) {
    if (segment.type === 'confed-sequence' || segment.type === 'confed-set') continue;
    if (segment.type === 'set') return undefined;
    const first = segment.asns[0];
    if (first !== undefined) return first;
  }
  return 'local';
}

function usable(route: Route, options: DecisionOptions | undefined): boolean {
  return isLocallyOriginated(route) || options?.nextHopUsable === undefined || options.nextHopUsable(route);
}

/** Negative when `a` is preferred, positive when `b` is, 0 only for the same peer's path. */
export function compareRoutes(a: Route, b: Route, options?: DecisionOptions): number {
  const usableA = usable(a, options);
  if (usableA !== usable(b, options)) return usableA ? -1 : 1;

  const localA = isLocallyOriginated(a);
  if (localA !== isLocallyOriginated(b)) return localA ? -1 : 1;

  const defaultLocalPref = options?.defaultLocalPref ?? DEFAULT_LOCAL_PREF;
  const prefA = a.attributes.localPref ?? defaultLocalPref;
  const prefB = b.attributes.localPref ?? defaultLocalPref;
  if (prefA !== prefB) return prefB - prefA;

  const pathA = asPathLength(a.attributes.asPath);
  const pathB = asPathLength(b.attributes.asPath);
  if (pathA !== pathB) return pathA - pathB;

  const originA = originRank[a.attributes.origin];
  const originB = originRank[b.attributes.origin];
  if (originA !== originB) return originA - originB;

  const neighborA = neighborAs(a);
  if (neighborA !== undefined && neighborA === neighborAs(b)) {
    const medA = a.attributes.med ?? 0;
    const medB = b.attributes.med ?? 0;
    if (medA !== medB) return medA - medB;
  }

  const ebgpA = a.from.type === 'ebgp';
  if (ebgpA !== (b.from.type === 'ebgp')) return ebgpA ? -1 : 1;

  // Step 6 (IGP cost) is skipped: see the design note.

  const clusterA = a.attributes.clusterList?.length ?? 0;
  const clusterB = b.attributes.clusterList?.length ?? 0;
  if (clusterA !== clusterB) return clusterA - clusterB;

  const idA = a.attributes.originatorId ?? a.from.routerId;
  const idB = b.attributes.originatorId ?? b.from.routerId;
  if (idA !== idB) return idA - idB;

  const addressA = a.from.address;
  const addressB = b.from.address;
  if (addressA !== undefined && addressB !== undefined) {
    if (addressA.family !== addressB.family) return addressA.family - addressB.family;
    if (addressA.value !== addressB.value) return addressA.value < addressB.value ? -1 : 1;
  } else if (addressA !== addressB) {
    return addressA === undefined ? -1 : 1;
  }

  return a.from.id < b.from.id ? -1 : a.from.id > b.from.id ? 1 : 0;
}

/** The best usable route of one prefix's candidates (one per peer), or undefined. */
export function selectBest(candidates: readonly Route[], options?: DecisionOptions): Route | undefined {
  if (candidates.length === 1) {
    const only = candidates[0];
    return only !== undefined && usable(only, options) ? only : undefined;
  }
  // Deterministic MED: best per neighbour AS first, then the best of those (design note).
  const groupWinners = new Map<number | string | Route, Route>();
  for (const route of candidates) {
    if (!usable(route, options)) continue;
    const group = neighborAs(route) ?? route; // an AS_SET-first path is a group of its own
    const winner = groupWinners.get(group);
    if (winner === undefined || compareRoutes(route, winner, options) < 0) groupWinners.set(group, route);
  }
  let best: Route | undefined;
  for (const winner of groupWinners.values()) {
    if (best === undefined || compareRoutes(winner, best, options) < 0) best = winner;
  }
  return best;
}
