import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../../src/api/resources.js';
import type { ConfigMap, Lease, Node, Pod } from '../../src/api/types.js';
import type { GarbageCollector } from '../../src/controllers/garbage-collector.js';
import { createNode, startControlPlane, waitFor, type ControlPlane } from './harness.js';

function configMap(name: string, owners: { kind: string; apiVersion: string; name: string; uid: string }[]): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ownerReferences: owners }, data: { k: 'v' } };
}

describe('garbage collector', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['garbage-collector'] });
  });
  after(async () => {
    await plane?.close();
  });
  /** Waits until the collector has processed `object`; asserting "kept" before that proves nothing. */
  const settled = (descriptor: ResourceDescriptor, object: KubeObject): Promise<boolean> =>
    waitFor(`the collector to settle after ${object.metadata.name}`, () => plane.manager!.controller<GarbageCollector>('garbage-collector')!.settled(descriptor, object));

  test('an object whose only owner never existed is deleted; one with a living owner stays', async () => {
    const owner = await plane.api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner', namespace: 'default' } });
    const live = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid ?? '' };
    const ghost = { apiVersion: 'v1', kind: 'ConfigMap', name: 'ghost', uid: '00000000-0000-0000-0000-000000000000' };
    await plane.api.create(RESOURCE.configmaps, configMap('orphaned', [ghost]));
    const owned = await plane.api.create<ConfigMap>(RESOURCE.configmaps, configMap('owned', [live]));
    await plane.api.create(RESOURCE.configmaps, configMap('half', [live, ghost]));
    await waitFor('orphaned deleted', async () => (await plane.api.get(RESOURCE.configmaps, 'orphaned', 'default')) === undefined);
    const half = await waitFor('dangling reference dropped', async () => {
      const current = await plane.api.get<ConfigMap>(RESOURCE.configmaps, 'half', 'default');
      return current?.metadata.ownerReferences?.length === 1 && current;
    });
    assert.equal(half.metadata.ownerReferences?.[0]?.uid, owner.metadata.uid);
    await settled(RESOURCE.configmaps, owned);
    assert.ok(await plane.api.get(RESOURCE.configmaps, 'owned', 'default'), 'owned by a live object: kept');
  });

  test('a reference to an owner with the right name but another uid counts as gone', async () => {
    await plane.api.create(RESOURCE.configmaps, configMap('renamed', [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'old-uid' }]));
    await waitFor('deleted', async () => (await plane.api.get(RESOURCE.configmaps, 'renamed', 'default')) === undefined);
  });

  test('owners of unknown kinds are assumed alive', async () => {
    const foreign = await plane.api.create<ConfigMap>(RESOURCE.configmaps, configMap('foreign', [{ apiVersion: 'example.com/v1', kind: 'Widget', name: 'w', uid: 'w-uid' }]));
    await settled(RESOURCE.configmaps, foreign);
    assert.ok(await plane.api.get(RESOURCE.configmaps, 'foreign', 'default'));
  });

  test('a cluster-scoped owner (Node) is looked up without a namespace', async () => {
    const node = await createNode(plane.api, 'gc-node');
    const lease: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: 'gc-node',
        namespace: 'kube-node-lease',
        ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'gc-node', uid: node.metadata.uid ?? '' }],
      },
      spec: { holderIdentity: 'gc-node' },
    };
    await settled(RESOURCE.leases, await plane.api.create<Lease>(RESOURCE.leases, lease));
    assert.ok(await plane.api.get(RESOURCE.leases, 'gc-node', 'kube-node-lease'), 'owner alive: kept');
    await plane.api.delete(RESOURCE.nodes, 'gc-node');
    await waitFor('lease gone with its node', async () => (await plane.api.get(RESOURCE.leases, 'gc-node', 'kube-node-lease')) === undefined);
    assert.equal(await plane.api.get<Node>(RESOURCE.nodes, 'gc-node'), undefined);
  });
});

describe('pod-gc', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['pod-gc'], managerOptions: { orphanPodQuarantineMs: 400 } });
  });
  after(async () => {
    await plane?.close();
  });

  test('a pod bound to a deleted node is force-deleted after the quarantine; others stay', async () => {
    await createNode(plane.api, 'gone');
    await createNode(plane.api, 'stays');
    const pod = (name: string, nodeName: string): Pod => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { nodeName, containers: [{ name: 'c', image: 'busybox' }] },
    });
    await plane.api.create(RESOURCE.pods, pod('stranded', 'gone'));
    await plane.api.create(RESOURCE.pods, pod('fine', 'stays'));
    // Ask for a graceful delete first: without a kubelet it would stay Terminating forever.
    await plane.api.delete(RESOURCE.pods, 'stranded', 'default');
    assert.ok((await plane.api.get<Pod>(RESOURCE.pods, 'stranded', 'default'))?.metadata.deletionTimestamp);
    const deletedAt = Date.now();
    await plane.api.delete(RESOURCE.nodes, 'gone');
    await waitFor('stranded pod gone', async () => (await plane.api.get(RESOURCE.pods, 'stranded', 'default')) === undefined);
    assert.ok(Date.now() - deletedAt >= 350, 'not before the quarantine');
    assert.ok(await plane.api.get(RESOURCE.pods, 'fine', 'default'));
  });
});
