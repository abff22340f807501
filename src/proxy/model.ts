/**
 * The service model both proxy modes program from: Services and EndpointSlices, as the
 * informers hold them, turned into service ports and their endpoints — checked, with every
 * problem named instead of thrown, so one bad object never holds up the others.
 *
 *   Service (one per ns/name)      → ServicePort per (port name, protocol)
 *   EndpointSlices (label
 *     kubernetes.io/service-name)  → Endpoint per (address, target port), merged over slices
 *
 * What is left out, as kube-proxy leaves it out: headless Services (clusterIP None),
 * ExternalName, Services labelled `service.kubernetes.io/service-proxy-name` (another
 * proxy owns them), and slices marked `service.kubernetes.io/headless`.
 */
import type { EndpointSlice, Service } from '../api/types.js';
import { formatIp, type Ip, type IpFamily, tryParseIp } from '../lib/ip.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const DEFAULT_AFFINITY_SECONDS = 10800;

export interface ServicePort {
  /** kube-proxy's ServicePortName: `ns/name:port` (`ns/name` for an unnamed port). */
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly portName: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly clusterIPs: readonly Ip[];
  readonly nodePort?: number;
  readonly externalIPs: readonly Ip[];
  readonly loadBalancerIPs: readonly Ip[];
  /** ClientIP session affinity timeout; undefined without affinity. */
  readonly affinitySeconds?: number;
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
  readonly healthCheckNodePort?: number;
}

export interface Endpoint {
  readonly ip: Ip;
  readonly port: number;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** On this proxy's node. */
  readonly local: boolean;
}

/** One Service, as the sinks program it. */
export interface ServiceEntry {
  readonly ports: readonly ServicePort[];
  /** Endpoints per servicePortKey. */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
}

/** Something wrong with one object: logged and, where the object exists, an Event. */
export interface Problem {
  readonly kind: 'Service' | 'EndpointSlice';
  readonly namespace: string;
  readonly name: string;
  readonly message: string;
}

export const servicePortKey = (port: Pick<ServicePort, 'name' | 'protocol'>): string => `${port.name}/${port.protocol}`;
export const serviceKey = (namespace: string, name: string): string => `${namespace}/${name}`;

