/**
 * Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's generator commands
 * write. `kubectl create namespace|configmap|secret|serviceaccount|token|deployment|service`,
 * `kubectl create role|clusterrole|rolebinding|clusterrolebinding`, `kubectl auth can-i`, `kubectl run`,
 * `kubectl expose` and `kubectl certificate approve|deny` build a typed object and send it as `application/vnd.kubernetes.protobuf`,
 * and kubectl does not retry with JSON after a 415. Everything else kubectl sends (apply,
 * create -f, patches, deletes) is JSON, and answers are always JSON, which it accepts.
 *
 * Design notes:
 * - The envelope is the 4-byte magic `k8s\0` and a runtime.Unknown message whose `raw` bytes
 *   are the object's own message (field numbers as in k8s.io/api's generated.proto).
 * - Protobuf is not self-describing, so each message is described here by hand, only as far
 *   as those commands fill it in. A field outside the table is refused (415 naming it)
 *   rather than skipped: silently losing part of an object is worse than asking for JSON.
 * - Go's protobuf writes non-pointer fields even at their zero value, where its JSON
 *   encoding leaves them out (`omitempty`). Zero scalars are therefore dropped unless the
 *   field is a pointer in Go (`keep`), where an explicit 0/false/"" means something
 *   (`replicas: 0`, `enableServiceLinks: false`).
 */
import type { KubeObject } from '../api/meta.js';
import { PontoonError } from '../lib/errors.js';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';
const MAGIC = [0x6b, 0x38, 0x73, 0x00];

export class ProtobufDecodeError extends PontoonError {}
/** A valid body using a field this server's tables do not describe. */
export class ProtobufUnsupportedError extends PontoonError {}

type Scalar = 'string' | 'int' | 'bool' | 'bytes';
/** Well-known apimachinery messages with a JSON form of their own. */
type Special = 'time' | 'intOrString' | 'quantity';

interface Field {
  name: string;
  type: Scalar | Special | MessageSpec;
  repeated?: boolean;
  /** map<string, T>: entries are messages {1: key, 2: value}. */
  map?: boolean;
  /** Go pointer field: an explicit zero value is kept. */
  keep?: boolean;
  /** Go embedded struct: its fields appear at the parent's level in JSON. */
  inline?: boolean;
}

interface MessageSpec {
  name: string;
  fields: Record<number, Field>;
  /** Decoded as {} whatever it holds. */
  skipContent?: boolean;
}

function message(name: string, fields: Record<number, Field>): MessageSpec {
  return { name, fields };
}

const s = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'string', ...extra });
const i = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'int', ...extra });
const b = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'bool', ...extra });
const m = (name: string, type: MessageSpec | Special, extra: Partial<Field> = {}): Field => ({ name, type, ...extra });
const strings = (name: string): Field => ({ name, type: 'string', repeated: true });
const stringMap = (name: string): Field => ({ name, type: 'string', map: true });

// ---- k8s.io/apimachinery meta/v1 ----------------------------------------------------------

const ownerReference = message('OwnerReference', {
  1: s('kind'),
  3: s('name'),
  4: s('uid'),
  5: s('apiVersion'),
  6: b('controller', { keep: true }),
  7: b('blockOwnerDeletion', { keep: true }),
});

const objectMeta = message('ObjectMeta', {
  1: s('name'),
  2: s('generateName'),
  3: s('namespace'),
  4: s('selfLink'),
  5: s('uid'),
  6: s('resourceVersion'),
  7: i('generation'),
  8: m('creationTimestamp', 'time'),
  9: m('deletionTimestamp', 'time'),
  10: i('deletionGracePeriodSeconds', { keep: true }),
  11: stringMap('labels'),
  12: stringMap('annotations'),
  13: m('ownerReferences', ownerReference, { repeated: true }),
  14: strings('finalizers'),
});

const labelSelector = message('LabelSelector', {
  1: stringMap('matchLabels'),
  2: m('matchExpressions', message('LabelSelectorRequirement', { 1: s('key'), 2: s('operator'), 3: strings('values') }), { repeated: true }),
});

