/**
 * The CNI face of our host-local IPAM: reads the `ipam` section of a network config, runs the
 * allocator in src/ipam, and answers in CNI result form. Used by the `pontoon-ipam` binary and,
 * in-process, by `pontoon-bridge` to save a process start.
 */
import { readFileSync } from 'node:fs';
import { Allocator } from '../../ipam/allocator.js';
import { IpamConfigError } from '../../ipam/errors.js';
import { canonicalizeRangeSets, type RangeSpec } from '../../ipam/range.js';
import { DiskStore, type Owner } from '../../ipam/store.js';
import { formatIp, formatIpNet, parseIp, type Ip } from '../../lib/ip.js';
import { CniError, CniErrorCode } from '../../cni/errors.js';
import { type CmdArgs, type Dns, type NetConf, parseRoute, type Result, type RouteConfig } from '../../cni/types.js';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface HostLocalConfig {
  dataDir: string;
  ranges: RangeSpec[][];
  routes: RouteConfig[];
  resolvConf?: string;
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new IpamConfigError(field, 'must be an object');
  return value as Record<string, unknown>;
}

function rangeSpec(value: unknown, field: string): RangeSpec {
  const source = record(value, field);
  const spec: RangeSpec = { subnet: source['subnet'] as string };
  for (const key of ['rangeStart', 'rangeEnd', 'gateway'] as const) {
    const text = source[key];
    if (text === undefined || text === '') continue;
    if (typeof text !== 'string') throw new IpamConfigError(`${field}.${key}`, 'must be a string');
    spec[key] = text;
  }
  return spec;
}

export function parseHostLocalConfig(config: NetConf): HostLocalConfig {
  const ipam = record(config.ipam, 'ipam');
  const ranges: RangeSpec[][] = [];
  // The old single-range form (ipam.subnet) becomes the first range set, as host-local does.
  if (ipam['subnet'] !== undefined) ranges.push([rangeSpec(ipam, 'ipam')]);
  if (ipam['ranges'] !== undefined) {
    if (!Array.isArray(ipam['ranges'])) throw new IpamConfigError('ipam.ranges', 'must be a list of range sets');
    ipam['ranges'].forEach((set: unknown, i: number) => {
      if (!Array.isArray(set)) throw new IpamConfigError(`ipam.ranges[${i}]`, 'must be a list of ranges');
      ranges.push(set.map((range: unknown, j: number) => rangeSpec(range, `ipam.ranges[${i}][${j}]`)));
    });
  }
  if (ranges.length === 0) throw new IpamConfigError('ipam.ranges', 'no ranges configured: set "ranges" (or "subnet")');
  let routes: RouteConfig[] = [];
  if (ipam['routes'] !== undefined) {
    if (!Array.isArray(ipam['routes'])) throw new IpamConfigError('ipam.routes', 'must be a list');
    try {
      routes = ipam['routes'].map((route: unknown, i: number) => parseRoute(route, `ipam.routes[${i}]`));
    } catch (err) {
      throw new IpamConfigError('ipam.routes', (err as Error).message);
    }
  }
  const dataDir = ipam['dataDir'] ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== 'string' || dataDir === '') throw new IpamConfigError('ipam.dataDir', 'must be a path');
  const parsed: HostLocalConfig = { dataDir, ranges, routes };
  if (typeof ipam['resolvConf'] === 'string' && ipam['resolvConf']) parsed.resolvConf = ipam['resolvConf'];
  return parsed;
}

/** Addresses the runtime asked for: runtimeConfig.ips, args.cni.ips and CNI_ARGS IP=. */
export function requestedIps(args: CmdArgs): Ip[] {
  const texts: string[] = [];
  const fromList = (value: unknown, field: string): void => {
    if (value === undefined) return;
    if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw new IpamConfigError(field, 'must be a list of IP addresses');
    texts.push(...(value as string[]));
  };
  fromList(args.config.runtimeConfig?.['ips'], 'runtimeConfig.ips');
  const cniArgs = args.config.args?.['cni'];
  if (typeof cniArgs === 'object' && cniArgs !== null) fromList((cniArgs as Record<string, unknown>)['ips'], 'args.cni.ips');
  const ipArg = args.args.get('IP');
  if (ipArg) texts.push(...ipArg.split(','));
  const seen = new Set<string>();
  const ips: Ip[] = [];
  for (const text of texts) {
    // Requests may carry a prefix length ("10.1.2.3/24"); only the address matters.
    const ip = parseIp(text.split('/')[0] ?? '');
    const key = formatIp(ip);
    if (!seen.has(key)) ips.push(ip);
    seen.add(key);
  }
  return ips;
}

