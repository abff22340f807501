/**
 * Gathers a NetState of one network namespace: the agent's own (it runs in the node
 * namespace) or, for `pontoon debug netstate --netns`, a named one.
 *
 * The slow parts are the two helper programs (nft, iptables-save: tens of milliseconds each),
 * so they are started first and run while the netlink dumps (sub-millisecond, synchronous)
 * and the pod sandboxes are read; the total is about the slowest program, not the sum.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatIp, formatIpNet } from '../lib/ip.js';
import { AF_BRIDGE, AF_INET, AF_INET6, type Link, type Rtnl } from '../lib/netlink/rtnl.js';
import { decodeVxlanInfo } from '../lib/netlink/vxlan.js';
import { listNetns, NETNS_RUN_DIR, netnsPath, openRtnl, withNetns } from '../lib/netns.js';
import { describeError } from '../lib/errors.js';
import { type AddressState, type FdbState, type LinkState, NETSTATE_VERSION, type NetState, type NftRuleset, type PodSandboxState, type RouteState, type SysctlState } from './netstate.js';

const IFF_LOWER_UP = 0x10000;
const NTF_SELF = 0x02;

export interface GatherOptions {
  /** The node name to record. */
  node: string;
  /** Read this named namespace instead of our own. */
  netns?: string;
  /** Pod sandboxes: namespaces in `podNetnsDir` whose name starts with `podNetnsPrefix`. */
  podNetnsDir?: string;
  podNetnsPrefix?: string;
}

function runAsync(command: string, args: string[], netns: string | undefined): Promise<string> {
  const [file, argv] = netns ? ['ip', ['netns', 'exec', netns, command, ...args]] : [command, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function gatherNetState(options: GatherOptions): Promise<NetState> {
  const started = performance.now();
  const errors: string[] = [];
  const nftables = runAsync('nft', ['-j', 'list', 'ruleset'], options.netns).then(
    (text) => JSON.parse(text) as NftRuleset,
    (err: unknown) => (errors.push(describeError(err)), null),
  );
  const iptables = runAsync('iptables-save', ['-c'], options.netns).catch((err: unknown) => (errors.push(describeError(err)), null));

  const rtnl = options.netns ? openRtnl(netnsPath(options.netns)) : openRtnl();
  let kernel: Pick<NetState, 'links' | 'addresses' | 'routes' | 'neighbours' | 'fdb'>;
  let sysctls: SysctlState;
  try {
    kernel = readKernel(rtnl, errors);
    sysctls = options.netns ? withNetns(netnsPath(options.netns), () => readSysctls(errors)) : readSysctls(errors);
    if (options.netns) withNetns(netnsPath(options.netns), () => readHairpin(kernel.links));
    else readHairpin(kernel.links);
  } finally {
    rtnl.close();
  }
  const pods = options.podNetnsPrefix !== undefined ? readPods(options.podNetnsDir ?? NETNS_RUN_DIR, options.podNetnsPrefix, kernel.links) : [];
  const [nft, ipt] = await Promise.all([nftables, iptables]);
  return {
    version: NETSTATE_VERSION,
    node: options.node,
    takenAt: new Date().toISOString(),
    gatherMs: Math.round((performance.now() - started) * 10) / 10,
    ...kernel,
    sysctls,
    nftables: nft,
    iptables: ipt,
    pods,
    errors,
  };
}

function linkState(link: Link, names: ReadonlyMap<number, string>): LinkState {
  const state: LinkState = { index: link.index, name: link.name, up: link.up, lowerUp: (link.flags & IFF_LOWER_UP) !== 0, mtu: link.mtu };
  if (link.kind) state.kind = link.kind;
  if (link.mac) state.mac = link.mac;
  if (link.masterIndex !== undefined) state.master = names.get(link.masterIndex) ?? String(link.masterIndex);
  if (link.parentIndex !== undefined) state.peerIndex = link.parentIndex;
  if (link.peerNetnsId !== undefined) state.peerInOtherNetns = true;
  if (link.kind === 'vxlan' && link.infoData) {
    const info = decodeVxlanInfo(link.infoData);
    state.vxlan = { vni: info.vni, port: info.port, learning: info.learning };
    if (info.local) state.vxlan.local = formatIp(info.local);
    if (info.underlayIndex !== undefined) state.vxlan.underlay = names.get(info.underlayIndex) ?? String(info.underlayIndex);
  }
  return state;
}

function readKernel(rtnl: Rtnl, errors: string[]): Pick<NetState, 'links' | 'addresses' | 'routes' | 'neighbours' | 'fdb'> {
  const raw = rtnl.links();
  const names = new Map(raw.map((l) => [l.index, l.name]));
  const dev = (index: number | undefined): string => (index === undefined ? '?' : (names.get(index) ?? String(index)));
  const links = raw.map((l) => linkState(l, names));
  const addresses: AddressState[] = rtnl.addresses().map((a) => ({ dev: dev(a.index), address: formatIpNet(a.address), family: a.address.family, scope: a.scope }));
  const routes: RouteState[] = rtnl.routes(undefined, 'all').map((r) => {
    const route: RouteState = { family: r.family, dst: r.dst ? formatIpNet(r.dst) : 'default', table: r.table ?? 254, protocol: r.protocol ?? 0, scope: r.scope ?? 0, type: r.type ?? 1 };
    if (r.gateway) route.gateway = formatIp(r.gateway);
    if (r.oif !== undefined) route.dev = dev(r.oif);
    if (r.prefsrc) route.prefsrc = formatIp(r.prefsrc);
    if (r.priority !== undefined) route.metric = r.priority;
    if (r.mtu !== undefined) route.mtu = r.mtu;
    if (r.onlink) route.onlink = true;
    return route;
  });
  const neighbours = [AF_INET, AF_INET6].flatMap((family) => {
    try {
      return rtnl.neighbours(family).flatMap((n) => (n.ip ? [{ family: n.ip.family, ip: formatIp(n.ip), dev: dev(n.index), state: n.state, ...(n.mac ? { mac: n.mac } : {}) }] : []));
    } catch (err) {
      errors.push(`neighbours: ${describeError(err)}`);
      return [];
    }
  });
  let fdb: FdbState[] = [];
  try {
    fdb = rtnl.neighbours(AF_BRIDGE).flatMap((n) => {
      if (!n.mac) return [];
      const entry: FdbState = { mac: n.mac, dev: dev(n.index), state: n.state, self: (n.flags & NTF_SELF) !== 0 };
      if (n.ip) entry.dst = formatIp(n.ip);
      if (n.masterIndex !== undefined) entry.master = dev(n.masterIndex);
      return [entry];
    });
  } catch (err) {
    errors.push(`fdb: ${describeError(err)}`);
  }
  return { links, addresses, routes, neighbours, fdb };
}

/** Must run on a thread inside the namespace: /proc/sys/net is per namespace of the reader. */
function readSysctls(errors: string[]): SysctlState {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      errors.push(`sysctl ${path}: ${describeError(err)}`);
      return undefined;
    }
  };
  const rpFilter: Record<string, number> = {};
  for (const dev of readdirSync('/proc/sys/net/ipv4/conf')) {
    const value = read(join('/proc/sys/net/ipv4/conf', dev, 'rp_filter'));
    if (value !== undefined) rpFilter[dev] = Number(value);
  }
  const state: SysctlState = { ipForward: read('/proc/sys/net/ipv4/ip_forward') === '1', ipv6Forward: read('/proc/sys/net/ipv6/conf/all/forwarding') === '1', rpFilter };
  // Present only while br_netfilter is loaded.
  if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) state.bridgeNfCallIptables = read('/proc/sys/net/bridge/bridge-nf-call-iptables') === '1';
  return state;
}

