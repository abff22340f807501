import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Deployment, ReplicaSet } from '../../src/api/types.js';
import {
  computeTemplateHash,
  maxOldScaleDown,
  newReplicaSetReplicas,
  planRollingStep,
  proportionalScale,
  resolveFenceposts,
  resolveIntOrPercent,
  safeEncodeString,
  templatesEqualIgnoringHash,
  InvalidIntOrPercentError,
  MAX_REPLICAS_ANNOTATION,
} from '../../src/controllers/deployment-util.js';

function deployment(replicas: number, maxSurge?: number | string, maxUnavailable?: number | string): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', uid: 'd1', generation: 1 },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'v2' }] } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { ...(maxSurge !== undefined ? { maxSurge } : {}), ...(maxUnavailable !== undefined ? { maxUnavailable } : {}) } },
    },
  };
}

let created = 0;
function replicaSet(name: string, replicas: number, available = replicas, annotations: Record<string, string> = {}): ReplicaSet {
  created += 1;
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name, namespace: 'default', creationTimestamp: new Date(Date.UTC(2024, 0, 1, 0, 0, created)).toISOString(), annotations },
    spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: { spec: { containers: [] } } },
    status: { replicas, availableReplicas: available, readyReplicas: available },
  };
}

describe('maxSurge / maxUnavailable', () => {
  test('percentages: surge rounds up, unavailable rounds down', () => {
    assert.deepEqual(resolveFenceposts(deployment(3)), { maxSurge: 1, maxUnavailable: 0 }, 'defaults 25%/25% of 3');
    assert.deepEqual(resolveFenceposts(deployment(10)), { maxSurge: 3, maxUnavailable: 2 });
    assert.deepEqual(resolveFenceposts(deployment(10, '10%', '35%')), { maxSurge: 1, maxUnavailable: 3 });
    assert.deepEqual(resolveFenceposts(deployment(5, 2, 1)), { maxSurge: 2, maxUnavailable: 1 });
  });

  test('both zero makes maxUnavailable 1 so a rollout can move', () => {
    assert.deepEqual(resolveFenceposts(deployment(4, 0, 0)), { maxSurge: 0, maxUnavailable: 1 });
    assert.deepEqual(resolveFenceposts(deployment(1, '0%', '20%')), { maxSurge: 0, maxUnavailable: 1 });
  });

  test('malformed values are refused', () => {
    assert.throws(() => resolveIntOrPercent('ten', 10, true, '25%'), InvalidIntOrPercentError);
    assert.equal(resolveIntOrPercent('7', 10, true, '25%'), 7);
  });
});

