/**
 * EndpointSlice controller: for every Service with a selector, EndpointSlices (labelled
 * kubernetes.io/service-name and managed-by endpointslice-controller.k8s.io, owned by the
 * Service, generateName "<service>-") holding its pods' endpoints, at most 100 per slice.
 *
 *   desired  = endpoints grouped by (address type, ports) — endpoints-compute.ts
 *   observed = our slices of the Service in the informer cache
 *   apply    = planSlices(): keep each endpoint in the slice it is already in (so a change
 *              to one pod rewrites one slice, not all of them), put new endpoints into slices
 *              with room, then into new slices; delete slices left empty. With no endpoints
 *              at all one empty placeholder slice remains, as upstream, so consumers can tell
 *              "no endpoints" from "not synced yet".
 *
 * Design note: slices are created with generateName, so a sync running on a cache that has
 * not yet seen our last writes would create duplicates. Every write is tracked per Service
 * (upstream's endpointSliceTracker); a sync whose Service has writes the cache has not shown
 * yet waits for the slice events, which requeue it.
 */
import { objectKey, type OwnerReference } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { EndpointSlice, EndpointSliceEndpoint, Pod, Service } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { canonicalJson } from './deployment-util.js';
import { computeEndpointGroups, groupKey, type EndpointGroup } from './endpoints-compute.js';
import { hasSelector, selectsPod, serviceLabels, watchPodsForServices } from './endpoints.js';
import { inNamespace, onAnyChange } from './informers.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const MAX_ENDPOINTS_PER_SLICE = 100;
/** The tracker's mark for a slice we deleted. */
const DELETED = 'deleted';
/**
 * A write the cache has not shown after this long is forgotten: the slice was deleted or
 * replaced by someone else meanwhile, and waiting longer would stall the Service for good.
 */
const TRACK_TTL_MS = 10_000;

export interface SlicePlan {
  create: EndpointSlice[];
  update: EndpointSlice[];
  delete: EndpointSlice[];
}

function sliceLabels(service: Service): Record<string, string> {
  return { ...serviceLabels(service), [SERVICE_NAME_LABEL]: service.metadata.name ?? '', [MANAGED_BY_LABEL]: MANAGED_BY };
}

function serviceOwner(service: Service): OwnerReference {
  return { apiVersion: 'v1', kind: 'Service', name: service.metadata.name ?? '', uid: service.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

function newSlice(service: Service, group: Pick<EndpointGroup, 'addressType' | 'ports'>, endpoints: EndpointSliceEndpoint[]): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      generateName: `${service.metadata.name}-`,
      namespace: service.metadata.namespace,
      labels: sliceLabels(service),
      ownerReferences: [serviceOwner(service)],
    },
    addressType: group.addressType,
    endpoints,
    ports: group.ports,
  };
}

/** The slice as it should be, or undefined when `existing` already is. */
function rewritten(service: Service, existing: EndpointSlice, endpoints: EndpointSliceEndpoint[], ports: EndpointSlice['ports']): EndpointSlice | undefined {
  const labels = sliceLabels(service);
  const owners = [serviceOwner(service)];
  if (
    canonicalJson(existing.endpoints ?? []) === canonicalJson(endpoints) &&
    canonicalJson(existing.ports ?? []) === canonicalJson(ports ?? []) &&
    canonicalJson(existing.metadata.labels ?? {}) === canonicalJson(labels) &&
    canonicalJson(existing.metadata.ownerReferences ?? []) === canonicalJson(owners)
  ) {
    return undefined;
  }
  return { ...structuredClone(existing), metadata: { ...structuredClone(existing.metadata), labels, ownerReferences: owners }, endpoints, ports };
}

