/**
 * `pontoon install-cni`: what kube-flannel's init containers do (`cp flannel /opt/cni/bin`,
 * `cp cni-conf.json /etc/cni/net.d/10-flannel.conflist`), as one step of the agents'
 * DaemonSet pod: copy the CNI plugin binaries into the node's CNI bin dir and write the
 * conflist from the mounted ConfigMap file into the node's CNI conf dir. The conflist is
 * validated before anything is written and lands by rename, so the kubelet — which reports
 * the node NotReady until a conflist exists and then starts pods with it — never reads half
 * a file or a broken one.
 *
 * `--host-root`: the CNI plugins run on the node (the kubelet execs them), not in this
 * container, so the files our pontoon-flannel plugin names (subnet.env, its data dirs) must be
 * written as the node sees them. On a real node that is `/` and nothing changes; a lab node's
 * "host filesystem" is a directory (the kubelet's --host-path-root), and the paths are
 * rewritten under it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_FLANNEL_DATA_DIR } from '../cni-plugin/flannel/flannel.js';
import { DEFAULT_SUBNET_FILE } from '../api/subnet-env.js';
import { parseNetworkConfig } from '../kubelet/cni.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from '../kubelet/cni.js';
import { PontoonError } from '../lib/errors.js';
import { installCniPlugins } from './cni.js';
import { cniDistDir } from './paths.js';

export class InstallCniError extends PontoonError {}

export const DEFAULT_CNI_CONF_SOURCE = '/etc/kube-flannel/cni-conf.json';
export const DEFAULT_CONF_NAME = '10-pontoon.conflist';
/** host-local's default, which pontoon-ipam shares. */
const DEFAULT_IPAM_DATA_DIR = '/var/lib/cni/networks';

export interface InstallCniOptions {
  confSource: string;
  confDir: string;
  confName: string;
  binDir: string;
  pluginSource: string;
  hostRoot?: string;
}

/** Puts node-filesystem paths of pontoon-flannel entries under `hostRoot` (defaults included). */
export function rootConflist(conflist: Record<string, unknown>, hostRoot: string): Record<string, unknown> {
  const under = (path: unknown, fallback: string): string => join(hostRoot, typeof path === 'string' && isAbsolute(path) ? path : fallback);
  const plugins = Array.isArray(conflist['plugins']) ? (conflist['plugins'] as unknown[]) : [];
  return {
    ...conflist,
    plugins: plugins.map((raw) => {
      if (typeof raw !== 'object' || raw === null || (raw as Record<string, unknown>)['type'] !== 'pontoon-flannel') return raw;
      const plugin = raw as Record<string, unknown>;
      const delegate = (typeof plugin['delegate'] === 'object' && plugin['delegate'] !== null ? plugin['delegate'] : {}) as Record<string, unknown>;
      const ipam = (typeof delegate['ipam'] === 'object' && delegate['ipam'] !== null ? delegate['ipam'] : {}) as Record<string, unknown>;
      return {
        ...plugin,
        subnetFile: under(plugin['subnetFile'], DEFAULT_SUBNET_FILE),
        dataDir: under(plugin['dataDir'], DEFAULT_FLANNEL_DATA_DIR),
        delegate: { ...delegate, ipam: { ...ipam, dataDir: under(ipam['dataDir'], DEFAULT_IPAM_DATA_DIR) } },
      };
    }),
  };
}

/** Installs plugins and conflist; returns the paths written. */
export function installCni(options: InstallCniOptions): string[] {
  let text: string;
  try {
    text = readFileSync(options.confSource, 'utf8');
  } catch (err) {
    throw new InstallCniError(`failed to read CNI config "${options.confSource}": ${(err as Error).message}`, { cause: err });
  }
  // Throws CniConfigError naming the file: nothing is installed from a bad ConfigMap.
  parseNetworkConfig(text, options.confSource);
  const source = JSON.parse(text) as Record<string, unknown>;
  const conflist = options.hostRoot ? rootConflist(source, options.hostRoot) : source;
  if (!/\.(conflist|conf|json)$/.test(options.confName)) throw new InstallCniError(`--conf-name "${options.confName}" must end in .conflist, .conf or .json (what the kubelet reads)`);
  const written = installCniPlugins(options.binDir, options.pluginSource);
  mkdirSync(options.confDir, { recursive: true });
  const target = join(options.confDir, options.confName);
  // The temporary name has no CNI extension, so a kubelet listing the dir meanwhile skips it.
  const temporary = `${target}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(conflist, null, 2)}\n`);
  renameSync(temporary, target);
  return [...written, target];
}

export function registerInstallCni(program: Command): void {
  program
    .command('install-cni')
    .description('install the CNI plugins into the node’s CNI bin dir and the conflist from a mounted ConfigMap into its conf dir (the agents’ init container)')
    .option('--cni-conf <file>', 'the conflist to install (the ConfigMap’s cni-conf.json)', DEFAULT_CNI_CONF_SOURCE)
    .option('--cni-conf-dir <dir>', 'the node’s CNI conf dir', DEFAULT_CNI_CONF_DIR)
    .option('--conf-name <name>', 'file name in the conf dir', DEFAULT_CONF_NAME)
    .option('--cni-bin-dir <dir>', 'the node’s CNI bin dir', DEFAULT_CNI_BIN_DIR)
    .option('--plugin-source <dir>', 'where the built plugins are', cniDistDir())
    .option('--host-root <dir>', 'the node’s filesystem root as the kubelet sees it (a lab node’s --host-path-root); plugin state paths in the conflist go under it')
    .action((flags: { cniConf: string; cniConfDir: string; confName: string; cniBinDir: string; pluginSource: string; hostRoot?: string }) => {
      const written = installCni({
        confSource: flags.cniConf,
        confDir: flags.cniConfDir,
        confName: flags.confName,
        binDir: flags.cniBinDir,
        pluginSource: flags.pluginSource,
        ...(flags.hostRoot ? { hostRoot: flags.hostRoot } : {}),
      });
      for (const path of written) console.log(`installed ${path}`);
    });
}
