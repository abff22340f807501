/** ServiceAccount admission on its own: the default account is looked up again while it may lag its namespace; others once. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import { Registry } from '../../src/apiserver/registry.js';
import { ServiceAccountAdmission } from '../../src/apiserver/sa-admission.js';
import { ApiStatusError } from '../../src/apiserver/status.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';

const WRITE = { dryRun: false, fieldValidation: 'Strict' as const, warnings: [] };

function newPod(spec: Record<string, unknown> = {}): KubeObject {
  return { metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec } };
}

async function registryWithNamespace(): Promise<Registry> {
  const registry = new Registry(new MemoryStore());
  await registry.create(RESOURCE.namespaces, undefined, { metadata: { name: 'ns' } }, WRITE);
  return registry;
}

test('a default account that appears while admission waits lets the pod in', async () => {
  const registry = await registryWithNamespace();
  let waits = 0;
  // The account shows up during the second wait, as if the controller were a little late.
  const admission = new ServiceAccountAdmission(registry, () => {
    waits++;
    if (waits === 2) void registry.create(RESOURCE.serviceaccounts, 'ns', { metadata: { name: 'default' } }, WRITE);
    return 1;
  });
  const pod = newPod();
  await admission.admit(pod);
  assert.equal((pod['spec'] as { serviceAccountName?: string }).serviceAccountName, 'default');
  assert.ok(waits >= 2);
});

test('the default account is tried 10 times before 403; a named account only once', async () => {
  const registry = await registryWithNamespace();
  let waits = 0;
  const admission = new ServiceAccountAdmission(registry, () => {
    waits++;
    return 1;
  });
  await assert.rejects(admission.admit(newPod()), (err: unknown) => err instanceof ApiStatusError && err.code === 403);
  assert.equal(waits, 9, 'ten lookups, nine waits between them');
  waits = 0;
  await assert.rejects(admission.admit(newPod({ serviceAccountName: 'bot' })), (err: unknown) => {
    assert.ok(err instanceof ApiStatusError);
    assert.equal(err.status.message, 'pods "p" is forbidden: error looking up service account ns/bot: serviceaccount "bot" not found');
    return true;
  });
  assert.equal(waits, 0);
});

test('the deprecated serviceAccount alias names the account; mirror pods are exempt', async () => {
  const registry = await registryWithNamespace();
  await registry.create(RESOURCE.serviceaccounts, 'ns', { metadata: { name: 'old' } }, WRITE);
  const admission = new ServiceAccountAdmission(registry, () => 1);
  const aliased = newPod({ serviceAccount: 'old' });
  await admission.admit(aliased);
  assert.deepEqual(
    { name: (aliased['spec'] as Record<string, unknown>)['serviceAccountName'], alias: (aliased['spec'] as Record<string, unknown>)['serviceAccount'] },
    { name: 'old', alias: 'old' },
  );
  const mirror = newPod({ serviceAccountName: 'missing' });
  mirror.metadata.annotations = { 'kubernetes.io/config.mirror': 'hash' };
  await admission.admit(mirror);
});
