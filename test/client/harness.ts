/** Shared pieces of the client tests: objects to write, temp dirs, polling, an apiserver to restart. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../../src/api/meta.js';
import type { Pod } from '../../src/api/types.js';
import { startApiServer, type ApiServerOptions, type RunningApiServer } from '../../src/apiserver/server.js';
import { createLogger } from '../../src/lib/log.js';
import { poll } from '../helpers/wait.js';

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `pontoon-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function podObject(name: string, options: { namespace?: string; labels?: Record<string, string>; nodeName?: string } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: options.namespace ?? 'default', ...(options.labels ? { labels: options.labels } : {}) },
    spec: {
      containers: [{ name: 'c', image: 'busybox' }],
      ...(options.nodeName ? { nodeName: options.nodeName } : {}),
    },
  } as Pod;
}

export function configMap(name: string, data: Record<string, string>, labels?: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ...(labels ? { labels } : {}) }, data };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  return poll(what, check, { timeoutMs, intervalMs: 20 });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An in-process apiserver with logs silenced unless PONTOON_TEST_LOG_LEVEL says otherwise. */
export function startServer(options: ApiServerOptions): Promise<RunningApiServer> {
  return startApiServer({
    log: createLogger('apiserver-test', { level: process.env['PONTOON_TEST_LOG_LEVEL'] ?? 'silent' }),
    ...options,
  });
}

export const quietLog = (): ReturnType<typeof createLogger> =>
  createLogger('client-test', { level: process.env['PONTOON_TEST_LOG_LEVEL'] ?? 'silent' });

/** A TCP port free right now on 127.0.0.1, so a restarted apiserver can listen where the first one did. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
