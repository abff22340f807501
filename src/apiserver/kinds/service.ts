/**
 * Services: defaults (core/v1 SetDefaults_Service), validation (ValidateService), and the
 * update rules of upstream's service registry:
 * - allocated values survive an update that omits them (`kubectl replace` of a manifest with
 *   no clusterIP or nodePort keeps the ones the server chose) — patchAllocatedValues;
 * - values that only make sense for the old type are dropped when the type changes and the
 *   client left them untouched (NodePort → ClusterIP drops nodePorts) — dropTypeDependentFields;
 * - a cluster IP, once set, never changes, except through ExternalName.
 * Cluster IPs and node ports themselves are chosen by ServiceIpAllocator (service-ips.ts).
 */
import type { KubeObject } from '../../api/meta.js';
import { tryParseIp } from '../../lib/ip.js';
import {
  FieldPath,
  duplicate,
  forbidden,
  invalid,
  invalidEach,
  notSupported,
  required,
  type FieldCause,
} from './field.js';
import { GenericStrategy } from './generic.js';
import { validateLabels } from './meta.js';
import { PORT_RANGE_MESSAGE, dns1123LabelErrors, dns1123SubdomainErrors, isPortNumber, nameIsDns1035Label, portNameErrors } from './names.js';
import { PROTOCOLS } from './pod.js';
import { TypeChecker, asArray, asNumber, asObject, asString, defaultValue, ensureObject, jsonEqual, objectsOf, type JsonObject } from './values.js';

export const SERVICE_TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'] as const;
const TRAFFIC_POLICIES = ['Cluster', 'Local'];
const SESSION_AFFINITIES = ['ClientIP', 'None'];
const IP_FAMILY_POLICIES = ['SingleStack', 'PreferDualStack', 'RequireDualStack'];
const IP_FAMILIES = ['IPv4', 'IPv6'];
const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS = 10800;
const MAX_CLIENT_IP_TIMEOUT_SECONDS = 86400;

function specOf(service: KubeObject): JsonObject {
  return asObject(service['spec']) ?? {};
}

/** Every type but ExternalName gets a cluster IP (or is headless). */
export function needsClusterIP(service: KubeObject): boolean {
  return specOf(service)['type'] !== 'ExternalName';
}

/** NodePort services, and LoadBalancers unless they opted out of node ports. */
export function needsNodePorts(service: KubeObject): boolean {
  const spec = specOf(service);
  return spec['type'] === 'NodePort' || (spec['type'] === 'LoadBalancer' && spec['allocateLoadBalancerNodePorts'] !== false);
}

/** LoadBalancers that keep traffic on the receiving node need a health-check port. */
export function needsHealthCheckNodePort(service: KubeObject): boolean {
  const spec = specOf(service);
  return spec['type'] === 'LoadBalancer' && spec['externalTrafficPolicy'] === 'Local';
}

function externallyAccessible(service: KubeObject): boolean {
  const type = specOf(service)['type'];
  return type === 'NodePort' || type === 'LoadBalancer';
}

/** The family name upstream uses in ipFamilies for an address, or undefined. */
export function ipFamilyOf(address: string): 'IPv4' | 'IPv6' | undefined {
  const ip = tryParseIp(address);
  return ip ? (ip.family === 4 ? 'IPv4' : 'IPv6') : undefined;
}

/**
 * A Service or Endpoints port name: how a Service port finds its endpoint port, so required
 * when there are several ports, a DNS-1123 label, and unique among the `seen` ones.
 */
export function validatePortName(name: string, path: FieldPath, portCount: number, seen: Set<string>): FieldCause[] {
  if (!name) return portCount > 1 ? [required(path, '')] : [];
  const causes = invalidEach(path, name, dns1123LabelErrors(name));
  if (seen.has(name)) causes.push(duplicate(path, name));
  seen.add(name);
  return causes;
}

