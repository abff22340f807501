/**
 * Dual-stack end to end: `cluster up --ip-family dual` (vxlan) with 2 nodes, a Deployment and
 * a PreferDualStack NodePort Service; from a pod on each node every endpoint answers on its
 * IPv4 and its IPv6 pod IP, both ClusterIPs reach every endpoint, and the NodePort answers on
 * each node's IPv4 and IPv6 address. The kernel state behind it is flannel's: the IPv6 VTEP
 * flannel-v6.1 with a route, a permanent neighbour and an FDB entry towards the other node's
 * IPv6 underlay address. Once per proxy mode (nftables: `table ip6 pontoon`; iptables:
 * ip6tables). Then an IPv6-only cluster (host-gw) as a smoke test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Node, Pod, Service } from '../../src/api/types.js';
import { addPod, adminClient, clusterDown, type ClusterState, type NodeState, type PodState } from '../../src/cli/cluster/cluster.js';
import { FLANNEL_ROUTE_PROTOCOL } from '../../src/flanneld/backend/backend.js';
import { formatIp, formatIpNet, networkOf, parseIpNet } from '../../src/lib/ip.js';
import { AF_BRIDGE, AF_INET6, NUD_PERMANENT } from '../../src/lib/netlink/rtnl.js';
import { testCluster, waitUntil, withNodeRtnl } from '../helpers/cluster.js';

type Json = Record<string, unknown>;

/** A TCP server on 8080 of both families that answers with the pod's name. */
function webManifests(policy: string): Json[] {
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'socat',
                env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                // TCP6 with ipv6only off takes IPv4 connections too (as v4-mapped addresses).
                command: ['socat', 'TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr', 'SYSTEM:echo $POD_NAME'],
                ports: [{ containerPort: 8080 }],
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { type: 'NodePort', ipFamilyPolicy: policy, selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    },
  ];
}

/** One TCP connection from a pod's namespace; the server's answer, or '' when none came. */
function ask(pod: PodState, ip: string, port: number): string {
  const result = spawnSync('ip', ['netns', 'exec', pod.netns, 'busybox', 'nc', '-w', '2', ip, String(port)], { encoding: 'utf8', input: '', timeout: 10_000 });
  return result.status === 0 ? result.stdout.trim() : '';
}

/** The pod names seen behind ip:port within `tries` connections. */
function namesBehind(pod: PodState, ip: string, port: number, tries: number): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i < tries; i++) {
    const answer = ask(pod, ip, port);
    if (answer) names.add(answer);
  }
  return names;
}

async function deployWeb(state: ClusterState, policy: string): Promise<{ pods: Pod[]; service: Service }> {
  const client = adminClient(state);
  for (const manifest of webManifests(policy)) {
    const descriptor = manifest['kind'] === 'Service' ? RESOURCE.services : RESOURCE.deployments;
    await client.create(descriptor, manifest as never);
  }
  let pods: Pod[] = [];
  await waitUntil('2 web pods running with their IPs', 60_000, async () => {
    pods = (await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: 'app=web' })).items;
    return pods.length === 2 && pods.every((p) => p.status?.phase === 'Running' && (p.status.podIPs?.length ?? 0) > 0);
  });
  const service = await client.get<Service>(RESOURCE.services, 'web', 'default');
  assert.ok(service);
  return { pods, service };
}