/** The nameserver/search/domain/options lines of a resolv.conf-style file. */
export function parseResolvConf(path: string): Dns {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new IpamConfigError('ipam.resolvConf', `cannot read "${path}": ${(err as Error).message}`);
  }
  const dns: Dns = {};
  for (const line of text.split('\n')) {
    const [key, ...values] = line.trim().split(/\s+/);
    if (!key || key.startsWith('#') || key.startsWith(';') || values.length === 0) continue;
    if (key === 'nameserver') (dns.nameservers ??= []).push(values[0] ?? '');
    else if (key === 'domain') dns.domain = values[0] ?? '';
    else if (key === 'search') dns.search = values;
    else if (key === 'options') (dns.options ??= []).push(...values);
  }
  return dns;
}

function ownerOf(args: CmdArgs): Owner {
  return { containerId: args.containerId, ifname: args.ifname };
}

function allocatorFor(config: NetConf): { allocator: Allocator; ipam: HostLocalConfig } {
  const ipam = parseHostLocalConfig(config);
  const rangeSets = canonicalizeRangeSets(ipam.ranges, 'ipam.ranges');
  return { allocator: new Allocator(new DiskStore(ipam.dataDir, config.name), rangeSets), ipam };
}

export async function ipamAdd(args: CmdArgs): Promise<Result> {
  const { allocator, ipam } = allocatorFor(args.config);
  const dns = ipam.resolvConf ? parseResolvConf(ipam.resolvConf) : undefined;
  const allocations = allocator.allocate(ownerOf(args), requestedIps(args));
  const result: Result = {
    cniVersion: args.config.cniVersion,
    ips: allocations.map((a) => (a.gateway ? { address: formatIpNet(a.address), gateway: formatIp(a.gateway) } : { address: formatIpNet(a.address) })),
    routes: ipam.routes,
  };
  if (dns) result.dns = dns;
  return result;
}

export async function ipamDel(args: CmdArgs): Promise<void> {
  const { allocator } = allocatorFor(args.config);
  allocator.release(ownerOf(args));
}

export async function ipamCheck(args: CmdArgs): Promise<void> {
  const { allocator } = allocatorFor(args.config);
  if (allocator.addressesOf(ownerOf(args)).length === 0) {
    throw new CniError(CniErrorCode.UnknownContainer, `no address is allocated to container ${args.containerId} interface ${args.ifname} on network "${args.config.name}"`);
  }
}

/** Attachments the runtime still uses (`cni.dev/valid-attachments`, CNI 1.1 GC). */
export function validAttachments(config: NetConf): Owner[] {
  const list = config['cni.dev/valid-attachments'] ?? [];
  if (!Array.isArray(list)) throw new CniError(CniErrorCode.DecodingFailure, '"cni.dev/valid-attachments" must be a list');
  return list.map((item: unknown, i: number) => {
    const entry = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const containerId = entry['containerID'];
    const ifname = entry['ifname'];
    if (typeof containerId !== 'string' || typeof ifname !== 'string') {
      throw new CniError(CniErrorCode.DecodingFailure, `"cni.dev/valid-attachments"[${i}] needs "containerID" and "ifname" strings`);
    }
    return { containerId, ifname };
  });
}

export async function ipamGc(args: CmdArgs): Promise<void> {
  const { allocator } = allocatorFor(args.config);
  allocator.collectGarbage(validAttachments(args.config));
}

export async function ipamStatus(args: CmdArgs): Promise<void> {
  const { allocator } = allocatorFor(args.config);
  const exhausted = allocator.exhaustedRangeSets();
  if (exhausted.length > 0) {
    // 50: the plugin cannot serve ADD; existing containers are fine (51 would say they are not).
    throw new CniError(CniErrorCode.PluginNotAvailable, `no free addresses left in range set(s) ${exhausted.join(', ')} of network "${args.config.name}"`);
  }
}
