import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../../src/api/resources.js';
import type { Table, TableCell } from '../../src/api/table.js';
import { ageSince, humanDuration, toTable } from '../../src/apiserver/tables.js';

const now = new Date('2024-05-01T12:00:00Z');

/** A timestamp `seconds` before `now`. */
function ago(seconds: number): string {
  return new Date(now.getTime() - seconds * 1000).toISOString();
}

function table(descriptor: Pick<ResourceDescriptor, 'kind'>, objects: KubeObject[]): Table {
  return toTable(descriptor, objects, { includeObject: 'None', now });
}

function cells(descriptor: Pick<ResourceDescriptor, 'kind'>, object: KubeObject): TableCell[] {
  return table(descriptor, [object]).rows[0]!.cells;
}

/** The headers as kubectl prints them: upper-cased, wide ones only with -o wide. */
function headers(descriptor: Pick<ResourceDescriptor, 'kind'>, wide = false): string[] {
  return table(descriptor, [])
    .columnDefinitions.filter((column) => wide || column.priority === 0)
    .map((column) => column.name.toUpperCase());
}

/** Just the cells `kubectl get` (not -o wide) shows. */
function narrowCells(descriptor: Pick<ResourceDescriptor, 'kind'>, object: KubeObject): TableCell[] {
  const { columnDefinitions, rows } = table(descriptor, [object]);
  return rows[0]!.cells.filter((_, i) => columnDefinitions[i]!.priority === 0);
}

describe('ages', () => {
  test('humanDuration matches kubectl', () => {
    const second = 1000;
    const minute = 60 * second;
    const hour = 60 * minute;
    const day = 24 * hour;
    const cases: [number, string][] = [
      [0, '0s'],
      [-1500, '0s'],
      [-2500, '<invalid>'],
      [5 * second, '5s'],
      [119 * second, '119s'],
      [2 * minute, '2m'],
      [3 * minute + 2 * second, '3m2s'],
      [10 * minute + 30 * second, '10m'],
      [179 * minute, '179m'],
      [3 * hour, '3h'],
      [5 * hour + 3 * minute, '5h3m'],
      [8 * hour + 59 * minute, '8h'],
      [47 * hour, '47h'],
      [2 * day, '2d'],
      [3 * day + 4 * hour, '3d4h'],
      [45 * day, '45d'],
      [730 * day, '2y'],
      [760 * day, '2y30d'],
      [365 * 9 * day, '9y'],
    ];
    for (const [milliseconds, text] of cases) assert.equal(humanDuration(milliseconds), text, String(milliseconds));
  });

  test('missing or unparsable timestamps are <unknown>', () => {
    assert.equal(ageSince(undefined, now), '<unknown>');
    assert.equal(ageSince('yesterday', now), '<unknown>');
    assert.equal(ageSince(ago(65), now), '65s');
  });
});

describe('the Table', () => {
  const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'default', creationTimestamp: ago(30), uid: 'u1' }, spec: { containers: [{ name: 'web' }] } };

  test('shape, list metadata and includeObject', () => {
    const none = toTable(RESOURCE.pods, [pod], { includeObject: 'None', now, listMeta: { resourceVersion: '42', continue: 'abc' } });
    assert.equal(none.kind, 'Table');
    assert.equal(none.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(none.metadata, { resourceVersion: '42', continue: 'abc' });
    assert.equal(none.rows[0]!.object, undefined);
    assert.deepEqual(none.columnDefinitions[0], { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 });

    const full = toTable(RESOURCE.pods, [pod], { includeObject: 'Object', now });
    assert.equal(full.rows[0]!.object, pod);
    const partial = toTable(RESOURCE.pods, [pod], { includeObject: 'Metadata', now });
    assert.deepEqual(partial.rows[0]!.object, { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: pod.metadata });
    assert.deepEqual(toTable(RESOURCE.pods, [pod], { includeObject: 'None', now, noHeaders: true }).columnDefinitions, []);
  });

  test('every row has a cell per column, for every kind', () => {
    for (const descriptor of Object.values(RESOURCE)) {
      const result = table(descriptor, [{ metadata: { name: 'x' } }]);
      assert.equal(result.rows[0]!.cells.length, result.columnDefinitions.length, descriptor.kind);
    }
  });
});