for (const proxy of ['nftables', 'iptables'] as const) describe(`dual-stack cluster (vxlan, ${proxy} proxy)`, () => {
  let state: ClusterState | undefined;
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  test('pods get both families; every endpoint and both ClusterIPs answer from each node; NodePort on v4 and v6', async () => {
    state = await testCluster('vxlan', { nodes: 2, pods: 0, controlPlane: true, ipFamily: 'dual', proxy });
    const client = adminClient(state);
    const [n1, n2] = state.nodes as [NodeState, NodeState];

    // node-ipam gave each node both families, podCIDR first; flanneld published both halves.
    for (const node of state.nodes) {
      const object = await client.get<Node>(RESOURCE.nodes, node.name);
      const cidrs = object?.spec?.podCIDRs ?? [];
      assert.equal(cidrs.length, 2, JSON.stringify(object?.spec));
      assert.ok(netIn('10.244.0.0/16', cidrs[0]) && netIn('fd00:10:244::/56', cidrs[1]), cidrs.join(','));
      assert.equal(object?.spec?.podCIDR, cidrs[0]);
      assert.equal(object?.metadata.annotations?.['flannel.alpha.coreos.com/public-ipv6'], node.underlayIpv6);
      const env = readFileSync(join(node.dir, 'subnet.env'), 'utf8');
      assert.match(env, /^FLANNEL_IPV6_NETWORK=fd00:10:244::\/56$/m);
      assert.match(env, new RegExp(`^FLANNEL_IPV6_SUBNET=${formatIp(networkOf(parseIpNet(cidrs[1] ?? '')))}1/64$`, 'm'));
    }

    // flannel's IPv6 VTEP on n1: route, neighbour and FDB entry towards n2 over the IPv6 underlay.
    const n2v6 = n2.subnetV6 ?? '';
    const n2Vtep = withNodeRtnl(n2, (rtnl) => rtnl.linkByName('flannel-v6.1')?.mac);
    assert.ok(n2Vtep, 'n2 has flannel-v6.1');
    await waitUntil('n1 to program n2’s IPv6 overlay entries', 10_000, () =>
      withNodeRtnl(n1, (rtnl) => {
        const vtep = rtnl.linkByName('flannel-v6.1');
        if (!vtep) return false;
        const vtepIp = formatIp(networkOf(parseIpNet(n2v6)));
        const route = rtnl.routes(6).some((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL && r.dst && formatIpNet(r.dst) === n2v6 && r.gateway && formatIp(r.gateway) === vtepIp && r.onlink && r.oif === vtep.index);
        const neighbour = rtnl.neighbours(AF_INET6, vtep.index).some((n) => n.ip && formatIp(n.ip) === vtepIp && n.mac === n2Vtep && (n.state & NUD_PERMANENT) !== 0);
        const fdb = rtnl.neighbours(AF_BRIDGE, vtep.index).some((n) => n.ip && formatIp(n.ip) === n2.underlayIpv6 && n.mac === n2Vtep);
        return route && neighbour && fdb;
      }),
    );
    withNodeRtnl(n1, (rtnl) => {
      const vtep = rtnl.linkByName('flannel-v6.1');
      assert.equal(vtep?.mtu, 1430, 'underlay MTU minus 70 over IPv6');
    });

    const { pods, service } = await deployWeb(state, 'PreferDualStack');
    assert.deepEqual(new Set(pods.map((p) => p.spec.nodeName)), new Set(['n1', 'n2']), 'one web pod per node');
    const spec = service.spec as Json;
    assert.deepEqual(spec['ipFamilies'], ['IPv4', 'IPv6']);
    const clusterIPs = spec['clusterIPs'] as string[];
    assert.ok(netIn('10.96.0.0/12', `${clusterIPs[0]}/32`) && netIn('fd00:10:96::/112', `${clusterIPs[1]}/128`), clusterIPs.join(','));
    const nodePort = ((spec['ports'] as Json[])[0]?.['nodePort'] as number) ?? 0;

    // One slice per address family, with each pod's address of that family.
    await waitUntil('an IPv4 and an IPv6 EndpointSlice with both pods', 20_000, async () => {
      const slices = (await client.list<EndpointSlice>(RESOURCE.endpointslices, 'default', { labelSelector: 'kubernetes.io/service-name=web' })).items;
      const addresses = (type: string): string[] => slices.filter((s) => s.addressType === type).flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses)).sort();
      const want = (family: string): string[] => pods.flatMap((p) => (p.status?.podIPs ?? []).map((ip) => ip.ip).filter((ip) => ip.includes(':') === (family === 'IPv6'))).sort();
      return want('IPv4').length === 2 && want('IPv6').length === 2 && JSON.stringify(addresses('IPv4')) === JSON.stringify(want('IPv4')) && JSON.stringify(addresses('IPv6')) === JSON.stringify(want('IPv6'));
    });

    const names = new Set(pods.map((p) => p.metadata.name ?? ''));
    for (const node of state.nodes) {
      const client = await addPod(state, node, 1);
      assert.ok(client.ipv6, `the client pod on ${node.name} has an IPv6 address`);
      for (const pod of pods) {
        const ips = (pod.status?.podIPs ?? []).map((ip) => ip.ip);
        assert.equal(ips.length, 2, `${pod.metadata.name} podIPs ${ips.join(',')}`);
        for (const ip of ips) {
          // A just-created client resolves its neighbours first; an answer from the right pod within 10 s.
          await waitUntil(`${node.name} → ${pod.metadata.name} at ${ip}`, 10_000, () => ask(client, ip, 8080) === pod.metadata.name);
        }
      }
      for (const ip of clusterIPs) {
        await waitUntil(`${node.name} to reach both endpoints through ${ip}`, 20_000, () => namesBehind(client, ip, 80, 8).size === names.size);
        // Once programmed, every connection is answered (rules that flap would drop some).
        const answers = Array.from({ length: 6 }, () => ask(client, ip, 80));
        assert.ok(answers.every((answer) => names.has(answer)), `${node.name} → ${ip}: ${JSON.stringify(answers)}`);
      }
      for (const target of state.nodes) {
        for (const address of [target.underlayIp, target.underlayIpv6 ?? '']) {
          await waitUntil(`${node.name} to reach both endpoints through NodePort ${address}:${nodePort}`, 20_000, () => namesBehind(client, address, nodePort, 8).size === names.size);
        }
      }
    }
  });
});

