/**
 * The apiserver: HTTP(S) on a TCP address and plain HTTP on a unix socket, both serving the
 * same handler. `startApiServer` is what `pontoon apiserver` runs and what tests and
 * `cluster up` may embed in-process.
 *
 * Request flow: authenticate (401 on a bad token) → fixed paths (version, health, discovery,
 * OpenAPI) → resource URL → authorize (anonymous may only read: 403) → verb handler → answer.
 * Every failure is thrown as an ApiStatusError and written as a Status in one place.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { DeleteOptions } from '../api/meta.js';
import { describeError, PontoonError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { Authenticator, loadTokenFile, type UserInfo } from './auth.js';
import { bootstrapCluster } from './bootstrap.js';
import { Cascader } from './cascade.js';
import { DEFAULT_EVENT_TTL_SECONDS, EventExpiry } from './event-ttl.js';
import {
  AGGREGATED_DISCOVERY_V2,
  aggregatedDiscovery,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  SERVER_VERSION,
} from './discovery.js';
import {
  booleanParam,
  decodeJsonObject,
  integerParam,
  MAX_REQUEST_BODY_BYTES,
  mediaType,
  negotiateShape,
  queryOf,
  readBody,
  requireJsonBody,
  sendJson,
  sendStatus,
  sendText,
  wantsAggregatedDiscovery,
} from './http.js';
import { ServiceIpAllocator } from './kinds/service-ips.js';
import { NamespaceLifecycle } from './namespaces.js';
import { buildOpenApiV3, type OpenApiV3 } from './openapi.js';
import { buildOpenApiV2, OPENAPI_V2_PROTOBUF, type OpenApiV2 } from './openapi-v2.js';
import { servePodLog } from './podlog.js';
import { decodeProtobufObject, PROTOBUF_CONTENT_TYPE, ProtobufDecodeError, ProtobufUnsupportedError } from './protobuf.js';
import { parseIncludeObject, renderList, renderObject } from './render.js';
import { parseResourcePath, type ResourceRequest } from './request.js';
import { Registry, storagePrefix, type RegistryHooks, type RemovalOptions, type WriteOptions } from './registry.js';
import { parseSelection } from './selection.js';
import { ServiceAllocations } from './services.js';
import {
  ApiStatusError,
  badRequest,
  forbidden,
  methodNotAllowed,
  pathNotFound,
  qualifiedResource,
  statusOf,
  unauthorized,
  unsupportedMediaType,
} from './status.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { parseFieldValidation } from './strict.js';
import { bindPod, getScale, isScalable, writeScale } from './subresources.js';
import { defaultWatchTimeoutMs, serveWatch } from './watch.js';
import { DEFAULT_WATCH_CACHE_EVENTS, WatchCache } from './watch-cache.js';

/** The apiserver cannot start as configured; the message names the flag. */
export class ApiServerConfigError extends PontoonError {}

export interface ApiServerOptions {
  /** A Store, or a `--store` URL (`sqlite:/path`, `sqlite::memory:`, `memory:`, `etcd://h:p`). */
  store: Store | string;
  /** `host:port` for TCP; port 0 picks a free one. Default `127.0.0.1:0`; `false` for socket only. */
  listen?: string | false;
  /** Also serve plain HTTP on this unix socket path (a stale socket file is replaced). */
  socketPath?: string;
  /** Static token CSV; without it every request is allowed. */
  tokensFile?: string;
  /** PEM file paths: with both, TCP serves HTTPS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  serviceCidr?: string;
  nodePortRange?: string;
  log?: Logger;
  /** How often watches with allowWatchBookmarks get a BOOKMARK. Default 60 s. */
  bookmarkIntervalMs?: number;
  /** Watch length when the client gives no timeoutSeconds. Default 5-10 minutes. */
  watchTimeoutMs?: () => number;
  /** Recent events the watch cache keeps per resource for watches to resume from; 0 turns the cache off. Default 1000. */
  watchCacheEvents?: number;
  /** Create the system namespaces and the kubernetes Service. Default true. */
  bootstrap?: boolean;
  /** Close the store on close(); default: only when it was opened from a URL. */
  closeStore?: boolean;
  maxBodyBytes?: number;
  /** Events older than this are deleted (upstream's --event-ttl). Default one hour. */
  eventTtlSeconds?: number;
}