// ---- k8s.io/api core/v1 ------------------------------------------------------------------

const localObjectReference = message('LocalObjectReference', { 1: s('name') });
const keySelector = (name: string): MessageSpec =>
  message(name, { 1: m('localObjectReference', localObjectReference, { inline: true }), 2: s('key'), 3: b('optional', { keep: true }) });

const envVar = message('EnvVar', {
  1: s('name'),
  2: s('value'),
  3: m(
    'valueFrom',
    message('EnvVarSource', {
      1: m('fieldRef', message('ObjectFieldSelector', { 1: s('apiVersion'), 2: s('fieldPath') })),
      3: m('configMapKeyRef', keySelector('ConfigMapKeySelector')),
      4: m('secretKeyRef', keySelector('SecretKeySelector')),
    }),
  ),
});

const containerPort = message('ContainerPort', { 1: s('name'), 2: i('hostPort'), 3: i('containerPort'), 4: s('protocol'), 5: s('hostIP') });
const resourceRequirements = message('ResourceRequirements', {
  1: m('limits', 'quantity', { map: true }),
  2: m('requests', 'quantity', { map: true }),
});

const container = message('Container', {
  1: s('name'),
  2: s('image'),
  3: strings('command'),
  4: strings('args'),
  5: s('workingDir'),
  6: m('ports', containerPort, { repeated: true }),
  7: m('env', envVar, { repeated: true }),
  8: m('resources', resourceRequirements),
  13: s('terminationMessagePath'),
  14: s('imagePullPolicy'),
  16: b('stdin'),
  17: b('stdinOnce'),
  18: b('tty'),
  20: s('terminationMessagePolicy'),
  24: s('restartPolicy', { keep: true }),
});

const toleration = message('Toleration', { 1: s('key'), 2: s('operator'), 3: s('value'), 4: s('effect'), 5: i('tolerationSeconds', { keep: true }) });

const podSpec = message('PodSpec', {
  2: m('containers', container, { repeated: true }),
  3: s('restartPolicy'),
  4: i('terminationGracePeriodSeconds', { keep: true }),
  5: i('activeDeadlineSeconds', { keep: true }),
  6: s('dnsPolicy'),
  7: stringMap('nodeSelector'),
  8: s('serviceAccountName'),
  9: s('serviceAccount'),
  10: s('nodeName'),
  11: b('hostNetwork'),
  12: b('hostPID'),
  13: b('hostIPC'),
  15: m('imagePullSecrets', localObjectReference, { repeated: true }),
  16: s('hostname'),
  17: s('subdomain'),
  19: s('schedulerName'),
  20: m('initContainers', container, { repeated: true }),
  21: b('automountServiceAccountToken', { keep: true }),
  22: m('tolerations', toleration, { repeated: true }),
  24: s('priorityClassName'),
  25: i('priority', { keep: true }),
  27: b('shareProcessNamespace', { keep: true }),
  29: s('runtimeClassName', { keep: true }),
  30: b('enableServiceLinks', { keep: true }),
  31: s('preemptionPolicy', { keep: true }),
  35: b('setHostnameAsFQDN', { keep: true }),
  37: b('hostUsers', { keep: true }),
});

/**
 * Status of a new object: Go writes its zero-valued fields, and the server resets a created
 * object's status anyway (strategies' prepareForCreate), so its content is skipped unread.
 */
const emptyStatus: MessageSpec = { name: 'Status', fields: {}, skipContent: true };

const podTemplateSpec = message('PodTemplateSpec', { 1: m('metadata', objectMeta), 2: m('spec', podSpec) });

const servicePort = message('ServicePort', {
  1: s('name'),
  2: s('protocol'),
  3: i('port'),
  4: m('targetPort', 'intOrString'),
  5: i('nodePort'),
  6: s('appProtocol', { keep: true }),
});

