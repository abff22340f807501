/**
 * `pontoon proxy`: the service proxy, one per node, run inside the node's network
 * namespace. It watches Services and EndpointSlices and programs that namespace's kernel:
 * `--mode nftables` (default; table `ip pontoon`/`ip6 pontoon`, O(1) maps) or `--mode
 * iptables` (kube-proxy's KUBE-* chains). `--dry-run` prints the full-sync transaction
 * for the cluster as it is and exits; `--cleanup` removes everything the mode owns.
 */
import type { Command } from 'commander';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { formatIpNet, type IpFamily, type IpNet, parseIpNet, networkOf } from '../lib/ip.js';
import { createLogger } from '../lib/log.js';
import { Nftables } from '../lib/nftables/nftables.js';
import { DEFAULT_MASQUERADE_MARK, type ProxyConfig } from '../proxy/config.js';
import { ConntrackTool } from '../proxy/conntrack.js';
import { listen, ProxyHealth, ServiceHealthServers } from '../proxy/health.js';
import { IptablesSink } from '../proxy/iptables/sink.js';
import { SystemIptables } from '../proxy/iptables/system.js';
import { ProxyMetrics } from '../proxy/metrics.js';
import { addProcessMetrics, handleTelemetry } from '../lib/telemetry.js';
import { Gauge } from 'prom-client';
import { NftablesSink } from '../proxy/nftables/sink.js';
import { Proxier } from '../proxy/proxier.js';
import type { RuleSink } from '../proxy/sink.js';
import { parseDuration } from './controller-manager.js';
import { FlagError, stopOnSignals, withClientOptions } from './daemon.js';

export const PROXY_MODES = ['nftables', 'iptables'] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];

interface ProxyFlags extends ClientFlags {
  nodeName?: string;
  mode: string;
  clusterCidr?: string;
  ipFamilies?: string;
  masqueradeAll?: boolean;
  masqueradeBit: string;
  minSyncPeriod: string;
  syncPeriod: string;
  healthzBindAddress: string;
  metricsBindAddress: string;
  proxyName?: string;
  dryRun?: boolean;
  cleanup?: boolean;
  logLevel: string;
}

export class ProxyFlagError extends FlagError {}

/** `host:port` of a bind-address flag (`[::1]:10256` for IPv6). */
export function parseBindAddress(text: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyFlagError(`${flag} must be host:port, got "${text}"`);
  return { host: match[1] ?? match[2] ?? '', port };
}

