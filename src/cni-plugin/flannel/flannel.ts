/**
 * pontoon-flannel: the flannel CNI plugin's contract. It reads the subnet.env that flanneld
 * writes, derives a bridge network config for this node (subnet for IPAM, MTU, masquerade)
 * and delegates to a bridge plugin — pontoon-bridge in-process by default, or any plugin
 * named in `delegate.type`, exec'd through CNI_PATH.
 *
 * The derived config is saved per container (`<dataDir>/<containerID>`) and DEL uses the
 * saved copy, so a container is torn down with the config it was set up with even if the
 * node's subnet.env changed in between.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatIpNet, networkOf } from '../../lib/ip.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc } from '../bridge/bridge.js';
import { execPlugin, execPluginAdd } from '../../cni/invoke.js';
import { validAttachments } from '../ipam/hostlocal.js';
import { CniError, CniErrorCode } from '../../cni/errors.js';
import type { CmdArgs, NetConf, Result } from '../../cni/types.js';
import { DEFAULT_SUBNET_FILE, readSubnetEnv, type SubnetEnv, SubnetEnvError } from '../../api/subnet-env.js';

export const DEFAULT_FLANNEL_DATA_DIR = '/var/lib/cni/flannel';
const IN_PROCESS_DELEGATE = 'pontoon-bridge';

interface FlannelConf {
  subnetFile: string;
  dataDir: string;
  delegate: Record<string, unknown>;
}

function parseFlannelConf(config: NetConf): FlannelConf {
  const text = (field: string, fallback: string): string => {
    const value = config[field] ?? fallback;
    if (typeof value !== 'string' || value === '') throw new CniError(CniErrorCode.InvalidNetworkConfig, `"${field}" must be a path`);
    return value;
  };
  const delegate = config['delegate'] ?? {};
  if (typeof delegate !== 'object' || delegate === null || Array.isArray(delegate)) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, '"delegate" must be an object');
  }
  return { subnetFile: text('subnetFile', DEFAULT_SUBNET_FILE), dataDir: text('dataDir', DEFAULT_FLANNEL_DATA_DIR), delegate: delegate as Record<string, unknown> };
}

function loadSubnetEnv(path: string): SubnetEnv {
  if (!existsSync(path)) {
    throw new CniError(CniErrorCode.TryAgainLater, `${path} does not exist yet: flanneld has not taken a subnet lease on this node (is it running?)`);
  }
  try {
    return readSubnetEnv(path);
  } catch (err) {
    if (err instanceof SubnetEnvError) throw new CniError(CniErrorCode.InvalidNetworkConfig, err.message);
    throw err;
  }
}

/** The delegate's network config, as flannel's plugin builds it. */
export function delegateConfig(config: NetConf, flannel: FlannelConf, env: SubnetEnv): NetConf {
  const { delegate } = flannel;
  const ipamOverrides = typeof delegate['ipam'] === 'object' && delegate['ipam'] !== null ? (delegate['ipam'] as Record<string, unknown>) : {};
  return {
    ...delegate,
    cniVersion: config.cniVersion,
    name: config.name,
    type: typeof delegate['type'] === 'string' ? delegate['type'] : IN_PROCESS_DELEGATE,
    isGateway: delegate['isGateway'] ?? true,
    mtu: delegate['mtu'] ?? env.mtu,
    // flanneld masquerades for the whole network when FLANNEL_IPMASQ=true; then the bridge must not.
    ipMasq: delegate['ipMasq'] ?? !env.ipMasq,
    ipam: {
      type: 'pontoon-ipam',
      ...ipamOverrides,
      // Dual-stack: one range set per family (the bridge gives the pod an address of each),
      // as flannel's plugin does with FLANNEL_IPV6_SUBNET.
      ranges: [[{ subnet: formatIpNet(networkOf(env.subnet)) }], ...(env.ipv6Subnet ? [[{ subnet: formatIpNet(networkOf(env.ipv6Subnet)) }]] : [])],
      routes: [{ dst: formatIpNet(env.network) }, ...(env.ipv6Network ? [{ dst: formatIpNet(env.ipv6Network) }] : [])],
    },
    ...(config.runtimeConfig ? { runtimeConfig: config.runtimeConfig } : {}),
    ...(config.args ? { args: config.args } : {}),
    ...(config.prevResult !== undefined ? { prevResult: config.prevResult } : {}),
  } as NetConf;
}

