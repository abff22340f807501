/**
 * The Store on etcd (v3 API), for clusters whose control plane outgrows one machine.
 *
 * Design: the Store contract was shaped after etcd, so each operation maps straight onto it.
 * - resourceVersion is the key's mod_revision; values are stored without it.
 * - list is paged ranges all pinned to the first page's header revision, so the result is
 *   one snapshot at the revision it reports.
 * - create/update/delete are transactions: create if create_revision == 0; update/delete
 *   require the key to exist (create_revision > 0) and, with an expected resourceVersion,
 *   mod_revision == it. The failure branch reads the key, so a miss says whether the key was
 *   absent or at which revision it was.
 * - watch starts at sinceResourceVersion + 1 with prev_kv. Whether the start is still in
 *   history is checked first with a range read at that revision (etcd answers "compacted"
 *   synchronously there), so `watch()` rejects with ResourceVersionTooOldError; so does a
 *   compaction that races with the watch's creation. One learnt only once the watch runs (it
 *   overtook a lagging watch, or removed a deleted value the watch still had to deliver) ends
 *   the watch through `onError(ResourceVersionTooOldError)`.
 * - A lost connection ends the watch through `onError` instead of letting the client library
 *   resume it: the library resumes from the header revision of the last response, which can
 *   be past events it has not delivered, and "no gaps" is the contract. Callers re-watch from
 *   the last revision they saw.
 * - Every key is `keyPrefix + key`, so several clusters can share one etcd.
 * - Several endpoints (an etcd cluster): the client library spreads calls over them and skips
 *   a member whose calls fail (a circuit breaker per member). On top of that, `request`
 *   retries for a while what fails only because a member is gone or the cluster is electing
 *   a leader (gRPC UNAVAILABLE, "leader changed", "no leader", "request timed out"), so
 *   losing one member of three costs writes a delay, not an error.
 * - Retrying a write whose first attempt may have been applied (the answer was lost with the
 *   member) must not apply it twice: the compare does that (a second create finds the key,
 *   a second guarded update finds a newer mod_revision). When such a "failure" follows a
 *   retry, it is recognised as our own write by its value — the stored bytes are exactly
 *   ours, uid and timestamps included — and answered as the success it was. (Only after a
 *   retry: a first attempt that finds an equal value met someone else's write. The library's
 *   own retry is off so that `request` knows.) An unguarded update re-puts the same value.
 *   A delete retried after its first attempt applied answers NotFound: etcd keeps no record
 *   of who deleted a key.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, ICompare, IKeyValue, IOptions, IWatchResponse, Watcher } from 'etcd3';
import { etcd3 } from '../../lib/lazy.js';
import type { KubeObject } from '../../api/meta.js';
import { describeError } from '../../lib/errors.js';
import {
  KeyExistsError,
  KeyNotFoundError,
  ResourceVersionConflictError,
  ResourceVersionTooOldError,
  StoreError,
  type Store,
  type StoredObject,
  type StoreEvent,
  type StoreWatch,
  type StoreWatchListener,
} from './store.js';

export const DEFAULT_ETCD_KEY_PREFIX = '/registry';

// etcd's gRPC status for both is OUT_OF_RANGE; only the message tells them apart.
const COMPACTED = 'required revision has been compacted';
const FUTURE_REVISION = 'required revision is a future revision';

export interface EtcdStoreOptions {
  /** Prepended to every key (default "/registry"). Must not be a prefix of another store's. */
  keyPrefix?: string;
  /** Deadline for each request; etcd being down must not hang the apiserver. */
  requestTimeoutMs?: number;
  /** Keys per range request in list(); pages keep responses under gRPC's message limit. */
  listPageSize?: number;
  /** How long a request is retried through member loss and leader elections (default twice requestTimeoutMs: 20 s). */
  retryBudgetMs?: number;
  /**
   * Deadline of one attempt (default 2.5 s, at most requestTimeoutMs). etcd holds a request
   * sent to a follower whose leader died until its own request timeout (5 s + two election
   * timeouts, 7 s by default) and then fails it; a shorter attempt plus a retry reaches the
   * new leader after the election (~1-2 s) instead.
   */
  attemptTimeoutMs?: number;
}

