/**
 * Health, as kube-proxy serves it:
 *   - the proxy's own `/healthz` (and `/livez`), default 127.0.0.1:10256: 200 while syncs
 *     keep up — no change has waited longer than `unhealthyAfterMs` without a successful
 *     sync — else 503; the body says when rules were last updated;
 *   - one listener per `healthCheckNodePort` (LoadBalancer Services with
 *     externalTrafficPolicy Local) on every node address: 200 with this node's local
 *     endpoint count when there are any, 503 when there are none, so a cloud load
 *     balancer sends traffic only to nodes that can serve it locally.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';

export class ProxyHealth {
  private lastSyncAt: Date | undefined;
  private oldestPendingAt: number | undefined;

  constructor(
    private readonly unhealthyAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A change arrived that no sync has applied yet. */
  queued(): void {
    this.oldestPendingAt ??= this.now();
  }

  /** A sync succeeded that included every change queued before `startedAt`. */
  synced(startedAt: number): void {
    this.lastSyncAt = new Date(this.now());
    if (this.oldestPendingAt !== undefined && this.oldestPendingAt <= startedAt) this.oldestPendingAt = undefined;
  }

  get lastSync(): Date | undefined {
    return this.lastSyncAt;
  }

  get pendingSinceMs(): number | undefined {
    return this.oldestPendingAt;
  }

  healthy(): boolean {
    if (this.lastSyncAt === undefined) return false;
    return this.oldestPendingAt === undefined || this.now() - this.oldestPendingAt < this.unhealthyAfterMs;
  }

  handle(_request: IncomingMessage, response: ServerResponse): void {
    const healthy = this.healthy();
    response.writeHead(healthy ? 200 : 503, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
    response.end(JSON.stringify({ lastUpdated: this.lastSyncAt?.toISOString() ?? '', currentTime: new Date(this.now()).toISOString(), nodeEligible: true }));
  }
}

interface HealthCheckPort {
  server: Server;
  namespace: string;
  name: string;
  localEndpoints: number;
}

/** The health-check node port listeners, reconciled to the wanted set after each sync. */
export class ServiceHealthServers {
  private readonly servers = new Map<number, HealthCheckPort>();

  /**
   * `listenIn` runs the listen call; tests pass one that enters the node's namespace, since
   * a socket belongs to the namespace it is created in. (Listening without a host creates
   * the socket at once, on every address; with a host Node resolves it first, later, from
   * whatever namespace the thread is in by then.)
   */
  constructor(
    private readonly log: Logger,
    private readonly listenIn: (listen: () => void) => void = (listen) => listen(),
  ) {}

  /** Wanted: port → (service, local endpoint count). */
  sync(wanted: ReadonlyMap<number, { namespace: string; name: string; localEndpoints: number }>): void {
    for (const [port, entry] of this.servers) {
      if (!wanted.has(port)) {
        entry.server.close();
        this.servers.delete(port);
      }
    }
    for (const [port, want] of wanted) {
      const existing = this.servers.get(port);
      if (existing) {
        Object.assign(existing, want);
        continue;
      }
      const entry: HealthCheckPort = { ...want, server: createServer((req, res) => this.answer(entry, req, res)) };
      entry.server.on('error', (err) => this.log.error({ port, service: `${entry.namespace}/${entry.name}`, err: describeError(err) }, 'health check node port failed to listen'));
      this.listenIn(() => entry.server.listen(port));
      this.servers.set(port, entry);
    }
  }

  private answer(entry: HealthCheckPort, _request: IncomingMessage, response: ServerResponse): void {
    const healthy = entry.localEndpoints > 0;
    response.writeHead(healthy ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(entry.localEndpoints),
    });
    response.end(JSON.stringify({ service: { namespace: entry.namespace, name: entry.name }, localEndpoints: entry.localEndpoints, serviceProxyHealthy: true }));
  }

  ports(): number[] {
    return [...this.servers.keys()];
  }

  close(): void {
    for (const entry of this.servers.values()) entry.server.close();
    this.servers.clear();
  }
}

/** Listens for `handler` on `host:port`; resolves with the bound port (0 picks one). */
export function listen(host: string, port: number, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
