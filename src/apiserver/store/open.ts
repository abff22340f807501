/**
 * `--store` URLs to Store instances:
 *   sqlite:/abs/path.db          SQLite file (created if missing)
 *   sqlite::memory:              private in-memory SQLite (tests, demos)
 *   memory:                      MemoryStore (tests)
 *   etcd://host:port[,host:port] etcd v3 over plain HTTP/2 (gRPC), keys under /registry
 *   etcd://unix:/abs/sock[,...]  the same over etcd's unix-socket listeners (the lab's members
 *                                live in network namespaces the apiserver has no route into)
 */
import { PontoonError } from '../../lib/errors.js';
import { EtcdStore } from './etcd.js';
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export class StoreUrlError extends PontoonError {
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`invalid --store "${url}": ${reason} (expected sqlite:/abs/path.db, sqlite::memory:, memory: or etcd://host:port[,host:port|,unix:/abs/socket])`);
  }
}

export async function openStore(url: string): Promise<Store> {
  if (url === 'memory:') return new MemoryStore();
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === ':memory:') return SqliteStore.open(':memory:');
    if (!path.startsWith('/')) throw new StoreUrlError(url, 'the sqlite path must be absolute');
    return SqliteStore.open(path);
  }
  if (url.startsWith('etcd://')) {
    // Registry keys start with /registry themselves; the store prefix keeps Pontoon's apart.
    return EtcdStore.open(parseEtcdEndpoints(url), { keyPrefix: '/pontoon' });
  }
  throw new StoreUrlError(url, 'unknown scheme');
}

/** `etcd://a:2379,b:2379` → `["http://a:2379", "http://b:2379"]`; `unix:/path` entries stay as they are (a gRPC target). */
export function parseEtcdEndpoints(url: string): string[] {
  const hosts = url.slice('etcd://'.length).replace(/\/+$/, '');
  if (hosts === '') throw new StoreUrlError(url, 'no etcd endpoint given');
  return hosts.split(',').map((hostPort) => {
    if (hostPort.startsWith('unix:/')) return `unix://${hostPort.slice('unix:'.length).replace(/^\/+/, '/')}`;
    // host:port, [v6]:port; the port is required because etcd has no well-known default here
    // that a reader of the flag could be sure of (2379 is only a convention).
    const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hostPort.trim());
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) throw new StoreUrlError(url, `"${hostPort}" is not host:port`);
    return `http://${match[1]}:${port}`;
  });
}
