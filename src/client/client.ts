/**
 * The typed apiserver client every daemon uses. It speaks plain Kubernetes REST, so it works
 * against Pontoon's apiserver and a real one alike, over three transports:
 *   - `unix:/run/pontoon/<cluster>/apiserver.sock` — how node namespaces reach the control
 *     plane without a route to it (AF_UNIX paths are not bound to a network namespace);
 *   - `https://host:port` with a bearer token and the cluster CA (what kubectl uses);
 *   - `http://host:port` for tests.
 * Watches are one long-lived request each, decoded as newline-delimited JSON events.
 *
 * Several apiservers (`--apiservers 2`): `server` may list several addresses separated by
 * commas, and a kubeconfig may name more in its cluster's `pontoon.io/servers` extension
 * (kubectl ignores extensions and uses `server`, the first). The client sticks to one
 * server and moves to the next when it cannot reach it, as client-go does behind a load
 * balancer — here without the load balancer. A request is re-sent to the next server only
 * when that cannot apply it twice: always when the connection was refused (nothing was sent),
 * and for reads, PUT and DELETE (guarded by resourceVersion, or idempotent) on any
 * connection failure; a POST or PATCH whose connection broke after it was sent fails as
 * before. A watch that fails moves the client too, so the informer's re-watch goes to the
 * next server.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeList, KubeObject, Status, WatchEvent } from '../api/meta.js';
import { RESOURCE, resourcePath, type ResourceDescriptor, type Subresource } from '../api/resources.js';
import { inClusterConfig, runningInCluster } from './in-cluster.js';
import type { TokenRequest, TokenRequestSpec } from '../api/serviceaccount.js';
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
  /** `http://h:p`, `https://h:p` or `unix:/path/to.sock`; several, comma-separated, to fail over between. */
  server: string;
  /** More servers to fail over to (the kubeconfig's `pontoon.io/servers` extension). */
  servers?: string[];
  token?: string;
  /** PEM of the CA that signed the server's certificate. */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  /** PEM client certificate and key (kubeconfig client-certificate(-data)/client-key(-data)): a node's credentials. */
  cert?: string;
  key?: string;
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
  options: RequestOptions & { ca?: string; rejectUnauthorized?: boolean; cert?: string; key?: string };
}

/** Connection errors after which nothing reached the server: any request may go elsewhere. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Connection errors that may come after the request was sent. */
const BROKEN_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
/** Methods a second attempt cannot apply twice (PUT carries a resourceVersion or is a plain replace). */
const REPEATABLE_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

export const SERVERS_EXTENSION = 'pontoon.io/servers';

/** Every server of a config, first the one `server` names. */
export function serversOf(config: ClientConfig): string[] {
  const listed = [...config.server.split(','), ...(config.servers ?? [])].map((s) => s.trim()).filter((s) => s !== '');
  return [...new Set(listed)];
}

export class KubeClient implements KubeApi {
  private readonly endpoints: Endpoint[];
  private current = 0;

  constructor(readonly config: ClientConfig) {
    this.endpoints = serversOf(config).map((server) => parseServer({ ...config, server }));
    if (this.endpoints.length === 0) throw new ClientConfigError('no apiserver address given');
  }

  /** The server requests go to now (after failovers, not necessarily the first). */
  get server(): string {
    return serversOf(this.config)[this.current] ?? this.config.server;
  }

  private get endpoint(): Endpoint {
    return this.endpoints[this.current]!;
  }

  /** Moves to the next server, unless another request already did since `from` was current. */
  private failOver(from: number): void {
    if (this.endpoints.length > 1 && this.current === from) this.current = (from + 1) % this.endpoints.length;
  }

  private mayResend(method: string, err: unknown): boolean {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === undefined) return false;
    return NOT_SENT_CODES.has(code) || (BROKEN_CODES.has(code) && REPEATABLE_METHODS.has(method));
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

  createToken(namespace: string, serviceAccount: string, spec: TokenRequestSpec): Promise<TokenRequest> {
    const request = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', metadata: { name: serviceAccount, namespace }, spec };
    return this.request<TokenRequest>('POST', resourcePath(RESOURCE.serviceaccounts, namespace, serviceAccount, 'token'), request);
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
    const usedEndpoint = this.current;
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== undefined) this.failOver(usedEndpoint);
      finish(err);
    });
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
  async requestText(method: string, path: string, payload?: string, contentType = 'application/json'): Promise<string> {
    // One try per server at most: when all of them are down, say so rather than loop.
    for (let tries = 1; ; tries++) {
      const used = this.current;
      try {
        return await this.requestOnce(method, path, payload, contentType);
      } catch (err) {
        if (err instanceof ApiError || tries >= this.endpoints.length || !this.mayResend(method, err)) {
          if (!(err instanceof ApiError)) this.failOver(used);
          throw err;
        }
        this.failOver(used);
      }
    }
  }

  private requestOnce(method: string, path: string, payload: string | undefined, contentType: string): Promise<string> {
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
      ...(secure && config.cert && config.key ? { cert: config.cert, key: config.key } : {}),
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
 * CA (inline base64 or a file relative to the kubeconfig), bearer token (inline or a file),
 * client certificate and key (inline base64 or files).
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
  const servers = serversExtension(cluster['extensions']);
  if (servers.length > 0) config.servers = servers;
  const caData = cluster['certificate-authority-data'];
  config.ca = typeof caData === 'string' ? Buffer.from(caData, 'base64').toString('utf8') : fileText(cluster['certificate-authority']);
  if (cluster['insecure-skip-tls-verify'] === true) config.insecureSkipTlsVerify = true;
  const token = typeof user['token'] === 'string' ? user['token'] : fileText(user['tokenFile'])?.trim();
  if (token) config.token = token;
  const pem = (dataKey: string, fileKey: string): string | undefined => {
    const data = user[dataKey];
    return typeof data === 'string' ? Buffer.from(data, 'base64').toString('utf8') : fileText(user[fileKey]);
  };
  const cert = pem('client-certificate-data', 'client-certificate');
  const key = pem('client-key-data', 'client-key');
  if (cert && key) {
    config.cert = cert;
    config.key = key;
  }
  return config;
}

/** `extensions: [{name: pontoon.io/servers, extension: {servers: [...]}}]` (kubeconfig's NamedExtension list). */
function serversExtension(extensions: unknown): string[] {
  if (!Array.isArray(extensions)) return [];
  const named = extensions.find((e): e is { extension?: { servers?: unknown } } => typeof e === 'object' && e !== null && (e as { name?: unknown }).name === SERVERS_EXTENSION);
  const servers = named?.extension?.servers;
  return Array.isArray(servers) ? servers.filter((s): s is string => typeof s === 'string') : [];
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
  // In a pod (a DaemonSet agent), with no flags: the ServiceAccount, as client-go does.
  else if (runningInCluster()) config = inClusterConfig();
  else throw new ClientConfigError('no apiserver given: pass --kubeconfig or --server (or run in a pod: in-cluster config)');
  if (flags.token) config.token = flags.token;
  else if (flags.tokenFile) config.token = readFileSync(flags.tokenFile, 'utf8').trim();
  if (userAgent) config.userAgent = userAgent;
  return new KubeClient(config);
}
