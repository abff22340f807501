/**
 * Subnet leases in flannel's encoding: key `<prefix>/subnets/10.244.1.0-24`, value
 * `{"PublicIP":"198.18.0.11","BackendType":"vxlan","BackendData":{"VtepMAC":"..."}}`.
 *
 * Dual-stack leases carry flannel's second half: `ipv6Subnet`, `PublicIPv6` and
 * `BackendV6Data` (the IPv6 VTEP's MAC). On an IPv6-only network the IPv6 subnet and address
 * are the lease's primary `subnet`/`publicIp` and the v6 fields stay empty: backends are
 * single-family and see one family's view of a lease (familyView).
 */
import { PontoonError } from '../../lib/errors.js';
import { formatIp, type IpNet, parseIp, parseIpNet, ipEqual } from '../../lib/ip.js';

export interface LeaseAttrs {
  publicIp: string;
  backendType: string;
  backendData: Record<string, unknown>;
  /** Dual-stack: the node's IPv6 underlay address and the IPv6 backend's data. */
  publicIpv6?: string;
  backendV6Data?: Record<string, unknown>;
}

export interface Lease {
  subnet: IpNet;
  /** Dual-stack: the node's IPv6 pod subnet. */
  ipv6Subnet?: IpNet;
  attrs: LeaseAttrs;
  /** When the store drops the lease unless it is renewed (known for our own lease). */
  expiresAt?: Date;
}

export type LeaseEvent = { type: 'added'; lease: Lease } | { type: 'removed'; subnet: IpNet };

export class LeaseDecodeError extends PontoonError {}

/** `10.244.1.0/24` ↔ `10.244.1.0-24`, flannel's key form. */
export function subnetKey(subnet: IpNet): string {
  return `${formatIp(subnet)}-${subnet.prefixLength}`;
}

export function parseSubnetKey(key: string): IpNet | undefined {
  const match = /([0-9a-fA-F.:]+)-(\d+)$/.exec(key);
  if (!match) return undefined;
  try {
    return parseIpNet(`${match[1]}/${match[2]}`);
  } catch {
    return undefined;
  }
}

export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  return JSON.stringify({
    PublicIP: attrs.publicIp,
    ...(attrs.publicIpv6 ? { PublicIPv6: attrs.publicIpv6 } : {}),
    BackendType: attrs.backendType,
    BackendData: attrs.backendData,
    ...(attrs.backendV6Data ? { BackendV6Data: attrs.backendV6Data } : {}),
  });
}

/**
 * The IPv6 half of a dual-stack lease as a single-family lease, for the IPv6 backend;
 * undefined when the lease has no IPv6 half.
 */
export function ipv6View(lease: Lease): Lease | undefined {
  const { ipv6Subnet } = lease;
  const { publicIpv6, backendV6Data } = lease.attrs;
  if (!ipv6Subnet || !publicIpv6) return undefined;
  return { subnet: ipv6Subnet, attrs: { publicIp: publicIpv6, backendType: lease.attrs.backendType, backendData: backendV6Data ?? {} } };
}

export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LeaseDecodeError(`lease value is not JSON: ${text.slice(0, 80)}`);
  }
  const source = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const publicIp = source['PublicIP'];
  if (typeof publicIp !== 'string') throw new LeaseDecodeError('lease value has no PublicIP');
  parseIp(publicIp);
  const backendData = source['BackendData'];
  const publicIpv6 = source['PublicIPv6'];
  const backendV6Data = source['BackendV6Data'];
  return {
    publicIp,
    backendType: typeof source['BackendType'] === 'string' ? source['BackendType'] : '',
    backendData: typeof backendData === 'object' && backendData !== null ? (backendData as Record<string, unknown>) : {},
    ...(typeof publicIpv6 === 'string' && publicIpv6 ? { publicIpv6 } : {}),
    ...(typeof backendV6Data === 'object' && backendV6Data !== null ? { backendV6Data: backendV6Data as Record<string, unknown> } : {}),
  };
}

export function sameSubnet(a: IpNet, b: IpNet): boolean {
  return ipEqual(a, b) && a.prefixLength === b.prefixLength;
}

/** Lease store semantics shared by every implementation (etcd, file, apiserver). */
export interface SubnetStore {
  /** Human-readable location, for log lines ("etcd http://...:2379 /coreos.com/network"). */
  readonly description: string;
  /** The raw network config text, or undefined when none is stored yet. */
  getNetworkConfig(): Promise<string | undefined>;
  /**
   * Takes a subnet for this node: the one already leased to `attrs.publicIp` if any (a
   * restarted node keeps its subnet), else a free one chosen by `pick` among `candidates`.
   */
  acquireLease(attrs: LeaseAttrs, candidates: readonly IpNet[], ttlSeconds: number): Promise<Lease>;
  /** Extends the lease; fails if someone else owns the subnet now. */
  renewLease(lease: Lease, ttlSeconds: number): Promise<Lease>;
  /**
   * Current leases plus a stream of changes; `stop` ends the stream. `onError`: the stream
   * ended (watch again). `onConnection`: a stream that resumes by itself lost its store
   * (`false`, with the reason) or has it back (`true`), so the daemon can say so.
   */
  watchLeases(
    onEvents: (events: LeaseEvent[]) => void,
    onError: (err: unknown) => void,
    onConnection?: (connected: boolean, err?: unknown) => void,
  ): Promise<{ leases: Lease[]; stop(): void }>;
  /** Deletes a lease (a node leaving the cluster for good). */
  removeLease(subnet: IpNet): Promise<void>;
  close(): Promise<void>;
}

export class SubnetPoolExhaustedError extends PontoonError {}
export class LeaseLostError extends PontoonError {}

/**
 * flannel picks randomly among the first free subnets so that racing nodes rarely collide;
 * the store's create-if-absent write settles the races that remain.
 */
export function pickFree(candidates: readonly IpNet[], taken: readonly IpNet[], random = Math.random): IpNet | undefined {
  const free: IpNet[] = [];
  for (const subnet of candidates) {
    if (taken.some((t) => sameSubnet(t, subnet))) continue;
    free.push(subnet);
    if (free.length >= 100) break;
  }
  return free[Math.floor(random() * free.length)];
}

export function describeLease(lease: Lease): string {
  const v6 = lease.ipv6Subnet ? ` + ${formatIp(lease.ipv6Subnet)}/${lease.ipv6Subnet.prefixLength} → ${lease.attrs.publicIpv6 ?? '?'}` : '';
  return `${formatIp(lease.subnet)}/${lease.subnet.prefixLength} → ${lease.attrs.publicIp}${v6}`;
}
