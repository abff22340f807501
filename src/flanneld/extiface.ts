/** Which interface carries overlay traffic, and which of its addresses is our PublicIP. */
import { PontoonError } from '../lib/errors.js';
import { formatIp, ipEqual, networkOf, parseIp } from '../lib/ip.js';
import { RT_SCOPE_UNIVERSE, type Rtnl } from '../lib/netlink/rtnl.js';
import type { ExternalInterface } from './backend/backend.js';

export class ExternalInterfaceError extends PontoonError {}

export function findExternalInterface(rtnl: Rtnl, options: { iface?: string; publicIp?: string }): ExternalInterface {
  const addresses = rtnl.addresses(4).filter((a) => a.scope === RT_SCOPE_UNIVERSE);
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
    index = rtnl.routes(4).find((r) => !r.dst && r.oif !== undefined)?.oif;
    if (index === undefined) throw new ExternalInterfaceError('no default route to choose the external interface from: pass --iface');
  }
  const link = rtnl.linkByIndex(index);
  if (!link) throw new ExternalInterfaceError(`interface ${index} disappeared`);
  const onLink = addresses.filter((a) => a.index === index);
  const chosen = options.publicIp ? onLink.find((a) => ipEqual(a.address, parseIp(options.publicIp as string))) : onLink[0];
  if (!chosen) throw new ExternalInterfaceError(`interface ${link.name} has no IPv4 address${options.publicIp ? ` ${options.publicIp}` : ''}`);
  return { link, address: { family: chosen.address.family, value: chosen.address.value }, segment: networkOf(chosen.address) };
}

export function describeExternal(ext: ExternalInterface): string {
  return `${ext.link.name} ${formatIp(ext.address)}`;
}
