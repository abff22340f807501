/**
 * pontoon-bridge: a veth pair per container, its host end on a Linux bridge, addresses from
 * IPAM, optional gateway address on the bridge and masquerade. It turns config into calls on
 * src/lib; every kernel step is idempotent, and ADD undoes its own work when a later step
 * fails, so a failed ADD leaves neither interfaces nor addresses behind.
 */
import { existsSync } from 'node:fs';
import { closeSync } from 'node:fs';
import { hasErrno } from '../../lib/errors.js';
import { formatIp, type Ip, type IpNet, lastAddressOf, networkOf, offsetIp, parseIp, parseIpNet, ipEqual, netContains } from '../../lib/ip.js';
import { deleteLinkByName, ensureAddress, ensureBridge } from '../../lib/link.js';
import { IFA_F_NODAD, type Link, type Rtnl, RT_SCOPE_LINK } from '../../lib/netlink/rtnl.js';
import { openNetns, openRtnl, withNetns } from '../../lib/netns.js';
import { ensureSysctl, writeSysctl } from '../../lib/sysctl.js';
import { execPlugin, execPluginAdd } from '../../cni/invoke.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, validAttachments } from '../ipam/hostlocal.js';
import { CniError, CniErrorCode } from '../../cni/errors.js';
import { type CmdArgs, parseResult, type Result, type RouteConfig } from '../../cni/types.js';
import { type BridgeConf, parseBridgeConf } from './config.js';
import { masqChainName, masqComment, setupMasq, staleMasqChains, teardownMasq } from './masq.js';

/** The IPAM type served in-process instead of by exec'ing a second Node process. */
export const IN_PROCESS_IPAM = 'pontoon-ipam';

/**
 * Failure injection for crash tests: PONTOON_CNI_CRASH_AT=<point> makes ADD or DEL SIGKILL
 * itself there, exactly as a runtime timeout or OOM kill would.
 */
function crashPoint(point: string): void {
  if (process.env['PONTOON_CNI_CRASH_AT'] === point) process.kill(process.pid, 'SIGKILL');
}

const ipam = {
  add(args: CmdArgs, conf: BridgeConf): Promise<Result> | Result {
    return conf.ipamType === IN_PROCESS_IPAM ? ipamAdd(args) : execPluginAdd(conf.ipamType, args.stdin, args.path);
  },
  async run(command: 'DEL' | 'CHECK' | 'STATUS' | 'GC', args: CmdArgs, conf: BridgeConf): Promise<void> {
    if (conf.ipamType === IN_PROCESS_IPAM) {
      const handler = { DEL: ipamDel, CHECK: ipamCheck, STATUS: ipamStatus, GC: ipamGc }[command];
      return handler(args);
    }
    execPlugin(conf.ipamType, command, args.stdin, args.path);
  },
};

/** Not security-sensitive (a taken name is simply drawn again), so no crypto module load. */
function randomVethName(): string {
  return `veth${Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0')}`;
}

/**
 * The host end of every veth we create carries this alias, so GC can find pairs that a
 * crashed ADD left behind without any state file of our own.
 */
export function vethAlias(network: string, containerId: string, ifname: string): string {
  return `pontoon:${network}:${containerId}:${ifname}`;
}

function parseVethAlias(alias: string | undefined): { network: string; containerId: string; ifname: string } | undefined {
  const parts = alias?.split(':');
  if (!parts || parts.length !== 4 || parts[0] !== 'pontoon') return undefined;
  const [, network = '', containerId = '', ifname = ''] = parts;
  return { network, containerId, ifname };
}

interface Veth {
  host: Link;
  container: Link;
}

