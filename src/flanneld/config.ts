/**
 * The network configuration flannel users write to `<prefix>/config`:
 *   {"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMin": ..., "SubnetMax": ...,
 *    "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472, "DirectRouting": false}}
 * Field names and defaults are flannel's, so existing configs work unchanged.
 *
 * Dual-stack is flannel's too: `"EnableIPv6": true, "IPv6Network": "fd00:10:244::/56",
 * "IPv6SubnetLen": 64` (and IPv6SubnetMin/Max); `"EnableIPv4": false` makes an IPv6-only
 * network. The parsed config keeps one family per NetworkConfig so backends stay
 * single-family: `network` is the primary (IPv4, or IPv6 when IPv4 is off) and `ipv6` the
 * second family of a dual-stack network, with the same Backend.
 */
import { PontoonError } from '../lib/errors.js';
import { formatIpNet, type IpNet, networkOf, parseIpNet, bitsOf, netContains } from '../lib/ip.js';

export class NetworkConfigError extends PontoonError {
  constructor(readonly field: string, message: string) {
    super(`invalid network config: ${field}: ${message}`);
  }
}

export interface BackendConfig {
  type: string;
  /** The whole Backend object, for backend-specific fields (VNI, Port, DirectRouting...). */
  raw: Record<string, unknown>;
}

export interface NetworkConfig {
  network: IpNet;
  subnetLength: number;
  subnetMin: IpNet;
  subnetMax: IpNet;
  backend: BackendConfig;
  /** Dual-stack: the IPv6 half, same backend. */
  ipv6?: NetworkConfig;
}

function subnetAt(network: IpNet, length: number, index: bigint): IpNet {
  const size = 1n << BigInt(bitsOf(network.family) - length);
  return { family: network.family, value: network.value + index * size, prefixLength: length };
}

function subnetField(value: unknown, field: string, network: IpNet, length: number): IpNet | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new NetworkConfigError(field, 'must be an IP address string');
  let ip: IpNet;
  try {
    ip = parseIpNet(value.includes('/') ? value : `${value}/${length}`);
  } catch {
    throw new NetworkConfigError(field, `"${value}" is not an IP address`);
  }
  const subnet = networkOf({ ...ip, prefixLength: length });
  if (!netContains(network, subnet)) throw new NetworkConfigError(field, `${value} is outside Network ${formatIpNet(network)}`);
  return subnet;
}

interface FamilyFields {
  network: string;
  subnetLen: string;
  subnetMin: string;
  subnetMax: string;
}
const V4_FIELDS: FamilyFields = { network: 'Network', subnetLen: 'SubnetLen', subnetMin: 'SubnetMin', subnetMax: 'SubnetMax' };
const V6_FIELDS: FamilyFields = { network: 'IPv6Network', subnetLen: 'IPv6SubnetLen', subnetMin: 'IPv6SubnetMin', subnetMax: 'IPv6SubnetMax' };

function familyConfig(source: Record<string, unknown>, fields: FamilyFields, family: 4 | 6, backend: BackendConfig): NetworkConfig {
  const example = family === 4 ? '10.244.0.0/16' : 'fd00:10:244::/56';
  const text = source[fields.network];
  if (typeof text !== 'string') throw new NetworkConfigError(fields.network, `is required, e.g. "${example}"`);
  let network: IpNet;
  try {
    network = parseIpNet(text);
  } catch {
    throw new NetworkConfigError(fields.network, `"${text}" is not a CIDR`);
  }
  if (network.family !== family) throw new NetworkConfigError(fields.network, `${text} is not an IPv${family} network`);
  if (networkOf(network).value !== network.value) throw new NetworkConfigError(fields.network, `${text} has host bits set`);
  // flannel: /24 unless Network is smaller than a /22, then two bits longer than Network; /64 for IPv6.
  const defaultLength = network.family === 4 ? (network.prefixLength <= 22 ? 24 : network.prefixLength + 2) : 64;
  const subnetLength = source[fields.subnetLen] ?? defaultLength;
  if (typeof subnetLength !== 'number' || !Number.isInteger(subnetLength) || subnetLength <= network.prefixLength || subnetLength > bitsOf(network.family) - 2) {
    throw new NetworkConfigError(fields.subnetLen, `must be an integer longer than the network's /${network.prefixLength} and leave room for hosts`);
  }
  const count = 1n << BigInt(subnetLength - network.prefixLength);
  const subnetMin = subnetField(source[fields.subnetMin], fields.subnetMin, network, subnetLength) ?? subnetAt(network, subnetLength, count > 1n ? 1n : 0n);
  const subnetMax = subnetField(source[fields.subnetMax], fields.subnetMax, network, subnetLength) ?? subnetAt(network, subnetLength, count - 1n);
  if (subnetMin.value > subnetMax.value) throw new NetworkConfigError(fields.subnetMin, `${formatIpNet(subnetMin)} is after ${fields.subnetMax} ${formatIpNet(subnetMax)}`);
  return { network, subnetLength, subnetMin, subnetMax, backend };
}

function enabled(source: Record<string, unknown>, field: string, fallback: boolean): boolean {
  const value = source[field] ?? fallback;
  if (typeof value !== 'boolean') throw new NetworkConfigError(field, 'must be true or false');
  return value;
}

/** Parses the JSON text stored at `<prefix>/config` (or net-conf.json). */
export function parseNetworkConfig(text: string): NetworkConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new NetworkConfigError('(json)', `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new NetworkConfigError('(json)', 'must be a JSON object');
  const source = parsed as Record<string, unknown>;
  const backendRaw = source['Backend'] ?? { Type: 'udp' };
  if (typeof backendRaw !== 'object' || backendRaw === null || Array.isArray(backendRaw)) throw new NetworkConfigError('Backend', 'must be an object');
  const type = (backendRaw as Record<string, unknown>)['Type'] ?? 'udp';
  if (typeof type !== 'string') throw new NetworkConfigError('Backend.Type', 'must be a string');
  const backend = { type, raw: backendRaw as Record<string, unknown> };
  const ipv4 = enabled(source, 'EnableIPv4', true);
  const ipv6 = enabled(source, 'EnableIPv6', false);
  if (!ipv4 && !ipv6) throw new NetworkConfigError('EnableIPv4', 'one of EnableIPv4 and EnableIPv6 must be true');
  if (!ipv4) return familyConfig(source, V6_FIELDS, 6, backend);
  const primary = familyConfig(source, V4_FIELDS, 4, backend);
  return ipv6 ? { ...primary, ipv6: familyConfig(source, V6_FIELDS, 6, backend) } : primary;
}

/** Every subnet from SubnetMin to SubnetMax, in order. */
export function* subnetsOf(config: NetworkConfig): Generator<IpNet> {
  const size = 1n << BigInt(bitsOf(config.network.family) - config.subnetLength);
  for (let value = config.subnetMin.value; value <= config.subnetMax.value; value += size) {
    yield { family: config.network.family, value, prefixLength: config.subnetLength };
  }
}

export function backendNumber(backend: BackendConfig, field: string, fallback: number): number {
  const value = backend.raw[field];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new NetworkConfigError(`Backend.${field}`, 'must be a non-negative integer');
  return value;
}

export function backendFlag(backend: BackendConfig, field: string): boolean {
  const value = backend.raw[field];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new NetworkConfigError(`Backend.${field}`, 'must be true or false');
  return value;
}
