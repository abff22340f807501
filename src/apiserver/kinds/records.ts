/**
 * Kinds that mostly carry data for others: ConfigMap, coordination.k8s.io Lease (node
 * heartbeats, leader election) and core/v1 Event.
 */
import type { KubeObject } from '../../api/meta.js';
import { FieldPath, forbidden, invalid, invalidEach, tooLong, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { configMapKeyErrors, dns1123SubdomainErrors } from './names.js';
import { TypeChecker, asObject, jsonEqual } from './values.js';

/** Upstream's cap on a ConfigMap's data plus binaryData (it must fit in one etcd value). */
export const CONFIG_MAP_MAX_BYTES = 1024 * 1024;

export class ConfigMapStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    let totalBytes = 0;
    const data = check.stringMap(object['data'], FieldPath.of('data'));
    for (const [key, value] of Object.entries(data)) {
      causes.push(...invalidEach(FieldPath.of('data').key(key), key, configMapKeyErrors(key)));
      totalBytes += Buffer.byteLength(value);
    }
    const binaryData = check.stringMap(object['binaryData'], FieldPath.of('binaryData'));
    for (const [key, value] of Object.entries(binaryData)) {
      const at = FieldPath.of('binaryData').key(key);
      causes.push(...invalidEach(at, key, configMapKeyErrors(key)));
      if (Object.prototype.hasOwnProperty.call(data, key)) causes.push(invalid(FieldPath.of('data').key(key), key, 'duplicate of key present in binaryData'));
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) causes.push(invalid(at, '<binary>', 'must be base64-encoded'));
      totalBytes += Buffer.from(value, 'base64').length;
    }
    if (totalBytes > CONFIG_MAP_MAX_BYTES) causes.push(tooLong(FieldPath.of(''), CONFIG_MAP_MAX_BYTES));
    check.boolean(object['immutable'], FieldPath.of('immutable'));
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    if (old['immutable'] !== true) return [];
    const causes: FieldCause[] = [];
    if (object['immutable'] !== true) causes.push(forbidden(FieldPath.of('immutable'), 'field is immutable when `immutable` is set'));
    if (!jsonEqual(object['data'], old['data'])) causes.push(forbidden(FieldPath.of('data'), 'field is immutable when `immutable` is set'));
    if (!jsonEqual(object['binaryData'], old['binaryData'])) causes.push(forbidden(FieldPath.of('binaryData'), 'field is immutable when `immutable` is set'));
    return causes;
  }
}

function validateTime(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const text = check.string(value, path);
  return text !== undefined && Number.isNaN(Date.parse(text)) ? [invalid(path, text, 'must be an RFC 3339 time')] : [];
}

export class LeaseStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (!spec) return causes;
    const duration = check.integer(spec['leaseDurationSeconds'], FieldPath.of('spec', 'leaseDurationSeconds'));
    if (duration !== undefined && duration <= 0) causes.push(invalid(FieldPath.of('spec', 'leaseDurationSeconds'), duration, 'must be greater than 0'));
    const transitions = check.integer(spec['leaseTransitions'], FieldPath.of('spec', 'leaseTransitions'));
    if (transitions !== undefined && transitions < 0) {
      causes.push(invalid(FieldPath.of('spec', 'leaseTransitions'), transitions, 'must be greater than or equal to 0'));
    }
    check.string(spec['holderIdentity'], FieldPath.of('spec', 'holderIdentity'));
    causes.push(...validateTime(spec['acquireTime'], FieldPath.of('spec', 'acquireTime'), check));
    causes.push(...validateTime(spec['renewTime'], FieldPath.of('spec', 'renewTime'), check));
    return causes;
  }
}

export class EventStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const involved = check.object(object['involvedObject'], FieldPath.of('involvedObject')) ?? {};
    const namespace = object.metadata.namespace ?? '';
    const involvedNamespace = check.string(involved['namespace'], FieldPath.of('involvedObject', 'namespace')) ?? '';
    // An event lives in its object's namespace; events about cluster-scoped objects (nodes)
    // go to "default", which old clients rely on.
    // New-style events (eventTime set) are exempt, as upstream.
    const matches = involvedNamespace ? involvedNamespace === namespace : namespace === '' || namespace === 'default';
    if (!matches && !object['eventTime']) causes.push(invalid(FieldPath.of('involvedObject', 'namespace'), involvedNamespace, 'does not match event.namespace'));
    if (namespace) causes.push(...invalidEach(FieldPath.of('namespace'), namespace, dns1123SubdomainErrors(namespace)));
    for (const key of ['reason', 'message', 'type', 'action', 'reportingComponent', 'reportingInstance']) check.string(object[key], FieldPath.of(key));
    const count = check.integer(object['count'], FieldPath.of('count'));
    if (count !== undefined && count < 0) causes.push(invalid(FieldPath.of('count'), count, 'must be greater than or equal to 0'));
    for (const key of ['firstTimestamp', 'lastTimestamp']) {
      if (object[key] !== null) causes.push(...validateTime(object[key], FieldPath.of(key), check));
    }
    const series = asObject(object['series']);
    if (series) check.integer(series['count'], FieldPath.of('series', 'count'));
    return causes;
  }
}
