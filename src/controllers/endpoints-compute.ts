/**
 * Service + pods → endpoints, as pure functions shared by the Endpoints and EndpointSlice
 * controllers (after upstream's endpoints/util and endpointslice/reconciler).
 *
 * Which pods: those the selector matches that have an IP and have not finished. Readiness is
 * the pod's Ready condition; `publishNotReadyAddresses` treats every such pod as ready.
 * Terminating pods (deletionTimestamp set) are left out of Endpoints (unless
 * publishNotReadyAddresses) and kept in EndpointSlices with terminating=true, ready=false and
 * serving = their readiness, so proxies can drain them.
 *
 * Ports: a service port's targetPort is a number, a container port name (looked up per pod,
 * protocol included; a pod without that name is skipped for that port only) or absent (the
 * service port). A headless service without ports still lists addresses.
 */
import type { Pod, Service, ServicePort, EndpointAddress, EndpointPort, EndpointSubset, EndpointSliceEndpoint, ObjectReference } from '../api/types.js';
import { canonicalJson } from './deployment-util.js';
import { isPodReady } from '../api/pods.js';

export interface PodEndpointState {
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export function isHeadless(service: Service): boolean {
  return service.spec.clusterIP === 'None';
}

/** The pod's state for endpoints, or undefined when it does not belong in them at all. */
export function podEndpointState(service: Service, pod: Pod, includeTerminating: boolean): PodEndpointState | undefined {
  if (!pod.status?.podIP) return undefined;
  if (pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed') return undefined;
  const terminating = Boolean(pod.metadata.deletionTimestamp);
  const publishNotReady = service.spec.publishNotReadyAddresses === true;
  if (terminating && !includeTerminating && !publishNotReady) return undefined;
  const serving = publishNotReady || isPodReady(pod);
  return { ready: serving && !terminating, serving, terminating };
}

/**
 * The pod IP a v1 Endpoints object lists: the one of the Service's primary family
 * (ipFamilies[0], else the family of its clusterIP, else the pod's primary IP), as upstream's
 * podToEndpointAddressForService; Endpoints are single-family, EndpointSlices carry the rest.
 */
export function endpointsAddressOf(service: Service, pod: Pod): string | undefined {
  const primary = pod.status?.podIP ?? '';
  const clusterIP = service.spec.clusterIP && service.spec.clusterIP !== 'None' ? service.spec.clusterIP : undefined;
  const family = service.spec.ipFamilies?.[0] ?? (clusterIP ? addressTypeOf(clusterIP) : undefined);
  if (!family) return primary;
  const ips = pod.status?.podIPs?.length ? pod.status.podIPs.map((p) => p.ip) : [primary];
  return ips.find((ip) => addressTypeOf(ip) === family);
}

/** The port a pod serves `servicePort` on, or undefined when it has no such named port. */
export function resolveTargetPort(servicePort: ServicePort, pod: Pod): number | undefined {
  const target = servicePort.targetPort ?? servicePort.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  const protocol = servicePort.protocol ?? 'TCP';
  for (const container of pod.spec.containers ?? []) {
    for (const port of container.ports ?? []) {
      if (port.name === target && (port.protocol ?? 'TCP') === protocol) return port.containerPort;
    }
  }
  return undefined;
}

/** The endpoint ports of one pod, in service port order. */
export function podEndpointPorts(service: Service, pod: Pod): EndpointPort[] {
  const ports: EndpointPort[] = [];
  for (const servicePort of service.spec.ports ?? []) {
    const port = resolveTargetPort(servicePort, pod);
    if (port === undefined) continue;
    ports.push({
      ...(servicePort.name ? { name: servicePort.name } : {}),
      port,
      protocol: servicePort.protocol ?? 'TCP',
      ...(servicePort.appProtocol ? { appProtocol: servicePort.appProtocol } : {}),
    });
  }
  return ports;
}

export function podReference(pod: Pod): ObjectReference {
  return { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid };
}

/** hostname for DNS: set when the pod asks for one inside this service's subdomain. */
function podHostname(service: Service, pod: Pod): string | undefined {
  return pod.spec.hostname && pod.spec.subdomain === service.metadata.name ? pod.spec.hostname : undefined;
}

function byIp(a: EndpointAddress, b: EndpointAddress): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0;
}

/**
 * core/v1 Endpoints subsets: pods grouped by their port list (upstream's RepackSubsets), ready
 * ones in `addresses`, the others in `notReadyAddresses`, sorted so equal inputs give equal
 * output and an unchanged service is never rewritten.
 */
export function computeEndpointSubsets(service: Service, pods: readonly Pod[]): EndpointSubset[] {
  const groups = new Map<string, { ports: EndpointPort[]; ready: Map<string, EndpointAddress>; notReady: Map<string, EndpointAddress> }>();
  const hasPorts = (service.spec.ports ?? []).length > 0;
  if (!hasPorts && !isHeadless(service)) return [];
  for (const pod of pods) {
    const state = podEndpointState(service, pod, false);
    if (!state) continue;
    const ports = podEndpointPorts(service, pod);
    if (hasPorts && ports.length === 0) continue;
    const key = canonicalJson(ports);
    let group = groups.get(key);
    if (!group) {
      group = { ports, ready: new Map(), notReady: new Map() };
      groups.set(key, group);
    }
    const ip = endpointsAddressOf(service, pod);
    if (!ip) continue; // the pod has no address of the Service's family
    const hostname = podHostname(service, pod);
    const address: EndpointAddress = {
      ip,
      ...(hostname ? { hostname } : {}),
      ...(pod.spec.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      targetRef: podReference(pod),
    };
    // One IP, two pods (a restart race): ready wins, as in RepackSubsets.
    if (state.ready) {
      group.ready.set(ip, address);
      group.notReady.delete(ip);
    } else if (!group.ready.has(ip)) {
      group.notReady.set(ip, address);
    }
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, group]) => {
      const subset: EndpointSubset = {};
      const ready = [...group.ready.values()].sort(byIp);
      const notReady = [...group.notReady.values()].sort(byIp);
      if (ready.length > 0) subset.addresses = ready;
      if (notReady.length > 0) subset.notReadyAddresses = notReady;
      if (group.ports.length > 0) subset.ports = [...group.ports].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.port - b.port);
      return subset;
    })
    .filter((subset) => subset.addresses || subset.notReadyAddresses);
}

