/**
 * flanneld's Prometheus metrics (upstream flannel has none): the lease it holds, how many
 * other nodes' leases it routes to, and how its reconciles go. All read from the daemon's
 * own state at scrape time.
 */
import { Gauge, Registry } from 'prom-client';
import type { FlanneldStats } from './daemon.js';
import type { HealthReport } from '../lib/telemetry.js';

export function flanneldRegistry(stats: () => FlanneldStats): Registry {
  const registry = new Registry();
  const registers = [registry];
  new Gauge({
    name: 'pontoon_flanneld_lease_info',
    help: 'Always 1 while a lease is held; the labels say which subnet, backend and public IP',
    labelNames: ['subnet', 'backend', 'public_ip'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      if (s.subnet) this.set({ subnet: s.subnet, backend: s.backend ?? '', public_ip: s.publicIp ?? '' }, 1);
    },
  });
  new Gauge({
    name: 'pontoon_flanneld_lease_expiry_timestamp_seconds',
    help: 'When the held lease expires unless renewed (0: no expiry)',
    registers,
    collect() {
      this.set((stats().leaseExpiresAt?.getTime() ?? 0) / 1000);
    },
  });
  new Gauge({ name: 'pontoon_flanneld_remote_leases', help: 'Other nodes’ leases the data plane routes to', registers, collect() { this.set(stats().remoteLeases); } });
  new Gauge({ name: 'pontoon_flanneld_last_reconcile_timestamp_seconds', help: 'The last time the data plane was reconciled with the lease table', registers, collect() { this.set((stats().lastReconcile?.at ?? 0) / 1000); } });
  new Gauge({ name: 'pontoon_flanneld_reconcile_failures', help: 'Reconciles that failed since start (a counter read at scrape time)', registers, collect() { this.set(stats().reconcileFailures); } });
  return registry;
}

/** Healthy once subnet.env is written, and while the last reconcile succeeded. */
export function flanneldHealth(s: FlanneldStats): HealthReport {
  if (!s.configured) return { healthy: false, detail: 'no lease yet (subnet.env not written)' };
  if (s.lastReconcile && !s.lastReconcile.ok) return { healthy: false, detail: `last reconcile failed: ${s.lastReconcile.error ?? ''}` };
  return { healthy: true, detail: 'ok' };
}
