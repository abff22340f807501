import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { KubeObject } from '../../src/api/meta.js';
import type { Lease, Node, Pod } from '../../src/api/types.js';
import { ControllerManager } from '../../src/controllers/manager.js';
import { NODE_LEASE_NAMESPACE, UNREACHABLE_TAINT_KEY, tolerationMs } from '../../src/controllers/node-lifecycle.js';
import { createNode, log, startControlPlane, waitFor, type ControlPlane } from './harness.js';

function microTime(): string {
  return new Date().toISOString().replace('Z', '000Z');
}

async function renewLease(plane: ControlPlane, name: string): Promise<void> {
  const existing = await plane.api.get<Lease>(RESOURCE.leases, name, NODE_LEASE_NAMESPACE);
  const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime() };
  if (existing) await plane.api.update<Lease>(RESOURCE.leases, { ...existing, spec: { ...existing.spec, ...spec } });
  else await plane.api.create<Lease>(RESOURCE.leases, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: NODE_LEASE_NAMESPACE }, spec });
}

describe('node IPAM', () => {
  const planes: ControlPlane[] = [];
  after(async () => {
    for (const plane of planes) await plane.close();
  });

  test('every node gets a distinct /24 of the cluster CIDR, kept across a controller restart, released on delete', async () => {
    const plane = await startControlPlane({ controllers: ['node-ipam'], managerOptions: { clusterCidr: '10.244.0.0/16', nodeCidrMaskSize: 24 } });
    planes.push(plane);
    await createNode(plane.api, 'pre', { podCIDR: '10.244.0.0/24' });
    for (const name of ['n1', 'n2', 'n3']) await createNode(plane.api, name);
    const cidrs = await waitFor('three nodes with podCIDRs', async () => {
      const nodes = (await plane.api.list<Node>(RESOURCE.nodes)).items;
      const assigned = nodes.filter((n) => n.metadata.name !== 'pre').map((n) => n.spec?.podCIDR);
      return assigned.length === 3 && assigned.every(Boolean) && nodes;
    });
    const byName = Object.fromEntries(cidrs.map((n) => [n.metadata.name, n.spec?.podCIDR]));
    const all = Object.values(byName);
    assert.equal(new Set(all).size, 4, `distinct: ${JSON.stringify(byName)}`);
    for (const node of cidrs) {
      assert.match(node.spec?.podCIDR ?? '', /^10\.244\.\d+\.0\/24$/);
      assert.deepEqual(node.spec?.podCIDRs, [node.spec?.podCIDR]);
    }
    assert.equal(byName['pre'], '10.244.0.0/24', 'a node that had one keeps it');

    // A new controller-manager rebuilds the used set from the nodes.
    await plane.manager!.stop();
    const restarted = new ControllerManager({ api: plane.api, log, controllers: ['node-ipam'] });
    plane.manager = restarted;
    await restarted.start();
    await createNode(plane.api, 'n4');
    const n4 = await waitFor('n4 podCIDR', async () => (await plane.api.get<Node>(RESOURCE.nodes, 'n4'))?.spec?.podCIDR);
    assert.ok(!all.includes(n4), `${n4} was already in use`);

    // Deleting a node frees its subnet for later nodes.
    await plane.api.delete(RESOURCE.nodes, 'n1');
    const ipam = restarted.controller<import('../../src/controllers/node-ipam.js').NodeIpamController>('node-ipam')!;
    await waitFor("n1's subnet released", () => !ipam.cidrs.isUsed(byName['n1'] ?? ''));
    assert.equal(ipam.cidrs.isUsed(n4), true);
  });
  test('dual-stack: every node gets a subnet of each family, primary first; a full family allocates neither', async () => {
    // IPv6 first, to see the flag's order (not the family) decides the primary.
    const plane = await startControlPlane({
      controllers: ['node-ipam'],
      managerOptions: { clusterCidr: 'fd00:10:244::/63,10.244.0.0/16', nodeCidrMaskSizeIpv4: 24, nodeCidrMaskSizeIpv6: 64 },
    });
    planes.push(plane);
    for (const name of ['d1', 'd2']) await createNode(plane.api, name);
    const nodes = await waitFor('two dual-stack nodes', async () => {
      const listed = (await plane.api.list<Node>(RESOURCE.nodes)).items;
      return listed.length === 2 && listed.every((n) => (n.spec?.podCIDRs?.length ?? 0) === 2) && listed;
    });
    const v6 = new Set<string>();
    const v4 = new Set<string>();
    for (const node of nodes) {
      const [first, second] = node.spec?.podCIDRs ?? [];
      assert.match(first ?? '', /^fd00:10:244:(1:)?:\/64$/, JSON.stringify(node.spec));
      assert.match(second ?? '', /^10\.244\.\d+\.0\/24$/);
      assert.equal(node.spec?.podCIDR, first, 'podCIDR is podCIDRs[0]');
      v6.add(first ?? '');
      v4.add(second ?? '');
    }
    assert.equal(v6.size, 2);
    assert.equal(v4.size, 2);
    // The /63 holds two /64s: a third node finds the IPv6 set full and gets no IPv4 subnet either.
    await createNode(plane.api, 'd3');
    const event = await waitFor('CIDRNotAvailable event', async () => {
      const events = (await plane.api.list<KubeObject & { reason?: string; involvedObject?: { name?: string } }>(RESOURCE.events)).items;
      return events.find((e) => e.reason === 'CIDRNotAvailable' && e.involvedObject?.name === 'd3');
    });
    assert.ok(event);
    const d3 = await plane.api.get<Node>(RESOURCE.nodes, 'd3');
    assert.equal(d3?.spec?.podCIDRs, undefined);
    const ipam = plane.manager!.controller<import('../../src/controllers/node-ipam.js').NodeIpamController>('node-ipam')!;
    assert.equal(ipam.cidrSets[1]?.usedCount, 2, 'the IPv4 subnet taken for d3 was given back');
  });

  test('dual-stack flags are checked', async () => {
    const { cidrSetsFor } = await import('../../src/controllers/node-ipam.js');
    assert.throws(() => cidrSetsFor({ clusterCidr: '10.244.0.0/16,10.245.0.0/16', nodeCidrMaskSize: 24 }), { name: 'NodeIpamConfigError' });
    assert.throws(() => cidrSetsFor({ clusterCidr: '10.244.0.0/16,fd00::/56,fd01::/56', nodeCidrMaskSize: 24 }), { name: 'NodeIpamConfigError' });
    const sets = cidrSetsFor({ clusterCidr: '10.244.0.0/16, fd00:10:244::/56', nodeCidrMaskSize: 24 });
    assert.deepEqual(sets.map((set) => [set.maskSize, set.subnetCount]), [[24, 256], [64, 256]]);
  });
});