/**
 * Errors that say "this member or this moment", not "this request": retrying, through the
 * library's member rotation, reaches a member with a leader. etcd's own messages are the
 * ones its clientv3 retries on (rpctypes ErrLeaderChanged, ErrNoLeader, ErrTimeout, ...).
 */
const TRANSIENT_MESSAGES = ['leader changed', 'no leader', 'request timed out', 'too many requests', 'unhealthy cluster', 'Broken circuit', 'UNAVAILABLE', 'No connection established', 'Connection dropped', 'connect ECONNREFUSED', 'ENOENT'];

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * The library's own retry (three attempts on UNAVAILABLE) is off: `request` retries instead,
 * and it must know when an attempt was a retry, because only then may a failed compare be our
 * own earlier attempt (see the design note). The per-member circuit breakers stay.
 */
const NO_LIBRARY_RETRY: GlobalPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn) => fn({ signal: new AbortController().signal }),
};

function isTransient(err: unknown): boolean {
  const name = err instanceof Error ? err.constructor.name : '';
  if (name === 'GRPCUnavailableError' || name === 'BrokenCircuitError' || name === 'GRPCDeadlineExceededError') return true;
  const message = describeError(err);
  return TRANSIENT_MESSAGES.some((m) => message.includes(m));
}

interface ActiveWatch {
  watcher: Watcher;
  listener: StoreWatchListener;
  /** The revision of the last event delivered (starts at sinceResourceVersion). */
  lastRevision: number;
  /** watch() has resolved: failures now go to `listener.onError`, not to its promise. */
  running: boolean;
  failStart?: ((err: unknown) => void) | undefined;
  ended: boolean;
}

export class EtcdStore implements Store {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly keyPrefix: string;
  private readonly timeoutMs: number;
  private readonly pageSize: number;
  private readonly retryBudgetMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly watches = new Set<ActiveWatch>();
  private closed = false;

