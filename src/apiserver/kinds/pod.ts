/**
 * Pods: upstream's defaults (core/v1 SetDefaults_Pod/PodSpec/Container/Probe), validation
 * (ValidatePodSpec and friends) and update rules (a pod's spec is fixed once created, but for
 * container images, a shrinking activeDeadlineSeconds and added tolerations).
 *
 * The PodSpec pieces are exported because Deployment and ReplicaSet templates carry one and
 * are defaulted and validated the same way, under `spec.template.spec`.
 */
import type { KubeObject } from '../../api/meta.js';
import { isQuantity, quantityMilliValue } from '../../api/quantity.js';
import { labelKeyErrors, labelValueErrors } from '../../api/selectors.js';
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
import {
  PORT_RANGE_MESSAGE,
  configMapKeyErrors,
  dns1123LabelErrors,
  dns1123SubdomainErrors,
  envVarNameErrors,
  isPortNumber,
  portNameErrors,
} from './names.js';
import {
  TypeChecker,
  asArray,
  asNumber,
  asObject,
  asString,
  defaultValue,
  jsonDiffPaths,
  jsonEqual,
  objectsOf,
  type JsonObject,
} from './values.js';

export const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
export const DNS_POLICIES = ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'] as const;
export const PROTOCOLS = ['SCTP', 'TCP', 'UDP'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];
const TERMINATION_MESSAGE_POLICIES = ['File', 'FallbackToLogsOnError'];
const TOLERATION_OPERATORS = ['Equal', 'Exists'];
export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;
const PROBE_HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'];
const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'];
const HTTP_SCHEMES = ['HTTP', 'HTTPS'];
const ENV_SOURCES = ['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef'];
const ENV_FIELD_PATHS = [
  'metadata.annotations',
  'metadata.labels',
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
];
const STANDARD_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage', 'storage', 'pods']);
const MAX_INT32 = 2147483647;

/** The fields a pod update may change, worded as upstream's Forbidden message lists them. */
const UPDATABLE_POD_FIELDS =
  '`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,' +
  '`spec.tolerations` (only additions to existing tolerations),' +
  '`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

// ---- defaults -------------------------------------------------------------------------------

