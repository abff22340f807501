/** Clusters for e2e tests: `pontoon cluster up` with a unique ptest- name, torn down after. */
import type { BgpTopology, IpipMode } from '../../src/bgp/node-agent.js';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BackendName, clusterDown, clusterUp, type ClusterState, type NodeState, type PodState, type ProxyChoice } from '../../src/cli/cluster/cluster.js';
import type { IpFamilyChoice } from '../../src/cli/cluster/addressing.js';
import type { ControlPlaneAccess } from '../../src/cli/cluster/control-plane.js';
import { openRtnl } from '../../src/lib/netns.js';
import type { Rtnl } from '../../src/lib/netlink/rtnl.js';
import { TEST_NETNS_PREFIX } from './lab.js';
import { poll } from './wait.js';

let counter = 0;

/**
 * A lab cluster with a unique ptest- name. Without `controlPlane` it is the flanneld-only lab
 * (etcd leases, static pods); with it, apiserver, controllers, kubelets and kube leases.
 */
export async function testCluster(
  backend: BackendName,
  options: { nodes?: number; racks?: number; directRouting?: boolean; leaseTtlSeconds?: number; pods?: number; controlPlane?: boolean; proxy?: ProxyChoice; routeReflectors?: number; ipip?: IpipMode; bgpTopology?: BgpTopology; ipFamily?: IpFamilyChoice; controlPlaneAccess?: ControlPlaneAccess } = {},
): Promise<ClusterState> {
  const name = `${TEST_NETNS_PREFIX}c${(counter++).toString(36)}`;
  try {
    return await clusterUp({
      name,
      nodes: options.nodes ?? 3,
      backend,
      racks: options.racks ?? 1,
      podsPerNode: options.pods ?? 2,
      directRouting: options.directRouting ?? false,
      leaseTtlSeconds: options.leaseTtlSeconds ?? 3600,
      controlPlane: options.controlPlane ?? false,
      subnetStore: options.controlPlane ? 'kube' : 'etcd',
      proxy: options.proxy ?? 'nftables',
      ...(options.routeReflectors !== undefined ? { routeReflectors: options.routeReflectors } : {}),
      ...(options.ipip !== undefined ? { ipip: options.ipip } : {}),
      ...(options.bgpTopology !== undefined ? { bgpTopology: options.bgpTopology } : {}),
      ...(options.ipFamily !== undefined ? { ipFamily: options.ipFamily } : {}),
      ...(options.controlPlaneAccess !== undefined ? { controlPlaneAccess: options.controlPlaneAccess } : {}),
      progress: () => undefined,
    });
  } catch (err) {
    await clusterDown(name);
    throw err;
  }
}

export function allPods(state: ClusterState): { node: NodeState; pod: PodState }[] {
  return state.nodes.flatMap((node) => node.pods.map((pod) => ({ node, pod })));
}

/** Pings once; true when the reply came back. */
export function pingOnce(fromNetns: string, ip: string, timeoutSeconds = 2): boolean {
  return spawnSync('ip', ['netns', 'exec', fromNetns, 'ping', '-c', '1', '-W', String(timeoutSeconds), ip], { stdio: 'ignore' }).status === 0;
}

/** Every pod pings every pod on another node; returns the pairs that failed. */
export function crossNodeFailures(state: ClusterState): string[] {
  const failures: string[] = [];
  for (const a of allPods(state)) {
    for (const b of allPods(state)) {
      if (a.node === b.node) continue;
      if (!pingOnce(a.pod.netns, b.pod.ip)) failures.push(`${a.pod.name} → ${b.pod.name} (${b.pod.ip})`);
    }
  }
  return failures;
}

/** Pings at 50/s for `seconds` in the background; resolves with [sent, received]. */
export function pingStream(fromNetns: string, ip: string, seconds: number): Promise<{ sent: number; received: number }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', fromNetns, 'ping', '-i', '0.02', '-W', '1', '-w', String(seconds), ip], { stdio: ['ignore', 'pipe', 'ignore'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', () => {
      const match = /(\d+) packets transmitted, (\d+) received/.exec(output);
      resolve({ sent: Number(match?.[1] ?? 0), received: Number(match?.[2] ?? 0) });
    });
  });
}

/** TCP throughput pod → pod with iperf3 (bits per second); a failed attempt is retried. */
export async function iperf(fromNetns: string, toNetns: string, toIp: string, seconds = 1): Promise<number> {
  const failures: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = spawn('ip', ['netns', 'exec', toNetns, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
    try {
      for (let connect = 0; connect < 30; connect++) {
        await new Promise((r) => setTimeout(r, 100));
        const client = spawnSync('ip', ['netns', 'exec', fromNetns, 'iperf3', '-c', toIp, '-t', String(seconds), '-J'], { encoding: 'utf8' });
        let report: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
        try {
          report = JSON.parse(client.stdout) as typeof report;
        } catch {
          // not JSON: iperf3 failed before its report
        }
        const bitsPerSecond = report.end?.sum_received?.bits_per_second;
        if (client.status === 0 && bitsPerSecond !== undefined) return bitsPerSecond;
        if (/Connection refused/.test(report.error ?? client.stderr)) continue; // server not listening yet
        failures.push(report.error ?? `exit ${client.status}: ${client.stderr.trim()}`);
        console.warn(`iperf3 ${fromNetns} → ${toIp} attempt ${attempt + 1} failed: ${failures.at(-1)}`);
        break;
      }
    } finally {
      server.kill('SIGKILL');
    }
  }
  throw new Error(`iperf3 from ${fromNetns} to ${toIp} failed: ${failures.join('; ')}`);
}

export function withNodeRtnl<T>(node: NodeState, fn: (rtnl: Rtnl) => T): T {
  const rtnl = openRtnl(`/run/netns/${node.netns}`);
  try {
    return fn(rtnl);
  } finally {
    rtnl.close();
  }
}

export function flanneldLog(node: NodeState): string {
  try {
    return readFileSync(join(node.dir, 'flanneld.log'), 'utf8');
  } catch {
    return '';
  }
}

export async function waitUntil(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  await poll(what, check, { timeoutMs, intervalMs: 100 });
}
