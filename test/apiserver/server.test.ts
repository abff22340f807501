/** REST semantics of the apiserver over HTTP, against the memory and SQLite stores. */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeList, KubeObject, Status } from '../../src/api/meta.js';
import type { Table } from '../../src/api/table.js';
import type { ConfigMap, Deployment, Namespace, Pod, ReplicaSet, Scale, Service } from '../../src/api/types.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { deployment, pod, startTestApi, storeKinds, type TestApi, type TestStore } from './server-harness.js';
import { poll } from '../helpers/wait.js';

const PODS = '/api/v1/namespaces/default/pods';
const CONFIGMAPS = '/api/v1/namespaces/default/configmaps';
const DEPLOYMENTS = '/apis/apps/v1/namespaces/default/deployments';
const SERVICES = '/api/v1/namespaces/default/services';

function assertStatus(answer: { status: number; body: unknown }, code: number, reason?: string): Status {
  assert.equal(answer.status, code, JSON.stringify(answer.body));
  const status = answer.body as Status;
  assert.equal(status.kind, 'Status');
  assert.equal(status.code, code);
  if (reason) assert.equal(status.reason, reason);
  return status;
}

for (const [storeName, makeStore] of storeKinds()) {
  describe(`apiserver REST over the ${storeName} store`, () => {
    let api: TestApi;
    let backing: TestStore | undefined;
    before(async () => {
      backing = await makeStore();
      api = await startTestApi(backing.store);
    });
    after(async () => {
      await api?.close();
      await backing?.cleanup();
    });

    test('system namespaces and the kubernetes Service exist at startup', async () => {
      const namespaces = await api.call<KubeList>('GET', '/api/v1/namespaces');
      assert.deepEqual(namespaces.body.items.map((n) => n.metadata.name).sort(), ['default', 'kube-node-lease', 'kube-public', 'kube-system']);
      const kubernetes = await api.call<Service>('GET', `${SERVICES}/kubernetes`);
      assert.equal(kubernetes.status, 200);
      assert.equal(kubernetes.body.spec.clusterIP, '10.96.0.1');
    });

    test('create, get, list, update, delete; uid, creationTimestamp and generateName are filled in', async () => {
      const created = await api.call<Pod>('POST', PODS, pod('crud-1'));
      assert.equal(created.status, 201);
      assert.match(created.body.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
      assert.match(created.body.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(created.body.metadata.namespace, 'default');
      assert.equal(created.body.status?.phase, 'Pending');

      const generated = await api.call<Pod>('POST', PODS, { ...pod(''), metadata: { generateName: 'gen-' } });
      assert.equal(generated.status, 201);
      assert.match(generated.body.metadata.name ?? '', /^gen-[a-z0-9]{5}$/);

      const got = await api.call<Pod>('GET', `${PODS}/crud-1`);
      assert.equal(got.body.metadata.resourceVersion, created.body.metadata.resourceVersion);
      const list = await api.call<KubeList<Pod>>('GET', PODS);
      assert.equal(list.body.kind, 'PodList');
      assert.ok(list.body.items.some((p) => p.metadata.name === 'crud-1'));
      const all = await api.call<KubeList<Pod>>('GET', '/api/v1/pods');
      assert.ok(all.body.items.some((p) => p.metadata.name === 'crud-1'));

      const changed = structuredClone(got.body);
      changed.spec.containers[0]!.image = 'busybox:2';
      const updated = await api.call<Pod>('PUT', `${PODS}/crud-1`, changed);
      assert.equal(updated.status, 200, updated.text);
      assert.equal(updated.body.spec.containers[0]!.image, 'busybox:2');
      assert.ok(Number(updated.body.metadata.resourceVersion) > Number(got.body.metadata.resourceVersion));
      assert.equal(updated.body.metadata.uid, created.body.metadata.uid);

      const deleted = await api.call<Pod>('DELETE', `${PODS}/crud-1`);
      assert.equal(deleted.status, 200);
      assertStatus(await api.call('GET', `${PODS}/crud-1`), 404, 'NotFound');
      await api.call('DELETE', `${PODS}/${generated.body.metadata.name}`);
    });

    test('error answers are Status objects with upstream codes and reasons', async () => {
      const missing = assertStatus(await api.call('GET', `${PODS}/nope`), 404, 'NotFound');
      assert.equal(missing.message, 'pods "nope" not found');
      assert.deepEqual(missing.details, { name: 'nope', kind: 'pods' });

      await api.call('POST', PODS, pod('dup'));
      const dup = assertStatus(await api.call('POST', PODS, pod('dup')), 409, 'AlreadyExists');
      assert.equal(dup.message, 'pods "dup" already exists');

      const invalid = assertStatus(await api.call('POST', DEPLOYMENTS, { ...deployment('bad', -1) }), 422, 'Invalid');
      assert.match(invalid.message ?? '', /^Deployment\.apps "bad" is invalid: spec\.replicas: Invalid value: -1/);
      assert.equal(invalid.details?.kind, 'Deployment');
      assert.ok(invalid.details?.causes?.some((c) => c.field === 'spec.replicas' && c.reason === 'FieldValueInvalid'));
      assertStatus(await api.call('GET', `${DEPLOYMENTS}/bad`), 404);

      assertStatus(await api.call('POST', PODS, { ...pod('k'), kind: 'Service' }), 400, 'BadRequest');
      assertStatus(await api.call('POST', PODS, { ...pod('k'), apiVersion: 'apps/v1' }), 400, 'BadRequest');
      assertStatus(await api.call('POST', PODS, undefined, { raw: '{"metadata": ', contentType: 'application/json' }), 400, 'BadRequest');
      assertStatus(await api.call('POST', PODS, undefined, { raw: '[1,2]', contentType: 'application/json' }), 400, 'BadRequest');
      const wrongNs = { ...pod('k'), metadata: { name: 'k', namespace: 'kube-system' } };
      assertStatus(await api.call('POST', PODS, wrongNs), 400, 'BadRequest');
      assertStatus(await api.call('POST', '/api/v1/namespaces/absent/pods', pod('k')), 404, 'NotFound');
      assertStatus(await api.call('POST', PODS, undefined, { raw: 'x', contentType: 'application/cbor' }), 415, 'UnsupportedMediaType');
      assertStatus(await api.call('GET', '/api/v1/widgets'), 404);
      assertStatus(await api.call('POST', `${PODS}/dup`, pod('dup')), 405, 'MethodNotAllowed');

      const big = { ...pod('big'), metadata: { name: 'big', annotations: { a: 'x'.repeat(3 * 1024 * 1024 + 10) } } };
      const tooLarge = assertStatus(await api.call('POST', PODS, big), 413, 'RequestEntityTooLarge');
      assert.match(tooLarge.message ?? '', /limit is 3145728/);
      assertStatus(await api.call('GET', `${PODS}/big`), 404);

      const name = { ...pod('other') };
      assertStatus(await api.call('PUT', `${PODS}/dup`, name), 400, 'BadRequest');
      await api.call('DELETE', `${PODS}/dup`);
    });

    test('optimistic concurrency: a stale resourceVersion is a 409 Conflict; none is unconditional', async () => {
      const created = await api.call<ConfigMap>('POST', CONFIGMAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'occ' }, data: { a: '1' } });
      const first = { ...created.body, data: { a: '2' } };
      const ok = await api.call<ConfigMap>('PUT', `${CONFIGMAPS}/occ`, first);
      assert.equal(ok.status, 200);
      const stale = assertStatus(await api.call('PUT', `${CONFIGMAPS}/occ`, { ...created.body, data: { a: '3' } }), 409, 'Conflict');
      assert.match(stale.message ?? '', /^Operation cannot be fulfilled on configmaps "occ": the object has been modified/);
      const unconditional = { ...created.body, metadata: { ...created.body.metadata, resourceVersion: undefined }, data: { a: '4' } };
      const forced = await api.call<ConfigMap>('PUT', `${CONFIGMAPS}/occ`, unconditional);
      assert.equal(forced.status, 200, forced.text);
      assert.equal(forced.body.data?.['a'], '4');
      // An update that changes nothing writes nothing.
      const same = await api.call<ConfigMap>('PUT', `${CONFIGMAPS}/occ`, forced.body);
      assert.equal(same.body.metadata.resourceVersion, forced.body.metadata.resourceVersion);
      assertStatus(await api.call('PUT', `${CONFIGMAPS}/absent`, { ...forced.body, metadata: { name: 'absent' } }), 404);
    });

    test('every patch type through HTTP', async () => {
      await api.call('POST', DEPLOYMENTS, deployment('patched'));
      const path = `${DEPLOYMENTS}/patched`;

      const merge = await api.call<Deployment>('PATCH', path, { metadata: { labels: { tier: 'web' } }, spec: { replicas: 2 } }, { contentType: 'application/merge-patch+json' });
      assert.equal(merge.status, 200, merge.text);
      assert.equal(merge.body.spec.replicas, 2);
      assert.equal(merge.body.metadata.labels?.['tier'], 'web');
      assert.equal(merge.body.metadata.generation, 2);

      // Strategic merge: containers merge by name, so the ports of the live container survive.
      const strategic = await api.call<Deployment>(
        'PATCH',
        path,
        { spec: { template: { spec: { containers: [{ name: 'web', image: 'busybox:2' }] } } } },
        { contentType: 'application/strategic-merge-patch+json' },
      );
      assert.equal(strategic.status, 200, strategic.text);
      const container = strategic.body.spec.template.spec.containers[0]!;
      assert.equal(container.image, 'busybox:2');
      assert.deepEqual(container.ports?.map((p) => p.containerPort), [8080]);

      const json = await api.call<Deployment>('PATCH', path, [{ op: 'replace', path: '/spec/replicas', value: 4 }], { contentType: 'application/json-patch+json' });
      assert.equal(json.body.spec.replicas, 4);
      assertStatus(
        await api.call('PATCH', path, [{ op: 'test', path: '/spec/replicas', value: 99 }], { contentType: 'application/json-patch+json' }),
        422,
      );
      assertStatus(await api.call('PATCH', path, [{ op: 'frobnicate', path: '/x' }], { contentType: 'application/json-patch+json' }), 400);
      assertStatus(await api.call('PATCH', path, {}, { contentType: 'text/plain' }), 415, 'UnsupportedMediaType');
      assertStatus(await api.call('PATCH', path, undefined, { raw: '{', contentType: 'application/merge-patch+json' }), 400);
      assertStatus(await api.call('PATCH', path, { spec: { replicas: -3 } }, { contentType: 'application/merge-patch+json' }), 422, 'Invalid');
      assertStatus(
        await api.call('PATCH', path, { metadata: { resourceVersion: '1' }, spec: { replicas: 1 } }, { contentType: 'application/merge-patch+json' }),
        409,
        'Conflict',
      );
      assertStatus(await api.call('PATCH', `${DEPLOYMENTS}/absent`, { spec: {} }, { contentType: 'application/merge-patch+json' }), 404);

      // Server-side apply: 201 when it creates, 200 when it updates.
      const applied = { ...deployment('applied'), metadata: { name: 'applied' } };
      const created = await api.call<Deployment>('PATCH', `${DEPLOYMENTS}/applied?fieldManager=test`, applied, { contentType: 'application/apply-patch+yaml' });
      assert.equal(created.status, 201, created.text);
      const again = await api.call<Deployment>(
        'PATCH',
        `${DEPLOYMENTS}/applied?fieldManager=test`,
        { ...applied, spec: { ...(deployment('applied')['spec'] as object), replicas: 3 } },
        { contentType: 'application/apply-patch+yaml' },
      );
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.spec.replicas, 3);
    });

    test('fieldValidation: Strict refuses unknown fields, Warn warns and drops them', async () => {
      const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'strict' }, data: { a: 'b' }, bogus: 1 };
      const strict = assertStatus(await api.call('POST', `${CONFIGMAPS}?fieldValidation=Strict`, body), 400, 'BadRequest');
      assert.match(strict.message ?? '', /strict decoding error: unknown field "bogus"/);
      const warned = await api.call<ConfigMap>('POST', `${CONFIGMAPS}?fieldValidation=Warn`, body);
      assert.equal(warned.status, 201);
      assert.match(String(warned.headers['warning']), /unknown field \\"bogus\\"/);
      assert.equal((warned.body as Record<string, unknown>)['bogus'], undefined);
      const deep = deployment('deep');
      (deep['spec'] as Record<string, unknown>)['replica'] = 3;
      const refused = assertStatus(await api.call('POST', `${DEPLOYMENTS}?fieldValidation=Strict`, deep), 400);
      assert.match(refused.message ?? '', /unknown field "spec.replica"/);
      assertStatus(await api.call('POST', `${CONFIGMAPS}?fieldValidation=Sometimes`, body), 400);
    });

    test('dryRun=All validates without storing', async () => {
      const dry = await api.call<ConfigMap>('POST', `${CONFIGMAPS}?dryRun=All`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry' } });
      assert.equal(dry.status, 201);
      assertStatus(await api.call('GET', `${CONFIGMAPS}/dry`), 404);
    });

    test('label and field selectors, malformed selectors, limit and continue', async () => {
      for (const [name, labels, nodeName] of [
        ['sel-a', { app: 'a', tier: 'front' }, 'n1'],
        ['sel-b', { app: 'b', tier: 'front' }, undefined],
        ['sel-c', { app: 'c' }, 'n2'],
      ] as const) {
        await api.call('POST', PODS, pod(name, { labels, ...(nodeName ? { nodeName } : {}) }));
      }
      const names = async (query: string): Promise<string[]> => {
        const answer = await api.call<KubeList>('GET', `${PODS}?${query}`);
        assert.equal(answer.status, 200, answer.text);
        return answer.body.items.map((p) => p.metadata.name ?? '').filter((n) => n.startsWith('sel-')).sort();
      };
      assert.deepEqual(await names('labelSelector=app%3Da'), ['sel-a']);
      assert.deepEqual(await names('labelSelector=tier%3Dfront%2Capp!%3Da'), ['sel-b']);
      assert.deepEqual(await names(`labelSelector=${encodeURIComponent('app in (a,c)')}`), ['sel-a', 'sel-c']);
      assert.deepEqual(await names(`labelSelector=${encodeURIComponent('!tier')}`), ['sel-c']);
      assert.deepEqual(await names('fieldSelector=spec.nodeName%3Dn1'), ['sel-a']);
      assert.deepEqual(await names('fieldSelector=spec.nodeName%3D'), ['sel-b']);
      assert.deepEqual(await names('fieldSelector=metadata.name%3Dsel-c'), ['sel-c']);
      assertStatus(await api.call('GET', `${PODS}?labelSelector=${encodeURIComponent('app in (a')}`), 400, 'BadRequest');
      assertStatus(await api.call('GET', `${PODS}?fieldSelector=spec.unknown%3Dx`), 400, 'BadRequest');

      const pages: string[] = [];
      let token: string | undefined;
      let firstVersion: string | undefined;
      do {
        const page = await api.call<KubeList>('GET', `${PODS}?limit=1&labelSelector=tier%3Dfront${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
        assert.equal(page.status, 200, page.text);
        assert.ok(page.body.items.length <= 1);
        pages.push(...page.body.items.map((p) => p.metadata.name ?? ''));
        firstVersion ??= page.body.metadata.resourceVersion;
        assert.equal(page.body.metadata.resourceVersion, firstVersion);
        token = page.body.metadata.continue;
      } while (token);
      assert.deepEqual(pages, ['sel-a', 'sel-b']);
      assertStatus(await api.call('GET', `${PODS}?limit=1&continue=garbage`), 400);
      const counted = await api.call<KubeList>('GET', `${PODS}?limit=1`);
      assert.ok((counted.body.metadata.remainingItemCount ?? 0) >= 2);
      assertStatus(await api.call('GET', `${PODS}?resourceVersion=999999999`), 504, 'Timeout');

      const deleted = await api.call<KubeList<Pod>>('DELETE', `${PODS}?labelSelector=tier%3Dfront`);
      assert.equal(deleted.status, 200);
      assert.deepEqual(deleted.body.items.map((p) => p.metadata.name).sort(), ['sel-a', 'sel-b']);
      // sel-a runs on a node: it is only marked, for its kubelet to finish.
      assert.deepEqual(await names(''), ['sel-a', 'sel-c']);
      assert.ok((await api.call<Pod>('GET', `${PODS}/sel-a`)).body.metadata.deletionTimestamp);
    });

    test('Table output for kubectl get, with wide columns and row objects', async () => {
      const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
      const table = await api.call<Table>('GET', SERVICES, undefined, { accept });
      assert.equal(table.body.kind, 'Table');
      assert.ok(table.body.columnDefinitions.some((c) => c.name === 'Cluster-IP'));
      const row = table.body.rows.find((r) => r.cells[0] === 'kubernetes');
      assert.ok(row);
      assert.equal(row.object?.kind, 'PartialObjectMetadata');
      const single = await api.call<Table>('GET', `${SERVICES}/kubernetes?includeObject=Object`, undefined, { accept });
      assert.equal(single.body.rows.length, 1);
      assert.equal(single.body.rows[0]!.object?.kind, 'Service');
    });

    test('status subresource: status writes change only status, main writes keep it', async () => {
      const created = await api.call<Pod>('POST', PODS, pod('st'));
      const withStatus = { ...created.body, spec: { ...created.body.spec, nodeName: 'sneaky' }, status: { phase: 'Running', podIP: '10.244.1.5' } };
      const updated = await api.call<Pod>('PUT', `${PODS}/st/status`, withStatus);
      assert.equal(updated.status, 200, updated.text);
      assert.equal(updated.body.status?.phase, 'Running');
      assert.deepEqual(updated.body.status?.podIPs, [{ ip: '10.244.1.5' }]);
      assert.equal(updated.body.spec.nodeName, undefined);
      const patched = await api.call<Pod>('PATCH', `${PODS}/st/status`, { status: { phase: 'Succeeded' } }, { contentType: 'application/merge-patch+json' });
      assert.equal(patched.body.status?.phase, 'Succeeded');
      const main = await api.call<Pod>('PATCH', `${PODS}/st`, { metadata: { labels: { x: 'y' } }, status: { phase: 'Failed' } }, { contentType: 'application/merge-patch+json' });
      assert.equal(main.status, 200, main.text);
      assert.equal(main.body.status?.phase, 'Succeeded');
      assert.equal(main.body.metadata.labels?.['x'], 'y');
      await api.call('DELETE', `${PODS}/st`);
    });

    test('binding sets spec.nodeName once; a second binding is a 409', async () => {
      await api.call('POST', PODS, pod('bind-me'));
      const binding = { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'bind-me' }, target: { apiVersion: 'v1', kind: 'Node', name: 'n1' } };
      const bound = await api.call('POST', `${PODS}/bind-me/binding`, binding);
      assert.equal(bound.status, 201, bound.text);
      const got = await api.call<Pod>('GET', `${PODS}/bind-me`);
      assert.equal(got.body.spec.nodeName, 'n1');
      assert.equal(got.body.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status, 'True');
      const again = assertStatus(await api.call('POST', `${PODS}/bind-me/binding`, { ...binding, target: { kind: 'Node', name: 'n2' } }), 409, 'Conflict');
      assert.match(again.message ?? '', /already assigned to node "n1"/);
      assertStatus(await api.call('POST', `${PODS}/bind-me/binding`, { ...binding, target: {} }), 422, 'Invalid');
      assertStatus(await api.call('POST', `${PODS}/absent/binding`, { ...binding, metadata: { name: 'absent' } }), 404);
      await api.call('DELETE', `${PODS}/bind-me?gracePeriodSeconds=0`);
    });

    test('graceful deletion of bound pods; unbound pods go at once; finalizers hold objects', async () => {
      await api.call('POST', PODS, pod('unbound'));
      assert.equal((await api.call('DELETE', `${PODS}/unbound`)).status, 200);
      assertStatus(await api.call('GET', `${PODS}/unbound`), 404);

      await api.call('POST', PODS, { ...pod('running', { nodeName: 'n1' }), spec: { ...(pod('x')['spec'] as object), nodeName: 'n1', terminationGracePeriodSeconds: 20 } });
      const marked = await api.call<Pod>('DELETE', `${PODS}/running`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
      assert.equal(marked.status, 200);
      assert.equal(marked.body.metadata.deletionGracePeriodSeconds, 20);
      assert.ok(marked.body.metadata.deletionTimestamp);
      const still = await api.call<Pod>('GET', `${PODS}/running`);
      assert.equal(still.status, 200);
      // A later delete may shorten the grace period, and the kubelet's 0 removes the pod.
      const shorter = await api.call<Pod>('DELETE', `${PODS}/running`, { gracePeriodSeconds: 5 });
      assert.equal(shorter.body.metadata.deletionGracePeriodSeconds, 5);
      const longer = await api.call<Pod>('DELETE', `${PODS}/running`, { gracePeriodSeconds: 50 });
      assert.equal(longer.body.metadata.deletionGracePeriodSeconds, 5);
      assert.equal((await api.call('DELETE', `${PODS}/running`, { gracePeriodSeconds: 0 })).status, 200);
      assertStatus(await api.call('GET', `${PODS}/running`), 404);

      const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', finalizers: ['example.com/hold'] } };
      await api.call('POST', CONFIGMAPS, cm);
      const pending = await api.call<ConfigMap>('DELETE', `${CONFIGMAPS}/held`);
      assert.equal(pending.status, 200);
      assert.ok(pending.body.metadata.deletionTimestamp);
      assert.equal((await api.call('GET', `${CONFIGMAPS}/held`)).status, 200);
      const added = await api.call('PATCH', `${CONFIGMAPS}/held`, { metadata: { finalizers: ['example.com/hold', 'example.com/more'] } }, { contentType: 'application/merge-patch+json' });
      assertStatus(added, 422, 'Invalid');
      const released = await api.call('PATCH', `${CONFIGMAPS}/held`, { metadata: { finalizers: null } }, { contentType: 'application/merge-patch+json' });
      assert.equal(released.status, 200, released.text);
      assertStatus(await api.call('GET', `${CONFIGMAPS}/held`), 404);

      await api.call('POST', CONFIGMAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pre' } });
      assertStatus(await api.call('DELETE', `${CONFIGMAPS}/pre`, { preconditions: { uid: 'not-the-uid' } }), 409, 'Conflict');
      assertStatus(await api.call('DELETE', `${CONFIGMAPS}/pre`, { preconditions: { resourceVersion: '1' } }), 409, 'Conflict');
      const gone = await api.call<Status>('DELETE', `${CONFIGMAPS}/pre`);
      assert.equal(gone.body.status, 'Success');
      assertStatus(await api.call('DELETE', `${CONFIGMAPS}/pre`), 404);
    });

    test('scale subresource: autoscaling/v1 Scale with the selector; PUT, PATCH, conflicts and validation', async () => {
      await api.call('POST', DEPLOYMENTS, deployment('scaled', 2));
      const scale = await api.call<Scale>('GET', `${DEPLOYMENTS}/scaled/scale`);
      assert.equal(scale.body.apiVersion, 'autoscaling/v1');
      assert.equal(scale.body.kind, 'Scale');
      assert.equal(scale.body.spec.replicas, 2);
      assert.equal(scale.body.status?.selector, 'app=scaled');
      const patched = await api.call<Scale>('PATCH', `${DEPLOYMENTS}/scaled/scale`, { spec: { replicas: 5 } }, { contentType: 'application/merge-patch+json' });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.body.spec.replicas, 5);
      assert.equal((await api.call<Deployment>('GET', `${DEPLOYMENTS}/scaled`)).body.spec.replicas, 5);
      const put = await api.call<Scale>('PUT', `${DEPLOYMENTS}/scaled/scale`, { ...patched.body, spec: { replicas: 1 } });
      assert.equal(put.body.spec.replicas, 1);
      assertStatus(await api.call('PUT', `${DEPLOYMENTS}/scaled/scale`, { ...patched.body, spec: { replicas: 7 } }), 409, 'Conflict');
      assertStatus(await api.call('PATCH', `${DEPLOYMENTS}/scaled/scale`, { spec: { replicas: -1 } }, { contentType: 'application/merge-patch+json' }), 422);
      assertStatus(await api.call('GET', `${DEPLOYMENTS}/absent/scale`), 404);
    });

    test('Services get distinct cluster IPs and node ports; a taken IP is refused', async () => {
      const service = (name: string, spec: Record<string, unknown>): Record<string, unknown> => ({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name },
        spec: { selector: { app: name }, ports: [{ port: 80 }], ...spec },
      });
      const a = await api.call<Service>('POST', SERVICES, service('svc-a', {}));
      const b = await api.call<Service>('POST', SERVICES, service('svc-b', { type: 'NodePort' }));
      assert.equal(a.status, 201, a.text);
      assert.equal(b.status, 201, b.text);
      assert.ok(a.body.spec.clusterIP?.startsWith('10.'));
      assert.notEqual(a.body.spec.clusterIP, b.body.spec.clusterIP);
      const nodePort = b.body.spec.ports?.[0]?.nodePort ?? 0;
      assert.ok(nodePort >= 30000 && nodePort <= 32767, String(nodePort));
      const taken = assertStatus(await api.call('POST', SERVICES, service('svc-c', { clusterIP: a.body.spec.clusterIP })), 422, 'Invalid');
      assert.ok(taken.details?.causes?.length);
      const headless = await api.call<Service>('POST', SERVICES, service('svc-h', { clusterIP: 'None' }));
      assert.equal(headless.body.spec.clusterIP, 'None');
      // The address is free again once its Service is gone.
      await api.call('DELETE', `${SERVICES}/svc-a`);
      // Released when the store's watch delivers the delete, which may come after the DELETE
      // answers: retry while the address is still held, and fail if it never comes free.
      const reuse = await poll('the address of svc-a to come free', async () => {
        const created = await api.call<Service>('POST', SERVICES, service('svc-d', { clusterIP: a.body.spec.clusterIP }));
        return created.status !== 422 && created;
      }, { timeoutMs: 5000 });
      assert.equal(reuse.status, 201, reuse.text);
      // Becoming a NodePort Service on update allocates a port; the cluster IP stays.
      const changed = await api.call<Service>('PATCH', `${SERVICES}/svc-d`, { spec: { type: 'NodePort' } }, { contentType: 'application/merge-patch+json' });
      assert.equal(changed.status, 200, changed.text);
      assert.equal(changed.body.spec.clusterIP, a.body.spec.clusterIP);
      const assigned = changed.body.spec.ports?.[0]?.nodePort;
      assert.ok(assigned !== undefined && assigned !== nodePort, String(assigned));
      const clash = await api.call('PATCH', `${SERVICES}/svc-d`, { spec: { ports: [{ port: 80, nodePort }] } }, { contentType: 'application/merge-patch+json' });
      assertStatus(clash, 422, 'Invalid');
    });

    test('deleting an owner cascades to its dependents (Background) or orphans them', async () => {
      const owner = await api.call<Deployment>('POST', DEPLOYMENTS, deployment('owner'));
      const ref = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'owner', uid: owner.body.metadata.uid!, controller: true };
      const rs = (name: string): Record<string, unknown> => ({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name, ownerReferences: [ref], labels: { app: 'owner' } },
        spec: deployment('owner')['spec'],
      });
      const rsPath = '/apis/apps/v1/namespaces/default/replicasets';
      assert.equal((await api.call('POST', rsPath, rs('owner-1'))).status, 201);
      await api.call('DELETE', `${DEPLOYMENTS}/owner`, { propagationPolicy: 'Background' });
      await waitFor(async () => (await api.call('GET', `${rsPath}/owner-1`)).status === 404);

      const owner2 = await api.call<Deployment>('POST', DEPLOYMENTS, deployment('owner2'));
      const orphan = rs('owner2-1');
      (orphan['metadata'] as { ownerReferences: unknown[] }).ownerReferences = [{ ...ref, name: 'owner2', uid: owner2.body.metadata.uid }];
      await api.call('POST', rsPath, orphan);
      await api.call('DELETE', `${DEPLOYMENTS}/owner2`, { propagationPolicy: 'Orphan' });
      await waitFor(async () => (await api.call<ReplicaSet>('GET', `${rsPath}/owner2-1`)).body.metadata.ownerReferences === undefined);
    });

    test('namespace deletion empties the namespace, refuses new content meanwhile, then removes it', async () => {
      await api.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } });
      await api.call('POST', '/api/v1/namespaces/doomed/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', finalizers: ['example.com/x'] } });
      const terminating = await api.call<KubeObject>('DELETE', '/api/v1/namespaces/doomed');
      assert.equal(terminating.status, 200);
      assert.equal((terminating.body['status'] as { phase?: string }).phase, 'Terminating');
      const refused = assertStatus(await api.call('POST', '/api/v1/namespaces/doomed/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'd' } }), 403, 'Forbidden');
      assert.match(refused.message ?? '', /being terminated/);
      // The sweep has been through the namespace once its content is marked for deletion.
      // c marked for deletion does not yet mean the sweep has decided about doomed. A sweep
      // that has looked at doomed either removed it (wrong: c still has a finalizer) or said
      // what keeps it in its conditions; wait for one of the two.
      const seen = await poll('a sweep of doomed', async () => {
        const got = await api.call<Namespace>('GET', '/api/v1/namespaces/doomed');
        return (got.status === 404 || got.body.status?.conditions?.some((c) => c.type === 'NamespaceFinalizersRemaining' && c.status === 'True')) && got;
      }, { timeoutMs: 5000 });
      assert.equal(seen.status, 200, 'waits for the finalizer of its content');
      const conditions = new Map(seen.body.status?.conditions?.map((c) => [c.type, c]));
      assert.equal(conditions.get('NamespaceContentRemaining')?.message, 'Some resources are remaining: configmaps. has 1 resource instances');
      assert.equal(conditions.get('NamespaceFinalizersRemaining')?.message, 'Some content in the namespace has finalizers remaining: example.com/x in 1 resource instances');
      await api.call('PATCH', '/api/v1/namespaces/doomed/configmaps/c', { metadata: { finalizers: [] } }, { contentType: 'application/merge-patch+json' });
      await waitFor(async () => (await api.call('GET', '/api/v1/namespaces/doomed')).status === 404);
      assertStatus(await api.call('DELETE', '/api/v1/namespaces/default'), 403, 'Forbidden');
    });

    test('a namespace deleted through a collection DELETE terminates like a single one: emptied first, then removed', async () => {
      await api.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'swept', labels: { sweep: 'yes' } } });
      await api.call('POST', '/api/v1/namespaces/swept/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', finalizers: ['example.com/x'] } });
      const listed = await api.call<{ items: KubeObject[] }>('DELETE', '/api/v1/namespaces?labelSelector=sweep%3Dyes');
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(listed.body.items.map((ns) => [ns.metadata.name, (ns['status'] as { phase?: string }).phase]), [['swept', 'Terminating']]);
      // Its content is being deleted (held by its finalizer), so the namespace stays.
      await waitFor(async () => Boolean((await api.call<KubeObject>('GET', '/api/v1/namespaces/swept/configmaps/held')).body.metadata?.deletionTimestamp));
      assert.equal((await api.call('GET', '/api/v1/namespaces/swept')).status, 200);
      await api.call('PATCH', '/api/v1/namespaces/swept/configmaps/held', { metadata: { finalizers: [] } }, { contentType: 'application/merge-patch+json' });
      await waitFor(async () => (await api.call('GET', '/api/v1/namespaces/swept')).status === 404);
      const system = assertStatus(await api.call('DELETE', '/api/v1/namespaces?labelSelector=kubernetes.io%2Fmetadata.name%3Dkube-public'), 403, 'Forbidden');
      assert.equal(system.message, 'namespaces "kube-public" is forbidden: this namespace may not be deleted');
    });

    test('pod logs are proxied to the kubelet socket named in the Node annotation', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pontoon-kubelet-'));
      const socketPath = join(dir, 'kubelet.sock');
      const seen: string[] = [];
      let releaseSecondLine: (() => void) | undefined;
      const kubelet: Server = createServer((req, res) => {
        seen.push(req.url ?? '');
        if (req.url?.includes('follow=true')) {
          // Streams: one line now, the next only once the test has seen the first.
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.write('first\n');
          releaseSecondLine = () => res.end('second\n');
          return;
        }
        if (req.url?.includes('/missing')) {
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          res.end('container "missing" not found');
          return;
        }
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('line one\nline two\n');
      });
      await new Promise<void>((resolve) => kubelet.listen(socketPath, resolve));
      try {
        await api.call('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'log-node', annotations: { 'pontoon.dev/kubelet-socket': socketPath } } });
        await api.call('POST', PODS, pod('log-pod'));
        const unscheduled = assertStatus(await api.call('GET', `${PODS}/log-pod/log`), 400, 'BadRequest');
        assert.match(unscheduled.message ?? '', /does not have a host assigned/);
        await api.call('POST', `${PODS}/log-pod/binding`, { target: { kind: 'Node', name: 'log-node' } });
        const logs = await api.call('GET', `${PODS}/log-pod/log?tailLines=2&follow=false`);
        assert.equal(logs.status, 200);
        assert.equal(logs.text, 'line one\nline two\n');
        assert.equal(seen[0], '/containerLogs/default/log-pod/c?follow=false&tailLines=2');
        assertStatus(await api.call('GET', `${PODS}/log-pod/log?container=other`), 400);

        const streamed = await new Promise<string>((resolve, reject) => {
          const url = new URL(`${PODS}/log-pod/log?follow=true`, api.url);
          const req = httpRequest({ hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}` }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              text += chunk;
              if (text === 'first\n') releaseSecondLine?.();
            });
            res.on('end', () => resolve(text));
            res.on('error', reject);
          });
          req.on('error', reject);
          // A proxy that buffered would hold 'first' back until the end, which never comes.
          req.setTimeout(5000, () => req.destroy(new Error('the first log line was not streamed through')));
          req.end();
        });
        assert.equal(streamed, 'first\nsecond\n');
      } finally {
        kubelet.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('discovery, version, health and the OpenAPI v3 index', async () => {
      const version = await api.call<{ major: string; minor: string; gitVersion: string }>('GET', '/version');
      assert.equal(version.body.major, '1');
      assert.equal(version.body.minor, '32');
      assert.equal((await api.call('GET', '/readyz')).text, 'ok');
      assert.equal((await api.call('GET', '/healthz')).status, 200);
      const core = await api.call<{ resources: { name: string; kind: string; verbs: string[]; shortNames?: string[] }[] }>('GET', '/api/v1');
      const names = core.body.resources.map((r) => r.name);
      for (const expected of ['pods', 'pods/status', 'pods/binding', 'pods/log', 'services', 'nodes', 'namespaces', 'events']) assert.ok(names.includes(expected), expected);
      assert.deepEqual(core.body.resources.find((r) => r.name === 'pods')?.shortNames, ['po']);
      const apps = await api.call<{ resources: { name: string; kind: string; group?: string }[] }>('GET', '/apis/apps/v1');
      const scale = apps.body.resources.find((r) => r.name === 'deployments/scale');
      assert.equal(scale?.kind, 'Scale');
      assert.equal(scale?.group, 'autoscaling');
      const groups = await api.call<{ groups: { name: string }[] }>('GET', '/apis');
      assert.deepEqual(groups.body.groups.map((g) => g.name).sort(), ['apps', 'batch', 'certificates.k8s.io', 'coordination.k8s.io', 'discovery.k8s.io', 'rbac.authorization.k8s.io']);
      const aggregated = await api.call<{ kind: string; items: { metadata: { name: string } }[] }>('GET', '/apis', undefined, {
        accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json',
      });
      assert.equal(aggregated.body.kind, 'APIGroupDiscoveryList');
      assert.match(String(aggregated.headers['content-type']), /as=APIGroupDiscoveryList/);
      const index = await api.call<{ paths: Record<string, { serverRelativeURL: string }> }>('GET', '/openapi/v3');
      const appsDoc = await api.call<{ paths: Record<string, { patch?: { parameters: { name: string }[] } }> }>('GET', index.body.paths['apis/apps/v1']!.serverRelativeURL);
      const patch = appsDoc.body.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}']?.patch;
      assert.ok(patch?.parameters.some((p) => p.name === 'fieldValidation'));
      // v2 (kubectl validates `kind: List` files against it): JSON by default, gnostic protobuf on request.
      const v2 = await api.call<{ swagger: string; paths: Record<string, { patch?: { parameters: { name: string }[] } }>; definitions: object }>('GET', '/openapi/v2');
      assert.equal(v2.body.swagger, '2.0');
      assert.ok(v2.body.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}']?.patch?.parameters.some((p) => p.name === 'fieldValidation'));
      assert.deepEqual(v2.body.definitions, {});
      const v2Protobuf = await api.call('GET', '/openapi/v2', undefined, { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
      assert.equal(v2Protobuf.headers['content-type'], 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
      // Field 1 (swagger), length-delimited, "2.0".
      assert.ok(v2Protobuf.text.startsWith('\x0a\x032.0'));
      assert.ok(v2Protobuf.text.includes('/apis/apps/v1/namespaces/{namespace}/deployments/{name}'));
    });
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  await poll('the condition', check, { timeoutMs });
}

describe('event expiry', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore(), { eventTtlSeconds: 1 });
  });
  after(async () => {
    await api?.close();
  });

  test('events older than the TTL are deleted, newer ones stay', async () => {
    const event = (name: string, last: Date): Record<string, unknown> => ({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name },
      involvedObject: { kind: 'Pod', name: 'p', namespace: 'default' },
      reason: 'Test',
      message: 'test',
      type: 'Normal',
      lastTimestamp: last.toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    const EVENTS = '/api/v1/namespaces/default/events';
    assert.equal((await api.call('POST', EVENTS, event('old', new Date(Date.now() - 3600_000)))).status, 201);
    assert.equal((await api.call('POST', EVENTS, event('fresh', new Date(Date.now() + 60_000)))).status, 201);
    await waitFor(async () => (await api.call('GET', `${EVENTS}/old`)).status === 404);
    assert.equal((await api.call('GET', `${EVENTS}/fresh`)).status, 200);
  });
});
