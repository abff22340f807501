/**
 * The kubelet before the pod network exists, as upstream: the Node is NotReady with reason
 * NetworkPluginNotReady until a conflist is in its conf dir; hostNetwork pods (the agents
 * that install it) run regardless; other pods wait with a NetworkNotReady event and start
 * once `pontoon install-cni` has written the conflist.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Event, Node, NodeCondition, Pod } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { Kubelet } from '../../src/kubelet/kubelet.js';
import { createLogger } from '../../src/lib/log.js';
import { ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { BUSYBOX, eventually, kubeletNode, type KubeletNode, makePod, NODE_IP } from './helpers.js';

const lab = new Lab('netready');
const log = createLogger('kubelet-netready-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' });
let apiserver: RunningApiServer;
let api: KubeClient;
let node: KubeletNode;
let kubelet: Kubelet;
let confDir: string;
let binDir: string;

const readyCondition = async (): Promise<NodeCondition | undefined> => (await api.get<Node>(RESOURCE.nodes, 'n1'))?.status?.conditions?.find((c) => c.type === 'Ready');

async function createPod(pod: Pod): Promise<void> {
  const { uid: _uid, ...metadata } = pod.metadata;
  await api.create<Pod>(RESOURCE.pods, { ...pod, metadata, spec: { ...pod.spec, containers: pod.spec.containers.map((c) => ({ image: 'busybox', ...c })), nodeName: 'n1' } });
}

function installCni(args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, [join(ROOT, 'dist/cli/pontoon.cjs'), 'install-cni', ...args], { encoding: 'utf8' });
}

describe('kubelet without a pod network yet', () => {
  before(async () => {
    apiserver = await startApiServer({ store: 'memory:', listen: '127.0.0.1:0', log });
    api = new KubeClient({ server: apiserver.url });
    node = kubeletNode(lab, 'n1', 94);
    confDir = join(lab.tempDir('netd'), 'net.d');
    binDir = join(lab.tempDir('bin'), 'opt-cni-bin');
    kubelet = new Kubelet({
      api,
      nodeName: 'n1',
      nodeIP: NODE_IP,
      rootDir: node.rootDir,
      cniConfDir: confDir,
      // The installed copies first: what install-cni puts there is what runs.
      cniBinDirs: [binDir, ...node.options.cniBinDirs],
      netnsPrefix: node.options.netnsPrefix ?? '',
      hostNetns: node.netns,
      maxPods: 110,
      statusIntervalMs: 300,
      leaseRenewIntervalMs: 500,
      resyncIntervalMs: 1000,
      backoffBaseMs: 300,
      backoffCapMs: 2000,
      log,
    });
    await kubelet.start();
  });

  after(async () => {
    await kubelet.stop().catch(() => undefined);
    for (const uid of kubelet.runtime.uids()) await kubelet.runtime.killPod(uid, 0).catch(() => undefined);
    await apiserver.close();
    lab.cleanup();
  });

  test('NotReady with NetworkPluginNotReady; hostNetwork pods run, others wait with NetworkNotReady', async () => {
    const ready = await readyCondition();
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'NetworkPluginNotReady');
    assert.match(ready?.message ?? '', /cni config uninitialized/);

    await createPod(makePod('agent', [{ name: 'a', command: [BUSYBOX, 'sleep', '100000'] }], { hostNetwork: true }));
    await createPod(makePod('app', [{ name: 'a', command: [BUSYBOX, 'sleep', '100000'] }]));
    const agent = await eventually('the hostNetwork pod Running', 15_000, async () => {
      const pod = await api.get<Pod>(RESOURCE.pods, 'agent', 'default');
      return pod?.status?.phase === 'Running' && pod;
    });
    assert.equal(agent.status?.podIP, NODE_IP);
    await eventually('a NetworkNotReady event for the pod-network pod', 15_000, async () =>
      (await api.list<Event>(RESOURCE.events, 'default')).items.some((e) => e.involvedObject.name === 'app' && e.reason === 'NetworkNotReady'),
    );
    const app = await api.get<Pod>(RESOURCE.pods, 'app', 'default');
    assert.equal(app?.status?.podIP, undefined);
    assert.notEqual(app?.status?.phase, 'Running');
  });

  test('install-cni refuses a broken conflist and writes nothing', () => {
    const bad = join(lab.tempDir('cfg'), 'cni-conf.json');
    writeFileSync(bad, '{"cniVersion":"1.0.0","name":"x","plugins":[{"notype":1}]}');
    const result = installCni(['--cni-conf', bad, '--cni-conf-dir', confDir, '--cni-bin-dir', binDir]);
    assert.notEqual(result.status, 0);
    assert.match(String(result.stderr), /plugins\[0\] has no "type"/);
    assert.ok(!existsSync(confDir) || readdirSync(confDir).length === 0);
  });

  test('after install-cni the node turns Ready and the waiting pod starts on the pod network', async () => {
    const cfg = lab.tempDir('cfg');
    mkdirSync(cfg, { recursive: true });
    const conflist = {
      cniVersion: '1.0.0',
      name: 'ptnetready',
      plugins: [{ type: 'pontoon-bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'pontoon-ipam', ranges: [[{ subnet: node.subnet }]], dataDir: node.ipamDir } }],
    };
    writeFileSync(join(cfg, 'cni-conf.json'), JSON.stringify(conflist));
    const result = installCni(['--cni-conf', join(cfg, 'cni-conf.json'), '--cni-conf-dir', confDir, '--cni-bin-dir', binDir]);
    assert.equal(result.status, 0, String(result.stderr));
    assert.ok(existsSync(join(binDir, 'pontoon-bridge')));
    assert.deepEqual(readdirSync(confDir), ['10-pontoon.conflist']);

    await eventually('the Node Ready', 15_000, async () => (await readyCondition())?.status === 'True');
    const app = await eventually('the waiting pod Running with a pod IP', 20_000, async () => {
      const pod = await api.get<Pod>(RESOURCE.pods, 'app', 'default');
      return pod?.status?.phase === 'Running' && pod.status.podIP !== undefined && pod;
    });
    assert.match(app.status?.podIP ?? '', /^10\.94\.0\.\d+$/);
  });
});
