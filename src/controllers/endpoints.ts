/**
 * Endpoints controller: for every Service with a selector, an Endpoints object of the same
 * name listing the IPs and ports of the pods it selects (see endpoints-compute.ts), rewritten
 * only when its content changes. Services without a selector are left alone (their Endpoints
 * are the user's). When a Service goes, its Endpoints go with it.
 *
 * The Endpoints name is the Service's, so there is no duplicate to fear from a stale cache:
 * a create that lost a race answers AlreadyExists, an update from a stale copy 409, and both
 * are retried by the queue with the informer caught up.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Endpoints, Pod, Service } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { canonicalJson } from './deployment-util.js';
import { computeEndpointSubsets, isHeadless } from './endpoints-compute.js';
import { inNamespace, onAnyChange } from './informers.js';
import { Reconciler } from '../client/workqueue.js';

export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

/** True when the Service selects pods (an empty selector selects none, as upstream). */
export function hasSelector(service: Service): boolean {
  return Object.keys(service.spec.selector ?? {}).length > 0;
}

export function selectsPod(service: Service, pod: Pod): boolean {
  const selector = service.spec.selector ?? {};
  const labels = pod.metadata.labels ?? {};
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

/** The Services whose selectors match a pod: what a pod event must requeue. */
export function servicesForPod(services: Informer<Service>, pod: Pod): string[] {
  return inNamespace(services, pod.metadata.namespace ?? '')
    .filter((service) => selectsPod(service, pod))
    .map((service) => objectKey(service.metadata));
}

/** Requeues the services matching a pod's old and new labels whenever the pod changes. */
export function watchPodsForServices(pods: Informer<Pod>, services: Informer<Service>, enqueue: (key: string) => void): void {
  pods.on('add', (pod) => servicesForPod(services, pod).forEach(enqueue));
  pods.on('update', (old, pod) => {
    const keys = new Set(servicesForPod(services, pod));
    if (canonicalJson(old.metadata.labels ?? {}) !== canonicalJson(pod.metadata.labels ?? {})) {
      for (const key of servicesForPod(services, old)) keys.add(key);
    }
    keys.forEach(enqueue);
  });
  pods.on('delete', (pod) => servicesForPod(services, pod).forEach(enqueue));
}

export function serviceLabels(service: Service): Record<string, string> {
  return { ...service.metadata.labels, ...(isHeadless(service) ? { [HEADLESS_LABEL]: '' } : {}) };
}

/** The later of two copies of one object, by resourceVersion (numeric in Pontoon's stores). */
function newest(cached: Endpoints | undefined, written: Endpoints | undefined): Endpoints | undefined {
  if (!cached || !written) return cached ?? written;
  if (cached.metadata.uid !== written.metadata.uid) return cached;
  const a = cached.metadata.resourceVersion ?? '';
  const b = written.metadata.resourceVersion ?? '';
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return cached;
  return BigInt(b) > BigInt(a) ? written : cached;
}

export class EndpointsController implements Controller {
  readonly name = 'endpoints';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly services: Informer<Service>;
  private readonly pods: Informer<Pod>;
  private readonly endpoints: Informer<Endpoints>;
  private readonly reconciler: Reconciler;
  /**
   * Our last write per key: while pods churn, the next sync often runs before the informer has
   * shown that write, and updating from the older cached copy would only earn a 409.
   */
  private readonly lastWritten = new Map<string, Endpoints>();

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.services = context.informers.informer<Service>(RESOURCE.services);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.endpoints = context.informers.informer<Endpoints>(RESOURCE.endpoints);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });
    const enqueue = (key: string): void => this.reconciler.enqueue(key);
    onAnyChange(this.services, (s) => enqueue(objectKey(s.metadata)));
    // Someone deleted our Endpoints: put them back. (Updates are not watched, as upstream, so
    // an Endpoints object without a Service is never touched unless that Service is deleted.)
    this.endpoints.on('delete', (e) => enqueue(objectKey(e.metadata)));
    watchPodsForServices(this.pods, this.services, enqueue);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(key: string): Promise<void> {
    const service = this.services.get(key);
    const existing = newest(this.endpoints.get(key), this.lastWritten.get(key));
    if (!service) {
      this.lastWritten.delete(key);
      if (existing) await this.deleteEndpoints(existing);
      return;
    }
    if (!hasSelector(service)) return;
    const namespace = service.metadata.namespace ?? '';
    const pods = inNamespace(this.pods, namespace).filter((pod) => selectsPod(service, pod));
    const subsets = computeEndpointSubsets(service, pods);
    const labels = serviceLabels(service);
    if (existing && canonicalJson(existing.subsets ?? []) === canonicalJson(subsets) && canonicalJson(existing.metadata.labels ?? {}) === canonicalJson(labels)) {
      return;
    }
    if (existing) {
      try {
        const written = await this.api.update(RESOURCE.endpoints, { ...structuredClone(existing), metadata: { ...existing.metadata, labels }, subsets });
        this.lastWritten.set(key, written);
      } catch (err) {
        this.lastWritten.delete(key);
        throw err;
      }
      return;
    }
    const endpoints: Endpoints = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: service.metadata.name, namespace, labels },
      subsets,
    };
    // AlreadyExists (our own create, not yet in the cache) is retried by the queue as an update.
    this.lastWritten.set(key, await this.api.create(RESOURCE.endpoints, endpoints));
  }

  private async deleteEndpoints(endpoints: Endpoints): Promise<void> {
    try {
      await this.api.delete(RESOURCE.endpoints, endpoints.metadata.name ?? '', endpoints.metadata.namespace, {
        preconditions: { uid: endpoints.metadata.uid },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
