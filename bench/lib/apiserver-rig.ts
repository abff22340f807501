/**
 * One "rig" per store kind for the apiserver benchmark: an apiserver on that kind of store
 * (in a worker, see apiserver-host.ts), and factories for the two references measured beside
 * it in the same run — the Store class used directly (no HTTP) and raw writes into the same
 * database engine with nothing of Pontoon in between.
 *
 * Every contender gets its own SQLite file or etcd key prefix, so none reads another's rows;
 * the etcd contenders share one etcd process, as the apiserver's would in a cluster.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/apiserver/store/etcd.js';
import { SqliteStore } from '../../src/apiserver/store/sqlite.js';
import type { Store } from '../../src/apiserver/store/store.js';
import { KubeClient } from '../../src/client/client.js';
import { startApiServerInWorker, type ApiServerInWorker } from './apiserver-host.js';

export type StoreKind = 'sqlite' | 'etcd';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'etcd'];

/** The least a key-value write into the engine costs: one put of the same JSON. */
export interface RawWriter {
  readonly description: string;
  create(key: string, json: string): Promise<void>;
  update(key: string, json: string): Promise<void>;
  close(): Promise<void>;
}

export interface StoreRig {
  kind: StoreKind;
  api: ApiServerInWorker;
  /** Plain HTTP on 127.0.0.1 with Node's keep-alive global agent (sockets are reused). */
  client: KubeClient;
  /** A Store of this kind in this process, on its own file or key prefix. */
  openStore(tag: string): Promise<Store>;
  openRaw(tag: string): Promise<RawWriter>;
  close(): Promise<void>;
}

/**
 * Raw SQLite: better-sqlite3 with the pragmas of src/apiserver/store/sqlite.ts (WAL,
 * synchronous=NORMAL) and one transaction per write into a `key → value` table. The Store
 * also keeps a change log for watches (a second row per write) and stamps revisions; this
 * reference does neither, which is exactly the cost it exposes.
 */
class RawSqlite implements RawWriter {
  readonly description: string;
  private readonly db: Database.Database;
  private readonly insertTxn: (key: string, json: string) => void;
  private readonly updateTxn: (key: string, json: string) => void;

  constructor(path: string) {
    this.description = `better-sqlite3 ${path}`;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = OFF');
    this.db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    const insert = this.db.prepare<[string, string]>('INSERT INTO kv (key, value) VALUES (?, ?)');
    const update = this.db.prepare<[string, string]>('UPDATE kv SET value = ? WHERE key = ?');
    this.insertTxn = this.db.transaction((key: string, json: string) => {
      insert.run(key, json);
    });
    this.updateTxn = this.db.transaction((key: string, json: string) => {
      update.run(json, key);
    });
  }

  async create(key: string, json: string): Promise<void> {
    this.insertTxn(key, json);
  }

  async update(key: string, json: string): Promise<void> {
    this.updateTxn(key, json);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Raw etcd: an etcd3 client `put` per write (no compare, no read-back). */
class RawEtcd implements RawWriter {
  readonly description: string;
  private readonly client: Etcd3;

  constructor(
    endpoint: string,
    private readonly prefix: string,
  ) {
    this.description = `etcd3 put ${endpoint} ${prefix}`;
    this.client = new Etcd3({ hosts: [endpoint] });
  }

  async create(key: string, json: string): Promise<void> {
    await this.client.put(this.prefix + key).value(json);
  }

  async update(key: string, json: string): Promise<void> {
    await this.client.put(this.prefix + key).value(json);
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

export async function openSqliteRig(dir: string): Promise<StoreRig> {
  const api = await startApiServerInWorker(`sqlite:${join(dir, 'apiserver.db')}`);
  return {
    kind: 'sqlite',
    api,
    client: new KubeClient({ server: api.url, userAgent: 'pontoon-bench' }),
    openStore: async (tag) => SqliteStore.open(join(dir, `store-${tag}.db`)),
    openRaw: async (tag) => new RawSqlite(join(dir, `raw-${tag}.db`)),
    close: () => api.close(),
  };
}

/** `endpoint` is `http://127.0.0.1:<port>`; the apiserver keeps its keys under /pontoon. */
export async function openEtcdRig(endpoint: string): Promise<StoreRig> {
  const api = await startApiServerInWorker(`etcd://${new URL(endpoint).host}`);
  return {
    kind: 'etcd',
    api,
    client: new KubeClient({ server: api.url, userAgent: 'pontoon-bench' }),
    openStore: (tag) => EtcdStore.open([endpoint], { keyPrefix: `/bench-store-${tag}` }),
    openRaw: async (tag) => new RawEtcd(endpoint, `/bench-raw-${tag}`),
    close: () => api.close(),
  };
}
