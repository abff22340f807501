/** Two racks joined by a router: host-gw refuses the far rack; vxlan+DirectRouting mixes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterDown, type NodeState } from '../../src/cli/cluster/cluster.js';
import { formatIp, formatIpNet } from '../../src/lib/ip.js';
import { FLANNEL_ROUTE_PROTOCOL } from '../../src/flanneld/backend/backend.js';
import { crossNodeFailures, flanneldLog, pingOnce, testCluster, waitUntil, withNodeRtnl } from '../helpers/cluster.js';

function routeTo(node: NodeState, subnet: string): string | undefined {
  return withNodeRtnl(node, (rtnl) => {
    const route = rtnl.routes(4).find((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL && r.dst && formatIpNet(r.dst) === subnet);
    if (!route) return undefined;
    const device = route.oif !== undefined ? rtnl.linkByIndex(route.oif)?.name : '?';
    return `via ${route.gateway ? formatIp(route.gateway) : '-'} dev ${device}`;
  });
}

test('host-gw across racks: same-rack nodes are routed, the other rack is refused with a clear error', async () => {
  const state = await testCluster('host-gw', { racks: 2, pods: 1 }); // n1,n3 on rack 0; n2 on rack 1
  try {
    const [n1, n2, n3] = state.nodes as [NodeState, NodeState, NodeState];
    assert.equal(routeTo(n1, n3.subnet), `via ${n3.underlayIp} dev eth0`);
    assert.equal(routeTo(n1, n2.subnet), undefined, 'no route that would blackhole via the router');
    await waitUntil('the refusal in n1’s log', 5000, () => /not on this node's L2 segment 198\.18\.0\.0\/24: host-gw needs every node on one segment/.test(flanneldLog(n1)));
    assert.ok(pingOnce(n1.pods[0]!.netns, n3.pods[0]!.ip));
  } finally {
    await clusterDown(state.name);
  }
});

test('vxlan with DirectRouting: plain routes inside a rack, VXLAN across the router', async () => {
  const state = await testCluster('vxlan', { racks: 2, pods: 1, directRouting: true });
  try {
    const [n1, n2, n3] = state.nodes as [NodeState, NodeState, NodeState];
    assert.equal(routeTo(n1, n3.subnet), `via ${n3.underlayIp} dev eth0`);
    assert.equal(routeTo(n1, n2.subnet), `via ${n2.subnet.split('/')[0]} dev flannel.1`);
    assert.deepEqual(crossNodeFailures(state), []);
  } finally {
    await clusterDown(state.name);
  }
});
