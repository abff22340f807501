/**
 * CNI data types. Results are held in the newest format (1.1.0) inside the plugin and
 * converted at the edge: `toVersion` on output, `parseResult` on input (prevResult, a
 * delegated plugin's answer).
 */
import { CniError, CniErrorCode } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  /** Index into `interfaces`. */
  interface?: number;
  address: string;
  gateway?: string;
}

export interface RouteConfig {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: RouteConfig[];
  dns?: Dns;
}

/** A network configuration as the runtime hands it to one plugin. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type: string; [field: string]: unknown };
  dns?: Dns;
  prevResult?: unknown;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface CmdArgs {
  command: CniCommand;
  containerId: string;
  /** Empty when the runtime gave none (allowed for DEL). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs. */
  args: ReadonlyMap<string, string>;
  path: readonly string[];
  stdin: Buffer;
  config: NetConf;
}

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference > 0;
  }
  return true;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(CniErrorCode.DecodingFailure, `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function optionalString(source: Record<string, unknown>, key: string, what: string): string | undefined {
  const value = source[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new CniError(CniErrorCode.DecodingFailure, `${what}.${key} must be a string`);
  return value;
}

function stringList(value: unknown, what: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw new CniError(CniErrorCode.DecodingFailure, `${what} must be a list of strings`);
  }
  return value as string[];
}

function optionalNumber(source: Record<string, unknown>, key: string, what: string): number | undefined {
  const value = source[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new CniError(CniErrorCode.DecodingFailure, `${what}.${key} must be an integer`);
  return value;
}

export function parseDns(value: unknown, what = 'dns'): Dns | undefined {
  if (value === undefined || value === null) return undefined;
  const source = object(value, what);
  const dns: Dns = {};
  const nameservers = stringList(source['nameservers'], `${what}.nameservers`);
  if (nameservers) dns.nameservers = nameservers;
  const domain = optionalString(source, 'domain', what);
  if (domain) dns.domain = domain;
  const search = stringList(source['search'], `${what}.search`);
  if (search) dns.search = search;
  const options = stringList(source['options'], `${what}.options`);
  if (options) dns.options = options;
  return dns;
}

export function parseRoute(value: unknown, what: string): RouteConfig {
  const source = object(value, what);
  const dst = optionalString(source, 'dst', what);
  if (!dst) throw new CniError(CniErrorCode.DecodingFailure, `${what}.dst is required`);
  const route: RouteConfig = { dst };
  const gw = optionalString(source, 'gw', what);
  if (gw) route.gw = gw;
  for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const number = optionalNumber(source, key, what);
    if (number !== undefined) route[key] = number;
  }
  return route;
}

/** Reads a result of any supported version into the 1.1.0 shape. */
export function parseResult(value: unknown, what = 'prevResult'): Result {
  const source = object(value, what);
  const result: Result = { cniVersion: optionalString(source, 'cniVersion', what) ?? LATEST_VERSION };
  if (source['interfaces'] !== undefined) {
    if (!Array.isArray(source['interfaces'])) throw new CniError(CniErrorCode.DecodingFailure, `${what}.interfaces must be a list`);
    result.interfaces = source['interfaces'].map((item, i) => {
      const entry = object(item, `${what}.interfaces[${i}]`);
      const name = optionalString(entry, 'name', `${what}.interfaces[${i}]`) ?? '';
      const iface: Interface = { name };
      for (const key of ['mac', 'sandbox', 'socketPath', 'pciID'] as const) {
        const text = optionalString(entry, key, `${what}.interfaces[${i}]`);
        if (text) iface[key] = text;
      }
      const mtu = optionalNumber(entry, 'mtu', `${what}.interfaces[${i}]`);
      if (mtu !== undefined) iface.mtu = mtu;
      return iface;
    });
  }
  if (source['ips'] !== undefined) {
    if (!Array.isArray(source['ips'])) throw new CniError(CniErrorCode.DecodingFailure, `${what}.ips must be a list`);
    result.ips = source['ips'].map((item, i) => {
      const entry = object(item, `${what}.ips[${i}]`);
      const address = optionalString(entry, 'address', `${what}.ips[${i}]`);
      if (!address) throw new CniError(CniErrorCode.DecodingFailure, `${what}.ips[${i}].address is required`);
      const ip: IpConfig = { address };
      const gateway = optionalString(entry, 'gateway', `${what}.ips[${i}]`);
      if (gateway) ip.gateway = gateway;
      const index = optionalNumber(entry, 'interface', `${what}.ips[${i}]`);
      if (index !== undefined) ip.interface = index;
      return ip;
    });
  }
  if (source['routes'] !== undefined) {
    if (!Array.isArray(source['routes'])) throw new CniError(CniErrorCode.DecodingFailure, `${what}.routes must be a list`);
    result.routes = source['routes'].map((item, i) => parseRoute(item, `${what}.routes[${i}]`));
  }
  const dns = parseDns(source['dns'], `${what}.dns`);
  if (dns) result.dns = dns;
  return result;
}

/** Shapes a result for `version`: 0.3.x/0.4.0 mark each IP with its family. */
export function toVersion(result: Result, version: CniVersion): Record<string, unknown> {
  const legacy = !versionAtLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces) {
    out['interfaces'] = result.interfaces.map((iface) => {
      if (versionAtLeast(version, '1.1.0')) return iface;
      const { mtu: _mtu, socketPath: _socketPath, pciID: _pciID, ...older } = iface;
      return older;
    });
  }
  if (result.ips) {
    out['ips'] = result.ips.map((ip) => (legacy ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : ip));
  }
  if (result.routes) {
    out['routes'] = result.routes.map((route) => {
      if (versionAtLeast(version, '1.1.0')) return route;
      return route.gw ? { dst: route.dst, gw: route.gw } : { dst: route.dst };
    });
  }
  out['dns'] = result.dns ?? {};
  return out;
}
