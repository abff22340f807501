/**
 * Service cluster IPs and node ports at write time. The allocator (kinds/service-ips.ts) is
 * stateless: it is told what is in use. This module keeps that "in use" set — rebuilt from a
 * list of the stored Services at startup and kept current from a store watch, so Services
 * written by another apiserver on the same etcd count too — and serializes Service writes so
 * two creates never pick the same address from the same snapshot.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { Logger } from '../lib/log.js';
import { ServiceIpAllocator, ServiceRangeFullError, serviceResourcesInUse, type ServiceResourcesInUse } from './kinds/service-ips.js';
import { storageKey, storagePrefix, type RegistryHooks } from './registry.js';
import { ApiStatusError, failure, invalid } from './status.js';
import type { Store, StoreWatch } from './store/store.js';

type Reservation = { abort(): void; commit(): void };

export class ServiceAllocations {
  /** What each stored Service holds, by storage key. */
  private readonly held = new Map<string, ServiceResourcesInUse>();
  private queue: Promise<void> = Promise.resolve();
  private watch: StoreWatch | undefined;
  private closed = false;

  constructor(
    readonly allocator: ServiceIpAllocator,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.sync();
  }

  private async sync(): Promise<void> {
    const prefix = storagePrefix(RESOURCE.services);
    const listed = await this.store.list(prefix);
    this.held.clear();
    for (const { object } of listed.items) this.record(object);
    this.watch = await this.store.watch(prefix, listed.resourceVersion, {
      onEvent: (event) => {
        if (event.type === 'DELETED') this.held.delete(event.key);
        else this.held.set(event.key, serviceResourcesInUse([event.object]));
      },
      onError: (err) => {
        if (this.closed) return;
        this.log.warn({ err }, 'service watch ended; re-listing the services in use');
        setTimeout(() => {
          if (!this.closed) this.sync().catch((e: unknown) => this.log.error({ err: e }, 'failed to re-list services'));
        }, 1000);
      },
    });
  }

  stop(): void {
    this.closed = true;
    this.watch?.stop();
  }

  private record(service: KubeObject): void {
    this.held.set(storageKey(RESOURCE.services, service.metadata.namespace, service.metadata.name ?? ''), serviceResourcesInUse([service]));
  }

  private inUse(): ServiceResourcesInUse {
    const used: ServiceResourcesInUse = { clusterIPs: new Set(), nodePorts: new Set() };
    for (const held of this.held.values()) {
      for (const ip of held.clusterIPs) used.clusterIPs.add(ip);
      for (const port of held.nodePorts) used.nodePorts.add(port);
    }
    return used;
  }

  /** Waits for the previous Service write to finish; returns the release function. */
  private async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const previous = this.queue;
    this.queue = previous.then(() => next);
    await previous;
    return release;
  }

  private async reserve(service: KubeObject, previous: KubeObject | undefined): Promise<Reservation> {
    const release = await this.lock();
    try {
      const causes = this.allocator.allocate(service, this.inUse(), previous);
      if (causes.length > 0) throw invalid(RESOURCE.services, service.metadata.name ?? '', causes);
    } catch (err) {
      release();
      if (err instanceof ServiceRangeFullError) {
        throw new ApiStatusError(failure(500, 'InternalError', `Internal error occurred: ${err.message}`));
      }
      throw err;
    }
    return {
      // Recorded at once: the watch event confirming it may arrive after the next write.
      commit: () => {
        this.record(service);
        release();
      },
      abort: release,
    };
  }

  /** The registry hooks that allocate for Services and leave other kinds alone. */
  hooks(): Pick<RegistryHooks, 'beforeCreate' | 'beforeUpdate'> {
    return {
      beforeCreate: async (descriptor: ResourceDescriptor, object: KubeObject) =>
        descriptor === RESOURCE.services ? this.reserve(object, undefined) : undefined,
      beforeUpdate: async (descriptor: ResourceDescriptor, object: KubeObject, old: KubeObject) =>
        descriptor === RESOURCE.services ? this.reserve(object, old) : undefined,
    };
  }
}
