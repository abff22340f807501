import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DaemonSet, Node, Pod } from '../../src/api/types.js';
import {
  CONTROLLER_REVISION_HASH_LABEL,
  nodeShouldRunDaemonPod,
  planNode,
  planRollingUpdate,
  rollingBudget,
} from '../../src/controllers/daemonset-util.js';

function ds(spec: Partial<DaemonSet['spec']['template']['spec']> = {}, strategy?: DaemonSet['spec']['updateStrategy']): DaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'd', namespace: 'default', uid: 'u1', generation: 1 },
    spec: {
      selector: { matchLabels: { app: 'd' } },
      template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'i' }], ...spec } },
      ...(strategy ? { updateStrategy: strategy } : {}),
    },
  };
}

function node(name: string, labels: Record<string, string> = {}, taints: NonNullable<Node['spec']>['taints'] = []): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: { taints } };
}

const READY_LONG_AGO = '2020-01-01T00:00:00Z';

function pod(name: string, hash: string, ready: boolean, created = READY_LONG_AGO): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', creationTimestamp: created, labels: { app: 'd', [CONTROLLER_REVISION_HASH_LABEL]: hash } },
    spec: { containers: [{ name: 'c', image: 'i' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: READY_LONG_AGO }] },
  };
}

describe('nodeShouldRunDaemonPod', () => {
  test('required node affinity: terms are ORed, expressions ANDed, matchFields on metadata.name', () => {
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'zone', operator: 'In' as const, values: ['a', 'b'] }, { key: 'gpu', operator: 'DoesNotExist' as const }] },
            { matchFields: [{ key: 'metadata.name', operator: 'In' as const, values: ['special'] }] },
          ],
        },
      },
    };
    const set = ds({ affinity });
    assert.equal(nodeShouldRunDaemonPod(set, node('n1', { zone: 'a' })).shouldRun, true);
    assert.equal(nodeShouldRunDaemonPod(set, node('n2', { zone: 'a', gpu: 'yes' })).shouldRun, false);
    assert.equal(nodeShouldRunDaemonPod(set, node('n3', { zone: 'c' })).shouldRun, false);
    assert.equal(nodeShouldRunDaemonPod(set, node('special', { zone: 'c' })).shouldRun, true);
    const numeric = ds({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['4'] }] }] } } } });
    assert.equal(nodeShouldRunDaemonPod(numeric, node('big', { cores: '8' })).shouldRun, true);
    assert.equal(nodeShouldRunDaemonPod(numeric, node('small', { cores: '2' })).shouldRun, false);
  });

  test('taints: NoSchedule stops new pods but keeps running ones, NoExecute evicts, defaults tolerate node conditions', () => {
    const set = ds();
    assert.deepEqual(nodeShouldRunDaemonPod(set, node('a', {}, [{ key: 'x', effect: 'NoSchedule' }])), { shouldRun: false, shouldContinueRunning: true });
    assert.deepEqual(nodeShouldRunDaemonPod(set, node('b', {}, [{ key: 'x', effect: 'NoExecute' }])), { shouldRun: false, shouldContinueRunning: false });
    assert.deepEqual(nodeShouldRunDaemonPod(set, node('c', {}, [{ key: 'x', effect: 'PreferNoSchedule' }])), { shouldRun: true, shouldContinueRunning: true });
    for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
      assert.equal(nodeShouldRunDaemonPod(set, node('d', {}, [{ key, effect: 'NoExecute' }])).shouldRun, true, key);
    }
    assert.equal(nodeShouldRunDaemonPod(set, node('e', {}, [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }])).shouldRun, true);
    const network = [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' as const }];
    assert.equal(nodeShouldRunDaemonPod(set, node('f', {}, network)).shouldRun, false, 'ordinary pods wait for the network');
    assert.equal(nodeShouldRunDaemonPod(ds({ hostNetwork: true }), node('f', {}, network)).shouldRun, true, 'hostNetwork pods do not');
  });
});

describe('planNode and planRollingUpdate', () => {
  const run = { shouldRun: true, shouldContinueRunning: true };

  test('a terminating pod holds back its replacement; extras go, the oldest stays', () => {
    const terminating = { ...pod('old', 'h0', true), metadata: { ...pod('old', 'h0', true).metadata, deletionTimestamp: READY_LONG_AGO } };
    assert.deepEqual(planNode(run, [terminating], 'h1', false), { create: false, delete: [], failed: [] });
    assert.equal(planNode(run, [], 'h1', false).create, true);
    const older = pod('a', 'h1', true, '2020-01-01T00:00:00Z');
    const newer = pod('b', 'h1', true, '2020-01-02T00:00:00Z');
    assert.deepEqual(planNode(run, [newer, older], 'h1', false).delete.map((p) => p.metadata.name), ['b']);
  });

  test('maxUnavailable 1 without surge: one available old pod per step, unavailable old pods at once', () => {
    const set = ds({}, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    const budget = rollingBudget(set, 3);
    assert.deepEqual(budget, { maxSurge: 0, maxUnavailable: 1 });
    const byNode = new Map([
      ['n1', [pod('p1', 'old', true)]],
      ['n2', [pod('p2', 'old', true)]],
      ['n3', [pod('p3', 'old', false)]],
    ]);
    const step = planRollingUpdate(set, byNode, 'new', budget, Date.now());
    // p3 is unavailable: replacing it costs nothing, and it uses up the budget of one.
    assert.deepEqual(step.delete.map((p) => p.metadata.name), ['p3']);
    const healthy = new Map([
      ['n1', [pod('p1', 'old', true)]],
      ['n2', [pod('p2', 'old', true)]],
      ['n3', [pod('p3', 'new', false)]],
    ]);
    assert.deepEqual(planRollingUpdate(set, healthy, 'new', budget, Date.now()).delete, [], 'a new pod not yet available blocks the next node');
    const progressed = new Map([...healthy, ['n3', [pod('p3', 'new', true)]]]);
    assert.deepEqual(planRollingUpdate(set, progressed, 'new', budget, Date.now()).delete.map((p) => p.metadata.name), ['p1']);
  });

  test('maxSurge: new pods start beside old ones, old pods go when the new one is available', () => {
    const set = ds({}, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '50%' } });
    const budget = rollingBudget(set, 3);
    assert.deepEqual(budget, { maxSurge: 2, maxUnavailable: 0 }, '50% of 3 rounds up');
    const start = new Map([
      ['n1', [pod('p1', 'old', true)]],
      ['n2', [pod('p2', 'old', true)]],
      ['n3', [pod('p3', 'old', true)]],
    ]);
    assert.deepEqual(planRollingUpdate(set, start, 'new', budget, Date.now()), { delete: [], surgeNodes: ['n1', 'n2'] });
    const surged = new Map([
      ['n1', [pod('p1', 'old', true), pod('q1', 'new', true)]],
      ['n2', [pod('p2', 'old', true), pod('q2', 'new', false)]],
      ['n3', [pod('p3', 'old', true)]],
    ]);
    const step = planRollingUpdate(set, surged, 'new', budget, Date.now());
    assert.deepEqual(step.delete.map((p) => p.metadata.name), ['p1']);
    assert.deepEqual(step.surgeNodes, ['n3'], 'one surge slot is free while q2 is still becoming available');
  });
});
