import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  filter,
  filterNodeReady,
  filterResourcesFit,
  filterTaintToleration,
  REASON_INSUFFICIENT_CPU,
  REASON_INSUFFICIENT_MEMORY,
  REASON_NOT_READY,
  REASON_SELECTOR,
  REASON_TOO_MANY_PODS,
  REASON_UNSCHEDULABLE,
  toleratesTaint,
  unschedulableMessage,
} from '../../src/scheduler/filter.js';
import { podRequests } from '../../src/scheduler/resources.js';
import { score, scoreLeastAllocated, scoreSpread, scoreTaintToleration, selectNode } from '../../src/scheduler/score.js';
import type { Pod } from '../../src/api/types.js';
import { byNode, node, pod, seeded } from './fixtures.js';

describe('filter', () => {
  test('not-ready and cordoned nodes are filtered out', () => {
    const result = filter(pod('p'), [node('a', { ready: false }), node('b', { unschedulable: true }), node('c')], new Map());
    assert.deepEqual(result.feasible.map((n) => n.metadata.name), ['c']);
    assert.deepEqual(result.failures.get('a'), [REASON_NOT_READY]);
    assert.deepEqual(result.failures.get('b'), [REASON_UNSCHEDULABLE]);
    const noConditions = node('d');
    delete noConditions.status?.conditions;
    assert.deepEqual(filterNodeReady(pod('p'), noConditions, []), [REASON_NOT_READY], 'no Ready condition is not ready');
  });

  test('resource requests are summed against allocatable', () => {
    const n = node('a', { cpu: '1', memory: '1Gi', pods: 3 });
    const existing = [pod('x', { cpu: '600m', memory: '512Mi', nodeName: 'a' })];
    assert.deepEqual(filterResourcesFit(pod('p', { cpu: '400m', memory: '512Mi' }), n, existing), [], 'exactly full fits');
    assert.deepEqual(filterResourcesFit(pod('p', { cpu: '401m' }), n, existing), [REASON_INSUFFICIENT_CPU]);
    assert.deepEqual(filterResourcesFit(pod('p', { cpu: '0.5', memory: '1Gi' }), n, existing), [REASON_INSUFFICIENT_CPU, REASON_INSUFFICIENT_MEMORY]);
    assert.deepEqual(filterResourcesFit(pod('p'), n, existing), [], 'no requests fit anywhere');
    const finished = pod('done', { cpu: '1', nodeName: 'a', phase: 'Succeeded' });
    assert.deepEqual(filterResourcesFit(pod('p', { cpu: '400m' }), n, [...existing, finished]), [], 'finished pods free their requests');
    const full = [pod('x1', { nodeName: 'a' }), pod('x2', { nodeName: 'a' }), pod('x3', { nodeName: 'a' })];
    assert.deepEqual(filterResourcesFit(pod('p'), n, full), [REASON_TOO_MANY_PODS]);
  });

  test('pod requests: sum of containers, at least the largest init container, limits default requests', () => {
    const p: Pod = pod('p', { cpu: '100m' });
    p.spec.containers.push({ name: 'c2', resources: { limits: { cpu: '200m', memory: '64Mi' } } });
    p.spec.initContainers = [{ name: 'init', resources: { requests: { cpu: '1', memory: '1Mi' } } }];
    assert.deepEqual(podRequests(p), { milliCpu: 1000, memoryBytes: 64 * 1024 * 1024 });
  });

  test('nodeSelector must match node labels', () => {
    const result = filter(pod('p', { nodeSelector: { disk: 'ssd' } }), [node('a', { labels: { disk: 'ssd' } }), node('b')], new Map());
    assert.deepEqual(result.feasible.map((n) => n.metadata.name), ['a']);
    assert.deepEqual(result.failures.get('b'), [REASON_SELECTOR]);
  });

  test('taints: NoSchedule and NoExecute need a toleration, PreferNoSchedule does not', () => {
    const tainted = node('a', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] });
    const preferred = node('b', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] });
    const unreachable = node('c', { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] });
    assert.deepEqual(filterTaintToleration(pod('p'), tainted, []), ['node(s) had untolerated taint {dedicated: gpu}']);
    assert.deepEqual(filterTaintToleration(pod('p'), preferred, []), []);
    assert.deepEqual(filterTaintToleration(pod('p'), unreachable, []), ['node(s) had untolerated taint {node.kubernetes.io/unreachable: }']);
    const tolerant = pod('p', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] });
    assert.deepEqual(filterTaintToleration(tolerant, tainted, []), []);
    const wrongValue = pod('p', { tolerations: [{ key: 'dedicated', value: 'cpu' }] });
    assert.equal(filterTaintToleration(wrongValue, tainted, []).length, 1);
    assert.equal(toleratesTaint({ operator: 'Exists' }, { key: 'anything', effect: 'NoExecute' }), true, 'empty key Exists tolerates all');
    assert.equal(toleratesTaint({ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }, { key: 'dedicated', effect: 'NoSchedule' }), false);
  });

  test('the unschedulable message counts reasons over nodes, sorted as text', () => {
    const nodes = [node('a', { cpu: '100m' }), node('b'), node('c', { cpu: '100m' })];
    const p = pod('p', { cpu: '500m', nodeSelector: { zone: 'x' } });
    nodes[0]!.metadata.labels!['zone'] = 'x';
    nodes[2]!.metadata.labels!['zone'] = 'x';
    const result = filter(p, nodes, new Map());
    assert.equal(result.feasible.length, 0);
    assert.equal(
      unschedulableMessage(3, result.failures),
      "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.",
    );
    assert.equal(unschedulableMessage(0, new Map()), '0/0 nodes are available: no nodes available to schedule pods.');
  });
});