describe('pods', () => {
  const base = (status: Record<string, unknown>, extra: Partial<KubeObject> = {}): KubeObject => ({
    metadata: { name: 'web-1', namespace: 'default', creationTimestamp: ago(300) },
    spec: { nodeName: 'n1', containers: [{ name: 'web' }] },
    status,
    ...extra,
  });
  const running = (restartCount = 0, lastState = {}): Record<string, unknown> => ({
    name: 'web',
    ready: true,
    restartCount,
    state: { running: { startedAt: ago(60) } },
    lastState,
  });

  test('columns as kubectl get pods prints them', () => {
    assert.deepEqual(headers(RESOURCE.pods), ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
    assert.deepEqual(headers(RESOURCE.pods, true), ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
  });

  test('running, pending and waiting pods', () => {
    const up = base({ phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }], conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [running()] });
    assert.deepEqual(cells(RESOURCE.pods, up), ['web-1', '1/1', 'Running', '0', '5m', '10.244.1.5', 'n1', '<none>', '<none>']);
    const pending = { metadata: { name: 'web-2', creationTimestamp: ago(5) }, spec: { containers: [{ name: 'a' }, { name: 'b' }] }, status: { phase: 'Pending' } };
    assert.deepEqual(cells(RESOURCE.pods, pending), ['web-2', '0/2', 'Pending', '0', '5s', '<none>', '<none>', '<none>', '<none>']);
    const creating = base({ phase: 'Pending', containerStatuses: [{ name: 'web', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] });
    assert.deepEqual(narrowCells(RESOURCE.pods, creating), ['web-1', '0/1', 'ContainerCreating', '0', '5m']);
  });

  test('restarts show when the last one happened', () => {
    const crashing = base({
      phase: 'Running',
      containerStatuses: [{ name: 'web', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, finishedAt: ago(125) } } }],
    });
    assert.deepEqual(narrowCells(RESOURCE.pods, crashing), ['web-1', '0/1', 'CrashLoopBackOff', '3 (2m5s ago)', '5m']);
  });

  test('terminated containers, completion and deletion', () => {
    const done = base({ phase: 'Succeeded', containerStatuses: [{ name: 'web', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }] });
    const row = table(RESOURCE.pods, [done]).rows[0]!;
    assert.equal(row.cells[2], 'Completed');
    assert.deepEqual(row.conditions, [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }]);
    const killed = base({ phase: 'Failed', containerStatuses: [{ name: 'web', ready: false, restartCount: 0, state: { terminated: { exitCode: 137, signal: 9 } } }] });
    assert.equal(cells(RESOURCE.pods, killed)[2], 'Signal:9');
    const exited = base({ phase: 'Failed', containerStatuses: [{ name: 'web', ready: false, restartCount: 0, state: { terminated: { exitCode: 2 } } }] });
    assert.equal(cells(RESOURCE.pods, exited)[2], 'ExitCode:2');

    const twoContainers = (ready: boolean): KubeObject => ({
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'a' }, { name: 'b' }] },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
        containerStatuses: [{ name: 'a', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }, running()],
      },
    });
    assert.equal(cells(RESOURCE.pods, twoContainers(false))[2], 'NotReady', 'one finished, one still running');
    assert.equal(cells(RESOURCE.pods, twoContainers(true))[2], 'Running');

    const deleting = base({ phase: 'Running', containerStatuses: [running()] }, { metadata: { name: 'web-1', creationTimestamp: ago(300), deletionTimestamp: ago(-30) } });
    assert.equal(cells(RESOURCE.pods, deleting)[2], 'Terminating');
  });

  test('init containers', () => {
    const initPod = (initStatuses: unknown[]): KubeObject => ({
      metadata: { name: 'p' },
      spec: { initContainers: [{ name: 'i1' }, { name: 'i2' }], containers: [{ name: 'web' }] },
      status: { phase: 'Pending', initContainerStatuses: initStatuses, containerStatuses: [{ name: 'web', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] },
    });
    assert.equal(cells(RESOURCE.pods, initPod([{ name: 'i1', restartCount: 0, state: { running: {} } }, { name: 'i2', restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }]))[2], 'Init:0/2');
    assert.equal(cells(RESOURCE.pods, initPod([{ name: 'i1', restartCount: 0, state: { terminated: { exitCode: 0 } } }, { name: 'i2', restartCount: 0, state: { running: {} } }]))[2], 'Init:1/2');
    assert.equal(cells(RESOURCE.pods, initPod([{ name: 'i1', restartCount: 2, state: { terminated: { exitCode: 1, reason: 'Error' } } }]))[2], 'Init:Error');
    assert.equal(cells(RESOURCE.pods, initPod([{ name: 'i1', restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff' } } }]))[2], 'Init:CrashLoopBackOff');
  });

  test('readiness gates count the conditions that hold', () => {
    const gated = { metadata: { name: 'p' }, spec: { containers: [], readinessGates: [{ conditionType: 'example.com/a' }, { conditionType: 'example.com/b' }] }, status: { conditions: [{ type: 'example.com/a', status: 'True' }] } };
    assert.equal(cells(RESOURCE.pods, gated)[8], '1/2');
  });
});

describe('workloads', () => {
  const podTemplate = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }, { name: 'log', image: 'busybox' }] } };

  test('deployments', () => {
    assert.deepEqual(headers(RESOURCE.deployments, true), ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE', 'CONTAINERS', 'IMAGES', 'SELECTOR']);
    const deployment = {
      metadata: { name: 'web', creationTimestamp: ago(3600) },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['b', 'a'] }] }, template: podTemplate },
      status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
    };
    assert.deepEqual(cells(RESOURCE.deployments, deployment), ['web', '2/3', 3, 2, '60m', 'web,log', 'nginx:1.27,busybox', 'app=web,tier in (a,b)']);
    const fresh = { metadata: { name: 'new' }, spec: { replicas: 1, selector: {}, template: podTemplate }, status: {} };
    assert.deepEqual(cells(RESOURCE.deployments, fresh).slice(0, 4), ['new', '0/1', 0, 0]);
    assert.equal(cells(RESOURCE.deployments, fresh)[7], '<none>');
  });

  test('replicasets', () => {
    assert.deepEqual(headers(RESOURCE.replicasets), ['NAME', 'DESIRED', 'CURRENT', 'READY', 'AGE']);
    const rs = { metadata: { name: 'web-5d8f', creationTimestamp: ago(90) }, spec: { replicas: 3, selector: { matchLabels: { app: 'web', 'pod-template-hash': '5d8f' } }, template: podTemplate }, status: { replicas: 3, readyReplicas: 1 } };
    assert.deepEqual(cells(RESOURCE.replicasets, rs), ['web-5d8f', 3, 3, 1, '90s', 'web,log', 'nginx:1.27,busybox', 'app=web,pod-template-hash=5d8f']);
  });
});