const serviceSpec = message('ServiceSpec', {
  1: m('ports', servicePort, { repeated: true }),
  2: stringMap('selector'),
  3: s('clusterIP'),
  4: s('type'),
  5: strings('externalIPs'),
  7: s('sessionAffinity'),
  8: s('loadBalancerIP'),
  9: strings('loadBalancerSourceRanges'),
  10: s('externalName'),
  11: s('externalTrafficPolicy'),
  12: i('healthCheckNodePort'),
  13: b('publishNotReadyAddresses'),
  17: s('ipFamilyPolicy', { keep: true }),
  18: strings('clusterIPs'),
  19: strings('ipFamilies'),
  20: b('allocateLoadBalancerNodePorts', { keep: true }),
  21: s('loadBalancerClass', { keep: true }),
  22: s('internalTrafficPolicy', { keep: true }),
  23: s('trafficDistribution', { keep: true }),
});

// ---- k8s.io/api apps/v1 ------------------------------------------------------------------

const deploymentSpec = message('DeploymentSpec', {
  1: i('replicas', { keep: true }),
  2: m('selector', labelSelector),
  3: m('template', podTemplateSpec),
  4: m(
    'strategy',
    message('DeploymentStrategy', {
      1: s('type'),
      2: m('rollingUpdate', message('RollingUpdateDeployment', { 1: m('maxUnavailable', 'intOrString'), 2: m('maxSurge', 'intOrString') })),
    }),
  ),
  5: i('minReadySeconds'),
  6: i('revisionHistoryLimit', { keep: true }),
  7: b('paused'),
  9: i('progressDeadlineSeconds', { keep: true }),
});

const replicaSetSpec = message('ReplicaSetSpec', {
  1: i('replicas', { keep: true }),
  2: m('selector', labelSelector),
  3: m('template', podTemplateSpec),
  4: i('minReadySeconds'),
});

// ---- k8s.io/api batch/v1 (what `kubectl create job` sends) --------------------------------

const jobSpec = message('JobSpec', {
  1: i('parallelism', { keep: true }),
  2: i('completions', { keep: true }),
  3: i('activeDeadlineSeconds', { keep: true }),
  4: m('selector', labelSelector),
  5: b('manualSelector', { keep: true }),
  6: m('template', podTemplateSpec),
  7: i('backoffLimit', { keep: true }),
  8: i('ttlSecondsAfterFinished', { keep: true }),
  9: s('completionMode', { keep: true }),
  10: b('suspend', { keep: true }),
  14: s('podReplacementPolicy', { keep: true }),
});

const topLevel = (kind: string, fields: Record<number, Field>): MessageSpec => message(kind, { 1: m('metadata', objectMeta), ...fields });

// ---- k8s.io/api core/v1 Secret, ServiceAccount; authentication/v1 TokenRequest --------------
// (`kubectl create secret|serviceaccount|token`)

const objectReference = message('ObjectReference', {
  1: s('kind'),
  2: s('namespace'),
  3: s('name'),
  4: s('uid'),
  5: s('apiVersion'),
  6: s('resourceVersion'),
  7: s('fieldPath'),
});

const tokenRequestSpec = message('TokenRequestSpec', {
  1: strings('audiences'),
  3: m('boundObjectRef', message('BoundObjectReference', { 1: s('kind'), 2: s('apiVersion'), 3: s('name'), 4: s('uid') })),
  4: i('expirationSeconds', { keep: true }),
});

// ---- k8s.io/api certificates/v1 CertificateSigningRequest (kubectl certificate approve|deny) ----

const csrCondition = message('CertificateSigningRequestCondition', {
  1: s('type'),
  6: s('status'),
  2: s('reason'),
  3: s('message'),
  4: m('lastUpdateTime', 'time'),
  5: m('lastTransitionTime', 'time'),
});

