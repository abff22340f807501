/** Which interface carries overlay traffic, and which of its addresses is our PublicIP. */
import { PontoonError } from '../lib/errors.js';
import { formatIp, ipEqual, networkOf, parseIp, type IpFamily } from '../lib/ip.js';
import { RT_SCOPE_UNIVERSE, type Rtnl } from '../lib/netlink/rtnl.js';
import type { ExternalInterface } from './backend/backend.js';

export class ExternalInterfaceError extends PontoonError {}

/**
 * `family` 6 is an IPv6-only network: the interface is found by the IPv6 default route and
 * the PublicIP is a global IPv6 address (flannel's --public-ipv6).
 */
export function findExternalInterface(rtnl: Rtnl, options: { iface?: string; publicIp?: string }, family: IpFamily = 4): ExternalInterface {
  const addresses = rtnl.addresses(family).filter((a) => a.scope === RT_SCOPE_UNIVERSE);
  let index: number | undefined;
  if (options.iface) {
    const link = rtnl.linkByName(options.iface);
    if (!link) throw new ExternalInterfaceError(`--iface ${options.iface}: no such interface`);
    index = link.index;
  } else if (options.publicIp) {
    const wanted = parseIp(options.publicIp);
    index = addresses.find((a) => ipEqual(a.address, wanted))?.index;
    if (index === undefined) throw new ExternalInterfaceError(`--public-ip ${options.publicIp} is not an address of this node`);
  } else {
    index = rtnl.routes(family).find((r) => !r.dst && r.oif !== undefined)?.oif;
    if (index === undefined) throw new ExternalInterfaceError('no default route to choose the external interface from: pass --iface');
  }
  const link = rtnl.linkByIndex(index);
  if (!link) throw new ExternalInterfaceError(`interface ${index} disappeared`);
  const onLink = addresses.filter((a) => a.index === index);
  const chosen = options.publicIp ? onLink.find((a) => ipEqual(a.address, parseIp(options.publicIp as string))) : onLink[0];
  if (!chosen) throw new ExternalInterfaceError(`interface ${link.name} has no IPv${family} address${options.publicIp ? ` ${options.publicIp}` : ''}`);
  return { link, address: { family: chosen.address.family, value: chosen.address.value }, segment: networkOf(chosen.address) };
}

/**
 * The IPv6 underlay of a dual-stack node: a global IPv6 address on the same interface as the
 * IPv4 one (or `publicIpv6`), as flannel's ExtV6Iface. The IPv6 overlay needs it.
 */
export function findExternalInterfaceV6(rtnl: Rtnl, ext: ExternalInterface, publicIpv6?: string): ExternalInterface {
  const onLink = rtnl.addresses(6).filter((a) => a.scope === RT_SCOPE_UNIVERSE && a.index === ext.link.index);
  const chosen = publicIpv6 ? onLink.find((a) => ipEqual(a.address, parseIp(publicIpv6))) : onLink[0];
  if (!chosen) {
    throw new ExternalInterfaceError(`EnableIPv6 needs a global IPv6 address on ${ext.link.name}${publicIpv6 ? ` (${publicIpv6})` : ''} for the IPv6 overlay`);
  }
  return { link: ext.link, address: { family: 6, value: chosen.address.value }, segment: networkOf(chosen.address) };
}

export function describeExternal(ext: ExternalInterface): string {
  return `${ext.link.name} ${formatIp(ext.address)}`;
}
