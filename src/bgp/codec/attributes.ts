/**
 * Path attributes (RFC 4271 §4.3, §5) with the error handling of RFC 7606.
 *
 * Each attribute is Flags (1) | Type (1) | Length (1, or 2 with Extended Length) | Value.
 * RFC 7606 replaces "reset the session" for most attribute errors with one of:
 *   treat-as-withdraw (§2): the UPDATE's prefixes are withdrawn, the session stays up;
 *   attribute discard (§2): the attribute is dropped and the UPDATE processed without it;
 *   session reset: a NOTIFICATION, thrown here as BgpMessageError.
 * When several errors meet, the strongest wins (§3 i); a reset is thrown at once.
 *
 * Per attribute (§7): flag or length errors in ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC,
 * LOCAL_PREF, COMMUNITIES, ORIGINATOR_ID and CLUSTER_LIST are treat-as-withdraw;
 * ATOMIC_AGGREGATE and AGGREGATOR errors are attribute discard (§7.6, §7.7), as are
 * AS4_PATH and AS4_AGGREGATOR errors (RFC 6793 §6). Flag conflicts mean the Optional or
 * Transitive bit (§3 c); Partial and the low bits are not checked.
 *
 * MP_REACH_NLRI / MP_UNREACH_NLRI (§7.11, RFC 4760 §7): a malformed one leaves "AFI/SAFI
 * disable" or session reset. We reset (Optional Attribute Error, the attribute as data):
 * disabling one family would need the FSM and RIB to track half-dead sessions for a case
 * that only a broken peer causes, and a reset is what RFC 4760 §7 always allowed. A second
 * MP_REACH or MP_UNREACH is Malformed Attribute List (§3 g); any other repeated attribute
 * is discarded after the first (§3 g). An MP attribute for a family outside the model
 * (non-unicast SAFIs) is discarded: we never advertise those families, so a peer sending
 * them is ignored rather than reset.
 *
 * Attribute list framing (§4): fewer than 3 (or 4) octets left for an attribute header, or
 * an attribute overrunning the list, ends attribute parsing with treat-as-withdraw; the
 * Total Path Attribute Length still locates the NLRI. MP attributes after the break are not
 * seen, which is why §5.1 makes senders put them first and why the encoder does. When the
 * overrunning attribute is itself MP_REACH/MP_UNREACH, its prefixes are lost and the
 * session is reset (Malformed Attribute List) instead.
 *
 * Unknown attributes (RFC 4271 §5, §9): well-known → Unrecognized Well-known Attribute
 * reset; optional transitive → kept in `unknown` and re-sent with Partial set; optional
 * non-transitive → quietly ignored.
 */
import { type Ip, type IpNet, ipFromBytes, ipToBytes } from '../../lib/ip.js';
import {
  AS_TRANS,
  ATTR_FLAG,
  ATTR_TYPE,
  type AsPathSegment,
  type CodecContext,
  ERROR_CODE,
  type Family,
  familyOf,
  afiSafiOf,
  type Origin,
  type PathAttributes,
  type RawAttribute,
  UPDATE_SUBCODE,
} from '../types.js';
import { as4PathFor, asPathCount, decodeAsPath, mergeAs4Path, withoutConfedSegments, writeAsPath } from './as-path.js';
import { BgpEncodeError, BgpMessageError } from './errors.js';
import { decodePrefixes, writePrefixes } from './nlri.js';
import { checkUint, copyBytes, Writer } from './wire.js';

/** RFC 4271 §4.3 ORIGIN values */
export const ORIGIN_CODE = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
const origins: readonly Origin[] = ['igp', 'egp', 'incomplete'];

type Reaction = 'withdraw' | 'discard' | 'reset';

interface KnownAttribute {
  /** the Optional and Transitive bits the attribute must carry */
  readonly flags: number;
  /** what RFC 7606 says a malformed one leads to */
  readonly onError: Reaction;
}

