/**
 * `fieldValidation=Strict|Warn|Ignore`: unknown fields in a request body. Objects are stored
 * as sent, so without this a typo (`replica: 3`) would be kept and silently ignored.
 *
 * The known-field tree covers the levels people actually type by hand: every kind's top-level
 * fields and ObjectMeta, and the specs of Pod, pod templates, containers, Deployment,
 * ReplicaSet and Service. Deeper structures (probes, volumes, affinity) pass unchecked; an
 * unchecked field is accepted and kept, which is the safe direction. Under Warn and Ignore
 * the unknown fields found are dropped before storing, as upstream's typed decoding does.
 */
import type { KubeObject } from '../api/meta.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/** A node of the known-field tree: named children, or `items` for a list's elements. */
interface Known {
  fields?: Record<string, Known | true>;
  items?: Known;
}

function object(fields: Record<string, Known | true>): Known {
  return { fields };
}
function list(items: Known): Known {
  return { items };
}
function names(...keys: string[]): Record<string, true> {
  return Object.fromEntries(keys.map((k) => [k, true as const]));
}

const objectMeta = object(
  names(
    'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
    'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
  ),
);

const containerPort = object(names('containerPort', 'hostIP', 'hostPort', 'name', 'protocol'));

const container = object({
  ...names(
    'args', 'command', 'env', 'envFrom', 'image', 'imagePullPolicy', 'lifecycle', 'livenessProbe', 'name', 'readinessProbe',
    'resizePolicy', 'resources', 'restartPolicy', 'securityContext', 'startupProbe', 'stdin', 'stdinOnce',
    'terminationMessagePath', 'terminationMessagePolicy', 'tty', 'volumeDevices', 'volumeMounts', 'workingDir',
  ),
  ports: list(containerPort),
});

const podSpec = object({
  ...names(
    'activeDeadlineSeconds', 'affinity', 'automountServiceAccountToken', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks',
    'ephemeralContainers', 'hostAliases', 'hostIPC', 'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'imagePullSecrets',
    'nodeName', 'nodeSelector', 'os', 'overhead', 'preemptionPolicy', 'priority', 'priorityClassName', 'readinessGates',
    'resourceClaims', 'resources', 'restartPolicy', 'runtimeClassName', 'schedulerName', 'schedulingGates', 'securityContext',
    'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace', 'subdomain',
    'terminationGracePeriodSeconds', 'tolerations', 'topologySpreadConstraints', 'volumes',
  ),
  containers: list(container),
  initContainers: list(container),
});

const podTemplate = object({ metadata: objectMeta, spec: podSpec });
const labelSelector = object(names('matchLabels', 'matchExpressions'));

const deploymentSpec = object({
  ...names('minReadySeconds', 'paused', 'progressDeadlineSeconds', 'replicas', 'revisionHistoryLimit', 'strategy'),
  selector: labelSelector,
  template: podTemplate,
});
const replicaSetSpec = object({ ...names('minReadySeconds', 'replicas'), selector: labelSelector, template: podTemplate });
const daemonSetSpec = object({ ...names('minReadySeconds', 'revisionHistoryLimit', 'updateStrategy'), selector: labelSelector, template: podTemplate });
// podFailurePolicy, successPolicy and the per-index fields are left out on purpose: the Job
// controller does not implement them, so Strict validation refuses them instead of ignoring them.
const jobSpec = object({
  ...names(
    'activeDeadlineSeconds', 'backoffLimit', 'completionMode', 'completions', 'manualSelector', 'parallelism',
    'podReplacementPolicy', 'suspend', 'ttlSecondsAfterFinished',
  ),
  selector: labelSelector,
  template: podTemplate,
});

const servicePort = object(names('appProtocol', 'name', 'nodePort', 'port', 'protocol', 'targetPort'));
const serviceSpec = object({
  ...names(
    'allocateLoadBalancerNodePorts', 'clusterIP', 'clusterIPs', 'externalIPs', 'externalName', 'externalTrafficPolicy',
    'healthCheckNodePort', 'internalTrafficPolicy', 'ipFamilies', 'ipFamilyPolicy', 'loadBalancerClass', 'loadBalancerIP',
    'loadBalancerSourceRanges', 'publishNotReadyAddresses', 'selector', 'sessionAffinity', 'sessionAffinityConfig',
    'trafficDistribution', 'type',
  ),
  ports: list(servicePort),
});

function kindTree(rest: Record<string, Known | true>): Known {
  return object({ apiVersion: true, kind: true, metadata: objectMeta, ...rest });
}

const KNOWN: Record<string, Known> = {
  Namespace: kindTree(names('spec', 'status')),
  Node: kindTree(names('spec', 'status')),
  Pod: kindTree({ spec: podSpec, status: true }),
  Service: kindTree({ spec: serviceSpec, status: true }),
  Endpoints: kindTree(names('subsets')),
  ConfigMap: kindTree(names('data', 'binaryData', 'immutable')),
  Secret: kindTree(names('data', 'stringData', 'type', 'immutable')),
  ServiceAccount: kindTree(names('secrets', 'imagePullSecrets', 'automountServiceAccountToken')),
  Event: kindTree(
    names(
      'involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count', 'type', 'eventTime',
      'series', 'action', 'related', 'reportingComponent', 'reportingInstance',
    ),
  ),
  Deployment: kindTree({ spec: deploymentSpec, status: true }),
  ReplicaSet: kindTree({ spec: replicaSetSpec, status: true }),
  DaemonSet: kindTree({ spec: daemonSetSpec, status: true }),
  Job: kindTree({ spec: jobSpec, status: true }),
  EndpointSlice: kindTree(names('addressType', 'endpoints', 'ports')),
  Lease: kindTree(names('spec')),
  Binding: kindTree(names('target')),
  Scale: kindTree(names('spec', 'status')),
};

/**
 * Unknown field paths in upstream's notation (`spec.template.spec.containers[0].foo`). With
 * `prune`, they are also deleted from `body`, as upstream's typed decoding drops them under
 * fieldValidation Warn and Ignore.
 */
export function unknownFields(kind: string, body: KubeObject | Record<string, unknown>, prune = false): string[] {
  const root = KNOWN[kind];
  if (!root) return [];
  const found: string[] = [];
  const walk = (value: unknown, known: Known, path: string): void => {
    if (known.items) {
      if (Array.isArray(value)) value.forEach((item, i) => walk(item, known.items!, `${path}[${i}]`));
      return;
    }
    if (!known.fields || typeof value !== 'object' || value === null || Array.isArray(value)) return;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const next = Object.prototype.hasOwnProperty.call(known.fields, key) ? known.fields[key] : undefined;
      const childPath = path ? `${path}.${key}` : key;
      if (next === undefined) {
        found.push(childPath);
        if (prune) delete record[key];
      } else if (next !== true) {
        walk(record[key], next, childPath);
      }
    }
  };
  walk(body, root, '');
  return found;
}

export function parseFieldValidation(value: string | undefined): FieldValidation | undefined {
  if (value === undefined || value === '') return 'Warn';
  return value === 'Strict' || value === 'Warn' || value === 'Ignore' ? value : undefined;
}
