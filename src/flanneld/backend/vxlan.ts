/**
 * vxlan: the kernel VTEP `flannel.<VNI>` with learning off, and for each remote node three
 * static entries, as flannel's design has it:
 *
 *   route  10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink   (remote subnet → remote VTEP IP)
 *   neigh  10.244.2.0 lladdr <VtepMAC> dev flannel.1 permanent  (VTEP IP → VTEP MAC, no ARP)
 *   fdb    <VtepMAC> dst <PublicIP> dev flannel.1 self permanent (VTEP MAC → underlay address)
 *
 * Static entries replaced L2/L3-miss handling in flannel: no daemon on the packet path, no
 * first-packet drop. Our VTEP carries its subnet's network address (10.244.1.0/32), which
 * is the "via" other nodes use for us. With DirectRouting, a node on our own segment gets a
 * plain route via its underlay address instead (host-gw speed where possible).
 */
import { hasErrno } from '../../lib/errors.js';
import { type IpNet, ipEqual, networkOf, parseIp } from '../../lib/ip.js';
import { AF_BRIDGE, AF_INET, AF_INET6, type Link, type Neighbour, NTF_SELF, NUD_PERMANENT, type Route, RT_SCOPE_LINK } from '../../lib/netlink/rtnl.js';
import { decodeVxlanInfo, vxlanInfoData, type VxlanSpec } from '../../lib/netlink/vxlan.js';
import { backendFlag, backendNumber } from '../config.js';
import type { Lease } from '../subnet/lease.js';
import { type Backend, type BackendContext, BackendError, type LocalSetup, type ReconcileReport, registerBackend } from './backend.js';
import { directRoute } from './hostgw.js';
import { applyNeighbours, planNeighbours, syncRoutes } from './routes.js';

export const VXLAN_OVERHEAD = 50;
/** Over an IPv6 underlay the outer header is 20 bytes longer (flannel: MTU - 70). */
export const VXLAN_OVERHEAD_V6 = 70;
export const DEFAULT_VXLAN_PORT = 8472;

function sameSpec(a: VxlanSpec, b: VxlanSpec): boolean {
  const local = a.local && b.local ? ipEqual(a.local, b.local) : a.local === b.local;
  return a.vni === b.vni && a.port === b.port && a.learning === b.learning && local && a.underlayIndex === b.underlayIndex;
}

export class VxlanBackend implements Backend {
  readonly type = 'vxlan';
  readonly deviceName: string;
  private readonly spec: VxlanSpec;
  private readonly directRouting: boolean;
  private readonly mtu: number;
  private device: Link | undefined;

  constructor(private readonly context: BackendContext) {
    const { backend } = context.network;
    const vni = backendNumber(backend, 'VNI', 1);
    // flannel's names: the IPv6 overlay (dual-stack or IPv6-only) has its own VTEP over the
    // IPv6 underlay, since a VXLAN device has one local address of one family.
    this.deviceName = context.network.network.family === 6 ? `flannel-v6.${vni}` : `flannel.${vni}`;
    this.spec = {
      vni,
      port: backendNumber(backend, 'Port', DEFAULT_VXLAN_PORT),
      local: context.ext.address,
      underlayIndex: context.ext.link.index,
      learning: false,
    };
    this.directRouting = backendFlag(backend, 'DirectRouting');
    this.mtu = backendNumber(backend, 'MTU', context.ext.link.mtu - (context.ext.address.family === 6 ? VXLAN_OVERHEAD_V6 : VXLAN_OVERHEAD));
  }

