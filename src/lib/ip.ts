/**
 * IP and CIDR values as plain data (family + bigint), parsed and printed through `ip-address`.
 * A bigint makes range arithmetic (next address, containment, overlap) the same code for
 * IPv4 and IPv6.
 */
import { Address4, Address6 } from 'ip-address';
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

export function parseIp(text: string): Ip {
  const trimmed = text.trim();
  // A zone (fe80::1%eth0) would be silently dropped by the parser: refuse it instead.
  if (!trimmed.includes('/') && !trimmed.includes('%')) {
    if (Address4.isValid(trimmed)) return { family: 4, value: new Address4(trimmed).bigInt() };
    if (Address6.isValid(trimmed)) return { family: 6, value: new Address6(trimmed).bigInt() };
  }
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

export function formatIp(ip: Ip): string {
  return ip.family === 4 ? Address4.fromBigInt(ip.value).correctForm() : Address6.fromBigInt(ip.value).correctForm();
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
