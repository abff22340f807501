/**
 * The proxy on a real kernel, both modes, the same tests: a Proxier (informers on an
 * in-process apiserver) programs node n1 of a ProxyLab, and real TCP/UDP traffic from
 * pods, the node and a client outside the cluster checks what each Service promises.
 * Services and EndpointSlices are written by the test, as the controllers would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Event, Service } from '../../src/api/types.js';
import { run } from '../../src/lib/exec.js';
import { parseIpNet } from '../../src/lib/ip.js';
import type { ProxyConfig } from '../../src/proxy/config.js';
import { withNetns } from '../../src/lib/netns.js';
import { Nftables } from '../../src/lib/nftables/nftables.js';
import { ConntrackTool } from '../../src/proxy/conntrack.js';
import { ProxyHealth, ServiceHealthServers } from '../../src/proxy/health.js';
import { IptablesSink } from '../../src/proxy/iptables/sink.js';
import { SystemIptables } from '../../src/proxy/iptables/system.js';
import { ProxyMetrics } from '../../src/proxy/metrics.js';
import { NftablesSink } from '../../src/proxy/nftables/sink.js';
import { Proxier } from '../../src/proxy/proxier.js';
import type { RuleSink } from '../../src/proxy/sink.js';
import { log, startControlPlane, waitFor, type ControlPlane } from '../controllers/harness.js';
import { GOLDEN_CONFIG } from './helpers.js';
import { connects, eventually, httpGet, ProxyLab, type Reply, request, spread, type TestPod, UDP_CLIENT } from './lab.js';

const CONFIG: ProxyConfig = { ...GOLDEN_CONFIG, families: [4], clusterCidrs: new Map([[4, parseIpNet('10.244.0.0/16')]]) };
const NODE_IP = '198.18.0.11';

for (const mode of ['nftables', 'iptables'] as const) {
  describe(`proxy data path (${mode})`, () => {
    let lab: ProxyLab;
    let plane: ControlPlane;
    let proxier: Proxier;
    let nft: Nftables;
    let healthServers: ServiceHealthServers;
    let ns = 0;

    const makeSink = (): RuleSink => (mode === 'nftables' ? new NftablesSink(CONFIG, nft) : new IptablesSink(CONFIG, new SystemIptables(nft, lab.n1)));
    const startProxier = async (): Promise<Proxier> => {
      const p = new Proxier({
        api: plane.api,
        nodeName: 'n1',
        sink: makeSink(),
        config: CONFIG,
        conntrack: new ConntrackTool(lab.n1),
        minSyncPeriodMs: 50,
        syncPeriodMs: 0,
        health: new ProxyHealth(60_000),
        metrics: new ProxyMetrics(),
        healthServers,
        log,
      });
      await p.start();
      return p;
    };

    before(async () => {
      lab = new ProxyLab(`proxy-${mode}`);
      plane = await startControlPlane();
      nft = withNetns(lab.lab.path(lab.n1), () => new Nftables());
      healthServers = new ServiceHealthServers(log, (listen) => withNetns(lab.lab.path(lab.n1), listen));
      // Someone else's rules on the node (flanneld's masquerade chain, another nft table).
      run('iptables', ['-t', 'nat', '-N', 'FLANNEL-POSTRTG'], { netns: lab.n1 });
      run('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-j', 'FLANNEL-POSTRTG'], { netns: lab.n1 });
      run('nft', ['add table inet someone-else; add chain inet someone-else input { type filter hook input priority 0; }'], { netns: lab.n1 });
      // The outside client reaches external and load-balancer IPs through n1.
      run('ip', ['route', 'add', '198.51.100.0/24', 'via', NODE_IP], { netns: lab.outside });
      run('ip', ['route', 'add', '203.0.113.0/24', 'via', NODE_IP], { netns: lab.outside });
      proxier = await startProxier();
    });

    after(async () => {
      proxier?.stop();
      healthServers?.close();
      nft?.close();
      await plane?.close();
      lab?.cleanup();
    });

    /** A fresh namespace per test, so Services never collide. */
    async function namespace(): Promise<string> {
      const name = `t${ns++}`;
      await plane.api.create(RESOURCE.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
      return name;
    }

    async function service(namespace_: string, name: string, spec: Service['spec']): Promise<Service> {
      return plane.api.create<Service>(RESOURCE.services, { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: namespace_ }, spec });
    }

    async function endpoints(svc: Service, pods: readonly TestPod[], protocol: 'TCP' | 'UDP' = 'TCP', port = 8080, conditions?: (pod: TestPod) => EndpointSlice['endpoints'][number]['conditions']): Promise<EndpointSlice> {
      const name = `${svc.metadata.name}-slice`;
      const slice: EndpointSlice = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace: svc.metadata.namespace, labels: { 'kubernetes.io/service-name': svc.metadata.name ?? '' } },
        addressType: 'IPv4',
        ports: [{ name: svc.spec.ports?.[0]?.name ?? '', port, protocol }],
        endpoints: pods.map((pod) => ({ addresses: [pod.ip], nodeName: pod.node, conditions: conditions?.(pod) ?? { ready: true, serving: true, terminating: false } })),
      };
      const existing = await plane.api.get<EndpointSlice>(RESOURCE.endpointslices, name, svc.metadata.namespace);
      if (existing) return plane.api.update<EndpointSlice>(RESOURCE.endpointslices, { ...slice, metadata: { ...slice.metadata, resourceVersion: existing.metadata.resourceVersion } });
      return plane.api.create<EndpointSlice>(RESOURCE.endpointslices, slice);
    }

    const ok = (reply: { pod?: string; error?: string }): boolean => 'pod' in reply && reply.pod !== '';
    const http = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];

    test('ClusterIP from pods and from the node reaches every endpoint; the client is not masqueraded from pods', async () => {
      const space = await namespace();
      const a = await lab.addPod(`${space}-a`, 'n1');
      const b = await lab.addPod(`${space}-b`, 'n2');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'web', { type: 'ClusterIP', ports: http });
      await endpoints(svc, [a, b]);
      const ip = svc.spec.clusterIP ?? '';
      await eventually(client.netns, ip, 80, ok, 'the ClusterIP to answer');
      const fromPod = await spread(client.netns, ip, 80, 60);
      assert.deepEqual([...fromPod.keys()].sort(), [a.name, b.name].sort(), 'both endpoints served the pod');
      const reply = await request(client.netns, ip, 80);
      assert.equal('client' in reply && reply.client, client.ip, 'pod-to-Service traffic keeps the pod address');
      const fromNode = await spread(lab.n1, ip, 80, 40);
      assert.deepEqual([...fromNode.keys()].sort(), [a.name, b.name].sort(), 'both endpoints served the node');
    });

    test('a pod reaching itself through its Service (hairpin) is masqueraded and answered', async () => {
      const space = await namespace();
      const self = await lab.addPod(`${space}-self`, 'n1');
      const svc = await service(space, 'self', { type: 'ClusterIP', ports: http });
      await endpoints(svc, [self]);
      const reply = await eventually(self.netns, svc.spec.clusterIP ?? '', 80, ok, 'the hairpin request to be answered');
      assert.equal('pod' in reply && reply.pod, self.name);
      assert.equal('client' in reply && reply.client, '10.244.1.1', 'the source became the bridge address');
    });

    test('NodePort on the node address from outside, masqueraded under externalTrafficPolicy Cluster', async () => {
      const space = await namespace();
      const remote = await lab.addPod(`${space}-remote`, 'n2');
      const svc = await service(space, 'np', { type: 'NodePort', ports: http });
      await endpoints(svc, [remote]);
      const nodePort = svc.spec.ports?.[0]?.nodePort ?? 0;
      const reply = await eventually(lab.outside, NODE_IP, nodePort, ok, 'the node port to answer');
      assert.equal('pod' in reply && reply.pod, remote.name);
      assert.equal('client' in reply && reply.client, NODE_IP, 'the source is the node (masqueraded)');
      // Reachable on every node address (and from the node itself).
      const fromNode = await eventually(lab.n1, '10.244.1.1', nodePort, ok, 'the node port on the bridge address');
      assert.equal('pod' in fromNode && fromNode.pod, remote.name);
    });

    test('externalTrafficPolicy Local keeps the client address and uses local endpoints only; the health-check node port counts them', async () => {
      const space = await namespace();
      const local = await lab.addPod(`${space}-local`, 'n1');
      const remote = await lab.addPod(`${space}-remote`, 'n2');
      let svc = await service(space, 'etp', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: http });
      svc = await plane.api.update<Service>(RESOURCE.services, { ...svc, status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } }, 'status');
      await endpoints(svc, [local, remote]);
      const nodePort = svc.spec.ports?.[0]?.nodePort ?? 0;
      const healthPort = svc.spec.healthCheckNodePort ?? 0;
      assert.ok(healthPort > 0, 'the apiserver allocated a health-check node port');
      await eventually(lab.outside, NODE_IP, nodePort, ok, 'the node port to answer');
      const seen = await spread(lab.outside, NODE_IP, nodePort, 20);
      assert.deepEqual([...seen.keys()], [local.name], 'only the local endpoint serves external traffic');
      const reply = await request(lab.outside, NODE_IP, nodePort);
      assert.equal('client' in reply && reply.client, '198.18.0.100', 'the client address is preserved');
      const viaLb = await eventually(lab.outside, '203.0.113.7', 80, ok, 'the load-balancer IP to answer');
      assert.equal('pod' in viaLb && viaLb.pod, local.name);
      // (Asked asynchronously: the health servers run in this process.)
      const health = await waitFor('the health check node port', async () => {
        const answer = await httpGet(lab.outside, NODE_IP, healthPort, '/healthz');
        return answer.status === 200 ? answer.body : undefined;
      });
      assert.match(health, /"localEndpoints":1/);

      // Without a local endpoint: external traffic is dropped, the check says 503, pods still get served.
      await endpoints(svc, [remote]);
      await waitFor('the health check to report no local endpoints', async () => (await httpGet(lab.outside, NODE_IP, healthPort, '/')).status === 503);
      const dropped = await request(lab.outside, NODE_IP, nodePort, 1000);
      assert.deepEqual(dropped, { error: 'ETIMEDOUT' }, 'dropped, not served remotely');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const fromPod = await request(client.netns, NODE_IP, nodePort);
      assert.equal('pod' in fromPod && fromPod.pod, remote.name, 'a pod still reaches the node port through the cluster endpoints');
    });

    test('externalIPs are served from outside', async () => {
      const space = await namespace();
      const pod = await lab.addPod(`${space}-p`, 'n1');
      const svc = await service(space, 'ext', { type: 'ClusterIP', externalIPs: ['198.51.100.9'], ports: http });
      await endpoints(svc, [pod]);
      const reply = await eventually(lab.outside, '198.51.100.9', 80, ok, 'the external IP to answer');
      assert.equal('pod' in reply && reply.pod, pod.name);
    });

    test('no endpoints: refused at once on the cluster IP and the node port; a port the Service lacks is refused too', async () => {
      const space = await namespace();
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'none', { type: 'NodePort', ports: http });
      await endpoints(svc, []);
      const refused = (reply: Reply): boolean => 'error' in reply && reply.error === 'ECONNREFUSED';
      await eventually(client.netns, svc.spec.clusterIP ?? '', 80, refused, 'the empty Service to refuse');
      await eventually(lab.n1, svc.spec.clusterIP ?? '', 80, refused, 'the empty Service to refuse the node');
      await eventually(lab.outside, NODE_IP, svc.spec.ports?.[0]?.nodePort ?? 0, refused, 'the empty node port to refuse');
      if (mode === 'nftables') {
        // kube-proxy's iptables mode lets such packets wander off; our nftables mode rejects them.
        await eventually(client.netns, svc.spec.clusterIP ?? '', 81, refused, 'an unknown port of the cluster IP to refuse');
      }
    });

    test('serving terminating endpoints carry traffic when nothing ready is left', async () => {
      const space = await namespace();
      const old = await lab.addPod(`${space}-old`, 'n1');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'drain', { type: 'ClusterIP', ports: http });
      await endpoints(svc, [old], 'TCP', 8080, () => ({ ready: false, serving: true, terminating: true }));
      const reply = await eventually(client.netns, svc.spec.clusterIP ?? '', 80, ok, 'the terminating endpoint to serve');
      assert.equal('pod' in reply && reply.pod, old.name);
    });

    test('internalTrafficPolicy Local sends cluster-IP traffic to local endpoints only', async () => {
      const space = await namespace();
      const local = await lab.addPod(`${space}-local`, 'n1');
      const remote = await lab.addPod(`${space}-remote`, 'n2');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'itp', { type: 'ClusterIP', internalTrafficPolicy: 'Local', ports: http });
      await endpoints(svc, [local, remote]);
      await eventually(client.netns, svc.spec.clusterIP ?? '', 80, ok, 'the cluster IP to answer');
      const seen = await spread(client.netns, svc.spec.clusterIP ?? '', 80, 20);
      assert.deepEqual([...seen.keys()], [local.name]);
    });

    test('sessionAffinity ClientIP pins a client to one endpoint until the timeout passes', async () => {
      const space = await namespace();
      const a = await lab.addPod(`${space}-a`, 'n1');
      const b = await lab.addPod(`${space}-b`, 'n2');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'sticky', { type: 'ClusterIP', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 2 } }, ports: http });
      await endpoints(svc, [a, b]);
      const ip = svc.spec.clusterIP ?? '';
      const first = await eventually(client.netns, ip, 80, ok, 'the sticky Service to answer');
      const pinned = 'pod' in first ? first.pod : '';
      const seen = await spread(client.netns, ip, 80, 20);
      assert.deepEqual([...seen.keys()], [pinned], 'every request went to the first endpoint');
      // After the timeout the client is free again: sooner or later the other endpoint answers.
      const other = pinned === a.name ? b.name : a.name;
      await waitFor(
        'a request to reach the other endpoint after the affinity timeout',
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 2100));
          const reply = await request(client.netns, ip, 80);
          return 'pod' in reply && reply.pod === other;
        },
        40_000,
      );
    });

    test('UDP: when the endpoint is replaced, its conntrack flow is deleted and the same client flow moves on', async () => {
      const space = await namespace();
      const first = await lab.addPod(`${space}-first`, 'n1');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'dns', { type: 'ClusterIP', ports: [{ name: 'dns', port: 53, targetPort: 8080, protocol: 'UDP' }] });
      await endpoints(svc, [first], 'UDP');
      const udp = lab.spawnIn(client.netns, [process.execPath, UDP_CLIENT, svc.spec.clusterIP ?? '', '53', '50']);
      let output = '';
      udp.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitFor('the UDP client to be answered by the first endpoint', () => output.includes(first.name));
      const second = await lab.addPod(`${space}-second`, 'n2');
      lab.stopServer(first);
      await endpoints(svc, [second], 'UDP');
      const mark = output.length;
      await waitFor('the same UDP flow to be answered by the new endpoint', () => output.slice(mark).includes(second.name), 10_000);
      udp.kill('SIGKILL');
    });

    test('changing the Service type leaves no rules of the old type', async () => {
      const space = await namespace();
      const pod = await lab.addPod(`${space}-p`, 'n1');
      let svc = await service(space, 'morph', { type: 'ClusterIP', ports: http });
      await endpoints(svc, [pod]);
      await eventually(lab.n1, svc.spec.clusterIP ?? '', 80, ok, 'the cluster IP');
      svc = await plane.api.update<Service>(RESOURCE.services, { ...svc, spec: { ...svc.spec, type: 'NodePort' } });
      const nodePort = svc.spec.ports?.[0]?.nodePort ?? 0;
      await eventually(lab.outside, NODE_IP, nodePort, ok, 'the node port after ClusterIP → NodePort');
      svc = await plane.api.update<Service>(RESOURCE.services, { ...svc, spec: { ...svc.spec, type: 'ClusterIP', ports: http } });
      await eventually(lab.outside, NODE_IP, nodePort, (r) => 'error' in r, 'the node port to go after NodePort → ClusterIP');
      const rules = mode === 'nftables' ? run('nft', ['list', 'table', 'ip', 'pontoon'], { netns: lab.n1 }) : run('iptables-save', [], { netns: lab.n1 });
      const mine = rules.split('\n').filter((line) => line.includes(`${space}/morph`));
      assert.ok(mine.length > 0, 'the Service still has its cluster-IP rules');
      assert.ok(!mine.some((line) => line.includes('external destinations')), `no external-traffic rule remains:\n${mine.join('\n')}`);
      assert.ok(!rules.includes(String(nodePort)), `no rule mentions the old node port ${nodePort}`);
    });

    test('headless Services and Services of another proxy get no rules', async () => {
      const space = await namespace();
      const pod = await lab.addPod(`${space}-p`, 'n1');
      const headless = await service(space, 'headless', { type: 'ClusterIP', clusterIP: 'None', ports: http });
      await endpoints(headless, [pod]);
      const other = await plane.api.create<Service>(RESOURCE.services, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'other', namespace: space, labels: { 'service.kubernetes.io/service-proxy-name': 'not-us' } },
        spec: { type: 'ClusterIP', ports: http },
      });
      await endpoints(other, [pod]);
      // A Service created after them is programmed: once it answers, the others were seen too.
      const marker = await service(space, 'marker', { type: 'ClusterIP', ports: http });
      await endpoints(marker, [pod]);
      await eventually(lab.n1, marker.spec.clusterIP ?? '', 80, ok, 'the marker Service');
      const rules = mode === 'nftables' ? run('nft', ['list', 'table', 'ip', 'pontoon'], { netns: lab.n1 }) : run('iptables-save', [], { netns: lab.n1 });
      assert.ok(!rules.includes(`${space}/headless`), 'no rule for the headless Service');
      assert.ok(!rules.includes(`${space}/other`), 'no rule for the other proxy’s Service');
      const refused = await request(lab.n1, other.spec.clusterIP ?? '', 80, 1000);
      assert.ok('error' in refused, 'the other proxy’s Service is not served');
    });

    test('an EndpointSlice of a missing Service is reported with an Event and skipped; other Services are still served', async () => {
      const space = await namespace();
      const pod = await lab.addPod(`${space}-p`, 'n1');
      const svc = await service(space, 'good', { type: 'ClusterIP', ports: http });
      // A hand-made slice whose Service does not exist.
      await plane.api.create<EndpointSlice>(RESOURCE.endpointslices, {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'orphan', namespace: space, labels: { 'kubernetes.io/service-name': 'missing' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: [{ addresses: ['10.244.1.200'] }],
      });
      await endpoints(svc, [pod]);
      await eventually(lab.n1, svc.spec.clusterIP ?? '', 80, ok, 'the good Service');
      // (The apiserver refuses malformed addresses and ports; the model's own checks for
      // those are unit-tested in model.test.ts.)
      const event = await waitFor('an Event for the orphan slice', async () =>
        (await plane.api.list<Event>(RESOURCE.events, space)).items.find((e) => e.reason === 'InvalidEndpointSlice' && e.involvedObject.name === 'orphan'),
      );
      assert.match(event.message ?? '', /Service t\d+\/missing, which does not exist/);
    });

    test('a restarted proxy converges without breaking an established connection, and never touched others’ rules', async () => {
      const space = await namespace();
      const pod = await lab.addPod(`${space}-p`, 'n2');
      const client = await lab.addPod(`${space}-client`, 'n1');
      const svc = await service(space, 'stream', { type: 'ClusterIP', ports: [{ name: 'tcp', port: 5201, protocol: 'TCP' }] });
      await endpoints(svc, [pod], 'TCP', 5201);
      // A long TCP stream through the cluster IP: iperf3 for 6 seconds, the proxy restarted in the middle.
      lab.spawnIn(pod.netns, ['iperf3', '-s']);
      const ip = svc.spec.clusterIP ?? '';
      await waitFor('iperf3 behind the cluster IP', () => connects(client.netns, ip, 5201));
      const stream = lab.spawnIn(client.netns, ['iperf3', '-c', ip, '-p', '5201', '-t', '6', '-i', '1', '-J']);
      let json = '';
      stream.stdout?.on('data', (chunk: Buffer) => (json += chunk.toString()));
      const ended = new Promise<number | null>((resolve) => stream.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      proxier.stop();
      proxier = await startProxier();
      assert.equal(await ended, 0, `the stream survived the restart: ${json.slice(-400)}`);
      const result = JSON.parse(json) as { intervals: { sum: { bytes: number } }[] };
      assert.ok(result.intervals.length >= 5 && result.intervals.every((i) => i.sum.bytes > 0), 'data flowed in every second of the stream');
      // New connections after the restart work, and the other owners' rules are intact.
      await waitFor('a new connection after the restart', () => connects(client.netns, ip, 5201));
      // New connections after the restart work, and the other owners' rules are intact.
      assert.match(run('iptables', ['-t', 'nat', '-S', 'POSTROUTING'], { netns: lab.n1 }), /-j FLANNEL-POSTRTG/);
      assert.match(run('nft', ['list', 'tables'], { netns: lab.n1 }), /table inet someone-else/);
    });
  });
}