  private constructor(endpoints: string[], options: EtcdStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? DEFAULT_ETCD_KEY_PREFIX;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.pageSize = options.listPageSize ?? 500;
    this.retryBudgetMs = options.retryBudgetMs ?? 2 * this.timeoutMs;
    this.attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? 2500, this.timeoutMs);
    this.client = new (etcd3().Etcd3)({
      hosts: endpoints,
      dialTimeout: this.timeoutMs,
      faultHandling: { global: NO_LIBRARY_RETRY },
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.attemptTimeoutMs }),
    });
    this.description = `etcd ${endpoints.join(',')} ${this.keyPrefix}`;
  }

  /** Connects and checks that etcd answers, so a wrong `--store` fails at startup. */
  static async open(endpoints: string[], options: EtcdStoreOptions = {}): Promise<EtcdStore> {
    if (endpoints.length === 0) throw new StoreError('an etcd store needs at least one endpoint');
    const store = new EtcdStore(endpoints, options);
    try {
      await store.currentResourceVersion();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    const response = await this.request(`read key "${key}"`, () => this.client.kv.range({ key: this.etcdKey(key) }));
    const kv = response.kvs[0];
    return kv && storedFrom(kv, Number(kv.mod_revision));
  }

  async list(prefix: string): Promise<{ items: StoredObject[]; resourceVersion: number }> {
    const start = this.etcdKey(prefix);
    const end = prefixEnd(start);
    const items: StoredObject[] = [];
    let revision: string | undefined;
    let from = start;
    for (;;) {
      const response = await this.request(`list prefix "${prefix}"`, () =>
        this.client.kv.range({ key: from, range_end: end, limit: this.pageSize, ...(revision === undefined ? {} : { revision }) }),
      );
      revision ??= response.header.revision;
      for (const kv of response.kvs) items.push(storedFrom(kv, Number(kv.mod_revision)));
      const last = response.kvs[response.kvs.length - 1];
      if (!response.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { items, resourceVersion: Number(revision) };
  }

  async create(key: string, object: KubeObject): Promise<StoredObject> {
    const etcdKey = this.etcdKey(key);
    const value = encode(object);
    let retried = false;
    const response = await this.request(`create key "${key}"`, (attempt) => {
      retried ||= attempt > 0;
      return this.client.kv.txn({
        compare: [{ key: etcdKey, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: etcdKey, value } }],
        failure: [{ request_range: { key: etcdKey } }],
      });
    });
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      // Our own create, applied by an attempt whose answer was lost (see the design note).
      if (retried && current && current.value.equals(value)) return storedFrom(current, Number(current.mod_revision));
      throw new KeyExistsError(key);
    }
    return storedFrom({ value }, Number(response.header.revision));
  }

  async update(key: string, object: KubeObject, expectedResourceVersion?: number): Promise<StoredObject> {
    const etcdKey = this.etcdKey(key);
    const value = encode(object);
    let retried = false;
    const response = await this.request(`update key "${key}"`, (attempt) => {
      retried ||= attempt > 0;
      return this.client.kv.txn({
        compare: this.currentIs(etcdKey, expectedResourceVersion),
        success: [{ request_put: { key: etcdKey, value } }],
        failure: [{ request_range: { key: etcdKey } }],
      });
    });
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      if (retried && current && current.value.equals(value)) return storedFrom(current, Number(current.mod_revision));
      this.explainFailure(key, response.responses[0], expectedResourceVersion);
    }
    return storedFrom({ value }, Number(response.header.revision));
  }

  async delete(key: string, expectedResourceVersion?: number): Promise<StoredObject> {
    const etcdKey = this.etcdKey(key);
    const response = await this.request(`delete key "${key}"`, () =>
      this.client.kv.txn({
        compare: this.currentIs(etcdKey, expectedResourceVersion),
        success: [{ request_delete_range: { key: etcdKey, prev_kv: true } }],
        failure: [{ request_range: { key: etcdKey } }],
      }),
    );
    if (!response.succeeded) this.explainFailure(key, response.responses[0], expectedResourceVersion);
    const previous = response.responses[0]?.response_delete_range?.prev_kvs[0];
    // The compare held inside the transaction, so the key existed and etcd returned it.
    if (!previous) throw new StoreError(`etcd deleted key "${key}" without returning its value`);
    const revision = Number(response.header.revision);
    return storedFrom(previous, revision);
  }

  async watch(prefix: string, sinceResourceVersion: number, listener: StoreWatchListener): Promise<StoreWatch> {
    await this.checkNotCompacted(sinceResourceVersion);
    const start = this.etcdKey(prefix);
    // Built with watcher() rather than create() so the handlers are on before etcd can send
    // the first events: create() resolves a promise later, after events may have arrived.
    const watcher = this.client.watch().inRange({ start, end: prefixEnd(start) }).withPreviousKV().startRevision(String(sinceResourceVersion + 1)).watcher();
    const active: ActiveWatch = { watcher, listener, lastRevision: sinceResourceVersion, running: false, ended: false };
    const started = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => active.failStart?.(new StoreError(`failed to watch prefix "${prefix}": etcd did not answer within ${this.timeoutMs} ms (${this.description})`)), this.timeoutMs);
      active.failStart = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      watcher.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    watcher.on('data', (response: IWatchResponse) => this.onWatchData(active, response));
    watcher.on('error', (err: unknown) => void this.onWatchFailure(active, err));
    watcher.on('disconnected', (err: unknown) => this.endWatch(active, new StoreError(`lost the watch connection to ${this.description}`, { cause: err })));
    this.watches.add(active);
    try {
      this.checkOpen();
      await started;
    } catch (err) {
      await this.endWatch(active);
      throw await this.watchError(sinceResourceVersion, err);
    }
    active.running = true;
    active.failStart = undefined;
    return { stop: () => void this.endWatch(active) };
  }

  async currentResourceVersion(): Promise<number> {
    const response = await this.request('read the current revision', () => this.client.kv.range({ key: this.etcdKey(''), count_only: true }));
    return Number(response.header.revision);
  }

  /**
   * `/readyz`'s `[+]etcd ok`: a linearizable read, which only a member with a leader and a
   * quorum answers (upstream's etcd check reads a key the same way). No retries: the probe
   * reports the moment.
   */
  readonly health = {
    name: 'etcd',
    check: async (): Promise<void> => {
      this.checkOpen();
      await this.client.kv.range({ key: this.etcdKey('health'), count_only: true });
    },
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const cancelled = [...this.watches].map((active) => this.endWatch(active, new StoreError(`${this.description} was closed`)));
    // Cancel before closing the client: a watcher still attached when the client closes
    // makes the library retry its stream forever on a timer.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(cancelled), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
    this.client.close();
  }

  private etcdKey(key: string): Buffer {
    return Buffer.from(this.keyPrefix + key);
  }

  /** The key exists and, when asked, is still at `expectedResourceVersion`. */
  private currentIs(etcdKey: Buffer, expectedResourceVersion: number | undefined): ICompare[] {
    // create_revision > 0 stops an expected revision of 0 from matching an absent key
    // (whose mod_revision etcd reports as 0).
    const compare: ICompare[] = [{ key: etcdKey, target: 'Create', result: 'Greater', create_revision: 0 }];
    if (expectedResourceVersion !== undefined) {
      compare.push({ key: etcdKey, target: 'Mod', result: 'Equal', mod_revision: expectedResourceVersion });
    }
    return compare;
  }

  private explainFailure(key: string, failure: { response_range?: { kvs: IKeyValue[] } } | undefined, expected: number | undefined): never {
    const current = failure?.response_range?.kvs[0];
    if (!current) throw new KeyNotFoundError(key);
    throw new ResourceVersionConflictError(key, expected ?? 0, Number(current.mod_revision));
  }

  private onWatchData(active: ActiveWatch, response: IWatchResponse): void {
    for (const event of response.events) {
      if (active.ended) return;
      const revision = Number(event.kv.mod_revision);
      // etcd delivers each revision once and in order; this only guards the contract against
      // a library replaying a response.
      if (revision <= active.lastRevision) continue;
      const key = event.kv.key.toString().slice(this.keyPrefix.length);
      let storeEvent: StoreEvent;
      if (event.type === 'Put') {
        const object = storedFrom(event.kv, revision).object;
        storeEvent = { type: event.kv.create_revision === event.kv.mod_revision ? 'ADDED' : 'MODIFIED', key, object, resourceVersion: revision };
        if (storeEvent.type === 'MODIFIED' && event.prev_kv) storeEvent.prevObject = storedFrom(event.prev_kv, Number(event.prev_kv.mod_revision)).object;
      } else {
        if (!event.prev_kv) {
          // A lagging watch reached a delete whose previous value etcd has compacted away. The
          // event cannot be delivered whole and re-watching would meet it again, so the
          // watcher must re-list from after it, as after any compaction.
          this.endWatch(active, new ResourceVersionTooOldError(active.lastRevision, revision + 1));
          return;
        }
        const previous = storedFrom(event.prev_kv, Number(event.prev_kv.mod_revision)).object;
        storeEvent = { type: 'DELETED', key, object: withResourceVersion(structuredClone(previous), revision), prevObject: previous, resourceVersion: revision };
      }
      active.lastRevision = revision;
      try {
        active.listener.onEvent(storeEvent);
      } catch (err) {
        this.endWatch(active, err);
        return;
      }
    }
  }

  /** A running watch was cancelled by etcd: say TooOld if history moved past it. */
  private async onWatchFailure(active: ActiveWatch, err: unknown): Promise<void> {
    if (active.ended) return;
    const reason = await this.watchError(active.lastRevision, err);
    this.endWatch(active, reason);
  }

  private async watchError(sinceResourceVersion: number, err: unknown): Promise<unknown> {
    if (err instanceof StoreError) return err;
    try {
      await this.checkNotCompacted(sinceResourceVersion);
    } catch (checked) {
      if (checked instanceof ResourceVersionTooOldError) return checked;
    }
    return new StoreError(`failed to watch ${this.description}: ${describeError(err)}`, { cause: err });
  }

  private endWatch(active: ActiveWatch, err?: unknown): Promise<void> {
    if (active.ended) return Promise.resolve();
    active.ended = true;
    this.watches.delete(active);
    if (!active.running) active.failStart?.(err ?? new StoreError(`watch on ${this.description} stopped before it started`));
    else if (err !== undefined) active.listener.onError(err);
    return active.watcher.cancel().catch(() => undefined);
  }

  /**
   * A range read at `since` fails with "compacted" exactly when revisions up to `since` are
   * gone. Watching needs every event after `since`, and the event at the compaction revision
   * itself may be a delete whose tombstone compaction removed, so `since` must be at least
   * the compaction revision (as MemoryStore's `since >= compactedThrough`).
   */
  private async checkNotCompacted(sinceResourceVersion: number): Promise<void> {
    this.checkOpen();
    const probe = Math.max(sinceResourceVersion, 1);
    try {
      await this.client.kv.range({ key: this.etcdKey(''), count_only: true, revision: probe });
    } catch (err) {
      const message = describeError(err);
      if (message.includes(FUTURE_REVISION)) return;
      if (message.includes(COMPACTED)) {
        const compactedThrough = await this.compactedRevision(probe).catch(() => probe);
        throw new ResourceVersionTooOldError(sinceResourceVersion, compactedThrough + 1);
      }
      throw new StoreError(`failed to read revision ${probe} from ${this.description}: ${message}`, { cause: err });
    }
  }

  /**
   * The compaction revision: the oldest revision a range read still accepts, found by binary
   * search between one known to be compacted and the current one. Only on the error path;
   * etcd reports it directly only in HashKV (not in this client's protos) and in a watch's
   * cancel response (which the client library does not pass on).
   */
  private async compactedRevision(compacted: number): Promise<number> {
    let low = compacted; // range at `low` failed
    let high = await this.currentResourceVersion(); // range at the current revision always works
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      try {
        await this.client.kv.range({ key: this.etcdKey(''), count_only: true, revision: middle });
        high = middle;
      } catch (err) {
        if (!describeError(err).includes(COMPACTED)) throw err;
        low = middle;
      }
    }
    return high;
  }

  /** One call, retried with backoff while it fails transiently (member gone, election). */
  private async request<T>(what: string, call: (attempt: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryBudgetMs;
    for (let attempt = 0; ; attempt++) {
      this.checkOpen();
      try {
        return await call(attempt);
      } catch (err) {
        if (!isTransient(err) || Date.now() >= deadline || this.closed) {
          throw new StoreError(`failed to ${what} in ${this.description}: ${describeError(err)}`, { cause: err });
        }
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError(`${this.description} was closed`);
  }
}

/** The end of the range holding every key that starts with `start` (etcd's prefix rule). */
function prefixEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  // Empty or all 0xff: "\0" as range_end means every key from `start` on.
  return Buffer.from([0]);
}

/** The stored form: the revision lives in etcd's mod_revision, not in the value. */
function encode(object: KubeObject): Buffer {
  const { resourceVersion: _dropped, ...metadata } = object.metadata;
  return Buffer.from(JSON.stringify({ ...object, metadata }));
}

function withResourceVersion(object: KubeObject, resourceVersion: number): KubeObject {
  object.metadata = { ...object.metadata, resourceVersion: String(resourceVersion) };
  return object;
}

function storedFrom(kv: Pick<IKeyValue, 'value'>, resourceVersion: number): StoredObject {
  const object = JSON.parse(kv.value.toString()) as KubeObject;
  return { object: withResourceVersion(object, resourceVersion), resourceVersion };
}