export function proxyConfigFromFlags(flags: Pick<ProxyFlags, 'clusterCidr' | 'ipFamilies' | 'masqueradeAll' | 'masqueradeBit'>): ProxyConfig {
  const clusterCidrs = new Map<IpFamily, IpNet>();
  for (const text of (flags.clusterCidr ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    let net: IpNet;
    try {
      net = networkOf(parseIpNet(text));
    } catch (err) {
      throw new ProxyFlagError(`--cluster-cidr: "${text}" is not a CIDR`, { cause: err });
    }
    if (clusterCidrs.has(net.family)) throw new ProxyFlagError(`--cluster-cidr: more than one IPv${net.family} network`);
    clusterCidrs.set(net.family, net);
  }
  const families = (flags.ipFamilies ?? (clusterCidrs.size ? [...clusterCidrs.keys()].join(',') : '4')).split(',').map((f) => {
    const family = Number(f.trim().replace(/^ipv/i, ''));
    if (family !== 4 && family !== 6) throw new ProxyFlagError(`--ip-families: "${f}" is not 4 or 6`);
    return family as IpFamily;
  });
  const bit = Number(flags.masqueradeBit);
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new ProxyFlagError(`--masquerade-bit must be 0-31, got "${flags.masqueradeBit}"`);
  return { clusterCidrs, masqueradeAll: flags.masqueradeAll === true, masqueradeMark: bit === 14 ? DEFAULT_MASQUERADE_MARK : (1 << bit) >>> 0, families: [...new Set(families)] };
}

function sinkFor(mode: ProxyMode, config: ProxyConfig, nft: Nftables): RuleSink {
  return mode === 'nftables' ? new NftablesSink(config, nft) : new IptablesSink(config, new SystemIptables(nft));
}

export function registerProxy(program: Command): void {
  withClientOptions(program.command('proxy').description('service proxy: programs this node for Services (ClusterIP, NodePort, LoadBalancer, external IPs) from EndpointSlices'))
    .option('--node-name <name>', 'this node (endpoints on it are local for the Local traffic policies)')
    .option('--mode <mode>', `${PROXY_MODES.join(' or ')}`, 'nftables')
    .option('--cluster-cidr <cidrs>', 'pod network(s), comma-separated: traffic from outside them to a cluster IP is masqueraded')
    .option('--ip-families <list>', 'families to program: 4, 6 or 4,6 (default: those of --cluster-cidr, else 4)')
    .option('--masquerade-all', 'masquerade all traffic to cluster IPs')
    .option('--masquerade-bit <bit>', 'bit of the packet mark that asks for masquerade', '14')
    .option('--min-sync-period <duration>', 'least time between syncs; changes within it coalesce into one sync', '100ms')
    .option('--sync-period <duration>', 'full resync interval (0: never)', '1h')
    .option('--healthz-bind-address <host:port>', '/healthz of the proxy itself', '127.0.0.1:10256')
    .option('--metrics-bind-address <host:port>', 'Prometheus /metrics', '127.0.0.1:10249')
    .option('--proxy-name <name>', 'only program Services labelled service.kubernetes.io/service-proxy-name=<name> (default: only unlabelled ones)')
    .option('--dry-run', 'print the full-sync transaction for the cluster as it is, and exit')
    .option('--cleanup', 'remove every rule, chain and table this mode owns, and exit')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: ProxyFlags) => {
      if (!(PROXY_MODES as readonly string[]).includes(flags.mode)) throw new ProxyFlagError(`--mode must be ${PROXY_MODES.join(' or ')}, got "${flags.mode}"`);
      const mode = flags.mode as ProxyMode;
      const config = proxyConfigFromFlags(flags);
      const nft = new Nftables();
      const sink = sinkFor(mode, config, nft);
      if (flags.cleanup) {
        sink.cleanup();
        nft.close();
        return;
      }
      if (!flags.nodeName) throw new ProxyFlagError('--node-name is required');
      const log = createLogger('proxy', { level: flags.logLevel });
      const api = clientFromFlags(flags, `pontoon-proxy/${flags.nodeName}`);
      const minSyncPeriodMs = parseDuration(flags.minSyncPeriod, '--min-sync-period');
      const syncPeriodMs = parseDuration(flags.syncPeriod, '--sync-period');
      const health = new ProxyHealth(Math.max(2 * minSyncPeriodMs, 60_000));
      const metrics = new ProxyMetrics();
      addProcessMetrics(metrics.registry, 'proxy');
      new Gauge({ name: 'pontoon_proxy_info', help: 'Always 1; the mode label says which rules the proxy writes', labelNames: ['mode'], registers: [metrics.registry] }).set({ mode }, 1);
      const healthz = parseBindAddress(flags.healthzBindAddress, '--healthz-bind-address');
      const metricsAt = parseBindAddress(flags.metricsBindAddress, '--metrics-bind-address');

      if (flags.dryRun) {
        const { DryRun } = await import('../proxy/dry-run.js');
        process.stdout.write(await new DryRun(api, flags.nodeName, flags.proxyName).render(sink));
        nft.close();
        return;
      }
      const proxier = new Proxier({
        api,
        nodeName: flags.nodeName,
        sink,
        config,
        conntrack: new ConntrackTool(),
        minSyncPeriodMs,
        syncPeriodMs,
        ...(flags.proxyName !== undefined ? { proxyName: flags.proxyName } : {}),
        health,
        metrics,
        healthServers: new ServiceHealthServers(log),
        log,
      });
      const servers = await Promise.all([
        listen(healthz.host, healthz.port, (req, res) => health.handle(req, res)),
        // The metrics port also answers /healthz, as kube-proxy's does.
        listen(metricsAt.host, metricsAt.port, (req, res) => handleTelemetry({ registry: metrics.registry, health: () => ({ healthy: health.healthy(), detail: health.lastSync ? 'changes pending longer than allowed' : 'no sync yet' }) }, req, res)),
      ]).catch((err: unknown) => {
        throw new ProxyFlagError(`cannot listen for /healthz or /metrics: ${String(err)}`, { cause: err });
      });
      stopOnSignals(log, 'stopping; rules stay in place', async () => {
        proxier.stop();
        for (const server of servers) server.close();
        nft.close();
      });
      log.info({ mode, node: flags.nodeName, families: config.families, clusterCidrs: [...config.clusterCidrs.values()].map(formatIpNet) }, 'starting');
      await proxier.start();
    });
}

