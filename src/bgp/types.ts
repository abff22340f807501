/**
 * The BGP model every part of src/bgp shares: what the codec decodes into and encodes from,
 * what the RIB stores, what the FSM sends. Plain data, no I/O.
 *
 * Conventions:
 * - ASNs are always 4-octet numbers here. The codec maps them to and from the 2-octet wire
 *   forms (AS_TRANS 23456 in OPEN, AS4_PATH merging) according to the session's
 *   negotiated capabilities (`CodecContext`).
 * - Router IDs, ORIGINATOR_ID and CLUSTER_LIST entries are unsigned 32-bit numbers (BGP
 *   identifiers are not addresses, though printed like IPv4 ones).
 * - Prefixes are `IpNet` from lib/ip.ts with the host part zero.
 * - IPv4 unicast NLRI may come in the base UPDATE fields or in MP_REACH/MP_UNREACH; the
 *   decoded `UpdateMessage` keeps where it came from, and `routesOf` (rib) flattens both.
 */
import type { Ip, IpNet } from '../lib/ip.js';

/** IANA Address Family Identifiers and Subsequent AFIs (only unicast is spoken). */
export const AFI = { IPV4: 1, IPV6: 2 } as const;
export const SAFI = { UNICAST: 1 } as const;

export type Family = 'ipv4-unicast' | 'ipv6-unicast';

export function familyOf(afi: number, safi: number): Family | undefined {
  if (safi !== SAFI.UNICAST) return undefined;
  if (afi === AFI.IPV4) return 'ipv4-unicast';
  if (afi === AFI.IPV6) return 'ipv6-unicast';
  return undefined;
}

export function afiSafiOf(family: Family): { afi: number; safi: number } {
  return { afi: family === 'ipv4-unicast' ? AFI.IPV4 : AFI.IPV6, safi: SAFI.UNICAST };
}

/** RFC 4271 §4.1 message types, and RFC 2918 ROUTE-REFRESH. */
export const MESSAGE_TYPE = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4, ROUTE_REFRESH: 5 } as const;

export const AS_TRANS = 23456;

// ---------------------------------------------------------------------------------------
// OPEN and capabilities (RFC 5492 and the RFCs that define each capability)

export type Capability =
  /** RFC 4760 */
  | { readonly code: 'multiprotocol'; readonly family: Family }
  /** RFC 2918 */
  | { readonly code: 'route-refresh' }
  /** RFC 7313 */
  | { readonly code: 'enhanced-route-refresh' }
  /** RFC 6793 */
  | { readonly code: 'four-octet-asn'; readonly asn: number }
  /** RFC 4724 §3 */
  | {
      readonly code: 'graceful-restart';
      /** the R bit: the sender has restarted */
      readonly restarting: boolean;
      readonly restartTimeSeconds: number;
      readonly families: readonly { readonly family: Family; readonly forwardingPreserved: boolean }[];
    }
  /** anything else, kept as received */
  | { readonly code: 'unknown'; readonly type: number; readonly value: Uint8Array };

export interface OpenMessage {
  readonly type: 'open';
  readonly version: number;
  /** the real (4-octet) AS; the wire's 2-octet field holds AS_TRANS when it does not fit */
  readonly asn: number;
  readonly holdTimeSeconds: number;
  readonly routerId: number;
  readonly capabilities: readonly Capability[];
}

// ---------------------------------------------------------------------------------------
// UPDATE and path attributes (RFC 4271 §4.3, §5)

export type Origin = 'igp' | 'egp' | 'incomplete';

export type AsPathSegmentType = 'set' | 'sequence' | 'confed-sequence' | 'confed-set';

export interface AsPathSegment {
  readonly type: AsPathSegmentType;
  readonly asns: readonly number[];
}

/** An attribute we do not interpret, kept to pass on (optional transitive) or report. */
export interface RawAttribute {
  readonly flags: number;
  readonly typeCode: number;
  readonly value: Uint8Array;
}

/** RFC 4271 §4.3 attribute flag bits. */
export const ATTR_FLAG = { OPTIONAL: 0x80, TRANSITIVE: 0x40, PARTIAL: 0x20, EXTENDED_LENGTH: 0x10 } as const;

