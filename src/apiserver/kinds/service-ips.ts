/**
 * Cluster IPs and node ports for Services.
 *
 * Design note: the allocator keeps no state. What is taken is whatever the stored Services
 * hold, which the server passes in as `used` (serviceResourcesInUse builds it from a list), so
 * there is no bitmap to persist, repair after a crash, or keep consistent between apiservers.
 * The price is that two creates racing with the same `used` could pick the same address; the
 * server serializes Service writes to rule that out.
 *
 * Choices follow upstream: the first address of the range (10.96.0.1 in 10.96.0.0/12) belongs
 * to the `default/kubernetes` Service; dynamic picks start at a random point of the upper part
 * of the range and leave the lower part (1/16 of it, 16 to 256 addresses) to explicit
 * requests, so a manifest asking for 10.96.0.10 rarely finds it already handed out; ports of
 * one Service with the same number but different protocols (DNS on 53/TCP and 53/UDP) share a
 * node port.
 */
import type { KubeObject } from '../../api/meta.js';
import { PontoonError } from '../../lib/errors.js';
import { bitsOf, formatIp, netContains, networkOf, offsetIp, parseIp, parseIpNet, tryParseIp, type Ip, type IpNet } from '../../lib/ip.js';
import { FieldPath, invalid, type FieldCause } from './field.js';
import { needsClusterIP, needsHealthCheckNodePort, needsNodePorts } from './service.js';
import { asArray, asNumber, asObject, asString, jsonEqual, objectsOf, type JsonObject } from './values.js';

export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';
export const DEFAULT_NODE_PORT_RANGE = '30000-32767';

/** What the stored Services already hold. */
export interface ServiceResourcesInUse {
  /** Canonical text form (as formatIp prints it). */
  clusterIPs: Set<string>;
  /** Node ports and health-check node ports. */
  nodePorts: Set<number>;
}

export interface ServiceIpAllocatorOptions {
  /**
   * The Service CIDR (`--service-cluster-ip-range`), default 10.96.0.0/12; `v4,v6` or
   * `v6,v4` for dual-stack, the first being the primary family.
   */
  serviceCidr?: string;
  /** `--service-node-port-range`, default 30000-32767. */
  nodePortRange?: string;
  /** Source of randomness in [0, 1) for where dynamic picks start; tests pin it. */
  random?: () => number;
}

export class InvalidServiceRangeError extends PontoonError {}

/**
 * Every address or port of the range is taken. Upstream answers 500 with "Internal error
 * occurred: " + this message.
 */
export class ServiceRangeFullError extends PontoonError {
  constructor(
    readonly resource: 'serviceIP' | 'nodePort',
    readonly range: string,
  ) {
    super(`failed to allocate a ${resource}: range is full`);
  }
}

export interface PortRange {
  min: number;
  max: number;
}

export function parsePortRange(text: string): PortRange {
  const match = /^(\d+)-(\d+)$/.exec(text.trim());
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < 1 || max > 65535 || min > max) {
    throw new InvalidServiceRangeError(`invalid node port range "${text}": want <first>-<last> within 1-65535`);
  }
  return { min, max };
}

function canonical(address: string): string | undefined {
  const ip = tryParseIp(address);
  return ip ? formatIp(ip) : undefined;
}

function specOf(service: KubeObject): JsonObject {
  return asObject(service['spec']) ?? {};
}

function clusterIPsOf(spec: JsonObject): string[] {
  const list = (asArray(spec['clusterIPs']) ?? []).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  if (list.length > 0) return list;
  const single = asString(spec['clusterIP']);
  return single ? [single] : [];
}

function nodePortsOf(service: KubeObject): number[] {
  const spec = specOf(service);
  const ports = objectsOf(spec['ports'])
    .map(([, port]) => asNumber(port['nodePort']))
    .filter((port): port is number => port !== undefined && port !== 0);
  const healthCheck = asNumber(spec['healthCheckNodePort']);
  return healthCheck ? [...ports, healthCheck] : ports;
}

