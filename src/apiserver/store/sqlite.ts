/**
 * The embedded Store: one SQLite file opened by the apiserver process alone.
 *
 * Design:
 * - `kv` holds the current value of every key (JSON already stamped with its
 *   resourceVersion, so a read is one parse). `events` is the change log keyed by revision,
 *   one row per write, which is what watches replay from. Trimming always keeps the newest
 *   events, so the log's newest row is the revision counter: revisions keep increasing
 *   across restarts, and a write touches two tables, not three.
 * - Every write is one transaction that takes the next revision, changes `kv` and appends
 *   to `events`; a failed check throws inside it, so nothing partial is ever stored.
 * - The log is a bounded window (`historyLimit` events). It is trimmed in batches of a tenth
 *   of the window rather than one row per write, so the delete is amortised; a watch from
 *   before the window answers ResourceVersionTooOldError, as a compacted etcd does.
 * - Watch fan-out is in process: better-sqlite3 is synchronous, so `watch()` reads the log
 *   and registers its listener without yielding, and every write publishes after its commit
 *   in the same tick. No write can fall between replay and live delivery, and none is seen
 *   twice.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { KubeObject } from '../../api/meta.js';
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

export interface SqliteStoreOptions {
  /** Events kept for watches to replay from (at least this many; trimmed in batches). */
  historyLimit?: number;
}

export const DEFAULT_SQLITE_HISTORY_LIMIT = 10_000;
const SCHEMA_VERSION = 1;

type EventType = StoreEvent['type'];

interface KvRow {
  key: string;
  resource_version: number;
  value: string;
}

interface EventRow {
  resource_version: number;
  key: string;
  type: EventType;
  value: string;
  prev: string | null;
}

interface Watcher {
  prefix: string;
  /** Only later revisions are delivered (a watch may start from a future revision). */
  since: number;
  listener: StoreWatchListener;
  /**
   * Events not yet handed over, in order. Without it, a listener that writes to the store
   * from `onEvent` would receive its own write before the events already due to it.
   */
  queue: EventRow[];
  delivering: boolean;
  ended: boolean;
}

export class SqliteStore implements Store {
  readonly description: string;
  private readonly watchers = new Set<Watcher>();
  /** Committed writes not yet handed to the watchers (see publish()). */
  private readonly unpublished: EventRow[] = [];
  private publishing = false;
  private revision: number;
  /** The revision of the newest event dropped from the log (0: nothing dropped yet). */
  private compactedThrough: number;
  private readonly trimBatch: number;
  private closed = false;
  private readonly statements: ReturnType<typeof prepareStatements>;
  private readonly writeTxn: (key: string, apply: (current: KvRow | undefined) => PendingWrite) => { row: EventRow; compactedThrough: number };

  private constructor(
    private readonly db: Database.Database,
    path: string,
    historyLimit: number,
  ) {
    this.description = `sqlite ${path}`;
    this.trimBatch = Math.max(1, Math.ceil(historyLimit / 10));
    this.statements = prepareStatements(db);
    const ends = db.prepare<[], { oldest: number | null; newest: number | null }>('SELECT min(resource_version) AS oldest, max(resource_version) AS newest FROM events').get();
    this.revision = ends?.newest ?? 0;
    this.compactedThrough = ends?.oldest == null ? this.revision : ends.oldest - 1;
    this.writeTxn = db.transaction((key, apply) => {
      const current = this.statements.get.get(key);
      const pending = apply(current);
      const revision = this.revision + 1;
      const value = stampedJson(pending.object, revision);
      if (pending.type === 'DELETED') this.statements.remove.run(key);
      else this.statements.upsert.run(key, revision, value);
      this.statements.appendEvent.run(revision, key, pending.type, value, current?.value ?? null);
      let compactedThrough = this.compactedThrough;
      if (revision - compactedThrough > historyLimit + this.trimBatch) {
        compactedThrough = revision - historyLimit;
        this.statements.trimEvents.run(compactedThrough);
      }
      const row: EventRow = { resource_version: revision, key, type: pending.type, value, prev: current?.value ?? null };
      return { row, compactedThrough };
    });
  }

