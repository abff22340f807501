/**
 * Address ranges in host-local's model: a range is a subnet with an optional start, end and
 * gateway; a range set is one or more ranges of one family that a container gets exactly one
 * address from; a config holds range sets (one per family for dual stack).
 *
 * Defaults follow the reference plugin so either can read the other's data directory:
 * gateway = first address, allocation from the first address (the gateway is skipped), up to
 * the last address minus the IPv4 broadcast.
 */
import {
  formatIp,
  formatIpNet,
  type Ip,
  ipEqual,
  type IpNet,
  lastAddressOf,
  netContains,
  networkOf,
  offsetIp,
  parseIp,
  parseIpNet,
  bitsOf,
} from '../lib/ip.js';
import { IpamConfigError } from './errors.js';

export interface RangeSpec {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface Range {
  subnet: IpNet;
  start: Ip;
  end: Ip;
  gateway?: Ip;
}

export type RangeSet = readonly Range[];

function parseField(field: string, text: string): Ip {
  try {
    return parseIp(text);
  } catch {
    throw new IpamConfigError(field, `"${text}" is not an IP address`);
  }
}

export function canonicalizeRange(spec: RangeSpec, field: string): Range {
  if (typeof spec.subnet !== 'string') throw new IpamConfigError(`${field}.subnet`, 'is required');
  let subnet: IpNet;
  try {
    subnet = parseIpNet(spec.subnet);
  } catch {
    throw new IpamConfigError(`${field}.subnet`, `"${spec.subnet}" is not a CIDR`);
  }
  const network = networkOf(subnet);
  if (network.value !== subnet.value) {
    throw new IpamConfigError(`${field}.subnet`, `"${spec.subnet}" has host bits set; the network is ${formatIpNet(network)}`);
  }
  if (subnet.prefixLength > bitsOf(subnet.family) - 2) {
    throw new IpamConfigError(`${field}.subnet`, `${spec.subnet} is too small to allocate from`);
  }
  const inSubnet = (name: string, ip: Ip): Ip => {
    if (!netContains(subnet, ip)) throw new IpamConfigError(`${field}.${name}`, `${formatIp(ip)} is not in ${spec.subnet}`);
    return ip;
  };
  const firstHost = offsetIp(network, 1n);
  const last = lastAddressOf(subnet);
  const start = spec.rangeStart ? inSubnet('rangeStart', parseField(`${field}.rangeStart`, spec.rangeStart)) : firstHost;
  const end = spec.rangeEnd
    ? inSubnet('rangeEnd', parseField(`${field}.rangeEnd`, spec.rangeEnd))
    : subnet.family === 4
      ? offsetIp(last, -1n)
      : last;
  if (start.value > end.value) throw new IpamConfigError(`${field}.rangeStart`, `${formatIp(start)} is after rangeEnd ${formatIp(end)}`);
  const gateway = spec.gateway ? inSubnet('gateway', parseField(`${field}.gateway`, spec.gateway)) : firstHost;
  return { subnet, start, end, gateway };
}

export function rangeContains(range: Range, ip: Ip): boolean {
  return ip.family === range.subnet.family && ip.value >= range.start.value && ip.value <= range.end.value;
}

function rangesOverlap(a: Range, b: Range): boolean {
  return a.subnet.family === b.subnet.family && a.start.value <= b.end.value && b.start.value <= a.end.value;
}

export function canonicalizeRangeSet(specs: readonly RangeSpec[], field: string): RangeSet {
  if (!Array.isArray(specs) || specs.length === 0) throw new IpamConfigError(field, 'a range set needs at least one range');
  const ranges = specs.map((spec, index) => canonicalizeRange(spec, `${field}[${index}]`));
  const family = ranges[0]?.subnet.family;
  ranges.forEach((range, i) => {
    if (range.subnet.family !== family) throw new IpamConfigError(`${field}[${i}]`, 'mixes IPv4 and IPv6 in one range set');
    for (let j = 0; j < i; j++) {
      const other = ranges[j];
      if (other && rangesOverlap(range, other)) throw new IpamConfigError(`${field}[${i}]`, `overlaps with ${field}[${j}]`);
    }
  });
  return ranges;
}

/** Canonicalizes every range set and rejects range sets that overlap one another. */
export function canonicalizeRangeSets(specs: readonly (readonly RangeSpec[])[], field = 'ranges'): RangeSet[] {
  if (!Array.isArray(specs) || specs.length === 0) throw new IpamConfigError(field, 'at least one range set is required');
  const sets = specs.map((set, index) => canonicalizeRangeSet(set, `${field}[${index}]`));
  sets.forEach((set, i) => {
    for (let j = 0; j < i; j++) {
      if (set.some((a) => sets[j]?.some((b) => rangesOverlap(a, b)))) {
        throw new IpamConfigError(`${field}[${i}]`, `range set ${i} overlaps with range set ${j}`);
      }
    }
  });
  return sets;
}

export function rangeFor(set: RangeSet, ip: Ip): Range | undefined {
  return set.find((range) => rangeContains(range, ip));
}

export function describeRangeSet(set: RangeSet): string {
  return set.map((range) => `${formatIp(range.start)}-${formatIp(range.end)}`).join(',');
}

/**
 * Candidate addresses in host-local's round-robin order: from just after `lastReserved`
 * (or the first range's start), through each range in turn, wrapping once, skipping
 * gateways. Yields the range with each address for its subnet and gateway.
 */
export function* candidates(set: RangeSet, lastReserved: Ip | undefined): Generator<{ ip: Ip; range: Range }> {
  let startRange = 0;
  let startValue: bigint | undefined;
  if (lastReserved) {
    const index = set.findIndex((range) => rangeContains(range, lastReserved));
    if (index >= 0) {
      startRange = index;
      startValue = lastReserved.value + 1n;
    }
  }
  for (let step = 0; step <= set.length; step++) {
    const rangeIndex = (startRange + step) % set.length;
    const range = set[rangeIndex];
    if (!range) continue;
    const isFirstPass = step === 0;
    const isWrap = step === set.length;
    if (isWrap && startValue === undefined) break;
    const from = isFirstPass && startValue !== undefined ? startValue : range.start.value;
    const to = isWrap && startValue !== undefined ? startValue - 1n : range.end.value;
    for (let value = from; value <= to && value <= range.end.value; value++) {
      const ip: Ip = { family: range.subnet.family, value };
      if (range.gateway && ipEqual(range.gateway, ip)) continue;
      yield { ip, range };
    }
  }
}
