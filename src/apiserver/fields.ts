/**
 * Which fields a field selector may name, per kind, and their values for one object: the
 * apiserver's equivalent of each registry's `ToSelectableFields`/`GetAttrs`.
 *
 * One table drives both the check (a selector naming any other field is a 400 "field label not
 * supported", as upstream) and the extraction, so the two cannot drift apart. Values are
 * strings; a field the object lacks is "" (so `spec.nodeName=` finds unscheduled pods) and
 * booleans are "true"/"false", like Go's strconv.FormatBool.
 */
import type { KubeObject } from '../api/meta.js';
import { SelectorParseError, type FieldRequirement } from '../api/selectors.js';

type Extractor = (object: KubeObject) => string;

/** The value at a dotted path as a selector string ("" when absent or not a scalar). */
function at(object: unknown, path: string): string {
  let current: unknown = object;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return '';
    current = (current as Record<string, unknown>)[part];
  }
  if (typeof current === 'string') return current;
  if (typeof current === 'number' || typeof current === 'boolean') return String(current);
  return '';
}

const field = (path: string): Extractor => (object) => at(object, path);
const flag = (path: string): Extractor => (object) => (at(object, path) === 'true' ? 'true' : 'false');

const metadataFields: Record<string, Extractor> = {
  'metadata.name': field('metadata.name'),
  'metadata.namespace': field('metadata.namespace'),
};

/** Pod IP as upstream reports it: the first of status.podIPs, which mirrors status.podIP. */
const podIP: Extractor = (object) => {
  const direct = at(object, 'status.podIP');
  if (direct !== '') return direct;
  const status = object['status'];
  const ips = typeof status === 'object' && status !== null ? (status as { podIPs?: unknown }).podIPs : undefined;
  return Array.isArray(ips) && ips.length > 0 ? at(ips[0], 'ip') : '';
};

const kindFields: Record<string, Record<string, Extractor>> = {
  Pod: {
    'spec.nodeName': field('spec.nodeName'),
    'spec.restartPolicy': field('spec.restartPolicy'),
    'spec.schedulerName': field('spec.schedulerName'),
    'spec.serviceAccountName': field('spec.serviceAccountName'),
    'spec.hostNetwork': flag('spec.hostNetwork'),
    'status.phase': field('status.phase'),
    'status.podIP': podIP,
    'status.nominatedNodeName': field('status.nominatedNodeName'),
  },
  Event: {
    'involvedObject.kind': field('involvedObject.kind'),
    'involvedObject.namespace': field('involvedObject.namespace'),
    'involvedObject.name': field('involvedObject.name'),
    'involvedObject.uid': field('involvedObject.uid'),
    'involvedObject.apiVersion': field('involvedObject.apiVersion'),
    'involvedObject.resourceVersion': field('involvedObject.resourceVersion'),
    'involvedObject.fieldPath': field('involvedObject.fieldPath'),
    reason: field('reason'),
    reportingComponent: field('reportingComponent'),
    source: field('source.component'),
    type: field('type'),
  },
  Node: { 'spec.unschedulable': flag('spec.unschedulable') },
  Namespace: { 'status.phase': field('status.phase') },
  Service: { 'spec.clusterIP': field('spec.clusterIP'), 'spec.type': field('spec.type') },
  ReplicaSet: { 'status.replicas': (object) => at(object, 'status.replicas') || '0' },
};

function extractorsFor(kind: string): Record<string, Extractor> {
  return { ...metadataFields, ...(kindFields[kind] ?? {}) };
}

/** The field names a selector on `kind` may use, sorted. */
export function selectableFieldNames(kind: string): string[] {
  return Object.keys(extractorsFor(kind)).sort();
}

/** Every selectable field of `object` with its value; unknown kinds get the metadata fields. */
export function selectableFields(kind: string, object: KubeObject): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [name, extract] of Object.entries(extractorsFor(kind))) fields[name] = extract(object);
  return fields;
}

/** Throws SelectorParseError (→ 400) when a requirement names a field `kind` cannot select on. */
export function checkFieldSelector(kind: string, requirements: readonly FieldRequirement[]): void {
  const allowed = extractorsFor(kind);
  for (const requirement of requirements) {
    if (!Object.prototype.hasOwnProperty.call(allowed, requirement.field)) {
      throw new SelectorParseError(`field label not supported: ${requirement.field}`);
    }
  }
}