export type AddressType = 'IPv4' | 'IPv6';

export interface EndpointGroup {
  addressType: AddressType;
  ports: EndpointPort[];
  /** Keyed by address, in a stable order. */
  endpoints: Map<string, EndpointSliceEndpoint>;
}

function addressTypeOf(ip: string): AddressType {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

/** The key slices of one group share: address type and port list. */
export function groupKey(addressType: string, ports: readonly EndpointPort[] | undefined): string {
  return `${addressType}|${canonicalJson(ports ?? [])}`;
}

/**
 * discovery.k8s.io/v1 endpoints grouped by (address type, ports): each group becomes one or
 * more EndpointSlices. One endpoint per pod and address family the service serves.
 */
export function computeEndpointGroups(service: Service, pods: readonly Pod[]): Map<string, EndpointGroup> {
  const families = new Set<AddressType>(service.spec.ipFamilies?.length ? service.spec.ipFamilies : ['IPv4']);
  const hasPorts = (service.spec.ports ?? []).length > 0;
  const groups = new Map<string, EndpointGroup>();
  const sortedPods = [...pods].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  for (const pod of sortedPods) {
    const state = podEndpointState(service, pod, true);
    if (!state) continue;
    // A slice port always has a name, "" for an unnamed Service port (upstream's controller
    // writes it and the apiserver defaults it): without it every stored slice would look
    // unlike its group and be deleted and recreated on each sync.
    const ports = podEndpointPorts(service, pod).map((port) => ({ ...port, name: port.name ?? '' }));
    if (hasPorts && ports.length === 0) continue;
    const ips = pod.status?.podIPs?.length ? pod.status.podIPs.map((p) => p.ip) : [pod.status?.podIP ?? ''];
    for (const ip of ips) {
      const addressType = addressTypeOf(ip);
      if (!families.has(addressType)) continue;
      const key = groupKey(addressType, ports);
      let group = groups.get(key);
      if (!group) {
        group = { addressType, ports, endpoints: new Map() };
        groups.set(key, group);
      }
      const hostname = podHostname(service, pod);
      group.endpoints.set(ip, {
        addresses: [ip],
        conditions: { ready: state.ready, serving: state.serving, terminating: state.terminating },
        ...(hostname ? { hostname } : {}),
        ...(pod.spec.nodeName ? { nodeName: pod.spec.nodeName } : {}),
        targetRef: podReference(pod),
      });
    }
  }
  return groups;
}
