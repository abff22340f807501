/**
 * The whole stack as a user meets it: `cluster up` with the control plane, kubectl applying
 * the demo's Deployment + Service, pods spread over three nodes reaching each other across
 * the VXLAN overlay with leases from the apiserver, then scale-down and delete leaving no
 * sandbox, veth or IP behind.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { stringify as toYaml } from 'yaml';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Endpoints, Node, Pod } from '../../src/api/types.js';
import { adminClient, clusterDown, type ClusterState, podNetnsPrefix, removeNode, restartComponent } from '../../src/cli/cluster/cluster.js';
import { packageRoot } from '../../src/cli/paths.js';
import { podPaths } from '../../src/cli/cluster/pods.js';
import type { KubeClient } from '../../src/client/client.js';
import { leaseOf } from '../../src/flanneld/subnet/kube.js';
import { listNetns } from '../../src/lib/netns.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import { testCluster, waitUntil } from '../helpers/cluster.js';

let state: ClusterState;
let client: KubeClient;
let home: string;

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'pontoon-kubectl-'));
  state = await testCluster('vxlan', { nodes: 3, pods: 0, controlPlane: true });
  client = adminClient(state);
});

after(async () => {
  rmSync(home, { recursive: true, force: true });
  if (!state) return; // testCluster already tore down a cluster that failed to come up
  // A daemon restarted by hand (a pid state.json does not know) must still go with the lab.
  const stray = spawn('sh', ['-c', 'sleep 600', `${state.stateDir}/stray-daemon`], { detached: true, stdio: 'ignore' });
  await clusterDown(state.name);
  assert.equal(stray.exitCode ?? stray.signalCode ?? (await new Promise((r) => stray.once('exit', (code, signal) => r(code ?? signal)))), 'SIGTERM');
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`${state.name}-`)), [], 'cluster down leaves no namespace');
});

function kubectl(...args: string[]): string {
  const result = spawnSync('/usr/bin/kubectl', args, {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home },
  });
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

async function webPods(): Promise<Pod[]> {
  return (await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=web' })).items;
}

function sandboxOf(pod: Pod): string {
  return sandboxName(podNetnsPrefix(state.name, pod.spec.nodeName ?? ''), pod.metadata.uid ?? '');
}

function fetchFrom(pod: Pod, ip: string): { ok: boolean; text: string } {
  const result = spawnSync('ip', ['netns', 'exec', sandboxOf(pod), 'curl', '-sS', '-m', '3', `http://${ip}:8080/`], { encoding: 'utf8' });
  return { ok: result.status === 0, text: `${result.stdout}${result.stderr}`.trim() };
}

test('nodes register, get podCIDRs from node-ipam and flannel leases on their Node objects', async () => {
  await waitUntil('3 Ready nodes with leases', 60_000, async () => {
    const nodes = (await client.list<Node>(RESOURCE.nodes)).items;
    const ready = nodes.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && leaseOf(n));
    return ready.length === 3;
  });
  const nodes = (await client.list<Node>(RESOURCE.nodes)).items;
  const cidrs = new Set(nodes.map((n) => n.spec?.podCIDR));
  assert.equal(cidrs.size, 3, 'distinct podCIDRs');
  for (const node of state.nodes) assert.ok(cidrs.has(node.subnet), `${node.name}'s subnet.env matches a podCIDR`);
  assert.match(kubectl('get', 'nodes', '-o', 'wide'), /n1\s+Ready/);
});

test('kubectl apply: the Deployment spreads over every node and every pod reaches the pods on other nodes', async () => {
  kubectl('apply', '-f', join(packageRoot(), 'examples', 'web.yaml'));
  kubectl('rollout', 'status', 'deployment/web', '--timeout=120s');
  const pods = await webPods();
  assert.equal(pods.length, 6);
  assert.equal(new Set(pods.map((p) => p.spec.nodeName)).size, 3, 'pods on all three nodes');
  for (const pod of pods) assert.equal(pod.status?.phase, 'Running');

  const failures: string[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from.spec.nodeName === to.spec.nodeName) continue;
      const answer = fetchFrom(from, to.status?.podIP ?? '');
      if (!answer.ok || !answer.text.includes(`hello from ${to.metadata.name}`)) failures.push(`${from.metadata.name} → ${to.metadata.name}: ${answer.text}`);
    }
  }
  assert.deepEqual(failures, []);

  // `cluster pods` follows each pod's eth0 to its veth peer on the node's bridge.
  const paths = await podPaths(state, 'default');
  for (const pod of pods) {
    const path = paths.find((p) => p.pod === `default/${pod.metadata.name}`);
    assert.equal(path?.sandbox, sandboxOf(pod));
    assert.equal(path?.bridge, 'cni0');
    assert.match(path?.hostVeth ?? '', /^veth/);
  }

  const endpoints = await client.get<Endpoints>(RESOURCE.endpoints, 'web', 'default');
  const addresses = endpoints?.subsets?.flatMap((s) => s.addresses ?? []).map((a) => a.ip).sort();
  assert.deepEqual(addresses, pods.map((p) => p.status?.podIP).sort());
  assert.match(kubectl('logs', pods[0]?.metadata.name ?? ''), new RegExp(`${pods[0]?.metadata.name ?? '?'} serving on :8080`));
  assert.match(kubectl('get', 'pods', '-o', 'wide'), /web-[a-z0-9]+-[a-z0-9]+\s+1\/1\s+Running/);
});

test('every daemon restarts in place (cluster restart) and the cluster converges afterwards', async () => {
  const before = await webPods();
  for (const component of ['apiserver', 'controller-manager', 'scheduler']) await restartComponent(state, component);
  await restartComponent(state, 'kubelet', 'n1');
  await restartComponent(state, 'flanneld', 'n2');
  // Running pods are untouched: same pods, same IPs, still reachable across nodes.
  const after = await webPods();
  assert.deepEqual(after.map((p) => `${p.metadata.name} ${p.status?.podIP}`).sort(), before.map((p) => `${p.metadata.name} ${p.status?.podIP}`).sort());
  // The restarted controllers, scheduler and kubelets pick up new work.
  kubectl('scale', 'deployment/web', '--replicas=8');
  kubectl('rollout', 'status', 'deployment/web', '--timeout=120s');
  const scaled = await webPods();
  assert.equal(scaled.filter((p) => p.status?.phase === 'Running' && p.status.podIP).length, 8);
  const from = scaled.find((p) => p.spec.nodeName === 'n1');
  const to = scaled.find((p) => p.spec.nodeName === 'n2');
  assert.ok(from && to);
  assert.match(fetchFrom(from, to.status?.podIP ?? '').text, /hello from/);
});

test('scale down and delete: terminated pods leave no sandbox, no veth and no IP allocation', async () => {
  kubectl('scale', 'deployment/web', '--replicas=2');
  await waitUntil('2 web pods', 60_000, async () => (await webPods()).length === 2);
  kubectl('delete', '-f', join(packageRoot(), 'examples', 'web.yaml'));
  await waitUntil('no web pods', 60_000, async () => (await webPods()).length === 0);
  await waitUntil('no pod sandboxes', 30_000, () => !listNetns().some((n) => state.nodes.some((node) => n.startsWith(podNetnsPrefix(state.name, node.name)))));
  for (const node of state.nodes) {
    const ipamDir = join(node.dir, 'ipam', 'pontoon');
    let held: string[] = [];
    try {
      held = readdirSync(ipamDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    } catch {
      held = [];
    }
    assert.deepEqual(held, [], `${node.name} holds no pod IP`);
    const links = spawnSync('ip', ['netns', 'exec', node.netns, 'ip', '-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(links, /veth/, `${node.name} has no pod veth left`);
  }
});

test('an init container runs first in the pod’s sandbox; a hostNetwork pod runs in its node with the node’s IP', async () => {
  const pods = [
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'init-demo' },
      spec: {
        initContainers: [{ name: 'prepare', image: 'busybox', command: ['/bin/sh', '-c', 'ip -o -4 addr show eth0 > /tmp/pontoon-e2e-init-$HOSTNAME'] }],
        containers: [{ name: 'main', image: 'busybox', command: ['/bin/sh', '-c', 'cat /tmp/pontoon-e2e-init-$HOSTNAME; exec sleep 3600'] }],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'host-demo' },
      spec: {
        hostNetwork: true,
        nodeSelector: { 'kubernetes.io/hostname': 'n2' },
        containers: [{ name: 'web', image: 'busybox', command: ['/bin/busybox', 'httpd', '-f', '-p', '18080', '-h', '/tmp'], readinessProbe: { tcpSocket: { port: 18080 }, periodSeconds: 1 } }],
      },
    },
  ];
  const file = join(home, 'pods.yaml');
  writeFileSync(file, pods.map((pod) => toYaml(pod)).join('---\n'));
  kubectl('apply', '-f', file);
  kubectl('wait', '--for=condition=Ready', 'pod/init-demo', 'pod/host-demo', '--timeout=60s');

  const init = await client.get<Pod>(RESOURCE.pods, 'init-demo', 'default');
  assert.equal(init?.status?.initContainerStatuses?.[0]?.state.terminated?.exitCode, 0);
  // The init container saw the pod's own eth0 address: it ran inside the sandbox, after CNI.
  assert.match(kubectl('logs', 'init-demo', '-c', 'main'), new RegExp(`inet ${(init?.status?.podIP ?? '?').replaceAll('.', '\\.')}/24`));

  const host = await client.get<Pod>(RESOURCE.pods, 'host-demo', 'default');
  const n2 = state.nodes.find((n) => n.name === 'n2');
  assert.equal(host?.status?.podIP, n2?.underlayIp);
  const n1 = state.nodes.find((n) => n.name === 'n1');
  const fetched = spawnSync('ip', ['netns', 'exec', n1?.netns ?? '', 'curl', '-sS', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${n2?.underlayIp ?? ''}:18080/`], { encoding: 'utf8' });
  assert.match(fetched.stdout, /^(200|404)$/, `n1 reaches the hostNetwork pod on n2's address: ${fetched.stderr}`);
  kubectl('delete', '-f', file, '--wait=true');
  rmSync(`/tmp/pontoon-e2e-init-init-demo`, { force: true });
});

test('a deleted Node is registered again, gets a podCIDR and flanneld re-leases it within seconds', async () => {
  const n3 = state.nodes.find((n) => n.name === 'n3');
  assert.ok(n3);
  const old = await client.get<Node>(RESOURCE.nodes, 'n3');
  const before = old?.spec?.podCIDR;
  kubectl('delete', 'node', 'n3');
  // The kubelet registers n3 again (a new uid), node-ipam gives it a /24 (the freed one or
  // another), and flanneld publishes its lease on the new Node object.
  let after: string | undefined;
  await waitUntil('n3 re-registered with a lease', 60_000, async () => {
    const node = await client.get<Node>(RESOURCE.nodes, 'n3');
    const lease = node && leaseOf(node);
    after = node?.spec?.podCIDR;
    return node?.metadata.uid !== old?.metadata.uid && lease !== undefined && after !== undefined;
  });
  const subnetEnv = () => readFileSync(join(n3.dir, 'subnet.env'), 'utf8');
  const [network, , third] = (after ?? '').split('.');
  await waitUntil('subnet.env follows the new podCIDR', 30_000, () => subnetEnv().includes(`FLANNEL_SUBNET=${network}.244.${third}.1/24`));
  const n1 = state.nodes.find((n) => n.name === 'n1');
  const routeTo = (cidr: string) => spawnSync('ip', ['netns', 'exec', n1?.netns ?? '', 'ip', 'route', 'show', cidr], { encoding: 'utf8' }).stdout;
  await waitUntil('n1 routes the new subnet over flannel.1', 30_000, () => routeTo(after ?? '').includes('flannel.1'));
  if (after !== before) assert.equal(routeTo(before ?? ''), '', `the old subnet ${before ?? ''} is no longer routed to n3`);

  // A pod scheduled onto the re-leased node is reachable from another node.
  kubectl('run', 'late', '--image=busybox', '--overrides={"spec":{"nodeSelector":{"kubernetes.io/hostname":"n3"}}}', '--', '/bin/sleep', '3600');
  kubectl('wait', '--for=condition=Ready', 'pod/late', '--timeout=60s');
  const late = await client.get<Pod>(RESOURCE.pods, 'late', 'default');
  assert.ok(late?.status?.podIP?.startsWith(`${network}.244.${third}.`), `late got ${late?.status?.podIP} from ${after}`);
  const ping = spawnSync('ip', ['netns', 'exec', n1?.netns ?? '', 'ping', '-c', '1', '-W', '2', late?.status?.podIP ?? ''], { encoding: 'utf8' });
  assert.equal(ping.status, 0, ping.stdout);
});

test('remove-node takes the node’s Pods (sandboxes, processes) along and deletes its Node', async () => {
  const n3 = state.nodes.find((n) => n.name === 'n3');
  assert.ok(n3);
  const prefix = podNetnsPrefix(state.name, 'n3');
  assert.ok(listNetns().some((n) => n.startsWith(prefix)), 'n3 runs a pod (late) before');
  await removeNode(state, n3);
  assert.deepEqual(listNetns().filter((n) => n.startsWith(prefix) || n === n3.netns), []);
  assert.equal(await client.get<Node>(RESOURCE.nodes, 'n3'), undefined);
});