/** `Always` for `:latest` or untagged images (they move), `IfNotPresent` for tags and digests. */
export function defaultPullPolicy(image: unknown): 'Always' | 'IfNotPresent' {
  if (typeof image !== 'string' || image === '' || image.includes('@')) return 'IfNotPresent';
  const colon = image.lastIndexOf(':');
  const tag = colon > image.lastIndexOf('/') ? image.slice(colon + 1) : 'latest';
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** Probe int32 fields are not pointers upstream: 0 means "use the default". */
function defaultCount(parent: JsonObject, key: string, value: number): void {
  if (parent[key] === undefined || parent[key] === null || parent[key] === 0) parent[key] = value;
}

function defaultProbe(probe: JsonObject): void {
  defaultCount(probe, 'timeoutSeconds', 1);
  defaultCount(probe, 'periodSeconds', 10);
  defaultCount(probe, 'successThreshold', 1);
  defaultCount(probe, 'failureThreshold', 3);
  const httpGet = asObject(probe['httpGet']);
  if (httpGet) {
    defaultValue(httpGet, 'path', '/');
    defaultValue(httpGet, 'scheme', 'HTTP');
  }
}

function defaultContainer(container: JsonObject, hostNetwork: boolean): void {
  defaultValue(container, 'imagePullPolicy', defaultPullPolicy(container['image']));
  defaultValue(container, 'terminationMessagePath', '/dev/termination-log');
  defaultValue(container, 'terminationMessagePolicy', 'File');
  if (container['resources'] === undefined || container['resources'] === null) container['resources'] = {};
  for (const [, port] of objectsOf(container['ports'])) {
    defaultValue(port, 'protocol', 'TCP');
    // With the host's network the container port is the host port.
    if (hostNetwork && (port['hostPort'] === undefined || port['hostPort'] === 0)) port['hostPort'] = port['containerPort'];
  }
  for (const probeName of PROBES) {
    const probe = asObject(container[probeName]);
    if (probe) defaultProbe(probe);
  }
  for (const [, env] of objectsOf(container['env'])) {
    const fieldRef = asObject(asObject(env['valueFrom'])?.['fieldRef']);
    if (fieldRef) defaultValue(fieldRef, 'apiVersion', 'v1');
  }
}

/** PodSpec defaults, shared by pods and the templates of Deployments and ReplicaSets. */
export function defaultPodSpec(spec: JsonObject): void {
  defaultValue(spec, 'restartPolicy', 'Always');
  defaultValue(spec, 'dnsPolicy', 'ClusterFirst');
  defaultValue(spec, 'schedulerName', 'default-scheduler');
  if (spec['terminationGracePeriodSeconds'] === undefined || spec['terminationGracePeriodSeconds'] === null) {
    spec['terminationGracePeriodSeconds'] = 30;
  }
  if (spec['securityContext'] === undefined || spec['securityContext'] === null) spec['securityContext'] = {};
  const hostNetwork = spec['hostNetwork'] === true;
  for (const [, container] of [...objectsOf(spec['initContainers']), ...objectsOf(spec['containers'])]) {
    defaultContainer(container, hostNetwork);
  }
}

/** Requests default to limits on pods (not on templates), which is what makes them Guaranteed. */
function defaultRequestsFromLimits(container: JsonObject): void {
  const resources = asObject(container['resources']);
  const limits = asObject(resources?.['limits']);
  if (!resources || !limits) return;
  if (resources['requests'] === undefined || resources['requests'] === null) resources['requests'] = {};
  const requests = asObject(resources['requests']);
  if (!requests) return;
  for (const [name, quantity] of Object.entries(limits)) if (requests[name] === undefined) requests[name] = quantity;
}

/**
 * Keeps the singular and plural forms of an address field in step, as upstream's conversion
 * does: `podIP` is `podIPs[0].ip`, whichever of the two the writer set.
 */
export function syncIpPair(status: JsonObject, single: string, plural: string): void {
  const one = asString(status[single]);
  const many = asArray(status[plural]);
  if (one && (!many || many.length === 0)) status[plural] = [{ ip: one }];
  else if (!one && many && many.length > 0) {
    const first = asString(asObject(many[0])?.['ip']);
    if (first) status[single] = first;
  }
}

// ---- QoS -------------------------------------------------------------------------------------

const QOS_RESOURCES = ['cpu', 'memory'];

function positiveMilli(quantity: unknown): number | undefined {
  if ((typeof quantity !== 'string' && typeof quantity !== 'number') || !isQuantity(quantity)) return undefined;
  const milli = quantityMilliValue(quantity);
  return milli > 0 ? milli : undefined;
}

/**
 * The pod's QoS class (upstream's GetPodQOS): BestEffort with no cpu/memory requests or limits
 * anywhere, Guaranteed when every container limits both and requests equal limits, otherwise
 * Burstable. Requests missing next to a limit count as equal to it (the pod default).
 */
export function podQosClass(spec: unknown): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const object = asObject(spec) ?? {};
  const requests = new Map<string, number>();
  const limits = new Map<string, number>();
  let guaranteed = true;
  for (const [, container] of [...objectsOf(object['initContainers']), ...objectsOf(object['containers'])]) {
    const resources = asObject(container['resources']) ?? {};
    const containerLimits = asObject(resources['limits']) ?? {};
    const containerRequests = { ...containerLimits, ...(asObject(resources['requests']) ?? {}) };
    for (const name of QOS_RESOURCES) {
      const request = positiveMilli(containerRequests[name]);
      if (request !== undefined) requests.set(name, (requests.get(name) ?? 0) + request);
      const limit = positiveMilli(containerLimits[name]);
      if (limit !== undefined) limits.set(name, (limits.get(name) ?? 0) + limit);
      else guaranteed = false;
    }
  }
  if (requests.size === 0 && limits.size === 0) return 'BestEffort';
  if (guaranteed && requests.size === limits.size && [...requests].every(([name, value]) => limits.get(name) === value)) {
    return 'Guaranteed';
  }
  return 'Burstable';
}

