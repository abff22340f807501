/**
 * Map keys for prefixes. The RIB keeps one Map per family, so a key only has to be unique
 * within its family.
 *
 * IPv4 keys are numbers that V8 stores as small integers (Smis, 32 bits wide in Node's
 * default build without pointer compression): the network bits with a marker bit above
 * them, `2^len + (value >> (32 - len))`, wrapped to int32. An earlier `value * 64 + len` key
 * was above 2^32, a heap number, and made every Map operation ~4× slower and allocating
 * (measured with 5M gets). /32s do not fit next to the marker and use `2^32 + value`, a heap
 * number again: correct, only slower. IPv6 keys are short hex strings.
 */
import { bitsOf, type IpFamily, type IpNet } from '../../lib/ip.js';
import type { Family } from '../types.js';
import { RibError } from './errors.js';

export type PrefixKey = number | string;

export const FAMILIES: readonly Family[] = ['ipv4-unicast', 'ipv6-unicast'];

const TWO_32 = 2 ** 32;

export function prefixKey(prefix: IpNet): PrefixKey {
  const length = prefix.prefixLength;
  if (prefix.family === 6) return `${prefix.value.toString(16)}/${length}`;
  const value = Number(prefix.value);
  if (length >= 32) return TWO_32 + value;
  // Shifts, not `2 **` and a division: this runs several times per prefix of a table
  // transfer. `>>> 32` would shift by 0, hence the default route's own case.
  if (length === 0) return 1;
  return ((value >>> (32 - length)) + (1 << length)) | 0;
}

/** The inverse of `prefixKey`, for withdrawing what an Adj-RIB-Out only remembers by key. */
export function prefixFromKey(family: Family, key: PrefixKey): IpNet {
  if (typeof key === 'number') {
    if (key >= TWO_32) return { family: 4, value: BigInt(key - TWO_32), prefixLength: 32 };
    const marked = key >>> 0;
    const length = 31 - Math.clz32(marked);
    return { family: 4, value: BigInt((marked - 2 ** length) * 2 ** (32 - length)), prefixLength: length };
  }
  const slash = key.indexOf('/');
  return { family: ipFamilyOf(family), value: BigInt(`0x${key.slice(0, slash)}`), prefixLength: Number(key.slice(slash + 1)) };
}

export function ipFamilyOf(family: Family): IpFamily {
  return family === 'ipv4-unicast' ? 4 : 6;
}

export function familyOfPrefix(prefix: IpNet): Family {
  return prefix.family === 4 ? 'ipv4-unicast' : 'ipv6-unicast';
}

/** Prefixes are stored as given; one with host bits set would be a second key for the same route. */
export function checkPrefix(prefix: IpNet, family: Family): void {
  const hostBits = BigInt(bitsOf(prefix.family) - prefix.prefixLength);
  if (prefix.family !== ipFamilyOf(family) || hostBits < 0n || (prefix.value & ((1n << hostBits) - 1n)) !== 0n) {
    throw new RibError(`failed to store prefix ${prefix.value.toString(16)}/${prefix.prefixLength}: not a ${family} network address`);
  }
}
