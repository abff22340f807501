/**
 * IP and CIDR values as plain data (family + bigint). A bigint makes range arithmetic (next
 * address, containment, overlap) the same code for IPv4 and IPv6.
 *
 * Design note: parsing and printing are our own, not `ip-address`'s. Evaluating that package
 * took ~7 ms of every CNI ADD (measured in bench/cni), and the two grammars we need are short:
 * dotted quads without leading zeros (as Go's net.ParseIP, so "010.1.1.1" is no octal trap)
 * and RFC 4291 text for IPv6, printed in RFC 5952's canonical form.
 */
import { PontoonError } from './errors.js';

export type IpFamily = 4 | 6;

export interface Ip {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** An address with a prefix length: `10.244.1.5/24` keeps the host part. */
export interface IpNet extends Ip {
  readonly prefixLength: number;
}

export class InvalidAddressError extends PontoonError {}

export function bitsOf(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === '') return [];
    const groups: number[] = [];
    const parts = half.split(':');
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseIpv4(part); // trailing embedded IPv4 (::ffff:1.2.3.4) fills two groups
        if (v4 === undefined) return undefined;
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0] ?? '');
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const group of [...head, ...new Array<number>(missing).fill(0), ...tail]) value = (value << 16n) | BigInt(group);
  return value;
}

export function parseIp(text: string): Ip {
  const trimmed = text.trim();
  // A zone (fe80::1%eth0) is refused rather than silently dropped.
  const v4 = trimmed.includes(':') ? undefined : parseIpv4(trimmed);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = trimmed.includes(':') ? parseIpv6(trimmed) : undefined;
  if (v6 !== undefined) return { family: 6, value: v6 };
  throw new InvalidAddressError(`invalid IP address "${text}"`);
}

export function tryParseIp(text: string): Ip | undefined {
  try {
    return parseIp(text);
  } catch {
    return undefined;
  }
}

export function parseIpNet(text: string): IpNet {
  const slash = text.indexOf('/');
  if (slash < 0) throw new InvalidAddressError(`invalid CIDR "${text}": missing "/<prefix length>"`);
  const ip = tryParseIp(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  const prefixLength = Number(lengthText);
  if (!ip || !/^\d{1,3}$/.test(lengthText) || prefixLength > bitsOf(ip.family)) {
    throw new InvalidAddressError(`invalid CIDR "${text}"`);
  }
  return { ...ip, prefixLength };
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/** RFC 5952: lower case, no leading zeros, the longest run (2+) of zero groups as "::". */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  if (value >> 32n === 0xffffn) return `::ffff:${formatIpv4(value & 0xffffffffn)}`; // IPv4-mapped, §5
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

export function formatIp(ip: Ip): string {
  return ip.family === 4 ? formatIpv4(ip.value) : formatIpv6(ip.value);
}

export function formatIpNet(net: IpNet): string {
  return `${formatIp(net)}/${net.prefixLength}`;
}

function hostMask(net: IpNet): bigint {
  return (1n << BigInt(bitsOf(net.family) - net.prefixLength)) - 1n;
}

/** The network address: `10.244.1.5/24` → `10.244.1.0/24`. */
export function networkOf(net: IpNet): IpNet {
  return { family: net.family, value: net.value & ~hostMask(net), prefixLength: net.prefixLength };
}

/** The highest address of the network (the IPv4 broadcast address). */
export function lastAddressOf(net: IpNet): Ip {
  return { family: net.family, value: networkOf(net).value | hostMask(net) };
}

export function netContains(net: IpNet, ip: Ip): boolean {
  return net.family === ip.family && (ip.value & ~hostMask(net)) === networkOf(net).value;
}

export function netsOverlap(a: IpNet, b: IpNet): boolean {
  return a.family === b.family && (netContains(a, b) || netContains(b, a));
}

export function ipEqual(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

export function offsetIp(ip: Ip, delta: bigint): Ip {
  return { family: ip.family, value: ip.value + delta };
}

/** Network byte order bytes, as netlink and sockets want them. */
export function ipToBytes(ip: Ip): Buffer {
  const length = ip.family === 4 ? 4 : 16;
  const bytes = Buffer.alloc(length);
  let value = ip.value;
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

export function ipFromBytes(bytes: Uint8Array): Ip {
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new InvalidAddressError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  }
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return { family: bytes.length === 4 ? 4 : 6, value };
}

/** `00:11:22:aa:bb:cc` from 6 bytes. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new InvalidAddressError(`invalid MAC address "${text}"`);
  }
  return Buffer.from(text.split(':').map((part) => parseInt(part, 16)));
}
