/**
 * `pontoon init`: a host becomes the control plane, as `kubeadm init` makes one — except that
 * it starts nothing. It writes, under --dir (default /var/lib/pontoon), the files the
 * control-plane daemons run on (the same code `cluster up` writes them with,
 * control-plane-files.ts): the cluster CA and the apiserver's certificate for 127.0.0.1, the
 * `kubernetes` Service IP and --advertise-address; the service-account key; the apiserver's
 * kubelet-client certificate; a static tokens file (admin, controller-manager, scheduler,
 * kube-dns, kube-proxy); their kubeconfigs; `pontoon.env`, which the systemd units in
 * deploy/systemd read for what differs per host; and `pontoon.yaml`, deploy/pontoon.yaml with
 * its placeholders filled for this installation. systemd then runs the daemons
 * (deploy/systemd/*.service): a unit that restarts a crashed daemon is systemd's job, not a
 * detached process of ours. Re-running init keeps the CA, keys and tokens (kubeconfigs
 * already handed out keep working) and re-issues only what the flags change.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PontoonError } from '../lib/errors.js';
import { parseIpNet } from '../lib/ip.js';
import { ensureControlPlanePki, identities, kubeconfigText, readTokens, writeTokensFile } from './control-plane-files.js';
import { readDeployTemplate, renderManifest } from './cluster/agents.js';
import { networkConfigJson } from './cluster/cluster.js';
import { POD_NETWORK } from './cluster/addressing.js';
import { cniDistDir, packageRoot } from './paths.js';

export class InitError extends PontoonError {}

export const DEFAULT_STATE_DIR = '/var/lib/pontoon';
export const APISERVER_PORT = 6443;
const INIT_BACKENDS = ['vxlan', 'udp', 'host-gw'] as const;
type InitBackend = (typeof INIT_BACKENDS)[number];

export interface InitOptions {
  dir: string;
  advertiseAddress: string;
  /** Where the nodes' addresses are: kubelet serving certificates for them are approved automatically. */
  nodeNetwork: string;
  clusterName: string;
  clusterCidr: string;
  nodeCidrMaskSize: number;
  backend: InitBackend;
  proxyMode: 'nftables' | 'iptables';
  /** The nodes' filesystem root as their kubelets see it (deploy/pontoon.yaml's HOST_ROOT): / on a real host. */
  hostRoot: string;
}

export interface InitResult {
  adminKubeconfig: string;
  agentsManifest: string;
  envFile: string;
  caFile: string;
}

/** The file names the units in deploy/systemd name; init writes exactly these. */
export const INIT_FILES = {
  tokens: 'tokens.csv',
  admin: 'admin.kubeconfig',
  controllerManager: 'controller-manager.kubeconfig',
  scheduler: 'scheduler.kubeconfig',
  env: 'pontoon.env',
  agents: 'pontoon.yaml',
} as const;

export function initControlPlane(options: InitOptions): InitResult {
  if (isIP(options.advertiseAddress) === 0) throw new InitError(`--advertise-address must be this host's IP address on the node network, got "${options.advertiseAddress}"`);
  try {
    parseIpNet(options.nodeNetwork);
  } catch (err) {
    throw new InitError(`--node-network must be the CIDR the nodes' addresses are in, got "${options.nodeNetwork}"`, { cause: err });
  }
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const { pki } = ensureControlPlanePki(join(options.dir, 'pki'), [options.advertiseAddress]);
  const tokensFile = join(options.dir, INIT_FILES.tokens);
  // Kept when present: a new token would lock out every kubeconfig written before.
  const tokens = existsSync(tokensFile) ? readTokens(tokensFile) : writeTokensFile(tokensFile, identities([]));
  const host = options.advertiseAddress.includes(':') ? `[${options.advertiseAddress}]` : options.advertiseAddress;
  const write = (name: string, server: string, user: string): string => {
    const path = join(options.dir, name);
    writeFileSync(path, kubeconfigText({ cluster: options.clusterName, server, token: tokens.get(user) ?? '', caPem: pki.caPem }), { mode: 0o600 });
    return path;
  };
  // The admin's is meant to be copied off the host, so it names the advertised address;
  // the daemons beside the apiserver use loopback.
  const adminKubeconfig = write(INIT_FILES.admin, `https://${host}:${APISERVER_PORT}`, 'admin');
  write(INIT_FILES.controllerManager, `https://127.0.0.1:${APISERVER_PORT}`, 'system:kube-controller-manager');
  write(INIT_FILES.scheduler, `https://127.0.0.1:${APISERVER_PORT}`, 'system:kube-scheduler');
  const envFile = join(options.dir, INIT_FILES.env);
  writeFileSync(
    envFile,
    [
      '# Written by pontoon init; read by deploy/systemd/pontoon-{apiserver,controller-manager}.service.',
      `PONTOON_ADVERTISE_ADDRESS=${options.advertiseAddress}`,
      `PONTOON_CLUSTER_CIDR=${options.clusterCidr}`,
      `PONTOON_NODE_CIDR_MASK_SIZE=${options.nodeCidrMaskSize}`,
      `PONTOON_NODE_NETWORK=${options.nodeNetwork}`,
      '',
    ].join('\n'),
  );
  const agentsManifest = join(options.dir, INIT_FILES.agents);
  writeFileSync(agentsManifest, renderAgents(options));
  return { adminKubeconfig, agentsManifest, envFile, caFile: pki.caCertPath };
}

