/**
 * Subnet leases in flannel's encoding: key `<prefix>/subnets/10.244.1.0-24`, value
 * `{"PublicIP":"198.18.0.11","BackendType":"vxlan","BackendData":{"VtepMAC":"..."}}`.
 */
import { PontoonError } from '../../lib/errors.js';
import { formatIp, type IpNet, parseIp, parseIpNet, ipEqual } from '../../lib/ip.js';

export interface LeaseAttrs {
  publicIp: string;
  backendType: string;
  backendData: Record<string, unknown>;
}

export interface Lease {
  subnet: IpNet;
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
  return JSON.stringify({ PublicIP: attrs.publicIp, BackendType: attrs.backendType, BackendData: attrs.backendData });
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
  return {
    publicIp,
    backendType: typeof source['BackendType'] === 'string' ? source['BackendType'] : '',
    backendData: typeof backendData === 'object' && backendData !== null ? (backendData as Record<string, unknown>) : {},
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
  /** Current leases plus a stream of changes; `stop` ends the stream. */
  watchLeases(onEvents: (events: LeaseEvent[]) => void, onError: (err: unknown) => void): Promise<{ leases: Lease[]; stop(): void }>;
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
  return `${formatIp(lease.subnet)}/${lease.subnet.prefixLength} → ${lease.attrs.publicIp}`;
}
