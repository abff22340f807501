/**
 * The identity controllers and ServiceAccount admission against a real in-process apiserver:
 * `default` ServiceAccounts, kube-root-ca.crt, legacy token Secrets, and pods that name
 * (or do not name) an account.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Secret, ServiceAccount } from '../../src/api/serviceaccount.js';
import type { ConfigMap, Pod } from '../../src/api/types.js';
import { ensurePki, ensureServiceAccountKey } from '../../src/apiserver/pki.js';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/server.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { ApiError } from '../../src/client/api.js';
import { KubeClient } from '../../src/client/client.js';
import { ControllerManager } from '../../src/controllers/manager.js';
import { readSigningKey } from '../../src/lib/jws.js';
import { call } from '../apiserver/server-harness.js';
import { log, waitFor } from './harness.js';

describe('identity controllers and ServiceAccount admission', () => {
  let dir: string;
  let server: RunningApiServer;
  let api: KubeClient;
  let manager: ControllerManager;
  let caPem: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-identity-'));
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const saKey = ensureServiceAccountKey(join(dir, 'pki'));
    caPem = readFileSync(pki.caCertPath, 'utf8');
    server = await startApiServer({
      store: new MemoryStore(),
      log,
      closeStore: true,
      serviceAccountAdmission: true,
      // The controller-manager signs legacy tokens with this key; the apiserver verifies with it.
      serviceAccountKeyFiles: [saKey.publicKeyPath],
    });
    api = new KubeClient({ server: server.url });
    manager = new ControllerManager({
      api,
      log,
      controllers: ['serviceaccount', 'serviceaccount-token', 'root-ca-cert-publisher'],
      serviceAccountSigningKey: readSigningKey(saKey.keyPath),
      rootCaPem: caPem,
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const account = (namespace: string, name = 'default') => api.get<ServiceAccount>(RESOURCE.serviceaccounts, name, namespace);

  test('namespaces that existed before the controller, and new ones, get a default ServiceAccount; a deleted one comes back', async () => {
    await waitFor('default/default', () => account('default'));
    await waitFor('kube-system/default', () => account('kube-system'));
    await api.create(RESOURCE.namespaces, { metadata: { name: 'fresh' } });
    const first = await waitFor('fresh/default', () => account('fresh'));
    await api.delete(RESOURCE.serviceaccounts, 'default', 'fresh');
    const again = await waitFor('fresh/default recreated', async () => {
      const found = await account('fresh');
      return found && found.metadata.uid !== first.metadata.uid ? found : undefined;
    });
    assert.equal(again.metadata.name, 'default');
  });

  test('kube-root-ca.crt holds the CA in every namespace and is put back when edited or deleted', async () => {
    await api.create(RESOURCE.namespaces, { metadata: { name: 'ca-test' } });
    const rootCa = () => api.get<ConfigMap>(RESOURCE.configmaps, 'kube-root-ca.crt', 'ca-test');
    const published = await waitFor('kube-root-ca.crt', rootCa);
    assert.deepEqual(published.data, { 'ca.crt': caPem });
    await waitFor('kube-root-ca.crt in default', () => api.get<ConfigMap>(RESOURCE.configmaps, 'kube-root-ca.crt', 'default'));
    await api.update<ConfigMap>(RESOURCE.configmaps, { ...published, data: { 'ca.crt': 'tampered' } });
    await waitFor('restored after an edit', async () => (await rootCa())?.data?.['ca.crt'] === caPem);
    await api.delete(RESOURCE.configmaps, 'kube-root-ca.crt', 'ca-test');
    await waitFor('recreated after a delete', async () => (await rootCa())?.data?.['ca.crt'] === caPem);
  });

  test('a service-account-token Secret is filled with a working token, ca.crt and namespace, and goes with its account', async () => {
    const created = await api.create<ServiceAccount>(RESOURCE.serviceaccounts, { metadata: { name: 'legacy', namespace: 'default' } });
    await api.create<Secret>(RESOURCE.secrets, {
      metadata: { name: 'legacy-token', namespace: 'default', annotations: { 'kubernetes.io/service-account.name': 'legacy' } },
      type: 'kubernetes.io/service-account-token',
    });
    const filled = await waitFor('token filled', async () => {
      const secret = await api.get<Secret>(RESOURCE.secrets, 'legacy-token', 'default');
      return secret?.data?.['token'] ? secret : undefined;
    });
    const decode = (key: string): string => Buffer.from(filled.data?.[key] ?? '', 'base64').toString('utf8');
    assert.equal(decode('ca.crt'), caPem);
    assert.equal(decode('namespace'), 'default');
    assert.equal(filled.metadata.annotations?.['kubernetes.io/service-account.uid'], created.metadata.uid);
    const token = decode('token');
    const review = await call<{ status: { userInfo: { username: string } } }>(server.url, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {}, { token });
    assert.equal(review.status, 201);
    assert.equal(review.body.status.userInfo.username, 'system:serviceaccount:default:legacy');

    await api.delete(RESOURCE.serviceaccounts, 'legacy', 'default');
    await waitFor('token Secret deleted', async () => !(await api.get(RESOURCE.secrets, 'legacy-token', 'default')));
    assert.equal((await call(server.url, 'GET', '/api/v1/namespaces/default/services', undefined, { token })).status, 401);
  });

  test('pods run as "default" unless they name an account; a missing account is 403 as upstream words it', async () => {
    await waitFor('default/default', () => account('default'));
    const plain = await api.create<Pod>(RESOURCE.pods, { metadata: { name: 'plain', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    assert.equal(plain.spec.serviceAccountName, 'default');
    assert.equal((plain.spec as { serviceAccount?: string }).serviceAccount, 'default');

    await api.create(RESOURCE.serviceaccounts, { metadata: { name: 'aliased', namespace: 'default' } });
    const aliased = await api.create<Pod>(RESOURCE.pods, {
      metadata: { name: 'aliased', namespace: 'default' },
      spec: { serviceAccount: 'aliased', containers: [{ name: 'c', image: 'busybox' }] } as Pod['spec'],
    });
    assert.equal(aliased.spec.serviceAccountName, 'aliased');

    const refused = await api
      .create<Pod>(RESOURCE.pods, { metadata: { name: 'orphan', namespace: 'default' }, spec: { serviceAccountName: 'nope', containers: [{ name: 'c', image: 'busybox' }] } })
      .then(
        () => assert.fail('created'),
        (err: unknown) => (err as ApiError).status as Status,
      );
    assert.equal(refused.code, 403);
    assert.equal(refused.reason, 'Forbidden');
    assert.equal(refused.message, 'pods "orphan" is forbidden: error looking up service account default/nope: serviceaccount "nope" not found');
    assert.equal(await api.get(RESOURCE.pods, 'orphan', 'default'), undefined);
  });

  test('a pod created right after its namespace waits for the default account instead of failing', async () => {
    await api.create(RESOURCE.namespaces, { metadata: { name: 'racing' } });
    const created = await api.create<Pod>(RESOURCE.pods, { metadata: { name: 'early', namespace: 'racing' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    assert.equal(created.spec.serviceAccountName, 'default');
  });
});