/** deploy/pontoon.yaml for this installation: the agent DaemonSets (flanneld, proxy); BGP is the lab's. */
function renderAgents(options: InitOptions): string {
  const values: Record<string, string> = {
    NODE: process.execPath,
    PONTOON: join(packageRoot(), 'dist', 'cli', 'pontoon.cjs'),
    CNI_SOURCE: cniDistDir(),
    NET_CONF: JSON.stringify({ ...JSON.parse(networkConfigJson(options.backend, false)), Network: options.clusterCidr }),
    APISERVER_HOST: options.advertiseAddress,
    APISERVER_PORT: String(APISERVER_PORT),
    HOST_ROOT: options.hostRoot,
    PROXY_MODE: options.proxyMode,
    CLUSTER_CIDR: options.clusterCidr,
    IPIP_MODE: 'never',
  };
  return renderManifest(readDeployTemplate('pontoon.yaml'), values, (object) => {
    const labels = (object['metadata'] as { labels?: Record<string, string> } | undefined)?.labels;
    return object['kind'] !== 'DaemonSet' || labels?.['pontoon.dev/component'] !== 'bgp';
  });
}

interface InitFlags {
  dir: string;
  advertiseAddress?: string;
  nodeNetwork?: string;
  clusterName: string;
  clusterCidr: string;
  nodeCidrMaskSize: string;
  backend: string;
  proxyMode: string;
  hostRoot: string;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('make this host the control plane: write the CA, certificates, tokens, kubeconfigs and the agents manifest the systemd units in deploy/systemd run on')
    .requiredOption('--advertise-address <ip>', "this host's address on the node network: the apiserver's certificate covers it and nodes join at https://IP:6443")
    .requiredOption('--node-network <cidr>', "the network the nodes' addresses are in: their kubelet serving certificates are approved automatically (--kubelet-serving-approve-cidrs)")
    .option('--dir <path>', 'state directory (the units in deploy/systemd name /var/lib/pontoon)', DEFAULT_STATE_DIR)
    .option('--cluster-name <name>', 'the cluster name in the kubeconfigs', 'pontoon')
    .option('--cluster-cidr <cidr>', 'the pod network; each node gets a /24 of it', POD_NETWORK)
    .option('--node-cidr-mask-size <bits>', "size of each node's pod subnet", '24')
    .option('--backend <name>', `overlay of the agents manifest: ${INIT_BACKENDS.join(', ')}`, 'vxlan')
    .option('--proxy-mode <mode>', 'nftables or iptables', 'nftables')
    .option('--host-root <dir>', "the nodes' filesystem root as their kubelets see it (the agents' hostPath volumes)", '/')
    .action((flags: InitFlags) => {
      if (!(INIT_BACKENDS as readonly string[]).includes(flags.backend)) throw new InitError(`--backend must be one of ${INIT_BACKENDS.join(', ')}, got "${flags.backend}"`);
      if (flags.proxyMode !== 'nftables' && flags.proxyMode !== 'iptables') throw new InitError(`--proxy-mode must be nftables or iptables, got "${flags.proxyMode}"`);
      const mask = Number(flags.nodeCidrMaskSize);
      if (!Number.isInteger(mask) || mask < 8 || mask > 30) throw new InitError(`--node-cidr-mask-size must be 8-30, got "${flags.nodeCidrMaskSize}"`);
      const result = initControlPlane({
        dir: flags.dir,
        advertiseAddress: flags.advertiseAddress ?? '',
        nodeNetwork: flags.nodeNetwork ?? '',
        clusterName: flags.clusterName,
        clusterCidr: flags.clusterCidr,
        nodeCidrMaskSize: mask,
        backend: flags.backend as InitBackend,
        proxyMode: flags.proxyMode,
        hostRoot: flags.hostRoot,
      });
      console.log(`✔ CA, certificates and tokens in ${join(flags.dir, 'pki')} and ${join(flags.dir, INIT_FILES.tokens)}`);
      console.log(`✔ admin kubeconfig ${result.adminKubeconfig}; agents manifest ${result.agentsManifest}`);
      console.log('next: systemctl enable --now pontoon-apiserver pontoon-controller-manager pontoon-scheduler');
      console.log(`      kubectl --kubeconfig ${result.adminKubeconfig} apply -f ${result.agentsManifest}`);
      console.log(`      pontoon token create --kubeconfig ${result.adminKubeconfig} --print-join-command`);
    });
}

