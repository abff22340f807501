/** `pontoon kubelet`: the node agent, run inside the node's network namespace. */
import type { Command } from 'commander';
import { isIP } from 'node:net';
import type { Taint } from '../api/types.js';
import { clientFromFlags } from '../client/client.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from '../kubelet/cni.js';
import { DEFAULT_CLUSTER_DOMAIN, DEFAULT_RESOLV_CONF } from '../kubelet/dns-config.js';
import { DEFAULT_KUBELET_PORT, type KubeletServingOptions } from '../kubelet/api-server.js';
import { Kubelet } from '../kubelet/kubelet.js';
import { DEFAULT_ROOT_DIR } from '../kubelet/runtime.js';
import { DEFAULT_NETNS_PREFIX } from '../kubelet/sandbox.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { Gauge, Registry } from 'prom-client';
import { startTelemetry, stopOnSignals, TELEMETRY_DEFAULTS, withClientOptions, withTelemetryOption } from './daemon.js';

export class KubeletFlagError extends PontoonError {}

interface KubeletFlags {
  kubeconfig?: string;
  server?: string;
  token?: string;
  tokenFile?: string;
  nodeName?: string;
  nodeIp?: string;
  cniConfDir: string;
  cniBinDir: string;
  rootDir: string;
  netnsPrefix: string;
  registerTaints?: string;
  maxPods: string;
  nodeStatusUpdateFrequency: string;
  clusterDns?: string;
  clusterDomain: string;
  resolvConf: string;
  hostPathRoot: string;
  cniHelper?: boolean;
  addServiceAccountVolume?: boolean;
  port: string;
  address: string;
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  clientCaFile?: string;
  socket?: string;
  logLevel: string;
  metricsBindAddress: string;
}

/**
 * --port/--address with --tls-cert-file, --tls-private-key-file and --client-ca-file: the TLS
 * API. Without a certificate there is no TCP listener (upstream would self-sign one, but no
 * caller could verify it), so a missing one is logged rather than refused.
 */
export function servingFromFlags(flags: Pick<KubeletFlags, 'port' | 'address' | 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'>): KubeletServingOptions | string {
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new KubeletFlagError(`--port must be 0-65535, got "${flags.port}"`);
  if (isIP(flags.address) === 0) throw new KubeletFlagError(`--address must be an IP address, got "${flags.address}"`);
  if (!!flags.tlsCertFile !== !!flags.tlsPrivateKeyFile) throw new KubeletFlagError('--tls-cert-file and --tls-private-key-file go together');
  if (port === 0) return '--port 0: the kubelet API is served on the unix socket only';
  if (!flags.tlsCertFile || !flags.tlsPrivateKeyFile) return 'no --tls-cert-file: the kubelet API is served on the unix socket only';
  if (!flags.clientCaFile) throw new KubeletFlagError('--client-ca-file is required with --tls-cert-file: the TLS port authenticates callers by client certificate');
  return { address: flags.address, port, certFile: flags.tlsCertFile, keyFile: flags.tlsPrivateKeyFile, clientCaFile: flags.clientCaFile };
}

/** `key=value:Effect` or `key:Effect`, comma-separated, as kubelet's --register-with-taints. */
export function parseTaints(text: string): Taint[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const match = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(part);
      if (!match) throw new KubeletFlagError(`--register-with-taints: "${part}" is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute`);
      const taint: Taint = { key: match[1] ?? '', effect: match[3] as Taint['effect'] };
      if (match[2] !== undefined) taint.value = match[2];
      return taint;
    });
}

function positive(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new KubeletFlagError(`${flag} must be a positive number, got "${value}"`);
  return parsed;
}

/** --cluster-dns: comma-separated IPs. */
export function parseClusterDns(text: string | undefined): string[] {
  const ips = (text ?? '').split(',').map((part) => part.trim()).filter(Boolean);
  for (const ip of ips) if (isIP(ip) === 0) throw new KubeletFlagError(`--cluster-dns: "${ip}" is not an IP address`);
  return ips;
}

