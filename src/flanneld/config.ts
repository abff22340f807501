/**
 * The network configuration flannel users write to `<prefix>/config`:
 *   {"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMin": ..., "SubnetMax": ...,
 *    "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472, "DirectRouting": false}}
 * Field names and defaults are flannel's, so existing configs work unchanged.
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

/** Parses the JSON text stored at `<prefix>/config`. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new NetworkConfigError('(json)', `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new NetworkConfigError('(json)', 'must be a JSON object');
  const source = parsed as Record<string, unknown>;
  if (typeof source['Network'] !== 'string') throw new NetworkConfigError('Network', 'is required, e.g. "10.244.0.0/16"');
  let network: IpNet;
  try {
    network = parseIpNet(source['Network']);
  } catch {
    throw new NetworkConfigError('Network', `"${source['Network']}" is not a CIDR`);
  }
  if (networkOf(network).value !== network.value) throw new NetworkConfigError('Network', `${source['Network']} has host bits set`);
  // flannel: /24 unless Network is smaller than a /22, then two bits longer than Network.
  const defaultLength = network.family === 4 ? (network.prefixLength <= 22 ? 24 : network.prefixLength + 2) : 64;
  const subnetLength = source['SubnetLen'] ?? defaultLength;
  if (typeof subnetLength !== 'number' || !Number.isInteger(subnetLength) || subnetLength <= network.prefixLength || subnetLength > bitsOf(network.family) - 2) {
    throw new NetworkConfigError('SubnetLen', `must be an integer longer than the Network's /${network.prefixLength} and leave room for hosts`);
  }
  const count = 1n << BigInt(subnetLength - network.prefixLength);
  const subnetMin = subnetField(source['SubnetMin'], 'SubnetMin', network, subnetLength) ?? subnetAt(network, subnetLength, count > 1n ? 1n : 0n);
  const subnetMax = subnetField(source['SubnetMax'], 'SubnetMax', network, subnetLength) ?? subnetAt(network, subnetLength, count - 1n);
  if (subnetMin.value > subnetMax.value) throw new NetworkConfigError('SubnetMin', `${formatIpNet(subnetMin)} is after SubnetMax ${formatIpNet(subnetMax)}`);
  const backendRaw = source['Backend'] ?? { Type: 'udp' };
  if (typeof backendRaw !== 'object' || backendRaw === null || Array.isArray(backendRaw)) throw new NetworkConfigError('Backend', 'must be an object');
  const type = (backendRaw as Record<string, unknown>)['Type'] ?? 'udp';
  if (typeof type !== 'string') throw new NetworkConfigError('Backend.Type', 'must be a string');
  return { network, subnetLength, subnetMin, subnetMax, backend: { type, raw: backendRaw as Record<string, unknown> } };
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
