/**
 * RFC 4271 §4.3 UPDATE:
 *   Withdrawn Routes Length (2) | Withdrawn Routes | Total Path Attribute Length (2) |
 *   Path Attributes | NLRI (the rest)
 * with RFC 4760 MP_REACH/MP_UNREACH for IPv6 (and optionally IPv4), RFC 7606 error
 * handling (see attributes.ts) and RFC 4724 §2 End-of-RIB markers.
 *
 * Message-level rules:
 * - The two length fields must leave room for each other inside the message; if not, the
 *   NLRI cannot be located and the session is reset with Malformed Attribute List (RFC 4271
 *   §6.3, RFC 7606 §4).
 * - A Withdrawn Routes or NLRI field that does not parse is Invalid Network Field, a reset
 *   (RFC 7606 §5.3: without the prefixes there is nothing to treat as withdrawn).
 * - NLRI (base or MP_REACH) without ORIGIN or AS_PATH, or base NLRI without NEXT_HOP, is
 *   treat-as-withdraw (RFC 7606 §3 d; RFC 4760 §3 makes NEXT_HOP needless for MP-only).
 * - NEXT_HOP in an UPDATE whose only NLRI is in MP_REACH is ignored (RFC 4760 §3).
 *
 * What a treat-as-withdraw result looks like: `attributes` is omitted and every prefix the
 * UPDATE carried stays in `nlri` / `mpReach.nlri`, so the RIB withdraws exactly those.
 * Attributes without ORIGIN and AS_PATH on an UPDATE with no NLRI mean nothing and are
 * dropped (noted in `problems`).
 *
 * Deliberate limit of the model: `PathAttributes` has one next hop, so an UPDATE with base
 * IPv4 NLRI and an MP_REACH whose next hop differs (say IPv6) cannot be represented. No
 * stack we know sends one; rather than route one half wrongly we treat it as withdraw,
 * and the encoder refuses to build one (send two UPDATEs).
 */
import { type Ip, ipEqual } from '../../lib/ip.js';
import {
  type CodecContext,
  ERROR_CODE,
  type Family,
  type PathAttributes,
  UPDATE_SUBCODE,
  ATTR_TYPE,
  type UpdateMessage,
} from '../types.js';
import { decodeAttributes, KNOWN_ATTRIBUTES, mpReachValue, mpUnreachValue, writeAttribute, writePathAttributes } from './attributes.js';
import { BgpEncodeError, BgpMessageError } from './errors.js';
import { badLength, BGP_HEADER_LENGTH } from './header.js';
import { decodePrefixes, writePrefixes } from './nlri.js';
import { Writer } from './wire.js';

/** Header plus the two 2-octet length fields. */
export const UPDATE_MIN_LENGTH = 23;

export interface DecodedUpdate {
  readonly message: UpdateMessage;
  readonly treatAsWithdraw: boolean;
  readonly discarded: readonly number[];
  readonly problems: readonly string[];
}

function malformedList(why: string): BgpMessageError {
  return new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.MALFORMED_ATTRIBUTE_LIST, new Uint8Array(0), why);
}

function invalidNetwork(field: string): (why: string) => BgpMessageError {
  return (why) => new BgpMessageError(ERROR_CODE.UPDATE_MESSAGE, UPDATE_SUBCODE.INVALID_NETWORK_FIELD, new Uint8Array(0), `${field}: ${why}`);
}

