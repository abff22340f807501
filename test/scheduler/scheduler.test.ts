import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Event, Pod, ReplicaSet } from '../../src/api/types.js';
import { createNode, listPods, startControlPlane, waitFor, type ControlPlane } from '../controllers/harness.js';

function pod(name: string, spec: Partial<Pod['spec']> = {}, cpu?: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { test: 'sched' } },
    spec: { containers: [{ name: 'c', image: 'busybox', ...(cpu ? { resources: { requests: { cpu } } } : {}) }], ...spec },
  };
}

async function nodeOf(plane: ControlPlane, name: string): Promise<string> {
  return waitFor(`${name} to be bound`, async () => (await plane.api.get<Pod>(RESOURCE.pods, name, 'default'))?.spec.nodeName);
}

describe('scheduler against a real apiserver', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['replicaset'], scheduler: { unschedulableRetrySeconds: 60 } });
    await createNode(plane.api, 'n1', { cpu: '2', labels: { disk: 'ssd' } });
    await createNode(plane.api, 'n2', { cpu: '2' });
    await createNode(plane.api, 'n3', { cpu: '2', taints: [{ key: 'dedicated', value: 'infra', effect: 'NoSchedule' }] });
  });
  after(async () => {
    await plane?.close();
  });

  test('a ReplicaSet of 6 spreads 2/2/2 over three equal nodes, with Scheduled events', async () => {
    // n3's taint must not count here: the pods tolerate it.
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'spread', namespace: 'default' },
      spec: {
        replicas: 6,
        selector: { matchLabels: { app: 'spread' } },
        template: {
          metadata: { labels: { app: 'spread' } },
          spec: { containers: [{ name: 'c', image: 'busybox' }], tolerations: [{ key: 'dedicated', operator: 'Exists' }] },
        },
      },
    };
    await plane.api.create(RESOURCE.replicasets, rs);
    const pods = await waitFor('6 bound pods', async () => {
      const list = await listPods(plane.api, 'default', 'app=spread');
      return list.length === 6 && list.every((p) => p.spec.nodeName) && list;
    });
    const counts: Record<string, number> = {};
    for (const p of pods) counts[p.spec.nodeName!] = (counts[p.spec.nodeName!] ?? 0) + 1;
    assert.deepEqual(counts, { n1: 2, n2: 2, n3: 2 });
    const first = pods[0]!;
    const event = await waitFor('a Scheduled event', async () =>
      (await plane.api.list<Event>(RESOURCE.events, 'default')).items.find((e) => e.reason === 'Scheduled' && e.involvedObject.name === first.metadata.name),
    );
    assert.equal(event.message, `Successfully assigned default/${first.metadata.name} to ${first.spec.nodeName}`);
    assert.equal(event.type, 'Normal');
    assert.equal(event.involvedObject.kind, 'Pod');
    assert.equal(event.source?.component, 'default-scheduler');
  });

  test('nodeSelector and taints narrow the choice', async () => {
    await plane.api.create(RESOURCE.pods, pod('ssd-only', { nodeSelector: { disk: 'ssd' } }));
    assert.equal(await nodeOf(plane, 'ssd-only'), 'n1');
    for (let i = 0; i < 4; i++) await plane.api.create(RESOURCE.pods, pod(`untolerating-${i}`));
    for (let i = 0; i < 4; i++) assert.notEqual(await nodeOf(plane, `untolerating-${i}`), 'n3');
  });

  test('pods for another scheduler are left alone', async () => {
    await plane.api.create(RESOURCE.pods, pod('not-mine', { schedulerName: 'other-scheduler' }));
    // Proof the scheduler has had its turn with not-mine: a pod of ours created after it gets
    // bound. The pod watch is ordered and the scheduler's one worker takes its queue in order,
    // so had not-mine been queued it would have been bound first.
    await plane.api.create(RESOURCE.pods, pod('mine-after', { tolerations: [{ key: 'dedicated', operator: 'Exists' }] }));
    await nodeOf(plane, 'mine-after');
    const current = await plane.api.get<Pod>(RESOURCE.pods, 'not-mine', 'default');
    assert.equal(current?.spec.nodeName, undefined);
    assert.equal(current?.status?.conditions?.find((c) => c.type === 'PodScheduled'), undefined);
  });

  test('an unschedulable pod says why, and is placed once a node fits', async () => {
    // 2 cpus per node: 3 cpus fit nowhere; n3 is tainted on top.
    await plane.api.create(RESOURCE.pods, pod('big', {}, '3'));
    const condition = await waitFor('PodScheduled=False', async () => {
      const current = await plane.api.get<Pod>(RESOURCE.pods, 'big', 'default');
      return current?.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    });
    assert.equal(condition.reason, 'Unschedulable');
    assert.equal(condition.message, '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient cpu.');
    const warning = await waitFor('a FailedScheduling event', async () =>
      (await plane.api.list<Event>(RESOURCE.events, 'default')).items.find((e) => e.reason === 'FailedScheduling' && e.involvedObject.name === 'big'),
    );
    assert.equal(warning.type, 'Warning');
    assert.equal(warning.message, condition.message);

    await createNode(plane.api, 'n4', { cpu: '4' });
    assert.equal(await nodeOf(plane, 'big'), 'n4', 'retried when a node was added');
  });

  test('not-ready nodes get nothing', async () => {
    await createNode(plane.api, 'n5', { cpu: '64', ready: false });
    await plane.api.create(RESOURCE.pods, pod('huge', {}, '32'));
    const condition = await waitFor('PodScheduled=False', async () => {
      const current = await plane.api.get<Pod>(RESOURCE.pods, 'huge', 'default');
      return current?.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    });
    assert.match(condition.message ?? '', /^0\/5 nodes are available: .*1 node\(s\) had condition Ready != True/);
  });
});
