/**
 * Server-side printing: objects as a meta.k8s.io/v1 Table, with the columns `kubectl get`
 * shows against a real cluster (upstream's pkg/printers/internalversion). kubectl upper-cases
 * the column names and hides `priority: 1` columns unless `-o wide`; every row carries all
 * cells, as upstream's server always prints wide.
 *
 * Objects are read defensively: a Table is built from whatever the store holds, and a field
 * of an unexpected type prints as if absent rather than failing the list.
 */
import type { KubeObject, LabelSelector, ListMeta } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import { formatLabelSelector } from '../api/selectors.js';
import type { IncludeObjectPolicy, Table, TableCell, TableColumnDefinition, TableRow, TableRowCondition } from '../api/table.js';

export interface TableOptions {
  includeObject: IncludeObjectPolicy;
  /** The clock AGE columns count from (tests pin it). */
  now?: Date;
  listMeta?: ListMeta;
  /** Leave columnDefinitions empty (watch events after the first need no headers). */
  noHeaders?: boolean;
}

// ---- durations ---------------------------------------------------------------------------------

/**
 * A duration the way kubectl prints ages (apimachinery's HumanDuration): precise when short,
 * coarser as it grows — "45s", "3m2s", "15m", "5h3m", "20h", "3d4h", "45d", "2y30d", "9y".
 */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.trunc(milliseconds / 1000);
  // Up to a second in the future is clock skew between machines: call it now.
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.trunc(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/** Time since an RFC 3339 timestamp, or "<unknown>" without one. */
export function ageSince(timestamp: unknown, now: Date): string {
  const at = typeof timestamp === 'string' ? Date.parse(timestamp) : Number.NaN;
  return Number.isNaN(at) ? '<unknown>' : humanDuration(now.getTime() - at);
}

// ---- readers -----------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.map(obj) : [];
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function orNone(value: string): string {
  return value === '' ? '<none>' : value;
}

/** `key=value` pairs sorted by key, as labels.FormatLabels prints a map. */
function formatLabelMap(labels: unknown): string {
  const entries = Object.entries(obj(labels)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return orNone(entries.map(([key, value]) => `${key}=${str(value)}`).join(','));
}

function formatSelector(selector: unknown): string {
  if (typeof selector !== 'object' || selector === null) return '<none>';
  try {
    return orNone(formatLabelSelector(selector as LabelSelector));
  } catch {
    return '<error>';
  }
}

function containerCells(template: unknown): [string, string] {
  const containers = list(obj(obj(template)['spec'])['containers']);
  return [containers.map((c) => str(c['name'])).join(','), containers.map((c) => str(c['image'])).join(',')];
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The first three entries, then " + N more..." as upstream abbreviates long lists. */
function firstThree(items: string[], total: number, emptyText: string): string {
  const shown = items.slice(0, 3).join(',');
  if (total > 3) return `${shown} + ${total - 3} more...`;
  return shown === '' ? emptyText : shown;
}

// ---- printers ----------------------------------------------------------------------------------

interface PrintedRow {
  cells: TableCell[];
  conditions?: TableRowCondition[];
}

interface Printer {
  columns: TableColumnDefinition[];
  print(object: KubeObject, now: Date): PrintedRow;
}

function column(name: string, description: string, options: { type?: TableColumnDefinition['type']; priority?: number; format?: string } = {}): TableColumnDefinition {
  return { name, type: options.type ?? 'string', format: options.format ?? '', description, priority: options.priority ?? 0 };
}

const NAME = column('Name', 'Name must be unique within a namespace.', { format: 'name' });
const AGE = column('Age', 'Time since the object was created (metadata.creationTimestamp).');
const CONTAINERS = column('Containers', 'Names of each container in the template.', { priority: 1 });
const IMAGES = column('Images', 'Images referenced by each container in the template.', { priority: 1 });
const SELECTOR = column('Selector', 'Label query over the pods this object manages.', { priority: 1 });

function nameOf(object: KubeObject): string {
  return str(object.metadata.name);
}

function ageOf(object: KubeObject, now: Date): string {
  return ageSince(object.metadata.creationTimestamp, now);
}

/** Latest `lastState.terminated.finishedAt` among statuses, in ms (0 when none). */
function lastTermination(status: Json, latest: number): number {
  const finished = Date.parse(str(obj(obj(status['lastState'])['terminated'])['finishedAt']));
  return Number.isNaN(finished) ? latest : Math.max(latest, finished);
}

function hasCondition(status: Json, type: string): boolean {
  return list(status['conditions']).some((condition) => condition['type'] === type && condition['status'] === 'True');
}

/** STATUS as kubectl derives it: init progress, container waiting/terminated reasons, Terminating. */
function printPod(pod: KubeObject, now: Date): PrintedRow {
  const spec = obj(pod['spec']);
  const status = obj(pod['status']);
  const phase = str(status['phase']);
  let reason = str(status['reason']) || phase;
  for (const condition of list(status['conditions'])) {
    if (condition['type'] === 'PodScheduled' && condition['reason'] === 'SchedulingGated') reason = 'SchedulingGated';
  }
  const conditions: TableRowCondition[] | undefined =
    phase === 'Succeeded'
      ? [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }]
      : phase === 'Failed'
        ? [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }]
        : undefined;

  const initContainers = list(spec['initContainers']);
  // Sidecars (init containers with restartPolicy Always) keep running and count as containers.
  const sidecars = new Set(initContainers.filter((c) => c['restartPolicy'] === 'Always').map((c) => str(c['name'])));
  const totalContainers = list(spec['containers']).length + sidecars.size;
  let readyContainers = 0;
  let restarts = 0;
  let sidecarRestarts = 0;
  let lastRestart = 0;
  let lastSidecarRestart = 0;

  let initializing = false;
  for (const [i, container] of list(status['initContainerStatuses']).entries()) {
    const state = obj(container['state']);
    const terminated = state['terminated'] === undefined ? undefined : obj(state['terminated']);
    const waiting = state['waiting'] === undefined ? undefined : obj(state['waiting']);
    const sidecar = sidecars.has(str(container['name']));
    restarts += num(container['restartCount']);
    lastRestart = lastTermination(container, lastRestart);
    if (sidecar) {
      sidecarRestarts += num(container['restartCount']);
      lastSidecarRestart = lastTermination(container, lastSidecarRestart);
    }
    if (terminated && num(terminated['exitCode']) === 0) continue;
    if (sidecar && container['started'] === true) {
      if (container['ready'] === true) readyContainers++;
      continue;
    }
    if (terminated) {
      const why = str(terminated['reason']);
      const signal = num(terminated['signal']);
      reason = why ? `Init:${why}` : signal ? `Init:Signal:${signal}` : `Init:ExitCode:${num(terminated['exitCode'])}`;
    } else if (waiting && str(waiting['reason']) && waiting['reason'] !== 'PodInitializing') {
      reason = `Init:${str(waiting['reason'])}`;
    } else {
      reason = `Init:${i}/${initContainers.length}`;
    }
    initializing = true;
    break;
  }

  if (!initializing || hasCondition(status, 'Initialized')) {
    restarts = sidecarRestarts;
    lastRestart = lastSidecarRestart;
    let hasRunning = false;
    const statuses = list(status['containerStatuses']);
    // Backwards, so the first container's state wins, as upstream.
    for (let i = statuses.length - 1; i >= 0; i--) {
      const container = statuses[i] ?? {};
      restarts += num(container['restartCount']);
      lastRestart = lastTermination(container, lastRestart);
      const state = obj(container['state']);
      const waiting = state['waiting'] === undefined ? undefined : obj(state['waiting']);
      const terminated = state['terminated'] === undefined ? undefined : obj(state['terminated']);
      if (waiting && str(waiting['reason'])) reason = str(waiting['reason']);
      else if (terminated && str(terminated['reason'])) reason = str(terminated['reason']);
      else if (terminated) {
        const signal = num(terminated['signal']);
        reason = signal ? `Signal:${signal}` : `ExitCode:${num(terminated['exitCode'])}`;
      } else if (container['ready'] === true && state['running'] !== undefined) {
        hasRunning = true;
        readyContainers++;
      }
    }
    // One container finished while another still runs: the pod is not "Completed".
    if (reason === 'Completed' && hasRunning) reason = hasCondition(status, 'Ready') ? 'Running' : 'NotReady';
  }

  if (pod.metadata.deletionTimestamp) {
    if (status['reason'] === 'NodeLost') reason = 'Unknown';
    else if (phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating';
  }

  const restartsText = restarts !== 0 && lastRestart !== 0 ? `${restarts} (${humanDuration(now.getTime() - lastRestart)} ago)` : String(restarts);
  const podIP = str(list(status['podIPs'])[0]?.['ip']) || str(status['podIP']);
  const gates = list(spec['readinessGates']);
  let readinessGates = '<none>';
  if (gates.length > 0) {
    const met = gates.filter((gate) => hasCondition(status, str(gate['conditionType']))).length;
    readinessGates = `${met}/${gates.length}`;
  }
  return {
    cells: [
      nameOf(pod),
      `${readyContainers}/${totalContainers}`,
      reason,
      restartsText,
      ageOf(pod, now),
      orNone(podIP),
      orNone(str(spec['nodeName'])),
      orNone(str(status['nominatedNodeName'])),
      readinessGates,
    ],
    ...(conditions ? { conditions } : {}),
  };
}

function serviceExternalIP(spec: Json, status: Json): string {
  const externalIPs = (Array.isArray(spec['externalIPs']) ? spec['externalIPs'] : []).map(str).filter((ip) => ip !== '');
  switch (spec['type']) {
    case 'ClusterIP':
    case 'NodePort':
      return externalIPs.length > 0 ? externalIPs.join(',') : '<none>';
    case 'LoadBalancer': {
      const ingress = list(obj(status['loadBalancer'])['ingress']).map((entry) => str(entry['ip']) || str(entry['hostname']));
      const balancers = [...new Set(ingress.filter((value) => value !== ''))];
      if (externalIPs.length > 0) return [...balancers, ...externalIPs].join(',');
      return balancers.length > 0 ? balancers.join(',') : '<pending>';
    }
    case 'ExternalName':
      return str(spec['externalName']);
    default:
      return '<unknown>';
  }
}

function printService(service: KubeObject, now: Date): PrintedRow {
  const spec = obj(service['spec']);
  const clusterIPs = Array.isArray(spec['clusterIPs']) ? spec['clusterIPs'] : [];
  const clusterIP = str(clusterIPs[0]) || str(spec['clusterIP']);
  const ports = list(spec['ports']).map((port) => {
    const nodePort = num(port['nodePort']);
    return nodePort > 0 ? `${num(port['port'])}:${nodePort}/${str(port['protocol'])}` : `${num(port['port'])}/${str(port['protocol'])}`;
  });
  return {
    cells: [
      nameOf(service),
      str(spec['type']),
      orNone(clusterIP),
      serviceExternalIP(spec, obj(service['status'])),
      orNone(ports.join(',')),
      ageOf(service, now),
      formatLabelMap(spec['selector']),
    ],
  };
}

function printDeployment(deployment: KubeObject, now: Date): PrintedRow {
  const spec = obj(deployment['spec']);
  const status = obj(deployment['status']);
  const [names, images] = containerCells(spec['template']);
  return {
    cells: [
      nameOf(deployment),
      `${num(status['readyReplicas'])}/${num(spec['replicas'])}`,
      num(status['updatedReplicas']),
      num(status['availableReplicas']),
      ageOf(deployment, now),
      names,
      images,
      formatSelector(spec['selector']),
    ],
  };
}

function printReplicaSet(replicaSet: KubeObject, now: Date): PrintedRow {
  const spec = obj(replicaSet['spec']);
  const status = obj(replicaSet['status']);
  const [names, images] = containerCells(spec['template']);
  return {
    cells: [
      nameOf(replicaSet),
      num(spec['replicas']),
      num(status['replicas']),
      num(status['readyReplicas']),
      ageOf(replicaSet, now),
      names,
      images,
      formatSelector(spec['selector']),
    ],
  };
}

function printDaemonSet(daemonSet: KubeObject, now: Date): PrintedRow {
  const spec = obj(daemonSet['spec']);
  const status = obj(daemonSet['status']);
  const [names, images] = containerCells(spec['template']);
  return {
    cells: [
      nameOf(daemonSet),
      num(status['desiredNumberScheduled']),
      num(status['currentNumberScheduled']),
      num(status['numberReady']),
      num(status['updatedNumberScheduled']),
      num(status['numberAvailable']),
      formatLabelMap(obj(obj(spec['template'])['spec'])['nodeSelector']),
      ageOf(daemonSet, now),
      names,
      images,
      formatSelector(spec['selector']),
    ],
  };
}

/** STATUS as kubectl 1.32 prints a Job: the first of Complete, Failed, Terminating, Suspended, … that holds. */
function jobStatusText(job: KubeObject): string {
  const status = obj(job['status']);
  if (hasCondition(status, 'Complete')) return 'Complete';
  if (hasCondition(status, 'Failed')) return 'Failed';
  if (job.metadata.deletionTimestamp) return 'Terminating';
  if (hasCondition(status, 'Suspended')) return 'Suspended';
  if (hasCondition(status, 'FailureTarget')) return 'FailureTarget';
  if (hasCondition(status, 'SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  return 'Running';
}

function printJob(job: KubeObject, now: Date): PrintedRow {
  const spec = obj(job['spec']);
  const status = obj(job['status']);
  const [names, images] = containerCells(spec['template']);
  const succeeded = num(status['succeeded']);
  let completions: string;
  if (typeof spec['completions'] === 'number') completions = `${succeeded}/${spec['completions']}`;
  else if (num(spec['parallelism']) > 1) completions = `${succeeded}/1 of ${num(spec['parallelism'])}`;
  else completions = `${succeeded}/1`;
  const started = typeof status['startTime'] === 'string' ? Date.parse(status['startTime']) : Number.NaN;
  const finished = typeof status['completionTime'] === 'string' ? Date.parse(status['completionTime']) : Number.NaN;
  let duration = '';
  if (!Number.isNaN(started)) duration = humanDuration((Number.isNaN(finished) ? now.getTime() : finished) - started);
  return {
    cells: [nameOf(job), jobStatusText(job), completions, duration, ageOf(job, now), names, images, formatSelector(spec['selector'])],
  };
}

const NODE_ROLE_PREFIX = 'node-role.kubernetes.io/';

function printNode(node: KubeObject, now: Date): PrintedRow {
  const spec = obj(node['spec']);
  const status = obj(node['status']);
  const ready = list(status['conditions']).filter((condition) => condition['type'] === 'Ready').pop();
  const states = [ready ? (ready['status'] === 'True' ? 'Ready' : 'NotReady') : 'Unknown'];
  if (spec['unschedulable'] === true) states.push('SchedulingDisabled');
  const roles = new Set<string>();
  for (const [key, value] of Object.entries(node.metadata.labels ?? {})) {
    if (key.startsWith(NODE_ROLE_PREFIX) && key.length > NODE_ROLE_PREFIX.length) roles.add(key.slice(NODE_ROLE_PREFIX.length));
    else if (key === 'kubernetes.io/role' && value !== '') roles.add(value);
  }
  const info = obj(status['nodeInfo']);
  const address = (type: string): string => orNone(str(list(status['addresses']).find((entry) => entry['type'] === type)?.['address']));
  const orUnknown = (value: unknown): string => str(value) || '<unknown>';
  return {
    cells: [
      nameOf(node),
      states.join(','),
      orNone([...roles].sort().join(',')),
      ageOf(node, now),
      str(info['kubeletVersion']),
      address('InternalIP'),
      address('ExternalIP'),
      orUnknown(info['osImage']),
      orUnknown(info['kernelVersion']),
      orUnknown(info['containerRuntimeVersion']),
    ],
  };
}

function formatEndpoints(endpoints: KubeObject): string {
  const subsets = list(endpoints['subsets']);
  if (subsets.length === 0) return '<none>';
  const shown: string[] = [];
  let count = 0;
  for (const subset of subsets) {
    const addresses = list(subset['addresses']).map((address) => str(address['ip']));
    const ports = list(subset['ports']);
    if (ports.length === 0) {
      // Headless Services without ports list bare addresses.
      count += addresses.length;
      shown.push(...addresses);
    } else {
      for (const port of ports) {
        count += addresses.length;
        shown.push(...addresses.map((ip) => joinHostPort(ip, num(port['port']))));
      }
    }
  }
  return firstThree(shown, count, '');
}

function printEndpointSlice(slice: KubeObject, now: Date): PrintedRow {
  const ports = list(slice['ports']).map((port) => (typeof port['port'] === 'number' ? String(port['port']) : typeof port['name'] === 'string' ? port['name'] : '*'));
  const addresses = list(slice['endpoints']).flatMap((endpoint) => (Array.isArray(endpoint['addresses']) ? endpoint['addresses'].map(str) : []));
  return {
    cells: [
      nameOf(slice),
      str(slice['addressType']),
      firstThree(ports, ports.length, '<unset>'),
      firstThree(addresses, addresses.length, '<unset>'),
      ageOf(slice, now),
    ],
  };
}

/** kubectl's CSR columns: the condition reads "Approved,Issued" once a certificate is there. */
function printCertificateSigningRequest(csr: KubeObject, now: Date): PrintedRow {
  const spec = obj(csr['spec']);
  const status = obj(csr['status']);
  const conditions = list(status['conditions']).filter((c) => str(c['status']) === 'True').map((c) => str(c['type']));
  if (str(status['certificate']) !== '') conditions.push('Issued');
  const seconds = typeof spec['expirationSeconds'] === 'number' ? spec['expirationSeconds'] : undefined;
  return {
    cells: [
      nameOf(csr),
      ageOf(csr, now),
      str(spec['signerName']),
      str(spec['username']),
      seconds === undefined ? '<none>' : humanDuration(seconds * 1000),
      conditions.length > 0 ? conditions.join(',') : 'Pending',
    ],
  };
}

function printEvent(event: KubeObject, now: Date): PrintedRow {
  const involved = obj(event['involvedObject']);
  const series = event['series'] === undefined || event['series'] === null ? undefined : obj(event['series']);
  const firstSeen = event['firstTimestamp'] ? ageSince(event['firstTimestamp'], now) : ageSince(event['eventTime'], now);
  let lastSeen = event['lastTimestamp'] ? ageSince(event['lastTimestamp'], now) : firstSeen;
  let count = num(event['count']);
  if (series) {
    lastSeen = ageSince(series['lastObservedTime'], now);
    count = num(series['count']);
  } else if (count === 0) {
    count = 1;
  }
  const kind = str(involved['kind']).toLowerCase();
  const target = str(involved['name']) ? `${kind}/${str(involved['name'])}` : kind;
  const source = obj(event['source']);
  const component = str(source['component']) || str(event['reportingComponent']) || str(event['reportingController']);
  const host = str(source['host']) || str(event['reportingInstance']);
  return {
    cells: [
      lastSeen,
      str(event['type']),
      str(event['reason']),
      target,
      str(involved['fieldPath']),
      host ? `${component}, ${host}` : component,
      str(event['message']).trim(),
      firstSeen,
      count,
      nameOf(event),
    ],
  };
}

const PRINTERS: Record<string, Printer> = {
  Pod: {
    columns: [
      NAME,
      column('Ready', 'The aggregate readiness state of this pod for accepting traffic.'),
      column('Status', 'The aggregate status of the containers in this pod.'),
      column('Restarts', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      AGE,
      column('IP', 'The IP address allocated to the pod.', { priority: 1 }),
      column('Node', 'The node the pod is bound to.', { priority: 1 }),
      column('Nominated Node', 'The node the scheduler nominated for the pod after preemption.', { priority: 1 }),
      column('Readiness Gates', 'Readiness gates met, of those the pod declares.', { priority: 1 }),
    ],
    print: printPod,
  },
  Deployment: {
    columns: [
      NAME,
      column('Ready', 'Number of the pod with ready state'),
      column('Up-to-date', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.', { type: 'integer' }),
      column('Available', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.', { type: 'integer' }),
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    print: printDeployment,
  },
  ReplicaSet: {
    columns: [
      NAME,
      column('Desired', 'Number of desired pods.', { type: 'integer' }),
      column('Current', 'The most recently observed number of replicas.', { type: 'integer' }),
      column('Ready', 'The number of pods targeted by this ReplicaSet with a Ready Condition.', { type: 'integer' }),
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    print: printReplicaSet,
  },
  DaemonSet: {
    columns: [
      NAME,
      column('Desired', 'The total number of nodes that should be running the daemon pod.', { type: 'integer' }),
      column('Current', 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.', { type: 'integer' }),
      column('Ready', 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.', { type: 'integer' }),
      column('Up-to-date', 'The total number of nodes that are running updated daemon pod', { type: 'integer' }),
      column('Available', 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)', { type: 'integer' }),
      column('Node Selector', 'NodeSelector is a selector which must be true for the pod to fit on a node.'),
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    print: printDaemonSet,
  },
  Job: {
    columns: [
      NAME,
      column('Status', 'Status of the job.'),
      column('Completions', 'The completion status of the job.'),
      column('Duration', 'Time required to complete the job.'),
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    print: printJob,
  },
  Service: {
    columns: [
      NAME,
      column('Type', 'How the Service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName.'),
      column('Cluster-IP', 'The virtual IP address of the Service inside the cluster.'),
      column('External-IP', 'Addresses outside the cluster that reach the Service.'),
      column('Port(s)', 'The ports the Service exposes, with node ports where allocated.'),
      AGE,
      column('Selector', 'Pods with labels matching this selector back the Service.', { priority: 1 }),
    ],
    print: printService,
  },
  Node: {
    columns: [
      NAME,
      column('Status', 'The status of the node'),
      column('Roles', 'The roles of the node'),
      AGE,
      column('Version', 'Kubelet version reported by the node.'),
      column('Internal-IP', 'The first InternalIP address of the node.', { priority: 1 }),
      column('External-IP', 'The first ExternalIP address of the node.', { priority: 1 }),
      column('OS-Image', 'OS image reported by the node.', { priority: 1 }),
      column('Kernel-Version', 'Kernel version reported by the node.', { priority: 1 }),
      column('Container-Runtime', 'Container runtime version reported by the node.', { priority: 1 }),
    ],
    print: printNode,
  },
  Endpoints: {
    columns: [NAME, column('Endpoints', 'Addresses and ports of the endpoints.'), AGE],
    print: (endpoints, now) => ({ cells: [nameOf(endpoints), formatEndpoints(endpoints), ageOf(endpoints, now)] }),
  },
  EndpointSlice: {
    columns: [
      NAME,
      column('AddressType', 'The type of address the slice carries: IPv4, IPv6 or FQDN.'),
      column('Ports', 'The ports the endpoints expose.'),
      column('Endpoints', 'Addresses of the endpoints.'),
      AGE,
    ],
    print: printEndpointSlice,
  },
  Namespace: {
    columns: [NAME, column('Status', 'The status of the namespace'), AGE],
    print: (namespace, now) => ({ cells: [nameOf(namespace), str(obj(namespace['status'])['phase']), ageOf(namespace, now)] }),
  },
  ConfigMap: {
    columns: [NAME, column('Data', 'Number of keys in data and binaryData.', { type: 'integer' }), AGE],
    print: (configMap, now) => ({
      cells: [nameOf(configMap), Object.keys(obj(configMap['data'])).length + Object.keys(obj(configMap['binaryData'])).length, ageOf(configMap, now)],
    }),
  },
  Secret: {
    columns: [NAME, column('Type', 'The type of secret'), column('Data', 'Number of items in the secret', { type: 'integer' }), AGE],
    print: (secret, now) => ({ cells: [nameOf(secret), str(secret['type']), Object.keys(obj(secret['data'])).length, ageOf(secret, now)] }),
  },
  ServiceAccount: {
    columns: [NAME, column('Secrets', 'Number of secrets the service account names', { type: 'integer' }), AGE],
    print: (account, now) => ({ cells: [nameOf(account), Array.isArray(account['secrets']) ? account['secrets'].length : 0, ageOf(account, now)] }),
  },
  CertificateSigningRequest: {
    columns: [
      NAME,
      AGE,
      column('SignerName', 'The signer the request is for.'),
      column('Requestor', 'The user who created the request.'),
      column('RequestedDuration', 'The certificate lifetime asked for.'),
      column('Condition', 'Approved, Denied, Failed, Issued or Pending.'),
    ],
    print: printCertificateSigningRequest,
  },
  Lease: {
    columns: [NAME, column('Holder', 'The identity of the lease holder.'), AGE],
    print: (lease, now) => ({ cells: [nameOf(lease), str(obj(lease['spec'])['holderIdentity']), ageOf(lease, now)] }),
  },
  Event: {
    columns: [
      column('Last Seen', 'Time since the event was last observed.'),
      column('Type', 'Normal or Warning.'),
      column('Reason', 'Short, machine understandable reason for the event.'),
      column('Object', 'The object the event is about.'),
      column('Subobject', 'The part of the object the event is about (a container).', { priority: 1 }),
      column('Source', 'The component that reported the event.', { priority: 1 }),
      column('Message', 'Human readable description of the event.'),
      column('First Seen', 'Time since the event was first observed.', { priority: 1 }),
      column('Count', 'The number of times the event occurred.', { priority: 1, type: 'integer' }),
      column('Name', 'Name of the event.', { priority: 1, format: 'name' }),
    ],
    print: printEvent,
  },
};

const DEFAULT_PRINTER: Printer = {
  columns: [NAME, AGE],
  print: (object, now) => ({ cells: [nameOf(object), ageOf(object, now)] }),
};

function printerFor(descriptor: Pick<ResourceDescriptor, 'kind'>): Printer {
  return PRINTERS[descriptor.kind] ?? DEFAULT_PRINTER;
}

/** The columns a Table of this resource has (also for one-row Tables in watch events). */
export function columnDefinitions(descriptor: Pick<ResourceDescriptor, 'kind'>): TableColumnDefinition[] {
  return printerFor(descriptor).columns.map((definition) => ({ ...definition }));
}

function rowObject(object: KubeObject, policy: IncludeObjectPolicy): TableRow['object'] {
  switch (policy) {
    case 'Object':
      return object;
    case 'Metadata':
      return { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: object.metadata };
    default:
      return undefined;
  }
}

export function toTable(descriptor: Pick<ResourceDescriptor, 'kind'>, objects: readonly KubeObject[], options: TableOptions): Table {
  const printer = printerFor(descriptor);
  const now = options.now ?? new Date();
  const rows = objects.map((object): TableRow => {
    const printed = printer.print(object, now);
    const row: TableRow = { cells: printed.cells };
    if (printed.conditions) row.conditions = printed.conditions;
    const included = rowObject(object, options.includeObject);
    if (included) row.object = included;
    return row;
  });
  return {
    apiVersion: 'meta.k8s.io/v1',
    kind: 'Table',
    metadata: { ...(options.listMeta ?? {}) },
    columnDefinitions: options.noHeaders ? [] : columnDefinitions(descriptor),
    rows,
  };
}
