/**
 * Idempotent link steps shared by the CNI plugin and the node daemon: each "ensure" reads the
 * kernel back, treats EEXIST as success and returns what is there now.
 */
import { PontoonError, hasErrno } from './errors.js';
import { formatIpNet, type IpNet, netContains, networkOf, ipEqual } from './ip.js';
import { IFF_PROMISC, type Link, type Rtnl } from './netlink/rtnl.js';

export class LinkConflictError extends PontoonError {}

export interface BridgeSpec {
  name: string;
  mtu?: number;
  promisc?: boolean;
}

/** The bridge named `spec.name`, created and up. A non-bridge of that name is an error. */
export function ensureBridge(rtnl: Rtnl, spec: BridgeSpec): Link {
  let link = rtnl.linkByName(spec.name);
  if (!link) {
    try {
      rtnl.createLink({ name: spec.name, kind: 'bridge', ...(spec.mtu ? { mtu: spec.mtu } : {}) });
    } catch (err) {
      if (!hasErrno(err, 'EEXIST')) throw err; // another plugin instance won the race
    }
    link = rtnl.linkByName(spec.name);
    // A bridge without a fixed MAC takes its lowest port's, so the gateway's MAC would change
    // as pods come and go. Setting it once (to the random one it has) pins it.
    if (link?.mac) rtnl.setMac(link.index, link.mac);
  }
  if (!link) throw new LinkConflictError(`bridge "${spec.name}" vanished while being created`);
  if (link.kind !== 'bridge') {
    throw new LinkConflictError(`link "${spec.name}" already exists and is a ${link.kind ?? 'plain'} device, not a bridge: choose another "bridge" name`);
  }
  if (spec.promisc !== undefined && ((link.flags & IFF_PROMISC) !== 0) !== spec.promisc) rtnl.setPromisc(link.index, spec.promisc);
  if (!link.up) rtnl.setUp(link.index);
  return rtnl.linkByIndex(link.index) ?? link;
}

/**
 * Puts `address` on the link. Another address of the same subnet is an error unless
 * `force`, in which case it is replaced; addresses of other subnets are left alone.
 */
export function ensureAddress(rtnl: Rtnl, link: Link, address: IpNet, options: { force?: boolean; flags?: number } = {}): void {
  for (const existing of rtnl.addresses(address.family, link.index)) {
    const same = ipEqual(existing.address, address) && existing.address.prefixLength === address.prefixLength;
    if (same) return;
    const sameSubnet = netContains(networkOf(existing.address), address) || netContains(networkOf(address), existing.address);
    if (!sameSubnet) continue;
    if (!options.force) {
      throw new LinkConflictError(
        `"${link.name}" already has address ${formatIpNet(existing.address)}, not ${formatIpNet(address)}: set forceAddress to replace it`,
      );
    }
    rtnl.deleteAddress(link.index, existing.address);
  }
  try {
    rtnl.addAddress(link.index, address, options.flags ? { flags: options.flags } : {});
  } catch (err) {
    if (!hasErrno(err, 'EEXIST')) throw err;
  }
}

/** Deletes a link by name; a missing link is success. Returns whether one was deleted. */
export function deleteLinkByName(rtnl: Rtnl, name: string): boolean {
  const link = rtnl.linkByName(name);
  if (!link) return false;
  try {
    rtnl.deleteLink(link.index);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return false;
    throw err;
  }
}