export function endpointText(endpoint: Pick<Endpoint, 'ip' | 'port'>): string {
  return endpoint.ip.family === 6 ? `[${formatIp(endpoint.ip)}]:${endpoint.port}` : `${formatIp(endpoint.ip)}:${endpoint.port}`;
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** True when this proxy should program the Service at all. */
export function proxied(service: Service, proxyName: string | undefined): boolean {
  const label = service.metadata.labels?.[SERVICE_PROXY_NAME_LABEL];
  return proxyName === undefined ? label === undefined : label === proxyName;
}

function parseIps(texts: readonly string[] | undefined, what: string, problems: string[]): Ip[] {
  const ips: Ip[] = [];
  for (const text of texts ?? []) {
    const ip = tryParseIp(text);
    if (ip) ips.push(ip);
    else problems.push(`${what} "${text}" is not an IP address; ignored`);
  }
  return ips;
}

/**
 * The Service's ports, or none (headless, ExternalName, no cluster IP), with the problems
 * found. A bad port is skipped alone; a bad cluster IP skips the Service.
 */
export function servicePortsOf(service: Service): { ports: ServicePort[]; problems: string[] } {
  const problems: string[] = [];
  const spec = service.spec ?? {};
  const namespace = service.metadata.namespace ?? 'default';
  const name = service.metadata.name ?? '';
  if (spec.type === 'ExternalName') return { ports: [], problems };
  const clusterIPTexts = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  if (clusterIPTexts.length === 0 || clusterIPTexts[0] === 'None') return { ports: [], problems };
  const clusterIPs = parseIps(clusterIPTexts, 'cluster IP', problems);
  if (clusterIPs.length !== clusterIPTexts.length) return { ports: [], problems };
  const externalIPs = parseIps(spec.externalIPs, 'external IP', problems);
  const ingress = spec.type === 'LoadBalancer' ? (service.status?.loadBalancer?.ingress ?? []) : [];
  // ipMode Proxy: the load balancer proxies and the traffic arrives for the node, not the VIP.
  const loadBalancerIPs = parseIps(ingress.filter((i) => i.ip && i.ipMode !== 'Proxy').map((i) => i.ip ?? ''), 'load-balancer ingress IP', problems);
  const affinitySeconds = spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS) : undefined;
  const externallyReachable = spec.type === 'NodePort' || spec.type === 'LoadBalancer' || externalIPs.length > 0;
  const seen = new Set<string>();
  const ports: ServicePort[] = [];
  for (const [index, port] of (spec.ports ?? []).entries()) {
    const protocol = (port.protocol ?? 'TCP') as Protocol;
    const where = `spec.ports[${index}]`;
    if (!PROTOCOLS.includes(protocol)) {
      problems.push(`${where}: protocol "${String(port.protocol)}" is not TCP, UDP or SCTP; port skipped`);
      continue;
    }
    if (!isPort(port.port)) {
      problems.push(`${where}: port ${String(port.port)} is not 1-65535; port skipped`);
      continue;
    }
    const portName = port.name ?? '';
    const key = `${portName}/${protocol}`;
    const clash = `${port.port}/${protocol}`;
    if (seen.has(key) || seen.has(clash)) {
      problems.push(`${where}: duplicate port ${portName ? `"${portName}" ` : ''}${port.port}/${protocol}; port skipped`);
      continue;
    }
    seen.add(key);
    seen.add(clash);
    let nodePort: number | undefined;
    if ((spec.type === 'NodePort' || spec.type === 'LoadBalancer') && port.nodePort !== undefined) {
      if (isPort(port.nodePort)) nodePort = port.nodePort;
      else problems.push(`${where}: nodePort ${String(port.nodePort)} is not 1-65535; node port ignored`);
    }
    const healthCheckNodePort = spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local' && isPort(spec.healthCheckNodePort) ? spec.healthCheckNodePort : undefined;
    ports.push({
      name: `${namespace}/${name}${portName ? `:${portName}` : ''}`,
      namespace,
      service: name,
      portName,
      protocol,
      port: port.port,
      clusterIPs,
      ...(nodePort !== undefined ? { nodePort } : {}),
      externalIPs,
      loadBalancerIPs,
      ...(affinitySeconds !== undefined ? { affinitySeconds } : {}),
      externalPolicyLocal: externallyReachable && spec.externalTrafficPolicy === 'Local',
      internalPolicyLocal: spec.internalTrafficPolicy === 'Local',
      ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
    });
  }
  return { ports, problems };
}

const ADDRESS_FAMILY: Record<string, IpFamily | undefined> = { IPv4: 4, IPv6: 6 };

/**
 * Endpoints of every port of one Service, merged from its slices, keyed by servicePortKey.
 * A slice port matches a service port by name and protocol (the EndpointSlice controller
 * copies the service port's name). The same address and port in two slices (a pod moving
 * between slices) counts once, the readier copy winning.
 */