/** What to create, update and delete to turn `existing` slices into `groups`. Pure. */
export function planSlices(
  service: Service,
  groups: ReadonlyMap<string, EndpointGroup>,
  existing: readonly EndpointSlice[],
  maxPerSlice = MAX_ENDPOINTS_PER_SLICE,
): SlicePlan {
  const plan: SlicePlan = { create: [], update: [], delete: [] };
  const byName = (a: EndpointSlice, b: EndpointSlice): number => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
  const sorted = [...existing].sort(byName);

  if (groups.size === 0) {
    const [placeholder, ...rest] = sorted;
    if (placeholder) {
      const update = rewritten(service, placeholder, [], []);
      if (update) plan.update.push(update);
    } else {
      plan.create.push(newSlice(service, { addressType: 'IPv4', ports: [] }, []));
    }
    plan.delete.push(...rest);
    return plan;
  }

  const existingByGroup = new Map<string, EndpointSlice[]>();
  for (const slice of sorted) {
    const key = groupKey(slice.addressType, slice.ports);
    if (!groups.has(key)) {
      plan.delete.push(slice);
      continue;
    }
    const list = existingByGroup.get(key) ?? [];
    list.push(slice);
    existingByGroup.set(key, list);
  }

  for (const [key, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const placed = new Set<string>();
    const buckets: { slice?: EndpointSlice; endpoints: EndpointSliceEndpoint[] }[] = [];
    for (const slice of existingByGroup.get(key) ?? []) {
      const kept: EndpointSliceEndpoint[] = [];
      for (const endpoint of slice.endpoints ?? []) {
        const address = endpoint.addresses[0] ?? '';
        const wanted = group.endpoints.get(address);
        if (!wanted || placed.has(address) || kept.length >= maxPerSlice) continue;
        kept.push(wanted);
        placed.add(address);
      }
      buckets.push({ slice, endpoints: kept });
    }
    for (const [address, endpoint] of group.endpoints) {
      if (placed.has(address)) continue;
      let bucket = buckets.find((b) => b.endpoints.length < maxPerSlice);
      if (!bucket) {
        bucket = { endpoints: [] };
        buckets.push(bucket);
      }
      bucket.endpoints.push(endpoint);
      placed.add(address);
    }
    for (const bucket of buckets) {
      if (!bucket.slice) {
        plan.create.push(newSlice(service, group, bucket.endpoints));
      } else if (bucket.endpoints.length === 0) {
        plan.delete.push(bucket.slice);
      } else {
        const update = rewritten(service, bucket.slice, bucket.endpoints, group.ports);
        if (update) plan.update.push(update);
      }
    }
  }
  return plan;
}

/** Is `cached` at least as new as `written`? resourceVersions are numbers in Pontoon's stores. */
function caughtUp(cached: string | undefined, written: string): boolean {
  if (cached === undefined) return false;
  if (/^\d+$/.test(cached) && /^\d+$/.test(written)) return BigInt(cached) >= BigInt(written);
  return cached === written;
}

export class EndpointSliceController implements Controller {
  readonly name = 'endpointslice';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly services: Informer<Service>;
  private readonly pods: Informer<Pod>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly reconciler: Reconciler;
  /** Per Service: slice name → resourceVersion we wrote (or DELETED), and when. */
  private readonly written = new Map<string, Map<string, { version: string; atMs: number }>>();

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.services = context.informers.informer<Service>(RESOURCE.services);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.slices = context.informers.informer<EndpointSlice>(RESOURCE.endpointslices);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });
    const enqueue = (key: string): void => this.reconciler.enqueue(key);
    onAnyChange(this.services, (s) => enqueue(objectKey(s.metadata)));
    onAnyChange(this.slices, (slice) => {
      const key = this.serviceKeyOf(slice);
      if (key) enqueue(key);
    });
    watchPodsForServices(this.pods, this.services, enqueue);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private serviceKeyOf(slice: EndpointSlice): string | undefined {
    const labels = slice.metadata.labels ?? {};
    const service = labels[SERVICE_NAME_LABEL];
    if (!service || labels[MANAGED_BY_LABEL] !== MANAGED_BY) return undefined;
    return `${slice.metadata.namespace}/${service}`;
  }

  private ourSlices(serviceKey: string): EndpointSlice[] {
    const namespace = serviceKey.split('/')[0] ?? '';
    return inNamespace(this.slices, namespace).filter((slice) => this.serviceKeyOf(slice) === serviceKey);
  }

  /** True when every write for the service is visible in the cache (and forgets those that are). */
  private cacheCaughtUp(serviceKey: string): boolean {
    const writes = this.written.get(serviceKey);
    if (!writes) return true;
    const namespace = serviceKey.split('/')[0] ?? '';
    const nowMs = Date.now();
    for (const [name, { version, atMs }] of writes) {
      const cached = this.slices.get(`${namespace}/${name}`);
      const seen = version === DELETED ? cached === undefined : caughtUp(cached?.metadata.resourceVersion, version);
      if (seen || nowMs - atMs > TRACK_TTL_MS) writes.delete(name);
    }
    if (writes.size === 0) this.written.delete(serviceKey);
    return writes.size === 0;
  }

  private track(serviceKey: string, name: string | undefined, version: string | undefined): void {
    if (!name || version === undefined) return;
    let writes = this.written.get(serviceKey);
    if (!writes) {
      writes = new Map();
      this.written.set(serviceKey, writes);
    }
    writes.set(name, { version, atMs: Date.now() });
  }

  private async sync(key: string): Promise<SyncResult | void> {
    if (!this.cacheCaughtUp(key)) {
      // The slice events will requeue us; the delay is a safety net.
      return { requeueAfterMs: 1000 };
    }
    const service = this.services.get(key);
    const existing = this.ourSlices(key);
    if (!service) {
      for (const slice of existing) await this.deleteSlice(key, slice);
      return;
    }
    if (!hasSelector(service)) return;
    const pods = inNamespace(this.pods, service.metadata.namespace ?? '').filter((pod) => selectsPod(service, pod));
    // Slices of an older Service with the same name belong to the garbage collector.
    const current = existing.filter((slice) => (slice.metadata.ownerReferences ?? []).every((ref) => ref.kind !== 'Service' || ref.uid === service.metadata.uid));
    const plan = planSlices(service, computeEndpointGroups(service, pods), current);
    for (const slice of plan.delete) await this.deleteSlice(key, slice);
    for (const slice of plan.update) {
      const written = await this.api.update(RESOURCE.endpointslices, slice);
      this.track(key, written.metadata.name, written.metadata.resourceVersion);
    }
    for (const slice of plan.create) {
      const created = await this.api.create(RESOURCE.endpointslices, slice);
      this.track(key, created.metadata.name, created.metadata.resourceVersion);
    }
    if (plan.create.length + plan.update.length + plan.delete.length > 0) {
      this.log.debug({ service: key, created: plan.create.length, updated: plan.update.length, deleted: plan.delete.length }, 'endpoint slices synced');
    }
  }

  private async deleteSlice(serviceKey: string, slice: EndpointSlice): Promise<void> {
    try {
      await this.api.delete(RESOURCE.endpointslices, slice.metadata.name ?? '', slice.metadata.namespace, {
        preconditions: { uid: slice.metadata.uid },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.track(serviceKey, slice.metadata.name, DELETED);
  }
}
