/** An in-process apiserver for tests, and a tiny raw HTTP client that shows status and headers. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { startApiServer, type ApiServerOptions, type RunningApiServer } from '../../src/apiserver/server.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { openStore } from '../../src/apiserver/store/open.js';
import type { Store } from '../../src/apiserver/store/store.js';
import { createLogger } from '../../src/lib/log.js';
import { startEtcd } from '../helpers/etcd.js';

export interface Answer<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: T;
}

export interface RequestOptions {
  contentType?: string;
  accept?: string;
  token?: string;
  /** Raw body text instead of JSON.stringify(body). */
  raw?: string | Buffer;
  ca?: string;
  socketPath?: string;
}

/** One request against `base` (http(s)://host:port); never throws on a non-2xx answer. */
export function call<T = unknown>(base: string, method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<Answer<T>> {
  const url = new URL(path, base.startsWith('unix:') ? 'http://localhost' : base);
  const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const headers: Record<string, string> = {};
  if (payload !== undefined) {
    headers['Content-Type'] = options.contentType ?? 'application/json';
    // Node sends DELETE bodies unframed unless told their length.
    headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  if (options.accept) headers['Accept'] = options.accept;
  if (options.token) headers['Authorization'] = `Bearer ${options.token}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      {
        ...(base.startsWith('unix:') ? { socketPath: base.slice(5) } : { hostname: url.hostname, port: url.port }),
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        ...(options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // text answer
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface TestApi {
  server: RunningApiServer;
  url: string;
  store: Store;
  call<T = unknown>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<Answer<T>>;
  close(): Promise<void>;
}

export async function startTestApi(store: Store, options: Partial<ApiServerOptions> = {}): Promise<TestApi> {
  const server = await startApiServer({
    store,
    log: createLogger('apiserver-test', { level: process.env['PONTOON_TEST_LOG_LEVEL'] ?? 'silent' }),
    closeStore: true,
    ...options,
  });
  return {
    server,
    url: server.url,
    store: server.store,
    call: (method, path, body, callOptions) => call(server.url, method, path, body, callOptions),
    close: () => server.close(),
  };
}

export interface TestStore {
  store: Store;
  /** Stops what backs the store (etcd), after the apiserver closed it. */
  cleanup(): Promise<void>;
}

/**
 * The stores the REST semantics run against: the reference fake, SQLite, and a real etcd (a
 * throwaway one per suite). Always all three: scripts/setup.sh installs etcd-server, and a
 * variant that cannot start fails its suite instead of quietly dropping out of it.
 */
export function storeKinds(): [string, () => Promise<TestStore>][] {
  return [
    ['memory', async () => ({ store: new MemoryStore(), cleanup: async () => undefined })],
    ['sqlite', async () => ({ store: await openStore('sqlite::memory:'), cleanup: async () => undefined })],
    [
      'etcd',
      async () => {
        const etcd = await startEtcd();
        try {
          return { store: await openStore(`etcd://${new URL(etcd.endpoint).host}`), cleanup: () => etcd.stop() };
        } catch (err) {
          await etcd.stop();
          throw err;
        }
      },
    ],
  ];
}

export function pod(name: string, extra: { labels?: Record<string, string>; nodeName?: string; finalizers?: string[] } = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}), ...(extra.finalizers ? { finalizers: extra.finalizers } : {}) },
    spec: {
      containers: [{ name: 'c', image: 'busybox', ports: [{ containerPort: 80, name: 'http' }] }],
      ...(extra.nodeName ? { nodeName: extra.nodeName } : {}),
    },
  };
}

export function deployment(name: string, replicas = 1): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image: 'busybox:1', ports: [{ containerPort: 8080 }] }] } },
    },
  };
}