describe('node lifecycle', () => {
  let plane: ControlPlane | undefined;
  after(async () => {
    await plane?.close();
  });

  test('a node whose lease stops renewing turns Unknown and unreachable; renewals bring it back', async () => {
    plane = await startControlPlane({
      controllers: ['node-lifecycle', 'endpoints'],
      managerOptions: { nodeMonitorGracePeriodMs: 800, podEvictionTimeoutMs: 1500 },
      fakeKubelet: true,
    });
    const api = plane.api;
    const renewer = setInterval(() => void renewLease(plane!, 'alive').catch(() => undefined), 200);
    after(() => clearInterval(renewer));
    await createNode(api, 'alive');
    await createNode(api, 'dying');
    // A pod on the dying node, with a service, so we can see it leave the endpoints.
    await api.create<Pod>(RESOURCE.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'victim', namespace: 'default', labels: { app: 'v' } },
      spec: { nodeName: 'dying', containers: [{ name: 'c', image: 'busybox' }] },
    });
    await api.create<Pod>(RESOURCE.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'patient', namespace: 'default', labels: { app: 'v' } },
      spec: {
        nodeName: 'dying',
        containers: [{ name: 'c', image: 'busybox' }],
        tolerations: [{ key: UNREACHABLE_TAINT_KEY, operator: 'Exists', effect: 'NoExecute' }],
      },
    });
    await waitFor('pods ready', async () => {
      const pods = (await api.list<Pod>(RESOURCE.pods, 'default')).items;
      return pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === 2;
    });
    // From here the fake kubelet no longer confirms anything on "dying" (it is gone).
    plane.kubelet!.nodes.add('alive');

    try {
      await renewLease(plane, 'dying');
      const started = Date.now();
      const dead = await waitFor('dying to be Unknown and tainted', async () => {
        const node = await api.get<Node>(RESOURCE.nodes, 'dying');
        const ready = node?.status?.conditions?.find((c) => c.type === 'Ready');
        const taints = (node?.spec?.taints ?? []).filter((t) => t.key === UNREACHABLE_TAINT_KEY).map((t) => t.effect).sort();
        return ready?.status === 'Unknown' && taints.join() === 'NoExecute,NoSchedule' && node;
      });
      assert.ok(Date.now() - started >= 700, 'not before the grace period');
      const ready = dead.status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.reason, 'NodeStatusUnknown');
      assert.equal(ready?.message, 'Kubelet stopped posting node status.');
      const alive = await api.get<Node>(RESOURCE.nodes, 'alive');
      assert.equal(alive?.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True', 'a renewing node stays Ready');
      assert.deepEqual(alive?.spec?.taints ?? [], []);

      // Its pods are marked not ready, then the one without a toleration is evicted.
      await waitFor('victim not ready', async () => {
        const pod = await api.get<Pod>(RESOURCE.pods, 'victim', 'default');
        return pod?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'False';
      });
      await waitFor('victim evicted (deletion started)', async () => Boolean((await api.get<Pod>(RESOURCE.pods, 'victim', 'default'))?.metadata.deletionTimestamp));
      const patient = await api.get<Pod>(RESOURCE.pods, 'patient', 'default');
      assert.equal(patient?.metadata.deletionTimestamp, undefined, 'a pod tolerating unreachable forever stays');

      // Renewals resume: the taints go.
      await renewLease(plane, 'dying');
      await waitFor('taints removed', async () => {
        const node = await api.get<Node>(RESOURCE.nodes, 'dying');
        return !(node?.spec?.taints ?? []).some((t) => t.key === UNREACHABLE_TAINT_KEY);
      });
    } finally {
      clearInterval(renewer);
    }
  });

  test('toleration arithmetic for eviction', () => {
    const pod = (tolerations: Pod['spec']['tolerations']): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [], tolerations } });
    assert.equal(tolerationMs(pod([]), 300_000), 300_000);
    assert.equal(tolerationMs(pod([]), 0), undefined, 'eviction off');
    assert.equal(tolerationMs(pod([{ key: UNREACHABLE_TAINT_KEY, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 }]), 300_000), 30_000);
    assert.equal(tolerationMs(pod([{ operator: 'Exists' }]), 300_000), undefined, 'tolerates everything forever');
    assert.equal(tolerationMs(pod([{ key: 'other', operator: 'Exists' }]), 300_000), 300_000);
  });
});