/** Attribute type codes (IANA "BGP Path Attributes"). */
export const ATTR_TYPE = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
} as const;

/**
 * The attributes of a path, interpreted. `asPath` is the merged 4-octet path (AS_PATH and
 * AS4_PATH per RFC 6793 §4.2.3 when the peer is a 2-octet speaker). `nextHop` is the IPv4
 * NEXT_HOP or MP_REACH's next hop (global; `linkLocalNextHop` for IPv6's second address).
 */
export interface PathAttributes {
  readonly origin: Origin;
  readonly asPath: readonly AsPathSegment[];
  readonly nextHop?: Ip;
  readonly linkLocalNextHop?: Ip;
  readonly med?: number;
  readonly localPref?: number;
  readonly atomicAggregate?: boolean;
  readonly aggregator?: { readonly asn: number; readonly address: Ip };
  readonly communities?: readonly number[];
  readonly originatorId?: number;
  readonly clusterList?: readonly number[];
  /** unrecognised optional attributes, in received order (transitive ones are passed on with PARTIAL set) */
  readonly unknown?: readonly RawAttribute[];
}

export interface UpdateMessage {
  readonly type: 'update';
  /** IPv4 withdrawals in the base Withdrawn Routes field */
  readonly withdrawn: readonly IpNet[];
  /** absent when the UPDATE carries no path attributes (a pure withdrawal or End-of-RIB) */
  readonly attributes?: PathAttributes;
  /** IPv4 NLRI in the base field */
  readonly nlri: readonly IpNet[];
  readonly mpReach?: { readonly family: Family; readonly nlri: readonly IpNet[] };
  readonly mpUnreach?: { readonly family: Family; readonly withdrawn: readonly IpNet[] };
}

// ---------------------------------------------------------------------------------------
// NOTIFICATION (RFC 4271 §4.5, §6; RFC 4486 cease subcodes), KEEPALIVE, ROUTE-REFRESH

export const ERROR_CODE = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  FSM: 5,
  CEASE: 6,
  ROUTE_REFRESH_MESSAGE: 7,
} as const;

export const HEADER_SUBCODE = { CONNECTION_NOT_SYNCHRONIZED: 1, BAD_MESSAGE_LENGTH: 2, BAD_MESSAGE_TYPE: 3 } as const;

export const OPEN_SUBCODE = {
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;

export const UPDATE_SUBCODE = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: 2,
  MISSING_WELL_KNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN_ATTRIBUTE: 6,
  INVALID_NEXT_HOP_ATTRIBUTE: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

export const CEASE_SUBCODE = {
  MAX_PREFIXES: 1,
  ADMINISTRATIVE_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMINISTRATIVE_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIGURATION_CHANGE: 6,
  CONNECTION_COLLISION_RESOLUTION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
} as const;

export interface NotificationMessage {
  readonly type: 'notification';
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
}

export interface KeepaliveMessage {
  readonly type: 'keepalive';
}

/** RFC 2918 / RFC 7313: subtype 0 request, 1 BoRR, 2 EoRR. */
export interface RouteRefreshMessage {
  readonly type: 'route-refresh';
  readonly family: Family;
  readonly subtype: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** What decoding depends on, fixed when the session's OPENs are exchanged. */
export interface CodecContext {
  /** both sides sent the 4-octet ASN capability: AS_PATH carries 4-octet ASNs */
  readonly fourOctetAsn: boolean;
}

// ---------------------------------------------------------------------------------------
// Routes (what the RIB holds)

export type PeerType = 'ibgp' | 'ebgp';

/** Who a route came from, as the decision process and the reflection rules need it. */
export interface PeerRef {
  /** stable key of the peer (its address as text); '' for routes this speaker originates */
  readonly id: string;
  readonly address?: Ip;
  readonly asn: number;
  readonly routerId: number;
  readonly type: PeerType;
  /** this peer is our route-reflector client (RFC 4456) */
  readonly rrClient: boolean;
}

export interface Route {
  readonly prefix: IpNet;
  readonly family: Family;
  readonly attributes: PathAttributes;
  readonly from: PeerRef;
  /** kept through the peer's graceful restart (RFC 4724 §4.2), to be replaced or swept */
  readonly stale?: boolean;
}