describe('IPv6-only cluster (host-gw)', () => {
  let state: ClusterState | undefined;
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  test('pods and Services are IPv6 only; host-gw routes the other node’s /64 via its IPv6 address', async () => {
    state = await testCluster('host-gw', { nodes: 2, pods: 1, controlPlane: true, ipFamily: 'ipv6' });
    const [n1, n2] = state.nodes as [NodeState, NodeState];
    const env = readFileSync(join(n1.dir, 'subnet.env'), 'utf8');
    assert.doesNotMatch(env, /^FLANNEL_NETWORK=/m, 'no IPv4 network');
    assert.match(env, /^FLANNEL_IPV6_SUBNET=fd00:10:244:/m);
    assert.ok(netIn('fd00:10:244::/56', n2.subnet), n2.subnet);
    const routes = withNodeRtnl(n1, (rtnl) =>
      rtnl.routes(6).filter((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL).map((r) => `${r.dst ? formatIpNet(r.dst) : ''} via ${r.gateway ? formatIp(r.gateway) : ''}`),
    );
    assert.deepEqual(routes, [`${n2.subnet} via ${n2.underlayIpv6}`]);
    const [p1, p2] = [n1.pods[0], n2.pods[0]] as [PodState, PodState];
    assert.ok(p1.ip.includes(':') && p2.ip.includes(':'), `${p1.ip} ${p2.ip}`);
    // cluster up returns once each node has its own lease; n1 learns n2's a moment later.
    await waitUntil('pod to pod over IPv6', 10_000, () => spawnSync('ip', ['netns', 'exec', p1.netns, 'ping', '-c', '1', '-W', '1', p2.ip]).status === 0);

    const { pods, service } = await deployWeb(state, 'SingleStack');
    const spec = service.spec as Json;
    assert.deepEqual(spec['ipFamilies'], ['IPv6']);
    const clusterIP = spec['clusterIP'] as string;
    assert.ok(netIn('fd00:10:96::/112', `${clusterIP}/128`), clusterIP);
    const kubernetes = await adminClient(state).get<Service>(RESOURCE.services, 'kubernetes', 'default');
    assert.equal((kubernetes?.spec as Json)['clusterIP'], 'fd00:10:96::1', 'the kubernetes Service on the first address');
    const names = new Set(pods.map((p) => p.metadata.name ?? ''));
    await waitUntil('the IPv6 ClusterIP to reach both endpoints', 20_000, () => namesBehind(p1, clusterIP, 80, 8).size === names.size);
  });
});

function netIn(outer: string, inner: string | undefined): boolean {
  if (!inner) return false;
  const a = parseIpNet(outer);
  const b = parseIpNet(inner);
  return a.family === b.family && b.prefixLength >= a.prefixLength && networkOf({ ...b, prefixLength: a.prefixLength }).value === a.value;
}

/** Pod-to-pod pings between the first static pods of every node pair, both families. */
async function pingAllPairs(state: ClusterState): Promise<void> {
  for (const a of state.nodes) {
    for (const b of state.nodes) {
      if (a === b) continue;
      const [from, to] = [a.pods[0], b.pods[0]] as [PodState, PodState];
      for (const ip of [to.ip, to.ipv6 ?? '']) {
        assert.ok(ip, `${b.name}'s pod has both addresses`);
        await waitUntil(`${a.name} pod → ${b.name} pod at ${ip}`, 10_000, () => spawnSync('ip', ['netns', 'exec', from.netns, 'ping', '-c', '1', '-W', '1', ip]).status === 0);
      }
    }
  }
}

describe('dual-stack data planes', () => {
  let state: ClusterState | undefined;
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  test('host-gw routes each family’s subnet via the node’s address of that family', async () => {
    state = await testCluster('host-gw', { nodes: 2, pods: 1, controlPlane: true, ipFamily: 'dual', proxy: 'none' });
    const [n1, n2] = state.nodes as [NodeState, NodeState];
    await waitUntil('n1 to route both of n2’s subnets', 10_000, () =>
      withNodeRtnl(n1, (rtnl) => {
        const routes = [...rtnl.routes(4), ...rtnl.routes(6)].filter((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL).map((r) => `${r.dst ? formatIpNet(r.dst) : ''} via ${r.gateway ? formatIp(r.gateway) : ''}`).sort();
        return JSON.stringify(routes) === JSON.stringify([`${n2.subnet} via ${n2.underlayIp}`, `${n2.subnetV6} via ${n2.underlayIpv6}`].sort());
      }),
    );
    await pingAllPairs(state);
    await clusterDown(state.name);
    state = undefined;
  });

  test('vxlan across two racks: the router forwards the IPv6 underlay too', async () => {
    state = await testCluster('vxlan', { nodes: 2, racks: 2, pods: 1, controlPlane: true, ipFamily: 'dual', proxy: 'none' });
    const [n1, n2] = state.nodes as [NodeState, NodeState];
    assert.notEqual(n1.rack, n2.rack);
    assert.equal(spawnSync('ip', ['netns', 'exec', n1.netns, 'ping', '-c', '1', '-W', '2', n2.underlayIpv6 ?? '']).status, 0, 'IPv6 underlay across the router');
    await pingAllPairs(state);
  });
});