export function registerKubelet(program: Command): void {
  withTelemetryOption(withClientOptions(program.command('kubelet').description('node agent: registers the Node, runs the pods bound to it in netns sandboxes through CNI, reports their status')), TELEMETRY_DEFAULTS.kubelet)
    .option('--node-name <name>', 'name of this Node (required)')
    .option('--node-ip <ip>', 'the InternalIP other nodes reach this one at (required)')
    .option('--cni-conf-dir <dir>', 'CNI network configs; the lexically first is used', DEFAULT_CNI_CONF_DIR)
    .option('--cni-bin-dir <dirs>', 'CNI plugin directories, colon-separated', DEFAULT_CNI_BIN_DIR)
    .option('--root-dir <dir>', 'pod state, container logs, CNI result cache and kubelet.sock', DEFAULT_ROOT_DIR)
    .option('--netns-prefix <prefix>', 'name prefix of pod sandbox namespaces', DEFAULT_NETNS_PREFIX)
    .option('--register-with-taints <taints>', 'taints the Node registers with: key[=value]:Effect,...')
    .option('--max-pods <n>', 'pods this node accepts', '110')
    .option('--node-status-update-frequency <seconds>', 'Node status heartbeat interval', '10')
    .option('--cluster-dns <ips>', 'DNS server IPs pods with dnsPolicy ClusterFirst use, comma-separated (none: they fall back to Default)')
    .option('--cluster-domain <domain>', 'the cluster DNS domain pods search', DEFAULT_CLUSTER_DOMAIN)
    .option('--resolv-conf <file>', 'the resolver config dnsPolicy Default pods get ("" for none)', DEFAULT_RESOLV_CONF)
    .option('--host-path-root <dir>', 'directory hostPath volume paths resolve under (simulated nodes sharing one filesystem each get their own)', '/')
    .option('--cni-helper', 'run our own CNI plugins (pontoon-bridge, pontoon-flannel) in a long-lived `pontoon cni-server` child instead of exec\'ing them per pod; other plugins are exec\'d as ever')
    .option('--add-service-account-volume', "give pods that arrive without it the ServiceAccount token volume upstream's admission adds (for an apiserver without that step)")
    .option('--port <port>', 'TCP port of the kubelet API over TLS (0: none)', String(DEFAULT_KUBELET_PORT))
    .option('--address <ip>', 'IP the kubelet API listens on', '0.0.0.0')
    .option('--tls-cert-file <path>', 'serving certificate of the kubelet API (PEM, for the node\'s InternalIP)')
    .option('--tls-private-key-file <path>', 'its private key (PEM)')
    .option('--client-ca-file <path>', 'CA (PEM) client certificates must chain to (the apiserver\'s kubelet-client certificate)')
    .option('--socket <path>', 'unix socket the API is also served on, unauthenticated (default <root-dir>/kubelet.sock; "none" for none)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: KubeletFlags) => {
      if (!flags.nodeName) throw new KubeletFlagError('--node-name is required');
      if (!flags.nodeIp) throw new KubeletFlagError('--node-ip is required');
      const log = createLogger('kubelet', { level: flags.logLevel });
      const api = clientFromFlags({ kubeconfig: flags.kubeconfig, server: flags.server, token: flags.token, tokenFile: flags.tokenFile }, `pontoon-kubelet/${flags.nodeName}`);
      const taints = flags.registerTaints ? parseTaints(flags.registerTaints) : undefined;
      const serving = servingFromFlags(flags);
      if (typeof serving === 'string') log.warn(serving);
      const kubelet = new Kubelet({
        api,
        nodeName: flags.nodeName,
        nodeIP: flags.nodeIp,
        rootDir: flags.rootDir,
        cniConfDir: flags.cniConfDir,
        cniBinDirs: flags.cniBinDir.split(':').filter(Boolean),
        netnsPrefix: flags.netnsPrefix,
        maxPods: Math.floor(positive(flags.maxPods, '--max-pods')),
        statusIntervalMs: positive(flags.nodeStatusUpdateFrequency, '--node-status-update-frequency') * 1000,
        ...(taints ? { registerTaints: taints } : {}),
        clusterDNS: parseClusterDns(flags.clusterDns),
        clusterDomain: flags.clusterDomain,
        resolvConf: flags.resolvConf,
        hostPathRoot: flags.hostPathRoot,
        ...(flags.cniHelper ? { cniHelper: { command: [process.execPath, ...process.execArgv, process.argv[1] ?? 'pontoon'] } } : {}),
        automountServiceAccountToken: flags.addServiceAccountVolume === true,
        ...(typeof serving === 'string' ? {} : { serving }),
        ...(flags.socket ? { socketPath: flags.socket === 'none' ? false : flags.socket } : {}),
        log,
      });
      const registry = new Registry();
      // Read at scrape time (collect), so the pod workers never touch prom-client.
      new Gauge({ name: 'pontoon_kubelet_pods', help: 'Pods bound to this node that the kubelet knows (kubelet_running_pods counts running ones upstream)', registers: [registry], collect() { this.set(kubelet.stats().pods); } });
      new Gauge({ name: 'pontoon_kubelet_sandboxes', help: 'Pod sandboxes (network namespaces) the runtime holds', registers: [registry], collect() { this.set(kubelet.stats().sandboxes); } });
      const telemetry = await startTelemetry('kubelet', flags.metricsBindAddress, registry, () => {
        const ready = kubelet.stats().ready;
        return { healthy: ready, detail: ready ? 'ok' : 'node not registered or pods not listed yet' };
      });
      stopOnSignals(log, 'stopping; pods keep running', async () => {
        telemetry?.close();
        await kubelet.stop();
      });
      // A daemon that fails to start must exit (and say why): the telemetry listener would
      // otherwise keep the process alive, serving metrics for a daemon that is not running.
      await kubelet.start().catch((err: unknown) => {
        telemetry?.close();
        throw err;
      });
    });
}
