/**
 * `pontoon dns`: cluster DNS (the kube-dns contract, as CoreDNS's `kubernetes` plugin serves
 * it) answering from informers, with names outside the cluster domain forwarded to
 * `--upstream`. Deployed by deploy/dns.yaml as `kube-system/kube-dns`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Command } from 'commander';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { AnswerCache } from '../dns/answers.js';
import { DnsController } from '../dns/controller.js';
import { Forwarder, parseUpstream, type Upstream } from '../dns/forward.js';
import { DnsMetrics } from '../dns/metrics.js';
import { addProcessMetrics, handleTelemetry } from '../lib/telemetry.js';
import { Resolver, type PodMode } from '../dns/resolver.js';
import { DnsServer } from '../dns/server.js';
import { Zone } from '../dns/zone.js';
import { createLogger } from '../lib/log.js';
import { FlagError, stopOnSignals, withClientOptions } from './daemon.js';

interface DnsFlags extends ClientFlags {
  listen: string;
  clusterDomain: string;
  ttl: string;
  upstream: string[];
  upstreamTimeout: string;
  pods: string;
  metricsPort: string;
  healthPort: string;
  readyPort: string;
  udp: string;
  logLevel: string;
}

export class DnsFlagError extends FlagError {}

const POD_MODES: readonly PodMode[] = ['disabled', 'insecure', 'verified'];

function port(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new DnsFlagError(`${flag} must be 0-65535, got "${text}"`);
  return value;
}

/** `host:port`, `[v6]:port` or `:port` (all IPv4 addresses). */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!match) throw new DnsFlagError(`--listen must be host:port, got "${text}"`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port: port(match[3] ?? '', '--listen port') };
}

function httpOn(portNumber: number, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new DnsFlagError(`cannot listen on port ${portNumber}: ${String(err)}`, { cause: err })));
    server.listen(portNumber, () => resolve(server));
  });
}

export function registerDns(program: Command): void {
  withClientOptions(program.command('dns').description('cluster DNS: Service, endpoint and pod records from the apiserver (kube-dns / CoreDNS kubernetes plugin contract)'))
    .option('--listen <host:port>', 'UDP and TCP address to answer on', '0.0.0.0:53')
    .option('--cluster-domain <domain>', 'the cluster domain (kubelet --cluster-domain)', 'cluster.local')
    .option('--ttl <seconds>', 'TTL of every record, and the SOA minimum', '5')
    .option('--upstream <ip[:port]>', 'forward names outside the cluster domain here (repeat or comma-separate); without one they get SERVFAIL', (value: string, previous: string[]) => [...previous, ...value.split(',').filter(Boolean)], [] as string[])
    .option('--upstream-timeout <ms>', 'how long to wait for one upstream before trying the next', '2000')
    .option('--pods <mode>', `pod records a-b-c-d.<ns>.pod.<domain>: ${POD_MODES.join(', ')} (CoreDNS "pods")`, 'insecure')
    .option('--metrics-port <port>', 'Prometheus /metrics', '9153')
    .option('--health-port <port>', '/health (200 while the process serves)', '8080')
    .option('--ready-port <port>', '/ready (200 once the informers have synced)', '8181')
    .option('--udp <mode>', 'UDP I/O: batched (a worker thread, recvmmsg/sendmmsg) or dgram (Node\'s socket, one call per datagram)', 'batched')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: DnsFlags) => {
      const listen = parseListen(flags.listen);
      if (flags.udp !== 'batched' && flags.udp !== 'dgram') throw new DnsFlagError(`--udp must be batched or dgram, got "${flags.udp}"`);
      const udp = flags.udp;
      const clusterDomain = flags.clusterDomain.toLowerCase().replace(/^\.|\.$/g, '');
      if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(clusterDomain)) throw new DnsFlagError(`--cluster-domain must be a domain name, got "${flags.clusterDomain}"`);
      const ttlSeconds = Number(flags.ttl);
      if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > 3600) throw new DnsFlagError(`--ttl must be 0-3600 seconds, got "${flags.ttl}"`);
      if (!(POD_MODES as readonly string[]).includes(flags.pods)) throw new DnsFlagError(`--pods must be ${POD_MODES.join(', ')}, got "${flags.pods}"`);
      const timeoutMs = Number(flags.upstreamTimeout);
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new DnsFlagError(`--upstream-timeout must be a positive number of ms, got "${flags.upstreamTimeout}"`);
      let upstreams: Upstream[];
      try {
        upstreams = flags.upstream.map(parseUpstream);
      } catch (err) {
        throw new DnsFlagError(String((err as Error).message), { cause: err });
      }
      const ports = { metrics: port(flags.metricsPort, '--metrics-port'), health: port(flags.healthPort, '--health-port'), ready: port(flags.readyPort, '--ready-port') };
      const podMode = flags.pods as PodMode;

      const log = createLogger('dns', { level: flags.logLevel });
      const api = clientFromFlags(flags, 'pontoon-dns');
      const zone = new Zone();
      let controller: DnsController | undefined;
      const resolver = new Resolver(zone, { zone: clusterDomain, podMode, podHasIp: (ns, ip) => controller?.podHasIp(ns, ip) ?? false });
      const answers = new AnswerCache(resolver, ttlSeconds);
      const metrics = new DnsMetrics(() => answers.stats(), () => zone.size);
      addProcessMetrics(metrics.registry, 'dns');
      const forwarder = new Forwarder(upstreams, timeoutMs, (to, outcome) => metrics.forwarded(to, outcome));
      controller = new DnsController({ api, zone, answers, clusterDomain, ttlSeconds, podMode, log });
      const server = new DnsServer({ host: listen.host, port: listen.port, answers, forwarder, metrics, log, udp });

      const http = await Promise.all([
        // CoreDNS's ports (9153 metrics, 8080 /health, 8181 /ready); the metrics port also
        // answers /healthz like every Pontoon daemon, so `pontoon status` needs one address.
        httpOn(ports.metrics, (req, res) => handleTelemetry({ registry: metrics.registry, health: () => ({ healthy: controller?.ready ?? false, detail: 'informers not synced' }) }, req, res)),
        httpOn(ports.health, (req, res) => void (req.url === '/health' ? res.writeHead(200).end('OK') : res.writeHead(404).end())),
        httpOn(ports.ready, (req, res) => {
          if (req.url !== '/ready') return void res.writeHead(404).end();
          const ready = controller?.ready ?? false;
          res.writeHead(ready ? 200 : 503).end(ready ? 'OK' : 'informers not synced');
        }),
      ]);
      // The DNS sockets open only after the first full list: answering before it would hand
      // out NXDOMAIN for Services that exist (and resolvers cache negatives). Until then
      // clients time out and try another server; /ready says 503 meanwhile.
      await controller.start();
      const bound = await server.listen().catch((err: unknown) => {
        throw new DnsFlagError(`cannot listen on ${flags.listen}: ${String(err)}`, { cause: err });
      });
      stopOnSignals(log, 'stopping', async () => {
        controller?.stop();
        server.close();
        forwarder.close();
        for (const s of http) s.close();
      });
      log.info({ listen: flags.listen, udpPort: bound.udpPort, udp: server.udpMode, clusterDomain, ttlSeconds, podMode, upstreams: upstreams.map((u) => u.label), records: zone.size }, 'serving');
    });
}