describe('services', () => {
  const svc = (spec: Record<string, unknown>, status: Record<string, unknown> = {}): KubeObject => ({ metadata: { name: 'web', creationTimestamp: ago(10) }, spec, status });

  test('columns and the common types', () => {
    assert.deepEqual(headers(RESOURCE.services, true), ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', 'SELECTOR']);
    assert.deepEqual(
      cells(RESOURCE.services, svc({ type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], selector: { tier: 'x', app: 'web' } })),
      ['web', 'ClusterIP', '10.96.0.10', '<none>', '80/TCP,53/UDP', '10s', 'app=web,tier=x'],
    );
    assert.deepEqual(
      cells(RESOURCE.services, svc({ type: 'NodePort', clusterIPs: ['10.96.0.11'], ports: [{ port: 80, nodePort: 30080, protocol: 'TCP' }] })),
      ['web', 'NodePort', '10.96.0.11', '<none>', '80:30080/TCP', '10s', '<none>'],
    );
    assert.deepEqual(narrowCells(RESOURCE.services, svc({ type: 'ClusterIP', clusterIP: 'None', clusterIPs: ['None'] })), ['web', 'ClusterIP', 'None', '<none>', '<none>', '10s']);
    assert.deepEqual(narrowCells(RESOURCE.services, svc({ type: 'ExternalName', externalName: 'db.example.com' })), ['web', 'ExternalName', '<none>', 'db.example.com', '<none>', '10s']);
  });

  test('load balancers: pending, then their ingress', () => {
    const lb = { type: 'LoadBalancer', clusterIPs: ['10.96.0.12'], ports: [{ port: 443, nodePort: 31443, protocol: 'TCP' }] };
    assert.equal(cells(RESOURCE.services, svc(lb))[3], '<pending>');
    assert.equal(cells(RESOURCE.services, svc(lb, { loadBalancer: { ingress: [{ ip: '192.0.2.10' }, { hostname: 'lb.example.com' }] } }))[3], '192.0.2.10,lb.example.com');
    assert.equal(cells(RESOURCE.services, svc({ ...lb, externalIPs: ['198.51.100.1'] }, { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } }))[3], '192.0.2.10,198.51.100.1');
  });
});

