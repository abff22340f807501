/**
 * kill -9 of each daemon during cross-node traffic, in one shared lab per test file
 * (test/e2e/faults*.test.ts): a ping stream and a TCP stream between pods on different nodes
 * lose at most 1 %, the kernel state every daemon owns (routes, flannel.1's FDB and neighbour
 * entries under vxlan, the proxy's nft table) ends where it was, and `ip monitor`/`nft
 * monitor` saw nothing deleted meanwhile (nothing flushed and re-added). After an apiserver
 * restart every informer resumes: scaling the ReplicaSet reaches the controller, scheduler,
 * kubelet and proxy, and yields exactly one more pod.
 *
 * Convergence times are printed as diagnostics; the test waits on conditions only.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import { controlRequest, type SpeakerStatus } from '../../src/bgp/control.js';
import { bgpSocket } from '../../src/cli/cluster/supervision.js';
import type { Pod, ReplicaSet, Service } from '../../src/api/types.js';
import { adminClient, type BackendName, clusterDown, type ClusterState, type NodeState, restartComponent } from '../../src/cli/cluster/cluster.js';
import type { KubeClient } from '../../src/client/client.js';
import { run } from '../../src/lib/exec.js';
import { ROOT } from './cni.js';
import { pingStream, testCluster, waitUntil } from './cluster.js';
import { canonicalNft } from '../proxy/listing.js';

const ECHO = join(ROOT, 'test', 'fixtures', 'proxy', 'echo.mjs');
const APP = 'faults';

/** What the daemons own in a node's kernel, printed so that two equal states print alike. */
export function kernelState(node: NodeState, backend: BackendName): string {
  const sorted = (text: string): string => text.split('\n').map((l) => l.trim()).filter(Boolean).sort().join('\n');
  // The local table is the kernel's own (a new veth's IPv6 link-local appears after DAD).
  const routes = sorted(
    run('ip', ['-o', 'route', 'show', 'table', 'all'], { netns: node.netns })
      .replace(/ expires \d+sec/g, '')
      .split('\n')
      .filter((l) => !l.includes(' table local '))
      .join('\n'),
  );
  const nft = `# nft\n${canonicalNft(node.netns)}`;
  if (backend !== 'vxlan') return `# routes\n${routes}\n${nft}`;
  const fdb = sorted(run('bridge', ['fdb', 'show', 'dev', 'flannel.1'], { netns: node.netns }));
  // Static entries only: dynamic ones age out on their own.
  const neigh = sorted(run('ip', ['neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent'], { netns: node.netns }));
  return `# routes\n${routes}\n# fdb\n${fdb}\n# neigh\n${neigh}\n${nft}`;
}

export function diff(before_: string, after_: string): string {
  const was = before_.split('\n');
  const now = after_.split('\n');
  return `only before:\n${was.filter((l) => !now.includes(l)).join('\n')}\nonly after:\n${now.filter((l) => !was.includes(l)).join('\n')}`;
}

/** Watches a node's kernel for deletions while a daemon restarts. */
export class DeletionMonitor {
  private readonly children: ChildProcess[] = [];
  private readonly lines: string[] = [];

  constructor(nodes: readonly NodeState[]) {
    for (const node of nodes) {
      for (const argv of [['ip', '-o', 'monitor', 'route', 'neigh'], ['bridge', 'monitor', 'fdb'], ['nft', 'monitor']]) {
        const child = spawn('ip', ['netns', 'exec', node.netns, ...argv], { stdio: ['ignore', 'pipe', 'ignore'] });
        child.stdout?.on('data', (chunk: Buffer) => this.lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => `${node.name} ${argv[0]}: ${l}`)));
        this.children.push(child);
      }
    }
  }

  /** Deletions of things a daemon owns (dynamic neighbours and conntrack-free chatter excluded). */
  stop(): string[] {
    for (const child of this.children) child.kill('SIGKILL');
    return this.lines.filter((l) => {
      if (/ ip: Deleted .*(STALE|REACHABLE|DELAY|PROBE|FAILED|INCOMPLETE)/.test(l)) return false;
      if (/ ip: Deleted (broadcast|local) /.test(l)) return false;
      return / ip: Deleted /.test(l) || / bridge: Deleted /.test(l) || / nft: (delete|flush) /.test(l);
    });
  }
}

