/**
 * The service proxy's loop, the reconciler shape every Pontoon daemon has:
 *
 *   informers (Services, EndpointSlices)  →  dirty Services
 *   desired:  ServiceEntry per dirty Service (model.ts), problems reported, not thrown
 *   diff+apply: the mode's RuleSink turns the dirty entries into one kernel transaction
 *   after:    stale UDP conntrack flows deleted, health-check node ports and /healthz
 *             updated, metrics
 *
 * Syncs run through the bounded frequency runner (runner.ts). The first sync after start
 * is full: the sink reconciles against what the kernel holds, so a restarted proxy
 * converges without flushing anything (established connections keep their conntrack NAT
 * bindings and never notice).
 */
import type { EndpointSlice, Service } from '../api/types.js';
import { RESOURCE } from '../api/resources.js';
import { objectKey } from '../api/meta.js';
import type { KubeApi } from '../client/api.js';
import { EventRecorder } from '../client/events.js';
import { Informer } from '../client/informer.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { ProxyConfig } from './config.js';
import { type ConntrackApi, staleFlows } from './conntrack.js';
import type { ProxyHealth, ServiceHealthServers } from './health.js';
import type { ProxyMetrics } from './metrics.js';
import { chooseEndpoints, proxied, SERVICE_NAME_LABEL, SERVICE_PROXY_NAME_LABEL, serviceEntry, serviceKey, servicePortKey, type ServiceEntry } from './model.js';
import { SyncRunner } from './runner.js';
import type { RuleSink, SyncReport } from './sink.js';

export interface ProxierOptions {
  readonly api: KubeApi;
  readonly nodeName: string;
  readonly sink: RuleSink;
  readonly config: ProxyConfig;
  readonly conntrack?: ConntrackApi;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  /** Program only Services labelled service.kubernetes.io/service-proxy-name=<this>. */
  readonly proxyName?: string;
  readonly health: ProxyHealth;
  readonly metrics: ProxyMetrics;
  readonly healthServers?: ServiceHealthServers;
  readonly log: Logger;
}

/** The Services a proxy programs: unlabelled ones, or those labelled with its name. */
export function serviceSelector(proxyName: string | undefined): string {
  return proxyName === undefined ? `!${SERVICE_PROXY_NAME_LABEL}` : `${SERVICE_PROXY_NAME_LABEL}=${proxyName}`;
}

export class Proxier {
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly entries = new Map<string, ServiceEntry>();
  private readonly slicesByService = new Map<string, Map<string, EndpointSlice>>();
  private dirty = new Set<string>();
  private readonly runner: SyncRunner;
  private readonly events: EventRecorder;
  /** Problems already reported, per object (uid or key), so a bad object is told once. */
  private readonly reported = new Map<string, string>();
  private lastReport: SyncReport | undefined;

  constructor(private readonly options: ProxierOptions) {
    const { api, log, proxyName } = options;
    this.services = new Informer<Service>(api, RESOURCE.services, { labelSelector: serviceSelector(proxyName), log });
    this.slices = new Informer<EndpointSlice>(api, RESOURCE.endpointslices, { labelSelector: SERVICE_NAME_LABEL, log });
    this.events = new EventRecorder(api, 'pontoon-proxy', log, options.nodeName);
    this.runner = new SyncRunner((full) => this.sync(full), { minIntervalMs: options.minSyncPeriodMs, fullIntervalMs: options.syncPeriodMs });

    const serviceChanged = (service: Service): void => {
      options.metrics.serviceChanges.inc();
      this.markDirty(serviceKey(service.metadata.namespace ?? 'default', service.metadata.name ?? ''));
    };
    this.services.on('add', serviceChanged).on('update', (_old, service) => serviceChanged(service)).on('delete', serviceChanged);
    const sliceChanged = (slice: EndpointSlice, deleted: boolean): void => {
      options.metrics.endpointChanges.inc();
      const owner = slice.metadata.labels?.[SERVICE_NAME_LABEL];
      if (!owner) return;
      const key = serviceKey(slice.metadata.namespace ?? 'default', owner);
      let slices = this.slicesByService.get(key);
      if (!slices) this.slicesByService.set(key, (slices = new Map()));
      if (deleted) slices.delete(objectKey(slice.metadata));
      else slices.set(objectKey(slice.metadata), slice);
      if (slices.size === 0) this.slicesByService.delete(key);
      this.markDirty(key);
    };
    this.slices
      .on('add', (slice) => sliceChanged(slice, false))
      .on('update', (old, slice) => {
        // A slice relabelled to another Service leaves the first one.
        if (old.metadata.labels?.[SERVICE_NAME_LABEL] !== slice.metadata.labels?.[SERVICE_NAME_LABEL]) sliceChanged(old, true);
        sliceChanged(slice, false);
      })
      .on('delete', (slice) => sliceChanged(slice, true));
  }

  async start(): Promise<void> {
    await Promise.all([this.services.start(), this.slices.start()]);
    this.options.log.info({ services: this.services.list().length, endpointSlices: this.slices.list().length, mode: this.options.sink.mode }, 'informers synced; first sync is full');
    this.runner.start();
  }

  stop(): void {
    this.runner.stop();
    this.services.stop();
    this.slices.stop();
    this.options.healthServers?.close();
  }

  get report(): SyncReport | undefined {
    return this.lastReport;
  }

  private markDirty(key: string): void {
    this.dirty.add(key);
    this.options.health.queued();
    this.options.metrics.queued();
    this.options.metrics.pendingServiceChanges.set(this.dirty.size);
    this.runner.request();
  }

