/**
 * A backend turns leases into a data plane. Each registers by name (flannel's names, so a
 * flannel network config selects it unchanged) and follows the reconciler shape: the daemon
 * hands it the full set of remote leases; it computes the kernel state it wants, diffs it
 * against what it finds (objects it owns carry FLANNEL_ROUTE_PROTOCOL or live on its own
 * device), and applies only the difference. A restart therefore adopts the previous
 * daemon's state instead of flushing it.
 */
import type { Logger } from '../../lib/log.js';
import type { Ip, IpNet } from '../../lib/ip.js';
import type { Link, Rtnl } from '../../lib/netlink/rtnl.js';
import type { NetworkConfig } from '../config.js';
import type { Lease } from '../subnet/lease.js';
import { PontoonError } from '../../lib/errors.js';

/** Route protocol number on every route flanneld installs (see /etc/iproute2/rt_protos). */
export const FLANNEL_ROUTE_PROTOCOL = 200;

export interface ExternalInterface {
  link: Link;
  /** This node's underlay address: the lease's PublicIP. */
  address: Ip;
  /** The connected subnet of `address`: nodes inside it share our L2 segment. */
  segment: IpNet;
}

export interface BackendContext {
  rtnl: Rtnl;
  ext: ExternalInterface;
  network: NetworkConfig;
  log: Logger;
}

export interface LocalSetup {
  /** Published in our lease for other nodes (e.g. the VTEP MAC). */
  backendData: Record<string, unknown>;
  /** MTU for pod interfaces (FLANNEL_MTU). */
  mtu: number;
}

export interface ReconcileReport {
  added: number;
  removed: number;
  /** Remote leases this backend cannot serve, with the reason. */
  rejected: { lease: Lease; reason: string }[];
}

export interface Backend {
  readonly type: string;
  /** Creates or adopts local devices before the lease exists. */
  prepare(): Promise<LocalSetup>;
  /** Our own lease is known: address local devices. */
  configureLocal(lease: Lease): void;
  /** Makes the kernel match `remotes` (every lease but ours). */
  reconcile(remotes: readonly Lease[]): ReconcileReport;
  /** Stops userspace work; kernel state stays so traffic keeps flowing. */
  close(): Promise<void>;
  /** Packet counters of a userspace data path (udp), for the periodic log line. */
  stats?(): Record<string, number>;
}

export type BackendFactory = (context: BackendContext) => Backend;

export class UnknownBackendError extends PontoonError {}

/** A backend's kernel objects are not as it set them up, or it was used out of order. */
export class BackendError extends PontoonError {}

const registry = new Map<string, BackendFactory>();

export function registerBackend(type: string, factory: BackendFactory): void {
  registry.set(type, factory);
}

export function createBackend(type: string, context: BackendContext): Backend {
  const factory = registry.get(type);
  if (!factory) {
    throw new UnknownBackendError(`unknown backend type "${type}" in network config Backend.Type: use one of ${[...registry.keys()].join(', ')}`);
  }
  return factory(context);
}
