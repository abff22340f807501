/** /run/flannel/subnet.env: how the CNI plugin learns this node's subnet and MTU. */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PontoonError } from '../lib/errors.js';
import { formatIpNet, type IpNet, networkOf, offsetIp, parseIpNet } from '../lib/ip.js';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

export interface SubnetEnv {
  network: IpNet;
  /** The node's subnet with the gateway address: 10.244.1.1/24. */
  subnet: IpNet;
  mtu: number;
  ipMasq: boolean;
}

export class SubnetEnvError extends PontoonError {}

export function subnetEnvFor(network: IpNet, lease: IpNet, mtu: number, ipMasq: boolean): SubnetEnv {
  return { network, subnet: { ...offsetIp(networkOf(lease), 1n), prefixLength: lease.prefixLength }, mtu, ipMasq };
}

export function formatSubnetEnv(env: SubnetEnv): string {
  return [
    `FLANNEL_NETWORK=${formatIpNet(env.network)}`,
    `FLANNEL_SUBNET=${formatIpNet(env.subnet)}`,
    `FLANNEL_MTU=${env.mtu}`,
    `FLANNEL_IPMASQ=${env.ipMasq}`,
    '',
  ].join('\n');
}

/** Temp file + rename: a reader sees the old file or the new one, never half of one. */
export function writeSubnetEnv(path: string, env: SubnetEnv): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, formatSubnetEnv(env), { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

export function parseSubnetEnv(text: string, path = 'subnet.env'): SubnetEnv {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z_]+)=(.*)$/.exec(line);
    if (match && match[1]) values.set(match[1], (match[2] ?? '').trim());
  }
  const need = (key: string): string => {
    const value = values.get(key);
    if (!value) throw new SubnetEnvError(`${path} has no ${key}`);
    return value;
  };
  try {
    const mtu = Number(need('FLANNEL_MTU'));
    if (!Number.isInteger(mtu) || mtu < 68) throw new SubnetEnvError(`${path}: FLANNEL_MTU "${values.get('FLANNEL_MTU')}" is not an MTU`);
    return {
      network: parseIpNet(need('FLANNEL_NETWORK')),
      subnet: parseIpNet(need('FLANNEL_SUBNET')),
      mtu,
      ipMasq: values.get('FLANNEL_IPMASQ') === 'true',
    };
  } catch (err) {
    if (err instanceof SubnetEnvError) throw err;
    throw new SubnetEnvError(`${path} is malformed: ${(err as Error).message}`, { cause: err });
  }
}

export function readSubnetEnv(path: string): SubnetEnv {
  return parseSubnetEnv(readFileSync(path, 'utf8'), path);
}
