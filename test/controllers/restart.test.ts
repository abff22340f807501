import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Deployment, Pod } from '../../src/api/types.js';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { ControllerManager } from '../../src/controllers/manager.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { createNode, FakeKubelet, log, waitFor } from './harness.js';

describe('controllers across an apiserver restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-cm-'));
  const socketPath = join(dir, 'apiserver.sock');
  const store = `sqlite:${join(dir, 'state.db')}`;
  let server: RunningApiServer | undefined;
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a Deployment scaled while the apiserver was down converges once it is back', async () => {
    server = await startApiServer({ store, listen: false, socketPath, log });
    const api = new KubeClient({ server: `unix:${socketPath}` });
    const manager = new ControllerManager({ api, log, controllers: ['deployment', 'replicaset'] });
    const scheduler = new Scheduler({ api, log });
    const kubelet = new FakeKubelet(api);
    await manager.start();
    await scheduler.start();
    await kubelet.start();
    stops.push(() => manager.stop(), () => scheduler.stop(), () => kubelet.stop());
    await createNode(api, 'n1');
    const deployment: Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    };
    await api.create(RESOURCE.deployments, deployment);
    const available = async (n: number): Promise<boolean> => {
      const d = await api.get<Deployment>(RESOURCE.deployments, 'web', 'default');
      const pods = (await api.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=web' })).items.filter((p) => !p.metadata.deletionTimestamp);
      return d?.status?.availableReplicas === n && pods.length === n;
    };
    await waitFor('2 available', () => available(2));

    await server.close();
    server = undefined;
    // While it is down the daemons retry; then it comes back with the same store.
    await new Promise((resolve) => setTimeout(resolve, 300));
    server = await startApiServer({ store, listen: false, socketPath, log });
    await api.patch(RESOURCE.deployments, 'web', 'default', { spec: { replicas: 4 } }, 'merge');
    await waitFor('4 available after the restart', () => available(4), 30_000);
    const pods = (await api.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=web' })).items;
    assert.equal(pods.length, 4, 'no duplicates from replayed events');
  });
});