describe('nodes', () => {
  const node = (conditions: unknown[], extra: Record<string, unknown> = {}, labels: Record<string, string> = {}): KubeObject => ({
    metadata: { name: 'n1', creationTimestamp: ago(2 * 86400), labels },
    spec: extra,
    status: {
      conditions,
      addresses: [{ type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: '198.18.0.11' }],
      nodeInfo: { kubeletVersion: 'v1.32.0-pontoon', kernelVersion: '6.1.0', osImage: '', containerRuntimeVersion: 'pontoon://0.1.0' },
    },
  });

  test('status, roles, version and the wide columns', () => {
    assert.deepEqual(headers(RESOURCE.nodes, true), ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION', 'INTERNAL-IP', 'EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME']);
    assert.deepEqual(cells(RESOURCE.nodes, node([{ type: 'Ready', status: 'True' }])), [
      'n1',
      'Ready',
      '<none>',
      '2d',
      'v1.32.0-pontoon',
      '198.18.0.11',
      '<none>',
      '<unknown>',
      '6.1.0',
      'pontoon://0.1.0',
    ]);
    assert.equal(cells(RESOURCE.nodes, node([{ type: 'Ready', status: 'Unknown' }]))[1], 'NotReady');
    assert.equal(cells(RESOURCE.nodes, node([]))[1], 'Unknown');
    assert.equal(cells(RESOURCE.nodes, node([{ type: 'Ready', status: 'True' }], { unschedulable: true }))[1], 'Ready,SchedulingDisabled');
    const roles = node([], {}, { 'node-role.kubernetes.io/worker': '', 'node-role.kubernetes.io/control-plane': '', 'kubernetes.io/role': 'edge' });
    assert.equal(cells(RESOURCE.nodes, roles)[2], 'control-plane,edge,worker');
  });
});

describe('endpoints, slices and the small kinds', () => {
  test('endpoints list ip:port, three at most', () => {
    assert.deepEqual(headers(RESOURCE.endpoints), ['NAME', 'ENDPOINTS', 'AGE']);
    const ep = (subsets: unknown): KubeObject => ({ metadata: { name: 'web', creationTimestamp: ago(1) }, subsets });
    assert.deepEqual(cells(RESOURCE.endpoints, ep(undefined)), ['web', '<none>', '1s']);
    assert.equal(cells(RESOURCE.endpoints, ep([{ addresses: [{ ip: '10.244.1.5' }, { ip: '10.244.2.5' }], ports: [{ port: 80 }] }]))[1], '10.244.1.5:80,10.244.2.5:80');
    const many = [{ addresses: [{ ip: '10.244.1.5' }, { ip: '10.244.2.5' }, { ip: '10.244.3.5' }], ports: [{ port: 80 }, { port: 443 }] }];
    assert.equal(cells(RESOURCE.endpoints, ep(many))[1], '10.244.1.5:80,10.244.2.5:80,10.244.3.5:80 + 3 more...');
    assert.equal(cells(RESOURCE.endpoints, ep([{ addresses: [{ ip: 'fd00::5' }], ports: [{ port: 80 }] }]))[1], '[fd00::5]:80');
    assert.equal(cells(RESOURCE.endpoints, ep([{ addresses: [{ ip: '10.244.1.5' }] }]))[1], '10.244.1.5');
  });

  test('endpointslices', () => {
    assert.deepEqual(headers(RESOURCE.endpointslices), ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
    const slice = { metadata: { name: 'web-abc', creationTimestamp: ago(3) }, addressType: 'IPv4', ports: [{ port: 80 }, { name: 'named' }], endpoints: [{ addresses: ['10.244.1.5'] }, { addresses: ['10.244.2.5'] }] };
    assert.deepEqual(cells(RESOURCE.endpointslices, slice), ['web-abc', 'IPv4', '80,named', '10.244.1.5,10.244.2.5', '3s']);
    assert.deepEqual(cells(RESOURCE.endpointslices, { metadata: { name: 'empty' }, addressType: 'IPv4', endpoints: [] }).slice(2, 4), ['<unset>', '<unset>']);
  });

  test('namespaces, configmaps, leases', () => {
    assert.deepEqual(cells(RESOURCE.namespaces, { metadata: { name: 'default', creationTimestamp: ago(86400) }, status: { phase: 'Active' } }), ['default', 'Active', '24h']);
    assert.deepEqual(headers(RESOURCE.configmaps), ['NAME', 'DATA', 'AGE']);
    assert.deepEqual(cells(RESOURCE.configmaps, { metadata: { name: 'c', creationTimestamp: ago(1) }, data: { a: '1', b: '2' }, binaryData: { c: 'AA==' } }), ['c', 3, '1s']);
    assert.deepEqual(headers(RESOURCE.leases), ['NAME', 'HOLDER', 'AGE']);
    assert.deepEqual(cells(RESOURCE.leases, { metadata: { name: 'n1', creationTimestamp: ago(1) }, spec: { holderIdentity: 'n1' } }), ['n1', 'n1', '1s']);
  });

  test('events: LAST SEEN TYPE REASON OBJECT MESSAGE, the rest wide', () => {
    assert.deepEqual(headers(RESOURCE.events), ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
    assert.deepEqual(headers(RESOURCE.events, true), ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'SUBOBJECT', 'SOURCE', 'MESSAGE', 'FIRST SEEN', 'COUNT', 'NAME']);
    const event = {
      metadata: { name: 'web-1.17a', namespace: 'default' },
      involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: 'spec.containers{web}' },
      reason: 'Started',
      message: 'Started container web\n',
      type: 'Normal',
      firstTimestamp: ago(600),
      lastTimestamp: ago(30),
      count: 2,
      source: { component: 'kubelet', host: 'n1' },
    };
    assert.deepEqual(cells(RESOURCE.events, event), ['30s', 'Normal', 'Started', 'pod/web-1', 'spec.containers{web}', 'kubelet, n1', 'Started container web', '10m', 2, 'web-1.17a']);
    const modern = { metadata: { name: 'e2' }, involvedObject: { kind: 'Node' }, eventTime: ago(5), reportingComponent: 'scheduler', type: 'Warning', reason: 'X' };
    assert.deepEqual(cells(RESOURCE.events, modern), ['5s', 'Warning', 'X', 'node', '', 'scheduler', '', '5s', 1, 'e2']);
  });

  test('kinds without a printer get NAME and AGE', () => {
    assert.deepEqual(headers({ kind: 'Widget' }), ['NAME', 'AGE']);
    assert.deepEqual(cells({ kind: 'Widget' }, { metadata: { name: 'w', creationTimestamp: ago(7) } }), ['w', '7s']);
  });
});