const WELL_KNOWN = ATTR_FLAG.TRANSITIVE;
const OPTIONAL_TRANSITIVE = ATTR_FLAG.OPTIONAL | ATTR_FLAG.TRANSITIVE;
const OPTIONAL_NON_TRANSITIVE = ATTR_FLAG.OPTIONAL;

export const KNOWN_ATTRIBUTES: ReadonlyMap<number, KnownAttribute> = new Map([
  [ATTR_TYPE.ORIGIN, { flags: WELL_KNOWN, onError: 'withdraw' }],
  [ATTR_TYPE.AS_PATH, { flags: WELL_KNOWN, onError: 'withdraw' }],
  [ATTR_TYPE.NEXT_HOP, { flags: WELL_KNOWN, onError: 'withdraw' }],
  [ATTR_TYPE.MULTI_EXIT_DISC, { flags: OPTIONAL_NON_TRANSITIVE, onError: 'withdraw' }],
  [ATTR_TYPE.LOCAL_PREF, { flags: WELL_KNOWN, onError: 'withdraw' }],
  [ATTR_TYPE.ATOMIC_AGGREGATE, { flags: WELL_KNOWN, onError: 'discard' }],
  [ATTR_TYPE.AGGREGATOR, { flags: OPTIONAL_TRANSITIVE, onError: 'discard' }],
  [ATTR_TYPE.COMMUNITIES, { flags: OPTIONAL_TRANSITIVE, onError: 'withdraw' }],
  [ATTR_TYPE.ORIGINATOR_ID, { flags: OPTIONAL_NON_TRANSITIVE, onError: 'withdraw' }],
  [ATTR_TYPE.CLUSTER_LIST, { flags: OPTIONAL_NON_TRANSITIVE, onError: 'withdraw' }],
  [ATTR_TYPE.MP_REACH_NLRI, { flags: OPTIONAL_NON_TRANSITIVE, onError: 'reset' }],
  [ATTR_TYPE.MP_UNREACH_NLRI, { flags: OPTIONAL_NON_TRANSITIVE, onError: 'reset' }],
  [ATTR_TYPE.AS4_PATH, { flags: OPTIONAL_TRANSITIVE, onError: 'discard' }],
  [ATTR_TYPE.AS4_AGGREGATOR, { flags: OPTIONAL_TRANSITIVE, onError: 'discard' }],
]);

export interface MpReach {
  readonly family: Family;
  readonly nextHop: Ip;
  readonly linkLocalNextHop?: Ip;
  readonly nlri: readonly IpNet[];
}

/** Everything the attribute list said, before the UPDATE-level checks in update.ts. */
export interface DecodedAttributes {
  origin?: Origin;
  asPath?: AsPathSegment[];
  nextHopAttribute?: Ip;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: Ip };
  communities?: number[];
  originatorId?: number;
  clusterList?: number[];
  unknown: RawAttribute[];
  mpReach?: MpReach;
  mpUnreach?: { family: Family; withdrawn: readonly IpNet[] };
  /** attributes other than MP_REACH/MP_UNREACH were present */
  anyPathAttribute: boolean;
  treatAsWithdraw: boolean;
  discarded: number[];
  problems: string[];
}

function u32s(value: Uint8Array): number[] {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const out: number[] = [];
  for (let at = 0; at + 4 <= value.length; at += 4) out.push(view.getUint32(at));
  return out;
}

function u32At(value: Uint8Array, at: number): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(at);
}

/**
 * Decodes the Path Attributes field. `list` is exactly the Total Path Attribute Length
 * octets of the UPDATE.
 */