describe('template hash', () => {
  test('stable, key-order independent, ignores its own label, changes with the template and collisions', () => {
    const a = deployment(1).spec.template;
    const b = { spec: { containers: [{ image: 'v2', name: 'c' }] }, metadata: { labels: { app: 'web' } } };
    assert.equal(computeTemplateHash(a), computeTemplateHash(b));
    const labelled = structuredClone(a);
    labelled.metadata!.labels!['pod-template-hash'] = 'whatever';
    assert.equal(computeTemplateHash(labelled), computeTemplateHash(a));
    assert.ok(templatesEqualIgnoringHash(labelled, a));
    const changed = structuredClone(a);
    changed.spec.containers[0]!.image = 'v3';
    assert.notEqual(computeTemplateHash(changed), computeTemplateHash(a));
    assert.notEqual(computeTemplateHash(a, 1), computeTemplateHash(a));
    assert.match(computeTemplateHash(a), /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
  });

  test('safe encoding maps each decimal digit into the no-vowel alphabet', () => {
    assert.equal(safeEncodeString('0123456789'), '456789bcdf', 'the digits of upstream hashes like 5d4b8c7f9');
  });
});

describe('rolling update steps', () => {
  test('the new set grows only within maxSurge', () => {
    const d = deployment(3, 1, 0);
    const old = replicaSet('old', 3);
    const fresh = replicaSet('new', 0, 0);
    assert.equal(newReplicaSetReplicas(d, [old, fresh], fresh), 1);
    const grown = replicaSet('new', 1, 0);
    assert.equal(newReplicaSetReplicas(d, [old, grown], grown), 1, 'total already at replicas + maxSurge');
  });

  test('old sets shrink only as far as availability allows', () => {
    const d = deployment(3, 1, 0);
    assert.equal(maxOldScaleDown(d, [replicaSet('old', 3), replicaSet('new', 1, 0)], replicaSet('new', 1, 0)), 0);
    const ready = replicaSet('new', 1, 1);
    assert.equal(maxOldScaleDown(d, [replicaSet('old', 3), ready], ready), 1);
  });

  test('unhealthy old pods go first', () => {
    const d = deployment(4, 0, 1);
    const old = replicaSet('old', 4, 2);
    const fresh = replicaSet('new', 0, 0);
    const steps = planRollingStep(d, fresh, [old]);
    assert.deepEqual(steps.map((s) => [s.set.metadata.name, s.replicas]), [['old', 3]]);
  });

  for (const [replicas, surge, unavailable] of [
    [3, 1, 0],
    [3, 0, 1],
    [10, '25%', '25%'],
    [5, 2, 2],
    [4, 0, '50%'],
    [1, 1, 0],
  ] as const) {
    test(`a simulated rollout of ${replicas} (surge ${surge}, unavailable ${unavailable}) stays inside the fence and finishes`, () => {
      const d = deployment(replicas, surge, unavailable);
      const { maxSurge, maxUnavailable } = resolveFenceposts(d);
      let old = replicaSet('old', replicas);
      let fresh = replicaSet('new', 0, 0);
      for (let round = 0; round < 100; round++) {
        const steps = planRollingStep(d, fresh, [old]);
        for (const step of steps) {
          // Scaling down removes pods at once (available ones last); scaling up adds unavailable pods.
          const set = step.set === fresh ? fresh : old;
          const available = Math.min(set.status?.availableReplicas ?? 0, step.replicas);
          const next = { ...set, spec: { ...set.spec, replicas: step.replicas }, status: { replicas: step.replicas, availableReplicas: available } };
          if (step.set === fresh) fresh = next;
          else old = next;
        }
        const pods = (old.spec.replicas ?? 0) + (fresh.spec.replicas ?? 0);
        const available = (old.status?.availableReplicas ?? 0) + (fresh.status?.availableReplicas ?? 0);
        assert.ok(pods <= replicas + maxSurge, `round ${round}: ${pods} pods > ${replicas} + ${maxSurge}`);
        assert.ok(available >= replicas - maxUnavailable, `round ${round}: ${available} available < ${replicas} - ${maxUnavailable}`);
        if (steps.length === 0) {
          if (fresh.spec.replicas === replicas && old.spec.replicas === 0 && fresh.status?.availableReplicas === replicas) return;
          // Nothing to do: the new pods become available.
          fresh = { ...fresh, status: { replicas: fresh.spec.replicas ?? 0, availableReplicas: fresh.spec.replicas ?? 0 } };
        }
      }
      assert.fail('rollout did not finish in 100 rounds');
    });
  }
});

describe('proportional scaling', () => {
  test('a scale-up mid-rollout is shared in proportion and the leftover goes to the largest set', () => {
    const d = deployment(15, 3, 2);
    const old = replicaSet('old', 8, 8, { [MAX_REPLICAS_ANNOTATION]: '13' });
    const fresh = replicaSet('new', 5, 0, { [MAX_REPLICAS_ANNOTATION]: '13' });
    const sizes = proportionalScale(d, [old, fresh]);
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    assert.equal(total, 18, 'replicas + maxSurge');
    assert.ok((sizes.get(old) ?? 0) > 8 && (sizes.get(fresh) ?? 0) > 5);
  });

  test('scaling to zero empties every set', () => {
    const d = deployment(0);
    const sizes = proportionalScale(d, [replicaSet('a', 3), replicaSet('b', 2)]);
    assert.deepEqual([...sizes.values()], [0, 0]);
  });
});
