/**
 * End-to-end pod startup on a real lab cluster (`clusterUp` with the control plane and the
 * kube subnet store): `pods` Pods created through the apiserver with the admin token, each
 * timed from the start of its create request to the first watch event that shows it
 * `Running` with a `status.podIP` — scheduler, binding, kubelet sandbox, CNI ADD, container
 * start and the status write all included.
 *
 * Reference in the same run: the network setup alone, a bare CNI ADD (and DEL) of
 * pontoon-flannel on a node through `podCni`, as `cluster up` networks static pods; half of
 * the runs before the pods and half after, so both sides see the same machine. The ratio
 * startup p50 / ADD p50 is what the Kubernetes machinery costs over the network plumbing
 * it drives.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeList } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Namespace, Node, Pod } from '../../src/api/types.js';
import { adminClient, clusterDown, clusterUp, podCni, stateDirOf, type ClusterState, type NodeState } from '../../src/cli/cluster/cluster.js';
import { makeNamespace } from '../../src/cli/cluster/topology.js';
import type { KubeClient } from '../../src/client/client.js';
import { describeError, PontoonError } from '../../src/lib/errors.js';
import { deleteNetns } from '../../src/lib/netns.js';
import { pump } from './apiserver-writes.js';
import { nowMs } from './stats.js';

export interface PodBenchOptions {
  clusterName: string;
  nodes: number;
  pods: number;
  /** Creates in flight at once (a Deployment scale-up sends them about this way). */
  concurrency: number;
  cniRuns: number;
  timeoutMs: number;
  checkpoint: () => Promise<void>;
  progress: (line: string) => void;
}

export interface PodBenchResult {
  nodes: number;
  pods: number;
  concurrency: number;
  /** Per pod, create start → Running with an IP, ms. */
  startupMs: number[];
  /** First create start → last pod Running, ms. */
  totalMs: number;
  podsPerNode: Record<string, number>;
  cniAddMs: number[];
  cniDelMs: number[];
  cniNode: string;
}

export class PodBenchError extends PontoonError {}

const NAMESPACE = 'bench-pods';
const BUSYBOX = '/bin/busybox';

function benchPod(index: number): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `web-${index}`, namespace: NAMESPACE, labels: { app: 'bench-web' } },
    spec: {
      containers: [{ name: 'httpd', image: 'busybox', command: [BUSYBOX, 'httpd', '-f', '-p', '8080'], ports: [{ containerPort: 8080 }] }],
      terminationGracePeriodSeconds: 1,
    },
  };
}

function isReadyNode(node: Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** One bare CNI ADD then DEL on `node`, in a fresh pod namespace named under the cluster. */
function timedCni(state: ClusterState, node: NodeState, run: number): { addMs: number; delMs: number } {
  const netns = makeNamespace(`${state.name}-cniref${run}`);
  const pod = { netns, containerId: `bench-cniref-${run}` };
  try {
    const started = nowMs();
    podCni(node, 'ADD', pod);
    const added = nowMs();
    podCni(node, 'DEL', pod);
    return { addMs: added - started, delMs: nowMs() - added };
  } finally {
    deleteNetns(netns);
  }
}

async function waitForNodes(client: KubeClient, state: ClusterState, timeoutMs: number): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  let last: Node[] = [];
  for (;;) {
    last = (await client.list<Node>(RESOURCE.nodes)).items;
    if (last.length >= state.nodes.length && last.every((node) => isReadyNode(node) && node.spec?.podCIDR)) return;
    if (nowMs() > deadline) {
      const seen = last.map((n) => `${n.metadata.name}: ready=${isReadyNode(n)} podCIDR=${n.spec?.podCIDR ?? '-'}`).join('; ');
      throw new PodBenchError(`timed out after ${timeoutMs} ms waiting for ${state.nodes.length} Ready nodes with a podCIDR; nodes: ${seen || 'none'}`);
    }
    await sleep(200);
  }
}

