/**
 * The BGP backend's top-of-rack topology in the lab: 4 nodes on 2 racks, each rack its own AS
 * (64512 + rack), every node peering eBGP only with the router namespace's speaker (AS 65000,
 * `pontoon bgp --config`), which installs every block into the router's kernel. No IPIP: the
 * router routes pod traffic between racks plainly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { type ClusterState, cliPath, clusterDown, routerBgpSocket } from '../../src/cli/cluster/cluster.js';
import { RTPROT_PONTOON_BGP } from '../../src/bgp/kernel.js';
import type { SpeakerStatus } from '../../src/bgp/control.js';
import { run } from '../../src/lib/exec.js';
import { crossNodeFailures, testCluster, waitUntil } from '../helpers/cluster.js';

const routesIn = (netns: string): string => run('ip', ['-4', 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)], { netns });

function routerStatus(state: ClusterState): SpeakerStatus | undefined {
  const result = spawnSync(process.execPath, [cliPath(), 'bgp', 'status', '--socket', routerBgpSocket(state), '--json'], { encoding: 'utf8', timeout: 5000 });
  return result.status === 0 ? (JSON.parse(result.stdout) as SpeakerStatus) : undefined;
}

describe('bgp backend, topology tor: 4 nodes, 2 racks, each rack an AS, eBGP with the router', () => {
  let state: ClusterState;
  before(async () => {
    state = await testCluster('bgp', { nodes: 4, racks: 2, pods: 1, controlPlane: true, proxy: 'none', bgpTopology: 'tor' });
  });
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  test('the router speaker has 4 Established eBGP peers', async () => {
    assert.equal(state.bgp?.topology, 'tor');
    assert.equal(state.bgp?.ipip, 'never');
    await waitUntil('4 Established peers on the router', 30_000, () => routerStatus(state)?.peers.filter((p) => p.state === 'Established').length === 4);
    const status = routerStatus(state);
    assert.ok(status);
    assert.equal(status.peers.length, 4);
    assert.equal(status.asn, 65000);
    assert.ok(status.peers.every((p) => p.type === 'ebgp'), `every peer is eBGP:\n${JSON.stringify(status.peers, null, 2)}`);
    for (const n of state.nodes) assert.equal(status.peers.find((p) => p.address === n.underlayIp)?.asn, 64512 + n.rack, `${n.name} is AS 64512+${n.rack}`);
    const text = run(process.execPath, [cliPath(), 'bgp', 'status', '--socket', routerBgpSocket(state)]);
    assert.equal((text.match(/Established/g) ?? []).length, 4, text);
  });

  test("the router's kernel has every node's block (proto 88)", async () => {
    const router = state.router;
    assert.ok(router);
    await waitUntil('every block in the router', 30_000, () => state.nodes.every((n) => routesIn(router).includes(n.subnet)));
    const routes = routesIn(router);
    for (const n of state.nodes) assert.match(routes, new RegExp(`${n.subnet.replaceAll('.', '\\.')} via ${n.underlayIp.replaceAll('.', '\\.')} `), routes);
  });

  test('every pod pair answers, without IPIP', async () => {
    // Each node learns the other rack's blocks from the router (its own rack's come back with
    // its own AS in the path and are dropped: same-rack traffic takes the default route).
    await waitUntil('every node routes the other rack’s blocks via its router', 30_000, () =>
      state.nodes.every((n) => state.nodes.every((m) => m.rack === n.rack || routesIn(n.netns).includes(`${m.subnet} via 198.18.${n.rack}.1 `))),
    );
    await waitUntil('every pod pair answers', 30_000, () => crossNodeFailures(state).length === 0);
    for (const n of state.nodes) assert.doesNotMatch(run('ip', ['link', 'show'], { netns: n.netns }), /pipip0/);
  });
});