export function decodeAttributes(list: Uint8Array, ctx: CodecContext): DecodedAttributes {
  const out: DecodedAttributes = { unknown: [], anyPathAttribute: false, treatAsWithdraw: false, discarded: [], problems: [] };
  const seen = new Set<number>();
  let as4Path: AsPathSegment[] | undefined;
  let as4Aggregator: { asn: number; address: Ip } | undefined;
  const view = new DataView(list.buffer, list.byteOffset, list.byteLength);
  let offset = 0;

  const withdraw = (why: string): void => {
    out.treatAsWithdraw = true;
    out.problems.push(`treat-as-withdraw: ${why}`);
  };

  while (offset < list.length) {
    const left = list.length - offset;
    if (left < 3) {
      withdraw(`${left} octets left, too few for an attribute header (RFC 7606 §4)`);
      break;
    }
    const flags = view.getUint8(offset);
    const typeCode = view.getUint8(offset + 1);
    const extended = (flags & ATTR_FLAG.EXTENDED_LENGTH) !== 0;
    const headerLength = extended ? 4 : 3;
    if (left < headerLength) {
      withdraw(`${left} octets left, too few for an extended-length attribute header (RFC 7606 §4)`);
      break;
    }
    const length = extended ? view.getUint16(offset + 2) : view.getUint8(offset + 2);
    if (headerLength + length > left) {
      // An MP attribute cut off here hides the prefixes it announces or withdraws, so there
      // is nothing safe to treat as withdrawn: the stronger reaction, reset (§3 i, §7.11).
      if (typeCode === ATTR_TYPE.MP_REACH_NLRI || typeCode === ATTR_TYPE.MP_UNREACH_NLRI) {
        throw new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.MALFORMED_ATTRIBUTE_LIST, new Uint8Array(0), `MP attribute ${typeCode} of length ${length} overruns the attribute list`);
      }
      withdraw(`attribute ${typeCode} of length ${length} overruns the attribute list (RFC 7606 §4)`);
      break;
    }
    const raw = list.subarray(offset, offset + headerLength + length);
    const value = raw.subarray(headerLength);
    offset += headerLength + length;

    if (seen.has(typeCode)) {
      if (typeCode === ATTR_TYPE.MP_REACH_NLRI || typeCode === ATTR_TYPE.MP_UNREACH_NLRI) {
        throw new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.MALFORMED_ATTRIBUTE_LIST, new Uint8Array(0), `MP attribute ${typeCode} appears twice (RFC 7606 §3 g)`);
      }
      out.discarded.push(typeCode);
      out.problems.push(`discarded repeated attribute ${typeCode} (RFC 7606 §3 g)`);
      continue;
    }
    seen.add(typeCode);

    const known = KNOWN_ATTRIBUTES.get(typeCode);
    if (!known) {
      if ((flags & ATTR_FLAG.OPTIONAL) === 0) {
        throw new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, copyBytes(raw), `unrecognized well-known attribute ${typeCode}`);
      }
      out.anyPathAttribute = true;
      if (flags & ATTR_FLAG.TRANSITIVE) {
        out.unknown.push({ flags: flags & (ATTR_FLAG.OPTIONAL | ATTR_FLAG.TRANSITIVE | ATTR_FLAG.PARTIAL), typeCode, value: copyBytes(value) });
      } else {
        out.problems.push(`ignored unrecognized optional non-transitive attribute ${typeCode}`);
      }
      continue;
    }
    if (typeCode !== ATTR_TYPE.MP_REACH_NLRI && typeCode !== ATTR_TYPE.MP_UNREACH_NLRI) out.anyPathAttribute = true;

    /** Applies the attribute's RFC 7606 reaction (throws for a reset). */
    const malformed = (subcode: number, why: string): void => {
      switch (known.onError) {
        case 'reset':
          throw new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, subcode, copyBytes(raw), `attribute ${typeCode}: ${why}`);
        case 'withdraw':
          withdraw(`attribute ${typeCode}: ${why}`);
          return;
        case 'discard':
          out.discarded.push(typeCode);
          out.problems.push(`discarded attribute ${typeCode}: ${why}`);
          return;
      }
    };
    const optionalTransitive = flags & (ATTR_FLAG.OPTIONAL | ATTR_FLAG.TRANSITIVE);
    if (optionalTransitive !== known.flags) {
      malformed(UPDATE_SUBCODE.ATTRIBUTE_FLAGS_ERROR, `flags 0x${flags.toString(16)} conflict with the type`);
      continue;
    }
    const lengthError = (expected: string): void => malformed(UPDATE_SUBCODE.ATTRIBUTE_LENGTH_ERROR, `length ${length} is not ${expected}`);

    switch (typeCode) {
      case ATTR_TYPE.ORIGIN: {
        if (length !== 1) {
          lengthError('1');
          break;
        }
        const origin = origins[value[0] ?? 0xff];
        if (origin === undefined) malformed(UPDATE_SUBCODE.INVALID_ORIGIN_ATTRIBUTE, `undefined value ${value[0] ?? ''}`);
        else out.origin = origin;
        break;
      }
      case ATTR_TYPE.AS_PATH: {
        const result = decodeAsPath(value, ctx.fourOctetAsn ? 4 : 2);
        if ('malformed' in result) malformed(UPDATE_SUBCODE.MALFORMED_AS_PATH, result.malformed);
        else out.asPath = result.segments;
        break;
      }
      case ATTR_TYPE.NEXT_HOP:
        if (length !== 4) lengthError('4');
        else out.nextHopAttribute = ipFromBytes(value);
        break;
      case ATTR_TYPE.MULTI_EXIT_DISC:
        if (length !== 4) lengthError('4');
        else out.med = u32At(value, 0);
        break;
      case ATTR_TYPE.LOCAL_PREF:
        if (length !== 4) lengthError('4');
        else out.localPref = u32At(value, 0);
        break;
      case ATTR_TYPE.ATOMIC_AGGREGATE:
        if (length !== 0) lengthError('0');
        else out.atomicAggregate = true;
        break;
      case ATTR_TYPE.AGGREGATOR: {
        const asnOctets = ctx.fourOctetAsn ? 4 : 2;
        if (length !== asnOctets + 4) {
          lengthError(String(asnOctets + 4));
          break;
        }
        const asn = asnOctets === 4 ? u32At(value, 0) : ((value[0] ?? 0) << 8) | (value[1] ?? 0);
        out.aggregator = { asn, address: ipFromBytes(value.subarray(asnOctets)) };
        break;
      }
      case ATTR_TYPE.COMMUNITIES:
      case ATTR_TYPE.CLUSTER_LIST:
        // §7.8, §7.10: "a non-zero multiple of 4"
        if (length === 0 || length % 4 !== 0) lengthError('a non-zero multiple of 4');
        else if (typeCode === ATTR_TYPE.COMMUNITIES) out.communities = u32s(value);
        else out.clusterList = u32s(value);
        break;
      case ATTR_TYPE.ORIGINATOR_ID:
        if (length !== 4) lengthError('4');
        else out.originatorId = u32At(value, 0);
        break;
      case ATTR_TYPE.AS4_PATH: {
        if (ctx.fourOctetAsn) {
          // RFC 6793 §3: NEW speakers do not send it to each other; a received one is dropped.
          malformed(UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, 'AS4_PATH between 4-octet speakers');
          break;
        }
        const result = decodeAsPath(value, 4);
        if ('malformed' in result) malformed(UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, result.malformed);
        else as4Path = withoutConfedSegments(result.segments);
        break;
      }
      case ATTR_TYPE.AS4_AGGREGATOR:
        if (ctx.fourOctetAsn) malformed(UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, 'AS4_AGGREGATOR between 4-octet speakers');
        else if (length !== 8) lengthError('8');
        else as4Aggregator = { asn: u32At(value, 0), address: ipFromBytes(value.subarray(4)) };
        break;
      case ATTR_TYPE.MP_REACH_NLRI: {
        if (length < 5) {
          lengthError('at least 5');
          break;
        }
        const afi = ((value[0] ?? 0) << 8) | (value[1] ?? 0);
        const safi = value[2] ?? 0;
        const nextHopLength = value[3] ?? 0;
        const family = familyOf(afi, safi);
        if (!family) {
          out.discarded.push(typeCode);
          out.problems.push(`discarded MP_REACH_NLRI for AFI ${afi} SAFI ${safi}, which is not spoken`);
          break;
        }
        if (5 + nextHopLength > length) {
          malformed(UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, `next hop length ${nextHopLength} overruns the attribute`);
          break;
        }
        const valid = family === 'ipv4-unicast' ? nextHopLength === 4 : nextHopLength === 16 || nextHopLength === 32;
        if (!valid) {
          malformed(UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, `next hop length ${nextHopLength} does not suit ${family}`);
          break;
        }
        const nextHop = ipFromBytes(value.subarray(4, 4 + (family === 'ipv4-unicast' ? 4 : 16)));
        const linkLocalNextHop = nextHopLength === 32 ? ipFromBytes(value.subarray(20, 36)) : undefined;
        // The Reserved octet after the next hop is ignored on receipt (RFC 4760 §3).
        const nlri = decodePrefixes(value.subarray(5 + nextHopLength), family === 'ipv4-unicast' ? 4 : 6, (why) =>
          new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, copyBytes(raw), `MP_REACH_NLRI: ${why}`),
        );
        out.mpReach = linkLocalNextHop ? { family, nextHop, linkLocalNextHop, nlri } : { family, nextHop, nlri };
        break;
      }
      case ATTR_TYPE.MP_UNREACH_NLRI: {
        if (length < 3) {
          lengthError('at least 3');
          break;
        }
        const afi = ((value[0] ?? 0) << 8) | (value[1] ?? 0);
        const safi = value[2] ?? 0;
        const family = familyOf(afi, safi);
        if (!family) {
          out.discarded.push(typeCode);
          out.problems.push(`discarded MP_UNREACH_NLRI for AFI ${afi} SAFI ${safi}, which is not spoken`);
          break;
        }
        const withdrawn = decodePrefixes(value.subarray(3), family === 'ipv4-unicast' ? 4 : 6, (why) =>
          new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.OPTIONAL_ATTRIBUTE_ERROR, copyBytes(raw), `MP_UNREACH_NLRI: ${why}`),
        );
        out.mpUnreach = { family, withdrawn };
        break;
      }
    }
  }

  if (!ctx.fourOctetAsn) reconcileAs4(out, as4Path, as4Aggregator);
  return out;
}

