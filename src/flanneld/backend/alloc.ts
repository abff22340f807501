/**
 * alloc: flannel's allocation-only backend. flanneld leases this node a subnet and writes
 * subnet.env (so the CNI plugin can address pods), but installs no routes: something else
 * routes pod traffic — here the BGP speaker (`pontoon bgp node`), as with Calico. `MTU`
 * in the Backend config sets the pods' MTU (1480 when the routing layer wraps packets in
 * IPIP's 20-byte header); without it, the underlay's.
 */
import { backendNumber } from '../config.js';
import type { Lease } from '../subnet/lease.js';
import { type Backend, type BackendContext, type LocalSetup, type ReconcileReport, registerBackend } from './backend.js';

export class AllocBackend implements Backend {
  readonly type = 'alloc';

  constructor(private readonly context: BackendContext) {}

  async prepare(): Promise<LocalSetup> {
    return { backendData: {}, mtu: backendNumber(this.context.network.backend, 'MTU', this.context.ext.link.mtu) };
  }

  configureLocal(_lease: Lease): void {}

  reconcile(_remotes: readonly Lease[]): ReconcileReport {
    return { added: 0, removed: 0, rejected: [] };
  }

  async close(): Promise<void> {}
}

registerBackend('alloc', (context) => new AllocBackend(context));
