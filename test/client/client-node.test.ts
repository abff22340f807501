/**
 * The "also @kubernetes/client-node list+watch": the official JavaScript client (1.x,
 * ESM, which our NodeNext build imports as is) against an in-process apiserver over https
 * with the cluster CA and a bearer token, loaded from a kubeconfig string the way its users
 * do. Covers the typed APIs, `Watch`, and `makeInformer` across an apiserver restart on the
 * same SQLite file and TCP port.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  Watch,
  type KubernetesObject,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { ensurePki, type Pki } from '../../src/apiserver/pki.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { freePort, sleep, startServer, tempDir, waitFor } from './harness.js';

const TOKEN = 'client-node-token-42';

function kubeconfigYaml(server: string, caPem: string, token?: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'current-context: pontoon',
    'clusters:',
    '- name: pontoon',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`,
    'contexts:',
    '- name: pontoon',
    '  context:',
    '    cluster: pontoon',
    '    user: admin',
    '    namespace: default',
    'users:',
    '- name: admin',
    token ? `  user:\n    token: ${token}` : '  user: {}',
    '',
  ].join('\n');
}

function pod(name: string, labels: Record<string, string> = {}): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
}

function apiCode(err: unknown): number | undefined {
  return err instanceof ApiException ? (err.code as number) : undefined;
}

/** key → resourceVersion, sorted, for comparing an informer cache with a fresh list. */
function versions(objects: readonly KubernetesObject[]): [string, string | undefined][] {
  return objects.map((o) => [`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o.metadata?.resourceVersion] as [string, string | undefined]).sort(([a], [b]) => a.localeCompare(b));
}

describe('@kubernetes/client-node over https with the cluster CA and a token', () => {
  const dir = tempDir('client-node');
  const storeUrl = `sqlite:${join(dir.path, 'state.db')}`;
  const tokensFile = join(dir.path, 'tokens.csv');
  let pki: Pki;
  let port: number;
  let server: RunningApiServer | undefined;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  // Restarts reuse the TCP port and the SQLite file.
  const start = async (): Promise<void> => {
    server = await startServer({
      store: storeUrl,
      listen: `127.0.0.1:${port}`,
      tokensFile,
      tlsCertFile: pki.certPath,
      tlsKeyFile: pki.keyPath,
    });
  };
  const stop = async (): Promise<void> => {
    const running = server;
    server = undefined;
    await running?.close();
  };

  before(async () => {
    pki = ensurePki(join(dir.path, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    writeFileSync(tokensFile, `${TOKEN},admin,1,"system:masters"\n`);
    port = await freePort();
    await start();
    assert.equal(server?.url, `https://127.0.0.1:${port}`);
    kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server!.url, pki.caPem, TOKEN));
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
  });
  after(async () => {
    await stop();
    dir.remove();
  });

  test('KubeConfig.loadFromString picks up the server, CA and token', () => {
    assert.equal(kc.getCurrentCluster()?.server, `https://127.0.0.1:${port}`);
    assert.equal(kc.getCurrentUser()?.token, TOKEN);
  });

  test('CoreV1Api: create, read, list with a label selector, delete', async () => {
    const created = await core.createNamespacedPod({ namespace: 'default', body: pod('cn-1', { app: 'cn' }) });
    assert.equal(created.metadata?.name, 'cn-1');
    assert.ok(created.metadata?.uid);
    assert.ok(created.metadata?.creationTimestamp instanceof Date, 'timestamps deserialise as dates');
    await core.createNamespacedPod({ namespace: 'default', body: pod('cn-2', { app: 'other' }) });

    const read = await core.readNamespacedPod({ name: 'cn-1', namespace: 'default' });
    assert.equal(read.metadata?.uid, created.metadata?.uid);
    assert.equal(read.spec?.containers[0]?.image, 'busybox');

    const list = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=cn' });
    assert.deepEqual(list.items.map((p) => p.metadata?.name), ['cn-1']);
    assert.ok(list.metadata?.resourceVersion);
    const byField = await core.listNamespacedPod({ namespace: 'default', fieldSelector: 'metadata.name=cn-2' });
    assert.deepEqual(byField.items.map((p) => p.metadata?.name), ['cn-2']);

    await assert.rejects(core.createNamespacedPod({ namespace: 'default', body: pod('cn-1') }), (err: unknown) => apiCode(err) === 409);
    await core.deleteNamespacedPod({ name: 'cn-1', namespace: 'default' });
    await assert.rejects(core.readNamespacedPod({ name: 'cn-1', namespace: 'default' }), (err: unknown) => apiCode(err) === 404);
    await assert.rejects(core.deleteNamespacedPod({ name: 'cn-1', namespace: 'default' }), (err: unknown) => apiCode(err) === 404);
    await core.deleteNamespacedPod({ name: 'cn-2', namespace: 'default' });
  });

  test('AppsV1Api: createNamespacedDeployment and read it back with defaults', async () => {
    const body: V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'busybox', ports: [{ containerPort: 8080 }] }] } },
      },
    };
    const created = await apps.createNamespacedDeployment({ namespace: 'default', body });
    assert.equal(created.spec?.replicas, 2);
    const read = await apps.readNamespacedDeployment({ name: 'web', namespace: 'default' });
    assert.equal(read.metadata?.uid, created.metadata?.uid);
    assert.equal(read.spec?.template.spec?.containers[0]?.ports?.[0]?.containerPort, 8080);
    const list = await apps.listNamespacedDeployment({ namespace: 'default' });
    assert.ok(list.items.some((d) => d.metadata?.name === 'web'));
    await apps.deleteNamespacedDeployment({ name: 'web', namespace: 'default' });
  });

  test('without the token reads and writes are refused', async () => {
    const anonymous = new KubeConfig();
    anonymous.loadFromString(kubeconfigYaml(server!.url, pki.caPem));
    const anonymousCore = anonymous.makeApiClient(CoreV1Api);
    await assert.rejects(anonymousCore.listNamespacedPod({ namespace: 'default' }), (err: unknown) => apiCode(err) === 403);
    await assert.rejects(anonymousCore.createNamespacedPod({ namespace: 'default', body: pod('anon') }), (err: unknown) => {
      const code = apiCode(err);
      return code === 401 || code === 403;
    });
  });

  test('Watch streams ADDED, MODIFIED and DELETED', async () => {
    const list = await core.listNamespacedPod({ namespace: 'default' });
    const events: string[] = [];
    const controller = await new Watch(kc).watch(
      '/api/v1/namespaces/default/pods',
      { resourceVersion: list.metadata?.resourceVersion, labelSelector: 'app=watched' },
      (type: string, object: V1Pod) => events.push(`${type} ${object.metadata?.name ?? ''} ${object.metadata?.labels?.['v'] ?? ''}`.trim()),
      () => undefined,
    );
    await core.createNamespacedPod({ namespace: 'default', body: pod('w-1', { app: 'watched' }) });
    await core.createNamespacedPod({ namespace: 'default', body: pod('w-unwatched', { app: 'other' }) });
    const current = await core.readNamespacedPod({ name: 'w-1', namespace: 'default' });
    current.metadata = { ...current.metadata, labels: { app: 'watched', v: '2' } };
    await core.replaceNamespacedPod({ name: 'w-1', namespace: 'default', body: current });
    await core.deleteNamespacedPod({ name: 'w-1', namespace: 'default' });
    await waitFor('three watch events', () => events.length >= 3);
    assert.deepEqual(events, ['ADDED w-1', 'MODIFIED w-1 2', 'DELETED w-1 2']);
    controller.abort();
  });

  test('makeInformer lists, follows changes, and survives an apiserver restart on the same file and port', async () => {
    const path = '/api/v1/namespaces/default/pods';
    const informer = makeInformer<V1Pod>(kc, path, () => core.listNamespacedPod({ namespace: 'default', labelSelector: 'set=inf' }), 'set=inf');
    const adds = new Map<string, number>();
    const deletes = new Map<string, number>();
    const seen: string[] = [];
    const bump = (counts: Map<string, number>, object: V1Pod): void => {
      const name = object.metadata?.name ?? '';
      counts.set(name, (counts.get(name) ?? 0) + 1);
    };
    informer.on('add', (object) => {
      bump(adds, object);
      seen.push(`add ${object.metadata?.name ?? ''}`);
    });
    informer.on('update', (object) => seen.push(`update ${object.metadata?.name ?? ''}`));
    informer.on('delete', (object) => {
      bump(deletes, object);
      seen.push(`delete ${object.metadata?.name ?? ''}`);
    });
    let errors = 0;
    // client-node's informer stops on a connection error; its documented recipe is to start it again.
    let stopped = false;
    informer.on('error', () => {
      errors++;
      if (!stopped) setTimeout(() => void informer.start(), 100);
    });

    try {
      await core.createNamespacedPod({ namespace: 'default', body: pod('inf-0', { set: 'inf' }) });
      await informer.start();
      assert.deepEqual(seen, ['add inf-0'], 'the initial list arrives as adds');

      await core.createNamespacedPod({ namespace: 'default', body: pod('inf-1', { set: 'inf' }) });
      const current = await core.readNamespacedPod({ name: 'inf-0', namespace: 'default' });
      current.metadata = { ...current.metadata, labels: { set: 'inf', v: '2' } };
      await core.replaceNamespacedPod({ name: 'inf-0', namespace: 'default', body: current });
      await waitFor('the live add and update', () => seen.length >= 3);
      assert.deepEqual(seen, ['add inf-0', 'add inf-1', 'update inf-0']);

      // Right before the stop, then a restart on the same file and port, then more changes.
      await core.createNamespacedPod({ namespace: 'default', body: pod('inf-2', { set: 'inf' }) });
      await core.deleteNamespacedPod({ name: 'inf-1', namespace: 'default' });
      await stop();
      await sleep(300);
      await start();
      await core.createNamespacedPod({ namespace: 'default', body: pod('inf-3', { set: 'inf' }) });
      await core.deleteNamespacedPod({ name: 'inf-0', namespace: 'default' });

      let want: [string, string | undefined][] = [];
      await waitFor('the informer cache to equal a fresh list', async () => {
        want = versions((await core.listNamespacedPod({ namespace: 'default', labelSelector: 'set=inf' })).items);
        return JSON.stringify(versions(informer.list())) === JSON.stringify(want);
      }, 20_000).catch(() => assert.deepEqual(versions(informer.list()), want));
      assert.deepEqual(want.map(([key]) => key), ['default/inf-2', 'default/inf-3']);
      for (const name of ['inf-0', 'inf-1', 'inf-2', 'inf-3']) assert.equal(adds.get(name), 1, `one add for ${name}`);
      assert.deepEqual([...deletes].sort(), [['inf-0', 1], ['inf-1', 1]]);
      assert.ok(errors >= 1, 'the restart was noticed as a broken watch');
    } finally {
      stopped = true;
      await informer.stop();
    }
  });

  test('makeInformer with a writer racing two restarts: every create seen once as add, every delete once', async () => {
    const informer = makeInformer<V1Pod>(kc, '/api/v1/namespaces/default/pods', () => core.listNamespacedPod({ namespace: 'default', labelSelector: 'set=race' }), 'set=race');
    const adds = new Map<string, number>();
    const deletes = new Map<string, number>();
    informer.on('add', (object) => adds.set(object.metadata?.name ?? '', (adds.get(object.metadata?.name ?? '') ?? 0) + 1));
    informer.on('delete', (object) => deletes.set(object.metadata?.name ?? '', (deletes.get(object.metadata?.name ?? '') ?? 0) + 1));
    let stopped = false;
    informer.on('error', () => {
      if (!stopped) setTimeout(() => void informer.start(), 100);
    });
    // Retries what failed because the apiserver was away; "already exists" / "not found" on a
    // retry mean the first attempt landed before its answer was lost.
    let retries = 0;
    const retry = async (what: () => Promise<unknown>, landed: number): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          await what();
          return;
        } catch (err) {
          const code = apiCode(err);
          if (attempt > 0 && code === landed) return;
          if ((code !== undefined && code < 500) || attempt > 500) throw err;
          retries++;
          await sleep(10);
        }
      }
    };
    try {
      await informer.start();
      const created: string[] = [];
      const deleted: string[] = [];
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const name = `race-${i}`;
          await retry(() => core.createNamespacedPod({ namespace: 'default', body: pod(name, { set: 'race' }) }), 409);
          created.push(name);
          if (i % 2 === 0) {
            await retry(() => core.deleteNamespacedPod({ name, namespace: 'default' }), 404);
            deleted.push(name);
          }
        }
      })();
      for (let restart = 0; restart < 2; restart++) {
        await sleep(200);
        await stop();
        await sleep(50);
        await start();
      }
      await sleep(200);
      writing = false;
      await writer;
      assert.ok(created.length >= 3, `the writer made progress (${created.length})`);
      assert.ok(retries > 0, 'some writes raced a restart');

      let want: [string, string | undefined][] = [];
      await waitFor('the informer cache to equal a fresh list', async () => {
        want = versions((await core.listNamespacedPod({ namespace: 'default', labelSelector: 'set=race' })).items);
        return JSON.stringify(versions(informer.list())) === JSON.stringify(want);
      }, 20_000).catch(() => assert.deepEqual(versions(informer.list()), want));
      assert.equal(want.length, created.length - deleted.length);
      assert.deepEqual(created.filter((name) => adds.get(name) !== 1), [], 'creates not seen exactly once');
      assert.deepEqual(deleted.filter((name) => deletes.get(name) !== 1), [], 'deletes not seen exactly once');
      assert.equal([...deletes.values()].reduce((a, b) => a + b, 0), deleted.length, 'no spurious deletes');
    } finally {
      stopped = true;
      await informer.stop();
    }
  });
});
