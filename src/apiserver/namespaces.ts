/**
 * Namespace deletion, which upstream splits between the registry and the namespace
 * controller: the namespace turns Terminating (new content is refused), everything inside is
 * deleted (pods still get their grace period), and the namespace goes once it is empty.
 *
 * Design note: the "still has content" state is the metadata finalizer
 * `pontoon.dev/namespace-contents`, added when deletion starts (NamespaceStrategy's
 * prepareForDeletion, through the registry's ordinary delete) and removed by the sweep
 * when the namespace is empty; the registry's usual rule (no finalizers left → gone) then
 * removes it. That keeps the state in the store, so a restarted apiserver resumes emptying
 * namespaces it was working on, and other finalizers on a namespace are still honoured.
 *
 * Each pass that leaves content behind says what in the namespace's status conditions
 * (NamespaceContentRemaining, NamespaceFinalizersRemaining, with upstream's reasons and
 * messages), written only when they change: `kubectl describe ns` shows why a namespace is
 * stuck, and a watcher can tell that a pass has looked at it.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, RESOURCES } from '../api/resources.js';
import type { Namespace, NamespaceCondition } from '../api/types.js';
import type { Logger } from '../lib/log.js';
import { NAMESPACE_CONTENTS_FINALIZER } from './kinds/cluster.js';
import { storagePrefix, timestamp, type Registry, type RegistryHooks } from './registry.js';
import { ApiStatusError } from './status.js';

export { NAMESPACE_CONTENTS_FINALIZER } from './kinds/cluster.js';

/** Created at startup (default, kube-system and kube-public may never be deleted, as upstream). */
export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'] as const;

export class NamespaceLifecycle {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly sweepIntervalMs = 1000,
  ) {}

  /** The registry hook that starts a sweep when a namespace starts terminating. */
  hooks(): Pick<RegistryHooks, 'afterMarkedForDeletion'> {
    return {
      afterMarkedForDeletion: (descriptor) => {
        if (descriptor === RESOURCE.namespaces) this.schedule(0);
      },
    };
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
      if (remaining.objects > 0) {
        pending = true;
        await this.report(name, remaining);
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

  /** Starts deleting everything in the namespace; returns what is still there. */
  private async empty(namespace: string): Promise<Remaining> {
    const remaining: Remaining = { objects: 0, byResource: new Map(), byFinalizer: new Map() };
    for (const descriptor of RESOURCES) {
      if (!descriptor.namespaced) continue;
      const listed = await this.registry.store.list(storagePrefix(descriptor, namespace));
      if (listed.items.length === 0) continue;
      remaining.objects += listed.items.length;
      remaining.byResource.set(`${descriptor.resource}.${descriptor.group}`, listed.items.length);
      for (const { object } of listed.items) {
        for (const finalizer of object.metadata.finalizers ?? []) remaining.byFinalizer.set(finalizer, (remaining.byFinalizer.get(finalizer) ?? 0) + 1);
        if (object.metadata.deletionTimestamp) continue;
        await this.deleteQuietly(descriptor, object);
      }
    }
    return remaining;
  }

  /** Writes what is left into the namespace's conditions, when that differs from what they say. */
  private async report(name: string, remaining: Remaining): Promise<void> {
    const wanted = remainingConditions(remaining);
    await this.registry
      .guaranteedUpdate(RESOURCE.namespaces, undefined, name, { dryRun: false }, (stored) => {
        const ns = structuredClone(stored.object) as Namespace;
        const current = ns.status?.conditions ?? [];
        const same = (a: NamespaceCondition, b: NamespaceCondition | undefined): boolean => a.status === b?.status && a.reason === b.reason && a.message === b.message;
        if (wanted.every((c) => same(c, current.find((o) => o.type === c.type)))) return stored.object;
        const now = timestamp(new Date());
        const conditions = wanted.map((c) => {
          const old = current.find((o) => o.type === c.type);
          return { ...c, lastTransitionTime: old?.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now };
        });
        ns.status = { ...(ns.status ?? {}), conditions };
        return ns;
      })
      .catch((err: unknown) => {
        if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
      });
  }

  private async deleteQuietly(descriptor: (typeof RESOURCES)[number], object: KubeObject): Promise<void> {
    try {
      await this.registry.delete(descriptor, object.metadata.namespace, object.metadata.name ?? '', { propagationPolicy: 'Background' });
    } catch (err) {
      if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
    }
  }
}

interface Remaining {
  objects: number;
  /** `resource.group` → objects left. */
  byResource: Map<string, number>;
  /** finalizer → objects left that carry it. */
  byFinalizer: Map<string, number>;
}

/** Upstream's namespace controller conditions, with its reasons and message wording. */
function remainingConditions(remaining: Remaining): NamespaceCondition[] {
  const resources = [...remaining.byResource].sort(([a], [b]) => a.localeCompare(b));
  const finalizers = [...remaining.byFinalizer].sort(([a], [b]) => a.localeCompare(b));
  return [
    resources.length > 0
      ? { type: 'NamespaceContentRemaining', status: 'True', reason: 'SomeResourcesRemain', message: `Some resources are remaining: ${resources.map(([r, n]) => `${r} has ${n} resource instances`).join(', ')}` }
      : { type: 'NamespaceContentRemaining', status: 'False', reason: 'ContentRemoved', message: 'All content successfully removed' },
    finalizers.length > 0
      ? { type: 'NamespaceFinalizersRemaining', status: 'True', reason: 'SomeFinalizersRemain', message: `Some content in the namespace has finalizers remaining: ${finalizers.map(([f, n]) => `${f} in ${n} resource instances`).join(', ')}` }
      : { type: 'NamespaceFinalizersRemaining', status: 'False', reason: 'ContentHasNoFinalizers', message: 'All content-preserving finalizers finished' },
  ];
}
