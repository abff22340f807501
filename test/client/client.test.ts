/**
 * KubeClient against an in-process apiserver over each transport it supports: plain http,
 * https with the cluster CA and a bearer token, and the unix socket. The same verb suite runs
 * on all three so a transport cannot silently lose a header, a body or the watch stream.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeObject, WatchEvent } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Deployment, Pod } from '../../src/api/types.js';
import { ensurePki } from '../../src/apiserver/pki.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { SqliteStore } from '../../src/apiserver/store/sqlite.js';
import { ApiError, isConflict, isGone, isNotFound } from '../../src/client/api.js';
import { clientFromFlags, ClientConfigError, KubeClient, loadKubeconfig, type ClientConfig } from '../../src/client/client.js';
import { configMap, podObject, startServer, tempDir, waitFor } from './harness.js';

const TOKEN = 'admintoken-0123456789';

interface Transport {
  name: string;
  /** Starts a server and returns the config an authorised client uses. */
  start(dir: string): Promise<{ server: RunningApiServer; config: ClientConfig }>;
}

const transports: Transport[] = [
  {
    name: 'http',
    async start() {
      const server = await startServer({ store: SqliteStore.open(':memory:'), closeStore: true });
      return { server, config: { server: server.url } };
    },
  },
  {
    name: 'https with CA and token',
    async start(dir) {
      const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
      const tokensFile = join(dir, 'tokens.csv');
      writeFileSync(tokensFile, `${TOKEN},admin,1,"system:masters"\n`);
      const server = await startServer({
        store: SqliteStore.open(':memory:'),
        closeStore: true,
        tokensFile,
        tlsCertFile: pki.certPath,
        tlsKeyFile: pki.keyPath,
      });
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      return { server, config: { server: server.url, ca: pki.caPem, token: TOKEN } };
    },
  },
  {
    name: 'unix socket',
    async start(dir) {
      const socketPath = join(dir, 'apiserver.sock');
      const server = await startServer({ store: SqliteStore.open(':memory:'), closeStore: true, listen: false, socketPath });
      assert.equal(server.url, `unix:${socketPath}`);
      // The URL form with an empty authority names the same socket.
      assert.equal((await new KubeClient({ server: `unix://${socketPath}` }).requestText('GET', '/healthz')).trim(), 'ok');
      return { server, config: { server: `unix:${socketPath}` } };
    },
  },
];