const csrSpec = message('CertificateSigningRequestSpec', {
  1: { name: 'request', type: 'bytes' },
  7: s('signerName'),
  8: i('expirationSeconds', { keep: true }),
  5: strings('usages'),
  2: s('username'),
  3: s('uid'),
  4: strings('groups'),
  // The apiserver replaces the requester's identity on create anyway (stampRequester).
  6: { name: 'extra', type: { name: 'ExtraValue', fields: { 1: strings('items') } }, map: true },
});

const csrStatus = message('CertificateSigningRequestStatus', {
  1: m('conditions', csrCondition, { repeated: true }),
  2: { name: 'certificate', type: 'bytes' },
});

// authorization.k8s.io/v1 (`kubectl auth can-i`)
const selectorAttributes = { name: 'SelectorAttributes', fields: {}, skipContent: true } satisfies MessageSpec;
const resourceAttributes = message('ResourceAttributes', {
  1: s('namespace'),
  2: s('verb'),
  3: s('group'),
  4: s('version'),
  5: s('resource'),
  6: s('subresource'),
  7: s('name'),
  8: m('fieldSelector', selectorAttributes),
  9: m('labelSelector', selectorAttributes),
});
const nonResourceAttributes = message('NonResourceAttributes', { 1: s('path'), 2: s('verb') });
const accessReviewSpec = {
  1: m('resourceAttributes', resourceAttributes),
  2: m('nonResourceAttributes', nonResourceAttributes),
};

// rbac.authorization.k8s.io/v1 (`kubectl create role|clusterrole|rolebinding|clusterrolebinding`)
const policyRule = message('PolicyRule', { 1: strings('verbs'), 2: strings('apiGroups'), 3: strings('resources'), 4: strings('resourceNames'), 5: strings('nonResourceURLs') });
const subject = message('Subject', { 1: s('kind'), 2: s('apiGroup'), 3: s('name'), 4: s('namespace') });
const roleRef = message('RoleRef', { 1: s('apiGroup'), 2: s('kind'), 3: s('name') });
const bindingFields = { 2: m('subjects', subject, { repeated: true }), 3: m('roleRef', roleRef) };

const KINDS: Record<string, MessageSpec> = {
  CertificateSigningRequest: topLevel('CertificateSigningRequest', { 2: m('spec', csrSpec), 3: m('status', csrStatus) }),
  Namespace: topLevel('Namespace', { 2: m('spec', message('NamespaceSpec', { 1: strings('finalizers') })), 3: m('status', emptyStatus) }),
  ConfigMap: topLevel('ConfigMap', { 2: stringMap('data'), 3: { name: 'binaryData', type: 'bytes', map: true }, 4: b('immutable', { keep: true }) }),
  Secret: topLevel('Secret', {
    2: { name: 'data', type: 'bytes', map: true },
    3: s('type'),
    4: stringMap('stringData'),
    5: b('immutable', { keep: true }),
  }),
  ServiceAccount: topLevel('ServiceAccount', {
    2: m('secrets', objectReference, { repeated: true }),
    3: m('imagePullSecrets', localObjectReference, { repeated: true }),
    4: b('automountServiceAccountToken', { keep: true }),
  }),
  TokenRequest: topLevel('TokenRequest', { 2: m('spec', tokenRequestSpec), 3: m('status', emptyStatus) }),
  SelfSubjectReview: topLevel('SelfSubjectReview', { 2: m('status', emptyStatus) }),
  SelfSubjectAccessReview: topLevel('SelfSubjectAccessReview', { 2: m('spec', message('SelfSubjectAccessReviewSpec', accessReviewSpec)), 3: m('status', emptyStatus) }),
  SelfSubjectRulesReview: topLevel('SelfSubjectRulesReview', { 2: m('spec', message('SelfSubjectRulesReviewSpec', { 1: s('namespace') })), 3: m('status', emptyStatus) }),
  Role: topLevel('Role', { 2: m('rules', policyRule, { repeated: true }) }),
  ClusterRole: topLevel('ClusterRole', {
    2: m('rules', policyRule, { repeated: true }),
    3: m('aggregationRule', message('AggregationRule', { 1: m('clusterRoleSelectors', labelSelector, { repeated: true }) })),
  }),
  RoleBinding: topLevel('RoleBinding', bindingFields),
  ClusterRoleBinding: topLevel('ClusterRoleBinding', bindingFields),
  SubjectAccessReview: topLevel('SubjectAccessReview', {
    2: m('spec', message('SubjectAccessReviewSpec', { ...accessReviewSpec, 3: s('user'), 4: strings('groups'), 6: s('uid') })),
    3: m('status', emptyStatus),
  }),
  Pod: topLevel('Pod', { 2: m('spec', podSpec), 3: m('status', emptyStatus) }),
  Service: topLevel('Service', { 2: m('spec', serviceSpec), 3: m('status', emptyStatus) }),
  Deployment: topLevel('Deployment', { 2: m('spec', deploymentSpec), 3: m('status', emptyStatus) }),
  ReplicaSet: topLevel('ReplicaSet', { 2: m('spec', replicaSetSpec), 3: m('status', emptyStatus) }),
  Job: topLevel('Job', { 2: m('spec', jobSpec), 3: m('status', emptyStatus) }),
};

