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
import { bitsOf, formatIp, netContains, networkOf, offsetIp, parseIpNet, tryParseIp, type Ip, type IpNet } from '../../lib/ip.js';
import { FieldPath, invalid, type FieldCause } from './field.js';
import { needsClusterIP, needsHealthCheckNodePort, needsNodePorts } from './service.js';
import { asArray, asNumber, asObject, asString, objectsOf, type JsonObject } from './values.js';

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
  /** The Service CIDR (`--service-cluster-ip-range`), default 10.96.0.0/12. */
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

export class ServiceIpAllocator {
  readonly serviceCidr: IpNet;
  readonly nodePorts: PortRange;
  /** The address reserved for the `default/kubernetes` Service: the range's first host. */
  readonly kubernetesServiceIP: string;
  private readonly family: 'IPv4' | 'IPv6';
  private readonly lastOffset: bigint;
  /** Offsets 2..staticBandEnd are left to explicit requests while the rest has room. */
  private readonly staticBandEnd: bigint;
  private readonly random: () => number;

  constructor(options: ServiceIpAllocatorOptions = {}) {
    const cidrText = options.serviceCidr ?? DEFAULT_SERVICE_CIDR;
    let cidr: IpNet;
    try {
      cidr = networkOf(parseIpNet(cidrText));
    } catch (err) {
      throw new InvalidServiceRangeError(`invalid service CIDR "${cidrText}"`, { cause: err });
    }
    const hostBits = bitsOf(cidr.family) - cidr.prefixLength;
    // Upstream's limits: at most 2^20 addresses (/12 for IPv4), and room for more than the
    // network address and the kubernetes Service.
    if (hostBits > 20 || hostBits < 2) {
      throw new InvalidServiceRangeError(`service CIDR "${cidrText}" must hold between 4 and 2^20 addresses`);
    }
    this.serviceCidr = cidr;
    this.family = cidr.family === 4 ? 'IPv4' : 'IPv6';
    const size = 1n << BigInt(hostBits);
    // IPv4 loses the broadcast address too; IPv6 has none.
    this.lastOffset = cidr.family === 4 ? size - 2n : size - 1n;
    const band = size / 16n < 16n ? 16n : size / 16n > 256n ? 256n : size / 16n;
    this.staticBandEnd = band + 1n > this.lastOffset ? 1n : band + 1n;
    this.kubernetesServiceIP = formatIp(offsetIp(cidr, 1n));
    this.nodePorts = parsePortRange(options.nodePortRange ?? DEFAULT_NODE_PORT_RANGE);
    this.random = options.random ?? Math.random;
  }

  /**
   * Fills spec.clusterIP/clusterIPs (and ipFamilies/ipFamilyPolicy), ports[*].nodePort and
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
    if (needsClusterIP(service)) this.allocateClusterIP(service, spec, used, previous, causes, writes);
    if (needsNodePorts(service)) this.allocateNodePorts(spec, used, previous, claimed, causes, writes);
    if (needsHealthCheckNodePort(service)) this.allocateHealthCheckNodePort(spec, used, previous, claimed, causes, writes);
    if (causes.length === 0) for (const write of writes) write.apply();
    return causes;
  }

  private allocateClusterIP(
    service: KubeObject,
    spec: JsonObject,
    used: ServiceResourcesInUse,
    previous: KubeObject | undefined,
    causes: FieldCause[],
    writes: PendingWrite[],
  ): void {
    const path = FieldPath.of('spec', 'clusterIPs');
    const requested = clusterIPsOf(spec);
    const families = (asArray(spec['ipFamilies']) ?? []).filter((f): f is string => typeof f === 'string');
    const policy = asString(spec['ipFamilyPolicy']) ?? 'SingleStack';
    if (policy === 'RequireDualStack') {
      causes.push(invalid(FieldPath.of('spec', 'ipFamilyPolicy'), policy, 'this cluster is not configured for dual-stack services'));
      return;
    }
    if (families[0] !== undefined && families[0] !== this.family) {
      causes.push(invalid(FieldPath.of('spec', 'ipFamilies').index(0), families[0], 'not configured on this cluster'));
      return;
    }
    const setFamilies = (): void => {
      // A single-stack cluster serves one family: PreferDualStack settles for it.
      spec['ipFamilies'] = [this.family];
      if (spec['ipFamilyPolicy'] === undefined) spec['ipFamilyPolicy'] = 'SingleStack';
    };

    if (requested[0] === 'None') {
      writes.push({
        apply: () => {
          spec['clusterIP'] = 'None';
          spec['clusterIPs'] = ['None'];
          setFamilies();
        },
      });
      return;
    }
    if (requested.length > 1) {
      causes.push(invalid(path.index(1), requested[1], 'not configured on this cluster: it serves one IP family'));
      return;
    }
    const previousIPs = previous && needsClusterIP(previous) ? clusterIPsOf(specOf(previous)).map((ip) => canonical(ip) ?? ip) : [];
    let chosen: string;
    const wanted = requested[0];
    if (wanted !== undefined) {
      const ip = tryParseIp(wanted);
      if (!ip) {
        causes.push(invalid(path.index(0), wanted, "must be empty, 'None', or a valid IP address"));
        return;
      }
      const text = formatIp(ip);
      if (previousIPs[0] !== text) {
        const problem = this.clusterIPProblem(ip, text, service, used);
        if (problem) {
          causes.push(invalid(path, requested, `failed to allocate IP ${wanted}: ${problem}`));
          return;
        }
      }
      chosen = wanted;
    } else {
      chosen = this.pickClusterIP(service, used);
    }
    writes.push({
      apply: () => {
        spec['clusterIP'] = chosen;
        spec['clusterIPs'] = [chosen];
        setFamilies();
      },
    });
  }

  private clusterIPProblem(ip: Ip, text: string, service: KubeObject, used: ServiceResourcesInUse): string | undefined {
    const offset = ip.value - this.serviceCidr.value;
    if (!netContains(this.serviceCidr, ip) || offset < 1n || offset > this.lastOffset) {
      return `the provided IP (${text}) is not in the valid range. The range of valid IPs is ${formatIp(this.serviceCidr)}/${this.serviceCidr.prefixLength}`;
    }
    if (offset === 1n && !isKubernetesService(service)) return 'the provided IP is reserved for the kubernetes service';
    if (used.clusterIPs.has(text)) return 'provided IP is already allocated';
    return undefined;
  }

  private pickClusterIP(service: KubeObject, used: ServiceResourcesInUse): string {
    const taken = (offset: bigint): boolean => used.clusterIPs.has(formatIp(offsetIp(this.serviceCidr, offset)));
    if (isKubernetesService(service) && !taken(1n)) return this.kubernetesServiceIP;
    const offset =
      scan(this.staticBandEnd + 1n, this.lastOffset, this.random, taken) ?? scan(2n, this.staticBandEnd, this.random, taken);
    if (offset === undefined) {
      throw new ServiceRangeFullError('serviceIP', `${formatIp(this.serviceCidr)}/${this.serviceCidr.prefixLength}`);
    }
    return formatIp(offsetIp(this.serviceCidr, offset));
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
