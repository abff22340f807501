/**
 * Services end to end in the lab, the same suite for both proxy modes: `cluster up --proxy
 * <mode>` (a proxy on every node), Deployments and Services through kubectl, traffic from
 * pods on every node, from the nodes, and from a client namespace outside the cluster.
 * The pods run echo.mjs, which answers "<pod> <client address>".
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Pod, Service } from '../../src/api/types.js';
import { adminClient, clusterDown, type ClusterState, podNetnsPrefix, restartComponent, startProxy, saveState } from '../../src/cli/cluster/cluster.js';
import { plug } from '../../src/cli/cluster/topology.js';
import type { KubeClient } from '../../src/client/client.js';
import { run } from '../../src/lib/exec.js';
import { parseIpNet } from '../../src/lib/ip.js';
import { createNetns, deleteNetns } from '../../src/lib/netns.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import { ROOT } from '../helpers/cni.js';
import { testCluster, waitUntil } from '../helpers/cluster.js';
import { answersFromAll, connects, eventually, httpGet, spread, type Reply } from '../proxy/lab.js';
import { canonicalIptables, canonicalNft } from '../proxy/listing.js';

const ECHO = join(ROOT, 'test', 'fixtures', 'proxy', 'echo.mjs');
const OUTSIDE_IP = '198.18.0.200';

/** The proxy's recent warnings and syncs, for a failure message. */
function proxyLogTail(nodeDir: string): string {
  const lines = readFileSync(join(nodeDir, 'proxy.log'), 'utf8').split('\n');
  return lines.filter((line) => /"level":(40|50)|"msg":"synced"/.test(line)).slice(-12).join('\n');
}