  /** Opens (creating if needed) the database at `path`; `:memory:` gives a private in-memory one. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const historyLimit = options.historyLimit ?? DEFAULT_SQLITE_HISTORY_LIMIT;
    if (!Number.isInteger(historyLimit) || historyLimit < 1) {
      throw new StoreError(`historyLimit must be a positive integer, not ${historyLimit}`);
    }
    let db: Database.Database;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Database(path);
    } catch (err) {
      throw new StoreError(`failed to open sqlite store "${path}": ${String(err)}`, { cause: err });
    }
    try {
      // WAL lets reads run beside the single writer and turns each commit into one append.
      // synchronous=NORMAL in WAL mode still never corrupts the file and loses nothing when
      // the process crashes; only a power loss or kernel crash can roll back the last few
      // commits (fsync happens at checkpoints). FULL would fsync every write and cap the
      // apiserver at the disk's flush rate, for a guarantee the rest of a single-machine
      // cluster (pods, netns) does not survive a power loss to use anyway.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = OFF');
      migrate(db, path);
      return new SqliteStore(db, path, historyLimit);
    } catch (err) {
      db.close();
      if (err instanceof StoreError) throw err;
      throw new StoreError(`failed to open sqlite store "${path}": ${String(err)}`, { cause: err });
    }
  }

  async get(key: string): Promise<StoredObject | undefined> {
    this.checkOpen();
    const row = this.statements.get.get(key);
    return row && storedFrom(row);
  }

  async list(prefix: string): Promise<{ items: StoredObject[]; resourceVersion: number }> {
    this.checkOpen();
    const items: StoredObject[] = [];
    for (const row of this.statements.scanFrom.iterate(prefix)) {
      if (!row.key.startsWith(prefix)) break;
      items.push(storedFrom(row));
    }
    return { items, resourceVersion: this.revision };
  }

  async create(key: string, object: KubeObject): Promise<StoredObject> {
    return this.write(key, (current) => {
      if (current) throw new KeyExistsError(key);
      return { type: 'ADDED', object };
    });
  }

  async update(key: string, object: KubeObject, expectedResourceVersion?: number): Promise<StoredObject> {
    return this.write(key, (current) => {
      checkCurrent(key, current, expectedResourceVersion);
      return { type: 'MODIFIED', object };
    });
  }

  async delete(key: string, expectedResourceVersion?: number): Promise<StoredObject> {
    return this.write(key, (current) => {
      const existing = checkCurrent(key, current, expectedResourceVersion);
      return { type: 'DELETED', object: JSON.parse(existing.value) as KubeObject };
    });
  }

  async watch(prefix: string, sinceResourceVersion: number, listener: StoreWatchListener): Promise<StoreWatch> {
    this.checkOpen();
    if (sinceResourceVersion < this.compactedThrough) {
      throw new ResourceVersionTooOldError(sinceResourceVersion, this.compactedThrough + 1);
    }
    // Reading the log and registering happen without an await between them (see the design
    // note); writes made while the replay is being delivered queue up behind it.
    const replay = this.statements.eventsAfter.all(sinceResourceVersion).filter((row) => row.key.startsWith(prefix));
    // `since` moves to the newest committed revision: the replay already holds everything up
    // to it, including writes still waiting in `unpublished`.
    const since = Math.max(sinceResourceVersion, this.revision);
    const watcher: Watcher = { prefix, since, listener, queue: [], delivering: false, ended: false };
    this.watchers.add(watcher);
    this.deliver(watcher, replay);
    return { stop: () => this.endWatch(watcher) };
  }

  async currentResourceVersion(): Promise<number> {
    this.checkOpen();
    return this.revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const watchers = [...this.watchers];
    this.db.close();
    for (const watcher of watchers) this.endWatch(watcher, new StoreError(`${this.description} was closed`));
  }

  private write(key: string, apply: (current: KvRow | undefined) => PendingWrite): StoredObject {
    this.checkOpen();
    const { row, compactedThrough } = this.writeTxn(key, apply);
    // The in-memory view moves only once the commit succeeded; writes are synchronous, so
    // no other write can run in between.
    this.revision = row.resource_version;
    this.compactedThrough = compactedThrough;
    this.publish(row);
    return { object: JSON.parse(row.value) as KubeObject, resourceVersion: row.resource_version };
  }

  private publish(row: EventRow): void {
    // A write made from inside onEvent lands here while an earlier event is still being
    // handed out; it waits its turn so every watcher sees revisions in order.
    this.unpublished.push(row);
    if (this.publishing) return;
    this.publishing = true;
    try {
      for (let next = this.unpublished.shift(); next; next = this.unpublished.shift()) {
        for (const watcher of this.watchers) {
          if (next.resource_version > watcher.since && next.key.startsWith(watcher.prefix)) this.deliver(watcher, [next]);
        }
      }
    } finally {
      this.publishing = false;
    }
  }

  private deliver(watcher: Watcher, rows: EventRow[]): void {
    watcher.queue.push(...rows);
    if (watcher.delivering) return;
    watcher.delivering = true;
    try {
      for (let row = watcher.queue.shift(); row && !watcher.ended; row = watcher.queue.shift()) {
        watcher.listener.onEvent(eventFrom(row));
      }
    } catch (err) {
      // A listener that throws has lost track of the stream; end its watch rather than let
      // it fail a write that is already committed, or starve the other watchers.
      this.endWatch(watcher, err);
    } finally {
      watcher.delivering = false;
    }
  }

  /** Stops delivery; with `err`, tells the listener why (stop() itself is silent). */
  private endWatch(watcher: Watcher, err?: unknown): void {
    if (watcher.ended) return;
    watcher.ended = true;
    watcher.queue.length = 0;
    this.watchers.delete(watcher);
    if (err !== undefined) watcher.listener.onError(err);
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError(`${this.description} was closed`);
  }
}

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string], KvRow>('SELECT key, resource_version, value FROM kv WHERE key = ?'),
    // Keys sort by byte order (BINARY collation); a range scan from the prefix stops at the
    // first key that no longer starts with it (see list()).
    scanFrom: db.prepare<[string], KvRow>('SELECT key, resource_version, value FROM kv WHERE key >= ? ORDER BY key'),
    upsert: db.prepare<[string, number, string]>(
      'INSERT INTO kv (key, resource_version, value) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET resource_version = excluded.resource_version, value = excluded.value',
    ),
    remove: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
    appendEvent: db.prepare<[number, string, EventType, string, string | null]>(
      'INSERT INTO events (resource_version, key, type, value, prev) VALUES (?, ?, ?, ?, ?)',
    ),
    eventsAfter: db.prepare<[number], EventRow>('SELECT resource_version, key, type, value, prev FROM events WHERE resource_version > ? ORDER BY resource_version'),
    trimEvents: db.prepare<[number]>('DELETE FROM events WHERE resource_version <= ?'),
  };
}

