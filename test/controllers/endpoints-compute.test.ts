import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EndpointSlice, Pod, Service } from '../../src/api/types.js';
import { computeEndpointGroups, computeEndpointSubsets, resolveTargetPort } from '../../src/controllers/endpoints-compute.js';
import { MANAGED_BY, MANAGED_BY_LABEL, planSlices, SERVICE_NAME_LABEL } from '../../src/controllers/endpointslice.js';

function service(ports: Service['spec']['ports'], extra: Partial<Service['spec']> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default', uid: 'svc-uid', labels: { team: 'a' } },
    spec: { selector: { app: 'web' }, ports, clusterIP: '10.96.0.10', ...extra },
  };
}

function pod(name: string, ip: string | undefined, options: { ready?: boolean; terminating?: boolean; phase?: 'Running' | 'Succeeded'; ports?: { name: string; containerPort: number; protocol?: 'TCP' | 'UDP' }[]; node?: string } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      uid: `uid-${name}`,
      labels: { app: 'web' },
      ...(options.terminating ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}),
    },
    spec: { nodeName: options.node ?? 'n1', containers: [{ name: 'c', ports: options.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status: {
      phase: options.phase ?? 'Running',
      ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
      conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
    },
  };
}

describe('pod → Endpoints', () => {
  test('ready pods are addresses, unready ones notReadyAddresses; no IP or finished: left out', () => {
    const subsets = computeEndpointSubsets(service([{ name: 'http', port: 80, targetPort: 8080 }]), [
      pod('b', '10.244.1.3'),
      pod('a', '10.244.1.2'),
      pod('c', '10.244.2.2', { ready: false, node: 'n2' }),
      pod('d', undefined),
      pod('e', '10.244.2.9', { phase: 'Succeeded' }),
    ]);
    assert.equal(subsets.length, 1);
    assert.deepEqual(subsets[0]?.addresses?.map((a) => a.ip), ['10.244.1.2', '10.244.1.3']);
    assert.deepEqual(subsets[0]?.notReadyAddresses?.map((a) => [a.ip, a.nodeName, a.targetRef?.name]), [['10.244.2.2', 'n2', 'c']]);
    assert.deepEqual(subsets[0]?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  });

  test('named target ports resolve per pod; a pod without the name is skipped for that port', () => {
    const svc = service([
      { name: 'http', port: 80, targetPort: 'web' },
      { name: 'metrics', port: 9090, targetPort: 9100 },
    ]);
    const withName = pod('a', '10.244.1.2', { ports: [{ name: 'web', containerPort: 8000 }] });
    const without = pod('b', '10.244.1.3', { ports: [{ name: 'other', containerPort: 7000 }] });
    assert.equal(resolveTargetPort({ port: 80, targetPort: 'web', protocol: 'UDP' }, withName), undefined, 'protocol must match');
    const subsets = computeEndpointSubsets(svc, [withName, without]);
    assert.equal(subsets.length, 2, 'pods with different port sets go into different subsets');
    const byIp = new Map(subsets.map((s) => [s.addresses?.[0]?.ip, s.ports?.map((p) => `${p.name}:${p.port}`)]));
    assert.deepEqual(byIp.get('10.244.1.2'), ['http:8000', 'metrics:9100']);
    assert.deepEqual(byIp.get('10.244.1.3'), ['metrics:9100']);
  });

  test('terminating pods leave Endpoints unless publishNotReadyAddresses, which also makes unready pods ready', () => {
    const pods = [pod('a', '10.244.1.2', { terminating: true }), pod('b', '10.244.1.3', { ready: false })];
    assert.deepEqual(computeEndpointSubsets(service([{ port: 80 }]), pods)[0]?.notReadyAddresses?.map((a) => a.ip), ['10.244.1.3']);
    assert.equal(computeEndpointSubsets(service([{ port: 80 }]), pods)[0]?.addresses, undefined);
    const published = computeEndpointSubsets(service([{ port: 80 }], { publishNotReadyAddresses: true }), pods);
    assert.deepEqual(published[0]?.addresses?.map((a) => a.ip), ['10.244.1.3']);
    assert.deepEqual(published[0]?.ports, [{ port: 80, protocol: 'TCP' }], 'no targetPort: the service port');
  });

  test('a headless service without ports still lists addresses', () => {
    const subsets = computeEndpointSubsets(service(undefined, { clusterIP: 'None' }), [pod('a', '10.244.1.2')]);
    assert.deepEqual(subsets, [{ addresses: [{ ip: '10.244.1.2', nodeName: 'n1', targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' } }] }]);
    assert.deepEqual(computeEndpointSubsets(service(undefined), [pod('a', '10.244.1.2')]), [], 'not headless, no ports: nothing');
  });
});

describe('pod → EndpointSlice endpoints', () => {
  test('conditions: ready, serving, terminating', () => {
    const groups = computeEndpointGroups(service([{ name: 'http', port: 80, targetPort: 'http' }]), [
      pod('a', '10.244.1.2'),
      pod('b', '10.244.1.3', { ready: false }),
      pod('c', '10.244.1.4', { terminating: true }),
      pod('d', 'fd00::4'),
    ]);
    assert.equal(groups.size, 1, 'IPv6 addresses are not in an IPv4 service');
    const [group] = groups.values();
    assert.equal(group?.addressType, 'IPv4');
    assert.deepEqual(group?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(
      [...(group?.endpoints.values() ?? [])].map((e) => [e.addresses[0], e.conditions]),
      [
        ['10.244.1.2', { ready: true, serving: true, terminating: false }],
        ['10.244.1.3', { ready: false, serving: false, terminating: false }],
        ['10.244.1.4', { ready: false, serving: true, terminating: true }],
      ],
    );
  });
});

function existingSlice(name: string, ips: string[], ports = [{ name: 'http', port: 8080, protocol: 'TCP' as const }]): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      resourceVersion: '5',
      labels: { team: 'a', [SERVICE_NAME_LABEL]: 'web', [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid', controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    ports,
    endpoints: ips.map((ip) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: 'n1',
      targetRef: { kind: 'Pod', namespace: 'default', name: `p${ip.split('.').at(-1)}`, uid: `uid-p${ip.split('.').at(-1)}` },
    })),
  };
}

describe('slice planning', () => {
  const svc = service([{ name: 'http', port: 80, targetPort: 8080 }]);
  const pods = (count: number): Pod[] => Array.from({ length: count }, (_, i) => pod(`p${i + 1}`, `10.244.1.${i + 1}`));

  test('at most 100 endpoints per slice, labelled and owned by the service', () => {
    const plan = planSlices(svc, computeEndpointGroups(svc, pods(250)), []);
    assert.deepEqual(plan.create.map((s) => s.endpoints.length), [100, 100, 50]);
    const first = plan.create[0]!;
    assert.equal(first.metadata.generateName, 'web-');
    assert.equal(first.metadata.labels?.[SERVICE_NAME_LABEL], 'web');
    assert.equal(first.metadata.labels?.[MANAGED_BY_LABEL], MANAGED_BY);
    assert.equal(first.metadata.ownerReferences?.[0]?.uid, 'svc-uid');
  });

  test('an unchanged slice is not rewritten; a new pod goes into a slice with room', () => {
    const slice = existingSlice('web-abc', ['10.244.1.1', '10.244.1.2']);
    assert.deepEqual(planSlices(svc, computeEndpointGroups(svc, pods(2)), [slice]), { create: [], update: [], delete: [] });
    const plan = planSlices(svc, computeEndpointGroups(svc, pods(3)), [slice]);
    assert.equal(plan.create.length, 0);
    assert.deepEqual(plan.update.map((s) => s.endpoints.map((e) => e.addresses[0])), [['10.244.1.1', '10.244.1.2', '10.244.1.3']]);
  });

  test('removing a pod rewrites only its slice; empty slices are deleted', () => {
    const a = existingSlice('web-a', ['10.244.1.1', '10.244.1.2']);
    const b = existingSlice('web-b', ['10.244.1.3']);
    const remaining = pods(2);
    const plan = planSlices(svc, computeEndpointGroups(svc, remaining), [a, b]);
    assert.deepEqual(plan.delete.map((s) => s.metadata.name), ['web-b']);
    assert.deepEqual(plan.update, []);
  });

  test('slices whose ports no longer exist are replaced; no endpoints leaves one empty placeholder', () => {
    const stale = existingSlice('web-old', ['10.244.1.1'], [{ name: 'http', port: 9999, protocol: 'TCP' }]);
    const plan = planSlices(svc, computeEndpointGroups(svc, pods(1)), [stale]);
    assert.deepEqual(plan.delete.map((s) => s.metadata.name), ['web-old']);
    assert.equal(plan.create.length, 1);
    const empty = planSlices(svc, new Map(), [stale, existingSlice('web-x', ['10.244.1.9'])]);
    assert.deepEqual(empty.update.map((s) => [s.metadata.name, s.endpoints.length]), [['web-old', 0]]);
    assert.deepEqual(empty.delete.map((s) => s.metadata.name), ['web-x']);
    assert.equal(planSlices(svc, new Map(), []).create[0]?.endpoints.length, 0);
  });
});

describe('dual-stack', () => {
  function dualPod(name: string, v4: string, v6: string): Pod {
    const p = pod(name, v4);
    p.status = { ...p.status, podIPs: [{ ip: v4 }, { ip: v6 }] };
    return p;
  }
  const pods = [dualPod('a', '10.244.1.2', 'fd00:10:244:1::2'), dualPod('b', '10.244.2.2', 'fd00:10:244:2::2'), pod('c', '10.244.3.2')];

  test('a dual-stack Service gets one slice group per family with each pod’s address of that family', () => {
    const groups = computeEndpointGroups(service([{ name: 'http', port: 80, targetPort: 8080 }], { ipFamilies: ['IPv4', 'IPv6'], clusterIPs: ['10.96.0.10', 'fd00:10:96::a'] }), pods);
    const byType = new Map([...groups.values()].map((g) => [g.addressType, [...g.endpoints.values()].map((e) => e.addresses[0]).sort()]));
    assert.deepEqual(byType.get('IPv4'), ['10.244.1.2', '10.244.2.2', '10.244.3.2']);
    assert.deepEqual(byType.get('IPv6'), ['fd00:10:244:1::2', 'fd00:10:244:2::2'], 'a pod without IPv6 is not in the IPv6 slice');
  });

  test('v1 Endpoints list the Service’s primary family only (IPv6 first → IPv6 addresses)', () => {
    const v6First = service([{ name: 'http', port: 80, targetPort: 8080 }], { ipFamilies: ['IPv6', 'IPv4'], clusterIP: 'fd00:10:96::a', clusterIPs: ['fd00:10:96::a', '10.96.0.10'] });
    const addresses = computeEndpointSubsets(v6First, pods).flatMap((s) => (s.addresses ?? []).map((a) => a.ip)).sort();
    assert.deepEqual(addresses, ['fd00:10:244:1::2', 'fd00:10:244:2::2']);
    const v4First = service([{ name: 'http', port: 80, targetPort: 8080 }], { ipFamilies: ['IPv4', 'IPv6'] });
    assert.deepEqual(computeEndpointSubsets(v4First, pods).flatMap((s) => (s.addresses ?? []).map((a) => a.ip)).sort(), ['10.244.1.2', '10.244.2.2', '10.244.3.2']);
  });
});

test('an unnamed Service port: the stored slice (port name defaulted to "") is left alone, not recreated', () => {
  const svc = service([{ port: 80, targetPort: 8080 }], { ipFamilies: ['IPv4', 'IPv6'] });
  const pods = [pod('a', '10.244.1.2')];
  pods[0]!.status = { ...pods[0]!.status, podIPs: [{ ip: '10.244.1.2' }, { ip: 'fd00:10:244:1::2' }] };
  const first = planSlices(svc, computeEndpointGroups(svc, pods), []);
  assert.deepEqual(first.create.map((s) => s.addressType).sort(), ['IPv4', 'IPv6']);
  // As the apiserver stores them: names given, ports[*].name defaulted.
  const stored = first.create.map((s, i) => ({ ...s, metadata: { ...s.metadata, name: `web-${i}` }, ports: (s.ports ?? []).map((p) => ({ ...p, name: p.name ?? '' })) }));
  const again = planSlices(svc, computeEndpointGroups(svc, pods), stored);
  assert.deepEqual([again.create.length, again.update.length, again.delete.length], [0, 0, 0]);
});
