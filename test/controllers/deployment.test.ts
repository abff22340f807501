import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { objectKey } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Deployment, Pod, ReplicaSet } from '../../src/api/types.js';
import { POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION } from '../../src/controllers/deployment-util.js';
import { isPodReady } from '../../src/api/pods.js';
import { createNode, listPods, startControlPlane, waitFor, type ControlPlane } from './harness.js';

function deployment(name: string, replicas: number, image = 'busybox:1', strategy?: Deployment['spec']['strategy']): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image }] } },
      ...(strategy ? { strategy } : {}),
    },
  };
}

/** Pods of the app that count: not terminating. */
async function livePods(plane: ControlPlane, app: string): Promise<Pod[]> {
  return (await listPods(plane.api, 'default', `app=${app}`)).filter((p) => !p.metadata.deletionTimestamp);
}

async function waitForDeployment(plane: ControlPlane, name: string, replicas: number): Promise<Deployment> {
  return waitFor(`deployment ${name} to have ${replicas} available, updated replicas`, async () => {
    const d = await plane.api.get<Deployment>(RESOURCE.deployments, name, 'default');
    const s = d?.status;
    const pods = await livePods(plane, name);
    return (
      s &&
      (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) &&
      s.replicas === replicas &&
      s.updatedReplicas === replicas &&
      s.availableReplicas === replicas &&
      s.readyReplicas === replicas &&
      pods.length === replicas &&
      d
    );
  });
}

