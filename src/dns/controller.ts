/**
 * The DNS reconciler, in the shape every Pontoon daemon has:
 *
 *   informers (Services, EndpointSlices, Namespaces; Pods under `pods verified`)
 *     → desired records per owner (records.ts)  → diff against the served zone (zone.ts)
 *     → apply: replace the owner's records, rebuild the answers of the names that changed
 *
 * Events mark owners dirty; one flush per turn of the event loop recomputes only those, so
 * a slice update at 10k Services touches one Service's names, not the zone.
 */
import { RESOURCE } from '../api/resources.js';
import type { EndpointSlice, Namespace, Pod, Service } from '../api/types.js';
import type { KubeApi } from '../client/api.js';
import { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { AnswerCache } from './answers.js';
import { apexRecords, namespaceRecords, SERVICE_NAME_LABEL, serviceFields, serviceRecords, sliceFields } from './records.js';
import type { PodMode } from './resolver.js';
import type { Zone } from './zone.js';

export interface DnsControllerOptions {
  api: KubeApi;
  zone: Zone;
  answers: AnswerCache;
  clusterDomain: string;
  ttlSeconds: number;
  podMode: PodMode;
  log: Logger;
  /** Called after each flush with how long it took and how many names changed. */
  onFlush?: (seconds: number, changedNames: number) => void;
}

const serviceOwner = (namespace: string, name: string): string => `svc/${namespace}/${name}`;

export class DnsController {
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly namespaces: Informer<Namespace>;
  private readonly pods: Informer<Pod> | undefined;
  /** Slice keys per service owner, so a Service's records see all of its slices. */
  private readonly slicesOf = new Map<string, Set<string>>();
  /** `pods verified`: IPs per namespace. */
  private readonly podIps = new Map<string, Map<string, number>>();
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private started = false;
  private serial = Math.floor(Date.now() / 1000);

  constructor(private readonly options: DnsControllerOptions) {
    const { api, log } = options;
    this.services = new Informer<Service>(api, RESOURCE.services, { log, transform: serviceFields });
    this.slices = new Informer<EndpointSlice>(api, RESOURCE.endpointslices, { log, transform: sliceFields });
    this.namespaces = new Informer<Namespace>(api, RESOURCE.namespaces, { log });
    const markService = (s: Service): void => this.mark(serviceOwner(s.metadata.namespace ?? '', s.metadata.name ?? ''));
    this.services.on('add', markService).on('update', (_old, s) => markService(s)).on('delete', markService);
    this.slices
      .on('add', (s) => this.trackSlice(undefined, s))
      .on('update', (old, s) => this.trackSlice(old, s))
      .on('delete', (s) => this.trackSlice(s, undefined));
    const markNamespace = (n: Namespace): void => this.mark(`ns/${n.metadata.name ?? ''}`);
    this.namespaces.on('add', markNamespace).on('update', (_old, n) => markNamespace(n)).on('delete', markNamespace);
    if (options.podMode === 'verified') {
      this.pods = new Informer<Pod>(api, RESOURCE.pods, { log });
      this.pods.on('add', (p) => this.trackPod(undefined, p)).on('update', (old, p) => this.trackPod(old, p)).on('delete', (p) => this.trackPod(p, undefined));
    }
  }

  /** Lists everything, serves the first full set, then keeps watching. */
  async start(): Promise<void> {
    this.options.zone.replace('apex', apexRecords(this.options.clusterDomain, this.serial, this.options.ttlSeconds));
    await Promise.all([this.services.start(), this.slices.start(), this.namespaces.start(), this.pods?.start()]);
    this.flush();
    this.started = true;
  }

  /** True once every informer listed and the first record set is served (/ready). */
  get ready(): boolean {
    return this.started && this.services.synced && this.slices.synced && this.namespaces.synced && (this.pods?.synced ?? true);
  }

  podHasIp(namespace: string, ip: string): boolean {
    return (this.podIps.get(namespace)?.get(ip) ?? 0) > 0;
  }

  stop(): void {
    for (const informer of [this.services, this.slices, this.namespaces, this.pods]) informer?.stop();
  }

  private trackSlice(old: EndpointSlice | undefined, slice: EndpointSlice | undefined): void {
    for (const [s, add] of [[old, false], [slice, true]] as const) {
      if (!s) continue;
      const service = s.metadata.labels?.[SERVICE_NAME_LABEL];
      if (!service) continue;
      const owner = serviceOwner(s.metadata.namespace ?? '', service);
      const key = `${s.metadata.namespace ?? ''}/${s.metadata.name ?? ''}`;
      const set = this.slicesOf.get(owner) ?? new Set<string>();
      if (add) set.add(key);
      else set.delete(key);
      if (set.size) this.slicesOf.set(owner, set);
      else this.slicesOf.delete(owner);
      this.mark(owner);
    }
  }

  private trackPod(old: Pod | undefined, pod: Pod | undefined): void {
    const ipsOf = (p: Pod | undefined): string[] => (p ? (p.status?.podIPs?.map((i) => i.ip) ?? (p.status?.podIP ? [p.status.podIP] : [])) : []);
    for (const [p, delta] of [[old, -1], [pod, 1]] as const) {
      if (!p) continue;
      const namespace = p.metadata.namespace ?? '';
      const ips = this.podIps.get(namespace) ?? new Map<string, number>();
      for (const ip of ipsOf(p)) {
        const n = (ips.get(ip) ?? 0) + delta;
        if (n > 0) ips.set(ip, n);
        else ips.delete(ip);
      }
      this.podIps.set(namespace, ips);
    }
    // Pod answers are synthesized on use and cached with the negatives: drop them.
    this.options.answers.invalidate([], () => undefined);
  }

  private mark(owner: string): void {
    this.dirty.add(owner);
    if (this.flushScheduled || !this.started) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.dirty.size === 0) return;
    const began = process.hrtime.bigint();
    const { zone, answers, clusterDomain } = this.options;
    const changed = new Set<string>();
    for (const owner of this.dirty) {
      for (const name of zone.replace(owner, this.desired(owner))) changed.add(name);
    }
    this.dirty.clear();
    // RFC 1982 serial: moves forward with every change, as CoreDNS's does (its last change time).
    this.serial = Math.max(this.serial + 1, Math.floor(Date.now() / 1000));
    for (const name of zone.replace('apex', apexRecords(clusterDomain, this.serial, this.options.ttlSeconds))) changed.add(name);
    // Negative answers carry the SOA: they are all in the dynamic cache, which invalidate() clears.
    answers.invalidate(changed, (name) => zone.records(name));
    const seconds = Number(process.hrtime.bigint() - began) / 1e9;
    this.options.log.debug({ changedNames: changed.size, ms: seconds * 1000 }, 'record set updated');
    this.options.onFlush?.(seconds, changed.size);
  }

  private desired(owner: string): ReturnType<typeof serviceRecords> | undefined {
    const { clusterDomain } = this.options;
    if (owner.startsWith('ns/')) {
      const name = owner.slice(3);
      return this.namespaces.get(name) ? namespaceRecords(name, clusterDomain) : undefined;
    }
    const [, namespace = '', name = ''] = owner.split('/');
    const service = this.services.get(`${namespace}/${name}`);
    if (!service) return undefined;
    const slices = [...(this.slicesOf.get(owner) ?? [])].map((key) => this.slices.get(key)).filter((s): s is EndpointSlice => s !== undefined);
    return serviceRecords(service, slices, clusterDomain);
  }
}