for (const mode of ['nftables', 'iptables'] as const) {
  describe(`Services in the lab (${mode})`, () => {
    let state: ClusterState;
    let client: KubeClient;
    let home: string;
    let outside: string;

    before(async () => {
      home = mkdtempSync(join(tmpdir(), 'pontoon-kubectl-'));
      state = await testCluster('vxlan', { nodes: 3, pods: 0, controlPlane: true, proxy: mode });
      client = adminClient(state);
      outside = `${state.name}-outside`;
      createNetns(outside);
      plug(state.fabric, 0, 'outside', outside, 'eth0', parseIpNet(`${OUTSIDE_IP}/24`));
    });

    after(async () => {
      rmSync(home, { recursive: true, force: true });
      if (!state) return;
      deleteNetns(outside);
      await clusterDown(state.name);
    });

    function kubectl(input: string | undefined, ...args: string[]): string {
      const result = spawnSync('/usr/bin/kubectl', args, { encoding: 'utf8', input, timeout: 120_000, env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home } });
      assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
      return result.stdout;
    }

    /** A Deployment of echo servers and a Service in front of them. */
    function apply(name: string, replicas: number, service: Partial<Service['spec']>, podSpec: Record<string, unknown> = {}): void {
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: 'echo',
                  image: 'pontoon/echo',
                  command: [process.execPath, ECHO, '$(POD_NAME)', '8080'],
                  env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                  ports: [{ name: 'http', containerPort: 8080 }],
                  readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
                },
              ],
              ...podSpec,
            },
          },
        },
      };
      const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...service } };
      kubectl(`${toYaml(deployment)}---\n${toYaml(svc)}`, 'apply', '-f', '-');
      kubectl(undefined, 'rollout', 'status', `deploy/${name}`, '--timeout=90s');
    }

    async function pods(app: string): Promise<Pod[]> {
      return (await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: `app=${app}` })).items.filter((p) => !p.metadata.deletionTimestamp);
    }

    /** The proxy's /healthz status on a node; 0 while nothing listens (it is starting). */
    async function healthz(netns: string): Promise<number> {
      return (await httpGet(netns, '127.0.0.1', 10256, '/healthz').catch(() => ({ status: 0 }))).status;
    }

    /** The node's rules mentioning a Service, for failure messages. */
    function rulesOn(nodeName: string, service: string): string {
      const netns = state.nodes.find((n) => n.name === nodeName)?.netns ?? '';
      const text = mode === 'nftables' ? run('nft', ['list', 'table', 'ip', 'pontoon'], { netns }) : run('iptables-save', ['-t', 'nat'], { netns });
      return text.split('\n').filter((l) => l.includes(service) || /endpoints-|^\s+elements|^\s+\d+ :/.test(l)).join('\n');
    }

    const sandboxOf = (pod: Pod): string => sandboxName(podNetnsPrefix(state.name, pod.spec.nodeName ?? ''), pod.metadata.uid ?? '');
    const getService = async (name: string): Promise<Service> => (await client.get<Service>(RESOURCE.services, name, 'default')) as Service;
    const ok = (reply: Reply): boolean => 'pod' in reply && reply.pod !== '';

    /** Ready endpoints the EndpointSlice controller published. */
    async function readyEndpoints(name: string): Promise<number> {
      const slices = (await client.list<EndpointSlice>(RESOURCE.endpointslices, 'default', { labelSelector: `kubernetes.io/service-name=${name}` })).items;
      return slices.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
    }

    test('ClusterIP: from a pod on every node, and from every node, every endpoint answers', async () => {
      apply('web', 3, { type: 'ClusterIP' });
      const web = await pods('web');
      const ip = (await getService('web')).spec.clusterIP ?? '';
      await waitUntil('3 ready endpoints', 60_000, async () => (await readyEndpoints('web')) === 3);
      apply('client', 3, { type: 'ClusterIP' });
      const clients = await pods('client');
      assert.deepEqual([...new Set(clients.map((p) => p.spec.nodeName))].sort(), state.nodes.map((n) => n.name).sort(), 'a client pod on every node');
      const names = web.map((p) => p.metadata.name ?? '').sort();
      const sources = [...clients.map((pod) => ({ from: sandboxOf(pod), node: pod.spec.nodeName ?? '' })), ...state.nodes.map((n) => ({ from: n.netns, node: n.name }))];
      for (const { from, node } of sources) {
        await eventually(from, ip, 80, ok, `the ClusterIP from ${from}`);
        await answersFromAll(from, ip, 80, names, `every endpoint of web answering ${from}`).catch(async (err: unknown) => {
          const endpoints = (await client.list<EndpointSlice>(RESOURCE.endpointslices, 'default', { labelSelector: 'kubernetes.io/service-name=web' })).items.flatMap((s) => s.endpoints ?? []);
          throw new Error(`${String(err)}\nendpoints ${JSON.stringify(endpoints)}\nrules on ${node}:\n${rulesOn(node, 'web')}`);
        });
      }
    });

    test('NodePort from outside the cluster on every node address', async () => {
      apply('np', 2, { type: 'NodePort' });
      const nodePort = (await getService('np')).spec.ports?.[0]?.nodePort ?? 0;
      const names = (await pods('np')).map((p) => p.metadata.name ?? '').sort();
      for (const node of state.nodes) {
        await eventually(outside, node.underlayIp, nodePort, ok, `node port ${nodePort} on ${node.name}`);
        await answersFromAll(outside, node.underlayIp, nodePort, names, `both endpoints through ${node.name}`);
      }
    });

    test('externalTrafficPolicy Local keeps the client address', async () => {
      apply('etp', 3, { type: 'NodePort', externalTrafficPolicy: 'Local' });
      const nodePort = (await getService('etp')).spec.ports?.[0]?.nodePort ?? 0;
      for (const pod of await pods('etp')) {
        const node = state.nodes.find((n) => n.name === pod.spec.nodeName);
        if (!node) continue;
        const reply = await eventually(outside, node.underlayIp, nodePort, ok, `the local endpoint on ${node.name}`);
        assert.equal('client' in reply && reply.client, OUTSIDE_IP, 'the client address is preserved');
        const seen = await spread(outside, node.underlayIp, nodePort, 10);
        const local = (await pods('etp')).filter((p) => p.spec.nodeName === node.name).map((p) => p.metadata.name);
        assert.ok([...seen.keys()].every((name) => local.includes(name)), 'only this node’s endpoints answer');
      }
    });

    test('sessionAffinity ClientIP pins; a pod reaching itself through its Service is answered', async () => {
      apply('sticky', 3, { type: 'ClusterIP', sessionAffinity: 'ClientIP' });
      const ip = (await getService('sticky')).spec.clusterIP ?? '';
      const [first] = await pods('sticky');
      assert.ok(first);
      await eventually(sandboxOf(first), ip, 80, ok, 'the sticky Service');
      const seen = await spread(sandboxOf(first), ip, 80, 20);
      assert.equal(seen.size, 1, `one endpoint for one client: ${[...seen.keys()].join(', ')}`);
      // Hairpin: with affinity the pod may be pinned to itself, or to another; force it with
      // a Service whose only endpoint is this pod.
      kubectl(undefined, 'label', 'pod', first.metadata.name ?? '', 'self=me');
      kubectl(toYaml({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'self' }, spec: { selector: { self: 'me' }, ports: [{ port: 80, targetPort: 8080 }] } }), 'apply', '-f', '-');
      const selfIp = (await getService('self')).spec.clusterIP ?? '';
      const reply = await eventually(sandboxOf(first), selfIp, 80, ok, 'the pod through its own Service');
      assert.equal('pod' in reply && reply.pod, first.metadata.name);
    });

    test('scaled to 0 the Service refuses at once; scaled back it serves again', async (t) => {
      apply('scale', 2, { type: 'ClusterIP' });
      const ip = (await getService('scale')).spec.clusterIP ?? '';
      const from = state.nodes[0]?.netns ?? '';
      await eventually(from, ip, 80, ok, 'the Service before scaling');
      kubectl(undefined, 'scale', 'deploy/scale', '--replicas=0');
      await waitUntil('no endpoints left', 60_000, async () => (await readyEndpoints('scale')) === 0 && (await pods('scale')).length === 0);
      const emptied = Date.now();
      await eventually(from, ip, 80, (r) => 'error' in r && r.error === 'ECONNREFUSED', 'a refusal');
      t.diagnostic(`refused ${Date.now() - emptied} ms after the last endpoint went`);
      kubectl(undefined, 'scale', 'deploy/scale', '--replicas=2');
      kubectl(undefined, 'rollout', 'status', 'deploy/scale', '--timeout=90s');
      await eventually(from, ip, 80, ok, 'the Service after scaling back');
    });

    test('kill -9 of a proxy during a long TCP stream through a ClusterIP: the stream survives, the restarted proxy converges', async () => {
      apply('stream', 1, { type: 'ClusterIP', ports: [{ name: 'iperf', port: 5201, targetPort: 5201 }] }, {
        containers: [{ name: 'iperf', image: 'iperf3', command: ['iperf3', '-s'], ports: [{ name: 'iperf', containerPort: 5201 }], readinessProbe: { tcpSocket: { port: 5201 }, periodSeconds: 1 } }],
      });
      const ip = (await getService('stream')).spec.clusterIP ?? '';
      const node = state.nodes[0];
      assert.ok(node?.proxyPid);
      // Compared as the incremental test compares kernels: the same rules, whatever order a
      // restart's full sync wrote them in.
      const listing = (): string => (mode === 'nftables' ? canonicalNft(node.netns) : canonicalIptables(node.netns));
      await waitUntil('iperf3 behind the cluster IP', 60_000, () => connects(node.netns, ip, 5201));
      const before_ = listing();
      const stream = spawn('ip', ['netns', 'exec', node.netns, 'iperf3', '-c', ip, '-p', '5201', '-t', '6', '-J'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let json = '';
      stream.stdout.on('data', (chunk: Buffer) => (json += chunk.toString()));
      const ended = new Promise<number | null>((resolve) => stream.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      process.kill(node.proxyPid, 'SIGKILL');
      node.proxyPid = startProxy(state, node);
      saveState(state);
      assert.equal(await ended, 0, 'the stream ended normally');
      const report = JSON.parse(json) as { intervals: { sum: { bytes: number } }[] };
      assert.ok(report.intervals.length >= 5 && report.intervals.every((i) => i.sum.bytes > 0), 'data flowed in every second');
      await waitUntil('the restarted proxy to answer /healthz', 30_000, async () => (await healthz(node.netns)) === 200);
      // The restarted proxy keeps the old rules until its first full sync, which must end
      // where the killed one was.
      await waitUntil('the restarted proxy to converge to the same rules', 30_000, () => listing() === before_).catch(() => {
        const now = listing().split('\n');
        const was = before_.split('\n');
        const lost = was.filter((line) => !now.includes(line));
        const gained = now.filter((line) => !was.includes(line));
        assert.fail(`the restarted proxy did not converge to the killed one's rules\nonly before:\n${lost.join('\n')}\nonly after:\n${gained.join('\n')}\nproxy log:\n${proxyLogTail(node.dir)}`);
      });
      await waitUntil('a new connection after the restart', 30_000, () => connects(node.netns, ip, 5201));
      // `cluster restart proxy` works like the other daemons.
      await restartComponent(state, 'proxy', node.name);
      await waitUntil('the proxy restarted by the CLI to answer', 30_000, async () => (await healthz(node.netns)) === 200);
      const metrics = run('curl', ['-s', 'http://127.0.0.1:10249/metrics'], { netns: node.netns });
      assert.match(metrics, /kubeproxy_sync_proxy_rules_last_timestamp_seconds [1-9]/);
    });

    test('flanneld’s masquerade rules are untouched', () => {
      for (const node of state.nodes) assert.match(run('iptables-save', ['-t', 'nat'], { netns: node.netns }), /-A POSTROUTING .*-j FLANNEL-POSTRTG/);
    });
  });
}

