/**
 * An HA control plane in the lab: `cluster up --store etcd --etcd-members 3 --apiservers 2`,
 * with real etcd members (each in its own namespace on the fabric), real apiserver processes,
 * controllers, scheduler and kubelets, driven with the real kubectl.
 *
 * - A watch on apiserver B sees what was written through apiserver A, at the resourceVersions
 *   A answered (both are etcd's revisions).
 * - kill -9 of the etcd leader while a Deployment scales 1 → 20: kubectl keeps answering, the
 *   Deployment ends with exactly 20 pods of one ReplicaSet (no write lost, none applied twice),
 *   /readyz?verbose says `[+]etcd ok`, and the member restarted rejoins and catches up.
 * - Two members of three gone: /readyz fails with `[-]etcd failed`; back when they return.
 * - kill -9 of apiserver A: kubectl pointed at B works, and a new Deployment gets Running pods
 *   (controller-manager, scheduler and kubelets moved to B by themselves).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { KubeList, KubeObject, WatchEvent } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import { clusterDown, clusterUp, type ClusterState, restartComponent } from '../../src/cli/cluster/cluster.js';
import { readTokens } from '../../src/cli/cluster/control-plane.js';
import { type EtcdMemberState, leaderMember, memberHealth, memberStatus } from '../../src/cli/cluster/etcd-cluster.js';
import { ApiError } from '../../src/client/api.js';
import { KubeClient } from '../../src/client/client.js';
import { TEST_NETNS_PREFIX } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

let state: ClusterState;
let home: string;
let clientA: KubeClient;
let clientB: KubeClient;

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'pontoon-etcd-cluster-'));
  const name = `${TEST_NETNS_PREFIX}ha`;
  try {
    state = await clusterUp({
      name,
      nodes: 2,
      backend: 'vxlan',
      racks: 1,
      podsPerNode: 0,
      directRouting: false,
      leaseTtlSeconds: 3600,
      controlPlane: true,
      subnetStore: 'kube',
      proxy: 'none',
      agents: 'process',
      store: 'etcd',
      etcdMembers: 3,
      apiservers: 2,
      progress: () => undefined,
    });
  } catch (err) {
    await clusterDown(name);
    throw err;
  }
  const cp = state.controlPlane!;
  const token = readTokens(cp.tokensFile).get('admin') ?? '';
  clientA = new KubeClient({ server: `unix:${cp.socket}`, token });
  clientB = new KubeClient({ server: `unix:${cp.replicas![0]!.socket}`, token });
});

after(async () => {
  rmSync(home, { recursive: true, force: true });
  if (state) await clusterDown(state.name);
});

function kubectl(server: string | undefined, ...args: string[]): { status: number | null; out: string } {
  const result = spawnSync('/usr/bin/kubectl', [...(server ? ['--server', server] : []), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home },
  });
  return { status: result.status, out: `${result.stdout}${result.stderr}` };
}

function kubectlOk(server: string | undefined, ...args: string[]): string {
  const result = kubectl(server, ...args);
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.out}`);
  return result.out;
}

const members = (): EtcdMemberState[] => state.etcdCluster!.members;

function killMember(member: EtcdMemberState): void {
  process.kill(member.pid, 'SIGKILL');
}

interface PodLike extends KubeObject {
  status?: { phase?: string };
}

test('a watch on apiserver B delivers the writes made through apiserver A at the resourceVersions A answered', async () => {
  const listed = await clientA.list(RESOURCE.configmaps, 'default');
  const events: WatchEvent<KubeObject>[] = [];
  const handle = clientB.watch(RESOURCE.configmaps, 'default', { resourceVersion: listed.metadata.resourceVersion ?? '' }, { onEvent: (e) => events.push(e), onClose: () => undefined });
  try {
    const written: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await clientA.create(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `ab-${i}`, namespace: 'default' }, data: { i: String(i) } } as KubeObject);
      written.push(created.metadata.resourceVersion ?? '');
    }
    const updated = await clientA.patch(RESOURCE.configmaps, 'ab-0', 'default', { data: { i: 'changed' } }, 'merge');
    written.push(updated.metadata.resourceVersion ?? '');
    await poll('B to deliver all six events', () => events.length >= written.length, { timeoutMs: 15_000 });
    assert.deepEqual(events.map((e) => e.object.metadata.resourceVersion), written);
    assert.deepEqual(events.map((e) => e.type), ['ADDED', 'ADDED', 'ADDED', 'ADDED', 'ADDED', 'MODIFIED']);
    // A list from B is the same snapshot: same objects at the same versions.
    const fromB = await clientB.list(RESOURCE.configmaps, 'default');
    const fromA = await clientA.list(RESOURCE.configmaps, 'default');
    const versions = (list: KubeList<KubeObject>): string[] => list.items.filter((c) => c.metadata.name?.startsWith('ab-')).map((c) => `${c.metadata.name}@${c.metadata.resourceVersion}`);
    assert.deepEqual(versions(fromB), versions(fromA));
  } finally {
    handle.stop();
  }
});

test('kill -9 of the etcd leader during a scale 1 → 20: kubectl keeps working, exactly 20 pods, the member rejoins', async () => {
  kubectlOk(undefined, 'create', 'deployment', 'web', '--image=busybox', '--replicas=1', '--', 'sleep', '3600');
  await poll('the first web pod Running', () => /Running/.test(kubectl(undefined, 'get', 'pods', '-l', 'app=web', '--no-headers').out), { timeoutMs: 60_000 });
  const leader = await poll('an etcd leader', () => leaderMember(state.etcdCluster!), { timeoutMs: 10_000 });

  kubectlOk(undefined, 'scale', 'deployment', 'web', '--replicas=20');
  killMember(leader);
  // kubectl keeps answering while the others elect a leader.
  kubectlOk(undefined, 'get', 'deployment', 'web');
  kubectlOk(undefined, 'get', 'pods', '-l', 'app=web');

  await poll(
    'web to have 20 ready replicas',
    () => {
      const out = kubectl(undefined, 'get', 'deployment', 'web', '-o', 'jsonpath={.status.readyReplicas}');
      return out.status === 0 && out.out.trim() === '20';
    },
    { timeoutMs: 180_000, intervalMs: 500, describe: () => kubectl(undefined, 'get', 'deployment,rs,pods', '-l', 'app=web').out },
  );
  const pods = await clientA.list<PodLike>(RESOURCE.pods, 'default', { labelSelector: 'app=web' });
  const replicaSets = await clientA.list(RESOURCE.replicasets, 'default', { labelSelector: 'app=web' });
  assert.equal(replicaSets.items.length, 1, 'one ReplicaSet');
  assert.equal(pods.items.length, 20, `exactly 20 pods, none lost and none created twice: ${pods.items.map((p) => p.metadata.name).join(' ')}`);
  assert.equal(new Set(pods.items.map((p) => p.metadata.uid)).size, 20);
  for (const pod of pods.items) assert.equal(pod.metadata.ownerReferences?.[0]?.uid, replicaSets.items[0]?.metadata.uid);

  const readyz = kubectlOk(undefined, 'get', '--raw', '/readyz?verbose');
  assert.match(readyz, /^\[\+\]etcd ok$/m);
  assert.match(readyz, /readyz check passed/);

  await restartComponent(state, 'etcd', leader.name);
  assert.ok(await memberHealth(leader));
  // Caught up: after one more write, it reports the same revision as the others.
  kubectlOk(undefined, 'annotate', 'deployment', 'web', 'rejoined=yes');
  await poll(
    `${leader.name} at the cluster's revision`,
    async () => {
      const statuses = await Promise.all(members().map((m) => memberStatus(m)));
      const revisions = new Set(statuses.map((s) => s?.revision));
      return statuses.every((s) => s !== undefined) && revisions.size === 1;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
});

test('with two of three members gone /readyz fails on etcd, and passes again once they are back', async () => {
  const [first, second] = members();
  killMember(first!);
  killMember(second!);
  const failure = await poll(
    'readyz to fail',
    async () => {
      try {
        await clientA.requestText('GET', '/readyz?verbose');
        return undefined;
      } catch (err) {
        return err instanceof ApiError ? err : undefined;
      }
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  assert.equal(failure.code, 500);
  assert.match(failure.status.message ?? '', /^\[-\]etcd failed/m);
  assert.match(failure.status.message ?? '', /readyz check failed/);

  await restartComponent(state, 'etcd', first!.name);
  await restartComponent(state, 'etcd', second!.name);
  await poll('readyz to pass again', () => clientA.requestText('GET', '/readyz').then((t) => t === 'ok'), { timeoutMs: 30_000, intervalMs: 200, retryErrors: true });
});

test('kill -9 of apiserver A: kubectl on B works and a new Deployment gets Running pods through B', async () => {
  const cp = state.controlPlane!;
  const replica = cp.replicas![0]!;
  process.kill(cp.pids.apiserver, 'SIGKILL');
  await poll('apiserver A to be gone', () => kubectl(cp.url, 'get', '--raw', '/readyz').status !== 0, { timeoutMs: 10_000 });

  kubectlOk(replica.url, 'get', 'nodes');
  kubectlOk(replica.url, 'create', 'deployment', 'after', '--image=busybox', '--replicas=3', '--', 'sleep', '3600');
  await poll(
    'three Running pods of the new Deployment',
    async () => {
      const pods = await clientB.list<PodLike>(RESOURCE.pods, 'default', { labelSelector: 'app=after' });
      return pods.items.length === 3 && pods.items.every((p) => p.status?.phase === 'Running');
    },
    { timeoutMs: 120_000, intervalMs: 500, describe: () => kubectl(replica.url, 'get', 'deployment,rs,pods', '-l', 'app=after', '-o', 'wide').out },
  );
  assert.match(kubectlOk(replica.url, 'get', 'nodes', '--no-headers'), /Ready/);
});
