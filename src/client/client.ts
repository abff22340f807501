/**
 * The typed apiserver client every daemon uses. It speaks plain Kubernetes REST, so it works
 * against Pontoon's apiserver and a real one alike, over three transports:
 *   - `unix:/run/pontoon/<cluster>/apiserver.sock` — how node namespaces reach the control
 *     plane without a route to it (AF_UNIX paths are not bound to a network namespace);
 *   - `https://host:port` with a bearer token and the cluster CA (what kubectl uses);
 *   - `http://host:port` for tests.
 * Watches are one long-lived request each, decoded as newline-delimited JSON events.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeList, KubeObject, Status, WatchEvent } from '../api/meta.js';
import { RESOURCE, resourcePath, type ResourceDescriptor, type Subresource } from '../api/resources.js';
import { PontoonError } from '../lib/errors.js';
import {
  ApiError,
  type DeleteOptions,
  type KubeApi,
  type ListOptions,
  type PatchType,
  type WatchCallbacks,
  type WatchHandle,
  type WatchOptions,
} from './api.js';

export interface ClientConfig {
  /** `http://h:p`, `https://h:p` or `unix:/path/to.sock`. */
  server: string;
  token?: string;
  /** PEM of the CA that signed the server's certificate. */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  /** Per-request timeout for everything but watches. */
  timeoutMs?: number;
  /** Sent as User-Agent, so apiserver logs say who asked. */
  userAgent?: string;
}

export class ClientConfigError extends PontoonError {}

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

interface Endpoint {
  secure: boolean;
  options: RequestOptions & { ca?: string; rejectUnauthorized?: boolean };
}

export class KubeClient implements KubeApi {
  private readonly endpoint: Endpoint;

  constructor(readonly config: ClientConfig) {
    this.endpoint = parseServer(config);
  }

  async get<T extends KubeObject>(resource: ResourceDescriptor, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', resourcePath(resource, namespace, name));
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject>(resource: ResourceDescriptor, namespace?: string, options: ListOptions = {}): Promise<KubeList<T>> {
    const query = new URLSearchParams();
    if (options.labelSelector) query.set('labelSelector', options.labelSelector);
    if (options.fieldSelector) query.set('fieldSelector', options.fieldSelector);
    if (options.resourceVersion !== undefined) query.set('resourceVersion', options.resourceVersion);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    return this.request<KubeList<T>>('GET', withQuery(resourcePath(resource, namespace), query));
  }

  create<T extends KubeObject>(resource: ResourceDescriptor, object: T): Promise<T> {
    const body = withTypeMeta(resource, object);
    return this.request<T>('POST', resourcePath(resource, object.metadata.namespace), body);
  }

  update<T extends KubeObject>(resource: ResourceDescriptor, object: T, subresource?: Subresource): Promise<T> {
    const { name, namespace } = object.metadata;
    if (!name) throw new ClientConfigError(`cannot update a ${resource.kind} without metadata.name`);
    return this.request<T>('PUT', resourcePath(resource, namespace, name, subresource), withTypeMeta(resource, object));
  }

  patch<T extends KubeObject>(
    resource: ResourceDescriptor,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    type: PatchType,
    subresource?: Subresource,
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(resource, namespace, name, subresource), patch, PATCH_CONTENT_TYPE[type]);
  }

  async delete(resource: ResourceDescriptor, name: string, namespace?: string, options: DeleteOptions = {}): Promise<boolean> {
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', ...options };
    try {
      await this.request('DELETE', resourcePath(resource, namespace, name), body);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return false;
      throw err;
    }
  }

