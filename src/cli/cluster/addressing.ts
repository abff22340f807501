/**
 * The lab's address plan per IP family (`cluster up --ip-family ipv4|ipv6|dual`).
 *
 *   family   underlay (rack r, node i)            pods (per node)               services
 *   IPv4     198.18.<r>.0/24, node 198.18.<r>.<10+i>  10.244.0.0/16 (/24 each)   10.96.0.0/12
 *   IPv6     fd00:198:18:<r>::/64, node ::<10+i>     fd00:10:244::/56 (/64 each)  fd00:10:96::/112
 *
 * The IPv6 plan uses ULAs (RFC 4193, fd00::/8) so nothing can leak to a real network, and
 * mirrors the IPv4 numbers so a reader maps one to the other at a glance. A /64 per node is
 * flannel's default IPv6SubnetLen and what SLAAC-minded tooling expects; a /56 holds 256 of
 * them, the same node count as the IPv4 /16 with /24s. The service range is a /112 (65536
 * addresses): upstream caps a Service CIDR at 2^20 addresses, and kubeadm's docs use /112.
 * The underlay is dual-stack whenever IPv6 is in use (the IPv6 overlay runs over it);
 * `ipv6` leaves IPv4 only on the underlay, where it is harmless.
 */
import { PontoonError } from '../../lib/errors.js';
import { formatIp, parseIp } from '../../lib/ip.js';

export class IpFamilyError extends PontoonError {}

export const IP_FAMILY_CHOICES = ['ipv4', 'ipv6', 'dual'] as const;
export type IpFamilyChoice = (typeof IP_FAMILY_CHOICES)[number];

export const POD_NETWORK = '10.244.0.0/16';
export const POD_NETWORK_V6 = 'fd00:10:244::/56';
export const POD_SUBNET_LENGTH_V6 = 64;
export const SERVICE_NETWORK = '10.96.0.0/12';
export const SERVICE_NETWORK_V6 = 'fd00:10:96::/112';

export function parseIpFamilyChoice(text: string | undefined): IpFamilyChoice {
  const value = text ?? 'ipv4';
  if (!(IP_FAMILY_CHOICES as readonly string[]).includes(value)) throw new IpFamilyError(`--ip-family must be one of ${IP_FAMILY_CHOICES.join(', ')}, got "${value}"`);
  return value as IpFamilyChoice;
}

export const usesIpv4 = (family: IpFamilyChoice): boolean => family !== 'ipv6';
export const usesIpv6 = (family: IpFamilyChoice): boolean => family !== 'ipv4';

/** `--cluster-cidr` for node-ipam and the proxy: every family's pod network, IPv4 first. */
export function podNetworks(family: IpFamilyChoice): string[] {
  return [...(usesIpv4(family) ? [POD_NETWORK] : []), ...(usesIpv6(family) ? [POD_NETWORK_V6] : [])];
}

/** `--service-cidr` for the apiserver: IPv4 first (the primary family) on a dual cluster. */
export function serviceNetworks(family: IpFamilyChoice): string[] {
  return [...(usesIpv4(family) ? [SERVICE_NETWORK] : []), ...(usesIpv6(family) ? [SERVICE_NETWORK_V6] : [])];
}

export function rackSegmentV6(rack: number): string {
  return `fd00:198:18:${rack.toString(16)}::/64`;
}

export function rackGatewayV6(rack: number): string {
  return formatIp(parseIp(`fd00:198:18:${rack.toString(16)}::1`));
}

/** Node i (1-based) of rack r: the same host number as its IPv4 address, in hex digits' place. */
export function nodeUnderlayV6(rack: number, index: number): string {
  return formatIp(parseIp(`fd00:198:18:${rack.toString(16)}::${10 + index}`)); // RFC 5952 text
}
