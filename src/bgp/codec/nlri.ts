/**
 * RFC 4271 §4.3 prefix encoding, shared by Withdrawn Routes, NLRI and the MP_REACH /
 * MP_UNREACH NLRI fields (RFC 4760 §5): a Length octet in bits, then the fewest octets
 * that hold that many bits.
 *
 * A prefix whose length exceeds the family's address size, or whose octets run past the
 * field, makes the whole field unparseable. RFC 7606 §5.3 says treat-as-withdraw cannot
 * help then (the prefixes to withdraw are not known), so the caller resets the session;
 * the error to throw is the caller's, since the subcode depends on which field it is.
 * Bits past the prefix length are cleared (RFC 4271 §4.3 calls them irrelevant), so every
 * decoded prefix has a zero host part as types.ts promises.
 */
import { bitsOf, type IpFamily, type IpNet } from '../../lib/ip.js';
import { BgpEncodeError } from './errors.js';
import type { Writer } from './wire.js';

/** Octets one prefix takes on the wire: the Length octet plus ⌈length/8⌉. */
export function encodedNlriLength(prefix: IpNet): number {
  return 1 + ((prefix.prefixLength + 7) >> 3);
}

export function decodePrefixes(bytes: Uint8Array, family: IpFamily, malformed: (why: string) => Error): IpNet[] {
  const bits = bitsOf(family);
  const octets = bits / 8;
  const prefixes: IpNet[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const prefixLength = bytes[offset] ?? 0;
    if (prefixLength > bits) throw malformed(`prefix length ${prefixLength} exceeds ${bits}`);
    const count = (prefixLength + 7) >> 3;
    if (offset + 1 + count > bytes.length) throw malformed(`prefix /${prefixLength} runs past the end of the field`);
    let value: bigint;
    if (family === 4) {
      // The hot case (a full table is IPv4): number arithmetic, one BigInt per prefix.
      let word = 0;
      for (let i = 0; i < count; i++) word += (bytes[offset + 1 + i] ?? 0) * 2 ** (24 - 8 * i);
      value = BigInt(word - (word % 2 ** (32 - prefixLength)));
    } else {
      value = 0n;
      for (let i = 0; i < octets; i++) value = (value << 8n) | BigInt(i < count ? (bytes[offset + 1 + i] ?? 0) : 0);
      const hostBits = BigInt(bits - prefixLength);
      value = (value >> hostBits) << hostBits;
    }
    prefixes.push({ family, value, prefixLength });
    offset += 1 + count;
  }
  return prefixes;
}

/** The bits of a prefix's last octet that belong to it (the rest are host bits, sent as 0). */
function lastOctetMask(prefixLength: number): number {
  const used = prefixLength % 8;
  return used === 0 ? 0xff : (0xff << (8 - used)) & 0xff;
}

export function writePrefixes(writer: Writer, prefixes: readonly IpNet[], family: IpFamily, what: string): void {
  const bits = bitsOf(family);
  for (const prefix of prefixes) {
    if (prefix.family !== family) throw new BgpEncodeError(what, `IPv${prefix.family} prefix in an IPv${family} field`);
    if (!Number.isInteger(prefix.prefixLength) || prefix.prefixLength < 0 || prefix.prefixLength > bits) {
      throw new BgpEncodeError(what, `prefix length ${prefix.prefixLength} is not 0..${bits}`);
    }
    writer.u8(prefix.prefixLength);
    const count = (prefix.prefixLength + 7) >> 3;
    if (family === 4) {
      const word = Number(prefix.value);
      for (let i = 0; i < count; i++) writer.u8(Math.floor(word / 2 ** (24 - 8 * i)) % 256 & (i === count - 1 ? lastOctetMask(prefix.prefixLength) : 0xff));
      continue;
    }
    const hostBits = BigInt(bits - prefix.prefixLength);
    const network = (prefix.value >> hostBits) << hostBits;
    for (let i = 0; i < count; i++) writer.u8(Number((network >> BigInt(bits - 8 - 8 * i)) & 0xffn));
  }
}
