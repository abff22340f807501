/** `pontoon controller-manager`: ReplicaSet, Deployment, Endpoints(Slice), node IPAM, node lifecycle, GC, pod GC. */
import type { Command } from 'commander';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { ControllerManager, selectControllers, CONTROLLER_NAMES } from '../controllers/manager.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { stopOnSignals, withClientOptions } from './daemon.js';

interface ControllerManagerFlags extends ClientFlags {
  controllers: string;
  clusterCidr: string;
  nodeCidrMaskSize: string;
  nodeMonitorGracePeriod: string;
  podEvictionTimeout: string;
  resync: string;
  logLevel: string;
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
  withClientOptions(program.command('controller-manager').description(`run the controllers: ${CONTROLLER_NAMES.join(', ')}`))
    .option('--controllers <list>', `controllers to run: "*" or a list of ${CONTROLLER_NAMES.join(', ')}; "-name" leaves one out`, '*')
    .option('--cluster-cidr <cidr>', 'pod network the node-ipam controller carves node subnets from', '10.244.0.0/16')
    .option('--node-cidr-mask-size <bits>', 'prefix length of each node’s pod subnet', '24')
    .option('--node-monitor-grace-period <duration>', 'how long a node may miss heartbeats before it is marked Unknown', '40s')
    .option('--pod-eviction-timeout <duration>', 'delete pods from an unreachable node after this (0: never)', '5m')
    .option('--resync <duration>', 'replay every cached object to the controllers this often (0: never)', '10m')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: ControllerManagerFlags) => {
      const log = createLogger('controller-manager', { level: flags.logLevel });
      const maskSize = Number(flags.nodeCidrMaskSize);
      if (!Number.isInteger(maskSize)) throw new DurationFlagError(`--node-cidr-mask-size must be an integer, got "${flags.nodeCidrMaskSize}"`);
      const api = clientFromFlags(flags, 'pontoon-controller-manager');
      const manager = new ControllerManager({
        api,
        log,
        controllers: selectControllers(flags.controllers),
        clusterCidr: flags.clusterCidr,
        nodeCidrMaskSize: maskSize,
        nodeMonitorGracePeriodMs: parseDuration(flags.nodeMonitorGracePeriod, '--node-monitor-grace-period'),
        podEvictionTimeoutMs: parseDuration(flags.podEvictionTimeout, '--pod-eviction-timeout'),
        resyncSeconds: parseDuration(flags.resync, '--resync') / 1000,
      });
      stopOnSignals(log, 'stopping', () => manager.stop());
      await manager.start();
      log.info({ controllers: manager.controllers.map((c) => c.name) }, 'controller-manager running');
    });
}
