/**
 * The cost of the network-only lab's kubelet path (issue 13): `GET pods/<p>/log` through the
 * apiserver, which dials the kubelet over TLS on 198.18.0.x:10250 from the ctl namespace
 * (a new connection and handshake per request, as upstream without a pooled transport),
 * against the reference in the same run: the same request with `--control-plane-access
 * socket`, where the apiserver reaches the kubelet over its unix socket. Also `cluster up`
 * time of each lab (the network one issues a serving certificate per node). One 2-node lab
 * at a time, process agents, no proxy; prints medians, p99 and the ratios network / socket.
 *
 *   node build/bench/kubelet-api.js [--requests 200]
 */
import { parseArgs } from 'node:util';
import { clusterDown, clusterUp, adminClient, type ClusterState } from '../src/cli/cluster/cluster.js';
import type { ControlPlaneAccess } from '../src/cli/cluster/control-plane.js';
import { RESOURCE } from '../src/api/resources.js';
import type { Pod } from '../src/api/types.js';
import { checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN;
}

interface Measured {
  upMs: number;
  logMs: number[];
}

async function measure(access: ControlPlaneAccess, requests: number): Promise<Measured> {
  const name = `${RUN_PREFIX}${access === 'network' ? 'net' : 'sock'}`;
  const started = performance.now();
  let state: ClusterState | undefined;
  try {
    state = await clusterUp({
      name, nodes: 2, backend: 'host-gw', racks: 1, podsPerNode: 0, directRouting: false, leaseTtlSeconds: 3600,
      controlPlane: true, subnetStore: 'kube', proxy: 'none', agents: 'process', dns: false, controlPlaneAccess: access, progress: () => undefined,
    });
    const upMs = performance.now() - started;
    const api = adminClient(state);
    await api.create<Pod>(RESOURCE.pods, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'talker', namespace: 'default' },
      spec: { nodeName: 'n2', containers: [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'seq 1 50; exec sleep 3600'] }] },
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pod = await api.get<Pod>(RESOURCE.pods, 'talker', 'default');
      if (pod?.status?.phase === 'Running') break;
      if (Date.now() > deadline) throw new Error(`pod talker did not run on the ${access} lab`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const logMs: number[] = [];
    for (let i = 0; i < requests; i++) {
      const t = performance.now();
      const text = await api.requestText('GET', '/api/v1/namespaces/default/pods/talker/log');
      logMs.push(performance.now() - t);
      if (!text.includes('\n50\n')) throw new Error(`unexpected log on the ${access} lab: ${text.slice(0, 80)}`);
      if (i % 20 === 0) await checkpoint();
    }
    return { upMs, logMs };
  } finally {
    await clusterDown(name);
  }
}

runBench(async () => {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '200' } } });
  const requests = Number(values.requests);
  const socket = await measure('socket', requests);
  await checkpoint();
  const network = await measure('network', requests);
  const row = (what: string, n: number, s: number): string => `${what.padEnd(28)} network ${n.toFixed(2).padStart(8)}  socket ${s.toFixed(2).padStart(8)}  ratio ${(n / s).toFixed(2)}x`;
  console.log(`kubelet API path, ${requests} sequential GET pods/log (ms)`);
  console.log(row('log median', quantile(network.logMs, 0.5), quantile(socket.logMs, 0.5)));
  console.log(row('log p99', quantile(network.logMs, 0.99), quantile(socket.logMs, 0.99)));
  console.log(row('cluster up, 2 nodes', network.upMs, socket.upMs));
});
