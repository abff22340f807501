/**
 * The BGP backend in the lab, Calico-style: 4 nodes on 2 racks joined by a router, one route
 * reflector per rack, IPIP cross-subnet. Every pod reaches every pod; only traffic between
 * racks is IPIP (seen on the wire); a route reflector killed with -9 leaves the others'
 * routes and traffic alone; a speaker restarted gracefully loses no packet and removes no
 * route; a deleted Node's block leaves every other node.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { type ClusterState, type NodeState, removeNode, restartComponent, saveState } from '../../src/cli/cluster/cluster.js';
import { RTPROT_PONTOON_BGP } from '../../src/bgp/kernel.js';
import { run } from '../../src/lib/exec.js';
import { allPods, crossNodeFailures, testCluster, waitUntil } from '../helpers/cluster.js';
import { clusterDown } from '../../src/cli/cluster/cluster.js';

/**
 * `count` pings at 50/s; each may take 2 s to come back, so none is counted lost for being in
 * flight when the run ends (ping -w would).
 */
function pingCount(fromNetns: string, ip: string, count: number): Promise<{ sent: number; received: number }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', fromNetns, 'ping', '-i', '0.02', '-W', '2', '-c', String(count), ip], { stdio: ['ignore', 'pipe', 'ignore'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', () => {
      const match = /(\d+) packets transmitted, (\d+) received/.exec(output);
      resolve({ sent: Number(match?.[1] ?? 0), received: Number(match?.[2] ?? 0) });
    });
  });
}

const routesOf = (node: NodeState): string => run('ip', ['-4', 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)], { netns: node.netns });

/**
 * Captures IPv4 headers on a node's eth0 while `traffic` runs; returns `src dst proto` lines.
 * It stops once a last ping to `sentinel` (another node's underlay address, resent until
 * answered) has its reply printed: tcpdump prints in order, so everything before it is in
 * the text too.
 */
async function capture(node: NodeState, sentinel: string, traffic: () => Promise<void> | void): Promise<string[]> {
  const dump = spawn('ip', ['netns', 'exec', node.netns, 'tcpdump', '-l', '-n', '-i', 'eth0', '-v', 'ip and not tcp port 179'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  dump.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  await new Promise<void>((resolve) => dump.stderr.once('data', () => resolve())); // "listening on eth0"
  await traffic();
  const replied = (): boolean => text.includes(`${sentinel} > ${node.underlayIp}: ICMP echo reply`);
  await waitUntil('the sentinel reply in the capture', 10_000, () => {
    if (replied()) return true;
    // A lost sentinel is sent again: ping's exit status is not what this waits on.
    spawnSync('ip', ['netns', 'exec', node.netns, 'ping', '-c', '1', '-W', '1', sentinel]);
    return replied();
  });
  dump.kill();
  await new Promise((resolve) => dump.once('close', resolve));
  // `-v` prints "IP (tos …, proto ICMP (1), …)" then "    A > B: …" on the next line.
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const proto = /proto (\S+) \((\d+)\)/.exec(lines[i] ?? '')?.[2];
    const addresses = /^\s+(\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > (\d+\.\d+\.\d+\.\d+)/.exec(lines[i + 1] ?? '');
    if (proto && addresses) out.push(`${addresses[1]} ${addresses[2]} ${proto}`);
  }
  return out;
}

describe('bgp backend: 4 nodes, 2 racks, a route reflector per rack, IPIP cross-subnet', () => {
  let state: ClusterState;
  before(async () => {
    state = await testCluster('bgp', { nodes: 4, racks: 2, pods: 1, controlPlane: true, proxy: 'none', routeReflectors: 1, ipip: 'cross-subnet' });
  });
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  const node = (name: string): NodeState => {
    const found = state.nodes.find((n) => n.name === name);
    assert.ok(found, name);
    return found;
  };

  test('every pod reaches every pod; only traffic between racks is IPIP', async () => {
    await waitUntil('every node has a route to every other block', 30_000, () => state.nodes.every((n) => state.nodes.every((m) => m === n || routesOf(n).includes(m.subnet))));
    await waitUntil('every pod pair answers', 30_000, () => crossNodeFailures(state).length === 0);
    // n1 is on rack 0 with n3; n2 and n4 are on rack 1.
    const n1 = node('n1');
    const from = n1.pods[0];
    assert.ok(from);
    const packets = await capture(n1, node('n3').underlayIp, () => {
      for (const { pod } of allPods(state)) if (pod !== from) run('ping', ['-c', '2', '-W', '2', pod.ip], { netns: from.netns });
    });
    const ipip = packets.filter((p) => p.endsWith(' 4'));
    const sameRack = node('n3').pods[0]?.ip ?? '';
    assert.ok(ipip.some((p) => p.startsWith(`${n1.underlayIp} 198.18.1.`)), `IPIP towards rack 1 is on the wire:\n${packets.join('\n')}`);
    assert.ok(ipip.every((p) => /^198\.18\.\d+\.\d+ 198\.18\.\d+\.\d+ 4$/.test(p) && p.split(' ')[0]?.split('.')[2] !== p.split(' ')[1]?.split('.')[2]), `IPIP only between racks:\n${ipip.join('\n')}`);
    assert.ok(packets.some((p) => p === `${from.ip} ${sameRack} 1`), `plain ICMP within the rack:\n${packets.join('\n')}`);
    assert.match(run('ip', ['link', 'show', 'pipip0'], { netns: n1.netns }), /mtu 1480/);
  });

  test('kill -9 of one route reflector: the other keeps the routes and pods keep talking', async () => {
    const n2 = node('n2'); // the rack-1 reflector
    const n3 = node('n3');
    const n4 = node('n4');
    const before_ = routesOf(n3);
    const stream = pingCount(n3.pods[0]?.netns ?? '', n4.pods[0]?.ip ?? '', 200);
    assert.ok(n2.bgpPid);
    process.kill(n2.bgpPid, 'SIGKILL');
    const { sent, received } = await stream;
    assert.ok(sent > 50 && received === sent, `n3 → n4 kept flowing with n2's reflector dead: ${received}/${sent}`);
    assert.equal(routesOf(n3), before_, 'n3 kept every route (n1 still reflects them)');
    n2.bgpPid = await restartComponent(state, 'bgp', 'n2');
    saveState(state);
    await waitUntil('n2 back with routes to every block', 30_000, () => state.nodes.every((m) => m === n2 || routesOf(n2).includes(m.subnet)));
  });

  test('a graceful speaker restart loses no packet and removes no route', async () => {
    const n3 = node('n3');
    const n4 = node('n4');
    const monitor = spawn('ip', ['-n', n3.netns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let events = '';
    monitor.stdout.on('data', (chunk: Buffer) => (events += chunk.toString()));
    const stream = pingCount(n3.pods[0]?.netns ?? '', n4.pods[0]?.ip ?? '', 250);
    await restartComponent(state, 'bgp', 'n3');
    const { sent, received } = await stream;
    monitor.kill();
    assert.ok(sent > 50, `pings sent: ${sent}`);
    assert.equal(received, sent, 'no packet lost while n3’s speaker restarted');
    assert.deepEqual(events.split('\n').filter((l) => l.startsWith('Deleted') && l.includes('10.244.')), [], 'no route of ours was removed on n3');
  });

  test('a deleted Node’s block leaves every other node within seconds', async () => {
    const n4 = node('n4');
    const block = n4.subnet;
    await removeNode(state, n4);
    await waitUntil(`${block} gone from every node`, 15_000, () => state.nodes.every((n) => !routesOf(n).includes(block)));
  });
});