// ---- wire format -------------------------------------------------------------------------

/** A cursor over protobuf wire bytes; every read checks bounds first. */
class Reader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.offset >= this.bytes.length) throw new ProtobufDecodeError('truncated varint');
      const byte = this.bytes[this.offset++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
    throw new ProtobufDecodeError('varint longer than 10 bytes');
  }

  bytesField(): Uint8Array {
    const length = Number(this.varint());
    if (length > this.bytes.length - this.offset) throw new ProtobufDecodeError('length-delimited field runs past the end');
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.bytesField();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new ProtobufDecodeError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(count: number): void {
    if (count > this.bytes.length - this.offset) throw new ProtobufDecodeError('fixed-width field runs past the end');
    this.offset += count;
  }
}

/** Go's int64/int32 as a JS number (two's complement for negatives). */
function toNumber(value: bigint): number {
  return Number(BigInt.asIntN(64, value));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function text(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ProtobufDecodeError('a string field is not valid UTF-8');
  }
}

/** Each (field number, wire type, payload) of one message, in order. */
function* fieldsOf(bytes: Uint8Array): Generator<{ number: number; wireType: number; varint?: bigint; bytes?: Uint8Array }> {
  const reader = new Reader(bytes);
  while (!reader.done) {
    const tag = Number(reader.varint());
    const number = tag >>> 3;
    const wireType = tag & 7;
    if (number === 0) throw new ProtobufDecodeError('field number 0');
    if (wireType === 0) yield { number, wireType, varint: reader.varint() };
    else if (wireType === 2) yield { number, wireType, bytes: reader.bytesField() };
    else {
      reader.skip(wireType);
      yield { number, wireType };
    }
  }
}