for (const transport of transports) {
  describe(`KubeClient over ${transport.name}`, () => {
    const dir = tempDir('client');
    let server: RunningApiServer;
    let client: KubeClient;
    before(async () => {
      const started = await transport.start(dir.path);
      server = started.server;
      client = new KubeClient(started.config);
    });
    after(async () => {
      await server?.close();
      dir.remove();
    });

    test('get answers undefined for a missing object and the object once created', async () => {
      assert.equal(await client.get(RESOURCE.pods, 'nope', 'default'), undefined);
      const created = await client.create<Pod>(RESOURCE.pods, podObject('get-me'));
      assert.equal(created.kind, 'Pod');
      assert.equal(created.apiVersion, 'v1');
      assert.ok(created.metadata.uid, 'the server stamps a uid');
      assert.ok(created.metadata.resourceVersion);
      assert.ok(created.metadata.creationTimestamp);
      const read = await client.get<Pod>(RESOURCE.pods, 'get-me', 'default');
      assert.equal(read?.metadata.uid, created.metadata.uid);
      assert.equal(read?.spec.containers[0]?.image, 'busybox');
    });

    test('create fills in apiVersion and kind the caller left out, and reports AlreadyExists', async () => {
      const bare = { metadata: { name: 'bare', namespace: 'default' }, data: { a: '1' } } as KubeObject;
      const created = await client.create(RESOURCE.configmaps, bare);
      assert.equal(created.kind, 'ConfigMap');
      await assert.rejects(client.create(RESOURCE.configmaps, bare), (err: unknown) => err instanceof ApiError && err.code === 409 && err.reason === 'AlreadyExists');
      // Cluster-scoped objects go to a path without a namespace.
      const ns = await client.create(RESOURCE.namespaces, { metadata: { name: 'team-a' } });
      assert.equal(ns.metadata.name, 'team-a');
      assert.ok(await client.get(RESOURCE.namespaces, 'team-a'));
    });

    test('a 422 Invalid answer arrives as an ApiError carrying the Status causes', async () => {
      const invalidPod = { metadata: { name: 'Bad_Name', namespace: 'default' }, spec: { containers: [] } } as KubeObject;
      await assert.rejects(client.create(RESOURCE.pods, invalidPod), (err: unknown) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.code, 422);
        assert.equal(err.reason, 'Invalid');
        assert.ok((err.status.details?.causes ?? []).length > 0, 'causes are passed through');
        return true;
      });
      assert.equal(await client.get(RESOURCE.pods, 'Bad_Name', 'default'), undefined);
    });

    test('list filters by label selectors (equality and set-based) and field selectors', async () => {
      await client.create(RESOURCE.pods, podObject('sel-a1', { labels: { app: 'a', tier: 'web' } }));
      await client.create(RESOURCE.pods, podObject('sel-a2', { labels: { app: 'a', tier: 'db' } }));
      await client.create(RESOURCE.pods, podObject('sel-b1', { labels: { app: 'b' }, nodeName: 'node-1' }));
      const names = (list: { items: Pod[] }): string[] => list.items.map((p) => p.metadata.name ?? '').sort();

      const all = await client.list<Pod>(RESOURCE.pods, 'default');
      assert.equal(all.kind, 'PodList');
      assert.ok(all.metadata.resourceVersion, 'lists carry the resourceVersion to watch from');
      assert.ok(names(all).includes('sel-b1'));
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=a' })), ['sel-a1', 'sel-a2']);
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=a,tier!=db' })), ['sel-a1']);
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app in (a,b),tier notin (web)' })), ['sel-a2', 'sel-b1']);
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'default', { fieldSelector: 'metadata.name=sel-a2' })), ['sel-a2']);
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'default', { fieldSelector: 'spec.nodeName=node-1' })), ['sel-b1']);
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, undefined, { labelSelector: 'app=b', fieldSelector: 'spec.nodeName=node-1' })), ['sel-b1'], 'all namespaces');
      assert.deepEqual(names(await client.list<Pod>(RESOURCE.pods, 'team-none', { labelSelector: 'app=a' })), []);
      await assert.rejects(client.list(RESOURCE.pods, 'default', { labelSelector: 'app in (a' }), (err: unknown) => err instanceof ApiError && err.code === 400);
    });

    test('update with a stale resourceVersion is a Conflict; with the current one it succeeds', async () => {
      const created = await client.create(RESOURCE.configmaps, configMap('cm-update', { v: '1' }));
      const first = await client.update(RESOURCE.configmaps, { ...created, data: { v: '2' } });
      assert.deepEqual(first['data'], { v: '2' });
      assert.notEqual(first.metadata.resourceVersion, created.metadata.resourceVersion);
      await assert.rejects(client.update(RESOURCE.configmaps, { ...created, data: { v: 'stale' } }), (err: unknown) => {
        assert.ok(isConflict(err), `want a Conflict, got ${String(err)}`);
        return true;
      });
      const current = await client.get(RESOURCE.configmaps, 'cm-update', 'default');
      assert.deepEqual(current?.['data'], { v: '2' }, 'the stale write stored nothing');
      await assert.rejects(client.update(RESOURCE.configmaps, configMap('cm-missing', {})), (err: unknown) => isNotFound(err));
      assert.throws(() => client.update(RESOURCE.configmaps, { metadata: {} }), ClientConfigError);
    });

    test('patch: JSON merge, strategic merge (lists merged by key) and JSON patch', async () => {
      await client.create(RESOURCE.configmaps, configMap('cm-patch', { a: '1', b: '2' }));
      const merged = await client.patch(RESOURCE.configmaps, 'cm-patch', 'default', { data: { b: null, c: '3' } }, 'merge');
      assert.deepEqual(merged['data'], { a: '1', c: '3' });
      const jsonPatched = await client.patch(RESOURCE.configmaps, 'cm-patch', 'default', [
        { op: 'replace', path: '/data/a', value: 'one' },
        { op: 'add', path: '/metadata/labels', value: { patched: 'yes' } },
      ], 'json');
      assert.deepEqual(jsonPatched['data'], { a: 'one', c: '3' });
      assert.deepEqual(jsonPatched.metadata.labels, { patched: 'yes' });
      await assert.rejects(
        client.patch(RESOURCE.configmaps, 'cm-patch', 'default', [{ op: 'test', path: '/data/a', value: 'other' }], 'json'),
        (err: unknown) => err instanceof ApiError && err.code >= 400 && err.code < 500,
      );

      const deployment: Deployment = {
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'web', image: 'busybox:1', ports: [{ containerPort: 8080 }] }] },
          },
        },
      } as Deployment;
      await client.create(RESOURCE.deployments, deployment);
      const sidecar = { spec: { template: { spec: { containers: [{ name: 'sidecar', image: 'busybox:2' }] } } } };
      const strategic = await client.patch<Deployment>(RESOURCE.deployments, 'web', 'default', sidecar, 'strategic');
      const containers = strategic.spec.template.spec?.containers ?? [];
      assert.deepEqual(containers.map((c) => c.name).sort(), ['sidecar', 'web'], 'strategic merge keeps the existing container');
      assert.deepEqual(containers.find((c) => c.name === 'web')?.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
      const plainMerge = await client.patch<Deployment>(RESOURCE.deployments, 'web', 'default', sidecar, 'merge');
      assert.deepEqual((plainMerge.spec.template.spec?.containers ?? []).map((c) => c.name), ['sidecar'], 'a JSON merge patch replaces lists');
    });

    test('delete resolves true, then false once the object is gone', async () => {
      await client.create(RESOURCE.configmaps, configMap('cm-delete', {}));
      assert.equal(await client.delete(RESOURCE.configmaps, 'cm-delete', 'default'), true);
      assert.equal(await client.get(RESOURCE.configmaps, 'cm-delete', 'default'), undefined);
      assert.equal(await client.delete(RESOURCE.configmaps, 'cm-delete', 'default'), false);
      // DeleteOptions travel in the body: a precondition on a wrong uid is refused.
      await client.create(RESOURCE.configmaps, configMap('cm-precondition', {}));
      await assert.rejects(
        client.delete(RESOURCE.configmaps, 'cm-precondition', 'default', { preconditions: { uid: 'not-the-uid' } }),
        (err: unknown) => err instanceof ApiError && err.code === 409,
      );
      assert.ok(await client.get(RESOURCE.configmaps, 'cm-precondition', 'default'));
    });

    test('bind sets the node of an unscheduled pod once', async () => {
      await client.create(RESOURCE.pods, podObject('to-bind'));
      await client.bind('default', 'to-bind', 'node-7');
      const bound = await client.get<Pod>(RESOURCE.pods, 'to-bind', 'default');
      assert.equal(bound?.spec.nodeName, 'node-7');
      assert.equal(bound?.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status, 'True');
      await assert.rejects(client.bind('default', 'to-bind', 'node-8'), (err: unknown) => err instanceof ApiError && err.code === 409);
      await assert.rejects(client.bind('default', 'no-such-pod', 'node-8'), (err: unknown) => isNotFound(err));
    });

    test('the status subresource writes status only', async () => {
      const created = await client.create<Pod>(RESOURCE.pods, podObject('with-status'));
      const withStatus = {
        ...created,
        spec: { ...created.spec, containers: [{ name: 'c', image: 'changed-through-status' }] },
        status: { phase: 'Running', podIP: '10.244.1.5' },
      } as Pod;
      const updated = await client.update<Pod>(RESOURCE.pods, withStatus, 'status');
      assert.equal(updated.status?.phase, 'Running');
      assert.equal(updated.status?.podIP, '10.244.1.5');
      assert.equal(updated.spec.containers[0]?.image, 'busybox', 'spec is not written through status');
      const patched = await client.patch<Pod>(RESOURCE.pods, 'with-status', 'default', { status: { phase: 'Succeeded' }, metadata: { labels: { x: 'y' } } }, 'merge', 'status');
      assert.equal(patched.status?.phase, 'Succeeded');
      assert.equal(patched.status?.podIP, '10.244.1.5');
      // A status write with a stale resourceVersion conflicts like any update.
      await assert.rejects(client.update(RESOURCE.pods, withStatus, 'status'), (err: unknown) => isConflict(err));
    });

    test('watch streams ADDED, MODIFIED and DELETED from a list resourceVersion, then stops', async () => {
      const list = await client.list(RESOURCE.configmaps, 'default');
      const events: WatchEvent<KubeObject>[] = [];
      let closed: unknown = 'open';
      const handle = client.watch<KubeObject>(
        RESOURCE.configmaps,
        'default',
        { resourceVersion: list.metadata.resourceVersion, labelSelector: 'watched=yes' },
        { onEvent: (event) => events.push(event), onClose: (err) => (closed = err) },
      );
      const created = await client.create(RESOURCE.configmaps, configMap('cm-watch', { v: '1' }, { watched: 'yes' }));
      await client.create(RESOURCE.configmaps, configMap('cm-unwatched', { v: '1' }));
      await client.update(RESOURCE.configmaps, { ...created, data: { v: '2' } });
      await client.delete(RESOURCE.configmaps, 'cm-watch', 'default');
      await waitFor('three watch events', () => events.length >= 3);
      assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED cm-watch', 'MODIFIED cm-watch', 'DELETED cm-watch']);
      assert.deepEqual(events[1]?.object['data'], { v: '2' });
      handle.stop();
      await client.create(RESOURCE.configmaps, configMap('cm-after-stop', {}, { watched: 'yes' }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(events.length, 3, 'nothing arrives after stop()');
      assert.equal(closed, 'open', 'stop() does not report a close');
    });

    test('watch without a resourceVersion starts with ADDED for every existing object; a timeout ends it cleanly', async () => {
      const events: WatchEvent<KubeObject>[] = [];
      const closedWith = await new Promise<unknown>((resolve) => {
        client.watch<KubeObject>(RESOURCE.pods, 'default', { fieldSelector: 'metadata.name=get-me', timeoutSeconds: 1 }, {
          onEvent: (event) => events.push(event),
          onClose: resolve,
        });
      });
      assert.equal(closedWith, undefined, 'a server timeout is a clean end');
      assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED get-me']);
    });

    test('requestText reads /readyz and /version', async () => {
      assert.equal((await client.requestText('GET', '/readyz')).trim(), 'ok');
      const version = await client.request<{ major: string; minor: string }>('GET', '/version');
      assert.equal(version.major, '1');
      await assert.rejects(client.requestText('GET', '/no/such/path'), (err: unknown) => isNotFound(err));
    });
  });
}