function describePod(pod: Pod | undefined, name: string): string {
  if (!pod) return `${name}: not seen`;
  const status = pod.status;
  const waiting = status?.containerStatuses?.map((c) => c.state?.waiting?.reason ?? c.state?.terminated?.reason).filter(Boolean).join(',');
  const conditions = status?.conditions?.map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}`).join(' ');
  return `${name}: node=${pod.spec.nodeName ?? '-'} phase=${status?.phase ?? '-'} podIP=${status?.podIP ?? '-'} ${conditions ?? ''} ${waiting ? `containers: ${waiting}` : ''} ${status?.message ?? ''}`.trim();
}

/** Copies the cluster's daemon logs out of its state dir (which `down` deletes). */
export function preserveLogs(stateDir: string, destination: string): string[] {
  const copied: string[] = [];
  const copyLogs = (dir: string, prefix: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.log')) {
        mkdirSync(destination, { recursive: true });
        const target = join(destination, `${prefix}${entry.name}`);
        copyFileSync(join(dir, entry.name), target);
        copied.push(target);
      } else if (entry.isDirectory() && prefix === '' && /^n\d+$/.test(entry.name)) {
        copyLogs(join(dir, entry.name), `${entry.name}-`);
      }
    }
  };
  copyLogs(stateDir, '');
  return copied;
}

export async function runPodBench(options: PodBenchOptions, failureLogDir: string): Promise<PodBenchResult> {
  options.progress(`  cluster "${options.clusterName}" up (${options.nodes} nodes, control plane, kube subnet store) ...`);
  let state: ClusterState | undefined;
  try {
    state = await clusterUp({
      name: options.clusterName,
      nodes: options.nodes,
      backend: 'vxlan',
      racks: 1,
      podsPerNode: 0,
      directRouting: false,
      leaseTtlSeconds: 3600,
      controlPlane: true,
      subnetStore: 'kube',
      proxy: 'none',
      progress: (line) => options.progress(`    ${line}`),
    });
    await options.checkpoint();
    const client = adminClient(state);
    await waitForNodes(client, state, options.timeoutMs);
    const cniNode = state.nodes[0];
    if (!cniNode) throw new PodBenchError(`cluster "${state.name}" has no nodes`);

    const cniAddMs: number[] = [];
    const cniDelMs: number[] = [];
    const cniRound = (from: number, to: number): void => {
      for (let run = from; run < to; run++) {
        const sample = timedCni(state as ClusterState, cniNode, run);
        cniAddMs.push(sample.addMs);
        cniDelMs.push(sample.delMs);
      }
    };
    const half = Math.floor(options.cniRuns / 2);
    cniRound(0, half);
    await options.checkpoint();

    const namespace: Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } };
    await client.create(RESOURCE.namespaces, namespace);
    const listed: KubeList<Pod> = await client.list(RESOURCE.pods, NAMESPACE);
    const createdAt = new Map<string, number>();
    const runningAt = new Map<string, number>();
    const latest = new Map<string, Pod>();
    let watchFailure: unknown;
    let stopping = false;
    const watch = client.watch<Pod>(RESOURCE.pods, NAMESPACE, { resourceVersion: listed.metadata.resourceVersion, timeoutSeconds: 600 }, {
      onEvent: (event) => {
        const pod = event.object;
        const name = pod.metadata.name ?? '';
        latest.set(name, pod);
        if (!runningAt.has(name) && pod.status?.phase === 'Running' && pod.status.podIP) runningAt.set(name, nowMs());
      },
      onClose: (err) => {
        if (!stopping) watchFailure ??= err ?? new PodBenchError('the pod watch ended early');
      },
    });
    try {
      // The watch is a plain request; a short pause lets it reach the server before the first create.
      await sleep(200);
      const started = nowMs();
      await pump(options.pods, options.concurrency, async (i) => {
        const pod = benchPod(i);
        createdAt.set(pod.metadata.name ?? '', nowMs());
        await client.create(RESOURCE.pods, pod);
      });
      options.progress(`  ${options.pods} pods created in ${(nowMs() - started).toFixed(0)} ms; waiting for Running with an IP ...`);
      const deadline = nowMs() + options.timeoutMs;
      while (runningAt.size < options.pods) {
        if (watchFailure !== undefined) throw new PodBenchError(`the pod watch failed: ${describeError(watchFailure)}`, { cause: watchFailure });
        if (nowMs() > deadline) {
          const stuck = [...createdAt.keys()].filter((name) => !runningAt.has(name));
          const detail = stuck.slice(0, 10).map((name) => `    ${describePod(latest.get(name), name)}`).join('\n');
          throw new PodBenchError(`${stuck.length} of ${options.pods} pods were not Running with an IP after ${options.timeoutMs} ms:\n${detail}`);
        }
        await sleep(20);
        await options.checkpoint();
      }
      const totalMs = Math.max(...runningAt.values()) - started;
      const startupMs = [...createdAt].map(([name, at]) => (runningAt.get(name) ?? NaN) - at);
      const podsPerNode: Record<string, number> = {};
      for (const pod of latest.values()) {
        const node = pod.spec.nodeName ?? '-';
        podsPerNode[node] = (podsPerNode[node] ?? 0) + 1;
      }
      await options.checkpoint();
      cniRound(half, options.cniRuns);
      return { nodes: state.nodes.length, pods: options.pods, concurrency: options.concurrency, startupMs, totalMs, podsPerNode, cniAddMs, cniDelMs, cniNode: cniNode.name };
    } finally {
      stopping = true;
      watch.stop();
    }
  } catch (err) {
    // `down` deletes the state dir; whoever reads the failure needs the daemons' logs.
    const copied = preserveLogs(stateDirOf(options.clusterName), failureLogDir);
    if (copied.length > 0) options.progress(`  cluster logs kept in ${failureLogDir} (${copied.length} files)`);
    throw err;
  } finally {
    options.progress(`  cluster "${options.clusterName}" down`);
    try {
      await clusterDown(options.clusterName);
    } catch (err) {
      options.progress(`  failed to bring down cluster "${options.clusterName}": ${describeError(err)}`);
    }
  }
}