describe('Deployment → ReplicaSet → pods, with the scheduler and a fake kubelet', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['deployment', 'replicaset', 'garbage-collector'], scheduler: true, fakeKubelet: true });
    for (const name of ['n1', 'n2', 'n3']) await createNode(plane.api, name);
  });
  after(async () => {
    await plane?.close();
  });

  test('a Deployment of 3 makes one ReplicaSet and 3 scheduled, ready pods', async () => {
    await plane.api.create(RESOURCE.deployments, deployment('web', 3));
    const d = await waitForDeployment(plane, 'web', 3);
    const sets = (await plane.api.list<ReplicaSet>(RESOURCE.replicasets, 'default')).items.filter((rs) => rs.metadata.name?.startsWith('web-'));
    assert.equal(sets.length, 1);
    const rs = sets[0]!;
    const hash = rs.metadata.labels?.[POD_TEMPLATE_HASH_LABEL];
    assert.ok(hash);
    assert.equal(rs.metadata.name, `web-${hash}`);
    assert.equal(rs.metadata.annotations?.[REVISION_ANNOTATION], '1');
    assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '1');
    assert.equal(rs.metadata.ownerReferences?.[0]?.uid, d.metadata.uid);
    assert.deepEqual(rs.status && [rs.status.replicas, rs.status.readyReplicas, rs.status.availableReplicas], [3, 3, 3]);
    const pods = await livePods(plane, 'web');
    for (const pod of pods) {
      assert.ok(pod.metadata.name?.startsWith(`web-${hash}-`), pod.metadata.name);
      assert.equal(pod.metadata.ownerReferences?.[0]?.uid, rs.metadata.uid);
      assert.ok(pod.spec.nodeName);
      assert.ok(isPodReady(pod));
    }
    assert.equal(new Set(pods.map((p) => p.spec.nodeName)).size, 3, 'spread over the three nodes');
    const conditions = Object.fromEntries((d.status?.conditions ?? []).map((c) => [c.type, c.status]));
    assert.deepEqual(conditions, { Available: 'True', Progressing: 'True' });
  });

  test('scaling 3 → 5 → 1', async () => {
    await plane.api.patch(RESOURCE.deployments, 'web', 'default', { spec: { replicas: 5 } }, 'merge');
    await waitForDeployment(plane, 'web', 5);
    await plane.api.patch(RESOURCE.deployments, 'web', 'default', { spec: { replicas: 1 } }, 'merge');
    await waitForDeployment(plane, 'web', 1);
    const sets = (await plane.api.list<ReplicaSet>(RESOURCE.replicasets, 'default')).items.filter((rs) => rs.metadata.name?.startsWith('web-'));
    assert.equal(sets.length, 1, 'scaling makes no new ReplicaSet');
  });

  test('a rolling update keeps availability within maxUnavailable at every observed step', async () => {
    await plane.api.create(
      RESOURCE.deployments,
      deployment('roll', 4, 'busybox:1', { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } }),
    );
    await waitForDeployment(plane, 'roll', 4);
    // Watch pods as the rollout happens: ready, non-terminating pods never drop below 4 - 1.
    let minReady = Number.POSITIVE_INFINITY;
    let maxPods = 0;
    const kubelet = plane.kubelet!;
    const observe = (): void => {
      const pods = kubelet.pods.list().filter((p) => p.metadata.labels?.['app'] === 'roll');
      const live = pods.filter((p) => !p.metadata.deletionTimestamp);
      minReady = Math.min(minReady, live.filter(isPodReady).length);
      maxPods = Math.max(maxPods, live.length);
    };
    kubelet.pods.on('add', observe).on('update', observe).on('delete', observe);
    // New pods take a moment to become ready, so the rollout has to wait for them.
    kubelet.defaultReady = false;
    await plane.api.patch(RESOURCE.deployments, 'roll', 'default', { spec: { template: { spec: { containers: [{ name: 'web', image: 'busybox:2' }] } } } }, 'strategic');
    const readied = new Set<string>();
    await waitFor('rollout to finish', async () => {
      for (const pod of kubelet.pods.list()) {
        const key = objectKey(pod.metadata);
        if (pod.metadata.labels?.['app'] === 'roll' && pod.status?.podIP && !readied.has(key)) {
          readied.add(key);
          setTimeout(() => kubelet.setReady(key, true), 100);
        }
      }
      const d = await plane.api.get<Deployment>(RESOURCE.deployments, 'roll', 'default');
      const pods = await livePods(plane, 'roll');
      return (
        d?.status?.updatedReplicas === 4 &&
        d.status.availableReplicas === 4 &&
        d.status.replicas === 4 &&
        pods.length === 4 &&
        pods.every((p) => p.spec.containers[0]?.image === 'busybox:2')
      );
    }, 30_000);
    kubelet.defaultReady = true;
    assert.ok(minReady >= 3, `ready pods dropped to ${minReady}, below replicas - maxUnavailable = 3`);
    assert.ok(maxPods <= 5, `${maxPods} pods existed, above replicas + maxSurge = 5`);
    const sets = (await plane.api.list<ReplicaSet>(RESOURCE.replicasets, 'default')).items.filter((rs) => rs.metadata.name?.startsWith('roll-'));
    assert.equal(sets.length, 2, 'old ReplicaSet kept (scaled to 0) for history');
    const byRevision = new Map(sets.map((rs) => [rs.metadata.annotations?.[REVISION_ANNOTATION], rs.spec.replicas]));
    assert.deepEqual(Object.fromEntries(byRevision), { '1': 0, '2': 4 });
    const d = await plane.api.get<Deployment>(RESOURCE.deployments, 'roll', 'default');
    assert.equal(d?.metadata.annotations?.[REVISION_ANNOTATION], '2');
    assert.equal(d?.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, 'NewReplicaSetAvailable');
  });

  test('Recreate stops every old pod before starting new ones', async () => {
    await plane.api.create(RESOURCE.deployments, deployment('recreate', 2, 'busybox:1', { type: 'Recreate' }));
    await waitForDeployment(plane, 'recreate', 2);
    let mixed = false;
    const kubelet = plane.kubelet!;
    const observe = (): void => {
      const images = new Set(kubelet.pods.list().filter((p) => p.metadata.labels?.['app'] === 'recreate').map((p) => p.spec.containers[0]?.image));
      if (images.size > 1) mixed = true;
    };
    kubelet.pods.on('add', observe).on('update', observe);
    await plane.api.patch(RESOURCE.deployments, 'recreate', 'default', { spec: { template: { spec: { containers: [{ name: 'web', image: 'busybox:2' }] } } } }, 'strategic');
    await waitFor('recreate rollout', async () => {
      const pods = await livePods(plane, 'recreate');
      const d = await plane.api.get<Deployment>(RESOURCE.deployments, 'recreate', 'default');
      return pods.length === 2 && pods.every((p) => p.spec.containers[0]?.image === 'busybox:2') && d?.status?.availableReplicas === 2;
    });
    assert.equal(mixed, false, 'old and new pods never coexisted');
  });

  test('an orphan pod matching a ReplicaSet is adopted instead of a new one being made', async () => {
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'adopter', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'adopt' } },
        template: { metadata: { labels: { app: 'adopt' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
      },
    };
    await plane.api.create<Pod>(RESOURCE.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'orphan', namespace: 'default', labels: { app: 'adopt' } },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    });
    const created = await plane.api.create<ReplicaSet>(RESOURCE.replicasets, rs);
    await waitFor('two adopt pods owned by the ReplicaSet', async () => {
      const pods = await livePods(plane, 'adopt');
      return pods.length === 2 && pods.every((p) => p.metadata.ownerReferences?.[0]?.uid === created.metadata.uid) && pods;
    });
    const pods = await livePods(plane, 'adopt');
    assert.ok(pods.some((p) => p.metadata.name === 'orphan'));
    const status = await waitFor('status', async () => {
      const current = await plane.api.get<ReplicaSet>(RESOURCE.replicasets, 'adopter', 'default');
      return current?.status?.readyReplicas === 2 && current.status;
    });
    assert.equal(status.fullyLabeledReplicas, 2);
  });

  test('old ReplicaSets beyond revisionHistoryLimit are deleted', async () => {
    const d = deployment('history', 1);
    d.spec.revisionHistoryLimit = 1;
    await plane.api.create(RESOURCE.deployments, d);
    await waitForDeployment(plane, 'history', 1);
    for (const image of ['busybox:2', 'busybox:3', 'busybox:4']) {
      await plane.api.patch(RESOURCE.deployments, 'history', 'default', { spec: { template: { spec: { containers: [{ name: 'web', image }] } } } }, 'strategic');
      await waitFor(`rollout to ${image}`, async () => {
        const pods = await livePods(plane, 'history');
        const current = await plane.api.get<Deployment>(RESOURCE.deployments, 'history', 'default');
        return pods.length === 1 && pods[0]!.spec.containers[0]?.image === image && current?.status?.updatedReplicas === 1 && current.status.availableReplicas === 1;
      });
    }
    const sets = await waitFor('history trimmed to one old set', async () => {
      const found = (await plane.api.list<ReplicaSet>(RESOURCE.replicasets, 'default')).items.filter((rs) => rs.metadata.name?.startsWith('history-'));
      return found.length === 2 && found;
    });
    const revisions = sets.map((rs) => rs.metadata.annotations?.[REVISION_ANNOTATION]).sort();
    assert.deepEqual(revisions, ['3', '4']);
  });

  test('deleting a Deployment removes its ReplicaSets and pods', async () => {
    await plane.api.delete(RESOURCE.deployments, 'web', 'default', { propagationPolicy: 'Background' });
    await waitFor('web ReplicaSets and pods gone', async () => {
      const sets = (await plane.api.list<ReplicaSet>(RESOURCE.replicasets, 'default')).items.filter((rs) => rs.metadata.name?.startsWith('web-'));
      const pods = await listPods(plane.api, 'default', 'app=web');
      return sets.length === 0 && pods.length === 0;
    });
  });
});