describe('score', () => {
  test('least allocated prefers the emptier node', () => {
    const nodes = [node('a', { cpu: '2', memory: '4Gi' }), node('b', { cpu: '2', memory: '4Gi' })];
    const placed = byNode([pod('x', { cpu: '1', memory: '2Gi', nodeName: 'a' })]);
    const [a, b] = scoreLeastAllocated(pod('p', { cpu: '500m', memory: '1Gi' }), nodes, placed);
    assert.equal(a, 25);
    assert.equal(b, 75);
  });

  test('spread prefers nodes with fewer pods of the same controller', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const placed = byNode([
      pod('x1', { nodeName: 'a', ownerUid: 'rs1' }),
      pod('x2', { nodeName: 'a', ownerUid: 'rs1' }),
      pod('x3', { nodeName: 'b', ownerUid: 'rs1' }),
      pod('y1', { nodeName: 'c', ownerUid: 'other' }),
    ]);
    assert.deepEqual(scoreSpread(pod('p', { ownerUid: 'rs1' }), nodes, placed), [0, 50, 100]);
    assert.deepEqual(scoreSpread(pod('p'), nodes, placed), [100, 100, 100], 'no controller, no preference');
  });

  test('PreferNoSchedule taints lower a node unless tolerated', () => {
    const nodes = [node('a', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] }), node('b')];
    assert.deepEqual(scoreTaintToleration(pod('p'), nodes, new Map()), [0, 100]);
    const tolerant = pod('p', { tolerations: [{ key: 'x', operator: 'Exists' }] });
    assert.deepEqual(scoreTaintToleration(tolerant, nodes, new Map()), [100, 100]);
  });

  test('placing six replicas one by one over three equal nodes gives 2/2/2', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const placed: Pod[] = [];
    const random = seeded(7);
    for (let i = 0; i < 6; i++) {
      const p = pod(`web-${i}`, { ownerUid: 'rs1' });
      const podsByNode = byNode(placed);
      const { feasible } = filter(p, nodes, podsByNode);
      const chosen = selectNode(feasible, score(p, feasible, podsByNode), random);
      assert.ok(chosen);
      placed.push({ ...p, spec: { ...p.spec, nodeName: chosen.metadata.name ?? '' } });
    }
    const counts = [...byNode(placed).values()].map((list) => list.length).sort();
    assert.deepEqual(counts, [2, 2, 2]);
  });

  test('ties are broken by the random source', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const seen = new Set<string>();
    for (const r of [0, 0.4, 0.9]) seen.add(selectNode(nodes, [5, 5, 5], () => r)?.metadata.name ?? '');
    assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
    assert.equal(selectNode(nodes, [1, 9, 5], () => 0)?.metadata.name, 'b');
  });
});
