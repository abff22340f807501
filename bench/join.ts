/**
 * Join time: `cluster add-node` through `pontoon join` (bootstrap token → CSR approved and
 * signed → kubeconfig with the node's certificate → kubelet → Node Ready), next to the path
 * add-node took before (`--no-token`: a static token appended for the node and the
 * apiserver restarted to read it, then the kubelet → Node Ready), on one lab, the two
 * alternating so load drifts hit both alike. Each sample is one new node, timed from the
 * add-node call to its Node's Ready condition; the join's own step (token → certificate in
 * the node's dir) is shown apart.
 *
 *   node build/bench/join.js [--nodes 3]      (per path; needs root and the bundle)
 */
import { parseArgs } from 'node:util';
import { RESOURCE } from '../src/api/resources.js';
import type { Node } from '../src/api/types.js';
import { formatTable } from '../src/cli/table.js';
import { addNode } from '../src/cli/cluster/add-node.js';
import { adminClient, clusterDown, clusterUp, type ClusterState } from '../src/cli/cluster/cluster.js';
import { checkpoint, RUN_PREFIX, runBench } from './lib/run.js';
import { formatNumber, formatRatio, median } from './lib/stats.js';

async function waitReady(state: ClusterState, name: string, timeoutMs = 120_000): Promise<void> {
  const api = adminClient(state);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const node = await api.get<Node>(RESOURCE.nodes, name);
    if (node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return;
    if (Date.now() > deadline) throw new Error(`node ${name} not Ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

runBench(async () => {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' } } });
  const perPath = Number(values.nodes);
  const name = `${RUN_PREFIX}join`;
  const state = await clusterUp({
    name, nodes: 1, backend: 'host-gw', racks: 1, podsPerNode: 0, directRouting: false, leaseTtlSeconds: 3600,
    controlPlane: true, subnetStore: 'kube', proxy: 'none', agents: 'process', progress: () => undefined,
  });
  const samples = { join: [] as number[], joinStep: [] as number[], static: [] as number[] };
  try {
    for (let i = 0; i < perPath; i++) {
      for (const path of ['join', 'static'] as const) {
        await checkpoint();
        const started = Date.now();
        let joinStepMs: number | undefined;
        const node = await addNode(state, {
          ...(path === 'static' ? { noToken: true } : {}),
          progress: (line) => {
            const match = /joined with its bootstrap token.*\((\d+) ms\)/.exec(line);
            if (match) joinStepMs = Number(match[1]);
          },
        });
        await waitReady(state, node.name);
        samples[path].push(Date.now() - started);
        if (joinStepMs !== undefined) samples.joinStep.push(joinStepMs);
      }
    }
  } finally {
    await clusterDown(name);
  }
  const join = median(samples.join);
  const reference = median(samples.static);
  console.log(`join time on one lab, ${perPath} node(s) per path, median ms (all samples):`);
  console.log(
    formatTable(
      ['PATH', 'MEDIAN MS', 'SAMPLES', 'VS --no-token'],
      [
        ['add-node via pontoon join (token → Ready)', formatNumber(join), samples.join.join(' '), formatRatio(join, reference)],
        ['  of which pontoon join (token → certificate)', formatNumber(median(samples.joinStep)), samples.joinStep.join(' '), formatRatio(median(samples.joinStep), reference)],
        ['add-node --no-token (static token, apiserver restart → Ready)', formatNumber(reference), samples.static.join(' '), '1.00x'],
      ],
    ),
  );
});
