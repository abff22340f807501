/**
 * Deferred loading of Node built-ins that are not in Node's startup snapshot. A CNI plugin is
 * a fresh process per call: `node:crypto` costs ~9 ms and `node:child_process` ~5 ms to load
 * (bench/cni profile), so code paths that rarely need them (masquerade, delegation) load them
 * on first use instead of at startup. The same for etcd3: importing it (gRPC, protobufjs
 * parsing etcd's .proto files) costs ~160 ms, more than Node's own start, and every `pontoon`
 * command paid it whether or not it talks to etcd.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export function lazy<T>(id: string): () => T {
  let module: T | undefined;
  return () => (module ??= load(id) as T);
}

export const childProcess = lazy<typeof import('node:child_process')>('node:child_process');
export const crypto = lazy<typeof import('node:crypto')>('node:crypto');
export const etcd3 = lazy<typeof import('etcd3')>('etcd3');
