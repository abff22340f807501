/**
 * host-gw: no encapsulation. Each remote node's pod subnet is routed via that node's underlay
 * address, which only works when every node is one hop away on the same L2 segment; a
 * remote outside our segment is refused with a reason rather than given a route that would
 * blackhole through the default gateway.
 */
import { formatIp, netContains, parseIp, formatIpNet } from '../../lib/ip.js';
import type { Route } from '../../lib/netlink/rtnl.js';
import type { Lease } from '../subnet/lease.js';
import { type Backend, type BackendContext, type LocalSetup, type ReconcileReport, registerBackend } from './backend.js';
import { syncRoutes } from './routes.js';

/** A route to `lease.subnet` via its node, when that node shares our segment. */
export function directRoute(context: BackendContext, lease: Lease): Route | string {
  const publicIp = parseIp(lease.attrs.publicIp);
  if (!netContains(context.ext.segment, publicIp)) {
    return `node ${formatIp(publicIp)} is not on this node's L2 segment ${formatIpNet(context.ext.segment)}`;
  }
  return { family: lease.subnet.family, dst: lease.subnet, gateway: publicIp, oif: context.ext.link.index };
}

export class HostGwBackend implements Backend {
  readonly type = 'host-gw';

  constructor(private readonly context: BackendContext) {}

  async prepare(): Promise<LocalSetup> {
    return { backendData: {}, mtu: this.context.ext.link.mtu };
  }

  configureLocal(): void {
    // nothing local: pods sit on the CNI bridge, routes do the rest
  }

  reconcile(remotes: readonly Lease[]): ReconcileReport {
    const desired: Route[] = [];
    const rejected: ReconcileReport['rejected'] = [];
    for (const lease of remotes) {
      const route = directRoute(this.context, lease);
      if (typeof route === 'string') rejected.push({ lease, reason: `${route}: host-gw needs every node on one segment (use vxlan with DirectRouting across segments)` });
      else desired.push(route);
    }
    return { ...syncRoutes(this.context.rtnl, this.context.network.network.family, desired), rejected };
  }

  async close(): Promise<void> {}
}

registerBackend('host-gw', (context) => new HostGwBackend(context));