/** Creates the pair with its container end born inside the container namespace. */
function createVeth(host: Rtnl, container: Rtnl, netnsFd: number, args: CmdArgs, conf: BridgeConf): Veth {
  if (container.linkByName(args.ifname)) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `CNI_IFNAME "${args.ifname}" already exists in container namespace ${args.netns}`);
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const hostName = randomVethName();
    try {
      host.createLink({
        name: hostName,
        kind: 'veth',
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        peer: { name: args.ifname, netnsFd, ...(conf.mtu ? { mtu: conf.mtu } : {}), ...(conf.mac ? { mac: conf.mac } : {}) },
      });
    } catch (err) {
      if (hasErrno(err, 'EEXIST') && !container.linkByName(args.ifname)) continue; // host name taken: draw again
      throw err;
    }
    try {
      const hostLink = host.linkByName(hostName);
      const containerLink = container.linkByName(args.ifname);
      if (!hostLink || !containerLink) throw new CniError(CniErrorCode.Internal, `veth "${hostName}" was created but cannot be found`);
      // RTM_NEWLINK ignores IFLA_IFALIAS on creation; it only applies to an existing link.
      host.setAlias(hostLink.index, vethAlias(args.config.name, args.containerId, args.ifname));
      return { host: hostLink, container: containerLink };
    } catch (err) {
      deleteLinkByName(host, hostName); // the caller never learns its name: clean up here
      throw err;
    }
  }
  throw new CniError(CniErrorCode.TryAgainLater, 'could not find a free host-side veth name after 8 attempts');
}

function gatewayFor(address: IpNet, gateway: string | undefined): Ip {
  // The reference plugin's rule: no gateway from IPAM means the subnet's first address.
  return gateway ? parseIp(gateway) : offsetIp(networkOf(address), 1n);
}

function isDefaultRoute(dst: IpNet): boolean {
  return dst.prefixLength === 0;
}

/**
 * As the reference plugin without `enableDad`: no DAD on the pod's interface, so its
 * link-local address is not tentative for a second after the link comes up (the global
 * addresses get IFA_F_NODAD). Set before the link is up, in the pod's namespace.
 */
function disableContainerDad(netns: string, ifname: string): void {
  withNetns(netns, () => {
    writeSysctl(`net.ipv6.conf.${ifname}.accept_dad`, '0');
    if (existsSync(`/proc/sys/net/ipv6/conf/${ifname}/enhanced_dad`)) writeSysctl(`net.ipv6.conf.${ifname}.enhanced_dad`, '0');
  });
}

/** Addresses, link up, then routes: routes via a gateway need the subnet route first. */
function configureContainer(rtnl: Rtnl, link: Link, result: Result): void {
  const gateways = new Map<number, Ip>();
  for (const ipConfig of result.ips ?? []) {
    const address = parseIpNet(ipConfig.address);
    // DAD would hold an IPv6 address tentative for a second; the allocator already made it unique.
    const options = address.family === 6 ? { flags: IFA_F_NODAD } : address.prefixLength < 31 ? { broadcast: lastAddressOf(address) } : {};
    try {
      rtnl.addAddress(link.index, address, options);
    } catch (err) {
      if (!hasErrno(err, 'EEXIST')) throw err;
    }
    if (ipConfig.gateway && !gateways.has(address.family)) gateways.set(address.family, parseIp(ipConfig.gateway));
  }
  rtnl.setUp(link.index);
  for (const route of result.routes ?? []) {
    const dst = parseIpNet(route.dst);
    const gateway = route.gw ? parseIp(route.gw) : gateways.get(dst.family);
    try {
      rtnl.addRoute({
        family: dst.family,
        ...(isDefaultRoute(dst) ? {} : { dst: networkOf(dst) }),
        ...(gateway ? { gateway } : { scope: RT_SCOPE_LINK }),
        oif: link.index,
        ...(route.mtu ? { mtu: route.mtu } : {}),
        ...(route.advmss ? { advmss: route.advmss } : {}),
        ...(route.priority !== undefined ? { priority: route.priority } : {}),
        ...(route.table !== undefined ? { table: route.table } : {}),
      });
    } catch (err) {
      if (!hasErrno(err, 'EEXIST')) throw err;
    }
  }
}

/** Gives each IP its gateway and, with isDefaultGateway, a default route through it. */
function applyGateways(result: Result, conf: BridgeConf): IpNet[] {
  const bridgeAddresses: IpNet[] = [];
  for (const ipConfig of result.ips ?? []) {
    const address = parseIpNet(ipConfig.address);
    const gateway = gatewayFor(address, ipConfig.gateway);
    ipConfig.gateway = formatIp(gateway);
    bridgeAddresses.push({ ...gateway, prefixLength: address.prefixLength });
    if (conf.isDefaultGateway) {
      const dst = address.family === 4 ? '0.0.0.0/0' : '::/0';
      const routes = (result.routes ??= []);
      const existing = routes.find((route) => route.dst === dst);
      if (existing && existing.gw && !ipEqual(parseIp(existing.gw), gateway)) {
        throw new CniError(CniErrorCode.InvalidNetworkConfig, `isDefaultGateway conflicts with the IPAM route ${dst} via ${existing.gw}`);
      }
      if (!existing) routes.push({ dst, gw: formatIp(gateway) } satisfies RouteConfig);
    }
  }
  return bridgeAddresses;
}