// ---- validation ------------------------------------------------------------------------------

function validateResources(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const resources = check.object(value, path);
  if (!resources) return causes;
  const milli: Record<'limits' | 'requests', Map<string, { quantity: unknown; milli: number }>> = { limits: new Map(), requests: new Map() };
  for (const kind of ['limits', 'requests'] as const) {
    const at = path.child(kind);
    for (const [name, quantity] of Object.entries(check.object(resources[kind], at) ?? {})) {
      if (!STANDARD_RESOURCES.has(name) && !name.startsWith('hugepages-') && !name.includes('/')) {
        causes.push(invalid(at.key(name), name, 'must be a standard resource type or fully qualified'));
      }
      if ((typeof quantity !== 'string' && typeof quantity !== 'number') || !isQuantity(quantity)) {
        causes.push(invalid(at.key(name), quantity, "must be a quantity, e.g. '100m', '0.5', '128Mi' or '1Gi'"));
        continue;
      }
      const value = quantityMilliValue(quantity);
      if (value < 0) causes.push(invalid(at.key(name), quantity, 'must be greater than or equal to 0'));
      milli[kind].set(name, { quantity, milli: value });
    }
  }
  for (const [name, request] of milli.requests) {
    const limit = milli.limits.get(name);
    if (limit && request.milli > limit.milli) {
      causes.push(invalid(path.child('requests').key(name), request.quantity, `must be less than or equal to ${name} limit of ${String(limit.quantity)}`));
    }
  }
  return causes;
}

/** A probe's or handler's port: a number in range or an IANA port name. */
function validatePortNumOrName(value: unknown, path: FieldPath): FieldCause[] {
  if (value === undefined || value === null || value === '' || value === 0) return [required(path, '')];
  if (typeof value === 'number') return isPortNumber(value) ? [] : [invalid(path, value, PORT_RANGE_MESSAGE)];
  if (typeof value === 'string') return invalidEach(path, value, portNameErrors(value));
  return [invalid(path, value, 'must be a port number or name')];
}

function validateProbe(probe: JsonObject, path: FieldPath, kind: string, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const handlers = PROBE_HANDLERS.filter((handler) => probe[handler] !== undefined && probe[handler] !== null);
  if (handlers.length === 0) causes.push(required(path, 'must specify a handler type'));
  for (const extra of handlers.slice(1)) causes.push(forbidden(path.child(extra), 'may not specify more than 1 handler type'));

  const exec = check.object(probe['exec'], path.child('exec'));
  if (exec && check.strings(exec['command'], path.child('exec', 'command')).length === 0) {
    causes.push(required(path.child('exec', 'command'), ''));
  }
  const httpGet = check.object(probe['httpGet'], path.child('httpGet'));
  if (httpGet) {
    causes.push(...validatePortNumOrName(httpGet['port'], path.child('httpGet', 'port')));
    const scheme = check.string(httpGet['scheme'], path.child('httpGet', 'scheme'));
    if (scheme !== undefined && !HTTP_SCHEMES.includes(scheme)) causes.push(notSupported(path.child('httpGet', 'scheme'), scheme, HTTP_SCHEMES));
    check.string(httpGet['path'], path.child('httpGet', 'path'));
    for (const [i, header] of check.objects(httpGet['httpHeaders'], path.child('httpGet', 'httpHeaders'))) {
      const name = check.string(header['name'], path.child('httpGet', 'httpHeaders').index(i).child('name')) ?? '';
      if (!/^[-A-Za-z0-9]+$/.test(name)) {
        causes.push(invalid(path.child('httpGet', 'httpHeaders').index(i).child('name'), name, 'a valid HTTP header must consist of alphanumeric characters or \'-\''));
      }
    }
  }
  const tcpSocket = check.object(probe['tcpSocket'], path.child('tcpSocket'));
  if (tcpSocket) causes.push(...validatePortNumOrName(tcpSocket['port'], path.child('tcpSocket', 'port')));
  const grpc = check.object(probe['grpc'], path.child('grpc'));
  if (grpc) {
    const port = grpc['port'];
    if (!isPortNumber(port)) causes.push(invalid(path.child('grpc', 'port'), port, PORT_RANGE_MESSAGE));
  }

  for (const key of ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold']) {
    const value = check.integer(probe[key], path.child(key));
    if (value !== undefined && value < 0) causes.push(invalid(path.child(key), value, 'must be greater than or equal to 0'));
  }
  const successThreshold = asNumber(probe['successThreshold']);
  if (kind !== 'readinessProbe' && successThreshold !== undefined && successThreshold !== 1) {
    causes.push(invalid(path.child('successThreshold'), successThreshold, 'must be 1'));
  }
  return causes;
}

