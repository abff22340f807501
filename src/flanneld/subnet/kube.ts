/**
 * Leases kept in the Kubernetes API, as flannel's `--kube-subnet-mgr` does: the node-ipam
 * controller owns subnet assignment (`Node.spec.podCIDR`), so "acquiring" a lease means
 * waiting for our Node's podCIDR and publishing our backend data as annotations on it:
 *
 *   flannel.alpha.coreos.com/backend-type: vxlan
 *   flannel.alpha.coreos.com/backend-data: {"VtepMAC":"..."}
 *   flannel.alpha.coreos.com/public-ip:    198.18.0.11
 *   flannel.alpha.coreos.com/kube-subnet-manager: "true"
 *
 * Dual-stack, as flannel: the Node's `spec.podCIDRs` hold a subnet per family and the IPv6
 * half is published in `flannel.alpha.coreos.com/public-ipv6` and `.../backend-v6-data`
 * (an IPv6-only node has only those two, no public-ip/backend-data).
 *
 * Every other node's lease is its Node object once it carries a podCIDR and those
 * annotations; a Node that is deleted, or loses them, is a removed lease. There is no TTL:
 * the Node's existence is the lease, so "renewal" only re-asserts our annotations (which
 * repairs someone editing them away). The network config is not stored in the API either:
 * like flannel, it comes from a file (net-conf.json, usually a mounted ConfigMap).
 */
import { readFileSync } from 'node:fs';
import type { Node } from '../../api/types.js';
import { RESOURCE } from '../../api/resources.js';
import type { KubeApi } from '../../client/api.js';
import { Informer } from '../../client/informer.js';
import { formatIpNet, type IpFamily, type IpNet, parseIp, parseIpNet, tryParseIp } from '../../lib/ip.js';
import type { Logger } from '../../lib/log.js';
import {
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  LeaseLostError,
  sameSubnet,
  type SubnetStore,
} from './lease.js';

export const ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';
const BACKEND_TYPE = `${ANNOTATION_PREFIX}/backend-type`;
const BACKEND_DATA = `${ANNOTATION_PREFIX}/backend-data`;
const PUBLIC_IP = `${ANNOTATION_PREFIX}/public-ip`;
const SUBNET_MANAGER = `${ANNOTATION_PREFIX}/kube-subnet-manager`;
const PUBLIC_IPV6 = `${ANNOTATION_PREFIX}/public-ipv6`;
const BACKEND_V6_DATA = `${ANNOTATION_PREFIX}/backend-v6-data`;

export interface KubeSubnetStoreOptions {
  api: KubeApi;
  /** This node's Node object name. */
  nodeName: string;
  /** Path of the network config (flannel's net-conf.json). */
  netConfPath: string;
  log: Logger;
  /** How often to look again while our Node has no podCIDR yet. */
  podCidrPollMs?: number;
}

export class KubeSubnetStore implements SubnetStore {
  readonly description: string;
  private informer: Informer<Node> | undefined;

  constructor(private readonly options: KubeSubnetStoreOptions) {
    this.description = `kube node ${options.nodeName} (net-conf ${options.netConfPath})`;
  }