export interface RunningApiServer {
  /** `http(s)://127.0.0.1:<port>`, or `unix:<path>` when only the socket listens. */
  url: string;
  port?: number;
  socketPath?: string;
  store: Store;
  registry: Registry;
  close(): Promise<void>;
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
  if (!match) throw new ApiServerConfigError(`invalid --listen address "${listen}": want host:port`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port: Number(match[3]) };
}

/** Removes a socket file no one is listening on (left by a crash); refuses a live one. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new ApiServerConfigError(`another process is serving on ${path} (--socket)`);
  unlinkSync(path);
}

function listenOn(server: Server, target: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in target) server.listen(target.path, done);
    else server.listen(target.port, target.host, done);
  });
}

const READ_METHODS = new Set(['GET', 'HEAD']);

export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  const log = options.log ?? createLogger('apiserver');
  const ownsStore = typeof options.store === 'string';
  const store = typeof options.store === 'string' ? await openStore(options.store) : options.store;
  const authenticator = new Authenticator(options.tokensFile ? loadTokenFile(options.tokensFile) : undefined);

  const hooks: RegistryHooks = {};
  const registry = new Registry(store, hooks);
  const allocations = new ServiceAllocations(
    new ServiceIpAllocator({
      ...(options.serviceCidr ? { serviceCidr: options.serviceCidr } : {}),
      ...(options.nodePortRange ? { nodePortRange: options.nodePortRange } : {}),
    }),
    store,
    log,
  );
  const cascader = new Cascader(registry, log);
  Object.assign(hooks, allocations.hooks(), {
    afterRemove: (descriptor: ResourceDescriptor, object: KubeObject, policy: DeleteOptions['propagationPolicy']) =>
      cascader.ownerRemoved(descriptor, object, policy),
  } satisfies Pick<RegistryHooks, 'afterRemove'>);
  const namespaces = new NamespaceLifecycle(registry, log);
  const eventExpiry = new EventExpiry(registry, options.eventTtlSeconds ?? DEFAULT_EVENT_TTL_SECONDS, log);

  const watchCacheEvents = options.watchCacheEvents ?? DEFAULT_WATCH_CACHE_EVENTS;
  const watchCache = watchCacheEvents > 0 ? new WatchCache(store, { eventsPerResource: watchCacheEvents, log }) : undefined;
  const api = new ApiHandler({
    registry,
    store,
    ...(watchCache ? { watchCache } : {}),
    namespaces,
    authenticator,
    openapi: buildOpenApiV3(),
    openapiV2: buildOpenApiV2(),
    log,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    watchTimeoutMs: options.watchTimeoutMs ?? defaultWatchTimeoutMs,
    maxBodyBytes: options.maxBodyBytes ?? MAX_REQUEST_BODY_BYTES,
  });

  const servers: Server[] = [];
  const cleanup = async (): Promise<void> => {
    for (const server of servers) {
      server.close();
      server.closeAllConnections();
    }
    allocations.stop();
    await watchCache?.stop();
    await namespaces.stop();
    await eventExpiry.stop();
    await cascader.settle().catch(() => undefined);
    if (options.socketPath && existsSync(options.socketPath)) {
      try {
        unlinkSync(options.socketPath);
      } catch {
        // already gone
      }
    }
    if (options.closeStore ?? ownsStore) await store.close();
  };

  try {
    await allocations.start();
    let port: number | undefined;
    let url: string | undefined;
    const listen = options.listen === undefined ? '127.0.0.1:0' : options.listen;
    const tls = options.tlsCertFile && options.tlsKeyFile;
    if (listen !== false) {
      const handler = (req: IncomingMessage, res: ServerResponse): void => api.handle(req, res);
      const server = tls
        ? createHttpsServer({ cert: readFileSync(options.tlsCertFile!), key: readFileSync(options.tlsKeyFile!) }, handler)
        : createHttpServer(handler);
      servers.push(server);
      const address = parseListen(listen);
      await listenOn(server, address);
      port = (server.address() as AddressInfo).port;
      const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host.includes(':') ? `[${address.host}]` : address.host;
      url = `${tls ? 'https' : 'http'}://${host}:${port}`;
    }
    if (options.socketPath) {
      await clearStaleSocket(options.socketPath);
      const server = createHttpServer((req, res) => api.handle(req, res));
      servers.push(server);
      await listenOn(server, { path: options.socketPath });
      url ??= `unix:${options.socketPath}`;
    }
    if (!url) throw new ApiServerConfigError('nothing to listen on: give --listen or --socket');
    for (const server of servers) {
      // Watches are long-lived responses; only idle keep-alive connections time out.
      server.requestTimeout = 0;
      server.headersTimeout = 60_000;
      server.keepAliveTimeout = 65_000;
    }

    if (options.bootstrap ?? true) {
      await bootstrapCluster(registry, { kubernetesServiceIP: allocations.allocator.kubernetesServiceIP, apiserverPort: port ?? 443 }, log);
    }
    namespaces.start();
    eventExpiry.start();
    api.ready = true;
    log.info({ url, socket: options.socketPath, store: store.description, auth: authenticator.enabled, tls: !!tls }, 'apiserver serving');
    return {
      url,
      ...(port !== undefined ? { port } : {}),
      ...(options.socketPath ? { socketPath: options.socketPath } : {}),
      store,
      registry,
      close: async () => {
        api.ready = false;
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

interface HandlerDeps {
  registry: Registry;
  store: Store;
  watchCache?: WatchCache;
  namespaces: NamespaceLifecycle;
  authenticator: Authenticator;
  openapi: OpenApiV3;
  openapiV2: OpenApiV2;
  log: Logger;
  bookmarkIntervalMs: number;
  watchTimeoutMs: () => number;
  maxBodyBytes: number;
}

/** What a verb needs from the request, parsed once. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  query: Map<string, string>;
  target: ResourceRequest;
  user: UserInfo;
}

class ApiHandler {
  ready = false;

  constructor(private readonly deps: HandlerDeps) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    res.on('finish', () => {
      this.deps.log.debug({ method: req.method, url: req.url, code: res.statusCode, ms: Date.now() - started }, 'request');
    });
    this.route(req, res).catch((err: unknown) => {
      const status = statusOf(err);
      if (status.code >= 500) this.deps.log.error({ method: req.method, url: req.url, err: describeError(err) }, 'request failed');
      // Drain what the client is still sending so the error answer reaches it.
      if (!req.complete) req.resume();
      sendStatus(res, status);
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://apiserver');
    const auth = this.deps.authenticator.authenticate(req);
    if (!auth.ok) throw unauthorized();
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '') || '/';

    if (this.fixedPath(req, res, method, path)) return;
    const target = parseResourcePath(path);
    if (!target) throw pathNotFound();
    const call: Call = { req, res, url, query: queryOf(url), target, user: auth.user };
    if (!READ_METHODS.has(method) && !this.deps.authenticator.mayWrite(auth.user)) throw this.refuse(call, method);
    await this.resource(call, method);
  }

  /** Version, health, discovery and OpenAPI; true when answered. */
  private fixedPath(req: IncomingMessage, res: ServerResponse, method: string, path: string): boolean {
    const get = (): void => {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed();
    };
    if (path === '/version') {
      get();
      sendJson(res, 200, SERVER_VERSION);
      return true;
    }
    if (/^\/(healthz|livez|readyz)(\/.*)?$/.test(path)) {
      get();
      if (path.startsWith('/readyz') && !this.ready) sendText(res, 500, '[-]bootstrap failed: not finished\nreadyz check failed\n');
      else sendText(res, 200, 'ok');
      return true;
    }
    const accept = req.headers.accept;
    if (path === '/api' || path === '/apis') {
      get();
      if (wantsAggregatedDiscovery(accept)) sendJson(res, 200, aggregatedDiscovery(path === '/api'), AGGREGATED_DISCOVERY_V2);
      else sendJson(res, 200, path === '/api' ? apiVersions(req.headers.host ?? '127.0.0.1') : apiGroupList());
      return true;
    }
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+)(?:\/([^/]+))?)$/.exec(path);
    if (discovery) {
      get();
      const body = discovery[1] ? apiResourceList('', discovery[1]) : discovery[3] ? apiResourceList(discovery[2]!, discovery[3]) : apiGroup(discovery[2]!);
      if (!body) throw pathNotFound();
      sendJson(res, 200, body);
      return true;
    }
    if (path === '/openapi/v3') {
      get();
      sendJson(res, 200, this.deps.openapi.index);
      return true;
    }
    if (path === '/openapi/v2') {
      get();
      // kubectl asks for protobuf only; anything else (a browser, curl) gets JSON.
      const { json, protobuf } = this.deps.openapiV2;
      const [contentType, body] = /proto-openapi\.spec\.v2/.test(accept ?? '') ? [OPENAPI_V2_PROTOBUF, protobuf] : ['application/json', json];
      res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    }
    if (path.startsWith('/openapi/')) {
      get();
      const document = this.deps.openapi.documents.get(path.slice(1));
      if (!document) throw pathNotFound();
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(document.body), ETag: `"${document.hash}"` });
      res.end(document.body);
      return true;
    }
    return false;
  }

  private refuse(call: Call, method: string): ApiStatusError {
    const { descriptor, namespace, name, subresource } = call.target;
    const verb = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' }[method] ?? method.toLowerCase();
    const what = subresource ? `${descriptor.resource}/${subresource}` : descriptor.resource;
    const scope = namespace !== undefined ? ` in the namespace "${namespace}"` : '';
    return forbidden(
      `${qualifiedResource(descriptor)}${name ? ` "${name}"` : ''} is forbidden: User "${call.user.name}" cannot ${verb} resource "${what}" in API group "${descriptor.group}"${scope}`,
      descriptor,
      name,
    );
  }

  private writeOptions(call: Call): WriteOptions {
    const fieldValidation = parseFieldValidation(call.query.get('fieldValidation'));
    if (!fieldValidation) {
      throw badRequest(`fieldValidation: Unsupported value: "${call.query.get('fieldValidation') ?? ''}": supported values: "Ignore", "Strict", "Warn"`);
    }
    const dryRun = call.query.get('dryRun');
    if (dryRun !== undefined && dryRun !== '' && dryRun !== 'All') throw badRequest(`dryRun: Unsupported value: "${dryRun}": supported values: "All"`);
    return { dryRun: dryRun === 'All', fieldValidation, warnings: [] };
  }

  /** An object body: JSON, or protobuf for the kinds kubectl's generator commands send. */
  private async jsonBody(call: Call): Promise<Record<string, unknown>> {
    if (mediaType(call.req.headers['content-type']) === PROTOBUF_CONTENT_TYPE) {
      const body = await readBody(call.req, this.deps.maxBodyBytes);
      try {
        return decodeProtobufObject(body);
      } catch (err) {
        if (err instanceof ProtobufDecodeError) throw badRequest(`failed to decode the protobuf body: ${err.message}`);
        if (err instanceof ProtobufUnsupportedError) {
          throw unsupportedMediaType(PROTOBUF_CONTENT_TYPE, ['application/json'], `${err.message}; send the object as JSON (kubectl create -f <manifest>)`);
        }
        throw err;
      }
    }
    requireJsonBody(call.req);
    return decodeJsonObject(await readBody(call.req, this.deps.maxBodyBytes));
  }

  private answer(call: Call, code: number, object: unknown, options?: WriteOptions): void {
    if (options?.warnings.length) {
      call.res.setHeader('Warning', options.warnings.map((w) => `299 - ${JSON.stringify(w)}`));
    }
    sendJson(call.res, code, object);
  }

  private answerObject(call: Call, code: number, object: KubeObject, options?: WriteOptions): void {
    const shape = negotiateShape(call.req.headers.accept);
    this.answer(call, code, renderObject(call.target.descriptor, object, shape, parseIncludeObject(call.query.get('includeObject'))), options);
  }

  private async resource(call: Call, method: string): Promise<void> {
    const { target } = call;
    const { descriptor, namespace, name, subresource } = target;
    const registry = this.deps.registry;
    const isWatch = target.legacyWatch || booleanParam(call.query.get('watch'));

    if (name === undefined) {
      if (method === 'GET' && isWatch) return this.watch(call);
      if (method === 'GET') return this.list(call);
      if (method === 'POST') {
        if (descriptor.namespaced && namespace === undefined) throw methodNotAllowed();
        const options = this.writeOptions(call);
        const created = await registry.create(descriptor, namespace, await this.jsonBody(call), options);
        return this.answerObject(call, 201, created, options);
      }
      if (method === 'DELETE') {
        const options = await this.deleteOptions(call);
        const selection = parseSelection(descriptor, call.query.get('labelSelector'), call.query.get('fieldSelector'));
        return this.answer(call, 200, await registry.deleteCollection(descriptor, namespace, selection, options));
      }
      throw methodNotAllowed();
    }
    if (descriptor.namespaced && namespace === undefined) throw pathNotFound();

    switch (subresource) {
      case undefined:
        return this.object(call, method, name, isWatch);
      case 'status':
        if (method === 'GET') return this.answerObject(call, 200, await registry.get(descriptor, namespace, name));
        if (method === 'PUT') {
          const options = this.writeOptions(call);
          return this.answerObject(call, 200, await registry.update(descriptor, namespace, name, await this.jsonBody(call), options, 'status'), options);
        }
        if (method === 'PATCH') {
          const options = this.writeOptions(call);
          const body = await readBody(call.req, this.deps.maxBodyBytes);
          const result = await registry.patch(descriptor, namespace, name, call.req.headers['content-type'] ?? '', body, options, 'status');
          return this.answerObject(call, 200, result.object, options);
        }
        throw methodNotAllowed();
      case 'binding': {
        if (method !== 'POST') throw methodNotAllowed();
        const options = this.writeOptions(call);
        await bindPod(registry, namespace!, name, await this.jsonBody(call), options);
        return this.answer(call, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
      }
      case 'scale': {
        if (!isScalable(descriptor)) throw pathNotFound();
        if (method === 'GET') return this.answer(call, 200, await getScale(registry, descriptor, namespace, name));
        const options = this.writeOptions(call);
        if (method === 'PUT') return this.answer(call, 200, await writeScale(registry, descriptor, namespace, name, { put: await this.jsonBody(call) }, options));
        if (method === 'PATCH') {
          const text = (await readBody(call.req, this.deps.maxBodyBytes)).toString('utf8');
          let patch: unknown;
          try {
            patch = JSON.parse(text);
          } catch (err) {
            throw badRequest(`error decoding patch: ${(err as Error).message}`);
          }
          const contentType = call.req.headers['content-type'] ?? '';
          return this.answer(call, 200, await writeScale(registry, descriptor, namespace, name, { patch, contentType }, options));
        }
        throw methodNotAllowed();
      }
      case 'log':
        if (method !== 'GET') throw methodNotAllowed();
        return servePodLog(call.res, registry, namespace!, name, call.query);
    }
  }

  private async object(call: Call, method: string, name: string, isWatch: boolean): Promise<void> {
    const { descriptor, namespace } = call.target;
    const registry = this.deps.registry;
    switch (method) {
      case 'GET':
        if (isWatch) return this.watch(call, name);
        return this.answerObject(call, 200, await registry.get(descriptor, namespace, name));
      case 'PUT': {
        const options = this.writeOptions(call);
        return this.answerObject(call, 200, await registry.update(descriptor, namespace, name, await this.jsonBody(call), options), options);
      }
      case 'PATCH': {
        const options = this.writeOptions(call);
        const body = await readBody(call.req, this.deps.maxBodyBytes);
        const result = await registry.patch(descriptor, namespace, name, call.req.headers['content-type'] ?? '', body, options);
        return this.answerObject(call, result.created ? 201 : 200, result.object, options);
      }
      case 'DELETE': {
        const options = await this.deleteOptions(call);
        const result =
          descriptor === RESOURCE.namespaces ? await this.deps.namespaces.delete(name, options) : await registry.delete(descriptor, namespace, name, options);
        return this.answer(call, 200, registry.deleteAnswer(descriptor, result));
      }
      default:
        throw methodNotAllowed();
    }
  }

  /** DeleteOptions from the body (kubectl sends one) and the query string (curl users do). */
  private async deleteOptions(call: Call): Promise<RemovalOptions> {
    const raw = await readBody(call.req, this.deps.maxBodyBytes);
    let body: Record<string, unknown> = {};
    if (raw.length > 0 && raw.toString('utf8').trim() !== '') {
      const type = mediaType(call.req.headers['content-type']);
      if (type !== '' && type !== 'application/json' && type !== '*/*') throw badRequest(`DeleteOptions must be JSON, got ${type}`);
      body = decodeJsonObject(raw);
    }
    const options: RemovalOptions = {};
    const grace = integerParam('gracePeriodSeconds', call.query.get('gracePeriodSeconds')) ?? body['gracePeriodSeconds'];
    if (grace !== undefined && grace !== null) {
      if (typeof grace !== 'number') throw badRequest('gracePeriodSeconds must be an integer');
      options.gracePeriodSeconds = grace;
    }
    const policy = call.query.get('propagationPolicy') ?? body['propagationPolicy'];
    if (policy !== undefined && policy !== null) {
      if (policy !== 'Orphan' && policy !== 'Background' && policy !== 'Foreground') {
        throw badRequest(`propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`);
      }
      options.propagationPolicy = policy;
    } else if (body['orphanDependents'] === true || call.query.get('orphanDependents') === 'true') {
      options.propagationPolicy = 'Orphan';
    }
    const pre = body['preconditions'];
    if (pre !== undefined && pre !== null) {
      if (typeof pre !== 'object' || Array.isArray(pre)) throw badRequest('preconditions must be an object');
      const { uid, resourceVersion } = pre as { uid?: unknown; resourceVersion?: unknown };
      options.preconditions = {
        ...(typeof uid === 'string' && uid ? { uid } : {}),
        ...(typeof resourceVersion === 'string' && resourceVersion ? { resourceVersion } : {}),
      };
    }
    const dryRun = call.query.get('dryRun') ?? (Array.isArray(body['dryRun']) ? (body['dryRun'] as unknown[])[0] : undefined);
    if (dryRun !== undefined && dryRun !== '' && dryRun !== 'All') throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(dryRun)}: supported values: "All"`);
    options.dryRun = dryRun === 'All';
    return options;
  }

  private async list(call: Call): Promise<void> {
    const { descriptor, namespace } = call.target;
    const selection = parseSelection(descriptor, call.query.get('labelSelector'), call.query.get('fieldSelector'));
    const limit = integerParam('limit', call.query.get('limit'));
    const list = await this.deps.registry.list(descriptor, namespace, {
      selection,
      ...(limit !== undefined ? { limit } : {}),
      ...(call.query.get('continue') ? { continueToken: call.query.get('continue')! } : {}),
      ...(call.query.get('resourceVersion') !== undefined ? { resourceVersion: call.query.get('resourceVersion')! } : {}),
    });
    const shape = negotiateShape(call.req.headers.accept);
    this.answer(call, 200, renderList(descriptor, list, shape, parseIncludeObject(call.query.get('includeObject'))));
  }

  private async watch(call: Call, name?: string): Promise<void> {
    const { descriptor, namespace } = call.target;
    const fieldSelector = [call.query.get('fieldSelector'), name !== undefined ? `metadata.name=${name}` : undefined].filter(Boolean).join(',');
    const selection = parseSelection(descriptor, call.query.get('labelSelector'), fieldSelector);
    const resourceVersion = call.query.get('resourceVersion');
    if (resourceVersion !== undefined && resourceVersion !== '' && !/^\d+$/.test(resourceVersion)) {
      throw badRequest(`invalid resourceVersion: "${resourceVersion}" is not a resource version this server issued`);
    }
    const timeoutSeconds = integerParam('timeoutSeconds', call.query.get('timeoutSeconds'));
    const shape = negotiateShape(call.req.headers.accept);
    const includeObject = parseIncludeObject(call.query.get('includeObject'));
    await serveWatch(
      call.res,
      this.deps.store,
      {
        descriptor,
        prefix: storagePrefix(descriptor, namespace),
        resourcePrefix: storagePrefix(descriptor),
        selection,
        resourceVersion,
        allowBookmarks: booleanParam(call.query.get('allowWatchBookmarks')),
        sendInitialEvents: booleanParam(call.query.get('sendInitialEvents')),
        timeoutMs: timeoutSeconds !== undefined && timeoutSeconds > 0 ? timeoutSeconds * 1000 : this.deps.watchTimeoutMs(),
        bookmarkIntervalMs: this.deps.bookmarkIntervalMs,
        contentType: 'application/json',
        ...(shape === 'object'
          ? {}
          : {
              render: (object: KubeObject, first: boolean) => {
                const rendered = renderObject(descriptor, object, shape, includeObject);
                // A Table watch sends its column definitions once, with the first row.
                if (shape === 'table' && !first) (rendered as { columnDefinitions?: unknown[] }).columnDefinitions = [];
                return rendered;
              },
            }),
      },
      this.deps.log,
      this.deps.watchCache,
    );
  }
}

