/**
 * Three-node clusters per backend, built by `pontoon cluster up`: every pod reaches every pod
 * on other nodes, TCP flows, a flanneld restart does not disturb traffic, and a node that
 * leaves is cleaned out of the other nodes' kernels.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterDown, removeNode, restartFlanneld } from '../../src/cli/cluster/cluster.js';
import { spawnSync } from 'node:child_process';
import { formatIp, formatIpNet, networkOf, parseIpNet } from '../../src/lib/ip.js';
import { AF_BRIDGE, AF_INET, NUD_PERMANENT } from '../../src/lib/netlink/rtnl.js';
import { FLANNEL_ROUTE_PROTOCOL } from '../../src/flanneld/backend/backend.js';
import type { NodeState } from '../../src/cli/cluster/cluster.js';
import { crossNodeFailures, flanneldLog, iperf, pingOnce, pingStream, testCluster, waitUntil, withNodeRtnl } from '../helpers/cluster.js';

function ownedRoutes(node: NodeState): string[] {
  return withNodeRtnl(node, (rtnl) =>
    rtnl
      .routes(4)
      .filter((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL)
      .map((r) => `${r.dst ? formatIpNet(r.dst) : 'default'} via ${r.gateway ? formatIp(r.gateway) : '-'}${r.onlink ? ' onlink' : ''}`)
      .sort(),
  );
}

for (const backend of ['host-gw', 'vxlan', 'udp'] as const) {
  describe(`${backend} backend, 3 nodes`, () => {
    test('pods reach each other across nodes, TCP flows, restarts and node removal are handled', async () => {
      const state = await testCluster(backend);
      try {
        const [n1, n2, n3] = state.nodes as [NodeState, NodeState, NodeState];
        assert.deepEqual(crossNodeFailures(state), [], 'every cross-node pod pair pings');

        // --ip-masq: the control node has no route back to pods, so only a masqueraded ping returns.
        assert.ok(pingOnce(n1.pods[0]!.netns, '198.18.0.2'), 'pod reaches a host outside the pod network through masquerade');
        assert.match(spawnSync('ip', ['netns', 'exec', n1.netns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' }).stdout, /-A FLANNEL-POSTRTG -s 10\.244\.0\.0\/16 ! -d 224\.0\.0\.0\/4 .*-j MASQUERADE --random-fully/);

        const bitsPerSecond = await iperf(n1.pods[0]!.netns, n3.pods[0]!.netns, n3.pods[0]!.ip);
        assert.ok(bitsPerSecond > 10e6, `iperf3 TCP throughput ${(bitsPerSecond / 1e6).toFixed(0)} Mbit/s`);

        if (backend !== 'udp') {
          const expected = state.nodes
            .filter((n) => n !== n1)
            .map((n) => (backend === 'host-gw' ? `${n.subnet} via ${n.underlayIp}` : `${n.subnet} via ${n.subnet.split('/')[0]} onlink`))
            .sort();
          assert.deepEqual(ownedRoutes(n1), expected);
        }

        // Restart n2's daemon while n1's pod pings n2's pod: the kernel data plane stays up.
        const stream = pingStream(n1.pods[0]!.netns, n2.pods[0]!.ip, 3);
        await new Promise((r) => setTimeout(r, 500));
        await restartFlanneld(state, n2);
        const { sent, received } = await stream;
        if (backend === 'udp') {
          // The userspace daemon is the data plane: traffic pauses, then resumes.
          await waitUntil('udp traffic to resume after restart', 10_000, () => pingOnce(n1.pods[0]!.netns, n2.pods[0]!.ip, 1));
        } else {
          assert.equal(received, sent, `no loss across a flanneld restart (${received}/${sent})`);
        }
        assert.deepEqual(crossNodeFailures(state), [], 'still full connectivity after the restart');

        // n3 leaves for good: the others drop everything that pointed at it.
        await removeNode(state, n3);
        await waitUntil(`n1 to forget ${n3.subnet}`, 10_000, () => !ownedRoutes(n1).some((r) => r.startsWith(n3.subnet)) || backend === 'udp');
        if (backend === 'vxlan') {
          const vtepIp = n3.subnet.split('/')[0];
          await waitUntil('n1 to drop n3’s ARP and FDB entries', 10_000, () =>
            withNodeRtnl(n1, (rtnl) => {
              const vtep = rtnl.linkByName('flannel.1');
              const arp = rtnl.neighbours(AF_INET, vtep?.index).some((n) => n.ip && formatIp(n.ip) === vtepIp);
              const fdb = rtnl.neighbours(AF_BRIDGE, vtep?.index).some((n) => n.ip && formatIp(n.ip) === n3.underlayIp);
              return !arp && !fdb;
            }),
          );
        }
        if (backend === 'udp') {
          await waitUntil('n1 to stop forwarding to n3', 10_000, () => /"removed":1/.test(flanneldLog(n1)));
        }
        assert.deepEqual(crossNodeFailures(state), [], 'the remaining nodes still reach each other');
      } finally {
        await clusterDown(state.name);
      }
    });
  });
}

test('vxlan: the neighbour, FDB and route entries are exactly what flannel installs', async () => {
  const state = await testCluster('vxlan', { pods: 0 });
  try {
    const [n1, ...others] = state.nodes as [NodeState, ...NodeState[]];
    const vtepMac = (node: NodeState) => withNodeRtnl(node, (rtnl) => rtnl.linkByName('flannel.1')?.mac ?? '');
    // cluster up returns once every node has its own lease; n1 learns the last ones from its
    // watch a moment later.
    await waitUntil('n1 to have a neighbour entry per other node', 10_000, () =>
      withNodeRtnl(n1, (rtnl) => rtnl.neighbours(AF_INET, rtnl.linkByName('flannel.1')?.index).length >= others.length),
    );
    withNodeRtnl(n1, (rtnl) => {
      const vtep = rtnl.linkByName('flannel.1');
      assert.ok(vtep, 'flannel.1 exists');
      assert.equal(vtep.mtu, 1450, 'underlay MTU minus 50');
      assert.deepEqual(
        rtnl.addresses(4, vtep.index).map((a) => formatIpNet(a.address)),
        [`${n1.subnet.split('/')[0]}/32`],
        'the VTEP carries its subnet’s network address /32',
      );
      const arp = rtnl.neighbours(AF_INET, vtep.index).map((n) => `${n.ip ? formatIp(n.ip) : ''} ${n.mac} ${n.state & NUD_PERMANENT ? 'permanent' : n.state}`).sort();
      const fdb = rtnl
        .neighbours(AF_BRIDGE, vtep.index)
        .filter((n) => n.ip)
        .map((n) => `${n.mac} dst ${n.ip ? formatIp(n.ip) : ''} ${n.state & NUD_PERMANENT ? 'permanent' : n.state}`)
        .sort();
      assert.deepEqual(arp, others.map((n) => `${formatIp(networkOf(parseIpNet(n.subnet)))} ${vtepMac(n)} permanent`).sort());
      assert.deepEqual(fdb, others.map((n) => `${vtepMac(n)} dst ${n.underlayIp} permanent`).sort());
    });
  } finally {
    await clusterDown(state.name);
  }
});