function validateEnv(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  for (const [i, env] of check.objects(value, path)) {
    const at = path.index(i);
    const name = check.string(env['name'], at.child('name'));
    if (!name) causes.push(required(at.child('name'), ''));
    else causes.push(...invalidEach(at.child('name'), name, envVarNameErrors(name)));
    const text = check.string(env['value'], at.child('value'));
    const valueFrom = check.object(env['valueFrom'], at.child('valueFrom'));
    if (!valueFrom) continue;
    if (text) causes.push(invalid(at.child('valueFrom'), '', 'may not be specified when `value` is not empty'));
    const sources = ENV_SOURCES.filter((source) => valueFrom[source] !== undefined && valueFrom[source] !== null);
    if (sources.length === 0) {
      causes.push(required(at.child('valueFrom'), 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'));
    } else if (sources.length > 1) {
      causes.push(invalid(at.child('valueFrom'), '', 'may not have more than one field specified at a time'));
    }
    const fieldRef = check.object(valueFrom['fieldRef'], at.child('valueFrom', 'fieldRef'));
    if (fieldRef) {
      const fieldPath = check.string(fieldRef['fieldPath'], at.child('valueFrom', 'fieldRef', 'fieldPath'));
      // metadata.labels['key'] and metadata.annotations['key'] select one entry.
      const subscripted = fieldPath !== undefined && /^metadata\.(labels|annotations)\['[^']+'\]$/.test(fieldPath);
      if (!fieldPath) causes.push(required(at.child('valueFrom', 'fieldRef', 'fieldPath'), ''));
      else if (!subscripted && !ENV_FIELD_PATHS.includes(fieldPath)) {
        causes.push(notSupported(at.child('valueFrom', 'fieldRef', 'fieldPath'), fieldPath, ENV_FIELD_PATHS));
      }
    }
    for (const source of ['configMapKeyRef', 'secretKeyRef']) {
      const ref = check.object(valueFrom[source], at.child('valueFrom', source));
      if (!ref) continue;
      const key = check.string(ref['key'], at.child('valueFrom', source, 'key'));
      if (!key) causes.push(required(at.child('valueFrom', source, 'key'), ''));
      else causes.push(...invalidEach(at.child('valueFrom', source, 'key'), key, configMapKeyErrors(key)));
    }
  }
  return causes;
}

interface PodSpecContext {
  check: TypeChecker;
  hostNetwork: boolean;
  containerNames: Set<string>;
  /** `hostIP/hostPort/protocol` already claimed by an earlier container port. */
  hostPorts: Set<string>;
}

function validatePorts(value: unknown, path: FieldPath, context: PodSpecContext): FieldCause[] {
  const causes: FieldCause[] = [];
  const { check } = context;
  const names = new Set<string>();
  for (const [i, port] of check.objects(value, path)) {
    const at = path.index(i);
    const containerPort = check.integer(port['containerPort'], at.child('containerPort'));
    if (!containerPort) {
      if (port['containerPort'] === undefined || port['containerPort'] === null || port['containerPort'] === 0) {
        causes.push(required(at.child('containerPort'), ''));
      }
    } else if (!isPortNumber(containerPort)) {
      causes.push(invalid(at.child('containerPort'), containerPort, PORT_RANGE_MESSAGE));
    }
    const hostPort = check.integer(port['hostPort'], at.child('hostPort')) ?? 0;
    if (hostPort !== 0 && !isPortNumber(hostPort)) causes.push(invalid(at.child('hostPort'), hostPort, PORT_RANGE_MESSAGE));
    if (context.hostNetwork && hostPort !== 0 && containerPort !== undefined && hostPort !== containerPort) {
      causes.push(invalid(at.child('hostPort'), hostPort, 'must match `containerPort` when `hostNetwork` is true'));
    }
    const protocol = check.string(port['protocol'], at.child('protocol'));
    if (protocol === undefined || protocol === '') causes.push(required(at.child('protocol'), ''));
    else if (!(PROTOCOLS as readonly string[]).includes(protocol)) causes.push(notSupported(at.child('protocol'), protocol, PROTOCOLS));
    const name = check.string(port['name'], at.child('name'));
    if (name) {
      causes.push(...invalidEach(at.child('name'), name, portNameErrors(name)));
      if (names.has(name)) causes.push(duplicate(at.child('name'), name));
      names.add(name);
    }
    if (hostPort !== 0) {
      const hostIP = asString(port['hostIP']) ?? '';
      const key = `${hostIP}/${hostPort}/${protocol ?? ''}`;
      if (context.hostPorts.has(key)) causes.push(duplicate(at.child('hostPort'), `${hostPort}/${protocol ?? ''}`));
      context.hostPorts.add(key);
    }
  }
  return causes;
}

function validateContainer(container: JsonObject, path: FieldPath, init: boolean, context: PodSpecContext): FieldCause[] {
  const causes: FieldCause[] = [];
  const { check } = context;
  const name = check.string(container['name'], path.child('name'));
  if (!name) causes.push(required(path.child('name'), ''));
  else {
    causes.push(...invalidEach(path.child('name'), name, dns1123LabelErrors(name)));
    if (context.containerNames.has(name)) causes.push(duplicate(path.child('name'), name));
    context.containerNames.add(name);
  }
  const image = check.string(container['image'], path.child('image'));
  if (!image) causes.push(required(path.child('image'), ''));
  else if (image.trim() !== image) causes.push(invalid(path.child('image'), image, 'must not have leading or trailing whitespace'));
  check.strings(container['command'], path.child('command'));
  check.strings(container['args'], path.child('args'));
  check.string(container['workingDir'], path.child('workingDir'));
  causes.push(...validatePorts(container['ports'], path.child('ports'), context));
  causes.push(...validateEnv(container['env'], path.child('env'), check));
  causes.push(...validateResources(container['resources'], path.child('resources'), check));

  for (const probeName of PROBES) {
    const probe = check.object(container[probeName], path.child(probeName));
    if (!probe) continue;
    // Init containers run to completion before any probe would mean anything.
    if (init) causes.push(forbidden(path.child(probeName), 'may not be set for init containers'));
    else causes.push(...validateProbe(probe, path.child(probeName), probeName, check));
  }

  const pullPolicy = check.string(container['imagePullPolicy'], path.child('imagePullPolicy'));
  if (!pullPolicy) causes.push(required(path.child('imagePullPolicy'), ''));
  else if (!PULL_POLICIES.includes(pullPolicy)) causes.push(notSupported(path.child('imagePullPolicy'), pullPolicy, PULL_POLICIES));
  const messagePolicy = check.string(container['terminationMessagePolicy'], path.child('terminationMessagePolicy'));
  if (!messagePolicy) causes.push(required(path.child('terminationMessagePolicy'), ''));
  else if (!TERMINATION_MESSAGE_POLICIES.includes(messagePolicy)) {
    causes.push(notSupported(path.child('terminationMessagePolicy'), messagePolicy, TERMINATION_MESSAGE_POLICIES));
  }
  return causes;
}

function validateTolerations(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  for (const [i, toleration] of check.objects(value, path)) {
    const at = path.index(i);
    const key = check.string(toleration['key'], at.child('key')) ?? '';
    if (key) causes.push(...invalidEach(at.child('key'), key, labelKeyErrors(key)));
    const operator = check.string(toleration['operator'], at.child('operator')) ?? '';
    if (!key && operator !== 'Exists') {
      causes.push(invalid(at.child('operator'), operator, 'operator must be Exists when `key` is empty, which means "match all values and all keys"'));
    }
    const effect = check.string(toleration['effect'], at.child('effect')) ?? '';
    const seconds = check.integer(toleration['tolerationSeconds'], at.child('tolerationSeconds'));
    if (seconds !== undefined && effect !== 'NoExecute') {
      causes.push(invalid(at.child('effect'), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"));
    }
    const tolerationValue = check.string(toleration['value'], at.child('value')) ?? '';
    if (operator === '' || operator === 'Equal') causes.push(...invalidEach(at.child('value'), tolerationValue, labelValueErrors(tolerationValue)));
    else if (operator === 'Exists') {
      if (tolerationValue) causes.push(invalid(at.child('operator'), toleration, "value must be empty when `operator` is 'Exists'"));
    } else causes.push(notSupported(at.child('operator'), operator, TOLERATION_OPERATORS));
    if (effect && !(TAINT_EFFECTS as readonly string[]).includes(effect)) causes.push(notSupported(at.child('effect'), effect, TAINT_EFFECTS));
  }
  return causes;
}

function validateNameField(value: unknown, path: FieldPath, check: TypeChecker, rule: (v: string) => string[]): FieldCause[] {
  const text = check.string(value, path);
  return text ? invalidEach(path, text, rule(text)) : [];
}

export interface PodSpecOptions {
  /** The restart policies this owner allows (workload templates: only Always). */
  restartPolicies?: readonly string[];
  /** Forbid activeDeadlineSeconds (ReplicaSet and Deployment templates). */
  forbidActiveDeadline?: string;
}

/** A PodSpec at `path` (`spec`, or `spec.template.spec` in a workload). */
export function validatePodSpec(value: unknown, path: FieldPath, options: PodSpecOptions = {}): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  if (value === undefined || value === null) return [required(path, '')];
  const spec = check.object(value, path);
  if (!spec) return causes;
  const context: PodSpecContext = { check, hostNetwork: spec['hostNetwork'] === true, containerNames: new Set(), hostPorts: new Set() };

  const containers = check.objects(spec['containers'], path.child('containers'));
  const listed = spec['containers'];
  if (listed === undefined || listed === null || (Array.isArray(listed) && listed.length === 0)) {
    causes.push(required(path.child('containers'), ''));
  }
  for (const [i, container] of check.objects(spec['initContainers'], path.child('initContainers'))) {
    causes.push(...validateContainer(container, path.child('initContainers').index(i), true, context));
  }
  for (const [i, container] of containers) causes.push(...validateContainer(container, path.child('containers').index(i), false, context));

  const allowedRestart = options.restartPolicies ?? RESTART_POLICIES;
  const restartPolicy = check.string(spec['restartPolicy'], path.child('restartPolicy'));
  if (!restartPolicy) causes.push(required(path.child('restartPolicy'), ''));
  else if (!allowedRestart.includes(restartPolicy)) causes.push(notSupported(path.child('restartPolicy'), restartPolicy, allowedRestart));
  const dnsPolicy = check.string(spec['dnsPolicy'], path.child('dnsPolicy'));
  if (!dnsPolicy) causes.push(required(path.child('dnsPolicy'), ''));
  else if (!(DNS_POLICIES as readonly string[]).includes(dnsPolicy)) causes.push(notSupported(path.child('dnsPolicy'), dnsPolicy, DNS_POLICIES));

  const grace = check.integer(spec['terminationGracePeriodSeconds'], path.child('terminationGracePeriodSeconds'));
  if (grace !== undefined && grace < 0) causes.push(invalid(path.child('terminationGracePeriodSeconds'), grace, 'must be greater than or equal to 0'));
  const deadline = check.integer(spec['activeDeadlineSeconds'], path.child('activeDeadlineSeconds'));
  if (deadline !== undefined) {
    if (options.forbidActiveDeadline) causes.push(forbidden(path.child('activeDeadlineSeconds'), options.forbidActiveDeadline));
    else if (deadline < 1 || deadline > MAX_INT32) {
      causes.push(invalid(path.child('activeDeadlineSeconds'), deadline, `must be between 1 and ${MAX_INT32}, inclusive`));
    }
  }
  causes.push(...validateLabels(check.stringMap(spec['nodeSelector'], path.child('nodeSelector')), path.child('nodeSelector')));
  causes.push(...validateNameField(spec['nodeName'], path.child('nodeName'), check, dns1123SubdomainErrors));
  causes.push(...validateNameField(spec['serviceAccountName'], path.child('serviceAccountName'), check, dns1123SubdomainErrors));
  causes.push(...validateNameField(spec['schedulerName'], path.child('schedulerName'), check, dns1123SubdomainErrors));
  causes.push(...validateNameField(spec['hostname'], path.child('hostname'), check, dns1123LabelErrors));
  causes.push(...validateNameField(spec['subdomain'], path.child('subdomain'), check, dns1123LabelErrors));
  check.boolean(spec['hostNetwork'], path.child('hostNetwork'));
  check.boolean(spec['enableServiceLinks'], path.child('enableServiceLinks'));
  check.integer(spec['priority'], path.child('priority'));
  causes.push(...validateTolerations(spec['tolerations'], path.child('tolerations'), check));
  for (const [i, gate] of check.objects(spec['readinessGates'], path.child('readinessGates'))) {
    const conditionType = check.string(gate['conditionType'], path.child('readinessGates').index(i).child('conditionType')) ?? '';
    causes.push(...invalidEach(path.child('readinessGates').index(i).child('conditionType'), conditionType, labelKeyErrors(conditionType)));
  }
  return causes;
}

function validateIps(status: JsonObject, single: string, plural: string, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const one = check.string(status[single], path.child(single));
  if (one && !tryParseIp(one)) causes.push(invalid(path.child(single), one, 'must be a valid IP address'));
  for (const [i, entry] of check.objects(status[plural], path.child(plural))) {
    const ip = check.string(entry['ip'], path.child(plural).index(i).child('ip'));
    if (ip === undefined || !tryParseIp(ip)) causes.push(invalid(path.child(plural).index(i).child('ip'), ip ?? '', 'must be a valid IP address'));
  }
  const first = asString(asObject(asArray(status[plural])?.[0])?.['ip']);
  if (one && first && one !== first) causes.push(invalid(path.child(plural), status[plural], `must match \`${single}\``));
  return causes;
}

// ---- strategy --------------------------------------------------------------------------------

export class PodStrategy extends GenericStrategy {
  readonly deleteAnswersWithObject = true;

  constructor() {
    super({ namespaced: true, hasStatus: true });
  }

  /** A pod bound to a node that has not finished gets time to stop; others go at once. */
  deletionGracePeriodSeconds(pod: KubeObject, requested: number | undefined): number {
    const spec = (pod['spec'] ?? {}) as { nodeName?: unknown; terminationGracePeriodSeconds?: unknown };
    const phase = ((pod['status'] ?? {}) as { phase?: unknown }).phase;
    if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
    if (requested !== undefined) return requested;
    if (pod.metadata.deletionGracePeriodSeconds !== undefined) return pod.metadata.deletionGracePeriodSeconds;
    const configured = spec.terminationGracePeriodSeconds;
    return typeof configured === 'number' && configured >= 0 ? configured : 30;
  }

  override applyDefaults(object: KubeObject): void {
    const spec = asObject(object['spec']);
    if (spec) {
      defaultPodSpec(spec);
      if (spec['enableServiceLinks'] === undefined || spec['enableServiceLinks'] === null) spec['enableServiceLinks'] = true;
      for (const [, container] of [...objectsOf(spec['initContainers']), ...objectsOf(spec['containers'])]) defaultRequestsFromLimits(container);
    }
    const status = asObject(object['status']);
    if (status) {
      syncIpPair(status, 'podIP', 'podIPs');
      syncIpPair(status, 'hostIP', 'hostIPs');
    }
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes = validatePodSpec(object['spec'], FieldPath.of('spec'));
    const check = new TypeChecker(causes);
    const status = check.object(object['status'], FieldPath.of('status'));
    if (status) {
      causes.push(...validateIps(status, 'podIP', 'podIPs', FieldPath.of('status'), check));
      causes.push(...validateIps(status, 'hostIP', 'hostIPs', FieldPath.of('status'), check));
      causes.push(...validateNameField(status['nominatedNodeName'], FieldPath.of('status', 'nominatedNodeName'), check, dns1123SubdomainErrors));
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    const spec = asObject(object['spec']);
    const oldSpec = asObject(old['spec']);
    if (!spec || !oldSpec) return [];
    const causes: FieldCause[] = [];
    const path = FieldPath.of('spec');
    // Compare the specs with every field an update may change put back to its old value.
    const munged = structuredClone(spec);
    for (const list of ['containers', 'initContainers']) {
      const now = asArray(munged[list]);
      const before = asArray(oldSpec[list]);
      if (!now || !before || now.length !== before.length) continue;
      now.forEach((container, i) => {
        const current = asObject(container);
        const previous = asObject(before[i]);
        if (current && previous) {
          if (previous['image'] === undefined) delete current['image'];
          else current['image'] = previous['image'];
        }
      });
    }

    const deadline = asNumber(spec['activeDeadlineSeconds']);
    const oldDeadline = asNumber(oldSpec['activeDeadlineSeconds']);
    if (oldDeadline !== undefined) {
      if (deadline === undefined) {
        causes.push(invalid(path.child('activeDeadlineSeconds'), null, 'must not update from a positive integer to nil value'));
      } else if (deadline > oldDeadline) {
        causes.push(invalid(path.child('activeDeadlineSeconds'), deadline, 'must be less than or equal to previous value'));
      }
    }
    setOrDelete(munged, 'activeDeadlineSeconds', oldSpec['activeDeadlineSeconds']);

    const tolerations = asArray(spec['tolerations']) ?? [];
    const oldTolerations = asArray(oldSpec['tolerations']) ?? [];
    if (!oldTolerations.every((before) => tolerations.some((now) => jsonEqual(now, before)))) {
      causes.push(forbidden(path.child('tolerations'), 'existing toleration can not be modified except its tolerationSeconds'));
    }
    setOrDelete(munged, 'tolerations', oldSpec['tolerations']);

    const oldGrace = asNumber(oldSpec['terminationGracePeriodSeconds']);
    if (oldGrace !== undefined && oldGrace < 0 && spec['terminationGracePeriodSeconds'] === 1) {
      munged['terminationGracePeriodSeconds'] = oldSpec['terminationGracePeriodSeconds'];
    }

    if (!jsonEqual(munged, oldSpec)) {
      const changed = jsonDiffPaths(oldSpec, munged, 'spec');
      causes.push(forbidden(path, `pod updates may not change fields other than ${UPDATABLE_POD_FIELDS}\nchanged: ${changed.join(', ')}`));
    }
    return causes;
  }

  protected override initialStatus(object: KubeObject): unknown {
    return { phase: 'Pending', qosClass: podQosClass(object['spec']) };
  }

  override prepareForStatusUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForStatusUpdate(object, old);
    const status = asObject(object['status']);
    if (status) {
      syncIpPair(status, 'podIP', 'podIPs');
      syncIpPair(status, 'hostIP', 'hostIPs');
    }
  }
}

function setOrDelete(object: JsonObject, key: string, value: unknown): void {
  if (value === undefined) delete object[key];
  else object[key] = structuredClone(value);
}
