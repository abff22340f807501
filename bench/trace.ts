/**
 * `pontoon trace` on an N-node lab (default 20; vxlan, nftables proxy): time per trace
 * end to end (the CLI process: apiserver lookups, snapshots fetched from the agents in
 * parallel, the walk), split into the state-gathering part and the walk, for a pod → pod
 * trace (2 nodes read) and a pod → Service trace whose endpoints are on every node (all N
 * read). The reference, measured in the same run: `ip netns exec <node> true` (the cheapest
 * way to look into one node namespace) and a CLI start that only prints its version.
 *
 *   node build/bench/trace.js [--nodes N] [--runs R]   (needs root)
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { adminClient, cliPath, clusterDown, clusterUp, type ClusterState } from '../src/cli/cluster/cluster.js';
import { RESOURCE } from '../src/api/resources.js';
import type { Pod } from '../src/api/types.js';
import { runTrace } from '../src/cli/trace.js';
import { fetchNetState } from '../src/debug/client.js';
import { FLANNELD_DEBUG_PORT } from '../src/debug/netstate.js';
import { tcpSocketIn } from '../src/lib/netns.js';
import { median } from './lib/stats.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

function wallMs(argv: string[]): number {
  const started = performance.now();
  const result = spawnSync(argv[0] ?? '', argv.slice(1), { stdio: 'ignore', timeout: 60_000 });
  if (result.status !== 0 && result.status !== 1) throw new BenchError(`${argv.join(' ')} exited ${String(result.status)}`);
  return performance.now() - started;
}

runBench(async () => {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '20' }, runs: { type: 'string', default: '7' } } });
  const nodes = Number(values.nodes);
  const runs = Number(values.runs);
  const name = `${RUN_PREFIX}tr`;
  let state: ClusterState | undefined;
  try {
    const upStarted = performance.now();
    state = await clusterUp({ name, nodes, backend: 'vxlan', racks: 1, podsPerNode: 0, directRouting: false, leaseTtlSeconds: 3600, controlPlane: true, subnetStore: 'kube', proxy: 'nftables', agents: 'process', progress: () => undefined });
    console.log(`lab: ${nodes} nodes up in ${((performance.now() - upStarted) / 1000).toFixed(0)} s`);
    const kubeconfig = state.controlPlane?.kubeconfig ?? '';
    const pods = state.nodes.map((node, i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `p${i}`, labels: { app: 'web' } },
      spec: { nodeName: node.name, terminationGracePeriodSeconds: 1, containers: [{ name: 'sleep', image: 'pontoon/sleep', command: ['/bin/sleep', '3600'] }] },
    }));
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } };
    const applied = spawnSync('/usr/bin/kubectl', ['apply', '-f', '-'], { input: [...pods, svc].map((o) => toYaml(o)).join('---\n'), encoding: 'utf8', env: { ...process.env, KUBECONFIG: kubeconfig } });
    if (applied.status !== 0) throw new BenchError(`kubectl apply: ${applied.stderr}`);
    const api = adminClient(state);
    for (;;) {
      const list = await api.list<Pod>(RESOURCE.pods, 'default');
      if (list.items.length === nodes && list.items.every((p) => p.status?.podIP)) break;
      await new Promise((r) => setTimeout(r, 500));
      await checkpoint();
    }
    const last = `p${nodes - 1}`;
    const cli = (...args: string[]): string[] => [process.execPath, cliPath(), ...args];
    const lab = state;
    const access = {
      endpoints: (node: string) => [{ host: '127.0.0.1', port: FLANNELD_DEBUG_PORT, createSocket: () => tcpSocketIn(lab.nodes.find((n) => n.name === node)?.netns, false) }],
    };
    const rows: { what: string; ms: number[] }[] = [
      { what: 'reference: ip netns exec <node> true', ms: [] },
      { what: 'reference: pontoon --version (CLI start)', ms: [] },
      { what: 'one agent snapshot (GET /debug/netstate)', ms: [] },
      { what: 'trace pod→pod CLI, end to end', ms: [] },
      { what: 'trace pod→pod in-process: gathering', ms: [] },
      { what: 'trace pod→pod in-process: walk', ms: [] },
      { what: `trace pod→svc (${nodes} endpoints) CLI, end to end`, ms: [] },
      { what: `trace pod→svc in-process: gathering (${nodes} nodes)`, ms: [] },
      { what: 'trace pod→svc in-process: walk (+ variants)', ms: [] },
    ];
    const row = (i: number): number[] => rows[i]!.ms;
    for (let r = 0; r < runs; r++) {
      // Alternated within a round so a load spike hits the reference and the traces alike.
      row(0).push(wallMs(['ip', 'netns', 'exec', lab.nodes[0]!.netns, 'true']));
      row(1).push(wallMs(cli('--version')));
      const t0 = performance.now();
      await fetchNetState(access.endpoints(lab.nodes[0]!.name)[0]!, lab.nodes[0]!.name);
      row(2).push(performance.now() - t0);
      row(3).push(wallMs(cli('trace', 'pod/p0', `pod/${last}`, '--port', '8080', '--cluster', name)));
      const podTrace = await runTrace({ api, access, src: 'pod/p0', dst: `pod/${last}`, namespace: 'default', port: 8080 });
      if (!podTrace.result.arrived) throw new BenchError(`pod trace did not arrive: ${JSON.stringify(podTrace.result.hops.at(-1))}`);
      row(4).push(podTrace.fetchMs);
      row(5).push(podTrace.walkMs);
      row(6).push(wallMs(cli('trace', 'pod/p0', 'svc/web', '--cluster', name)));
      const walkStarted = performance.now();
      const svcTrace = await runTrace({ api, access, src: 'pod/p0', dst: 'svc/web', namespace: 'default' });
      row(7).push(svcTrace.fetchMs);
      row(8).push(performance.now() - walkStarted - svcTrace.fetchMs);
      await checkpoint();
    }
    const reference = median(row(0));
    console.log(`\n${'what'.padEnd(52)} ${'median ms'.padStart(10)} ${'max ms'.padStart(8)} ${'× netns exec'.padStart(13)}`);
    for (const { what, ms } of rows) console.log(`${what.padEnd(52)} ${median(ms).toFixed(1).padStart(10)} ${Math.max(...ms).toFixed(1).padStart(8)} ${(median(ms) / reference).toFixed(1).padStart(13)}`);
    const target = median(row(6)) <= 1000 && median(row(3)) <= 1000;
    console.log(`\ntarget ≤ 1 s per trace (CLI, end to end): ${target ? 'met' : 'NOT met'}; ${runs} runs, ${nodes} nodes`);
  } finally {
    // clusterUp that failed half way leaves what it made under the name: remove it too.
    await clusterDown(state?.name ?? name);
  }
});
