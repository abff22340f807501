/**
 * core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice. Both name the backends of a
 * Service; the proxy programs the kernel straight from them, so addresses that could never be
 * a pod's (loopback, link-local, unspecified) are refused here as upstream does — a slice
 * pointing at 127.0.0.1 would make every node answer for itself.
 */
import type { KubeObject } from '../../api/meta.js';
import { parseIp, tryParseIp, type Ip } from '../../lib/ip.js';
import { FieldPath, duplicate, invalid, invalidEach, notSupported, required, tooMany, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { PORT_RANGE_MESSAGE, dns1123LabelErrors, dns1123SubdomainErrors, isPortNumber } from './names.js';
import { PROTOCOLS } from './pod.js';
import { validatePortName } from './service.js';
import { TypeChecker, asObject, defaultValue, jsonEqual, objectsOf } from './values.js';

export const ADDRESS_TYPES = ['FQDN', 'IPv4', 'IPv6'] as const;
const MAX_SLICE_ENDPOINTS = 1000;
const MAX_ENDPOINT_ADDRESSES = 100;
const MAX_SLICE_PORTS = 20000;

const SPECIAL_RANGES: { nets: [string, number][]; message: string }[] = [
  { nets: [['0.0.0.0', 32], ['::', 128]], message: 'may not be unspecified (0.0.0.0)' },
  { nets: [['127.0.0.0', 8], ['::1', 128]], message: 'may not be in the loopback range (127.0.0.0/8, ::1/128)' },
  { nets: [['169.254.0.0', 16], ['fe80::', 10]], message: 'may not be in the link-local range (169.254.0.0/16, fe80::/10)' },
  { nets: [['224.0.0.0', 24], ['ff02::', 16]], message: 'may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)' },
];

function inNet(ip: Ip, base: string, prefixLength: number): boolean {
  const network = parseIp(base);
  if (network.family !== ip.family) return false;
  const hostBits = BigInt((ip.family === 4 ? 32 : 128) - prefixLength);
  return ip.value >> hostBits === network.value >> hostBits;
}

/** Problems with an endpoint address: not an IP, or one no backend can have. */
export function endpointIpErrors(address: string, family?: 4 | 6): string[] {
  const ip = tryParseIp(address);
  if (!ip) return [family === 6 ? 'must be a valid IPv6 address' : family === 4 ? 'must be a valid IPv4 address' : 'must be a valid IP address'];
  if (family !== undefined && ip.family !== family) return [`must be a valid IPv${family} address`];
  return SPECIAL_RANGES.filter((range) => range.nets.some(([base, length]) => inNet(ip, base, length))).map((range) => range.message);
}

function validateProtocol(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const protocol = check.string(value, path);
  if (!protocol) return [required(path, '')];
  return (PROTOCOLS as readonly string[]).includes(protocol) ? [] : [notSupported(path, protocol, PROTOCOLS)];
}

function validateAddress(address: Record<string, unknown>, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const ip = check.string(address['ip'], path.child('ip')) ?? '';
  causes.push(...invalidEach(path.child('ip'), ip, endpointIpErrors(ip)));
  const hostname = check.string(address['hostname'], path.child('hostname'));
  if (hostname) causes.push(...invalidEach(path.child('hostname'), hostname, dns1123LabelErrors(hostname)));
  const nodeName = check.string(address['nodeName'], path.child('nodeName'));
  if (nodeName) causes.push(...invalidEach(path.child('nodeName'), nodeName, dns1123SubdomainErrors(nodeName)));
  return causes;
}

export class EndpointsStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  override applyDefaults(object: KubeObject): void {
    for (const [, subset] of objectsOf(object['subsets'])) {
      for (const [, port] of objectsOf(subset['ports'])) defaultValue(port, 'protocol', 'TCP');
    }
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    for (const [i, subset] of check.objects(object['subsets'], FieldPath.of('subsets'))) {
      const at = FieldPath.of('subsets').index(i);
      const ready = check.objects(subset['addresses'], at.child('addresses'));
      const notReady = check.objects(subset['notReadyAddresses'], at.child('notReadyAddresses'));
      if (ready.length === 0 && notReady.length === 0) causes.push(required(at, 'must specify `addresses` or `notReadyAddresses`'));
      for (const [j, address] of ready) causes.push(...validateAddress(address, at.child('addresses').index(j), check));
      for (const [j, address] of notReady) causes.push(...validateAddress(address, at.child('notReadyAddresses').index(j), check));
      const ports = check.objects(subset['ports'], at.child('ports'));
      const names = new Set<string>();
      for (const [j, port] of ports) {
        const portPath = at.child('ports').index(j);
        const name = check.string(port['name'], portPath.child('name')) ?? '';
        causes.push(...validatePortName(name, portPath.child('name'), ports.length, names));
        const number = check.integer(port['port'], portPath.child('port'));
        if (port['port'] === undefined || port['port'] === null) causes.push(invalid(portPath.child('port'), 0, PORT_RANGE_MESSAGE));
        else if (number !== undefined && !isPortNumber(number)) causes.push(invalid(portPath.child('port'), number, PORT_RANGE_MESSAGE));
        causes.push(...validateProtocol(port['protocol'], portPath.child('protocol'), check));
      }
    }
    return causes;
  }
}