function validatePorts(spec: JsonObject, type: string, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const path = FieldPath.of('spec', 'ports');
  const ports = check.objects(spec['ports'], path);
  const names = new Set<string>();
  const portKeys = new Set<string>();
  const nodePortKeys = new Set<string>();
  for (const [i, port] of ports) {
    const at = path.index(i);
    const name = check.string(port['name'], at.child('name')) ?? '';
    causes.push(...validatePortName(name, at.child('name'), ports.length, names));
    const number = check.integer(port['port'], at.child('port'));
    if (number !== undefined && !isPortNumber(number)) causes.push(invalid(at.child('port'), number, PORT_RANGE_MESSAGE));
    else if (port['port'] === undefined || port['port'] === null) causes.push(invalid(at.child('port'), 0, PORT_RANGE_MESSAGE));
    const protocol = check.string(port['protocol'], at.child('protocol'));
    if (!protocol) causes.push(required(at.child('protocol'), ''));
    else if (!(PROTOCOLS as readonly string[]).includes(protocol)) causes.push(notSupported(at.child('protocol'), protocol, PROTOCOLS));

    const targetPort = port['targetPort'];
    if (typeof targetPort === 'number') {
      if (!isPortNumber(targetPort)) causes.push(invalid(at.child('targetPort'), targetPort, PORT_RANGE_MESSAGE));
    } else if (typeof targetPort === 'string') {
      causes.push(...invalidEach(at.child('targetPort'), targetPort, portNameErrors(targetPort)));
    } else if (targetPort !== undefined && targetPort !== null) {
      causes.push(invalid(at.child('targetPort'), targetPort, 'must be a port number or name'));
    }

    const nodePort = check.integer(port['nodePort'], at.child('nodePort')) ?? 0;
    if (nodePort !== 0) {
      if (type === 'ClusterIP' || type === 'ExternalName') {
        causes.push(forbidden(at.child('nodePort'), `may not be used when \`type\` is '${type}'`));
      } else if (!isPortNumber(nodePort)) {
        causes.push(invalid(at.child('nodePort'), nodePort, PORT_RANGE_MESSAGE));
      }
      const nodeKey = `${nodePort}/${protocol ?? ''}`;
      if (nodePortKeys.has(nodeKey)) causes.push(duplicate(at.child('nodePort'), nodePort));
      nodePortKeys.add(nodeKey);
    }
    if (number !== undefined) {
      const key = `${number}/${protocol ?? ''}`;
      if (portKeys.has(key)) causes.push(duplicate(at, { port: number, protocol: protocol ?? '' }));
      portKeys.add(key);
    }
    const appProtocol = check.string(port['appProtocol'], at.child('appProtocol'));
    if (appProtocol) {
      // Either a bare IANA name ("http") or a domain-prefixed one ("example.com/custom").
      const valid = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?(\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(appProtocol);
      if (!valid) causes.push(invalid(at.child('appProtocol'), appProtocol, 'must be a valid qualified name'));
    }
  }
  return causes;
}

function validateClusterIPs(spec: JsonObject, type: string, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const path = FieldPath.of('spec', 'clusterIPs');
  const clusterIP = check.string(spec['clusterIP'], FieldPath.of('spec', 'clusterIP')) ?? '';
  const clusterIPs = check.strings(spec['clusterIPs'], path);
  const ipFamilyPolicy = check.string(spec['ipFamilyPolicy'], FieldPath.of('spec', 'ipFamilyPolicy'));
  const ipFamilies = check.strings(spec['ipFamilies'], FieldPath.of('spec', 'ipFamilies'));

  if (type === 'ExternalName') {
    if (clusterIP || clusterIPs.length > 0) causes.push(forbidden(path, 'must not be set for ExternalName services'));
    if (ipFamilyPolicy) causes.push(forbidden(FieldPath.of('spec', 'ipFamilyPolicy'), 'must not be set for ExternalName services'));
    if (ipFamilies.length > 0) causes.push(forbidden(FieldPath.of('spec', 'ipFamilies'), 'must not be set for ExternalName services'));
    return causes;
  }

  if (clusterIP && clusterIPs.length > 0 && clusterIPs[0] !== clusterIP) causes.push(invalid(path, clusterIPs, 'first value must match `clusterIP`'));
  const ips = clusterIPs.length > 0 ? clusterIPs : clusterIP ? [clusterIP] : [];
  if (ips.length > 2) causes.push(invalid(path, ips, 'may only hold up to 2 values'));
  const seenFamilies = new Set<string>();
  for (const [i, ip] of ips.entries()) {
    if (ip === 'None') {
      if (ips.length > 1) causes.push(invalid(path.index(i), ip, "must not have 'None' with other values"));
      else if (type === 'NodePort' || type === 'LoadBalancer') causes.push(invalid(path.index(i), ip, `may not be set to 'None' for ${type} services`));
      continue;
    }
    const family = ipFamilyOf(ip);
    if (!family) {
      causes.push(invalid(path.index(i), ip, "must be empty, 'None', or a valid IP address"));
      continue;
    }
    if (seenFamilies.has(family)) causes.push(invalid(path, ips, 'may specify no more than one IP for each IP family'));
    seenFamilies.add(family);
    const declared = ipFamilies[i];
    if (declared && declared !== family) {
      causes.push(invalid(path.index(i), ip, `expected an ${declared} value as indicated by \`ipFamilies[${i}]\``));
    }
  }

  if (ipFamilyPolicy !== undefined && !IP_FAMILY_POLICIES.includes(ipFamilyPolicy)) {
    causes.push(notSupported(FieldPath.of('spec', 'ipFamilyPolicy'), ipFamilyPolicy, IP_FAMILY_POLICIES));
  }
  if (ipFamilies.length > 2) causes.push(invalid(FieldPath.of('spec', 'ipFamilies'), ipFamilies, 'may only hold up to 2 values'));
  const families = new Set<string>();
  for (const [i, family] of ipFamilies.entries()) {
    const at = FieldPath.of('spec', 'ipFamilies').index(i);
    if (!IP_FAMILIES.includes(family)) causes.push(notSupported(at, family, IP_FAMILIES));
    else if (families.has(family)) causes.push(duplicate(at, family));
    families.add(family);
  }
  if (ipFamilies.length > 1 && (ipFamilyPolicy === undefined || ipFamilyPolicy === 'SingleStack')) {
    causes.push(invalid(FieldPath.of('spec', 'ipFamilyPolicy'), ipFamilyPolicy ?? null, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
  }
  return causes;
}

/** ValidateService: the spec of one Service. */
export function validateServiceSpec(service: KubeObject): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  if (service['spec'] === undefined || service['spec'] === null) return [required(FieldPath.of('spec'), '')];
  const spec = check.object(service['spec'], FieldPath.of('spec'));
  if (!spec) return causes;

  const type = check.string(spec['type'], FieldPath.of('spec', 'type')) ?? '';
  if (!type) causes.push(required(FieldPath.of('spec', 'type'), ''));
  else if (!(SERVICE_TYPES as readonly string[]).includes(type)) causes.push(notSupported(FieldPath.of('spec', 'type'), type, SERVICE_TYPES));

  if (type === 'ExternalName') {
    const externalName = check.string(spec['externalName'], FieldPath.of('spec', 'externalName')) ?? '';
    if (!externalName) causes.push(required(FieldPath.of('spec', 'externalName'), ''));
    else {
      // A trailing dot (fully qualified) is allowed; the name itself must be a DNS subdomain.
      const bare = externalName.endsWith('.') ? externalName.slice(0, -1) : externalName;
      causes.push(...invalidEach(FieldPath.of('spec', 'externalName'), externalName, dns1123SubdomainErrors(bare)));
    }
  }
  causes.push(...validateClusterIPs(spec, type, check));

  const headless = spec['clusterIP'] === 'None' || asArray(spec['clusterIPs'])?.[0] === 'None';
  const ports = asArray(spec['ports']);
  if (type !== 'ExternalName' && !headless && (!ports || ports.length === 0)) causes.push(required(FieldPath.of('spec', 'ports'), ''));
  causes.push(...validatePorts(spec, type, check));

  const affinity = check.string(spec['sessionAffinity'], FieldPath.of('spec', 'sessionAffinity'));
  if (!affinity) causes.push(required(FieldPath.of('spec', 'sessionAffinity'), ''));
  else if (!SESSION_AFFINITIES.includes(affinity)) causes.push(notSupported(FieldPath.of('spec', 'sessionAffinity'), affinity, SESSION_AFFINITIES));
  const affinityConfig = check.object(spec['sessionAffinityConfig'], FieldPath.of('spec', 'sessionAffinityConfig'));
  if (affinity === 'ClientIP') {
    const timeoutPath = FieldPath.of('spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds');
    const timeout = asObject(affinityConfig?.['clientIP'])?.['timeoutSeconds'];
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout <= 0 || timeout > MAX_CLIENT_IP_TIMEOUT_SECONDS) {
      causes.push(invalid(timeoutPath, timeout ?? null, `must be greater than 0 and less than ${MAX_CLIENT_IP_TIMEOUT_SECONDS}`));
    }
  } else if (affinity === 'None' && affinityConfig) {
    causes.push(forbidden(FieldPath.of('spec', 'sessionAffinityConfig'), `must not be set when session affinity is None`));
  }

  causes.push(...validateLabels(check.stringMap(spec['selector'], FieldPath.of('spec', 'selector')), FieldPath.of('spec', 'selector')));
  for (const [i, ip] of check.strings(spec['externalIPs'], FieldPath.of('spec', 'externalIPs')).entries()) {
    if (!tryParseIp(ip)) causes.push(invalid(FieldPath.of('spec', 'externalIPs').index(i), ip, 'must be a valid IP address'));
  }

  const externalPolicy = check.string(spec['externalTrafficPolicy'], FieldPath.of('spec', 'externalTrafficPolicy'));
  if (externallyAccessible(service)) {
    if (!externalPolicy) causes.push(required(FieldPath.of('spec', 'externalTrafficPolicy'), ''));
    else if (!TRAFFIC_POLICIES.includes(externalPolicy)) causes.push(notSupported(FieldPath.of('spec', 'externalTrafficPolicy'), externalPolicy, TRAFFIC_POLICIES));
  } else if (externalPolicy) {
    causes.push(invalid(FieldPath.of('spec', 'externalTrafficPolicy'), externalPolicy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"));
  }
  const internalPolicy = check.string(spec['internalTrafficPolicy'], FieldPath.of('spec', 'internalTrafficPolicy'));
  if (type !== 'ExternalName') {
    if (!internalPolicy) causes.push(required(FieldPath.of('spec', 'internalTrafficPolicy'), ''));
    else if (!TRAFFIC_POLICIES.includes(internalPolicy)) causes.push(notSupported(FieldPath.of('spec', 'internalTrafficPolicy'), internalPolicy, TRAFFIC_POLICIES));
  }
  check.boolean(spec['publishNotReadyAddresses'], FieldPath.of('spec', 'publishNotReadyAddresses'));
  check.boolean(spec['allocateLoadBalancerNodePorts'], FieldPath.of('spec', 'allocateLoadBalancerNodePorts'));
  const healthCheckNodePort = check.integer(spec['healthCheckNodePort'], FieldPath.of('spec', 'healthCheckNodePort'));
  if (healthCheckNodePort !== undefined && healthCheckNodePort !== 0) {
    if (!needsHealthCheckNodePort(service)) {
      causes.push(invalid(FieldPath.of('spec', 'healthCheckNodePort'), healthCheckNodePort, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
    } else if (!isPortNumber(healthCheckNodePort)) {
      causes.push(invalid(FieldPath.of('spec', 'healthCheckNodePort'), healthCheckNodePort, PORT_RANGE_MESSAGE));
    }
  }
  return causes;
}

function clusterIPsOf(spec: JsonObject): string[] {
  const list = (asArray(spec['clusterIPs']) ?? []).filter((ip): ip is string => typeof ip === 'string');
  if (list.length > 0) return list;
  const single = asString(spec['clusterIP']);
  return single ? [single] : [];
}

export class ServiceStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, hasStatus: true, nameValidator: nameIsDns1035Label });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    defaultValue(spec, 'type', 'ClusterIP');
    defaultValue(spec, 'sessionAffinity', 'None');
    if (spec['sessionAffinity'] === 'ClientIP') {
      const clientIP = ensureObject(ensureObject(spec, 'sessionAffinityConfig') ?? {}, 'clientIP');
      if (clientIP) defaultValue(clientIP, 'timeoutSeconds', DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
    }
    for (const [, port] of objectsOf(spec['ports'])) {
      defaultValue(port, 'protocol', 'TCP');
      if (port['targetPort'] === undefined || port['targetPort'] === null || port['targetPort'] === 0 || port['targetPort'] === '') {
        port['targetPort'] = port['port'];
      }
    }
    if (externallyAccessible(object)) defaultValue(spec, 'externalTrafficPolicy', 'Cluster');
    if (spec['type'] === 'LoadBalancer' && spec['allocateLoadBalancerNodePorts'] === undefined) spec['allocateLoadBalancerNodePorts'] = true;
    if (spec['type'] !== 'ExternalName') {
      defaultValue(spec, 'internalTrafficPolicy', 'Cluster');
      // clusterIP and clusterIPs[0] are one value in two fields; fill whichever is missing.
      const clusterIP = asString(spec['clusterIP']);
      const clusterIPs = asArray(spec['clusterIPs']);
      if (clusterIP && (!clusterIPs || clusterIPs.length === 0)) spec['clusterIPs'] = [clusterIP];
      else if (!clusterIP && clusterIPs && typeof clusterIPs[0] === 'string') spec['clusterIP'] = clusterIPs[0];
      // ipFamilyPolicy and ipFamilies have no static default: they depend on the cluster's
      // service ranges and, on update, on the stored object, so ServiceIpAllocator sets them
      // (as upstream's registry does, not its SetDefaults_Service).
    }
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    return validateServiceSpec(object);
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    if (!needsClusterIP(object) || !needsClusterIP(old)) return causes; // ExternalName moves are free
    const spec = specOf(object);
    const oldSpec = specOf(old);
    const before = clusterIPsOf(oldSpec);
    const now = clusterIPsOf(spec);
    for (const [i, ip] of before.entries()) {
      // A secondary IP may be dropped (dual-stack downgrade); the primary never.
      if (now[i] === undefined && i > 0) continue;
      if (now[i] !== ip) {
        causes.push(invalid(FieldPath.of('spec', 'clusterIPs').index(i), now, 'may not change once set'));
        break;
      }
    }
    const families = asArray(spec['ipFamilies']) ?? [];
    const oldFamilies = asArray(oldSpec['ipFamilies']) ?? [];
    if (oldFamilies.length > 0 && families.length > 0 && families[0] !== oldFamilies[0]) {
      causes.push(invalid(FieldPath.of('spec', 'ipFamilies').index(0), families, 'may not change once set'));
    }
    return causes;
  }

  protected override initialStatus(): unknown {
    return { loadBalancer: {} };
  }

  override prepareForUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForUpdate(object, old);
    const spec = asObject(object['spec']);
    const oldSpec = asObject(old['spec']);
    if (!spec || !oldSpec) return;
    patchAllocatedValues(object, spec, old, oldSpec);
    dropTypeDependentFields(object, spec, old, oldSpec);
  }
}

/** Values the server allocated stay when an update leaves them out. */
function patchAllocatedValues(object: KubeObject, spec: JsonObject, old: KubeObject, oldSpec: JsonObject): void {
  if (needsClusterIP(old) && needsClusterIP(object)) {
    if (!asString(spec['clusterIP']) && oldSpec['clusterIP'] !== undefined) spec['clusterIP'] = oldSpec['clusterIP'];
    const ips = asArray(spec['clusterIPs']);
    if ((!ips || ips.length === 0) && oldSpec['clusterIPs'] !== undefined) spec['clusterIPs'] = structuredClone(oldSpec['clusterIPs']);
    // Defaulting ran before this and may have set a single-stack default; the old one wins.
    const families = asArray(spec['ipFamilies']);
    if ((!families || families.length === 0) && oldSpec['ipFamilies'] !== undefined) spec['ipFamilies'] = structuredClone(oldSpec['ipFamilies']);
    // An update without a policy keeps the stored one (upstream: "use the old policy").
    if (spec['ipFamilyPolicy'] === undefined && oldSpec['ipFamilyPolicy'] !== undefined) spec['ipFamilyPolicy'] = oldSpec['ipFamilyPolicy'];
  }
  if (needsNodePorts(old) && needsNodePorts(object)) {
    const oldPorts = objectsOf(oldSpec['ports']).map(([, port]) => port);
    for (const [, port] of objectsOf(spec['ports'])) {
      if (port['nodePort'] !== undefined && port['nodePort'] !== null && port['nodePort'] !== 0) continue;
      const match = oldPorts.find((before) => before['port'] === port['port'] && (before['protocol'] ?? 'TCP') === (port['protocol'] ?? 'TCP'));
      if (match && asNumber(match['nodePort'])) port['nodePort'] = match['nodePort'];
    }
  }
  if (needsHealthCheckNodePort(old) && needsHealthCheckNodePort(object) && !asNumber(spec['healthCheckNodePort'])) {
    if (oldSpec['healthCheckNodePort'] !== undefined) spec['healthCheckNodePort'] = oldSpec['healthCheckNodePort'];
  }
}

/** Fields of the old type that the client carried over unchanged are dropped with the type. */
function dropTypeDependentFields(object: KubeObject, spec: JsonObject, old: KubeObject, oldSpec: JsonObject): void {
  if (needsClusterIP(old) && !needsClusterIP(object)) {
    if (jsonEqual(clusterIPsOf(spec), clusterIPsOf(oldSpec))) {
      delete spec['clusterIP'];
      delete spec['clusterIPs'];
    }
    if (jsonEqual(spec['ipFamilies'], oldSpec['ipFamilies'])) delete spec['ipFamilies'];
    if (jsonEqual(spec['ipFamilyPolicy'], oldSpec['ipFamilyPolicy'])) delete spec['ipFamilyPolicy'];
    if (jsonEqual(spec['internalTrafficPolicy'], oldSpec['internalTrafficPolicy'])) delete spec['internalTrafficPolicy'];
  }
  if (needsNodePorts(old) && !needsNodePorts(object)) {
    const nodePorts = (ports: unknown): unknown[] => objectsOf(ports).map(([, port]) => port['nodePort'] ?? 0);
    const oldNodePorts = nodePorts(oldSpec['ports']);
    const newNodePorts = nodePorts(spec['ports']);
    // "Unchanged" means every node port the client sent is one the old object had.
    if (newNodePorts.every((port) => port === 0 || oldNodePorts.includes(port))) {
      for (const [, port] of objectsOf(spec['ports'])) delete port['nodePort'];
    }
  }
  if (needsHealthCheckNodePort(old) && !needsHealthCheckNodePort(object) && jsonEqual(spec['healthCheckNodePort'], oldSpec['healthCheckNodePort'])) {
    delete spec['healthCheckNodePort'];
  }
  if (specOf(old)['type'] === 'LoadBalancer' && spec['type'] !== 'LoadBalancer') {
    if (jsonEqual(spec['allocateLoadBalancerNodePorts'], oldSpec['allocateLoadBalancerNodePorts'])) delete spec['allocateLoadBalancerNodePorts'];
  }
  if (!externallyAccessible(object) && jsonEqual(spec['externalTrafficPolicy'], oldSpec['externalTrafficPolicy'])) {
    delete spec['externalTrafficPolicy'];
  }
}

