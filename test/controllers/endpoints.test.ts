import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Endpoints, Pod, Service } from '../../src/api/types.js';
import { MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL } from '../../src/controllers/endpointslice.js';
import { createNode, startControlPlane, waitFor, type ControlPlane } from './harness.js';

function service(name: string, selector: Record<string, string> | undefined, extra: Partial<Service['spec']> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { ...(selector ? { selector } : {}), ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...extra },
  };
}

function pod(name: string, app: string, nodeName: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app } },
    spec: { nodeName, containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }] },
  };
}

async function slicesOf(plane: ControlPlane, name: string): Promise<EndpointSlice[]> {
  return (await plane.api.list<EndpointSlice>(RESOURCE.endpointslices, 'default', { labelSelector: `${SERVICE_NAME_LABEL}=${name}` })).items;
}

function sliceState(slices: EndpointSlice[]): Record<string, string> {
  const state: Record<string, string> = {};
  for (const slice of slices) {
    for (const e of slice.endpoints ?? []) {
      const c = e.conditions ?? {};
      state[e.targetRef?.name ?? '?'] = `${c.ready ? 'ready' : 'notready'}${c.terminating ? ',terminating' : ''}`;
    }
  }
  return state;
}

describe('Service → Endpoints and EndpointSlices following pod readiness', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['endpoints', 'endpointslice', 'garbage-collector'], fakeKubelet: true });
    await createNode(plane.api, 'n1');
  });
  after(async () => {
    await plane?.close();
  });

  test('ready and unready pods, named target port, slice labels and owner', async () => {
    const svc = await plane.api.create<Service>(RESOURCE.services, service('web', { app: 'web' }));
    const kubelet = plane.kubelet!;
    kubelet.setReady('default/web-b', false);
    await plane.api.create(RESOURCE.pods, pod('web-a', 'web', 'n1'));
    await plane.api.create(RESOURCE.pods, pod('web-b', 'web', 'n1'));
    await plane.api.create(RESOURCE.pods, pod('other', 'db', 'n1'));
    const endpoints = await waitFor('Endpoints with one ready and one unready address', async () => {
      const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'web', 'default');
      const subset = e?.subsets?.[0];
      return subset?.addresses?.length === 1 && subset.notReadyAddresses?.length === 1 && e;
    });
    const subset = endpoints.subsets![0]!;
    assert.equal(subset.addresses![0]!.targetRef?.name, 'web-a');
    assert.equal(subset.addresses![0]!.nodeName, 'n1');
    assert.equal(subset.notReadyAddresses![0]!.targetRef?.name, 'web-b');
    assert.deepEqual(subset.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);

    const slices = await waitFor('an EndpointSlice with both pods', async () => {
      const found = await slicesOf(plane, 'web');
      return Object.keys(sliceState(found)).length === 2 && found;
    });
    assert.equal(slices.length, 1);
    const slice = slices[0]!;
    assert.equal(slice.metadata.labels?.[MANAGED_BY_LABEL], MANAGED_BY);
    assert.ok(slice.metadata.name?.startsWith('web-'));
    assert.equal(slice.metadata.ownerReferences?.[0]?.uid, svc.metadata.uid);
    assert.equal(slice.addressType, 'IPv4');
    assert.deepEqual(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(sliceState(slices), { 'web-a': 'ready', 'web-b': 'notready' });

    kubelet.setReady('default/web-b', true);
    await waitFor('web-b ready in both', async () => {
      const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'web', 'default');
      const state = sliceState(await slicesOf(plane, 'web'));
      return e?.subsets?.[0]?.addresses?.length === 2 && !e.subsets[0].notReadyAddresses && state['web-b'] === 'ready';
    });
  });

  test('a terminating pod leaves Endpoints and stays in the slice as terminating', async () => {
    // Keep the kubelet from confirming the deletion, so the pod stays terminating.
    plane.kubelet!.nodes.add('some-other-node');
    try {
      await plane.api.delete(RESOURCE.pods, 'web-a', 'default');
      await waitFor('web-a terminating', async () => {
        const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'web', 'default');
        const addresses = e?.subsets?.flatMap((s) => s.addresses ?? []).map((a) => a.targetRef?.name);
        const state = sliceState(await slicesOf(plane, 'web'));
        return addresses?.length === 1 && addresses[0] === 'web-b' && state['web-a'] === 'notready,terminating';
      });
    } finally {
      plane.kubelet!.nodes.clear();
    }
    await plane.api.delete(RESOURCE.pods, 'web-a', 'default', { gracePeriodSeconds: 0 });
    await waitFor('web-a gone from the slice', async () => !('web-a' in sliceState(await slicesOf(plane, 'web'))));
  });

  test('more than 100 endpoints spread over several slices', async () => {
    await plane.api.create(RESOURCE.services, service('many', { app: 'many' }));
    await Promise.all(Array.from({ length: 130 }, (_, i) => plane.api.create(RESOURCE.pods, pod(`many-${i}`, 'many', 'n1'))));
    const slices = await waitFor('130 endpoints in slices', async () => {
      const found = await slicesOf(plane, 'many');
      return Object.keys(sliceState(found)).length === 130 && found;
    }, 30_000);
    assert.ok(slices.every((s) => s.endpoints.length <= 100));
    assert.equal(slices.length, 2);
    const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'many', 'default');
    assert.equal(e?.subsets?.[0]?.addresses?.length, 130);
  });

  test('a service without a selector is left alone; headless services get endpoints', async () => {
    await plane.api.create(RESOURCE.services, service('manual', undefined));
    const manual: Endpoints = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'manual', namespace: 'default' },
      subsets: [{ addresses: [{ ip: '192.0.2.1' }], ports: [{ port: 9 }] }],
    };
    await plane.api.create(RESOURCE.endpoints, manual);
    await plane.api.create(RESOURCE.services, service('headless', { app: 'web' }, { clusterIP: 'None' }));
    await waitFor('headless endpoints', async () => {
      const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'headless', 'default');
      return e?.subsets?.[0]?.addresses?.length === 1 && e.metadata.labels?.['service.kubernetes.io/headless'] === '';
    });
    const kept = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'manual', 'default');
    assert.deepEqual(kept?.subsets?.[0]?.addresses?.map((a) => a.ip), ['192.0.2.1']);
    assert.deepEqual(await slicesOf(plane, 'manual'), []);
  });

  test('with no ready pods left, one empty placeholder slice remains; deleting the service removes both', async () => {
    await plane.api.create(RESOURCE.services, service('empty', { app: 'nothing' }));
    const placeholder = await waitFor('placeholder slice', async () => {
      const found = await slicesOf(plane, 'empty');
      return found.length === 1 && found[0]!.endpoints.length === 0 && found;
    });
    assert.equal(placeholder.length, 1);
    await waitFor('empty Endpoints', async () => (await plane.api.get<Endpoints>(RESOURCE.endpoints, 'empty', 'default')) !== undefined);
    await plane.api.delete(RESOURCE.services, 'web', 'default');
    await waitFor('Endpoints and slices of web gone', async () => {
      const e = await plane.api.get<Endpoints>(RESOURCE.endpoints, 'web', 'default');
      return e === undefined && (await slicesOf(plane, 'web')).length === 0;
    });
  });
});
