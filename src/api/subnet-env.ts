/**
 * /run/flannel/subnet.env: how the CNI plugin learns this node's subnet and MTU.
 *
 * Dual-stack adds flannel's FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET; an IPv6-only node
 * (EnableIPv4: false) has only those two. In memory `network`/`subnet` are the primary
 * family's (IPv6 on an IPv6-only node, so single-family readers need no change) and
 * `ipv6Network`/`ipv6Subnet` the second family of a dual-stack node.
 */
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
  /** Dual-stack: the IPv6 network and this node's IPv6 subnet with its gateway (::1). */
  ipv6Network?: IpNet;
  ipv6Subnet?: IpNet;
}

export class SubnetEnvError extends PontoonError {}

function gatewayOf(lease: IpNet): IpNet {
  return { ...offsetIp(networkOf(lease), 1n), prefixLength: lease.prefixLength };
}

export function subnetEnvFor(network: IpNet, lease: IpNet, mtu: number, ipMasq: boolean, ipv6?: { network: IpNet; lease: IpNet }): SubnetEnv {
  return {
    network,
    subnet: gatewayOf(lease),
    mtu,
    ipMasq,
    ...(ipv6 ? { ipv6Network: ipv6.network, ipv6Subnet: gatewayOf(ipv6.lease) } : {}),
  };
}

export function formatSubnetEnv(env: SubnetEnv): string {
  const v6Only = env.network.family === 6;
  const ipv6Network = v6Only ? env.network : env.ipv6Network;
  const ipv6Subnet = v6Only ? env.subnet : env.ipv6Subnet;
  return [
    ...(v6Only ? [] : [`FLANNEL_NETWORK=${formatIpNet(env.network)}`, `FLANNEL_SUBNET=${formatIpNet(env.subnet)}`]),
    ...(ipv6Network && ipv6Subnet ? [`FLANNEL_IPV6_NETWORK=${formatIpNet(ipv6Network)}`, `FLANNEL_IPV6_SUBNET=${formatIpNet(ipv6Subnet)}`] : []),
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
    const match = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
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
    const ipMasq = values.get('FLANNEL_IPMASQ') === 'true';
    const hasV6 = values.has('FLANNEL_IPV6_NETWORK') || values.has('FLANNEL_IPV6_SUBNET');
    if (!values.has('FLANNEL_NETWORK') && hasV6) {
      return { network: parseIpNet(need('FLANNEL_IPV6_NETWORK')), subnet: parseIpNet(need('FLANNEL_IPV6_SUBNET')), mtu, ipMasq };
    }
    return {
      network: parseIpNet(need('FLANNEL_NETWORK')),
      subnet: parseIpNet(need('FLANNEL_SUBNET')),
      mtu,
      ipMasq,
      ...(hasV6 ? { ipv6Network: parseIpNet(need('FLANNEL_IPV6_NETWORK')), ipv6Subnet: parseIpNet(need('FLANNEL_IPV6_SUBNET')) } : {}),
    };
  } catch (err) {
    if (err instanceof SubnetEnvError) throw err;
    throw new SubnetEnvError(`${path} is malformed: ${(err as Error).message}`, { cause: err });
  }
}

export function readSubnetEnv(path: string): SubnetEnv {
  return parseSubnetEnv(readFileSync(path, 'utf8'), path);
}