/** A TCP stream pod → pod across nodes for `seconds`; resolves with bytes per second slice. */
function tcpStream(fromNetns: string, toNetns: string, toIp: string, seconds: number): { done: Promise<{ code: number | null; intervals: number[] }>; stop: () => void } {
  const server = spawn('ip', ['netns', 'exec', toNetns, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  const done = (async () => {
    // The server listens within a moment; a refused connect is retried.
    for (let attempt = 0; attempt < 50; attempt++) {
      await new Promise((r) => setTimeout(r, 100));
      const client = spawn('ip', ['netns', 'exec', fromNetns, 'iperf3', '-c', toIp, '-t', String(seconds), '-J', '-b', '20M'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let json = '';
      client.stdout.on('data', (chunk: Buffer) => (json += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
      let report: { error?: string; intervals?: { sum: { bytes: number } }[] } = {};
      try {
        report = JSON.parse(json) as typeof report;
      } catch {
        // no report
      }
      if (/refused/.test(report.error ?? '')) continue;
      return { code, intervals: (report.intervals ?? []).map((i) => i.sum.bytes) };
    }
    return { code: -1, intervals: [] };
  })();
  return { done, stop: () => server.kill('SIGKILL') };
}

export interface FaultLab {
  backend: BackendName;
  /** The daemons to kill -9, one after another: node daemons on n1, control-plane ones. */
  components: readonly string[];
}

/** The suite for one lab: two nodes, a pod each, the control plane, the nftables proxy. */
export function killNineSuite(lab: FaultLab): void {
  describe(`kill -9 of every daemon during cross-node traffic (${lab.backend})`, () => {
    let state: ClusterState;
    let client: KubeClient;

    before(async () => {
      state = await testCluster(lab.backend, { nodes: 2, pods: 1, controlPlane: true, proxy: 'nftables' });
      client = adminClient(state);
      const rs: ReplicaSet = {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name: APP, namespace: 'default' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: APP } },
          template: {
            metadata: { labels: { app: APP } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: 'echo', image: 'pontoon/echo', command: [process.execPath, ECHO, APP, '8080'], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }],
            },
          },
        },
      } as ReplicaSet;
      await client.create(RESOURCE.replicasets, rs);
      const svc: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: APP, namespace: 'default' }, spec: { selector: { app: APP }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } as Service;
      await client.create(RESOURCE.services, svc);
      await waitUntil('the ReplicaSet pods ready and behind the Service on every node', 120_000, async () => {
        const ready = (await appPods()).filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length === 2 && state.nodes.every((n) => ready.every((p) => canonicalNft(n.netns).includes(p.status?.podIP ?? '-')));
      });
    });

    after(async () => {
      if (state) await clusterDown(state.name);
    });

    async function appPods(): Promise<Pod[]> {
      return (await client.list<Pod>(RESOURCE.pods, 'default', { labelSelector: `app=${APP}` })).items.filter((p) => !p.metadata.deletionTimestamp);
    }

    function pidOf(component: string, node: NodeState): number {
      const cp = state.controlPlane;
      assert.ok(cp);
      const pid =
        component === 'flanneld'
          ? node.flanneldPid
          : component === 'proxy'
            ? node.proxyPid
            : component === 'kubelet'
              ? node.kubeletPid
              : component === 'bgp'
                ? node.bgpPid
                : cp.pids[component as keyof typeof cp.pids];
      assert.ok(pid, `${component} has a pid`);
      return pid;
    }

    for (const component of lab.components) {
      test(`kill -9 ${component}: traffic keeps flowing, the kernel state is left alone, the restarted daemon converges`, async () => {
        const [n1, n2] = state.nodes;
        assert.ok(n1 && n2);
        const from = n1.pods[0];
        const to = n2.pods[0];
        assert.ok(from && to);
        const uidsBefore = (await appPods()).map((p) => p.metadata.uid).sort();
        const kernelBefore = state.nodes.map((n) => kernelState(n, lab.backend));
        const monitor = new DeletionMonitor(state.nodes);
        const pings = pingStream(from.netns, to.ip, 6);
        const tcp = tcpStream(from.netns, to.netns, to.ip, 6);
        try {
          await new Promise((r) => setTimeout(r, 1500));
          // Node daemons die on n1, the pinging side; control-plane ones have no node.
          const target = n1;
          process.kill(pidOf(component, target), 'SIGKILL');
          const killedAt = Date.now();
          await restartComponent(state, component, target.name);
          const restartedAt = Date.now();
          await waitUntil(`the kernel state after the ${component} restart to equal the state before`, 60_000, () => state.nodes.every((n, i) => kernelState(n, lab.backend) === kernelBefore[i])).catch(() => {
            assert.fail(state.nodes.map((n, i) => `${n.name}:\n${diff(kernelBefore[i] ?? '', kernelState(n, lab.backend))}`).join('\n'));
          });
          await waitUntil('the apiserver to answer and the pods to stay the same', 60_000, async () => {
            try {
              return JSON.stringify((await appPods()).map((p) => p.metadata.uid).sort()) === JSON.stringify(uidsBefore);
            } catch {
              return false;
            }
          });
          if (component === 'bgp') {
            // The restarted speaker is back in session with every peer, on both sides.
            await waitUntil('every BGP session Established again, the killed speaker\'s anew', 60_000, async () => {
              for (const node of state.nodes) {
                const status = (await controlRequest(bgpSocket(node), 'status').catch(() => undefined)) as SpeakerStatus | undefined;
                if (!status?.peers.length || !status.peers.every((p) => p.state === 'Established' && Date.parse(p.since) >= killedAt)) return false;
              }
              return true;
            });
          }
          console.log(`# ${component}: killed → restarted ${restartedAt - killedAt} ms, restarted → converged ${Date.now() - restartedAt} ms`);
          const { sent, received } = await pings;
          assert.ok(sent >= 100, `the ping stream ran (${sent} sent)`);
          assert.ok(received >= sent * 0.99, `pings lost over 1 %: ${received}/${sent}`);
          const stream = await tcp.done;
          assert.equal(stream.code, 0, 'the TCP stream ended normally');
          assert.ok(stream.intervals.length >= 5 && stream.intervals.every((b) => b > 0), `data flowed every second: ${stream.intervals.join(' ')}`);
        } finally {
          tcp.stop();
          const deletions = monitor.stop();
          assert.deepEqual(deletions, [], `the ${component} restart deleted kernel state`);
        }
      });
    }

    if (lab.components.includes('apiserver')) test('after the apiserver restart every informer is live: scaling reaches controller, scheduler, kubelet and proxy, once', async () => {
      const rs = await client.get<ReplicaSet>(RESOURCE.replicasets, APP, 'default');
      assert.ok(rs);
      rs.spec.replicas = 3;
      await client.update(RESOURCE.replicasets, rs);
      await waitUntil('three ready pods behind the Service on every node', 120_000, async () => {
        const pods = await appPods();
        const ready = pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length === 3 && state.nodes.every((n) => ready.every((p) => canonicalNft(n.netns).includes(p.status?.podIP ?? '-')));
      });
      // A controller that re-listed twice, or did not see its own creations, makes extra pods;
      // once it reports the new generation observed, its count is final.
      await waitUntil('the ReplicaSet controller to observe the new generation', 60_000, async () => {
        const now = await client.get<ReplicaSet>(RESOURCE.replicasets, APP, 'default');
        return (now?.status?.observedGeneration ?? 0) >= (now?.metadata.generation ?? 1) && now?.status?.replicas === 3;
      });
      assert.equal((await appPods()).length, 3, 'exactly one pod was added');
    });
  });
}
