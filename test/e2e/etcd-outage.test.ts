/**
 * The subnet store's etcd killed (-9) and started again during cross-node traffic, in a vxlan
 * lab without a control plane (flanneld on etcd, as upstream flannel): while it is down
 * every flanneld says so in its log and keeps the data plane — pings lose at most 1 %, the
 * routes, FDB and neighbour entries stay and `ip monitor` sees nothing deleted; once it is
 * back every lease watch says it resumed, and it really is live: a lease deleted in etcd is
 * seen by its owner, renewed, and the kernels converge to the state before.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clusterDown, cliPath, type ClusterState, type NodeState, restartComponent } from '../../src/cli/cluster/cluster.js';
import { run } from '../../src/lib/exec.js';
import { pingStream, testCluster, waitUntil } from '../helpers/cluster.js';
import { DeletionMonitor, diff, kernelState } from '../helpers/faults.js';

describe('etcd down, then up, under flanneld', () => {
  let state: ClusterState;

  before(async () => {
    state = await testCluster('vxlan', { nodes: 2, pods: 1 });
  });

  after(async () => {
    if (state) await clusterDown(state.name);
  });

  const flanneldLog = (node: NodeState): string => join(node.dir, 'flanneld.log');
  /** The flanneld log lines of `node` written since `offset` that carry `message`. */
  const logged = (node: NodeState, offset: number, message: string): boolean => readFileSync(flanneldLog(node)).subarray(offset).toString().split('\n').some((l) => l.includes(message));

  test('the data plane stays through the outage, the logs say what happened, the watches resume', async () => {
    const [n1, n2] = state.nodes;
    assert.ok(n1 && n2);
    const from = n1.pods[0];
    const to = n2.pods[0];
    assert.ok(from && to);
    const kernelBefore = state.nodes.map((n) => kernelState(n, 'vxlan'));
    const offsets = state.nodes.map((n) => statSync(flanneldLog(n)).size);
    const monitor = new DeletionMonitor(state.nodes);
    const pings = pingStream(from.netns, to.ip, 8);
    let deletions: string[] = [];
    try {
      process.kill(state.etcd.pid, 'SIGKILL');
      await waitUntil('every flanneld to log that its lease watch lost etcd', 30_000, () => state.nodes.every((n, i) => logged(n, offsets[i] ?? 0, 'lease watch lost the store; data plane kept')));
      assert.deepEqual(
        state.nodes.map((n) => kernelState(n, 'vxlan')),
        kernelBefore,
        'the kernel state changed while etcd was down',
      );
      await restartComponent(state, 'etcd');
      await waitUntil('every flanneld to log that its lease watch resumed', 60_000, () => state.nodes.every((n, i) => logged(n, offsets[i] ?? 0, 'lease watch resumed')));
    } finally {
      deletions = monitor.stop();
    }
    assert.deepEqual(deletions, [], 'the outage deleted kernel state');
    const { sent, received } = await pings;
    assert.ok(sent >= 100, `the ping stream ran (${sent} sent)`);
    assert.ok(received >= sent * 0.99, `pings lost over 1 %: ${received}/${sent}`);

    // The resumed watches are live: n2's lease deleted in etcd is renewed by n2 at once, and
    // n1 follows it (the route to n2 goes and comes back).
    const offset = statSync(flanneldLog(n2)).size;
    run(process.execPath, [cliPath(), 'network', 'remove-lease', '--etcd-endpoints', 'http://127.0.0.1:2379', n2.subnet], { netns: state.etcd.netns });
    await waitUntil('n2 to see its lease removed and renew it', 30_000, () => logged(n2, offset, 'our lease was removed from the store; renewing it now'));
    await waitUntil('both kernels back to the state before', 60_000, () => state.nodes.every((n, i) => kernelState(n, 'vxlan') === kernelBefore[i])).catch(() => {
      assert.fail(state.nodes.map((n, i) => `${n.name}:\n${diff(kernelBefore[i] ?? '', kernelState(n, 'vxlan'))}`).join('\n'));
    });
  });
});