/** RFC 6793 §4.2.3: what a 2-octet peer's AS4_PATH and AS4_AGGREGATOR mean. */
function reconcileAs4(out: DecodedAttributes, as4Path: AsPathSegment[] | undefined, as4Aggregator: { asn: number; address: Ip } | undefined): void {
  if (out.aggregator && out.aggregator.asn !== AS_TRANS) {
    // The aggregating AS fit in two octets, so the AS4 attributes were added by someone
    // who did not see this path's whole history: both are ignored.
    if (as4Path || as4Aggregator) out.problems.push('AS4_PATH/AS4_AGGREGATOR ignored: AGGREGATOR is not AS_TRANS');
    return;
  }
  if (out.aggregator && as4Aggregator) out.aggregator = as4Aggregator;
  else if (as4Aggregator) out.problems.push('AS4_AGGREGATOR without AGGREGATOR ignored');
  if (as4Path && out.asPath) {
    if (asPathCount(out.asPath) < asPathCount(as4Path)) out.problems.push('AS4_PATH longer than AS_PATH ignored');
    else out.asPath = mergeAs4Path(out.asPath, as4Path);
  }
}

// ---------------------------------------------------------------------------------------
// Encoding

/** One attribute; the Extended Length bit is set only when the value needs it. */
export function writeAttribute(writer: Writer, flags: number, typeCode: number, value: Uint8Array): void {
  if (value.length > 0xffff) throw new BgpEncodeError(`attribute ${typeCode}`, `value of ${value.length} bytes exceeds 65535`);
  const extended = value.length > 0xff;
  writer.u8((flags & ~ATTR_FLAG.EXTENDED_LENGTH & 0xf0) | (extended ? ATTR_FLAG.EXTENDED_LENGTH : 0));
  writer.u8(typeCode);
  if (extended) writer.u16(value.length);
  else writer.u8(value.length);
  writer.bytes(value);
}

