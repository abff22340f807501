/**
 * The apiserver: HTTP(S) on a TCP address and plain HTTP on a unix socket, both serving the
 * same handler. `startApiServer` is what `pontoon apiserver` runs and what tests and
 * `cluster up` may embed in-process.
 *
 * Request flow: authenticate (401 on a bad token) → authorize (Node, then RBAC; 403, see
 * authz/) → fixed paths (version, health, discovery, OpenAPI) → resource URL → verb handler →
 * answer.
 * Every failure is thrown as an ApiStatusError and written as a Status in one place.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { DeleteOptions } from '../api/meta.js';
import { describeError, PontoonError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { Authenticator, loadTokenFile, type UserInfo } from './auth.js';
import { readSigningKey, readVerifyingKeys, type SigningKey } from '../lib/jws.js';
import { ephemeralSigningKey, ServiceAccountTokens } from './sa-tokens.js';
import { BootstrapTokenAuthenticator } from './bootstrap-tokens.js';
import { createToken } from './token-request.js';
import { ServiceAccountAdmission } from './sa-admission.js';
import { SELF_SUBJECT_REVIEW_PATH, selfSubjectReview } from './whoami.js';
import { attributesOf, describeRefusal, type RequestAttributes } from './authz/attributes.js';
import { AlwaysAllow, AuthorizerChain, type AuthorizationResult, type Authorizer } from './authz/authorizer.js';
import { reviewAccess, reviewRules, SELF_SUBJECT_ACCESS_REVIEW_PATH, SELF_SUBJECT_RULES_REVIEW_PATH, SUBJECT_ACCESS_REVIEW_PATH } from './authz/access-review.js';
import { bootstrapPolicy } from './authz/bootstrap-policy.js';
import { checkEscalation, isRbacWrite } from './authz/escalation.js';
import { admitNodeCreate, NodeAuthorizer } from './authz/node.js';
import { PolicyCache } from './authz/policy-cache.js';
import { RbacAuthorizer } from './authz/rbac.js';
import { RBAC_GROUP } from '../api/rbac.js';
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
  refuseRemainingBody,
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
import { KubeletClient, type KubeletClientOptions } from './kubelet-client.js';
import { isStreamSubresource, proxyPodStream, upgradeRequired, writeRawStatus } from './podstream.js';
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
import { answerHealth, type HealthAnswer, type HealthCheck, type HealthEndpoint } from './health.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { parseFieldValidation } from './strict.js';
import { stampRequester } from './kinds/certificates.js';
import { bindPod, getScale, isScalable, writeScale } from './subresources.js';
import { DEFAULT_WATCH_BACKLOG_BYTES, defaultWatchTimeoutMs, serveWatch } from './watch.js';
import { DEFAULT_WATCH_CACHE_EVENTS, WatchCache } from './watch-cache.js';
import { warningHeaderValue } from './warning.js';
import { type AdvertisedEndpoint, reconcileKubernetesEndpoints } from './kubernetes-endpoints.js';
import { withNetns } from '../lib/netns.js';
import { ApiserverMetrics } from './metrics.js';

/** The apiserver cannot start as configured; the message names the flag. */
export class ApiServerConfigError extends PontoonError {}

/**
 * Every listening socket's deadlines. headersTimeout as upstream's (Go's ReadHeaderTimeout is
 * unset there, but its 60 s request timeout covers it); a minute to receive a request body,
 * which at the 3 MiB limit is ample; keep-alive a little over common clients' idle timeouts.
 */
export const SOCKET_TIMEOUTS = { headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 65_000 } as const;

