/** `pontoon flanneld`: run the node daemon in the current network namespace. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log.js';
import { Flanneld } from '../flanneld/daemon.js';
import { DEFAULT_ETCD_PREFIX, EtcdSubnetStore } from '../flanneld/subnet/etcd.js';
import { FileSubnetStore } from '../flanneld/subnet/file.js';
import { KubeSubnetStore } from '../flanneld/subnet/kube.js';
import { clientFromFlags } from '../client/client.js';
import type { Logger } from '../lib/log.js';
import type { SubnetStore } from '../flanneld/subnet/lease.js';
import { DEFAULT_SUBNET_FILE } from '../api/subnet-env.js';
import { FlagError, startTelemetry, stopOnSignals, TELEMETRY_DEFAULTS, withTelemetryOption } from './daemon.js';
import { flanneldHealth, flanneldRegistry } from '../flanneld/metrics.js';
import { startDebugEndpoint } from './debug-endpoint.js';
import { FLANNELD_DEBUG_PORT } from '../debug/netstate.js';

interface FlanneldFlags {
  etcdEndpoints: string;
  etcdPrefix: string;
  subnetStoreFile?: string;
  kubeSubnetMgr: boolean;
  kubeApiUrl?: string;
  kubeconfigFile?: string;
  tokenFile?: string;
  nodeName?: string;
  netConfigPath: string;
  iface?: string;
  publicIp?: string;
  publicIpv6?: string;
  subnetFile: string;
  ipMasq: boolean;
  subnetLeaseTtl: string;
  subnetLeaseRenewMargin: string;
  resync: string;
  logLevel: string;
  metricsBindAddress: string;
  debugAddress: string;
  podNetnsDir?: string;
  podNetnsPrefix?: string;
}

function seconds(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new FlagError(`${flag} must be a positive number of seconds, got "${value}"`);
  return parsed;
}

export function registerFlanneld(program: Command): void {
  withTelemetryOption(program.command('flanneld'), TELEMETRY_DEFAULTS.flanneld)
    .description('node daemon: subnet lease, overlay backend (host-gw, vxlan, udp), subnet.env')
    .option('--etcd-endpoints <urls>', 'comma-separated etcd client URLs', 'http://127.0.0.1:2379')
    .option('--etcd-prefix <prefix>', 'etcd key prefix of the network', DEFAULT_ETCD_PREFIX)
    .option('--subnet-store-file <path>', 'keep leases in this JSON file instead of etcd (single node, or nodes sharing a filesystem)')
    .option('--kube-subnet-mgr', 'take the subnet from this Node’s spec.podCIDR and publish leases as Node annotations', false)
    .option('--kube-api-url <url>', 'apiserver (http://, https:// or unix:/path) for --kube-subnet-mgr')
    .option('--kubeconfig-file <path>', 'kubeconfig for --kube-subnet-mgr')
    .option('--token-file <path>', 'bearer token for the apiserver')
    .option('--node-name <name>', 'this node’s Node name for --kube-subnet-mgr (default: $NODE_NAME)')
    .option('--net-config-path <path>', 'network config file for --kube-subnet-mgr', '/etc/kube-flannel/net-conf.json')
    .option('--iface <name>', 'interface for inter-node traffic (default: the default route’s)')
    .option('--public-ip <ip>', 'address other nodes reach this one at (default: the interface’s first)')
    .option('--public-ipv6 <ip>', 'dual-stack: IPv6 address other nodes reach this one at (default: the interface’s first global one)')
    .option('--subnet-file <path>', 'where to write the subnet.env for the CNI plugin', DEFAULT_SUBNET_FILE)
    .option('--ip-masq', 'masquerade pod traffic leaving the pod network', false)
    .option('--subnet-lease-ttl <seconds>', 'lease lifetime in the store', String(24 * 3600))
    .option('--subnet-lease-renew-margin <seconds>', 'renew this long before the lease expires', String(3600))
    .option('--resync <seconds>', 're-check the kernel against the lease table this often', '30')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--debug-address <host:port>', `read-only GET /debug/netstate of this node's kernel state for pontoon trace ("off" disables)`, `0.0.0.0:${FLANNELD_DEBUG_PORT}`)
    .option('--pod-netns-dir <dir>', 'where pod sandbox namespaces are, for /debug/netstate', '/run/netns')
    .option('--pod-netns-prefix <prefix>', 'only namespaces with this name prefix are this node’s pods (default: all in --pod-netns-dir)')
    .action(async (flags: FlanneldFlags) => {
      const log = createLogger('flanneld', { level: flags.logLevel });
      const debug = await startDebugEndpoint(flags, flags.nodeName ?? process.env['NODE_NAME'], log);
      const store = subnetStoreFor(flags, log);
      const ttl = seconds(flags.subnetLeaseTtl, '--subnet-lease-ttl');
      const daemon = new Flanneld({
        store,
        subnetFile: flags.subnetFile,
        ipMasq: flags.ipMasq,
        leaseTtlSeconds: ttl,
        renewMarginSeconds: Math.min(seconds(flags.subnetLeaseRenewMargin, '--subnet-lease-renew-margin'), ttl / 2),
        resyncSeconds: seconds(flags.resync, '--resync'),
        log,
        ...(flags.iface ? { iface: flags.iface } : {}),
        ...(flags.publicIp ? { publicIp: flags.publicIp } : {}),
        ...(flags.publicIpv6 ? { publicIpv6: flags.publicIpv6 } : {}),
      });
      const telemetry = await startTelemetry('flanneld', flags.metricsBindAddress, flanneldRegistry(() => daemon.stats()), () => flanneldHealth(daemon.stats()));
      const closeListeners = (): void => {
        telemetry?.close();
        debug?.close();
      };
      stopOnSignals(log, 'stopping; data plane left in place', async () => {
        closeListeners();
        await daemon.stop();
      });
      // A daemon that fails to start must exit (and say why): the telemetry and debug
      // listeners would otherwise keep the process alive for a daemon that is not running.
      await daemon.run().catch((err: unknown) => {
        closeListeners();
        throw err;
      });
    });
}

function subnetStoreFor(flags: FlanneldFlags, log: Logger): SubnetStore {
  if (flags.kubeSubnetMgr) {
    const nodeName = flags.nodeName ?? process.env['NODE_NAME'];
    if (!nodeName) throw new FlagError('--kube-subnet-mgr needs --node-name or $NODE_NAME');
    const api = clientFromFlags({ kubeconfig: flags.kubeconfigFile, server: flags.kubeApiUrl, tokenFile: flags.tokenFile }, `pontoon-flanneld/${nodeName}`);
    return new KubeSubnetStore({ api, nodeName, netConfPath: flags.netConfigPath, log });
  }
  if (flags.subnetStoreFile) return new FileSubnetStore(flags.subnetStoreFile);
  return new EtcdSubnetStore({ endpoints: flags.etcdEndpoints.split(',').map((e) => e.trim()), prefix: flags.etcdPrefix });
}
