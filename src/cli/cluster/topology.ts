/**
 * The simulated data centre of ARCHITECTURE.md, built with our own netlink code: a fabric
 * namespace with one bridge per rack (198.18.<rack>.0/24), a router namespace joining the
 * racks, and node namespaces plugged into their rack with a veth whose node end is `eth0`.
 * Links are created inside the fabric namespace with their peer born in the node namespace,
 * so nothing ever touches the root namespace's network.
 */
import { closeSync, existsSync } from 'node:fs';
import { hasErrno, PontoonError } from '../../lib/errors.js';

class TopologyError extends PontoonError {}
import { type IpNet, parseIp, parseIpNet } from '../../lib/ip.js';
import { ensureBridge } from '../../lib/link.js';
import { createNetns, openNetns, openRtnl, withNetns } from '../../lib/netns.js';
import { writeSysctl } from '../../lib/sysctl.js';
import { IFA_F_NODAD } from '../../lib/netlink/rtnl.js';
import { rackGatewayV6 } from './addressing.js';

export function rackSegment(rack: number): string {
  return `198.18.${rack}.0/24`;
}

export function rackGateway(rack: number): string {
  return `198.18.${rack}.1`;
}

export function rackBridge(rack: number): string {
  return `fab${rack}`;
}

export function netnsFile(name: string): string {
  return `/run/netns/${name}`;
}

/** Creates a namespace and returns its name (lo up, forwarding on when asked, both families). */
export function makeNamespace(name: string, forwarding = false): string {
  createNetns(name);
  if (forwarding) {
    withNetns(netnsFile(name), () => {
      writeSysctl('net.ipv4.ip_forward', '1');
      writeSysctl('net.ipv6.conf.all.forwarding', '1');
    });
  }
  return name;
}

/**
 * The fabric plays a physical switch, and a switch runs no firewall: with br_netfilter loaded
 * (container hosts usually have it), every frame crossing a bridge would also traverse
 * iptables, a cost the underlay of a real cluster does not have.
 */
function disableBridgeNetfilter(netns: string): void {
  withNetns(netnsFile(netns), () => {
    for (const family of ['iptables', 'ip6tables', 'arptables']) {
      const key = `net.bridge.bridge-nf-call-${family}`;
      if (existsSync(`/proc/sys/${key.replaceAll('.', '/')}`)) writeSysctl(key, '0');
    }
  });
}

export function makeFabric(fabric: string, racks: number): void {
  disableBridgeNetfilter(fabric);
  const rtnl = openRtnl(netnsFile(fabric));
  try {
    for (let rack = 0; rack < racks; rack++) ensureBridge(rtnl, { name: rackBridge(rack) });
  } finally {
    rtnl.close();
  }
}

/**
 * Plugs `netns` into rack `rack`: veth `fabricSide` on the rack bridge, `inside` in the
 * namespace with `address`, and a default route via `gateway` if given.
 */
export function plug(fabric: string, rack: number, fabricSide: string, netns: string, inside: string, address: IpNet, gateway?: string, ipv6?: { address: IpNet; gateway?: string }): void {
  const fabricRtnl = openRtnl(netnsFile(fabric));
  const netnsFd = openNetns(netnsFile(netns));
  const innerRtnl = openRtnl(netnsFile(netns));
  try {
    try {
      fabricRtnl.createLink({ name: fabricSide, kind: 'veth', peer: { name: inside, netnsFd } });
    } catch (err) {
      if (!hasErrno(err, 'EEXIST')) throw err;
    }
    const bridge = fabricRtnl.linkByName(rackBridge(rack));
    const outer = fabricRtnl.linkByName(fabricSide);
    if (!bridge || !outer) throw new TopologyError(`fabric link ${fabricSide} or bridge ${rackBridge(rack)} missing`);
    fabricRtnl.setMaster(outer.index, bridge.index);
    fabricRtnl.setUp(outer.index);
    const link = innerRtnl.linkByName(inside);
    if (!link) throw new TopologyError(`${inside} did not appear in ${netns}`);
    innerRtnl.addAddress(link.index, address);
    innerRtnl.setUp(link.index);
    if (gateway) innerRtnl.addRoute({ family: 4, gateway: parseIp(gateway), oif: link.index });
    if (ipv6) {
      // No DAD: the plan makes addresses unique, and a tentative address would hold the
      // node's first second of IPv6 (flanneld's lookup, the VTEP's local address) back.
      innerRtnl.addAddress(link.index, ipv6.address, { flags: IFA_F_NODAD });
      if (ipv6.gateway) innerRtnl.addRoute({ family: 6, gateway: parseIp(ipv6.gateway), oif: link.index });
    }
  } finally {
    innerRtnl.close();
    closeSync(netnsFd);
    fabricRtnl.close();
  }
}

export function makeRouter(fabric: string, router: string, racks: number, ipv6 = false): void {
  makeNamespace(router, true);
  for (let rack = 0; rack < racks; rack++) {
    const v6 = ipv6 ? { address: parseIpNet(`${rackGatewayV6(rack)}/64`) } : undefined;
    plug(fabric, rack, `rt${rack}`, router, `eth${rack}`, parseIpNet(`${rackGateway(rack)}/24`), undefined, v6);
  }
}

/** A route for the Service range out of the node's eth0 (where a default route would send it). */
export function routeServiceNetwork(netns: string, serviceNetwork = '10.96.0.0/12'): void {
  const rtnl = openRtnl(netnsFile(netns));
  try {
    const eth0 = rtnl.linkByName('eth0');
    if (!eth0) throw new TopologyError(`${netns} has no eth0`);
    const dst = parseIpNet(serviceNetwork);
    rtnl.addRoute({ family: dst.family, dst, oif: eth0.index });
  } finally {
    rtnl.close();
  }
}