export interface ApiServerOptions {
  /** A Store, or a `--store` URL (`sqlite:/path`, `sqlite::memory:`, `memory:`, `etcd://h:p`). */
  store: Store | string;
  /** `host:port` for TCP; port 0 picks a free one. Default `127.0.0.1:0`; `false` for socket only. */
  listen?: string | false;
  /** Also serve plain HTTP on this unix socket path (a stale socket file is replaced). */
  socketPath?: string;
  /**
   * Also serve (HTTPS with TLS) on every address of another network namespace, e.g. a lab's
   * `ctl` namespace on the fabric, so pods reach the apiserver without it leaving the root
   * namespace. The socket is bound while this thread is inside that namespace (see listenInNetns).
   */
  netnsListen?: { netnsPath: string; port: number };
  /** The `kubernetes` Service's endpoint (upstream --advertise-address with the secure port). */
  advertise?: AdvertisedEndpoint;
  /** Static token CSV; without it every request without a token is the admin. */
  tokensFile?: string;
  /**
   * `RBAC` (default): the Node authorizer, then RBAC, with the bootstrap roles reconciled on
   * start. `AlwaysAllow`: every authenticated request is allowed (upstream's mode of that name).
   */
  authorizationMode?: 'RBAC' | 'AlwaysAllow';
  /** PEM file paths: with both, TCP serves HTTPS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /**
   * PEM CA bundle (upstream --client-ca-file): TLS listeners ask for a client certificate and
   * a certificate it verifies authenticates its CN as user, O as groups. Node credentials
   * issued from a CertificateSigningRequest are such certificates.
   */
  clientCaFile?: string;
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
  /** Unsent watch bytes after which a watcher that stopped reading is dropped. Default 16 MiB. */
  watchBacklogBytes?: number;
  /** Socket timeouts (see SOCKET_TIMEOUTS): headers, whole request (never the response), idle keep-alive. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Events older than this are deleted (upstream's --event-ttl). Default one hour. */
  eventTtlSeconds?: number;
  /** PEM private key (EC P-256 or RSA) TokenRequest signs with; absent: an in-memory key, logged. */
  serviceAccountSigningKeyFile?: string;
  /** PEM files with more keys service-account tokens may be signed with (the controller-manager's). */
  serviceAccountKeyFiles?: string[];
  /** `iss` of bound tokens; default https://kubernetes.default.svc.cluster.local. */
  serviceAccountIssuer?: string;
  /** Audiences a token must name (upstream's --api-audiences); default the issuer. */
  apiAudiences?: string[];
  /**
   * Upstream's ServiceAccount admission: pods default to the `default` ServiceAccount and are
   * refused when theirs is missing. Needs a controller-manager making `default` accounts, so
   * it is off unless asked for; `pontoon apiserver` turns it on.
   */
  serviceAccountAdmission?: boolean;
  /** How to reach kubelets over TLS: client certificate, CA, the namespace to dial from. */
  kubeletClient?: KubeletClientOptions;
}

export interface RunningApiServer {
  /** `http(s)://127.0.0.1:<port>`, or `unix:<path>` when only the socket listens. */
  url: string;
  port?: number;
  socketPath?: string;
  store: Store;
  registry: Registry;
  serviceAccountTokens: ServiceAccountTokens;
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

/**
 * `listen(port)` without a host binds and listens synchronously (Node resolves a host, even an
 * IP literal, on a later tick, which would bind in whatever namespace the thread is in then),
 * so the socket is created inside `netnsPath` and keeps that namespace after we switch back.
 * The wildcard address is fine there: the namespace holds only its fabric address and lo.
 */
function listenInNetns(server: Server, netnsPath: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    withNetns(netnsPath, () => server.listen(port));
  });
}

