/**
 * Namespace deletion, which upstream splits between the registry and the namespace
 * controller: the namespace turns Terminating (new content is refused), everything inside is
 * deleted (pods still get their grace period), and the namespace goes once it is empty.
 *
 * Design note: the "still has content" state is the metadata finalizer
 * `pontoon.dev/namespace-contents`, added when deletion starts and removed by the sweep
 * when the namespace is empty; the registry's usual rule (no finalizers left → gone) then
 * removes it. That keeps the state in the store, so a restarted apiserver resumes emptying
 * namespaces it was working on, and other finalizers on a namespace are still honoured.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, RESOURCES } from '../api/resources.js';
import type { Namespace } from '../api/types.js';
import type { Logger } from '../lib/log.js';
import { storagePrefix, timestamp, type DeleteResult, type Registry, type RemovalOptions } from './registry.js';
import { ApiStatusError, conflict, forbidden } from './status.js';

export const NAMESPACE_CONTENTS_FINALIZER = 'pontoon.dev/namespace-contents';

/** Created at startup, and never deletable (as upstream). */
export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'] as const;
const UNDELETABLE = new Set(['default', 'kube-system', 'kube-public']);

export class NamespaceLifecycle {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly sweepIntervalMs = 1000,
  ) {}

  async delete(name: string, options: RemovalOptions): Promise<DeleteResult> {
    if (UNDELETABLE.has(name)) throw forbidden(`namespaces "${name}" is forbidden: this namespace may not be deleted`, RESOURCE.namespaces, name);
    const current = await this.registry.get(RESOURCE.namespaces, undefined, name);
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) {
      throw conflict(RESOURCE.namespaces, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid ?? ''}`);
    }
    if (options.dryRun) return { object: current, removed: false };
    const object = await this.registry.guaranteedUpdate(RESOURCE.namespaces, undefined, name, { dryRun: false }, (stored) => {
      const ns = structuredClone(stored.object) as Namespace;
      if (ns.metadata.deletionTimestamp) return ns;
      ns.metadata.deletionTimestamp = timestamp(new Date());
      ns.metadata.deletionGracePeriodSeconds = 0;
      ns.metadata.finalizers = [...(ns.metadata.finalizers ?? []), NAMESPACE_CONTENTS_FINALIZER];
      ns.status = { ...(ns.status ?? {}), phase: 'Terminating' };
      return ns;
    });
    this.schedule(0);
    return { object, removed: false };
  }

  /** Resumes namespaces a previous run left Terminating. */
  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sweeping;
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sweeping = this.sweep()
        .then((more) => {
          if (more) this.schedule(this.sweepIntervalMs);
        })
        .catch((err: unknown) => {
          this.log.warn({ err }, 'namespace sweep failed; retrying');
          this.schedule(this.sweepIntervalMs);
        })
        .finally(() => {
          this.sweeping = undefined;
        });
    }, delayMs);
  }

  /** One pass over terminating namespaces; true while some are still not empty. */
  private async sweep(): Promise<boolean> {
    const listed = await this.registry.store.list(storagePrefix(RESOURCE.namespaces));
    let pending = false;
    for (const { object } of listed.items) {
      if (this.stopped) return false;
      if (!object.metadata.deletionTimestamp || !object.metadata.finalizers?.includes(NAMESPACE_CONTENTS_FINALIZER)) continue;
      const name = object.metadata.name ?? '';
      const remaining = await this.empty(name);
      if (remaining > 0) {
        pending = true;
        continue;
      }
      await this.registry
        .guaranteedUpdate(RESOURCE.namespaces, undefined, name, { dryRun: false }, (stored) => {
          const ns = structuredClone(stored.object);
          const left = (ns.metadata.finalizers ?? []).filter((f) => f !== NAMESPACE_CONTENTS_FINALIZER);
          if (left.length > 0) ns.metadata.finalizers = left;
          else delete ns.metadata.finalizers;
          return ns;
        })
        .catch((err: unknown) => {
          if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
        });
      this.log.info({ namespace: name }, 'namespace emptied and removed');
    }
    return pending;
  }

  /** Starts deleting everything in the namespace; returns how many objects are still there. */
  private async empty(namespace: string): Promise<number> {
    let remaining = 0;
    for (const descriptor of RESOURCES) {
      if (!descriptor.namespaced) continue;
      const listed = await this.registry.store.list(storagePrefix(descriptor, namespace));
      remaining += listed.items.length;
      for (const { object } of listed.items) {
        if (object.metadata.deletionTimestamp) continue;
        await this.deleteQuietly(descriptor, object);
      }
    }
    return remaining;
  }

  private async deleteQuietly(descriptor: (typeof RESOURCES)[number], object: KubeObject): Promise<void> {
    try {
      await this.registry.delete(descriptor, object.metadata.namespace, object.metadata.name ?? '', { propagationPolicy: 'Background' });
    } catch (err) {
      if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
    }
  }
}
