/**
 * The docs' workload manifests through real kubectl against a lab cluster (apiserver,
 * controller-manager, scheduler, kubelets running real processes): a DaemonSet gets a pod on
 * every node and `kubectl rollout status` finishes, also after a template change; the `pi`
 * Job runs perl to completion, `kubectl wait --for=condition=complete` returns and
 * `kubectl logs job/pi` prints the digits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../src/api/resources.js';
import type { Pod } from '../../src/api/types.js';
import { adminClient, clusterDown, type ClusterState } from '../../src/cli/cluster/cluster.js';
import type { KubeClient } from '../../src/client/client.js';
import { testCluster, waitUntil } from '../helpers/cluster.js';

let state: ClusterState;
let client: KubeClient;
let home: string;

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'pontoon-kubectl-workloads-'));
  state = await testCluster('vxlan', { nodes: 3, pods: 0, controlPlane: true });
  client = adminClient(state);
});

after(async () => {
  rmSync(home, { recursive: true, force: true });
  if (state) await clusterDown(state.name);
});

function kubectl(...args: string[]): string {
  const result = spawnSync('/usr/bin/kubectl', args, {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home },
  });
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

function applyManifest(name: string, manifest: unknown): void {
  const file = join(home, `${name}.yaml`);
  writeFileSync(file, toYaml(manifest));
  kubectl('apply', '-f', file);
}

const daemonSet = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'fluentd-elasticsearch', namespace: 'kube-system', labels: { 'k8s-app': 'fluentd-logging' } },
  spec: {
    selector: { matchLabels: { name: 'fluentd-elasticsearch' } },
    template: {
      metadata: { labels: { name: 'fluentd-elasticsearch' } },
      spec: {
        tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }],
        containers: [{ name: 'fluentd-elasticsearch', image: 'busybox', command: ['sleep', '3600'] }],
        terminationGracePeriodSeconds: 5,
      },
    },
  },
};

const piJob = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'pi', namespace: 'default' },
  spec: {
    template: { spec: { containers: [{ name: 'pi', image: 'perl:5.34.0', command: ['perl', '-Mbignum=bpi', '-wle', 'print bpi(2000)'] }], restartPolicy: 'Never' } },
    backoffLimit: 4,
  },
};

test('kubectl apply of the docs DaemonSet puts one running pod on each node; rollout status finishes', async () => {
  applyManifest('ds', daemonSet);
  kubectl('rollout', 'status', 'ds/fluentd-elasticsearch', '-n', 'kube-system', '--timeout=120s');
  const pods = (await client.list<Pod>(RESOURCE.pods, 'kube-system', { labelSelector: 'name=fluentd-elasticsearch' })).items;
  assert.deepEqual(pods.map((p) => p.spec.nodeName).sort(), state.nodes.map((n) => n.name).sort());
  assert.ok(pods.every((p) => p.status?.phase === 'Running'));
  const table = kubectl('get', 'ds', '-n', 'kube-system');
  assert.match(table, /NAME\s+DESIRED\s+CURRENT\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+NODE SELECTOR\s+AGE/);
  assert.match(table, /fluentd-elasticsearch\s+3\s+3\s+3\s+3\s+3\s+<none>/);
});

test('a template change rolls node by node and rollout status waits for it', async () => {
  kubectl('set', 'env', 'ds/fluentd-elasticsearch', '-n', 'kube-system', 'ROLL=2');
  kubectl('rollout', 'status', 'ds/fluentd-elasticsearch', '-n', 'kube-system', '--timeout=180s');
  const pods = (await client.list<Pod>(RESOURCE.pods, 'kube-system', { labelSelector: 'name=fluentd-elasticsearch' })).items.filter((p) => !p.metadata.deletionTimestamp);
  assert.equal(pods.length, 3);
  assert.ok(pods.every((p) => p.spec.containers[0]?.env?.some((e) => e.name === 'ROLL' && e.value === '2')), 'every pod has the new template');
});

test('a deleted daemon pod is recreated on its node', async () => {
  const [victim] = (await client.list<Pod>(RESOURCE.pods, 'kube-system', { labelSelector: 'name=fluentd-elasticsearch' })).items;
  assert.ok(victim);
  kubectl('delete', 'pod', '-n', 'kube-system', victim.metadata.name ?? '');
  await waitUntil('a new running daemon pod on the node', 60_000, async () => {
    const pods = (await client.list<Pod>(RESOURCE.pods, 'kube-system', { labelSelector: 'name=fluentd-elasticsearch' })).items;
    return pods.some((p) => p.spec.nodeName === victim.spec.nodeName && p.metadata.uid !== victim.metadata.uid && p.status?.phase === 'Running');
  });
});

test('the pi Job completes: kubectl wait, get job, logs job/pi', () => {
  applyManifest('pi', piJob);
  kubectl('wait', '--for=condition=complete', 'job/pi', '--timeout=180s');
  assert.match(kubectl('get', 'job', 'pi'), /pi\s+Complete\s+1\/1\s+\S+\s+\S+/);
  const digits = kubectl('logs', 'job/pi').trim();
  assert.ok(digits.startsWith('3.14159265358979323846'), `pi digits, got ${digits.slice(0, 40)}`);
  assert.ok(digits.length > 2000, 'bpi(2000) prints 2000 digits');
});