/** The `used` sets for allocate(), from the stored Services. */
export function serviceResourcesInUse(services: Iterable<KubeObject>): ServiceResourcesInUse {
  const used: ServiceResourcesInUse = { clusterIPs: new Set(), nodePorts: new Set() };
  for (const service of services) {
    for (const ip of clusterIPsOf(specOf(service))) {
      const text = canonical(ip);
      if (text) used.clusterIPs.add(text);
    }
    for (const port of nodePortsOf(service)) used.nodePorts.add(port);
  }
  return used;
}

function isKubernetesService(service: KubeObject): boolean {
  return service.metadata.name === 'kubernetes' && (service.metadata.namespace ?? 'default') === 'default';
}

/** Picks from [first, last] starting at a random point and wrapping; undefined when all are taken. */
function scan(first: bigint, last: bigint, random: () => number, taken: (offset: bigint) => boolean): bigint | undefined {
  if (last < first) return undefined;
  const size = last - first + 1n;
  const start = first + (BigInt(Math.floor(random() * Number(size))) % size);
  for (let step = 0n; step < size; step++) {
    const offset = first + ((start - first + step) % size);
    if (!taken(offset)) return offset;
  }
  return undefined;
}

interface PendingWrite {
  apply(): void;
}

type FamilyName = 'IPv4' | 'IPv6';
const FAMILY_POLICIES = { single: 'SingleStack', prefer: 'PreferDualStack', require: 'RequireDualStack' } as const;

function familyName(ip: Ip): FamilyName {
  return ip.family === 4 ? 'IPv4' : 'IPv6';
}

function otherFamily(family: FamilyName): FamilyName {
  return family === 'IPv4' ? 'IPv6' : 'IPv4';
}

function stringsOf(value: unknown): string[] {
  return (asArray(value) ?? []).filter((item): item is string => typeof item === 'string');
}

/** One family's range: its reserved addresses, the static band, and the picks. */
class ServiceIpRange {
  readonly family: FamilyName;
  /** The address reserved for the `default/kubernetes` Service: the range's first host. */
  readonly kubernetesServiceIP: string;
  private readonly lastOffset: bigint;
  /** Offsets 2..staticBandEnd are left to explicit requests while the rest has room. */
  private readonly staticBandEnd: bigint;

  constructor(
    readonly cidr: IpNet,
    private readonly random: () => number,
  ) {
    const hostBits = bitsOf(cidr.family) - cidr.prefixLength;
    this.family = familyName(cidr);
    const size = 1n << BigInt(hostBits);
    // IPv4 loses the broadcast address too; IPv6 has none.
    this.lastOffset = cidr.family === 4 ? size - 2n : size - 1n;
    const band = size / 16n < 16n ? 16n : size / 16n > 256n ? 256n : size / 16n;
    this.staticBandEnd = band + 1n > this.lastOffset ? 1n : band + 1n;
    this.kubernetesServiceIP = formatIp(offsetIp(cidr, 1n));
  }

  get text(): string {
    return `${formatIp(this.cidr)}/${this.cidr.prefixLength}`;
  }

  problem(ip: Ip, text: string, service: KubeObject, used: ServiceResourcesInUse): string | undefined {
    const offset = ip.value - this.cidr.value;
    if (!netContains(this.cidr, ip) || offset < 1n || offset > this.lastOffset) {
      return `the provided IP (${text}) is not in the valid range. The range of valid IPs is ${this.text}`;
    }
    if (offset === 1n && !isKubernetesService(service)) return 'the provided IP is reserved for the kubernetes service';
    if (used.clusterIPs.has(text)) return 'provided IP is already allocated';
    return undefined;
  }

  pick(service: KubeObject, used: ServiceResourcesInUse): string {
    const taken = (offset: bigint): boolean => used.clusterIPs.has(formatIp(offsetIp(this.cidr, offset)));
    if (isKubernetesService(service) && !taken(1n)) return this.kubernetesServiceIP;
    const offset = scan(this.staticBandEnd + 1n, this.lastOffset, this.random, taken) ?? scan(2n, this.staticBandEnd, this.random, taken);
    if (offset === undefined) throw new ServiceRangeFullError('serviceIP', this.text);
    return formatIp(offsetIp(this.cidr, offset));
  }
}