export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  const log = options.log ?? createLogger('apiserver');
  const ownsStore = typeof options.store === 'string';
  const store = typeof options.store === 'string' ? await openStore(options.store) : options.store;
  const hooks: RegistryHooks = {};
  const registry = new Registry(store, hooks);
  let signingKey: SigningKey;
  if (options.serviceAccountSigningKeyFile) {
    signingKey = readSigningKey(options.serviceAccountSigningKeyFile);
  } else {
    signingKey = ephemeralSigningKey();
    log.warn('no --service-account-signing-key-file: service-account tokens are signed with an in-memory key and die with this process');
  }
  const serviceAccountTokens = new ServiceAccountTokens(registry, {
    signingKey,
    verifyingKeys: (options.serviceAccountKeyFiles ?? []).flatMap((path) => readVerifyingKeys(path)),
    ...(options.serviceAccountIssuer ? { issuer: options.serviceAccountIssuer } : {}),
    ...(options.apiAudiences ? { audiences: options.apiAudiences } : {}),
  });
  const authenticator = new Authenticator(
    options.tokensFile ? loadTokenFile(options.tokensFile) : undefined,
    serviceAccountTokens,
    new BootstrapTokenAuthenticator(registry),
  );
  const allocations = new ServiceAllocations(
    new ServiceIpAllocator({
      ...(options.serviceCidr ? { serviceCidr: options.serviceCidr } : {}),
      ...(options.nodePortRange ? { nodePortRange: options.nodePortRange } : {}),
    }),
    store,
    log,
  );
  const cascader = new Cascader(registry, log);
  const serviceHooks = allocations.hooks();
  const admission = options.serviceAccountAdmission ? new ServiceAccountAdmission(registry) : undefined;
  Object.assign(hooks, serviceHooks, {
    beforeCreate: async (descriptor: ResourceDescriptor, object: KubeObject) => {
      await admission?.admitCreate(descriptor, object);
      return serviceHooks.beforeCreate?.(descriptor, object);
    },
    afterRemove: (descriptor: ResourceDescriptor, object: KubeObject, policy: DeleteOptions['propagationPolicy']) =>
      cascader.ownerRemoved(descriptor, object, policy),
  } satisfies Pick<RegistryHooks, 'afterRemove' | 'beforeCreate'>);
  // Read-your-writes for RBAC objects: see policy-cache.ts.
  const policy = new PolicyCache(store, log);
  const rbacWritten = (descriptor: ResourceDescriptor): void => {
    if (descriptor.group === RBAC_GROUP) policy.written();
  };
  const { beforeCreate, beforeUpdate, afterRemove } = hooks;
  Object.assign(hooks, {
    beforeCreate: async (descriptor: ResourceDescriptor, object: KubeObject) => (rbacWritten(descriptor), beforeCreate?.(descriptor, object)),
    beforeUpdate: async (descriptor: ResourceDescriptor, object: KubeObject, old: KubeObject) => (rbacWritten(descriptor), beforeUpdate?.(descriptor, object, old)),
    afterRemove: (descriptor: ResourceDescriptor, object: KubeObject, policyName: DeleteOptions['propagationPolicy']) => (rbacWritten(descriptor), afterRemove?.(descriptor, object, policyName)),
  } satisfies Pick<RegistryHooks, 'afterRemove' | 'beforeCreate' | 'beforeUpdate'>);
  const rbac = (options.authorizationMode ?? 'RBAC') === 'RBAC';
  const authorizer: Authorizer = rbac ? new AuthorizerChain([new NodeAuthorizer(registry), new RbacAuthorizer(policy)]) : new AlwaysAllow();
  const namespaces = new NamespaceLifecycle(registry, log);
  Object.assign(hooks, namespaces.hooks());
  const eventExpiry = new EventExpiry(registry, options.eventTtlSeconds ?? DEFAULT_EVENT_TTL_SECONDS, log);

  const watchCacheEvents = options.watchCacheEvents ?? DEFAULT_WATCH_CACHE_EVENTS;
  const watchCache = watchCacheEvents > 0 ? new WatchCache(store, { eventsPerResource: watchCacheEvents, log }) : undefined;
  const kubelets = new KubeletClient(options.kubeletClient);
  const api = new ApiHandler({
    registry,
    store,
    ...(watchCache ? { watchCache } : {}),
    authenticator,
    authorizer,
    policy: rbac ? policy : undefined,
    serviceAccountTokens,
    openapi: buildOpenApiV3(),
    metrics: new ApiserverMetrics(store.description),
    openapiV2: buildOpenApiV2(),
    log,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    watchTimeoutMs: options.watchTimeoutMs ?? defaultWatchTimeoutMs,
    maxBodyBytes: options.maxBodyBytes ?? MAX_REQUEST_BODY_BYTES,
    kubelets,
    watchBacklogBytes: options.watchBacklogBytes ?? DEFAULT_WATCH_BACKLOG_BYTES,
  });
  const requestTimeout = options.requestTimeoutMs ?? SOCKET_TIMEOUTS.requestTimeoutMs;
  const timeouts = {
    // Node refuses a headersTimeout longer than a (non-zero) requestTimeout.
    headersTimeout: Math.min(options.headersTimeoutMs ?? SOCKET_TIMEOUTS.headersTimeoutMs, requestTimeout || Infinity),
    requestTimeout,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? SOCKET_TIMEOUTS.keepAliveTimeoutMs,
  };
  // Node checks the header and request deadlines on this interval (30 s by default, which
  // would let a slowloris client hold a socket well past a short headersTimeout).
  const serverOptions = { connectionsCheckingInterval: Math.max(100, Math.min(1000, timeouts.headersTimeout / 4)) };

  const servers: Server[] = [];
  const cleanup = async (): Promise<void> => {
    for (const server of servers) {
      server.close();
      server.closeAllConnections();
    }
    allocations.stop();
    kubelets.close();
    policy.stop();
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
    if (rbac) await policy.start();
    let port: number | undefined;
    let url: string | undefined;
    const listen = options.listen === undefined ? '127.0.0.1:0' : options.listen;
    const tls = options.tlsCertFile && options.tlsKeyFile;
    const clientCa = options.clientCaFile ? readFileSync(options.clientCaFile) : undefined;
    // Certificates are asked for, not required: token clients (kubectl, pods) send none.
    const tlsOptions = (): HttpsServerOptions => ({
      cert: readFileSync(options.tlsCertFile!),
      key: readFileSync(options.tlsKeyFile!),
      ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    });
    if (listen !== false) {
      const handler = (req: IncomingMessage, res: ServerResponse): void => api.handle(req, res);
      const server = tls ? createHttpsServer({ ...serverOptions, ...tlsOptions() }, handler) : createHttpServer(serverOptions, handler);
      servers.push(server);
      const address = parseListen(listen);
      await listenOn(server, address);
      port = (server.address() as AddressInfo).port;
      const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host.includes(':') ? `[${address.host}]` : address.host;
      url = `${tls ? 'https' : 'http'}://${host}:${port}`;
    }
    if (options.netnsListen) {
      const handler = (req: IncomingMessage, res: ServerResponse): void => api.handle(req, res);
      const server = tls ? createHttpsServer({ ...serverOptions, ...tlsOptions() }, handler) : createHttpServer(serverOptions, handler);
      servers.push(server);
      await listenInNetns(server, options.netnsListen.netnsPath, options.netnsListen.port);
    }
    if (options.socketPath) {
      await clearStaleSocket(options.socketPath);
      const server = createHttpServer(serverOptions, (req, res) => api.handle(req, res));
      servers.push(server);
      await listenOn(server, { path: options.socketPath });
      url ??= `unix:${options.socketPath}`;
    }
    if (!url) throw new ApiServerConfigError('nothing to listen on: give --listen or --socket');
    for (const server of servers) {
      // exec, attach and port-forward arrive as upgrades (WebSocket or SPDY).
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => api.upgrade(req, socket, head));
      // requestTimeout bounds receiving the request (headers and body), not the response, so
      // watches (GETs: complete once their headers are in) stream for as long as they like.
      server.headersTimeout = timeouts.headersTimeout;
      server.requestTimeout = timeouts.requestTimeout;
      server.keepAliveTimeout = timeouts.keepAliveTimeout;
    }

    if (options.bootstrap ?? true) {
      await bootstrapCluster(registry, { kubernetesServiceIP: allocations.allocator.kubernetesServiceIP, apiserverPort: options.advertise?.port ?? port ?? 443 }, log);
      if (options.advertise) await reconcileKubernetesEndpoints(registry, options.advertise, log);
      if (rbac) await bootstrapPolicy(registry, log);
    }
    namespaces.start();
    eventExpiry.start();
    api.ready = true;
    log.info({ url, socket: options.socketPath, store: store.description, auth: authenticator.enabled, authorization: rbac ? 'Node,RBAC' : 'AlwaysAllow', tls: !!tls }, 'apiserver serving');
    return {
      url,
      ...(port !== undefined ? { port } : {}),
      ...(options.socketPath ? { socketPath: options.socketPath } : {}),
      store,
      registry,
      serviceAccountTokens,
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
  authenticator: Authenticator;
  authorizer: Authorizer;
  /** Set under RBAC: what the escalation check reads roles from. */
  policy: PolicyCache | undefined;
  serviceAccountTokens: ServiceAccountTokens;
  openapi: OpenApiV3;
  openapiV2: OpenApiV2;
  log: Logger;
  bookmarkIntervalMs: number;
  watchTimeoutMs: () => number;
  maxBodyBytes: number;
  kubelets: KubeletClient;
  metrics: ApiserverMetrics;
  watchBacklogBytes: number;
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
      this.deps.metrics.observe(req.method ?? 'GET', res.statusCode, (Date.now() - started) / 1000);
    });
    this.route(req, res).catch((err: unknown) => {
      const status = statusOf(err);
      if (status.code >= 500) this.deps.log.error({ method: req.method, url: req.url, err: describeError(err) }, 'request failed');
      // Drain what the client is still sending so the error answer reaches it; a large or
      // endless body gets the connection closed (refuseRemainingBody).
      if (!req.complete) refuseRemainingBody(req, res);
      sendStatus(res, status);
    });
  }

  /** An upgrade request: only the pod stream subresources take one. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const started = Date.now();
    const serve = async (): Promise<void> => {
      const url = new URL(req.url ?? '/', 'http://apiserver');
      const auth = await this.deps.authenticator.authenticate(req);
      if (!auth.ok) throw unauthorized(auth.message);
      const target = parseResourcePath(url.pathname.replace(/\/+$/, ''));
      if (!target || target.descriptor !== RESOURCE.pods || target.name === undefined || target.namespace === undefined || !isStreamSubresource(target.subresource)) {
        throw badRequest(`${url.pathname} does not take an upgrade: only pods/exec, pods/attach and pods/portforward do`);
      }
      await this.authorize(attributesOf(auth.user, req.method ?? 'GET', url.pathname.replace(/\/+$/, ''), url.searchParams));
      await proxyPodStream(req, socket, head, { registry: this.deps.registry, kubelets: this.deps.kubelets, subresource: target.subresource, namespace: target.namespace, name: target.name, url, log: this.deps.log });
      this.deps.log.debug({ url: req.url, ms: Date.now() - started }, 'stream upgraded');
    };
    serve().catch((err: unknown) => {
      const status = statusOf(err);
      if (status.code >= 500) this.deps.log.error({ url: req.url, err: describeError(err) }, 'stream request failed');
      writeRawStatus(socket, status);
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://apiserver');
    const auth = await this.deps.authenticator.authenticate(req);
    if (!auth.ok) throw unauthorized(auth.message);
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '') || '/';
    await this.authorize(attributesOf(auth.user, method, path, url.searchParams));

    const health = /^\/(healthz|livez|readyz)(?:\/([^/]+))?$/.exec(path);
    if (health) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed();
      const answer = await this.health(health[1] as HealthEndpoint, url.searchParams, health[2]);
      sendText(res, answer.code, answer.text);
      return;
    }
    if (this.fixedPath(req, res, method, path)) return;
    if (path === SELF_SUBJECT_ACCESS_REVIEW_PATH || path === SUBJECT_ACCESS_REVIEW_PATH) {
      if (method !== 'POST') throw methodNotAllowed();
      const body = await this.jsonBody({ req });
      sendJson(res, 201, await reviewAccess(this.deps.authorizer, auth.user, body, path === SELF_SUBJECT_ACCESS_REVIEW_PATH));
      return;
    }
    if (path === SELF_SUBJECT_RULES_REVIEW_PATH) {
      if (method !== 'POST') throw methodNotAllowed();
      sendJson(res, 201, await reviewRules(this.deps.policy, auth.user, await this.jsonBody({ req })));
      return;
    }
    if (path === SELF_SUBJECT_REVIEW_PATH) {
      if (method !== 'POST') throw methodNotAllowed();
      // The body (an empty review) carries nothing the answer depends on.
      await readBody(req, this.deps.maxBodyBytes);
      sendJson(res, 201, selfSubjectReview(auth.user));
      return;
    }
    const target = parseResourcePath(path);
    if (!target) throw pathNotFound();
    const call: Call = { req, res, url, query: queryOf(url), target, user: auth.user };
    await this.resource(call, method);
  }

  /**
   * The checks of one health endpoint: `ping` always; the store's (etcd) in healthz and
   * readyz; readyz also waits for bootstrap (the default objects), as upstream's poststarthooks.
   */
  private health(endpoint: HealthEndpoint, query: URLSearchParams, single: string | undefined): Promise<HealthAnswer> {
    const checks: HealthCheck[] = [{ name: 'ping', check: () => Promise.resolve() }];
    const store = this.deps.store.health;
    if (store && endpoint !== 'livez') checks.push(store);
    if (endpoint === 'readyz') {
      checks.push({ name: 'poststarthook/bootstrap', check: () => (this.ready ? Promise.resolve() : Promise.reject(new Error('not finished'))) });
    }
    return answerHealth(endpoint, checks, query, single);
  }

  /** 403 unless the authorizer chain allows; denials are logged for whoever writes the roles. */
  private async authorize(attributes: RequestAttributes): Promise<void> {
    const result: AuthorizationResult = await this.deps.authorizer.authorize(attributes);
    if (result.decision === 'allow') return;
    const message = describeRefusal(attributes);
    this.deps.log.info({ user: attributes.user.name, groups: attributes.user.groups, reason: result.reason || undefined }, `forbidden: ${message}`);
    if ('nonResource' in attributes) throw forbidden(`forbidden: ${message}`);
    const r = attributes.resource;
    const resource = { group: r.apiGroup, resource: r.resource };
    throw forbidden(`${qualifiedResource(resource)}${r.name ? ` "${r.name}"` : ''} is forbidden: ${message}${result.reason ? `: ${result.reason}` : ''}`, resource, r.name || undefined);
  }

  /** The write-time half of authorization: NodeRestriction on creates, RBAC escalation. */
  private async admitWrite(call: Call, object: Record<string, unknown> | undefined): Promise<void> {
    const { descriptor, namespace, name } = call.target;
    if (call.req.method === 'POST' && object) admitNodeCreate(call.user, descriptor.resource, object);
    if (this.deps.policy && isRbacWrite(descriptor.group, descriptor.resource)) {
      await checkEscalation(this.deps.authorizer, this.deps.policy, { user: call.user, resource: descriptor.resource, namespace: namespace ?? '', name: name ?? '', object });
    }
  }

  /** Version, discovery and OpenAPI; true when answered. */
  private fixedPath(req: IncomingMessage, res: ServerResponse, method: string, path: string): boolean {
    const get = (): void => {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed();
    };
    if (path === '/version') {
      get();
      sendJson(res, 200, SERVER_VERSION);
      return true;
    }
    if (path === '/metrics') {
      get();
      void this.deps.metrics.registry.metrics().then((text) => res.writeHead(200, { 'Content-Type': this.deps.metrics.registry.contentType }).end(text));
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
  private async jsonBody(call: Pick<Call, 'req'>): Promise<Record<string, unknown>> {
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
      call.res.setHeader('Warning', options.warnings.map(warningHeaderValue));
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
    const isWatch = target.legacyWatch || booleanParam('watch', call.query.get('watch'));

    if (name === undefined) {
      if (method === 'GET' && isWatch) return this.watch(call);
      if (method === 'GET') return this.list(call);
      if (method === 'POST') {
        if (descriptor.namespaced && namespace === undefined) throw methodNotAllowed();
        const options = this.writeOptions(call);
        const body = await this.jsonBody(call);
        if (descriptor === RESOURCE.certificatesigningrequests) stampRequester(body, call.user);
        await this.admitWrite(call, body);
        const created = await registry.create(descriptor, namespace, body, options);
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
      case 'approval':
        if (method === 'GET') return this.answerObject(call, 200, await registry.get(descriptor, namespace, name));
        if (method === 'PUT') {
          const options = this.writeOptions(call);
          return this.answerObject(call, 200, await registry.update(descriptor, namespace, name, await this.jsonBody(call), options, subresource), options);
        }
        if (method === 'PATCH') {
          const options = this.writeOptions(call);
          const body = await readBody(call.req, this.deps.maxBodyBytes);
          const result = await registry.patch(descriptor, namespace, name, call.req.headers['content-type'] ?? '', body, options, subresource);
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
        return servePodLog(call.res, registry, this.deps.kubelets, namespace!, name, call.query);
      case 'exec':
      case 'attach':
      case 'portforward':
        // Reached only without an Upgrade header (upgrades go through upgrade()).
        if (method !== 'GET' && method !== 'POST') throw methodNotAllowed();
        return sendStatus(call.res, upgradeRequired());
      case 'token': {
        if (method !== 'POST') throw methodNotAllowed();
        const request = await createToken(registry, this.deps.serviceAccountTokens, namespace!, name, await this.jsonBody(call));
        return this.answer(call, 201, request);
      }
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
        const body = await this.jsonBody(call);
        await this.admitWrite(call, body);
        return this.answerObject(call, 200, await registry.update(descriptor, namespace, name, body, options), options);
      }
      case 'PATCH': {
        const options = this.writeOptions(call);
        await this.admitWrite(call, undefined);
        const body = await readBody(call.req, this.deps.maxBodyBytes);
        const result = await registry.patch(descriptor, namespace, name, call.req.headers['content-type'] ?? '', body, options);
        return this.answerObject(call, result.created ? 201 : 200, result.object, options);
      }
      case 'DELETE': {
        const options = await this.deleteOptions(call);
        const result = await registry.delete(descriptor, namespace, name, options);
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
    } else if (body['orphanDependents'] === true || booleanParam('orphanDependents', call.query.get('orphanDependents'))) {
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
        allowBookmarks: booleanParam('allowWatchBookmarks', call.query.get('allowWatchBookmarks')),
        sendInitialEvents: booleanParam('sendInitialEvents', call.query.get('sendInitialEvents')),
        timeoutMs: timeoutSeconds !== undefined && timeoutSeconds > 0 ? timeoutSeconds * 1000 : this.deps.watchTimeoutMs(),
        bookmarkIntervalMs: this.deps.bookmarkIntervalMs,
        maxBacklogBytes: this.deps.watchBacklogBytes,
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