interface PendingWrite {
  type: EventType;
  /** For DELETED, the last value (to be stamped with the deletion's revision). */
  object: KubeObject;
}

function checkCurrent(key: string, current: KvRow | undefined, expectedResourceVersion: number | undefined): KvRow {
  if (!current) throw new KeyNotFoundError(key);
  if (expectedResourceVersion !== undefined && current.resource_version !== expectedResourceVersion) {
    throw new ResourceVersionConflictError(key, expectedResourceVersion, current.resource_version);
  }
  return current;
}

function stampedJson(object: KubeObject, resourceVersion: number): string {
  return JSON.stringify({ ...object, metadata: { ...object.metadata, resourceVersion: String(resourceVersion) } });
}

function storedFrom(row: KvRow): StoredObject {
  return { object: JSON.parse(row.value) as KubeObject, resourceVersion: row.resource_version };
}

function eventFrom(row: EventRow): StoreEvent {
  const event: StoreEvent = { type: row.type, key: row.key, object: JSON.parse(row.value) as KubeObject, resourceVersion: row.resource_version };
  if (row.prev !== null) event.prevObject = JSON.parse(row.prev) as KubeObject;
  return event;
}

function readMeta(db: Database.Database, name: string): number {
  const row = db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?').get(name);
  if (!row) throw new StoreError(`sqlite store is missing its "${name}" record`);
  return row.value;
}

function migrate(db: Database.Database, path: string): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, resource_version INTEGER NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events (
      resource_version INTEGER PRIMARY KEY,
      key TEXT NOT NULL,
      type TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
      value TEXT NOT NULL,
      prev TEXT
    );
    INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ${SCHEMA_VERSION});
  `);
  const schema = readMeta(db, 'schema');
  if (schema !== SCHEMA_VERSION) {
    throw new StoreError(`sqlite store "${path}" has schema version ${schema}; this build reads version ${SCHEMA_VERSION}`);
  }
}