export class ServiceIpAllocator {
  /** The primary range (the first of `--service-cidr`). */
  readonly serviceCidr: IpNet;
  /** Every configured range, primary first: one, or one per family on a dual-stack cluster. */
  readonly serviceCidrs: readonly IpNet[];
  readonly nodePorts: PortRange;
  /** The address reserved for the `default/kubernetes` Service, on the primary family. */
  readonly kubernetesServiceIP: string;
  private readonly ranges = new Map<FamilyName, ServiceIpRange>();
  private readonly primary: FamilyName;
  private readonly random: () => number;

  constructor(options: ServiceIpAllocatorOptions = {}) {
    const cidrText = options.serviceCidr ?? DEFAULT_SERVICE_CIDR;
    this.random = options.random ?? Math.random;
    const texts = cidrText.split(',').map((text) => text.trim());
    if (texts.length > 2) throw new InvalidServiceRangeError(`service CIDR "${cidrText}": at most two ranges, one per IP family`);
    for (const text of texts) {
      let cidr: IpNet;
      try {
        cidr = networkOf(parseIpNet(text));
      } catch (err) {
        throw new InvalidServiceRangeError(`invalid service CIDR "${text}"`, { cause: err });
      }
      const hostBits = bitsOf(cidr.family) - cidr.prefixLength;
      // Upstream's limits: at most 2^20 addresses (/12 for IPv4, /108 for IPv6), and room
      // for more than the network address and the kubernetes Service.
      if (hostBits > 20 || hostBits < 2) {
        throw new InvalidServiceRangeError(`service CIDR "${text}" must hold between 4 and 2^20 addresses`);
      }
      const range = new ServiceIpRange(cidr, this.random);
      if (this.ranges.has(range.family)) {
        throw new InvalidServiceRangeError(`service CIDR "${cidrText}": a dual-stack range needs one IPv4 and one IPv6 CIDR`);
      }
      this.ranges.set(range.family, range);
    }
    const primary = [...this.ranges.values()][0]!;
    this.primary = primary.family;
    this.serviceCidr = primary.cidr;
    this.serviceCidrs = [...this.ranges.values()].map((range) => range.cidr);
    this.kubernetesServiceIP = primary.kubernetesServiceIP;
    this.nodePorts = parsePortRange(options.nodePortRange ?? DEFAULT_NODE_PORT_RANGE);
  }

  get dualStack(): boolean {
    return this.ranges.size === 2;
  }

  /**
   * Fills spec.clusterIP/clusterIPs and ipFamilies/ipFamilyPolicy, ports[*].nodePort and
   * healthCheckNodePort where the Service's type needs them and it has none. Requested values
   * are checked: out of range or already in `used` is a cause (field `spec.clusterIPs` or
   * `spec.ports[i].nodePort`), and then the Service is left untouched. On update pass the
   * stored object as `previous`: the values it already holds stay valid although `used`
   * (built from the store) contains them. `used` itself is not modified — the server records
   * the values once the write succeeds. Throws ServiceRangeFullError when nothing is free.
   */
  allocate(service: KubeObject, used: ServiceResourcesInUse, previous?: KubeObject): FieldCause[] {
    const spec = asObject(service['spec']);
    if (!spec) return [];
    const causes: FieldCause[] = [];
    const writes: PendingWrite[] = [];
    // Node ports this Service takes, so its health-check port never lands on one of them.
    const claimed = new Set<number>();
    if (needsClusterIP(service)) this.allocateClusterIPs(service, spec, used, previous, causes, writes);
    if (needsNodePorts(service)) this.allocateNodePorts(spec, used, previous, claimed, causes, writes);
    if (needsHealthCheckNodePort(service)) this.allocateHealthCheckNodePort(spec, used, previous, claimed, causes, writes);
    if (causes.length === 0) for (const write of writes) write.apply();
    return causes;
  }

