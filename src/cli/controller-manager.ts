/** `pontoon controller-manager`: ReplicaSet, Deployment, DaemonSet, Job, Endpoints(Slice), node IPAM, node lifecycle, GC, pod GC. */
import type { Command } from 'commander';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { ControllerManager, selectControllers, CONTROLLER_NAMES } from '../controllers/manager.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { FlagError, startTelemetry, stopOnSignals, TELEMETRY_DEFAULTS, withClientOptions, withTelemetryOption } from './daemon.js';
import { Registry } from 'prom-client';
import { readFileSync } from 'node:fs';
import { type IpNet, parseIpNet } from '../lib/ip.js';
import { readSigningKey } from '../lib/jws.js';

interface ControllerManagerFlags extends ClientFlags {
  controllers: string;
  clusterCidr: string;
  nodeCidrMaskSize: string;
  nodeCidrMaskSizeIpv4: string;
  nodeCidrMaskSizeIpv6: string;
  nodeMonitorGracePeriod: string;
  podEvictionTimeout: string;
  resync: string;
  serviceAccountPrivateKeyFile?: string;
  rootCaFile?: string;
  clusterSigningCertFile?: string;
  clusterSigningKeyFile?: string;
  clusterSigningDuration: string;
  kubeletServingApproveCidrs?: string;
  logLevel: string;
  metricsBindAddress: string;
}

export class DurationFlagError extends PontoonError {}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations as the upstream flags take them: "40s", "5m", "1m30s", "500ms", "0". */
export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new DurationFlagError(`${flag} must be a duration like 40s, 5m or 1m30s, got "${text}"`);
  }
  return parts.reduce((total, [, value, unit]) => total + Number(value) * (UNIT_MS[unit ?? 's'] ?? 0), 0);
}

export function registerControllerManager(program: Command): void {
  withTelemetryOption(withClientOptions(program.command('controller-manager').description(`run the controllers: ${CONTROLLER_NAMES.join(', ')}`)), TELEMETRY_DEFAULTS['controller-manager'])
    .option('--controllers <list>', `controllers to run: "*" or a list of ${CONTROLLER_NAMES.join(', ')}; "-name" leaves one out`, '*')
    .option('--cluster-cidr <cidrs>', 'pod network(s) the node-ipam controller carves node subnets from: one CIDR, or v4,v6 for dual-stack', '10.244.0.0/16')
    .option('--node-cidr-mask-size <bits>', 'prefix length of each node’s pod subnet (single-stack)', '24')
    .option('--node-cidr-mask-size-ipv4 <bits>', 'dual-stack: prefix length of each node’s IPv4 pod subnet', '24')
    .option('--node-cidr-mask-size-ipv6 <bits>', 'dual-stack: prefix length of each node’s IPv6 pod subnet', '64')
    .option('--node-monitor-grace-period <duration>', 'how long a node may miss heartbeats before it is marked Unknown', '40s')
    .option('--pod-eviction-timeout <duration>', 'delete pods from an unreachable node after this (0: never)', '5m')
    .option('--resync <duration>', 'replay every cached object to the controllers this often (0: never)', '10m')
    .option('--service-account-private-key-file <path>', 'PEM key the serviceaccount-token controller signs legacy token Secrets with')
    .option('--root-ca-file <path>', 'cluster CA (PEM) published as ConfigMap kube-root-ca.crt and put into token Secrets')
    .option('--cluster-signing-cert-file <path>', 'CA certificate (PEM) csrsigning issues node client certificates from')
    .option('--cluster-signing-key-file <path>', 'the private key (PEM) of --cluster-signing-cert-file')
    .option('--cluster-signing-duration <duration>', 'longest lifetime of an issued certificate', '8760h')
    .option('--kubelet-serving-approve-cidrs <cidrs>', 'approve kubelet serving certificate requests (kubernetes.io/kubelet-serving) whose IPs are all in these ranges, comma-separated (default: none are approved automatically)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: ControllerManagerFlags) => {
      if (!!flags.clusterSigningCertFile !== !!flags.clusterSigningKeyFile) throw new FlagError('--cluster-signing-cert-file and --cluster-signing-key-file go together');
      const log = createLogger('controller-manager', { level: flags.logLevel });
      const maskOf = (text: string, flag: string): number => {
        const size = Number(text);
        if (!Number.isInteger(size)) throw new DurationFlagError(`${flag} must be an integer, got "${text}"`);
        return size;
      };
      const maskSize = maskOf(flags.nodeCidrMaskSize, '--node-cidr-mask-size');
      const api = clientFromFlags(flags, 'pontoon-controller-manager');
      let rootCaPem: string | undefined;
      if (flags.rootCaFile) {
        try {
          rootCaPem = readFileSync(flags.rootCaFile, 'utf8');
        } catch (err) {
          throw new FlagError(`failed to read --root-ca-file "${flags.rootCaFile}": ${(err as Error).message}`);
        }
      }
      const manager = new ControllerManager({
        api,
        log,
        controllers: selectControllers(flags.controllers),
        clusterCidr: flags.clusterCidr,
        nodeCidrMaskSize: maskSize,
        nodeCidrMaskSizeIpv4: maskOf(flags.nodeCidrMaskSizeIpv4, '--node-cidr-mask-size-ipv4'),
        nodeCidrMaskSizeIpv6: maskOf(flags.nodeCidrMaskSizeIpv6, '--node-cidr-mask-size-ipv6'),
        nodeMonitorGracePeriodMs: parseDuration(flags.nodeMonitorGracePeriod, '--node-monitor-grace-period'),
        podEvictionTimeoutMs: parseDuration(flags.podEvictionTimeout, '--pod-eviction-timeout'),
        resyncSeconds: parseDuration(flags.resync, '--resync') / 1000,
        ...(flags.serviceAccountPrivateKeyFile ? { serviceAccountSigningKey: readSigningKey(flags.serviceAccountPrivateKeyFile) } : {}),
        ...(rootCaPem !== undefined ? { rootCaPem } : {}),
        ...(flags.kubeletServingApproveCidrs ? { kubeletServingApproveNets: parseCidrList(flags.kubeletServingApproveCidrs) } : {}),
        ...(flags.clusterSigningCertFile && flags.clusterSigningKeyFile
          ? {
              clusterSigning: {
                caCertPath: flags.clusterSigningCertFile,
                caKeyPath: flags.clusterSigningKeyFile,
                durationSeconds: parseDuration(flags.clusterSigningDuration, '--cluster-signing-duration') / 1000,
              },
            }
          : {}),
      });
      let started = false;
      const telemetry = await startTelemetry('controller-manager', flags.metricsBindAddress, new Registry(), () => ({ healthy: started, detail: started ? 'ok' : 'controllers not started yet' }));
      stopOnSignals(log, 'stopping', async () => {
        telemetry?.close();
        await manager.stop();
      });
      // A daemon that fails to start must exit (and say why): the telemetry listener would
      // otherwise keep the process alive, serving metrics for a daemon that is not running.
      await manager.start().catch((err: unknown) => {
        telemetry?.close();
        throw err;
      });
      started = true;
      log.info({ controllers: manager.controllers.map((c) => c.name) }, 'controller-manager running');
    });
}

/** --kubelet-serving-approve-cidrs: comma-separated CIDRs. */
function parseCidrList(text: string): IpNet[] {
  return text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    try {
      return parseIpNet(part);
    } catch (err) {
      throw new FlagError(`--kubelet-serving-approve-cidrs: "${part}" is not a CIDR: ${(err as Error).message}`);
    }
  });
}
