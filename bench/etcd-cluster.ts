/**
 * What a 3-member etcd costs the apiserver against a single member, in one run.
 *
 *   writes  ConfigMap creates/s through the apiserver over HTTP (KubeClient, keep-alive,
 *           16 in flight).
 *   watch   one watch on the namespace's ConfigMaps, one writer creating a ConfigMap every
 *           --interval-ms: latency from each create's start to the watch event's arrival
 *           (p50/p99).
 *
 * Each etcd is laid out as `cluster up --store etcd --etcd-members N` lays it out
 * (src/cli/cluster/etcd-cluster.ts): members in their own namespaces on a fabric bridge,
 * peering over veths, the apiserver reaching them through their unix sockets. The apiserver
 * runs in a worker thread (its own event loop, like its own process). Single and 3-member
 * runs alternate (--rounds pairs) and the ratios compare medians over rounds, because the
 * machine is shared and absolute rates drift. Every write of the 3-member cluster needs a
 * quorum (the leader and one follower fsync'd), so the ratios show what replication costs.
 *
 *   node build/bench/etcd-cluster.js [--count N] [--interval-ms N] [--rounds N]
 * Needs root (network namespaces).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KubeObject, WatchEvent } from '../src/api/meta.js';
import { RESOURCE } from '../src/api/resources.js';
import { type EtcdClusterState, etcdStoreUrl, planEtcdCluster, startEtcdCluster } from '../src/cli/cluster/etcd-cluster.js';
import { makeFabric, makeNamespace } from '../src/cli/cluster/topology.js';
import { formatTable } from '../src/cli/table.js';
import { KubeClient } from '../src/client/client.js';
import { deleteNetnsWithPrefix } from '../src/lib/netns.js';
import { startApiServerInWorker } from './lib/apiserver-host.js';
import { benchJsonLine } from './lib/json.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';
import { formatNumber, formatRatio, median, nowMs, summarizeLatencies, type LatencySummary } from './lib/stats.js';

const MEMBER_COUNTS = [1, 3] as const;
const WRITE_CONCURRENCY = 16;

interface Options {
  count: number;
  intervalMs: number;
  rounds: number;
}

interface RoundResult {
  members: number;
  writesPerSecond: number;
  watch: LatencySummary;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({ args: argv, options: { count: { type: 'string' }, 'interval-ms': { type: 'string' }, rounds: { type: 'string' } } });
  const positive = (flag: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1) throw new BenchError(`--${flag} must be a positive integer, got "${value}"`);
    return parsed;
  };
  return { count: positive('count', values.count, 500), intervalMs: positive('interval-ms', values['interval-ms'], 20), rounds: positive('rounds', values.rounds, 2) };
}

const configMap = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' }, data: { payload: 'x'.repeat(256) } }) as KubeObject;

async function measureWrites(client: KubeClient, tag: string, count: number): Promise<number> {
  let next = 0;
  const started = nowMs();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await client.create(RESOURCE.configmaps, configMap(`${tag}-w${i}`));
    }
  };
  await Promise.all(Array.from({ length: WRITE_CONCURRENCY }, worker));
  return count / ((nowMs() - started) / 1000);
}

async function measureWatch(client: KubeClient, tag: string, count: number, intervalMs: number): Promise<LatencySummary> {
  const listed = await client.list(RESOURCE.configmaps, 'default', { limit: 1 });
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let closedWith: unknown;
  let resolveAll!: () => void;
  const allSeen = new Promise<void>((resolve) => (resolveAll = resolve));
  const handle = client.watch<KubeObject>(RESOURCE.configmaps, 'default', { resourceVersion: listed.metadata.resourceVersion ?? '0' }, {
    onEvent: (event: WatchEvent<KubeObject>) => {
      const at = sentAt.get(event.object.metadata.name ?? '');
      if (event.type !== 'ADDED' || at === undefined) return;
      latencies.push(nowMs() - at);
      if (latencies.length === count) resolveAll();
    },
    onClose: (err) => {
      closedWith = err ?? new BenchError('the watch closed before every event arrived');
      resolveAll();
    },
  });
  try {
    for (let i = 0; i < count; i++) {
      const name = `${tag}-v${i}`;
      const start = nowMs();
      sentAt.set(name, start);
      await client.create(RESOURCE.configmaps, configMap(name));
      const wait = intervalMs - (nowMs() - start);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const timeout = setTimeout(() => {
      closedWith = new BenchError(`only ${latencies.length} of ${count} watch events arrived within 30 s`);
      resolveAll();
    }, 30_000);
    await allSeen;
    clearTimeout(timeout);
  } finally {
    handle.stop();
  }
  if (latencies.length < count) throw closedWith instanceof Error ? closedWith : new BenchError(String(closedWith));
  return summarizeLatencies(latencies, 'watch latencies');
}

/** One etcd of `members` members on its own fabric, an apiserver on it, both measurements, then teardown. */
async function runRound(members: number, round: number, options: Options): Promise<RoundResult> {
  const prefix = `${RUN_PREFIX}m${members}r${round}`;
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-bench-etcd-'));
  let cluster: EtcdClusterState | undefined;
  let api: Awaited<ReturnType<typeof startApiServerInWorker>> | undefined;
  try {
    const fabric = makeNamespace(`${prefix}-fabric`);
    makeFabric(fabric, 1);
    cluster = planEtcdCluster(prefix, dir, members);
    await startEtcdCluster(cluster, fabric, undefined);
    api = await startApiServerInWorker(etcdStoreUrl(cluster));
    const client = new KubeClient({ server: api.url });
    // Warm-up: connections, the watch cache's first store watch, JIT.
    await measureWrites(client, `${prefix}-warm`, 50);
    await checkpoint();
    const writesPerSecond = await measureWrites(client, prefix, options.count);
    await checkpoint();
    const watch = await measureWatch(client, prefix, Math.min(options.count, 300), options.intervalMs);
    return { members, writesPerSecond, watch };
  } finally {
    await api?.close().catch(() => undefined);
    for (const member of cluster?.members ?? []) {
      try {
        if (member.pid > 0) process.kill(member.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    deleteNetnsWithPrefix(`${prefix}-`, { killProcesses: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const load = loadavg();
  const results: RoundResult[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const members of MEMBER_COUNTS) {
      console.error(`round ${round}: ${members}-member etcd ...`);
      results.push(await runRound(members, round, options));
      await checkpoint();
    }
  }
  const of = (members: number): RoundResult[] => results.filter((r) => r.members === members);
  const summary = MEMBER_COUNTS.map((members) => ({
    members,
    writesPerSecond: median(of(members).map((r) => r.writesPerSecond)),
    watchP50: median(of(members).map((r) => r.watch.p50)),
    watchP99: median(of(members).map((r) => r.watch.p99)),
  }));
  const single = summary.find((s) => s.members === 1)!;
  const three = summary.find((s) => s.members === 3)!;
  console.log(
    formatTable(
      ['ETCD', 'WRITES/S', 'WATCH P50 MS', 'WATCH P99 MS'],
      summary.map((s) => [`${s.members} member${s.members > 1 ? 's' : ''}`, formatNumber(s.writesPerSecond), formatNumber(s.watchP50), formatNumber(s.watchP99)]),
    ),
  );
  console.log(`\n3 members vs 1: writes/s ${formatRatio(three.writesPerSecond, single.writesPerSecond)}, watch p50 ${formatRatio(three.watchP50, single.watchP50)}, watch p99 ${formatRatio(three.watchP99, single.watchP99)}`);
  console.log(`(${options.rounds} round(s) of each, medians; ${options.count} creates at ${WRITE_CONCURRENCY} in flight; watch: ${Math.min(options.count, 300)} creates every ${options.intervalMs} ms; load average before ${load.map((l) => l.toFixed(2)).join(' ')})`);
  console.log(benchJsonLine('etcd-cluster', { options, rounds: results, summary, ratios: { writes: three.writesPerSecond / single.writesPerSecond, watchP50: three.watchP50 / single.watchP50, watchP99: three.watchP99 / single.watchP99 } }));
}

runBench(main);
