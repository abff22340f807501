/**
 * Node agents as DaemonSets vs as processes, on a 3-node lab (issue 12's "DaemonSet rollout
 * time of the agents on 3 nodes"). In the same run:
 *   - daemonset: `kubectl apply -f` of deploy/pontoon.yaml (filled as cluster up fills it) →
 *     `kubectl rollout status` complete for every agent DaemonSet, on nodes whose agents were
 *     deleted with `kubectl delete -f` just before (the data plane stays, as agents never
 *     flush); then a RollingUpdate (a template annotation changed, maxUnavailable 1) →
 *     rollout status complete
 *   - process (the reference): the same agents (flanneld, proxy) stopped, then started as
 *     processes on every node at once → each healthy (first successful sync, health.ts); then
 *     restarted one node at a time, the way a rolling update with maxUnavailable 1 goes
 * and prints the medians and the ratios daemonset / process.
 *
 *   node build/bench/daemonset.js [--rounds 3]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kubectl } from '../src/cli/cluster/agents.js';
import { clusterDown, clusterUp, type ClusterState, nodeDaemonWatches, saveState, startFlanneld, startProxy, stopProcess } from '../src/cli/cluster/cluster.js';
import { agentsManifest, enabledAgents } from '../src/cli/cluster/daemonset-mode.js';
import { AGENT_DAEMONSETS, AGENT_NAMESPACE } from '../src/cli/cluster/agents.js';
import { waitHealthy } from '../src/cli/cluster/health.js';
import { checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function up(name: string, agents: 'daemonset' | 'process'): Promise<ClusterState> {
  return clusterUp({
    name,
    nodes: 3,
    backend: 'vxlan',
    racks: 1,
    podsPerNode: 0,
    directRouting: false,
    leaseTtlSeconds: 3600,
    controlPlane: true,
    subnetStore: 'kube',
    proxy: 'nftables',
    agents,
    dns: false,
    progress: () => undefined,
  });
}

function daemonsetRounds(state: ClusterState, rounds: number): { applyMs: number[]; rollingMs: number[] } {
  const cp = state.controlPlane;
  if (!cp) throw new Error('no control plane');
  const cache = join(state.stateDir, 'kube-cache');
  const k = (args: string[], input?: string): string => kubectl(cp.kubeconfig, cache, args, input);
  const manifest = agentsManifest(state);
  const daemonSets = enabledAgents(state).map((c) => AGENT_DAEMONSETS[c].daemonSet);
  const rolloutStatus = (): void => {
    for (const ds of daemonSets) k(['rollout', 'status', `daemonset/${ds}`, '-n', AGENT_NAMESPACE, '--timeout=180s']);
  };
  const applyMs: number[] = [];
  const rollingMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    k(['delete', '-f', '-', '--wait=true'], manifest);
    let started = performance.now();
    k(['apply', '-f', '-'], manifest);
    rolloutStatus();
    applyMs.push(performance.now() - started);

    started = performance.now();
    for (const ds of daemonSets) k(['patch', 'daemonset', ds, '-n', AGENT_NAMESPACE, '--type=merge', '-p', JSON.stringify({ spec: { template: { metadata: { annotations: { 'bench.pontoon.dev/round': String(round) } } } } })]);
    rolloutStatus();
    rollingMs.push(performance.now() - started);
  }
  return { applyMs, rollingMs };
}

async function processRounds(state: ClusterState, rounds: number): Promise<{ startMs: number[]; rollingMs: number[] }> {
  const startMs: number[] = [];
  const rollingMs: number[] = [];
  const stopAgents = async (nodes: ClusterState['nodes']): Promise<void> => {
    await Promise.all(nodes.flatMap((n) => [stopProcess(n.flanneldPid, 'flanneld'), n.proxyPid === undefined ? undefined : stopProcess(n.proxyPid, 'proxy')]));
  };
  const startAgents = (nodes: ClusterState['nodes']): void => {
    for (const node of nodes) {
      node.proxyPid = startProxy(state, node);
      node.flanneldPid = startFlanneld(state, node);
    }
    saveState(state);
  };
  const agentWatches = (nodes: ClusterState['nodes']) => nodes.flatMap((n) => nodeDaemonWatches(n).filter((w) => w.marker !== 'kubelet'));
  for (let round = 0; round < rounds; round++) {
    await stopAgents(state.nodes);
    let started = performance.now();
    startAgents(state.nodes);
    await waitHealthy(agentWatches(state.nodes));
    startMs.push(performance.now() - started);

    started = performance.now();
    for (const node of state.nodes) {
      await stopAgents([node]);
      startAgents([node]);
      await waitHealthy(agentWatches([node]));
    }
    rollingMs.push(performance.now() - started);
    await checkpoint();
  }
  return { startMs, rollingMs };
}

runBench(async () => {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Math.max(1, Number(values.rounds));
  const dsName = `${RUN_PREFIX}ds`;
  const procName = `${RUN_PREFIX}proc`;
  try {
    const ds = await up(dsName, 'daemonset');
    const daemonset = daemonsetRounds(ds, rounds);
    await clusterDown(dsName);
    await checkpoint();
    const proc = await up(procName, 'process');
    const processMode = await processRounds(proc, rounds);
    await clusterDown(procName);

    const rows: [string, number, number][] = [
      ['all 3 nodes at once (apply → rollout status | start → healthy)', median(daemonset.applyMs), median(processMode.startMs)],
      ['rolling, one node at a time (RollingUpdate | restart per node)', median(daemonset.rollingMs), median(processMode.rollingMs)],
    ];
    console.log(`node agents (flanneld + proxy) on 3 nodes, median of ${rounds} round(s)`);
    console.log('what                                                            daemonset   process   ratio');
    for (const [what, dsMs, procMs] of rows) {
      console.log(`${what.padEnd(64)}${`${dsMs.toFixed(0)} ms`.padStart(9)}${`${procMs.toFixed(0)} ms`.padStart(10)}${`${(dsMs / procMs).toFixed(2)}×`.padStart(8)}`);
    }
  } finally {
    await clusterDown(dsName).catch(() => undefined);
    await clusterDown(procName).catch(() => undefined);
  }
});
