/**
 * The RBAC objects the authorizer reads, kept in memory: a list of the whole
 * `rbac.authorization.k8s.io` key range, then one Store watch after it (re-listed when the
 * watch ends), so writes through any apiserver on the store are seen.
 *
 * Read-your-writes: a client that has just created a RoleBinding expects its next request to
 * be allowed, but the watch delivers a moment later. So every RBAC write through this
 * apiserver (the registry hooks call `written()`) opens a short window in which `current()`
 * lists the store itself — a consistent snapshot that includes every write already answered.
 * RBAC writes are rare, so the extra lists are too.
 */
import type { KubeObject } from '../../api/meta.js';
import { RBAC_GROUP, type ClusterRole, type PolicyRule, type Role, type RoleBinding } from '../../api/rbac.js';
import { RESOURCES } from '../../api/resources.js';
import type { Logger } from '../../lib/log.js';
import { storageKey } from '../registry.js';
import type { Store, StoreEvent, StoreWatch } from '../store/store.js';

const PREFIX = `/registry/${RBAC_GROUP}/`;
const FRESH_READ_WINDOW_MS = 5000;
const REWATCH_DELAY_MS = 1000;

/** One consistent view of the policy, indexed for the authorizer. */
export class PolicyIndex {
  readonly clusterRoles = new Map<string, ClusterRole>();
  /** `<namespace>/<name>` */
  readonly roles = new Map<string, Role>();
  readonly clusterRoleBindings: RoleBinding[] = [];
  readonly roleBindings = new Map<string, RoleBinding[]>();
  /** An aggregated ClusterRole's effective rules, computed once per index (rbac.ts). */
  readonly aggregatedRules = new Map<string, PolicyRule[]>();

  constructor(objects: Iterable<KubeObject>) {
    for (const object of objects) {
      const namespace = object.metadata.namespace ?? '';
      const name = object.metadata.name ?? '';
      switch (object.kind) {
        case 'ClusterRole':
          this.clusterRoles.set(name, object as ClusterRole);
          break;
        case 'Role':
          this.roles.set(`${namespace}/${name}`, object as Role);
          break;
        case 'ClusterRoleBinding':
          this.clusterRoleBindings.push(object as RoleBinding);
          break;
        case 'RoleBinding': {
          const list = this.roleBindings.get(namespace) ?? [];
          list.push(object as RoleBinding);
          this.roleBindings.set(namespace, list);
          break;
        }
      }
    }
  }
}

export class PolicyCache {
  private readonly objects = new Map<string, { object: KubeObject; resourceVersion: number }>();
  private listedAt = 0;
  private index = new PolicyIndex([]);
  private indexStale = false;
  private freshUntil = 0;
  private watch: StoreWatch | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.relist();
    await this.startWatch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.watch?.stop();
  }

  /** An RBAC object was written through this apiserver: read the store directly for a while. */
  written(): void {
    this.freshUntil = Date.now() + FRESH_READ_WINDOW_MS;
  }

  async current(): Promise<PolicyIndex> {
    if (Date.now() < this.freshUntil) {
      const listed = await this.store.list(PREFIX);
      return new PolicyIndex(listed.items.map((item) => item.object));
    }
    if (this.indexStale) {
      this.index = new PolicyIndex([...this.objects.values()].map((entry) => entry.object));
      this.indexStale = false;
    }
    return this.index;
  }

  private async relist(): Promise<void> {
    const listed = await this.store.list(PREFIX);
    this.objects.clear();
    for (const item of listed.items) this.objects.set(keyOf(item.object), { object: item.object, resourceVersion: item.resourceVersion });
    this.listedAt = listed.resourceVersion;
    this.indexStale = true;
  }

  private async startWatch(): Promise<void> {
    this.watch = await this.store.watch(PREFIX, this.listedAt, {
      onEvent: (event) => this.apply(event),
      onError: (err) => {
        if (this.stopped) return;
        this.log.warn({ err: String(err) }, 'RBAC policy watch ended; re-listing');
        this.scheduleRewatch();
      },
    });
  }

  private scheduleRewatch(): void {
    this.retry = setTimeout(() => {
      if (this.stopped) return;
      this.relist()
        .then(() => this.startWatch())
        .catch((err: unknown) => {
          this.log.warn({ err: String(err) }, 'failed to re-list the RBAC policy; retrying');
          this.scheduleRewatch();
        });
    }, REWATCH_DELAY_MS);
    this.retry.unref();
  }

  private apply(event: StoreEvent): void {
    if (event.resourceVersion <= this.listedAt) return;
    if (event.type === 'DELETED') this.objects.delete(event.key);
    else this.objects.set(event.key, { object: event.object, resourceVersion: event.resourceVersion });
    this.indexStale = true;
  }
}

/** The store key of an RBAC object, as the registry lays it out. */
function keyOf(object: KubeObject): string {
  const descriptor = RESOURCES.find((d) => d.group === RBAC_GROUP && d.kind === object.kind);
  return descriptor ? storageKey(descriptor, object.metadata.namespace, object.metadata.name ?? '') : `${PREFIX}?/${object.metadata.name ?? ''}`;
}