function valueOf(write: (writer: Writer) => void): Uint8Array {
  const writer = new Writer(64);
  write(writer);
  return writer.finish();
}

function u32Value(value: number, what: string): Uint8Array {
  return valueOf((w) => w.u32(checkUint(value, 32, what)));
}

function ipv4Value(ip: Ip, what: string): Uint8Array {
  if (ip.family !== 4) throw new BgpEncodeError(what, 'needs an IPv4 address');
  return ipToBytes(ip);
}

export interface EncodeMpReach {
  readonly family: Family;
  readonly nextHop: Ip;
  readonly linkLocalNextHop?: Ip;
  readonly nlri: readonly IpNet[];
}

export function mpReachValue(mp: EncodeMpReach): Uint8Array {
  const { afi, safi } = afiSafiOf(mp.family);
  const addressFamily = mp.family === 'ipv4-unicast' ? 4 : 6;
  if (mp.nextHop.family !== addressFamily) throw new BgpEncodeError('MP_REACH_NLRI', `${mp.family} needs an IPv${addressFamily} next hop`);
  if (mp.linkLocalNextHop && (mp.family !== 'ipv6-unicast' || mp.linkLocalNextHop.family !== 6)) {
    throw new BgpEncodeError('MP_REACH_NLRI', 'a link-local next hop needs ipv6-unicast and an IPv6 address');
  }
  return valueOf((w) => {
    w.u16(afi);
    w.u8(safi);
    w.u8(mp.linkLocalNextHop ? 32 : addressFamily === 4 ? 4 : 16);
    w.bytes(ipToBytes(mp.nextHop));
    if (mp.linkLocalNextHop) w.bytes(ipToBytes(mp.linkLocalNextHop));
    w.u8(0);
    writePrefixes(w, mp.nlri, addressFamily, 'MP_REACH_NLRI');
  });
}

