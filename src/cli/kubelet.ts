/** `pontoon kubelet`: the node agent, run inside the node's network namespace. */
import type { Command } from 'commander';
import type { Taint } from '../api/types.js';
import { clientFromFlags } from '../client/client.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from '../kubelet/cni.js';
import { Kubelet } from '../kubelet/kubelet.js';
import { DEFAULT_ROOT_DIR } from '../kubelet/runtime.js';
import { DEFAULT_NETNS_PREFIX } from '../kubelet/sandbox.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { stopOnSignals, withClientOptions } from './daemon.js';

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
  logLevel: string;
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

export function registerKubelet(program: Command): void {
  withClientOptions(program.command('kubelet').description('node agent: registers the Node, runs the pods bound to it in netns sandboxes through CNI, reports their status'))
    .option('--node-name <name>', 'name of this Node (required)')
    .option('--node-ip <ip>', 'the InternalIP other nodes reach this one at (required)')
    .option('--cni-conf-dir <dir>', 'CNI network configs; the lexically first is used', DEFAULT_CNI_CONF_DIR)
    .option('--cni-bin-dir <dirs>', 'CNI plugin directories, colon-separated', DEFAULT_CNI_BIN_DIR)
    .option('--root-dir <dir>', 'pod state, container logs, CNI result cache and kubelet.sock', DEFAULT_ROOT_DIR)
    .option('--netns-prefix <prefix>', 'name prefix of pod sandbox namespaces', DEFAULT_NETNS_PREFIX)
    .option('--register-with-taints <taints>', 'taints the Node registers with: key[=value]:Effect,...')
    .option('--max-pods <n>', 'pods this node accepts', '110')
    .option('--node-status-update-frequency <seconds>', 'Node status heartbeat interval', '10')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: KubeletFlags) => {
      if (!flags.nodeName) throw new KubeletFlagError('--node-name is required');
      if (!flags.nodeIp) throw new KubeletFlagError('--node-ip is required');
      const log = createLogger('kubelet', { level: flags.logLevel });
      const api = clientFromFlags({ kubeconfig: flags.kubeconfig, server: flags.server, token: flags.token, tokenFile: flags.tokenFile }, `pontoon-kubelet/${flags.nodeName}`);
      const taints = flags.registerTaints ? parseTaints(flags.registerTaints) : undefined;
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
        log,
      });
      stopOnSignals(log, 'stopping; pods keep running', () => kubelet.stop());
      await kubelet.start();
    });
}