function setupBridgeGateway(rtnl: Rtnl, bridge: Link, addresses: readonly IpNet[], conf: BridgeConf): void {
  for (const address of addresses) {
    ensureAddress(rtnl, bridge, address, { force: conf.forceAddress, ...(address.family === 6 ? { flags: IFA_F_NODAD } : {}) });
  }
  if (addresses.some((a) => a.family === 4)) ensureSysctl('net.ipv4.ip_forward', '1');
  if (addresses.some((a) => a.family === 6)) ensureSysctl('net.ipv6.conf.all.forwarding', '1');
}

export async function bridgeAdd(args: CmdArgs): Promise<Result> {
  const conf = parseBridgeConf(args.config, args.args);
  const netnsFd = openNetns(args.netns);
  const host = openRtnl();
  let container: Rtnl | undefined;
  let veth: Veth | undefined;
  let ipamDone = false;
  let masqChain: string | undefined;
  try {
    container = openRtnl(args.netns);
    const bridge = ensureBridge(host, { name: conf.bridge, ...(conf.mtu ? { mtu: conf.mtu } : {}), promisc: conf.promiscMode });
    veth = createVeth(host, container, netnsFd, args, conf);
    host.setMaster(veth.host.index, bridge.index);
    if (conf.hairpinMode) host.setHairpin(veth.host.index, true);
    host.setUp(veth.host.index);

    const ipamResult = await ipam.add(args, conf);
    ipamDone = true;
    crashPoint('after-ipam');
    if (!ipamResult.ips || ipamResult.ips.length === 0) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `IPAM plugin "${conf.ipamType}" returned no IP configuration`);
    }
    const result: Result = {
      cniVersion: args.config.cniVersion,
      interfaces: [
        { name: bridge.name, mac: bridge.mac ?? '', mtu: bridge.mtu },
        { name: veth.host.name, mac: veth.host.mac ?? '', mtu: veth.host.mtu },
        { name: args.ifname, mac: veth.container.mac ?? '', mtu: veth.container.mtu, sandbox: args.netns },
      ],
      ips: ipamResult.ips.map((ip) => ({ ...ip, interface: 2 })),
      routes: ipamResult.routes ?? [],
      dns: args.config.dns ?? ipamResult.dns ?? {},
    };
    if (conf.isGateway) setupBridgeGateway(host, bridge, applyGateways(result, conf), conf);
    if ((result.ips ?? []).some((ip) => ip.address.includes(':'))) disableContainerDad(args.netns, args.ifname);
    configureContainer(container, veth.container, result);
    if (conf.ipMasq) {
      masqChain = masqChainName(args.config.name, args.containerId, args.ifname);
      setupMasq(masqChain, masqComment(args.config.name, args.containerId), (result.ips ?? []).map((ip) => parseIpNet(ip.address)));
    }
    return result;
  } catch (err) {
    // Undo in reverse; each step tolerates what is already gone.
    if (masqChain) tryQuietly(() => teardownMasq(new Set([masqChain as string])));
    if (ipamDone) await tryQuietlyAsync(() => ipam.run('DEL', args, conf));
    if (veth) tryQuietly(() => host.deleteLink((veth as Veth).host.index));
    throw err;
  } finally {
    container?.close();
    host.close();
    closeSync(netnsFd);
  }
}

function tryQuietly(step: () => void): void {
  try {
    step();
  } catch {
    // best effort during rollback; the original error is what the runtime needs to see
  }
}

async function tryQuietlyAsync(step: () => Promise<void>): Promise<void> {
  try {
    await step();
  } catch {
    // as above
  }
}

export async function bridgeDel(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.config, args.args);
  // The link goes before the address is released, as in the reference plugin: a DEL killed
  // between the two steps then leaks a reservation (the runtime's retried DEL or GC frees
  // it), never hands out an address that the old veth still answers for.
  if (args.netns && existsSync(args.netns)) {
    const container = openRtnl(args.netns);
    try {
      deleteLinkByName(container, args.ifname); // its veth peer goes with it
    } finally {
      container.close();
    }
  }
  crashPoint('del-between-link-and-ipam');
  await ipam.run('DEL', args, conf);
  if (conf.ipMasq) teardownMasq(new Set([masqChainName(args.config.name, args.containerId, args.ifname)]));
}

