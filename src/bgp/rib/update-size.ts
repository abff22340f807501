/**
 * Upper bounds on encoded UPDATE sizes, so the Adj-RIB-Out can pack NLRI without encoding.
 * RFC 4271 §4: a message is at most 4096 octets (RFC 8654 extended messages are not spoken).
 *
 * The attribute estimate over-counts on purpose: every attribute is counted with the 4-octet
 * extended-length header, AS numbers as 4 octets, and AS_PATH and AGGREGATOR twice, since a
 * session with a 2-octet speaker also carries AS4_PATH / AS4_AGGREGATOR (RFC 6793 §4.2.2).
 *
 * `nlriLength` duplicates the codec's `encodedNlriLength` (src/bgp/codec, written in
 * parallel); switch to it once that lands.
 */
import type { Family, PathAttributes } from '../types.js';

export const MAX_MESSAGE_LENGTH = 4096;

/** Marker, length, type (19) + Withdrawn Routes Length (2) + Total Path Attribute Length (2). */
export const UPDATE_FIXED_LENGTH = 23;

const ATTRIBUTE_HEADER = 4;

/** RFC 4271 §4.3: one length octet, then the prefix bits rounded up to whole octets. */
export function nlriLength(prefixLength: number): number {
  return 1 + Math.ceil(prefixLength / 8);
}

/** MP_UNREACH_NLRI header: attribute header, AFI (2), SAFI (1) (RFC 4760 §4). */
export const MP_UNREACH_OVERHEAD = ATTRIBUTE_HEADER + 3;

/** Octets the path attributes take, NLRI excluded; for IPv6, MP_REACH_NLRI's fixed part included. */
export function attributesLengthBound(attributes: PathAttributes, family: Family): number {
  let length = ATTRIBUTE_HEADER + 1; // ORIGIN
  const asPath = attributes.asPath.reduce((sum, segment) => sum + 2 + 4 * segment.asns.length, 0);
  length += 2 * (ATTRIBUTE_HEADER + asPath);
  if (family === 'ipv4-unicast') {
    length += ATTRIBUTE_HEADER + 4; // NEXT_HOP
  } else {
    // MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next hop length, next hop(s), reserved
    length += ATTRIBUTE_HEADER + 3 + 1 + (attributes.linkLocalNextHop === undefined ? 16 : 32) + 1;
  }
  if (attributes.med !== undefined) length += ATTRIBUTE_HEADER + 4;
  if (attributes.localPref !== undefined) length += ATTRIBUTE_HEADER + 4;
  if (attributes.atomicAggregate === true) length += ATTRIBUTE_HEADER;
  if (attributes.aggregator !== undefined) length += 2 * (ATTRIBUTE_HEADER + 8);
  if (attributes.communities !== undefined) length += ATTRIBUTE_HEADER + 4 * attributes.communities.length;
  if (attributes.originatorId !== undefined) length += ATTRIBUTE_HEADER + 4;
  if (attributes.clusterList !== undefined) length += ATTRIBUTE_HEADER + 4 * attributes.clusterList.length;
  for (const raw of attributes.unknown ?? []) length += ATTRIBUTE_HEADER + raw.value.length;
  return length;
}
