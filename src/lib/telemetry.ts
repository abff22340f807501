/**
 * What every daemon serves for operators: Prometheus `/metrics` (text exposition format) and
 * `/healthz` (`/livez`, `/readyz` answer the same), on one listener.
 *
 * One listener per daemon, like the controller-manager's and scheduler's secure port, rather
 * than kube-proxy's two: a scraper and a liveness probe then need one address per daemon,
 * and `pontoon status` one request per daemon for both. (The proxy keeps its upstream pair,
 * 10249 and 10256.) The address is `host:port` or `unix:/path`: the lab runs several control
 * planes side by side in the root namespace, where fixed TCP ports would collide.
 *
 * Process metrics (CPU, resident memory, open fds, event-loop lag, GC) come from prom-client's
 * collectDefaultMetrics under the `pontoon_` prefix, so every daemon's are found under one name
 * whatever the daemon; the `job`/`instance` labels a scraper adds tell them apart.
 */
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import { PontoonError } from './errors.js';
import { pontoonVersion } from './version.js';

export const METRICS_PREFIX = 'pontoon_';

export type ListenAddress = { readonly host: string; readonly port: number } | { readonly socket: string };

export class ListenAddressError extends PontoonError {}

/** `host:port`, `[v6]:port` or `unix:/path` of a bind-address flag; the message names the flag. */
export function parseListenAddress(text: string, flag: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const socket = text.slice('unix:'.length);
    if (!socket.startsWith('/')) throw new ListenAddressError(`${flag} must be host:port or unix:/absolute/path, got "${text}"`);
    return { socket };
  }
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new ListenAddressError(`${flag} must be host:port or unix:/path, got "${text}"`);
  return { host: match[1] ?? match[2] ?? '', port };
}

export function formatListenAddress(address: ListenAddress): string {
  return 'socket' in address ? `unix:${address.socket}` : address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

const withProcessMetrics = new WeakSet<Registry>();

/**
 * Adds the process metrics and `pontoon_build_info{daemon,version}` to `registry` (once per
 * registry: prom-client throws on a second registration of a name).
 */
export function addProcessMetrics(registry: Registry, daemon: string): Registry {
  if (withProcessMetrics.has(registry)) return registry;
  withProcessMetrics.add(registry);
  collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  new Gauge({ name: `${METRICS_PREFIX}build_info`, help: 'Always 1; the labels say which daemon and version this is', labelNames: ['daemon', 'version'], registers: [registry] }).set({ daemon, version: pontoonVersion }, 1);
  return registry;
}

export interface HealthReport {
  readonly healthy: boolean;
  /** Why not, or what "healthy" rests on (shown in the body). */
  readonly detail: string;
}

export interface TelemetryOptions {
  readonly address: ListenAddress;
  readonly registry: Registry;
  /** Evaluated per request; absent: healthy while the process answers. */
  readonly health?: () => HealthReport;
}

/** Answers one request: `/metrics`, `/healthz`, `/livez`, `/readyz`; anything else 404. */
export function handleTelemetry(options: Pick<TelemetryOptions, 'registry' | 'health'>, request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  if (path === '/metrics') {
    options.registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': options.registry.contentType }).end(text),
      (err: unknown) => response.writeHead(500, { 'Content-Type': 'text/plain' }).end(`collecting metrics failed: ${String(err)}\n`),
    );
    return;
  }
  if (path === '/healthz' || path === '/livez' || path === '/readyz') {
    const report = options.health?.() ?? { healthy: true, detail: 'ok' };
    // kube-style bodies: "ok" when healthy, the reason otherwise; 503 so probes fail.
    response.writeHead(report.healthy ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end(report.healthy ? 'ok' : `unhealthy: ${report.detail}\n`);
    return;
  }
  response.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
}

/** Starts the listener; resolves once it is bound (rejects when the address is taken). */
export function serveTelemetry(options: TelemetryOptions): Promise<Server> {
  const server = createServer((request, response) => handleTelemetry(options, request, response));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const bound = (): void => {
      server.off('error', reject);
      resolve(server);
    };
    if ('socket' in options.address) {
      // A socket file left by a killed predecessor would make listen fail with EADDRINUSE.
      rmSync(options.address.socket, { force: true });
      server.listen(options.address.socket, bound);
    } else {
      server.listen(options.address.port, options.address.host || undefined, bound);
    }
  });
}