function special(type: Special, bytes: Uint8Array): unknown {
  const values = new Map<number, bigint | Uint8Array>();
  for (const field of fieldsOf(bytes)) values.set(field.number, field.varint ?? field.bytes ?? new Uint8Array());
  const int = (n: number): number => {
    const v = values.get(n);
    return typeof v === 'bigint' ? toNumber(v) : 0;
  };
  const str = (n: number): string => {
    const v = values.get(n);
    return v instanceof Uint8Array ? text(v) : '';
  };
  switch (type) {
    case 'time': {
      const seconds = int(1);
      return seconds === 0 ? undefined : new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    case 'intOrString':
      return int(1) === 1 ? str(3) : int(2);
    case 'quantity':
      return str(1);
  }
}

function scalar(type: Scalar, field: { wireType: number; varint?: bigint; bytes?: Uint8Array }, path: string): unknown {
  if (type === 'string' || type === 'bytes') {
    if (!field.bytes) throw new ProtobufDecodeError(`${path}: expected a length-delimited value`);
    return type === 'string' ? text(field.bytes) : Buffer.from(field.bytes).toString('base64');
  }
  if (field.varint === undefined) throw new ProtobufDecodeError(`${path}: expected a varint`);
  return type === 'bool' ? field.varint !== 0n : toNumber(field.varint);
}

function isZero(value: unknown): boolean {
  return value === '' || value === 0 || value === false || value === undefined;
}

function decodeValue(field: Field, payload: { wireType: number; varint?: bigint; bytes?: Uint8Array }, path: string): unknown {
  if (typeof field.type === 'object') {
    if (!payload.bytes) throw new ProtobufDecodeError(`${path}: expected a message`);
    return decodeMessage(field.type, payload.bytes, path);
  }
  if (field.type === 'time' || field.type === 'intOrString' || field.type === 'quantity') {
    if (!payload.bytes) throw new ProtobufDecodeError(`${path}: expected a message`);
    return special(field.type, payload.bytes);
  }
  return scalar(field.type, payload, path);
}

function decodeMessage(spec: MessageSpec, bytes: Uint8Array, path: string): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  if (spec.skipContent) {
    // Still walked, so a malformed body is refused rather than half-read.
    for (const _ of fieldsOf(bytes));
    return result;
  }
  for (const payload of fieldsOf(bytes)) {
    const field = spec.fields[payload.number];
    const at = path ? `${path}.${field?.name ?? `#${payload.number}`}` : field?.name ?? `#${payload.number}`;
    if (!field) throw new ProtobufUnsupportedError(`protobuf field ${payload.number} of ${spec.name} (${at}) is not supported by this server`);
    if (field.map) {
      if (!payload.bytes) throw new ProtobufDecodeError(`${at}: expected a map entry`);
      let key = '';
      let value: unknown = field.type === 'string' ? '' : undefined;
      for (const entry of fieldsOf(payload.bytes)) {
        if (entry.number === 1 && entry.bytes) key = text(entry.bytes);
        else if (entry.number === 2) value = decodeValue({ ...field, map: false }, entry, `${at}[${key}]`);
      }
      const map = (result[field.name] ??= {}) as Record<string, unknown>;
      map[key] = value;
      continue;
    }
    const value = decodeValue(field, payload, at);
    if (field.repeated) {
      ((result[field.name] ??= []) as unknown[]).push(value);
    } else if (field.inline && typeof value === 'object' && value !== null) {
      Object.assign(result, value);
    } else if (value !== undefined && (field.keep || !isZero(value))) {
      result[field.name] = value;
    } else {
      delete result[field.name];
    }
  }
  return result;
}

/** Decodes a `k8s\0`-framed runtime.Unknown holding one object of a kind listed above. */
export function decodeProtobufObject(body: Uint8Array): KubeObject {
  if (body.length < MAGIC.length || MAGIC.some((byte, index) => body[index] !== byte)) {
    throw new ProtobufDecodeError('the body does not start with the Kubernetes protobuf magic "k8s\\0"');
  }
  let apiVersion = '';
  let kind = '';
  let raw: Uint8Array | undefined;
  let encoding = '';
  for (const field of fieldsOf(body.subarray(MAGIC.length))) {
    if (field.number === 1 && field.bytes) {
      for (const typeField of fieldsOf(field.bytes)) {
        if (typeField.number === 1 && typeField.bytes) apiVersion = text(typeField.bytes);
        if (typeField.number === 2 && typeField.bytes) kind = text(typeField.bytes);
      }
    } else if (field.number === 2 && field.bytes) {
      raw = field.bytes;
    } else if (field.number === 3 && field.bytes) {
      encoding = text(field.bytes);
    }
  }
  if (encoding !== '') throw new ProtobufUnsupportedError(`protobuf content encoding "${encoding}" is not supported`);
  const spec = KINDS[kind];
  if (!spec) throw new ProtobufUnsupportedError(`protobuf bodies of kind "${kind}" are not supported by this server`);
  const object = decodeMessage(spec, raw ?? new Uint8Array(), '');
  return { apiVersion, kind, ...object, metadata: (object['metadata'] as KubeObject['metadata'] | undefined) ?? {} };
}