function checkFailure(message: string): CniError {
  return new CniError(CniErrorCode.Internal, `CHECK failed: ${message}`);
}

export async function bridgeCheck(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.config, args.args);
  if (args.config.prevResult === undefined) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'CHECK needs prevResult in the network configuration');
  }
  const prev = parseResult(args.config.prevResult);
  await ipam.run('CHECK', args, conf);
  const containerIndex = (prev.interfaces ?? []).findIndex((i) => i.name === args.ifname && i.sandbox === args.netns);
  if (containerIndex < 0) throw checkFailure(`prevResult has no interface "${args.ifname}" in sandbox ${args.netns}`);
  const host = openRtnl();
  const container = openRtnl(args.netns);
  try {
    const bridge = host.linkByName(conf.bridge);
    if (!bridge || bridge.kind !== 'bridge') throw checkFailure(`bridge "${conf.bridge}" is missing`);
    const link = container.linkByName(args.ifname);
    if (!link) throw new CniError(CniErrorCode.UnknownContainer, `CHECK failed: interface "${args.ifname}" is missing from ${args.netns}`);
    const expectedMac = prev.interfaces?.[containerIndex]?.mac;
    if (expectedMac && link.mac !== expectedMac.toLowerCase()) throw checkFailure(`"${args.ifname}" has MAC ${link.mac}, expected ${expectedMac}`);
    if (link.kind !== 'veth' || link.parentIndex === undefined) throw checkFailure(`"${args.ifname}" is not a veth`);
    const peer = host.linkByIndex(link.parentIndex);
    if (!peer || peer.masterIndex !== bridge.index) throw checkFailure(`the host end of "${args.ifname}" is not attached to "${conf.bridge}"`);
    const present = container.addresses(undefined, link.index);
    for (const ipConfig of prev.ips ?? []) {
      if (ipConfig.interface !== undefined && ipConfig.interface !== containerIndex) continue;
      const want = parseIpNet(ipConfig.address);
      if (!present.some((a) => ipEqual(a.address, want) && a.address.prefixLength === want.prefixLength)) {
        throw checkFailure(`address ${ipConfig.address} is missing from "${args.ifname}"`);
      }
    }
    const routes = container.routes();
    for (const route of prev.routes ?? []) {
      const dst = parseIpNet(route.dst);
      const found = routes.some(
        (r) =>
          r.family === dst.family &&
          (r.dst ? r.dst.prefixLength === dst.prefixLength && netContains(networkOf(dst), r.dst) : dst.prefixLength === 0) &&
          (!route.gw || (r.gateway !== undefined && ipEqual(r.gateway, parseIp(route.gw)))),
      );
      if (!found) throw checkFailure(`route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} is missing in ${args.netns}`);
    }
  } finally {
    container.close();
    host.close();
  }
}

export async function bridgeStatus(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.config, args.args);
  try {
    await ipam.run('STATUS', args, conf);
  } catch (err) {
    // An IPAM plugin older than CNI 1.1 has no STATUS: it cannot report, so it is not "down".
    if (err instanceof CniError && err.code === CniErrorCode.IncompatibleVersion) return;
    throw err;
  }
}

export async function bridgeGc(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.config, args.args);
  await ipam.run('GC', args, conf);
  const valid = validAttachments(args.config);
  const host = openRtnl();
  try {
    for (const link of host.links()) {
      const owner = parseVethAlias(link.alias);
      if (link.kind !== 'veth' || !owner || owner.network !== args.config.name) continue;
      if (valid.some((a) => a.containerId === owner.containerId && a.ifname === owner.ifname)) continue;
      try {
        host.deleteLink(link.index); // takes the container end with it
      } catch (err) {
        if (!hasErrno(err, 'ENODEV')) throw err;
      }
    }
  } finally {
    host.close();
  }
  if (conf.ipMasq) {
    const live = new Set(valid.map((a) => a.containerId));
    for (const family of [4, 6] as const) {
      const stale = staleMasqChains(args.config.name, live, family);
      if (stale.size > 0) teardownMasq(stale, [family]);
    }
  }
}
