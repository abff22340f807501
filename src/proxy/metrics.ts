/**
 * Prometheus metrics under kube-proxy's names, so its dashboards and alerts work:
 * sync durations (all, full, partial), last successful sync time, pending changes, rule
 * and element counts, and sync failures.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SyncReport } from './sink.js';

const BUCKETS = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets: BUCKETS, registers: [this.registry] });
  private readonly fullDuration = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'Latency of full syncs in seconds', buckets: BUCKETS, registers: [this.registry] });
  private readonly partialDuration = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'Latency of partial syncs in seconds', buckets: BUCKETS, registers: [this.registry] });
  private readonly lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers: [this.registry] });
  private readonly lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', registers: [this.registry] });
  readonly pendingServiceChanges = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers: [this.registry] });
  readonly serviceChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers: [this.registry] });
  readonly endpointChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules EndpointSlice changes', registers: [this.registry] });
  private readonly failures = new Counter({ name: 'kubeproxy_sync_proxy_rules_failures_total', help: 'Syncs that failed and will be retried', registers: [this.registry] });
  private readonly rules = new Gauge({ name: 'pontoon_proxy_rules', help: 'Rules the proxy holds in the kernel, by table', labelNames: ['table'], registers: [this.registry] });
  private readonly elements = new Gauge({ name: 'pontoon_proxy_set_elements', help: 'Set and map elements the proxy holds (nftables mode)', registers: [this.registry] });
  private readonly conntrackDeleted = new Counter({ name: 'pontoon_proxy_conntrack_entries_deleted_total', help: 'Stale UDP conntrack entries deleted', registers: [this.registry] });

  queued(): void {
    this.lastQueued.setToCurrentTime();
  }

  synced(report: SyncReport, seconds: number): void {
    this.syncDuration.observe(seconds);
    (report.full ? this.fullDuration : this.partialDuration).observe(seconds);
    this.lastSync.setToCurrentTime();
    for (const [table, count] of report.rules) this.rules.set({ table }, count);
    this.elements.set(report.elements);
  }

  failed(): void {
    this.failures.inc();
  }

  conntrack(deleted: number): void {
    this.conntrackDeleted.inc(deleted);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