  /**
   * Upstream's initIPFamilyFields (pkg/registry/core/service/storage/alloc.go) and then one
   * address per family. The policy is not a static default: on create it is SingleStack
   * (RequireDualStack for a headless Service without selector), on update the stored one.
   */
  private allocateClusterIPs(
    service: KubeObject,
    spec: JsonObject,
    used: ServiceResourcesInUse,
    previous: KubeObject | undefined,
    causes: FieldCause[],
    writes: PendingWrite[],
  ): void {
    const policyPath = FieldPath.of('spec', 'ipFamilyPolicy');
    const ipsPath = FieldPath.of('spec', 'clusterIPs');
    const previousSpec = previous && needsClusterIP(previous) ? specOf(previous) : undefined;
    let requested = clusterIPsOf(spec);
    let families = stringsOf(spec['ipFamilies']);
    const headless = requested[0] === 'None';
    const selectorless = Object.keys(asObject(spec['selector']) ?? {}).length === 0;
    const policy =
      asString(spec['ipFamilyPolicy']) ??
      asString(previousSpec?.['ipFamilyPolicy']) ??
      (headless && selectorless ? FAMILY_POLICIES.require : FAMILY_POLICIES.single);

    if (previousSpec) {
      const before = clusterIPsOf(previousSpec);
      const beforeFamilies = stringsOf(previousSpec['ipFamilies']);
      if (policy === FAMILY_POLICIES.single) {
        // Switching to SingleStack with the fields left as they were is the intent to drop
        // the secondary; clusterIPs[0] is immutable, so keeping it is safe.
        if (jsonEqual(before, requested) && requested.length > 1) requested = requested.slice(0, 1);
        if (jsonEqual(beforeFamilies, families) && families.length > 1) families = families.slice(0, 1);
      } else {
        if (requested.length > 0 && requested.length < before.length) {
          causes.push(invalid(policyPath, policy, "must be 'SingleStack' to release the secondary cluster IP"));
        }
        if (families.length > 0 && families.length < beforeFamilies.length) {
          causes.push(invalid(policyPath, policy, "must be 'SingleStack' to release the secondary IP family"));
        }
      }
    }
    if (policy === FAMILY_POLICIES.single) {
      if (requested.length === 2) causes.push(invalid(policyPath, policy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"));
      if (families.length === 2) causes.push(invalid(policyPath, policy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
    }
    // Families follow from requested IPs; an IP of a family this cluster lacks is named.
    for (const [i, text] of requested.entries()) {
      if (text === 'None') break;
      const ip = tryParseIp(text);
      if (!ip) {
        causes.push(invalid(ipsPath.index(i), text, "must be empty, 'None', or a valid IP address"));
        continue;
      }
      if (i < families.length) continue;
      const family = familyName(ip);
      if (!this.ranges.has(family)) causes.push(invalid(ipsPath.index(i), requested, `${family} is not configured on this cluster`));
      else families.push(family);
    }
    if (causes.length > 0) return;

    if (headless && selectorless) {
      // Upstream lets these carry families the cluster lacks: no addresses are allocated.
      if (families.length === 0) families = [this.primary];
      if (families.length < 2 && policy !== FAMILY_POLICIES.single) families.push(otherFamily(families[0] as FamilyName));
      this.writeFamilies(spec, ['None'], families, policy, writes);
      return;
    }
    if (policy === FAMILY_POLICIES.require && !this.dualStack) {
      causes.push(invalid(policyPath, policy, 'this cluster is not configured for dual-stack services'));
    }
    for (const [i, family] of families.entries()) {
      if (!this.ranges.has(family as FamilyName)) causes.push(invalid(FieldPath.of('spec', 'ipFamilies').index(i), family, 'not configured on this cluster'));
    }
    if (causes.length > 0) return;
    if (families.length === 0) families = [this.primary];
    if (policy !== FAMILY_POLICIES.single && families.length === 1 && this.dualStack) families.push(otherFamily(families[0] as FamilyName));

    if (headless) {
      this.writeFamilies(spec, ['None'], families, policy, writes);
      return;
    }
    const previousIPs = previousSpec ? clusterIPsOf(previousSpec).map((ip) => canonical(ip) ?? ip) : [];
    const chosen: string[] = [];
    for (const [i, family] of families.entries()) {
      const range = this.ranges.get(family as FamilyName)!;
      const wanted = requested[i];
      if (wanted === undefined || wanted === '') {
        chosen.push(range.pick(service, used));
        continue;
      }
      const ip = parseIp(wanted); // parsed above
      const text = formatIp(ip);
      if (previousIPs[i] !== text) {
        const problem = range.problem(ip, text, service, used);
        if (problem) {
          causes.push(invalid(ipsPath, requested, `failed to allocate IP ${wanted}: ${problem}`));
          return;
        }
      }
      chosen.push(wanted);
    }
    this.writeFamilies(spec, chosen, families, policy, writes);
  }

  private writeFamilies(spec: JsonObject, clusterIPs: string[], families: string[], policy: string, writes: PendingWrite[]): void {
    writes.push({
      apply: () => {
        spec['clusterIP'] = clusterIPs[0];
        spec['clusterIPs'] = clusterIPs;
        spec['ipFamilies'] = families;
        spec['ipFamilyPolicy'] = policy;
      },
    });
  }

  private nodePortProblem(port: number, used: ServiceResourcesInUse, claimed: Set<number>, previous: Set<number>): string | undefined {
    if (previous.has(port)) return undefined;
    if (port < this.nodePorts.min || port > this.nodePorts.max) {
      return `provided port is not in the valid range. The range of valid ports is ${this.nodePorts.min}-${this.nodePorts.max}`;
    }
    if (used.nodePorts.has(port) || claimed.has(port)) return 'provided port is already allocated';
    return undefined;
  }

  private pickNodePort(used: ServiceResourcesInUse, claimed: Set<number>): number {
    const { min, max } = this.nodePorts;
    const port = scan(BigInt(min), BigInt(max), this.random, (p) => used.nodePorts.has(Number(p)) || claimed.has(Number(p)));
    if (port === undefined) throw new ServiceRangeFullError('nodePort', `${min}-${max}`);
    return Number(port);
  }

  private allocateNodePorts(
    spec: JsonObject,
    used: ServiceResourcesInUse,
    previous: KubeObject | undefined,
    claimed: Set<number>,
    causes: FieldCause[],
    writes: PendingWrite[],
  ): void {
    const previousPorts = new Set(previous && needsNodePorts(previous) ? nodePortsOf(previous) : []);
    const ports = objectsOf(spec['ports']);
    const byServicePort = new Map<unknown, number>();
    for (const [i, port] of ports) {
      const nodePort = asNumber(port['nodePort']);
      if (!nodePort) continue;
      if (byServicePort.get(port['port']) === nodePort) continue; // the same port under another protocol
      const problem = this.nodePortProblem(nodePort, used, claimed, previousPorts);
      if (problem) causes.push(invalid(FieldPath.of('spec', 'ports').index(i).child('nodePort'), nodePort, problem));
      claimed.add(nodePort);
      byServicePort.set(port['port'], nodePort);
    }
    if (causes.length > 0) return;
    for (const [, port] of ports) {
      if (asNumber(port['nodePort'])) continue;
      let nodePort = byServicePort.get(port['port']);
      if (nodePort === undefined) {
        nodePort = this.pickNodePort(used, claimed);
        claimed.add(nodePort);
        byServicePort.set(port['port'], nodePort);
      }
      const chosen = nodePort;
      writes.push({ apply: () => (port['nodePort'] = chosen) });
    }
  }

  private allocateHealthCheckNodePort(
    spec: JsonObject,
    used: ServiceResourcesInUse,
    previous: KubeObject | undefined,
    claimed: Set<number>,
    causes: FieldCause[],
    writes: PendingWrite[],
  ): void {
    const requested = asNumber(spec['healthCheckNodePort']);
    const previousPort = previous ? asNumber(specOf(previous)['healthCheckNodePort']) : undefined;
    if (requested) {
      const problem = this.nodePortProblem(requested, used, claimed, new Set(previousPort ? [previousPort] : []));
      if (problem) causes.push(invalid(FieldPath.of('spec', 'healthCheckNodePort'), requested, problem));
      return;
    }
    if (causes.length > 0) return;
    const chosen = this.pickNodePort(used, claimed);
    writes.push({ apply: () => (spec['healthCheckNodePort'] = chosen) });
  }
}
