/**
 * The node agent against an in-process apiserver: Node registration and heartbeats, the
 * Lease, pods from create to Running with an IP and back through graceful deletion, logs
 * through the apiserver's pods/log proxy, events, and a kubelet restart that adopts what
 * still runs and cleans what was deleted meanwhile.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Event, Lease, Node, Pod } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { Kubelet, type KubeletOptions } from '../../src/kubelet/kubelet.js';
import { KUBELET_SOCKET_ANNOTATION, KUBELET_VERSION } from '../../src/kubelet/node.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import type { PodRecord } from '../../src/kubelet/state.js';
import { createLogger } from '../../src/lib/log.js';
import { listNetns } from '../../src/lib/netns.js';
import { Lab } from '../helpers/lab.js';
import { BUSYBOX, eventually, kubeletNode, type KubeletNode, makePod, NODE_IP } from './helpers.js';

const lab = new Lab('kagent');
const log = createLogger('kubelet-agent-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' });
let apiserver: RunningApiServer;
let api: KubeClient;
let node: KubeletNode;
let kubelet: Kubelet;
const kubelets: Kubelet[] = [];

function startKubelet(extra: Partial<KubeletOptions> = {}): Kubelet {
  const k = new Kubelet({
    api,
    nodeName: 'n1',
    nodeIP: NODE_IP,
    rootDir: node.rootDir,
    cniConfDir: node.confDir,
    cniBinDirs: node.options.cniBinDirs,
    netnsPrefix: node.options.netnsPrefix ?? '',
    hostNetns: node.netns,
    maxPods: 110,
    statusIntervalMs: 500,
    leaseRenewIntervalMs: 500,
    resyncIntervalMs: 1000,
    backoffBaseMs: 300,
    backoffCapMs: 2000,
    log,
    ...extra,
  });
  kubelets.push(k);
  return k;
}



async function podNamed(name: string): Promise<Pod | undefined> {
  return api.get<Pod>(RESOURCE.pods, name, 'default');
}

async function waitForPod(name: string, what: string, check: (pod: Pod) => boolean, timeoutMs = 15_000): Promise<Pod> {
  const deadline = Date.now() + timeoutMs;
  let last: Pod | undefined;
  while (Date.now() < deadline) {
    last = await podNamed(name);
    if (last && check(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for pod ${name} ${what}: ${JSON.stringify(last?.status, null, 1)}`);
}

async function createPod(pod: Pod): Promise<Pod> {
  const { uid: _uid, ...metadata } = pod.metadata;
  // The apiserver requires an image; the kubelet only records it.
  const containers = pod.spec.containers.map((c) => ({ image: 'busybox', ...c }));
  return api.create<Pod>(RESOURCE.pods, { ...pod, metadata, spec: { ...pod.spec, containers, nodeName: 'n1' } });
}

const running = (pod: Pod): boolean => pod.status?.phase === 'Running' && pod.status.podIP !== undefined;
const sleepForever = [BUSYBOX, 'sleep', '100000'];

describe('kubelet node agent', () => {
  before(async () => {
    apiserver = await startApiServer({ store: 'memory:', listen: '127.0.0.1:0', log });
    api = new KubeClient({ server: apiserver.url });
    node = kubeletNode(lab, 'n1', 93);
    kubelet = startKubelet();
    await kubelet.start();
  });

  after(async () => {
    // Pods outlive their kubelet by design: stop the kubelets (no more syncs), then kill the pods.
    for (const k of kubelets) await k.stop().catch(() => undefined);
    const last = kubelets.at(-1);
    if (last) for (const uid of last.runtime.uids()) await last.runtime.killPod(uid, 0).catch(() => undefined);
    await apiserver.close();
    lab.cleanup();
  });

  test('registers its Node with labels, addresses, capacity, nodeInfo and the log socket; heartbeats and renews its Lease', async () => {
    const registered = await api.get<Node>(RESOURCE.nodes, 'n1');
    assert.ok(registered);
    assert.equal(registered.metadata.labels?.['kubernetes.io/hostname'], 'n1');
    assert.equal(registered.metadata.labels?.['kubernetes.io/os'], 'linux');
    assert.ok(registered.metadata.labels?.['kubernetes.io/arch']);
    assert.equal(registered.metadata.annotations?.[KUBELET_SOCKET_ANNOTATION], join(node.rootDir, 'kubelet.sock'));
    assert.deepEqual(registered.status?.addresses, [
      { type: 'InternalIP', address: NODE_IP },
      { type: 'Hostname', address: 'n1' },
    ]);
    assert.equal(registered.status?.capacity?.['pods'], '110');
    assert.equal(registered.status?.allocatable?.['pods'], '110');
    assert.ok(Number(registered.status?.capacity?.['cpu']) >= 1);
    assert.match(String(registered.status?.capacity?.['memory']), /^\d+Ki$/);
    assert.equal(registered.status?.nodeInfo?.['kubeletVersion'], KUBELET_VERSION);
    assert.match(registered.status?.nodeInfo?.['containerRuntimeVersion'] ?? '', /^pontoon:\/\//);
    assert.ok(registered.status?.nodeInfo?.['kernelVersion']);
    const ready = registered.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True');
    assert.equal(ready?.reason, 'KubeletReady');

    const lease = await eventually('the lease', 5000, () => api.get<Lease>(RESOURCE.leases, 'n1', 'kube-node-lease'));
    assert.equal(lease.spec?.holderIdentity, 'n1');
    assert.equal(lease.spec?.leaseDurationSeconds, 40);
    assert.equal(lease.metadata.ownerReferences?.[0]?.kind, 'Node');
    await eventually('renewTime to move', 4000, async () => (await api.get<Lease>(RESOURCE.leases, 'n1', 'kube-node-lease'))?.spec?.renewTime !== lease.spec?.renewTime);
    const beat = ready?.lastHeartbeatTime ?? '';
    const later = await eventually('a status heartbeat', 10_000, async () => {
      const condition = (await api.get<Node>(RESOURCE.nodes, 'n1'))?.status?.conditions?.find((c) => c.type === 'Ready');
      return condition?.lastHeartbeatTime !== beat && condition;
    });
    assert.equal(later?.lastTransitionTime, ready?.lastTransitionTime, 'no transition while Ready stays True');
  });

  test('a pod bound to the node runs: Running with an IP, Ready, events; logs through the apiserver', async () => {
    const www = lab.tempDir('www');
    writeFileSync(join(www, 'index.html'), 'agent\n');
    await createPod(
      makePod('web', [
        {
          name: 'httpd',
          image: 'busybox:1.36',
          command: [BUSYBOX, 'sh', '-c', `echo serving; exec busybox httpd -f -p 8080 -h ${www}`],
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 1 },
        },
      ]),
    );
    const pod = await waitForPod('web', 'Ready', (p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
    assert.equal(pod.status?.phase, 'Running');
    assert.match(pod.status?.podIP ?? '', /^10\.93\.0\.\d+$/);
    assert.equal(pod.status?.hostIP, NODE_IP);
    assert.deepEqual(
      pod.status?.conditions?.map((c) => [c.type, c.status]).sort(),
      [
        ['ContainersReady', 'True'],
        ['Initialized', 'True'],
        ['PodReadyToStartContainers', 'True'],
        ['PodScheduled', 'True'],
        ['Ready', 'True'],
      ],
    );
    const cs = pod.status?.containerStatuses?.[0];
    assert.equal(cs?.name, 'httpd');
    assert.equal(cs?.image, 'busybox:1.36');
    assert.equal(cs?.ready, true);
    assert.match(cs?.containerID ?? '', /^pontoon:\/\/[0-9a-f]{64}$/);
    assert.equal(lab.exec(node.netns, BUSYBOX, ['wget', '-q', '-O', '-', `http://${pod.status?.podIP}:8080/`], { timeoutMs: 5000 }), 'agent\n');

    const logText = await api.requestText('GET', '/api/v1/namespaces/default/pods/web/log?container=httpd');
    assert.equal(logText, 'serving\n');

    const events = await eventually('a Started event', 5000, async () => {
      const items = (await api.list<Event>(RESOURCE.events, 'default')).items;
      return items.some((e) => e.involvedObject.name === 'web' && e.reason === 'Started') && items;
    });
    const reasons = events.filter((e) => e.involvedObject.name === 'web').map((e) => e.reason);
    assert.ok(reasons.includes('Started'), `events: ${reasons.join(', ')}`);
    assert.equal(events.find((e) => e.reason === 'Started')?.source?.component, 'kubelet');
  });

  test('configMapKeyRef env comes from the apiserver; a missing key holds the container in CreateContainerConfigError', async () => {
    await api.create(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'default' }, data: { greeting: 'hi from a configmap' } });
    const env = (key: string) => [{ name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'settings', key } } }];
    await createPod(makePod('cmenv', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'echo "$GREETING"; exec busybox sleep 100000'], env: env('greeting') }]));
    await waitForPod('cmenv', 'Running', running);
    const text = await eventually('the log', 5000, async () => {
      const log = await api.requestText('GET', '/api/v1/namespaces/default/pods/cmenv/log');
      return log !== '' && log;
    });
    assert.equal(text, 'hi from a configmap\n');
    await createPod(makePod('cmmissing', [{ name: 'c', command: sleepForever, env: env('absent') }]));
    const stuck = await waitForPod('cmmissing', 'CreateContainerConfigError', (p) => p.status?.containerStatuses?.[0]?.state.waiting?.reason === 'CreateContainerConfigError');
    assert.equal(stuck.status?.phase, 'Pending');
    assert.match(stuck.status?.containerStatuses?.[0]?.state.waiting?.message ?? '', /couldn't find key absent in ConfigMap default\/settings/);
    for (const name of ['cmenv', 'cmmissing']) await api.delete(RESOURCE.pods, name, 'default', { gracePeriodSeconds: 0 });
  });

  test('status is written only when it changes', async () => {
    const before = await waitForPod('web', 'Running', running);
    const resyncs = kubelet.stats().resyncs;
    await eventually('two resyncs', 10_000, async () => kubelet.stats().resyncs >= resyncs + 2);
    const after = await podNamed('web');
    assert.equal(after?.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  test('graceful deletion: containers stopped, network torn down, then the pod is removed with grace 0', async () => {
    // A grace period far longer than the wait below: the pod can only be gone in time if
    // SIGTERM ended its container (no clock is read).
    const created = await createPod(makePod('doomed', [{ name: 'c', command: sleepForever }], { terminationGracePeriodSeconds: 600 }));
    await waitForPod('doomed', 'Running', running);
    const sandbox = sandboxName(node.options.netnsPrefix ?? '', created.metadata.uid ?? '');
    assert.ok(listNetns().includes(sandbox));
    await api.delete(RESOURCE.pods, 'doomed', 'default');
    const marked = await podNamed('doomed');
    assert.ok(marked === undefined || marked.metadata.deletionTimestamp, 'graceful: first only marked');
    await eventually('the pod to be gone (SIGTERM ended it, long before its 600 s grace period)', 60_000, async () => (await podNamed('doomed')) === undefined);
    assert.equal(listNetns().includes(sandbox), false);
    assert.equal(existsSync(join(node.rootDir, 'pods', created.metadata.uid ?? '')), false);
  });

  test('restart policy Never: the pod ends Failed with the exit code, and is not run again', async () => {
    await createPod(makePod('job', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'echo done; exit 2'] }], { restartPolicy: 'Never' }));
    const pod = await waitForPod('job', 'Failed', (p) => p.status?.phase === 'Failed');
    assert.equal(pod.status?.containerStatuses?.[0]?.state.terminated?.exitCode, 2);
    assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 0);
    // The sandbox goes once the pod is final (the kubelet's next pass after Failed); by then
    // a kubelet that would restart the container has had its chance.
    await eventually('the network released', 30_000, async () => !listNetns().includes(sandboxName(node.options.netnsPrefix ?? '', pod.metadata.uid ?? '')));
    const later = await podNamed('job');
    assert.equal(later?.status?.phase, 'Failed');
    assert.equal(later?.status?.containerStatuses?.[0]?.restartCount, 0);
  });

  test('a restarted kubelet adopts running pods, finishes deletions and tears down pods removed while it was away', async () => {
    const keep = await createPod(makePod('keep', [{ name: 'c', command: sleepForever }]));
    const graceful = await createPod(makePod('graceful', [{ name: 'c', command: sleepForever }]));
    const forced = await createPod(makePod('forced', [{ name: 'c', command: sleepForever }]));
    for (const name of ['keep', 'graceful', 'forced']) await waitForPod(name, 'Running', running);
    const record = (uid: string): PodRecord => JSON.parse(readFileSync(join(node.rootDir, 'pods', uid, 'state.json'), 'utf8')) as PodRecord;
    const keepPid = record(keep.metadata.uid ?? '').containers[0]?.pid;
    const keepRv = (await podNamed('keep'))?.metadata.resourceVersion;

    await kubelet.stop();
    await api.delete(RESOURCE.pods, 'graceful', 'default'); // marked, waits for a kubelet
    await api.delete(RESOURCE.pods, 'forced', 'default', { gracePeriodSeconds: 0 }); // gone at once
    assert.equal(await podNamed('forced'), undefined);
    assert.ok((await podNamed('graceful'))?.metadata.deletionTimestamp);

    kubelet = startKubelet();
    await kubelet.start();
    await eventually('the new kubelet to finish the deletion', 10_000, async () => (await podNamed('graceful')) === undefined);
    for (const uid of [graceful.metadata.uid ?? '', forced.metadata.uid ?? '']) {
      assert.equal(listNetns().includes(sandboxName(node.options.netnsPrefix ?? '', uid)), false);
      assert.equal(existsSync(join(node.rootDir, 'pods', uid)), false);
    }
    // Two resyncs of the new kubelet: every pod worker, 'keep' included, has run since it started.
    await eventually('two resyncs of the new kubelet', 10_000, async () => kubelet.stats().resyncs >= 2);
    assert.equal(record(keep.metadata.uid ?? '').containers[0]?.pid, keepPid, 'adopted, not restarted');
    const kept = await podNamed('keep');
    assert.equal(kept?.status?.containerStatuses?.[0]?.restartCount, 0);
    assert.equal(kept?.metadata.resourceVersion, keepRv, 'an adopted pod whose status did not change is not rewritten');
  });

  test('measure: pod created → Running with an IP in the apiserver (median of 10)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const name = `m${i}`;
      const seen = new Promise<number>((resolve) => {
        const handle = api.watch<Pod>(RESOURCE.pods, 'default', { fieldSelector: `metadata.name=${name}` }, {
          onEvent: (event) => {
            if (event.type !== 'ERROR' && running(event.object)) {
              handle.stop();
              resolve(performance.now());
            }
          },
          onClose: () => undefined,
        });
      });
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await createPod(makePod(name, [{ name: 'c', command: sleepForever }]));
      times.push((await seen) - t0);
    }
    times.sort((a, b) => a - b);
    const median = ((times[4] ?? 0) + (times[5] ?? 0)) / 2;
    console.log(`# pod created in the apiserver → Running with IP: median ${median.toFixed(1)} ms, min ${times[0]?.toFixed(1)} ms, max ${times[9]?.toFixed(1)} ms`);
    assert.ok(median < 5000);
    for (let i = 0; i < 10; i++) await api.delete(RESOURCE.pods, `m${i}`, 'default', { gracePeriodSeconds: 0 });
  });
});