  /** The entry a Service (by key) should have now, reporting what is wrong with it. */
  private entryFor(key: string): ServiceEntry | undefined {
    const [namespace = '', name = ''] = key.split('/');
    const service = this.services.get(key);
    const slices = [...(this.slicesByService.get(key)?.values() ?? [])];
    if (!service || !proxied(service, this.options.proxyName)) {
      for (const slice of slices) {
        // Slices the EndpointSlice controller owns go when their Service goes; a hand-made
        // slice naming a Service that does not exist is worth telling about.
        if (!service && !slice.metadata.ownerReferences?.some((o) => o.kind === 'Service')) {
          this.problem(slice, 'EndpointSlice', `refers to Service ${namespace}/${name}, which does not exist; ignored`);
        }
      }
      return undefined;
    }
    const { entry, serviceProblems, sliceProblems } = serviceEntry(service, slices, this.options.nodeName);
    this.problem(service, 'Service', serviceProblems.join('; '));
    for (const slice of slices) this.problem(slice, 'EndpointSlice', (sliceProblems.get(slice) ?? []).join('; '));
    return entry;
  }

  /** Logs and records an Event once per (object, message); '' clears the object's record. */
  private problem(object: Service | EndpointSlice, kind: 'Service' | 'EndpointSlice', message: string): void {
    const id = object.metadata.uid ?? `${kind}/${objectKey(object.metadata)}`;
    if (!message) {
      this.reported.delete(id);
      return;
    }
    if (this.reported.get(id) === message) return;
    this.reported.set(id, message);
    this.options.log.warn({ [kind === 'Service' ? 'service' : 'endpointSlice']: objectKey(object.metadata) }, message);
    this.events.record({ ...object, apiVersion: kind === 'Service' ? 'v1' : 'discovery.k8s.io/v1', kind }, 'Warning', kind === 'Service' ? 'InvalidService' : 'InvalidEndpointSlice', message);
  }

  private async sync(full: boolean): Promise<void> {
    const startedAt = Date.now();
    const keys = full ? new Set([...this.entries.keys(), ...this.services.list().map((s) => objectKey(s.metadata))]) : this.dirty;
    this.dirty = new Set();
    this.options.metrics.pendingServiceChanges.set(0);
    const before = new Map<string, ServiceEntry | undefined>();
    for (const key of keys) {
      before.set(key, this.entries.get(key));
      const entry = this.entryFor(key);
      if (entry) this.entries.set(key, entry);
      else this.entries.delete(key);
    }
    let report: SyncReport;
    try {
      report = this.options.sink.sync(this.entries, full ? 'all' : keys);
    } catch (err) {
      // The entries stay as computed; the next (full) sync programs them.
      for (const key of keys) this.dirty.add(key);
      this.options.metrics.failed();
      this.options.log.error({ err: describeError(err), full }, 'sync failed; retrying');
      throw err;
    }
    const seconds = (Date.now() - startedAt) / 1000;
    this.lastReport = report;
    this.options.health.synced(startedAt);
    this.options.metrics.synced(report, seconds);
    if (report.rebuilt !== undefined) this.options.log.warn({ err: report.rebuilt }, 'the kernel refused the in-place full sync; the table was rebuilt');
    this.options.log.info(
      { full: report.full, services: keys.size, chainsWritten: report.chainsWritten, chainsDeleted: report.chainsDeleted, rules: Object.fromEntries(report.rules), elements: report.elements, ms: Math.round(seconds * 1000) },
      'synced',
    );
    this.cleanConntrack(keys, before);
    this.syncHealthCheckPorts();
  }

  private cleanConntrack(keys: ReadonlySet<string>, before: ReadonlyMap<string, ServiceEntry | undefined>): void {
    const conntrack = this.options.conntrack;
    if (!conntrack) return;
    const changes = new Map<string, { before?: ServiceEntry; after?: ServiceEntry }>();
    for (const key of keys) {
      const was = before.get(key);
      const now = this.entries.get(key);
      if (was === now) continue;
      changes.set(key, { ...(was ? { before: was } : {}), ...(now ? { after: now } : {}) });
    }
    let deleted = 0;
    for (const filter of staleFlows(changes, this.options.config.families)) {
      try {
        deleted += conntrack.deleteFlows(filter);
      } catch (err) {
        this.options.log.error({ err: describeError(err) }, 'could not delete stale conntrack entries');
      }
    }
    if (deleted > 0) {
      this.options.metrics.conntrack(deleted);
      this.options.log.info({ deleted }, 'deleted stale UDP conntrack entries');
    }
  }

  private syncHealthCheckPorts(): void {
    const servers = this.options.healthServers;
    if (!servers) return;
    const wanted = new Map<number, { namespace: string; name: string; localEndpoints: number }>();
    for (const entry of this.entries.values()) {
      for (const port of entry.ports) {
        if (port.healthCheckNodePort === undefined) continue;
        const endpoints = entry.endpoints.get(servicePortKey(port)) ?? [];
        const local = new Set<string>();
        for (const family of this.options.config.families) for (const e of chooseEndpoints(port, endpoints, family).local) local.add(`${e.ip.value}`);
        const previous = wanted.get(port.healthCheckNodePort)?.localEndpoints ?? 0;
        wanted.set(port.healthCheckNodePort, { namespace: port.namespace, name: port.service, localEndpoints: Math.max(previous, local.size) });
      }
    }
    servers.sync(wanted);
  }
}