  /** Adopts an existing VTEP if it matches; recreates it if its parameters changed. */
  async prepare(): Promise<LocalSetup> {
    const { rtnl, log } = this.context;
    let link = rtnl.linkByName(this.deviceName);
    if (link && (link.kind !== 'vxlan' || !link.infoData || !sameSpec(decodeVxlanInfo(link.infoData), this.spec))) {
      log.warn({ device: this.deviceName }, 'existing VTEP has different parameters; recreating it');
      rtnl.deleteLink(link.index);
      link = undefined;
    }
    if (!link) {
      try {
        rtnl.createLink({ name: this.deviceName, kind: 'vxlan', mtu: this.mtu, infoData: vxlanInfoData(this.spec) });
      } catch (err) {
        if (!hasErrno(err, 'EEXIST')) throw err;
      }
      link = rtnl.linkByName(this.deviceName);
      if (!link) throw new BackendError(`VTEP ${this.deviceName} vanished after creation`);
      // Pin the MAC: it is published in our lease and must survive restarts.
      if (link.mac) rtnl.setMac(link.index, link.mac);
    }
    if (link.mtu !== this.mtu) rtnl.setMtu(link.index, this.mtu);
    this.device = rtnl.linkByIndex(link.index) ?? link;
    return { backendData: { VtepMAC: this.device.mac ?? '' }, mtu: this.mtu };
  }

  configureLocal(lease: Lease): void {
    const { rtnl } = this.context;
    const device = this.requireDevice();
    const vtepAddress: IpNet = { ...networkOf(lease.subnet), prefixLength: lease.subnet.family === 4 ? 32 : 128 };
    for (const existing of rtnl.addresses(lease.subnet.family, device.index)) {
      if (existing.scope === RT_SCOPE_LINK) continue; // link-local
      if (!ipEqual(existing.address, vtepAddress)) rtnl.deleteAddress(device.index, existing.address);
    }
    if (!rtnl.addresses(lease.subnet.family, device.index).some((a) => ipEqual(a.address, vtepAddress))) {
      rtnl.addAddress(device.index, vtepAddress);
    }
    if (!device.up) rtnl.setUp(device.index);
  }

  reconcile(remotes: readonly Lease[]): ReconcileReport {
    const { rtnl } = this.context;
    const device = this.requireDevice();
    const routes: Route[] = [];
    const arp: Neighbour[] = [];
    const fdb: Neighbour[] = [];
    const rejected: ReconcileReport['rejected'] = [];
    for (const lease of remotes) {
      if (this.directRouting) {
        const route = directRoute(this.context, lease);
        if (typeof route !== 'string') {
          routes.push(route);
          continue;
        }
      }
      const mac = lease.attrs.backendData['VtepMAC'];
      if (lease.attrs.backendType !== 'vxlan' || typeof mac !== 'string' || !mac) {
        rejected.push({ lease, reason: `lease has backend "${lease.attrs.backendType}" without a VtepMAC` });
        continue;
      }
      const vtepIp = networkOf(lease.subnet);
      routes.push({ family: lease.subnet.family, dst: lease.subnet, gateway: vtepIp, oif: device.index, onlink: true });
      arp.push({ family: vtepIp.family === 4 ? AF_INET : AF_INET6, index: device.index, ip: vtepIp, mac, state: NUD_PERMANENT, flags: 0 });
      fdb.push({ family: AF_BRIDGE, index: device.index, ip: parseIp(lease.attrs.publicIp), mac, state: NUD_PERMANENT, flags: NTF_SELF });
    }
    // Entries before routes on the way in, routes before entries on the way out: a route
    // never points at a VTEP MAC the kernel cannot resolve.
    const arpPlan = planNeighbours(rtnl, AF_INET, device.index, arp.filter((n) => n.family === AF_INET));
    const arp6Plan = planNeighbours(rtnl, AF_INET6, device.index, arp.filter((n) => n.family === AF_INET6));
    const fdbPlan = planNeighbours(rtnl, AF_BRIDGE, device.index, fdb);
    applyNeighbours(rtnl, [...fdbPlan.add, ...arpPlan.add, ...arp6Plan.add]);
    const routeChanges = syncRoutes(rtnl, this.context.network.network.family, routes);
    applyNeighbours(rtnl, [...arpPlan.remove, ...arp6Plan.remove, ...fdbPlan.remove], true);
    return {
      added: routeChanges.added + fdbPlan.add.length + arpPlan.add.length + arp6Plan.add.length,
      removed: routeChanges.removed + fdbPlan.remove.length + arpPlan.remove.length + arp6Plan.remove.length,
      rejected,
    };
  }

  async close(): Promise<void> {}

  private requireDevice(): Link {
    if (!this.device) throw new BackendError('vxlan backend used before prepare()');
    return this.device;
  }
}

registerBackend('vxlan', (context) => new VxlanBackend(context));