describe('KubeClient watch from a compacted resourceVersion', () => {
  let server: RunningApiServer;
  before(async () => {
    server = await startServer({ store: SqliteStore.open(':memory:', { historyLimit: 5 }), closeStore: true });
  });
  after(() => server?.close());

  test('closes with a 410 ApiError that isGone() recognises', async () => {
    const client = new KubeClient({ server: server.url });
    const first = await client.create(RESOURCE.configmaps, configMap('compact-0', {}));
    for (let i = 1; i <= 20; i++) await client.create(RESOURCE.configmaps, configMap(`compact-${i}`, {}));
    const events: WatchEvent<KubeObject>[] = [];
    const closedWith = await new Promise<unknown>((resolve) => {
      client.watch(RESOURCE.configmaps, 'default', { resourceVersion: first.metadata.resourceVersion }, { onEvent: (e) => events.push(e), onClose: resolve });
    });
    assert.ok(isGone(closedWith), `want 410 Gone, got ${String(closedWith)}`);
    assert.equal((closedWith as ApiError).code, 410);
    assert.deepEqual(events, []);
  });
});

describe('KubeClient TLS and token checks', () => {
  const dir = tempDir('client-tls');
  let server: RunningApiServer;
  let caPem: string;
  let otherCaPem: string;
  before(async () => {
    const pki = ensurePki(join(dir.path, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    caPem = pki.caPem;
    otherCaPem = ensurePki(join(dir.path, 'other-pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] }).caPem;
    const tokensFile = join(dir.path, 'tokens.csv');
    writeFileSync(tokensFile, `${TOKEN},admin,1,"system:masters"\n`);
    server = await startServer({ store: SqliteStore.open(':memory:'), closeStore: true, tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath });
  });
  after(async () => {
    await server?.close();
    dir.remove();
  });

  test('anonymous clients may neither read nor write objects (403), and get discovery', async () => {
    const anonymous = new KubeClient({ server: server.url, ca: caPem });
    await assert.rejects(anonymous.list(RESOURCE.pods, 'default'), (err: unknown) => err instanceof ApiError && err.code === 403 && err.status.reason === 'Forbidden');
    assert.match(await anonymous.requestText('GET', '/version'), /"major"/);
    await assert.rejects(anonymous.create(RESOURCE.pods, podObject('anon')), (err: unknown) => {
      assert.ok(err instanceof ApiError, String(err));
      assert.ok(err.code === 401 || err.code === 403, `got ${err.code}`);
      assert.equal(err.status.kind, 'Status');
      return true;
    });
    await assert.rejects(anonymous.delete(RESOURCE.namespaces, 'default'), (err: unknown) => err instanceof ApiError && (err.code === 401 || err.code === 403));
    const admin = new KubeClient({ server: server.url, ca: caPem, token: TOKEN });
    assert.equal(await admin.get(RESOURCE.pods, 'anon', 'default'), undefined, 'the refused write stored nothing');
    assert.ok(await admin.get(RESOURCE.namespaces, 'default'));
  });

  test('a wrong token is a 401 even for reads', async () => {
    const wrong = new KubeClient({ server: server.url, ca: caPem, token: 'not-a-token' });
    await assert.rejects(wrong.list(RESOURCE.pods, 'default'), (err: unknown) => err instanceof ApiError && err.code === 401);
  });

  test('the server certificate is verified against the given CA', async () => {
    const untrusted = new KubeClient({ server: server.url, ca: otherCaPem, token: TOKEN });
    await assert.rejects(untrusted.list(RESOURCE.pods, 'default'), (err: unknown) => !(err instanceof ApiError) && /certificate|self.signed|verify/i.test(String(err)));
    const noCa = new KubeClient({ server: server.url, token: TOKEN });
    await assert.rejects(noCa.list(RESOURCE.pods, 'default'), (err: unknown) => !(err instanceof ApiError));
    const skip = new KubeClient({ server: server.url, token: TOKEN, insecureSkipTlsVerify: true });
    assert.equal((await skip.list(RESOURCE.pods, 'default')).kind, 'PodList');
    // The certificate names 127.0.0.1 and localhost: both verify.
    const byName = new KubeClient({ server: server.url.replace('127.0.0.1', 'localhost'), ca: caPem, token: TOKEN });
    assert.equal((await byName.list(RESOURCE.pods, 'default')).kind, 'PodList');
  });

  test('loadKubeconfig reads a kubectl-style YAML kubeconfig with inline CA data and a token', async () => {
    const path = join(dir.path, 'kubeconfig.yaml');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: pontoon',
        'clusters:',
        '- name: elsewhere',
        '  cluster:',
        '    server: https://192.0.2.1:6443',
        '- name: pontoon',
        '  cluster:',
        `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`,
        `    server: ${server.url}`,
        'contexts:',
        '- name: other',
        '  context:',
        '    cluster: elsewhere',
        '    user: nobody',
        '- name: pontoon',
        '  context:',
        '    cluster: pontoon',
        '    user: admin',
        'users:',
        '- name: nobody',
        '  user: {}',
        '- name: admin',
        '  user:',
        `    token: ${TOKEN}`,
        '',
      ].join('\n'),
    );
    const config = loadKubeconfig(path);
    assert.equal(config.server, server.url);
    assert.equal(config.ca, caPem);
    assert.equal(config.token, TOKEN);
    const client = new KubeClient(config);
    const created = await client.create(RESOURCE.configmaps, configMap('from-yaml-kubeconfig', { a: 'b' }));
    assert.ok(created.metadata.uid);
    const other = loadKubeconfig(path, 'other');
    assert.equal(other.server, 'https://192.0.2.1:6443');
    assert.equal(other.token, undefined);
  });

  test('loadKubeconfig reads a JSON kubeconfig with the CA and token in files beside it', async () => {
    writeFileSync(join(dir.path, 'ca.pem'), caPem);
    writeFileSync(join(dir.path, 'token'), `${TOKEN}\n`);
    const path = join(dir.path, 'kubeconfig.json');
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'ctx',
        clusters: [{ name: 'c', cluster: { server: server.url, 'certificate-authority': 'ca.pem' } }],
        users: [{ name: 'u', user: { tokenFile: 'token' } }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      }),
    );
    const config = loadKubeconfig(path);
    assert.deepEqual(config, { server: server.url, ca: caPem, token: TOKEN });
    assert.ok(await new KubeClient(config).create(RESOURCE.configmaps, configMap('from-json-kubeconfig', {})));

    const fromFlags = clientFromFlags({ kubeconfig: path }, 'client-test');
    assert.equal(fromFlags.config.userAgent, 'client-test');
    assert.equal((await fromFlags.list(RESOURCE.configmaps, 'default', { fieldSelector: 'metadata.name=from-json-kubeconfig' })).items.length, 1);
    const overridden = clientFromFlags({ kubeconfig: path, token: 'not-a-token' });
    await assert.rejects(overridden.list(RESOURCE.pods, 'default'), (err: unknown) => err instanceof ApiError && err.code === 401);
  });

  test('configuration errors are ClientConfigErrors', () => {
    assert.throws(() => loadKubeconfig(join(dir.path, 'missing.yaml')), ClientConfigError);
    const noServer = join(dir.path, 'no-server.yaml');
    writeFileSync(noServer, 'apiVersion: v1\nkind: Config\nclusters: []\n');
    assert.throws(() => loadKubeconfig(noServer), ClientConfigError);
    assert.throws(() => new KubeClient({ server: 'ftp://x' }), ClientConfigError);
    assert.throws(() => new KubeClient({ server: 'not a url' }), ClientConfigError);
    assert.throws(() => clientFromFlags({}), ClientConfigError);
  });
});