function savedPath(flannel: FlannelConf, containerId: string): string {
  return join(flannel.dataDir, containerId);
}

function save(flannel: FlannelConf, containerId: string, delegate: NetConf): void {
  mkdirSync(flannel.dataDir, { recursive: true });
  const path = savedPath(flannel, containerId);
  writeFileSync(`${path}.tmp`, JSON.stringify(delegate));
  renameSync(`${path}.tmp`, path);
}

function loadSaved(flannel: FlannelConf, containerId: string): NetConf | undefined {
  try {
    return JSON.parse(readFileSync(savedPath(flannel, containerId), 'utf8')) as NetConf;
  } catch {
    return undefined;
  }
}

function withConfig(args: CmdArgs, config: NetConf): CmdArgs {
  return { ...args, config, stdin: Buffer.from(JSON.stringify(config)) };
}

async function delegateAdd(args: CmdArgs, config: NetConf): Promise<Result> {
  const delegated = withConfig(args, config);
  return config.type === IN_PROCESS_DELEGATE ? bridgeAdd(delegated) : execPluginAdd(config.type, delegated.stdin, args.path);
}

async function delegateRun(command: 'DEL' | 'CHECK' | 'GC', args: CmdArgs, config: NetConf): Promise<void> {
  const delegated = withConfig(args, config);
  if (config.type === IN_PROCESS_DELEGATE) {
    const handler = { DEL: bridgeDel, CHECK: bridgeCheck, GC: bridgeGc }[command];
    return handler(delegated);
  }
  execPlugin(config.type, command, delegated.stdin, args.path);
}

export async function flannelAdd(args: CmdArgs): Promise<Result> {
  const flannel = parseFlannelConf(args.config);
  const env = loadSubnetEnv(flannel.subnetFile);
  const config = delegateConfig(args.config, flannel, env);
  // Saved before delegating and kept if ADD fails: the runtime's DEL that follows a failed
  // ADD then reaches the delegate with the same config and releases whatever leaked.
  save(flannel, args.containerId, config);
  return delegateAdd(args, config);
}

export async function flannelDel(args: CmdArgs): Promise<void> {
  const flannel = parseFlannelConf(args.config);
  const saved = loadSaved(flannel, args.containerId);
  // Nothing saved: ADD never got this far, or DEL already ran. DEL must still succeed.
  if (!saved) return;
  await delegateRun('DEL', args, saved);
  rmSync(savedPath(flannel, args.containerId), { force: true });
}

export async function flannelCheck(args: CmdArgs): Promise<void> {
  const flannel = parseFlannelConf(args.config);
  const saved = loadSaved(flannel, args.containerId);
  if (!saved) throw new CniError(CniErrorCode.UnknownContainer, `no saved network config for container ${args.containerId} in ${flannel.dataDir}`);
  await delegateRun('CHECK', args, { ...saved, ...(args.config.prevResult !== undefined ? { prevResult: args.config.prevResult } : {}) });
}

export async function flannelStatus(args: CmdArgs): Promise<void> {
  const flannel = parseFlannelConf(args.config);
  if (!existsSync(flannel.subnetFile)) {
    throw new CniError(CniErrorCode.PluginNotAvailable, `${flannel.subnetFile} does not exist: flanneld is not running on this node`);
  }
}

export async function flannelGc(args: CmdArgs): Promise<void> {
  const flannel = parseFlannelConf(args.config);
  const valid = new Set(validAttachments(args.config).map((a) => a.containerId));
  if (existsSync(flannel.dataDir)) {
    for (const containerId of readdirSync(flannel.dataDir)) {
      if (!valid.has(containerId) && !containerId.endsWith('.tmp')) rmSync(join(flannel.dataDir, containerId), { force: true });
    }
  }
  if (!existsSync(flannel.subnetFile)) return;
  const config = delegateConfig(args.config, flannel, loadSubnetEnv(flannel.subnetFile));
  await delegateRun('GC', args, { ...config, 'cni.dev/valid-attachments': args.config['cni.dev/valid-attachments'] ?? [] });
}