export function endpointsOf(
  ports: readonly ServicePort[],
  slices: readonly EndpointSlice[],
  nodeName: string,
): { endpoints: Map<string, Endpoint[]>; problems: { slice: EndpointSlice; message: string }[] } {
  const problems: { slice: EndpointSlice; message: string }[] = [];
  const byPort = new Map<string, Map<string, Endpoint>>();
  for (const port of ports) byPort.set(servicePortKey(port), new Map());
  for (const slice of slices) {
    if (slice.metadata.labels?.[HEADLESS_LABEL] !== undefined) continue;
    const family = ADDRESS_FAMILY[slice.addressType];
    if (family === undefined) continue; // FQDN slices are not proxied
    for (const slicePort of slice.ports ?? []) {
      const protocol = slicePort.protocol ?? 'TCP';
      const match = ports.find((p) => p.portName === (slicePort.name ?? '') && p.protocol === protocol);
      if (!match) continue;
      if (!isPort(slicePort.port)) {
        problems.push({ slice, message: `port "${slicePort.name ?? ''}" has invalid port ${String(slicePort.port)}; ignored` });
        continue;
      }
      const into = byPort.get(servicePortKey(match));
      if (!into) continue;
      for (const endpoint of slice.endpoints ?? []) {
        const text = endpoint.addresses?.[0];
        const ip = text === undefined ? undefined : tryParseIp(text);
        if (!ip) {
          problems.push({ slice, message: `endpoint address "${String(text)}" is not an IP address; ignored` });
          continue;
        }
        if (ip.family !== family) {
          problems.push({ slice, message: `endpoint address ${text} is not ${slice.addressType} as the slice says; ignored` });
          continue;
        }
        const conditions = endpoint.conditions ?? {};
        // Unset means true for ready and serving (the API's rule); terminating defaults false.
        const ready = conditions.ready !== false;
        const next: Endpoint = {
          ip,
          port: slicePort.port,
          ready,
          serving: conditions.serving ?? ready,
          terminating: conditions.terminating === true,
          local: endpoint.nodeName === nodeName,
        };
        const key = endpointText(next);
        const previous = into.get(key);
        if (!previous || (next.ready && !previous.ready)) into.set(key, next);
      }
    }
  }
  const endpoints = new Map<string, Endpoint[]>();
  for (const [key, map] of byPort) endpoints.set(key, [...map.values()].sort(compareEndpoints));
  return { endpoints, problems };
}

/**
 * The entry of one Service from it and its slices (undefined: nothing to program), with
 * the problems found in each object.
 */
export function serviceEntry(
  service: Service,
  slices: readonly EndpointSlice[],
  nodeName: string,
): { entry?: ServiceEntry; serviceProblems: string[]; sliceProblems: Map<EndpointSlice, string[]> } {
  const { ports, problems: serviceProblems } = servicePortsOf(service);
  const sliceProblems = new Map<EndpointSlice, string[]>();
  if (ports.length === 0) return { serviceProblems, sliceProblems };
  const { endpoints, problems } = endpointsOf(ports, slices, nodeName);
  for (const { slice, message } of problems) sliceProblems.set(slice, [...(sliceProblems.get(slice) ?? []), message]);
  return { entry: { ports, endpoints }, serviceProblems, sliceProblems };
}

/** Endpoints in address order, so equal inputs give equal rules. */
function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip.family !== b.ip.family) return a.ip.family - b.ip.family;
  if (a.ip.value !== b.ip.value) return a.ip.value < b.ip.value ? -1 : 1;
  return a.port - b.port;
}

/** Which endpoints each kind of traffic goes to (kube-proxy's CategorizeEndpoints). */
export interface EndpointChoice {
  /** Every ready endpoint, or, when none is ready, the serving terminating ones. */
  readonly cluster: readonly Endpoint[];
  /** The same on this node only. */
  readonly local: readonly Endpoint[];
  /** Traffic to the cluster IP: `local` under internalTrafficPolicy Local. */
  readonly internal: readonly Endpoint[];
  /** Traffic to node ports, external and load-balancer IPs: `local` under ETP Local. */
  readonly external: readonly Endpoint[];
  /** Any endpoint exists that some traffic could use (otherwise: reject everything). */
  readonly any: boolean;
}

function usable(endpoints: readonly Endpoint[]): Endpoint[] {
  const ready = endpoints.filter((e) => e.ready);
  // Terminating-but-serving endpoints carry traffic only when nothing ready is left
  // (KEP-1669), so a rolling update does not drop connections it could serve.
  return ready.length > 0 ? ready : endpoints.filter((e) => e.serving && e.terminating);
}

export function chooseEndpoints(port: ServicePort, endpoints: readonly Endpoint[], family: IpFamily): EndpointChoice {
  const ofFamily = endpoints.filter((e) => e.ip.family === family);
  const cluster = usable(ofFamily);
  const local = usable(ofFamily.filter((e) => e.local));
  const internal = port.internalPolicyLocal ? local : cluster;
  const external = port.externalPolicyLocal ? local : cluster;
  return { cluster, local, internal, external, any: cluster.length > 0 || local.length > 0 };
}
