/**
 * Import and export rules: what we accept from a peer and what we tell each peer.
 *
 * Import (applied once per UPDATE, to the attributes all of its NLRI share):
 * - eBGP: a path that already contains our AS is a loop (RFC 4271 §9.1.2); LOCAL_PREF from
 *   another AS is ignored (§5.1.5), and so are ORIGINATOR_ID and CLUSTER_LIST, which only mean
 *   something inside the AS that set them (RFC 4456 §8).
 * - iBGP: our own BGP Identifier as ORIGINATOR_ID, or (as a route reflector) our CLUSTER_ID in
 *   the CLUSTER_LIST, means the route came back to us (RFC 4456 §8).
 *
 * Export (applied to the best route of a prefix, per peer):
 * - never back to the peer it came from (split horizon); RFC 1997 NO_ADVERTISE / NO_EXPORT
 *   are honoured.
 * - iBGP-learned routes go to iBGP peers only when we are a route reflector (RFC 4271 §9.2,
 *   RFC 4456 §6): from a client to clients and non-clients, from a non-client to clients only,
 *   never to the router named in ORIGINATOR_ID (it would drop the route anyway). Reflecting
 *   sets ORIGINATOR_ID when absent and prepends our CLUSTER_ID to the CLUSTER_LIST (§8).
 * - to eBGP: our AS prepended (§5.1.2; confederation segments removed, RFC 5065 §5.3), NEXT_HOP
 *   set to our address on that session (§5.1.3), LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
 *   left out, MED only when we set it ourselves (§5.1.4: a received MED is not passed to
 *   other ASes).
 * - to iBGP: NEXT_HOP kept (§5.1.3), except that our own routes get our address when they
 *   carry none, and `nextHopSelf` puts our address on our own and eBGP-learned routes
 *   (reflected routes keep theirs, RFC 4456 §10); LOCAL_PREF is always present (default 100).
 * - unrecognised optional attributes: transitive ones are passed on with PARTIAL set,
 *   non-transitive ones are dropped (RFC 4271 §5).
 */
import type { Ip } from '../../lib/ip.js';
import { ATTR_FLAG, type AsPathSegment, type Family, type PathAttributes, type PeerRef, type RawAttribute, type Route } from '../types.js';
import { DEFAULT_LOCAL_PREF, isLocallyOriginated } from './decision.js';
import { ipFamilyOf } from './prefix.js';

export interface LocalSpeaker {
  readonly asn: number;
  readonly routerId: number;
  /** set ⇒ this speaker is a route reflector for its clients (RFC 4456 §7) */
  readonly clusterId?: number;
}

/** RFC 1997 well-known communities. */
export const WELL_KNOWN_COMMUNITY = { NO_EXPORT: 0xffffff01, NO_ADVERTISE: 0xffffff02, NO_EXPORT_SUBCONFED: 0xffffff03 } as const;

export type ImportRejection = 'as-path-loop' | 'originator-id-loop' | 'cluster-list-loop';

export type ImportResult =
  | { readonly accepted: true; readonly attributes: PathAttributes }
  | { readonly accepted: false; readonly reason: ImportRejection };

export function importAttributes(local: LocalSpeaker, from: PeerRef, attributes: PathAttributes): ImportResult {
  if (from.type === 'ebgp') {
    if (asPathContains(attributes.asPath, local.asn)) return { accepted: false, reason: 'as-path-loop' };
    if (attributes.localPref === undefined && attributes.originatorId === undefined && attributes.clusterList === undefined) {
      return { accepted: true, attributes };
    }
    const { localPref: _localPref, originatorId: _originatorId, clusterList: _clusterList, ...kept } = attributes;
    return { accepted: true, attributes: kept };
  }
  if (attributes.originatorId === local.routerId) return { accepted: false, reason: 'originator-id-loop' };
  if (local.clusterId !== undefined && attributes.clusterList?.includes(local.clusterId) === true) {
    return { accepted: false, reason: 'cluster-list-loop' };
  }
  return { accepted: true, attributes };
}

function asPathContains(path: readonly AsPathSegment[], asn: number): boolean {
  // Confederation segments hold member-AS numbers, not ours to match (RFC 5065 §5.3).
  return path.some((segment) => (segment.type === 'sequence' || segment.type === 'set') && segment.asns.includes(asn));
}

/** How one peer's session exports: fixed when it is added. */
export interface ExportTarget {
  readonly peer: PeerRef;
  /** our address on that session per family: the NEXT_HOP we advertise for ourselves */
  readonly localAddress: Readonly<Record<Family, Ip | undefined>>;
  readonly families: readonly Family[];
  /** put our address as NEXT_HOP on our own and eBGP-learned routes sent to this iBGP peer */
  readonly nextHopSelf?: boolean;
}