/**
 * Bridge ports' hairpin flag from sysfs. /sys shows the namespace of whoever mounted it
 * (`ip netns exec` remounts it for the node), so a port missing there is left unknown.
 */
function readHairpin(links: LinkState[]): void {
  for (const link of links) {
    if (!link.master) continue;
    try {
      link.hairpin = readFileSync(`/sys/class/net/${link.name}/brport/hairpin_mode`, 'utf8').trim() === '1';
    } catch {
      // not visible from this mount namespace
    }
  }
}

function readPods(dir: string, prefix: string, nodeLinks: readonly LinkState[]): PodSandboxState[] {
  const veths = nodeLinks.filter((l) => l.kind === 'veth' && l.peerInOtherNetns);
  return listNetns(dir)
    .filter((name) => name.startsWith(prefix))
    .sort()
    .map((name) => {
      const pod: PodSandboxState = { netns: name, addresses: [], routes: [] };
      try {
        const rtnl = openRtnl(join(dir, name));
        try {
          const raw = rtnl.links();
          const names = new Map(raw.map((l) => [l.index, l.name]));
          const eth0 = raw.find((l) => l.name === 'eth0');
          if (eth0) {
            pod.eth0 = { index: eth0.index, up: eth0.up, lowerUp: (eth0.flags & IFF_LOWER_UP) !== 0, mtu: eth0.mtu, ...(eth0.mac ? { mac: eth0.mac } : {}), ...(eth0.parentIndex !== undefined ? { peerIndex: eth0.parentIndex } : {}) };
            // The node-side veth is the one at eth0's IFLA_LINK whose own IFLA_LINK is eth0.
            const host = veths.find((v) => v.index === eth0.parentIndex && v.peerIndex === eth0.index);
            if (host) pod.hostVeth = host.name;
          }
          pod.addresses = rtnl.addresses(4).concat(rtnl.addresses(6)).map((a) => ({ dev: names.get(a.index) ?? String(a.index), address: formatIpNet(a.address), family: a.address.family, scope: a.scope }));
          pod.routes = rtnl.routes(undefined, 254).map((r) => {
            const route: RouteState = { family: r.family, dst: r.dst ? formatIpNet(r.dst) : 'default', table: r.table ?? 254, protocol: r.protocol ?? 0, scope: r.scope ?? 0, type: r.type ?? 1 };
            if (r.gateway) route.gateway = formatIp(r.gateway);
            if (r.oif !== undefined) route.dev = names.get(r.oif) ?? String(r.oif);
            if (r.onlink) route.onlink = true;
            return route;
          });
        } finally {
          rtnl.close();
        }
      } catch (err) {
        pod.error = describeError(err);
      }
      return pod;
    });
}