export function mpUnreachValue(family: Family, withdrawn: readonly IpNet[]): Uint8Array {
  const { afi, safi } = afiSafiOf(family);
  return valueOf((w) => {
    w.u16(afi);
    w.u8(safi);
    writePrefixes(w, withdrawn, family === 'ipv4-unicast' ? 4 : 6, 'MP_UNREACH_NLRI');
  });
}

/**
 * Writes the path attributes other than MP_REACH/MP_UNREACH, in ascending type order
 * (RFC 4271 §5 SHOULD). `withNextHop` says whether NEXT_HOP belongs in this UPDATE (base
 * IPv4 NLRI present, RFC 4760 §3).
 */
export function writePathAttributes(writer: Writer, attributes: PathAttributes, ctx: CodecContext, withNextHop: boolean): void {
  const items: { typeCode: number; flags: number; value: Uint8Array }[] = [];
  const add = (typeCode: number, value: Uint8Array): void => {
    items.push({ typeCode, flags: KNOWN_ATTRIBUTES.get(typeCode)?.flags ?? 0, value });
  };
  const originCode = origins.indexOf(attributes.origin);
  if (originCode < 0) throw new BgpEncodeError('ORIGIN', `unknown origin "${String(attributes.origin)}"`);
  add(ATTR_TYPE.ORIGIN, Uint8Array.of(originCode));
  const asnOctets = ctx.fourOctetAsn ? 4 : 2;
  add(ATTR_TYPE.AS_PATH, valueOf((w) => writeAsPath(w, attributes.asPath, asnOctets)));
  if (withNextHop) {
    if (!attributes.nextHop) throw new BgpEncodeError('UPDATE', 'IPv4 NLRI needs a NEXT_HOP');
    add(ATTR_TYPE.NEXT_HOP, ipv4Value(attributes.nextHop, 'NEXT_HOP'));
  }
  if (attributes.med !== undefined) add(ATTR_TYPE.MULTI_EXIT_DISC, u32Value(attributes.med, 'MULTI_EXIT_DISC'));
  if (attributes.localPref !== undefined) add(ATTR_TYPE.LOCAL_PREF, u32Value(attributes.localPref, 'LOCAL_PREF'));
  if (attributes.atomicAggregate) add(ATTR_TYPE.ATOMIC_AGGREGATE, new Uint8Array(0));
  const as4Path = ctx.fourOctetAsn ? undefined : as4PathFor(attributes.asPath);
  if (attributes.aggregator) {
    const { asn, address } = attributes.aggregator;
    checkUint(asn, 32, 'AGGREGATOR');
    // To a 2-octet peer, AGGREGATOR carries AS_TRANS whenever AS4 information is sent, so
    // that the receiver applies AS4_PATH (RFC 6793 §4.2.3 ignores it otherwise).
    const needAs4 = !ctx.fourOctetAsn && (asn > 0xffff || as4Path !== undefined);
    add(ATTR_TYPE.AGGREGATOR, valueOf((w) => {
      if (ctx.fourOctetAsn) w.u32(asn);
      else w.u16(needAs4 ? AS_TRANS : asn);
      w.bytes(ipv4Value(address, 'AGGREGATOR'));
    }));
    if (needAs4) add(ATTR_TYPE.AS4_AGGREGATOR, valueOf((w) => {
      w.u32(asn);
      w.bytes(ipv4Value(address, 'AS4_AGGREGATOR'));
    }));
  }
  if (attributes.communities && attributes.communities.length > 0) {
    const communities = attributes.communities;
    add(ATTR_TYPE.COMMUNITIES, valueOf((w) => communities.forEach((c) => w.u32(checkUint(c, 32, 'COMMUNITIES')))));
  }
  if (attributes.originatorId !== undefined) add(ATTR_TYPE.ORIGINATOR_ID, u32Value(attributes.originatorId, 'ORIGINATOR_ID'));
  if (attributes.clusterList && attributes.clusterList.length > 0) {
    const clusterList = attributes.clusterList;
    add(ATTR_TYPE.CLUSTER_LIST, valueOf((w) => clusterList.forEach((c) => w.u32(checkUint(c, 32, 'CLUSTER_LIST')))));
  }
  if (as4Path) add(ATTR_TYPE.AS4_PATH, valueOf((w) => writeAsPath(w, as4Path, 4)));
  for (const raw of attributes.unknown ?? []) {
    checkUint(raw.typeCode, 8, 'attribute type');
    if (KNOWN_ATTRIBUTES.has(raw.typeCode)) throw new BgpEncodeError(`attribute ${raw.typeCode}`, 'a known type cannot be sent as unknown');
    if ((raw.flags & ATTR_FLAG.OPTIONAL) === 0) throw new BgpEncodeError(`attribute ${raw.typeCode}`, 'an unrecognized well-known attribute cannot be passed on');
    // RFC 4271 §9: unrecognized non-transitive attributes are not passed along.
    if ((raw.flags & ATTR_FLAG.TRANSITIVE) === 0) continue;
    items.push({ typeCode: raw.typeCode, flags: OPTIONAL_TRANSITIVE | ATTR_FLAG.PARTIAL, value: raw.value });
  }
  items.sort((a, b) => a.typeCode - b.typeCode);
  for (const item of items) writeAttribute(writer, item.flags, item.typeCode, item.value);
}
