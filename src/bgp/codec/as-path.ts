/**
 * AS_PATH and AS4_PATH (RFC 4271 §4.3 and §5.1.2, RFC 5065 §3 for the confederation
 * segment types, RFC 6793 for 4-octet ASNs).
 *
 * A path is a run of segments: Type (1) | Length in ASNs (1) | ASNs (2 or 4 octets each).
 * AS_PATH's ASNs are 4 octets when both speakers sent the 4-octet AS capability
 * (`CodecContext.fourOctetAsn`), else 2; AS4_PATH's are always 4.
 *
 * RFC 7606 §7.2: a path is malformed when a segment type is unknown, a segment's length
 * overruns the attribute, a single octet is left over, or a segment has length zero. The
 * caller decides what malformed means (treat-as-withdraw for AS_PATH, attribute discard for
 * AS4_PATH per RFC 6793 §6), so `decodeAsPath` returns undefined instead of throwing.
 *
 * Design note on the RFC 6793 §4.2.3 merge: the AS_PATH a 2-octet peer sends carries
 * AS_TRANS in place of big ASNs; its AS4_PATH carries the real ones, but only for the part
 * of the path that NEW speakers built (OLD speakers prepend to AS_PATH only). So the merged
 * path is as many leading ASNs of AS_PATH as AS_PATH is longer than AS4_PATH, then all of
 * AS4_PATH; when AS4_PATH is the longer, it is ignored. Counting is §9.1.2.2's: a SET is 1,
 * confederation segments are 0. Zero-count segments met before the count is reached are
 * kept (they are confederation information AS4_PATH cannot carry). On the way out the
 * encoder sends AS4_PATH from the first segment holding an ASN above 65535, which is the
 * exact inverse of this merge, so a decoded path survives a re-encode unchanged.
 */
import { AS_TRANS, type AsPathSegment, type AsPathSegmentType } from '../types.js';
import { BgpEncodeError } from './errors.js';
import type { Writer } from './wire.js';

/** RFC 4271 §4.3 and RFC 5065 §3 */
export const AS_PATH_SEGMENT = { AS_SET: 1, AS_SEQUENCE: 2, AS_CONFED_SEQUENCE: 3, AS_CONFED_SET: 4 } as const;

const segmentTypes: Readonly<Record<number, AsPathSegmentType>> = {
  [AS_PATH_SEGMENT.AS_SET]: 'set',
  [AS_PATH_SEGMENT.AS_SEQUENCE]: 'sequence',
  [AS_PATH_SEGMENT.AS_CONFED_SEQUENCE]: 'confed-sequence',
  [AS_PATH_SEGMENT.AS_CONFED_SET]: 'confed-set',
};

const segmentCodes: Readonly<Record<AsPathSegmentType, number>> = {
  set: AS_PATH_SEGMENT.AS_SET,
  sequence: AS_PATH_SEGMENT.AS_SEQUENCE,
  'confed-sequence': AS_PATH_SEGMENT.AS_CONFED_SEQUENCE,
  'confed-set': AS_PATH_SEGMENT.AS_CONFED_SET,
};

export type AsPathDecodeResult = { readonly segments: AsPathSegment[] } | { readonly malformed: string };

export function decodeAsPath(value: Uint8Array, asnOctets: 2 | 4): AsPathDecodeResult {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const segments: AsPathSegment[] = [];
  let offset = 0;
  while (offset < value.length) {
    if (value.length - offset < 2) return { malformed: 'a single octet left after the last segment' };
    const type = segmentTypes[view.getUint8(offset)];
    const count = view.getUint8(offset + 1);
    if (!type) return { malformed: `unknown segment type ${view.getUint8(offset)}` };
    if (count === 0) return { malformed: 'segment of length zero' };
    offset += 2;
    if (offset + count * asnOctets > value.length) return { malformed: `segment of ${count} ASNs overruns the attribute` };
    const asns: number[] = [];
    for (let i = 0; i < count; i++, offset += asnOctets) asns.push(asnOctets === 4 ? view.getUint32(offset) : view.getUint16(offset));
    segments.push({ type, asns });
  }
  return { segments };
}

const isConfed = (segment: AsPathSegment): boolean => segment.type === 'confed-sequence' || segment.type === 'confed-set';

/** RFC 4271 §9.1.2.2 path length: a SET counts 1, confederation segments 0. */
export function asPathCount(segments: readonly AsPathSegment[]): number {
  let count = 0;
  for (const segment of segments) {
    if (segment.type === 'sequence') count += segment.asns.length;
    else if (segment.type === 'set') count += 1;
  }
  return count;
}

/** RFC 6793 §4.2.3 */
export function mergeAs4Path(asPath: readonly AsPathSegment[], as4Path: readonly AsPathSegment[]): AsPathSegment[] {
  let needed = asPathCount(asPath) - asPathCount(as4Path);
  if (needed < 0) return [...asPath];
  const merged: AsPathSegment[] = [];
  for (const segment of asPath) {
    if (isConfed(segment)) {
      merged.push(segment);
      continue;
    }
    if (needed === 0) break;
    if (segment.type === 'set') {
      merged.push(segment);
      needed -= 1;
      continue;
    }
    const take = Math.min(needed, segment.asns.length);
    merged.push(take === segment.asns.length ? segment : { type: segment.type, asns: segment.asns.slice(0, take) });
    needed -= take;
  }
  return [...merged, ...as4Path];
}

/** RFC 6793 §6: confederation segments in AS4_PATH are discarded, the rest kept. */
export function withoutConfedSegments(segments: readonly AsPathSegment[]): AsPathSegment[] {
  return segments.filter((segment) => !isConfed(segment));
}

/**
 * The AS4_PATH to send a 2-octet peer alongside `path`, or undefined when every ASN fits in
 * two octets (RFC 6793 §4.2.2).
 */
export function as4PathFor(path: readonly AsPathSegment[]): AsPathSegment[] | undefined {
  const first = path.findIndex((segment) => segment.asns.some((asn) => asn > 0xffff));
  if (first < 0) return undefined;
  return withoutConfedSegments(path.slice(first));
}

export function writeAsPath(writer: Writer, segments: readonly AsPathSegment[], asnOctets: 2 | 4): void {
  for (const segment of segments) {
    const code = segmentCodes[segment.type];
    if (segment.asns.length === 0) throw new BgpEncodeError('AS_PATH', 'empty segment (RFC 7606 §7.2 calls it malformed)');
    const unordered = segment.type === 'set' || segment.type === 'confed-set';
    if (unordered && segment.asns.length > 255) throw new BgpEncodeError('AS_PATH', `a set of ${segment.asns.length} ASNs exceeds 255`);
    // A sequence longer than 255 is split into consecutive sequences, which mean the same.
    for (let start = 0; start < segment.asns.length; start += 255) {
      const chunk = segment.asns.slice(start, start + 255);
      writer.u8(code);
      writer.u8(chunk.length);
      for (const asn of chunk) {
        if (!Number.isInteger(asn) || asn < 0 || asn > 0xffffffff) throw new BgpEncodeError('AS_PATH', `ASN ${asn} is not a 4-octet number`);
        if (asnOctets === 4) writer.u32(asn);
        else writer.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}