  async getNetworkConfig(): Promise<string | undefined> {
    try {
      return readFileSync(this.options.netConfPath, 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Waits for node-ipam to give our Node a podCIDR (one per family we need), then publishes our backend data. */
  async acquireLease(attrs: LeaseAttrs, _candidates: readonly IpNet[], ttlSeconds: number): Promise<Lease> {
    const { api, nodeName, log } = this.options;
    let waitedLogged = false;
    for (;;) {
      const node = await api.get<Node>(RESOURCE.nodes, nodeName);
      const subnets = node && subnetsFor(node, attrs);
      if (subnets) {
        await this.publish(attrs);
        return { ...subnets, attrs, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
      }
      if (!waitedLogged) {
        log.info({ node: nodeName, dualStack: attrs.publicIpv6 !== undefined }, node ? 'waiting for node-ipam to assign spec.podCIDRs' : 'waiting for the Node object to be registered');
        waitedLogged = true;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.podCidrPollMs ?? 500));
    }
  }

  async renewLease(lease: Lease, ttlSeconds: number): Promise<Lease> {
    const node = await this.options.api.get<Node>(RESOURCE.nodes, this.options.nodeName);
    const subnets = node && subnetsFor(node, lease.attrs);
    if (!subnets || !sameSubnet(subnets.subnet, lease.subnet) || !sameOptionalSubnet(subnets.ipv6Subnet, lease.ipv6Subnet)) {
      throw new LeaseLostError(`node ${this.options.nodeName} no longer has podCIDR ${formatIpNet(lease.subnet)}`);
    }
    if (!sameAttrs(leaseAttrsOf(node), lease.attrs)) await this.publish(lease.attrs);
    return { ...lease, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
  }

  async watchLeases(
    onEvents: (events: LeaseEvent[]) => void,
    _onError: (err: unknown) => void,
  ): Promise<{ leases: Lease[]; stop(): void }> {
    // The informer re-lists and resumes by itself, so the watch never fails outward.
    this.informer?.stop();
    const informer = (this.informer = new Informer<Node>(this.options.api, RESOURCE.nodes, { log: this.options.log }));
    const known = new Map<string, Lease>();
    await informer.start();
    for (const node of informer.list()) {
      const lease = leaseOf(node);
      if (lease) known.set(node.metadata.name ?? '', lease);
    }
    const changed = (node: Node): void => {
      const name = node.metadata.name ?? '';
      const before = known.get(name);
      const after = leaseOf(node);
      const events: LeaseEvent[] = [];
      if (before && (!after || !sameSubnet(before.subnet, after.subnet))) events.push({ type: 'removed', subnet: before.subnet });
      if (after && (!before || !sameSubnet(before.subnet, after.subnet) || !sameOptionalSubnet(before.ipv6Subnet, after.ipv6Subnet) || !sameAttrs(before.attrs, after.attrs))) {
        events.push({ type: 'added', lease: after });
      }
      if (after) known.set(name, after);
      else known.delete(name);
      if (events.length > 0) onEvents(events);
    };
    informer.on('add', changed);
    informer.on('update', (_old, node) => changed(node));
    informer.on('delete', (node) => {
      const name = node.metadata.name ?? '';
      const before = known.get(name);
      known.delete(name);
      if (before) onEvents([{ type: 'removed', subnet: before.subnet }]);
    });
    return { leases: [...known.values()], stop: () => informer.stop() };
  }

  /** Forgets a node's lease: drops its flannel annotations (the Node itself stays). */
  async removeLease(subnet: IpNet): Promise<void> {
    const { api } = this.options;
    const nodes = await api.list<Node>(RESOURCE.nodes);
    for (const node of nodes.items) {
      if (!podCidrsOf(node).some((cidr) => sameSubnet(cidr, subnet))) continue;
      const annotations = { [BACKEND_TYPE]: null, [BACKEND_DATA]: null, [PUBLIC_IP]: null, [PUBLIC_IPV6]: null, [BACKEND_V6_DATA]: null, [SUBNET_MANAGER]: null };
      await api.patch(RESOURCE.nodes, node.metadata.name ?? '', undefined, { metadata: { annotations } }, 'merge');
    }
  }

  async close(): Promise<void> {
    this.informer?.stop();
  }

  private async publish(attrs: LeaseAttrs): Promise<void> {
    const v6Only = parseIp(attrs.publicIp).family === 6;
    const annotations: Record<string, string> = { [BACKEND_TYPE]: attrs.backendType, [SUBNET_MANAGER]: 'true' };
    if (v6Only) {
      annotations[PUBLIC_IPV6] = attrs.publicIp;
      annotations[BACKEND_V6_DATA] = JSON.stringify(attrs.backendData);
    } else {
      annotations[PUBLIC_IP] = attrs.publicIp;
      annotations[BACKEND_DATA] = JSON.stringify(attrs.backendData);
      if (attrs.publicIpv6) {
        annotations[PUBLIC_IPV6] = attrs.publicIpv6;
        annotations[BACKEND_V6_DATA] = JSON.stringify(attrs.backendV6Data ?? {});
      }
    }
    await this.options.api.patch(RESOURCE.nodes, this.options.nodeName, undefined, { metadata: { annotations } }, 'merge');
  }
}

function podCidrsOf(node: Node): IpNet[] {
  const texts = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const cidrs: IpNet[] = [];
  for (const text of texts) {
    try {
      cidrs.push(parseIpNet(text));
    } catch {
      // node-ipam writes valid CIDRs; a hand-edited bad one is no lease
    }
  }
  return cidrs;
}

function podCidrOf(node: Node, family: IpFamily): IpNet | undefined {
  return podCidrsOf(node).find((cidr) => cidr.family === family);
}

/** The node's subnets for a lease with these attrs: the primary family's, and IPv6 for dual-stack. */
function subnetsFor(node: Node, attrs: LeaseAttrs): { subnet: IpNet; ipv6Subnet?: IpNet } | undefined {
  const primary = tryParseIp(attrs.publicIp);
  const subnet = primary && podCidrOf(node, primary.family);
  if (!subnet) return undefined;
  if (!attrs.publicIpv6) return { subnet };
  const ipv6Subnet = podCidrOf(node, 6);
  return ipv6Subnet ? { subnet, ipv6Subnet } : undefined;
}

function jsonAnnotation(text: string | undefined): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function leaseAttrsOf(node: Node): LeaseAttrs | undefined {
  const annotations = node.metadata.annotations ?? {};
  const publicIp = annotations[PUBLIC_IP];
  const publicIpv6 = annotations[PUBLIC_IPV6];
  const backendType = annotations[BACKEND_TYPE];
  if (!backendType || (!publicIp && !publicIpv6)) return undefined;
  const backendV6Data = publicIpv6 ? jsonAnnotation(annotations[BACKEND_V6_DATA]) : undefined;
  if (!publicIp) return backendV6Data && publicIpv6 ? { publicIp: publicIpv6, backendType, backendData: backendV6Data } : undefined; // IPv6-only
  const backendData = jsonAnnotation(annotations[BACKEND_DATA]);
  if (!backendData) return undefined;
  return { publicIp, backendType, backendData, ...(publicIpv6 && backendV6Data ? { publicIpv6, backendV6Data } : {}) };
}

/** A node's lease: its podCIDRs plus the backend data it published; undefined until both exist. */
export function leaseOf(node: Node): Lease | undefined {
  const attrs = leaseAttrsOf(node);
  if (!attrs) return undefined;
  const subnets = subnetsFor(node, attrs);
  if (subnets) return { ...subnets, attrs };
  // Published IPv6 data but no IPv6 podCIDR: still reachable over the primary family.
  const primary = tryParseIp(attrs.publicIp);
  const subnet = primary && podCidrOf(node, primary.family);
  if (!subnet) return undefined;
  const { publicIpv6: _v6, backendV6Data: _data, ...single } = attrs;
  return { subnet, attrs: single };
}

function sameOptionalSubnet(a: IpNet | undefined, b: IpNet | undefined): boolean {
  return a && b ? sameSubnet(a, b) : a === b;
}

function sameAttrs(a: LeaseAttrs | undefined, b: LeaseAttrs): boolean {
  return (
    a !== undefined &&
    a.publicIp === b.publicIp &&
    a.backendType === b.backendType &&
    a.publicIpv6 === b.publicIpv6 &&
    JSON.stringify(a.backendData) === JSON.stringify(b.backendData) &&
    JSON.stringify(a.backendV6Data) === JSON.stringify(b.backendV6Data)
  );
}

