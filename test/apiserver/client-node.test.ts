/** @kubernetes/client-node (the official JavaScript client) against the apiserver: typed calls, watch, informer. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, KubeConfig, makeInformer, Watch, type V1Pod } from '@kubernetes/client-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from './server-harness.js';

function podBody(name: string, labels: Record<string, string> = {}): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
}

async function until(check: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not reached in time: ${what()}`);
    await sleep(20);
  }
}

describe('@kubernetes/client-node against the apiserver', () => {
  let api: TestApi;
  let kc: KubeConfig;
  let dir: string;
  before(async () => {
    // client-node refuses plain http unless TLS checks are off: serve TLS with a token.
    dir = mkdtempSync(join(tmpdir(), 'pontoon-client-node-'));
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'client-node-token,admin,1,"system:masters"\n');
    api = await startTestApi(new MemoryStore(), { bookmarkIntervalMs: 200, tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath });
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: api.url, skipTLSVerify: false, caData: Buffer.from(pki.caPem).toString('base64') }],
      users: [{ name: 'test', token: 'client-node-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    });
  });
  after(async () => {
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('typed create, list with a selector, read, delete; errors carry the Status', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const created = await core.createNamespacedPod({ namespace: 'default', body: podBody('typed', { app: 'typed' }) });
    assert.equal(created.metadata?.name, 'typed');
    assert.ok(created.metadata?.uid);
    const listed = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=typed' });
    assert.deepEqual(listed.items.map((p) => p.metadata?.name), ['typed']);
    assert.ok(listed.metadata?.resourceVersion);
    const read = await core.readNamespacedPod({ namespace: 'default', name: 'typed' });
    assert.equal(read.status?.phase, 'Pending');
    await assert.rejects(core.readNamespacedPod({ namespace: 'default', name: 'absent' }), (err: { code?: number; body?: string }) => {
      assert.equal(err.code, 404);
      assert.match(String(err.body), /"reason":"NotFound"/);
      return true;
    });
    const apps = kc.makeApiClient(AppsV1Api);
    const deployment = await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'typed' },
        spec: { replicas: 1, selector: { matchLabels: { app: 'typed' } }, template: { metadata: { labels: { app: 'typed' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
      },
    });
    assert.equal(deployment.spec?.replicas, 1);
    const scale = await apps.readNamespacedDeploymentScale({ namespace: 'default', name: 'typed' });
    assert.equal(scale.status?.selector, 'app=typed');
    await core.deleteNamespacedPod({ namespace: 'default', name: 'typed' });
    await assert.rejects(core.readNamespacedPod({ namespace: 'default', name: 'typed' }));
  });

  test('Watch delivers ADDED, MODIFIED and DELETED from a list resourceVersion', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace: 'default' });
    const seen: string[] = [];
    const controller = await new Watch(kc).watch(
      '/api/v1/namespaces/default/pods',
      { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (type, object: V1Pod) => {
        if (type !== 'BOOKMARK') seen.push(`${type} ${object.metadata?.name ?? ''}`);
      },
      () => undefined,
    );
    try {
      await core.createNamespacedPod({ namespace: 'default', body: podBody('watched') });
      // client-node sends PATCH bodies as JSON patch (application/json-patch+json) by default.
      await core.patchNamespacedPod({ namespace: 'default', name: 'watched', body: [{ op: 'add', path: '/metadata/labels', value: { seen: 'yes' } }] });
      await core.deleteNamespacedPod({ namespace: 'default', name: 'watched' });
      await until(() => seen.length >= 3, () => seen.join(', '));
      assert.deepEqual(seen, ['ADDED watched', 'MODIFIED watched', 'DELETED watched']);
    } finally {
      controller.abort();
    }
  });

  test('an informer lists, then follows changes', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({ namespace: 'default', body: podBody('before', { group: 'inf' }) });
    const informer = makeInformer(kc, '/api/v1/namespaces/default/pods', () => core.listNamespacedPod({ namespace: 'default', labelSelector: 'group=inf' }), 'group=inf');
    const events: string[] = [];
    informer.on('add', (pod) => events.push(`add ${pod.metadata?.name ?? ''}`));
    informer.on('update', (pod) => events.push(`update ${pod.metadata?.name ?? ''}`));
    informer.on('delete', (pod) => events.push(`delete ${pod.metadata?.name ?? ''}`));
    await informer.start();
    try {
      await until(() => events.includes('add before'), () => events.join(', '));
      await core.createNamespacedPod({ namespace: 'default', body: podBody('after', { group: 'inf' }) });
      await core.deleteNamespacedPod({ namespace: 'default', name: 'before' });
      await until(() => events.includes('add after') && events.includes('delete before'), () => events.join(', '));
      assert.deepEqual(informer.list().map((p) => p.metadata?.name), ['after']);
    } finally {
      await informer.stop();
    }
  });
});
