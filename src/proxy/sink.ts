/**
 * Where the proxy's desired state goes: one RuleSink per mode, each owning its kernel
 * objects and its record of what it last applied.
 *
 *   sync(services, changed) — `changed` names the Services (ns/name) whose entries differ
 *   from the last successful sync, or 'all'. A sink turns only those into kernel changes,
 *   in one transaction; a failed sync is thrown and the next one rewrites everything.
 */
import type { ServiceEntry } from './model.js';

export type { ServiceEntry };

export interface SyncReport {
  readonly full: boolean;
  readonly chainsWritten: number;
  readonly chainsDeleted: number;
  /** Rules the sink's tables hold after the sync, by table (`ip pontoon`, `ip nat`, …). */
  readonly rules: ReadonlyMap<string, number>;
  /** Set and map elements held (nftables mode). */
  readonly elements: number;
  /**
   * Why the kernel refused the in-place full sync, when the sink had to rebuild its table
   * instead (dynamic state such as session-affinity entries is lost then).
   */
  readonly rebuilt?: string;
}

export interface RuleSink {
  readonly mode: 'nftables' | 'iptables';
  sync(services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): SyncReport;
  /** The full-sync transaction as text (nft script / iptables-restore input), applying nothing. */
  render(services: ReadonlyMap<string, ServiceEntry>): string;
  /** Removes everything this sink owns from the kernel. */
  cleanup(): void;
}
