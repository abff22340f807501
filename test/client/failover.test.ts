/**
 * KubeClient with several apiservers: it moves to the next one when the current one cannot be
 * reached (requests and watches), reads the kubeconfig's `pontoon.io/servers` extension, and
 * does not re-send a POST whose connection broke after it was sent.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { KubeClient, loadKubeconfig, serversOf } from '../../src/client/client.js';
import { kubeconfigText } from '../../src/cli/cluster/control-plane.js';
import { configMap, startServer, tempDir, waitFor } from './harness.js';

const dir = tempDir('client-failover');
let server: RunningApiServer;
const deadSocket = join(dir.path, 'gone.sock');

before(async () => {
  server = await startServer({ store: 'memory:', socketPath: join(dir.path, 'api.sock') });
});

after(async () => {
  await server?.close();
  dir.remove();
});

test('a request to an unreachable first server goes to the next, and the client stays there', async () => {
  const client = new KubeClient({ server: `unix:${deadSocket},unix:${server.socketPath}` });
  await client.create(RESOURCE.configmaps, configMap('failover-a', { k: 'v' }));
  assert.equal(client.server, `unix:${server.socketPath}`);
  assert.equal((await client.get(RESOURCE.configmaps, 'failover-a', 'default'))?.metadata.name, 'failover-a');
});

test('with every server unreachable the request fails instead of looping', async () => {
  const client = new KubeClient({ server: `unix:${deadSocket},unix:${join(dir.path, 'also-gone.sock')}` });
  await assert.rejects(client.list(RESOURCE.configmaps, 'default'), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' || err.code === 'ECONNREFUSED');
});

test('a watch that cannot connect moves the client, so the re-watch reaches the other server', async () => {
  const client = new KubeClient({ server: `unix:${deadSocket},unix:${server.socketPath}` });
  const closed = await new Promise<unknown>((resolve) => {
    client.watch(RESOURCE.configmaps, 'default', {}, { onEvent: () => undefined, onClose: resolve });
  });
  assert.ok(closed instanceof Error, 'the first watch fails');
  assert.equal(client.server, `unix:${server.socketPath}`);
  const names: string[] = [];
  const handle = client.watch(RESOURCE.configmaps, 'default', { resourceVersion: '0' }, { onEvent: (e) => names.push(e.object.metadata.name ?? ''), onClose: () => undefined });
  await client.create(RESOURCE.configmaps, configMap('failover-w', { k: 'v' }));
  await waitFor('the watch event from the second server', () => names.includes('failover-w'));
  handle.stop();
});

test('the kubeconfig extension adds servers after `server`, which stays what kubectl uses', () => {
  const path = join(dir.path, 'kubeconfig');
  writeFileSync(path, kubeconfigText({ cluster: 'c', server: `unix:${deadSocket}`, token: 't', failoverServers: [`unix:${server.socketPath}`] }));
  const config = loadKubeconfig(path);
  assert.equal(config.server, `unix:${deadSocket}`);
  assert.deepEqual(serversOf(config), [`unix:${deadSocket}`, `unix:${server.socketPath}`]);
});

test('a POST whose connection broke after it was sent is not re-sent to the next server', async () => {
  // A "server" that takes the request and drops the connection without answering: the POST
  // may have been applied there, so sending it again elsewhere could create it twice.
  const sockets = new Set<Socket>();
  const breaker = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', () => socket.destroy());
  });
  const breakerSocket = join(dir.path, 'breaker.sock');
  await new Promise<void>((resolve) => breaker.listen(breakerSocket, resolve));
  try {
    const client = new KubeClient({ server: `unix:${breakerSocket},unix:${server.socketPath}` });
    await assert.rejects(client.create(RESOURCE.configmaps, configMap('failover-once', { k: 'v' })));
    assert.equal(await client.get(RESOURCE.configmaps, 'failover-once', 'default'), undefined, 'the POST did not reach the second server');
    // A read after the failure is repeatable and goes to the next server.
    assert.equal(client.server, `unix:${server.socketPath}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => breaker.close(() => resolve()));
  }
});