/** The attributes to advertise `route` with to the target, or undefined when it must not be sent. */
export function exportAttributes(local: LocalSpeaker, route: Route, target: ExportTarget): PathAttributes | undefined {
  const from = route.from;
  const to = target.peer;
  const attributes = route.attributes;
  if (from.id === to.id) return undefined;
  if (!target.families.includes(route.family)) return undefined;

  const communities = attributes.communities;
  if (communities?.includes(WELL_KNOWN_COMMUNITY.NO_ADVERTISE) === true) return undefined;
  if (to.type === 'ebgp' && communities?.some((c) => c === WELL_KNOWN_COMMUNITY.NO_EXPORT || c === WELL_KNOWN_COMMUNITY.NO_EXPORT_SUBCONFED) === true) {
    return undefined;
  }

  const ours = isLocallyOriginated(route);
  const ownAddress = target.localAddress[route.family];
  const addressFits = (ip: Ip | undefined): ip is Ip => ip !== undefined && ip.family === ipFamilyOf(route.family);
  const unknown = passOn(attributes.unknown, ours);

  if (to.type === 'ebgp') {
    if (!addressFits(ownAddress)) return undefined;
    const exported: PathAttributes = {
      origin: attributes.origin,
      asPath: prepend(attributes.asPath, local.asn),
      nextHop: ownAddress,
      ...(ours && attributes.med !== undefined ? { med: attributes.med } : {}),
      ...(attributes.atomicAggregate === true ? { atomicAggregate: true } : {}),
      ...(attributes.aggregator !== undefined ? { aggregator: attributes.aggregator } : {}),
      ...(communities !== undefined ? { communities } : {}),
      ...(unknown !== undefined ? { unknown } : {}),
    };
    return exported;
  }

  const reflected = !ours && from.type === 'ibgp';
  if (reflected) {
    if (local.clusterId === undefined) return undefined; // iBGP full mesh: no re-advertising (§9.2)
    if (!from.rrClient && !to.rrClient) return undefined; // non-client routes go to clients only
    if (attributes.originatorId !== undefined && attributes.originatorId === to.routerId) return undefined;
  }

  let nextHop = attributes.nextHop;
  let linkLocalNextHop = attributes.linkLocalNextHop;
  if (!reflected && (target.nextHopSelf === true || (ours && nextHop === undefined))) {
    nextHop = ownAddress;
    linkLocalNextHop = undefined;
  }
  if (!addressFits(nextHop)) return undefined;

  const { unknown: _unknown, linkLocalNextHop: _linkLocal, ...rest } = attributes;
  const exported: PathAttributes = {
    ...rest,
    nextHop,
    ...(linkLocalNextHop !== undefined ? { linkLocalNextHop } : {}),
    localPref: attributes.localPref ?? DEFAULT_LOCAL_PREF,
    ...(reflected && local.clusterId !== undefined
      ? { originatorId: attributes.originatorId ?? from.routerId, clusterList: [local.clusterId, ...(attributes.clusterList ?? [])] }
      : {}),
    ...(unknown !== undefined ? { unknown } : {}),
  };
  return exported;
}

/** §5.1.2: into a leading AS_SEQUENCE with room (255 ASNs a segment), else a new segment. */
function prepend(path: readonly AsPathSegment[], asn: number): AsPathSegment[] {
  const outside = path.filter((segment) => segment.type === 'sequence' || segment.type === 'set');
  const first = outside[0];
  if (first !== undefined && first.type === 'sequence' && first.asns.length < 255) {
    return [{ type: 'sequence', asns: [asn, ...first.asns] }, ...outside.slice(1)];
  }
  return [{ type: 'sequence', asns: [asn] }, ...outside];
}

/** Unrecognised attributes to send on; undefined when none are left. */
function passOn(unknown: readonly RawAttribute[] | undefined, ours: boolean): readonly RawAttribute[] | undefined {
  if (unknown === undefined || unknown.length === 0) return undefined;
  // Attributes we originate ourselves were not "unrecognised on the way": send them as given.
  if (ours) return unknown;
  const transitive = ATTR_FLAG.OPTIONAL | ATTR_FLAG.TRANSITIVE;
  const kept = unknown
    .filter((raw) => (raw.flags & transitive) === transitive)
    .map((raw) => ((raw.flags & ATTR_FLAG.PARTIAL) !== 0 ? raw : { ...raw, flags: raw.flags | ATTR_FLAG.PARTIAL }));
  return kept.length === 0 ? undefined : kept;
}
