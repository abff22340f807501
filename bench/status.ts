/**
 * `pontoon status` on a lab of --nodes nodes (default 20; issue 14's target: ≤ 1 s). In the
 * same run:
 *   - `pontoon status --cluster NAME` as a user runs it (a fresh process: bundle load, three
 *     API lists, /healthz and /metrics of every daemon on every node, in parallel);
 *   - the gathering alone, in this process (`gatherSnapshot`), to show what the process start costs;
 *   - the reference: `kubectl get nodes` against the same apiserver (one list, no daemons asked).
 * Prints the medians and the ratio status / kubectl.
 *
 *   node build/bench/status.js [--nodes 20] [--rounds 5]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { cliPath, clusterDown, clusterUp } from '../src/cli/cluster/cluster.js';
import { gatherSnapshot, problemsOf } from '../src/cli/status/snapshot.js';
import { labSource } from '../src/cli/status/sources.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function timed(argv: readonly string[], env?: NodeJS.ProcessEnv): { ms: number; status: number; stdout: string } {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8', env: env ?? process.env, maxBuffer: 64 << 20 });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, status: result.status ?? -1, stdout: result.stdout };
}

runBench(async () => {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '20' }, rounds: { type: 'string', default: '5' } } });
  const nodes = Number(values.nodes);
  const rounds = Number(values.rounds);
  const name = `${RUN_PREFIX}status`;
  const started = Date.now();
  try {
    const state = await clusterUp({ name, nodes, backend: 'vxlan', racks: 2, podsPerNode: 0, directRouting: false, leaseTtlSeconds: 3600, controlPlane: true, subnetStore: 'kube', proxy: 'nftables', agents: 'process', dns: false, progress: () => undefined });
    console.log(`lab of ${nodes} nodes (vxlan, 2 racks, process agents: kubelet, flanneld, proxy) up in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    await checkpoint();
    const kubeconfig = state.controlPlane?.kubeconfig ?? '';
    // Warm-up (page cache of the bundle and kubectl), and the cluster must be healthy to count.
    const first = timed([process.execPath, cliPath(), 'status', '--cluster', name]);
    if (first.status !== 0) throw new BenchError(`pontoon status says the lab is not healthy:\n${first.stdout}`);
    timed(['kubectl', '--kubeconfig', kubeconfig, 'get', 'nodes']);
    const statusMs: number[] = [];
    const gatherMs: number[] = [];
    const kubectlMs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      statusMs.push(timed([process.execPath, cliPath(), 'status', '--cluster', name]).ms);
      const t0 = Date.now();
      const snapshot = await gatherSnapshot(labSource(state, 2000));
      gatherMs.push(Date.now() - t0);
      if (problemsOf(snapshot).length > 0) throw new BenchError(`problems during the run: ${problemsOf(snapshot).join('; ')}`);
      const k = timed(['kubectl', '--kubeconfig', kubeconfig, 'get', 'nodes']);
      if (k.status !== 0) throw new BenchError('kubectl get nodes failed');
      kubectlMs.push(k.ms);
      await checkpoint();
    }
    const s = median(statusMs);
    const k = median(kubectlMs);
    console.log(`median of ${rounds} rounds; ${nodes} nodes × 3 daemons × 2 requests + 2 control-plane components`);
    console.log('what                                        ms');
    console.log(`pontoon status (fresh process)        ${s.toFixed(0).padStart(7)}   target ≤ 1000`);
    console.log(`  of which gathering (in-process)     ${median(gatherMs).toFixed(0).padStart(7)}`);
    console.log(`kubectl get nodes (reference)         ${k.toFixed(0).padStart(7)}`);
    console.log(`ratio status / kubectl get nodes      ${(s / k).toFixed(2).padStart(7)}×`);
  } finally {
    await clusterDown(name).catch(() => undefined);
  }
});
