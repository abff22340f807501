/**
 * One informer per resource, shared by every controller in the process, so the
 * controller-manager holds one cache and one watch per kind however many controllers read it
 * (client-go's SharedInformerFactory). Controllers ask for informers while they are being
 * built (registering their handlers), then the manager starts them all and waits for the first
 * list of each before any worker runs.
 */
import type { KubeObject } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import type { KubeApi } from '../client/api.js';
import { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';

export class SharedInformers {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private started = false;

  constructor(
    private readonly api: KubeApi,
    private readonly log: Logger,
    private readonly resyncSeconds = 0,
  ) {}

  /** The informer for `resource` (all namespaces), created on first use. */
  informer<T extends KubeObject>(resource: ResourceDescriptor): Informer<T> {
    const key = `${resource.group}/${resource.resource}`;
    let informer = this.informers.get(key);
    if (!informer) {
      informer = new Informer<KubeObject>(this.api, resource, { log: this.log, resyncSeconds: this.resyncSeconds });
      this.informers.set(key, informer);
      // A controller built after start() still gets a running informer.
      if (this.started) void informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  /** Starts every informer asked for so far; resolves when each has delivered its first list. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all([...this.informers.values()].map((informer) => informer.start()));
  }

  stop(): void {
    for (const informer of this.informers.values()) informer.stop();
  }
}

/** Objects of a namespaced informer in one namespace. */
export function inNamespace<T extends KubeObject>(informer: Informer<T>, namespace: string): T[] {
  return informer.list().filter((object) => object.metadata.namespace === namespace);
}

/** Calls `handler` with the object of every add, update (its new state) and delete. */
export function onAnyChange<T extends KubeObject>(informer: Informer<T>, handler: (object: T) => void): void {
  informer.on('add', handler);
  informer.on('update', (_old, object) => handler(object));
  informer.on('delete', handler);
}