  async bind(namespace: string, podName: string, nodeName: string): Promise<void> {
    const binding = {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name: podName, namespace },
      target: { apiVersion: 'v1', kind: 'Node', name: nodeName },
    };
    await this.request('POST', `${resourcePath(RESOURCE.pods, namespace, podName)}/binding`, binding);
  }

  watch<T extends KubeObject>(
    resource: ResourceDescriptor,
    namespace: string | undefined,
    options: WatchOptions,
    callbacks: WatchCallbacks<T>,
  ): WatchHandle {
    const query = new URLSearchParams({ watch: 'true' });
    if (options.labelSelector) query.set('labelSelector', options.labelSelector);
    if (options.fieldSelector) query.set('fieldSelector', options.fieldSelector);
    if (options.resourceVersion !== undefined) query.set('resourceVersion', options.resourceVersion);
    if (options.allowWatchBookmarks) query.set('allowWatchBookmarks', 'true');
    if (options.timeoutSeconds !== undefined) query.set('timeoutSeconds', String(options.timeoutSeconds));

    let closed = false;
    const finish = (err?: unknown): void => {
      if (closed) return;
      closed = true;
      callbacks.onClose(err);
    };
    const req = this.send('GET', withQuery(resourcePath(resource, namespace), query), undefined, undefined, (response) => {
      if ((response.statusCode ?? 500) >= 300) {
        readBody(response).then(
          (text) => finish(new ApiError(statusFromBody(response.statusCode ?? 500, text))),
          (err: unknown) => finish(err),
        );
        return;
      }
      let buffered = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while (!closed && (newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line === '') continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            req.destroy();
            finish(new PontoonError(`watch of ${resource.resource} sent a line that is not JSON: ${line.slice(0, 120)}`));
            return;
          }
          if (event.type === 'ERROR') {
            req.destroy();
            finish(new ApiError(event.object as unknown as Status));
            return;
          }
          callbacks.onEvent(event);
        }
      });
      response.on('end', () => finish());
      response.on('error', (err) => finish(err));
      response.on('close', () => finish());
    });
    req.on('error', (err) => finish(err));
    req.end();
    return {
      stop: () => {
        closed = true;
        req.destroy();
      },
    };
  }

  /** One request; resolves with the decoded JSON body, rejects with ApiError on non-2xx. */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const text = await this.requestText(method, path, body === undefined ? undefined : JSON.stringify(body), contentType);
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new PontoonError(`apiserver answered ${method} ${path} with a body that is not JSON`);
    }
  }

  /** One request whose answer is text (`/readyz`, `pods/x/log`); rejects with ApiError on non-2xx. */
  requestText(method: string, path: string, payload?: string, contentType = 'application/json'): Promise<string> {
    const timeoutMs = this.config.timeoutMs ?? 30_000;
    return new Promise<string>((resolvePromise, reject) => {
      const req = this.send(method, path, payload, contentType, (response) => {
        readBody(response).then((text) => {
          const code = response.statusCode ?? 500;
          if (code >= 300) reject(new ApiError(statusFromBody(code, text)));
          else resolvePromise(text);
        }, reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new PontoonError(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  private send(
    method: string,
    path: string,
    payload: string | undefined,
    contentType: string | undefined,
    onResponse: (response: IncomingMessage) => void,
  ): ReturnType<typeof httpRequest> {
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': this.config.userAgent ?? 'pontoon' };
    if (this.config.token) headers['Authorization'] = `Bearer ${this.config.token}`;
    if (payload !== undefined) {
      headers['Content-Type'] = contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const options = { ...this.endpoint.options, method, path, headers };
    return this.endpoint.secure ? httpsRequest(options, onResponse) : httpRequest(options, onResponse);
  }
}

function withTypeMeta<T extends KubeObject>(resource: ResourceDescriptor, object: T): T {
  const apiVersion = resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
  return { ...object, apiVersion: object.apiVersion ?? apiVersion, kind: object.kind ?? resource.kind };
}

function withQuery(path: string, query: URLSearchParams): string {
  const text = query.toString();
  return text === '' ? path : `${path}?${text}`;
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => resolvePromise(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}

/** The Status an error answer carries, or one made up from the code when the body is not one. */
function statusFromBody(code: number, text: string): Status {
  try {
    const parsed = JSON.parse(text) as Partial<Status>;
    if (parsed.kind === 'Status') return { ...parsed, code: parsed.code ?? code } as Status;
  } catch {
    // not JSON: fall through
  }
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', code, message: text.trim() || `HTTP ${code}` };
}

function parseServer(config: ClientConfig): Endpoint {
  const { server } = config;
  if (server.startsWith('unix:')) {
    const socketPath = server.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    return { secure: false, options: { socketPath } };
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ClientConfigError(`apiserver address "${server}" is not a URL (want http://, https:// or unix:/path)`);
  }
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') {
    throw new ClientConfigError(`apiserver address "${server}" has scheme ${url.protocol} (want http, https or unix)`);
  }
  return {
    secure,
    options: {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      ...(secure ? { ca: config.ca, rejectUnauthorized: !config.insecureSkipTlsVerify } : {}),
    },
  };
}

interface KubeconfigFile {
  'current-context'?: string;
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster: string; user?: string } }[];
}

/**
 * Reads the current context of a kubeconfig (YAML or JSON, as kubectl writes them): server,
 * CA (inline base64 or a file relative to the kubeconfig), bearer token (inline or a file).
 */
export function loadKubeconfig(path: string, contextName?: string): ClientConfig {
  let file: KubeconfigFile;
  try {
    file = parseYaml(readFileSync(path, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new ClientConfigError(`failed to read kubeconfig "${path}": ${(err as Error).message}`, { cause: err });
  }
  const wanted = contextName ?? file['current-context'];
  const context = file.contexts?.find((c) => c.name === wanted)?.context ?? file.contexts?.[0]?.context;
  const cluster = file.clusters?.find((c) => c.name === context?.cluster)?.cluster ?? file.clusters?.[0]?.cluster;
  if (!cluster || typeof cluster['server'] !== 'string') {
    throw new ClientConfigError(`kubeconfig "${path}" names no cluster server for context "${wanted ?? ''}"`);
  }
  const user = file.users?.find((u) => u.name === context?.user)?.user ?? {};
  const base = dirname(path);
  const fileText = (value: unknown): string | undefined =>
    typeof value === 'string' ? readFileSync(resolve(base, value), 'utf8') : undefined;
  const config: ClientConfig = { server: cluster['server'] };
  const caData = cluster['certificate-authority-data'];
  config.ca = typeof caData === 'string' ? Buffer.from(caData, 'base64').toString('utf8') : fileText(cluster['certificate-authority']);
  if (cluster['insecure-skip-tls-verify'] === true) config.insecureSkipTlsVerify = true;
  const token = typeof user['token'] === 'string' ? user['token'] : fileText(user['tokenFile'])?.trim();
  if (token) config.token = token;
  return config;
}

export interface ClientFlags {
  kubeconfig?: string;
  server?: string;
  token?: string;
  tokenFile?: string;
}

/** The client a daemon builds from its command-line flags: `--kubeconfig` or `--server` (+ token). */
export function clientFromFlags(flags: ClientFlags, userAgent?: string): KubeClient {
  let config: ClientConfig;
  if (flags.kubeconfig) config = loadKubeconfig(flags.kubeconfig);
  else if (flags.server) config = { server: flags.server };
  else throw new ClientConfigError('no apiserver given: pass --kubeconfig or --server');
  if (flags.token) config.token = flags.token;
  else if (flags.tokenFile) config.token = readFileSync(flags.tokenFile, 'utf8').trim();
  if (userAgent) config.userAgent = userAgent;
  return new KubeClient(config);
}