export class EndpointSliceStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, tracksGeneration: true });
  }

  override applyDefaults(object: KubeObject): void {
    for (const [, port] of objectsOf(object['ports'])) {
      if (port['name'] === undefined || port['name'] === null) port['name'] = '';
      defaultValue(port, 'protocol', 'TCP');
    }
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const addressType = check.string(object['addressType'], FieldPath.of('addressType'));
    if (!addressType) causes.push(required(FieldPath.of('addressType'), ''));
    else if (!(ADDRESS_TYPES as readonly string[]).includes(addressType)) causes.push(notSupported(FieldPath.of('addressType'), addressType, ADDRESS_TYPES));

    const endpoints = check.objects(object['endpoints'], FieldPath.of('endpoints'));
    if (endpoints.length > MAX_SLICE_ENDPOINTS) causes.push(tooMany(FieldPath.of('endpoints'), endpoints.length, MAX_SLICE_ENDPOINTS));
    else {
      for (const [i, endpoint] of endpoints) {
        const at = FieldPath.of('endpoints').index(i);
        const addresses = check.strings(endpoint['addresses'], at.child('addresses'));
        if (addresses.length === 0) causes.push(required(at.child('addresses'), 'must contain at least 1 address'));
        else if (addresses.length > MAX_ENDPOINT_ADDRESSES) causes.push(tooMany(at.child('addresses'), addresses.length, MAX_ENDPOINT_ADDRESSES));
        for (const [j, address] of addresses.entries()) {
          const path = at.child('addresses').index(j);
          if (addressType === 'IPv4') causes.push(...invalidEach(path, address, endpointIpErrors(address, 4)));
          else if (addressType === 'IPv6') causes.push(...invalidEach(path, address, endpointIpErrors(address, 6)));
          else if (addressType === 'FQDN') causes.push(...invalidEach(path, address, dns1123SubdomainErrors(address)));
        }
        const conditions = check.object(endpoint['conditions'], at.child('conditions'));
        for (const key of ['ready', 'serving', 'terminating']) check.boolean(conditions?.[key], at.child('conditions', key));
        const hostname = check.string(endpoint['hostname'], at.child('hostname'));
        if (hostname) causes.push(...invalidEach(at.child('hostname'), hostname, dns1123LabelErrors(hostname)));
        const nodeName = check.string(endpoint['nodeName'], at.child('nodeName'));
        if (nodeName) causes.push(...invalidEach(at.child('nodeName'), nodeName, dns1123SubdomainErrors(nodeName)));
        check.string(endpoint['zone'], at.child('zone'));
      }
    }

    const ports = check.objects(object['ports'], FieldPath.of('ports'));
    if (ports.length > MAX_SLICE_PORTS) causes.push(tooMany(FieldPath.of('ports'), ports.length, MAX_SLICE_PORTS));
    const names = new Set<string>();
    for (const [i, port] of ports) {
      const at = FieldPath.of('ports').index(i);
      const name = check.string(port['name'], at.child('name')) ?? '';
      if (name) causes.push(...invalidEach(at.child('name'), name, dns1123LabelErrors(name)));
      if (names.has(name)) causes.push(duplicate(at.child('name'), name));
      names.add(name);
      causes.push(...validateProtocol(port['protocol'], at.child('protocol'), check));
      const number = check.integer(port['port'], at.child('port'));
      if (number !== undefined && !isPortNumber(number)) causes.push(invalid(at.child('port'), number, PORT_RANGE_MESSAGE));
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return object['addressType'] === old['addressType'] ? [] : [invalid(FieldPath.of('addressType'), object['addressType'], 'field is immutable')];
  }

  /** Upstream bumps a slice's generation on any change but metadata — or its labels. */
  protected override generationChanged(object: KubeObject, old: KubeObject): boolean {
    const body = (o: KubeObject): Record<string, unknown> => {
      const { metadata: _metadata, apiVersion: _apiVersion, kind: _kind, ...rest } = o;
      return rest;
    };
    return !jsonEqual(body(object), body(old)) || !jsonEqual(asObject(object.metadata.labels), asObject(old.metadata.labels));
  }
}