export function decodeUpdate(frame: Uint8Array, ctx: CodecContext): DecodedUpdate {
  if (frame.length < UPDATE_MIN_LENGTH) throw badLength(frame.length, `UPDATE of ${frame.length} bytes is shorter than ${UPDATE_MIN_LENGTH}`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const withdrawnLength = view.getUint16(BGP_HEADER_LENGTH);
  const withdrawnStart = BGP_HEADER_LENGTH + 2;
  if (withdrawnStart + withdrawnLength + 2 > frame.length) throw malformedList(`Withdrawn Routes Length ${withdrawnLength} overruns the message`);
  const attributesLengthAt = withdrawnStart + withdrawnLength;
  const attributesLength = view.getUint16(attributesLengthAt);
  const attributesStart = attributesLengthAt + 2;
  if (attributesStart + attributesLength > frame.length) throw malformedList(`Total Path Attribute Length ${attributesLength} overruns the message`);

  const withdrawn = decodePrefixes(frame.subarray(withdrawnStart, attributesLengthAt), 4, invalidNetwork('Withdrawn Routes'));
  const decoded = decodeAttributes(frame.subarray(attributesStart, attributesStart + attributesLength), ctx);
  const nlri = decodePrefixes(frame.subarray(attributesStart + attributesLength), 4, invalidNetwork('NLRI'));

  const problems = decoded.problems;
  let treatAsWithdraw = decoded.treatAsWithdraw;
  const { mpReach, mpUnreach } = decoded;
  const hasNlri = nlri.length > 0 || (mpReach !== undefined && mpReach.nlri.length > 0);
  if (hasNlri && !treatAsWithdraw) {
    const missing: string[] = [];
    if (decoded.origin === undefined) missing.push('ORIGIN');
    if (decoded.asPath === undefined) missing.push('AS_PATH');
    if (nlri.length > 0 && decoded.nextHopAttribute === undefined) missing.push('NEXT_HOP');
    if (missing.length > 0) {
      treatAsWithdraw = true;
      problems.push(`treat-as-withdraw: missing well-known mandatory ${missing.join(', ')} (RFC 7606 §3 d)`);
    }
  }
  let nextHop = decoded.nextHopAttribute;
  let linkLocalNextHop: Ip | undefined;
  if (mpReach) {
    if (nlri.length > 0 && nextHop && !ipEqual(nextHop, mpReach.nextHop)) {
      if (!treatAsWithdraw) problems.push('treat-as-withdraw: NEXT_HOP and MP_REACH_NLRI next hop differ; the model holds one next hop');
      treatAsWithdraw = true;
    } else if (nlri.length === 0 && nextHop) {
      problems.push('NEXT_HOP ignored: the only NLRI is in MP_REACH_NLRI (RFC 4760 §3)');
    }
    nextHop = mpReach.nextHop;
    linkLocalNextHop = mpReach.linkLocalNextHop;
  }

  let attributes: PathAttributes | undefined;
  if (!treatAsWithdraw && decoded.origin !== undefined && decoded.asPath !== undefined) {
    attributes = {
      origin: decoded.origin,
      asPath: decoded.asPath,
      ...(nextHop && { nextHop }),
      ...(linkLocalNextHop && { linkLocalNextHop }),
      ...(decoded.med !== undefined && { med: decoded.med }),
      ...(decoded.localPref !== undefined && { localPref: decoded.localPref }),
      ...(decoded.atomicAggregate && { atomicAggregate: true }),
      ...(decoded.aggregator && { aggregator: decoded.aggregator }),
      ...(decoded.communities && { communities: decoded.communities }),
      ...(decoded.originatorId !== undefined && { originatorId: decoded.originatorId }),
      ...(decoded.clusterList && { clusterList: decoded.clusterList }),
      // In type-code order, the order they are sent in (RFC 4271 §5), so a re-encode is stable.
      ...(decoded.unknown.length > 0 && { unknown: decoded.unknown.sort((a, b) => a.typeCode - b.typeCode) }),
    };
  } else if (!treatAsWithdraw && decoded.anyPathAttribute) {
    problems.push('path attributes without ORIGIN and AS_PATH on an UPDATE without NLRI ignored');
  }

  // An MP_REACH announcing nothing, with no path attributes, says nothing either.
  const keepMpReach = mpReach !== undefined && (attributes !== undefined || treatAsWithdraw);
  if (mpReach && !keepMpReach) problems.push('MP_REACH_NLRI without NLRI or path attributes ignored');
  const message: UpdateMessage = {
    type: 'update',
    withdrawn,
    ...(attributes && { attributes }),
    nlri,
    ...(mpReach && keepMpReach && { mpReach: { family: mpReach.family, nlri: mpReach.nlri } }),
    ...(mpUnreach && { mpUnreach }),
  };
  return { message, treatAsWithdraw, discarded: decoded.discarded, problems };
}

/** The UPDATE's body (everything after the header). */
export function encodeUpdateBody(update: UpdateMessage, ctx: CodecContext): Uint8Array {
  const writer = new Writer(1024);
  writer.u16(0);
  writePrefixes(writer, update.withdrawn, 4, 'Withdrawn Routes');
  writer.patchU16(0, writer.offset - 2);
  const attributesLengthAt = writer.offset;
  writer.u16(0);
  const { attributes, mpReach, mpUnreach } = update;
  // RFC 7606 §5.1: MP_UNREACH/MP_REACH go first, so a receiver that finds a later
  // attribute malformed still knows which prefixes to treat as withdrawn.
  if (mpUnreach) writeAttribute(writer, KNOWN_ATTRIBUTES.get(ATTR_TYPE.MP_UNREACH_NLRI)?.flags ?? 0, ATTR_TYPE.MP_UNREACH_NLRI, mpUnreachValue(mpUnreach.family, mpUnreach.withdrawn));
  if (mpReach) {
    if (!attributes?.nextHop) throw new BgpEncodeError('UPDATE', 'MP_REACH_NLRI needs attributes with a next hop');
    if (update.nlri.length > 0 && (mpReach.family !== 'ipv4-unicast' || attributes.linkLocalNextHop)) {
      throw new BgpEncodeError('UPDATE', `IPv4 NLRI and ${mpReach.family} MP_REACH_NLRI need two next hops; send two UPDATEs`);
    }
    const reach = { family: mpReach.family, nextHop: attributes.nextHop, nlri: mpReach.nlri };
    const value = mpReachValue(attributes.linkLocalNextHop ? { ...reach, linkLocalNextHop: attributes.linkLocalNextHop } : reach);
    writeAttribute(writer, KNOWN_ATTRIBUTES.get(ATTR_TYPE.MP_REACH_NLRI)?.flags ?? 0, ATTR_TYPE.MP_REACH_NLRI, value);
  } else if (attributes?.linkLocalNextHop || (attributes?.nextHop && attributes.nextHop.family !== 4)) {
    throw new BgpEncodeError('UPDATE', 'an IPv6 next hop needs MP_REACH_NLRI');
  }
  if (attributes) {
    writePathAttributes(writer, attributes, ctx, update.nlri.length > 0 || (!mpReach && attributes.nextHop !== undefined));
  } else if (update.nlri.length > 0 || mpReach) {
    throw new BgpEncodeError('UPDATE', 'NLRI without path attributes');
  }
  const attributesLength = writer.offset - attributesLengthAt - 2;
  if (attributesLength > 0xffff) throw new BgpEncodeError('UPDATE', 'path attributes exceed 65535 bytes');
  writer.patchU16(attributesLengthAt, attributesLength);
  writePrefixes(writer, update.nlri, 4, 'NLRI');
  return writer.finish();
}

/** RFC 4724 §2: the End-of-RIB marker for `family`. */
export function endOfRib(family: Family): UpdateMessage {
  if (family === 'ipv4-unicast') return { type: 'update', withdrawn: [], nlri: [] };
  return { type: 'update', withdrawn: [], nlri: [], mpUnreach: { family, withdrawn: [] } };
}

/** The family whose End-of-RIB `update` is, or undefined when it is not one. */
export function isEndOfRib(update: UpdateMessage): Family | undefined {
  if (update.withdrawn.length > 0 || update.nlri.length > 0 || update.attributes || update.mpReach) return undefined;
  if (!update.mpUnreach) return 'ipv4-unicast';
  return update.mpUnreach.withdrawn.length === 0 ? update.mpUnreach.family : undefined;
}
