/**
 * apiserver benchmark: what the Kubernetes layer costs over the stores and the network
 * plumbing under it, as ratios to references measured in the same run.
 *
 *   writes  ConfigMap creates/s and updates/s through the apiserver over HTTP (KubeClient,
 *           keep-alive, 16 in flight) vs the Store class in-process vs raw writes of the same
 *           JSON into the same engine (better-sqlite3 transaction / etcd3 put), per store.
 *   watch   1 writer, 100 watchers (100 watch requests on one namespace's ConfigMaps): latency
 *           from each write's start to each watcher's receipt, and deliveries/s, vs the same
 *           fan-out on Store.watch listeners, per store.
 *   pods    a lab cluster (`clusterUp`: control plane, kube subnet store, 3 nodes): 50 Pods,
 *           each timed from create to Running with a podIP, vs a bare CNI ADD/DEL of
 *           pontoon-flannel on a node.
 *
 * Reading the numbers: the machine is shared and noisy, so absolute rates drift from run to
 * run; the ratios are the result. Each ratio compares medians (or percentiles) of contenders
 * that ran alternately in the same run. For writes, raw/s is the ceiling of the engine,
 * Store/s adds Pontoon's storage semantics (revisions, CAS, a change log), api/s adds HTTP,
 * JSON, defaulting, validation and admission. The apiserver runs in a worker thread (its own
 * event loop, like its own process), the clients and references in the main thread.
 *
 *   node build/bench/apiserver.js [--only writes,watch,pods] [--store sqlite|etcd|both]
 *                                 [--count N] [--interval-ms N] [--pods N] [--nodes N]
 * --count sets objects per write phase (default 1000) and per watch run (default 300);
 * --interval-ms the watch writer's pace (default 20). A part that fails is reported as such
 * after the tables of the others, and the exit code is 1.
 * The pods part needs root (network namespaces) and the bundle (`npm run build`).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable } from '../src/cli/table.js';
import { describeError } from '../src/lib/errors.js';
import { deleteNetnsWithPrefix } from '../src/lib/netns.js';
import { openEtcdRig, openSqliteRig, STORE_KINDS, type StoreKind, type StoreRig } from './lib/apiserver-rig.js';
import { runPodBench, type PodBenchResult } from './lib/apiserver-pods.js';
import { runWatchBench, type WatchBenchResult, type WatchContender } from './lib/apiserver-watch.js';
import { medianRates, runWriteBench, type WriteBenchResult } from './lib/apiserver-writes.js';
import { startBenchEtcd, type BenchEtcd } from './lib/etcd.js';
import { benchJsonLine } from './lib/json.js';
import { formatNumber, formatRatio, median, percent, summarizeLatencies, type LatencySummary } from './lib/stats.js';
import { BenchError, BenchInterrupted, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

const SECTIONS = ['writes', 'watch', 'pods'] as const;
type Section = (typeof SECTIONS)[number];

const WRITE_COUNT = 1000;
const WRITE_CONCURRENCY = 16;
const WRITE_ROUNDS = 5;
const WRITE_WARMUP = 200;
const WATCHERS = 100;
const WATCH_COUNT = 300;
/**
 * 50 writes/s: 5,000 deliveries/s to 100 watchers, a load the apiserver keeps up with on a
 * small machine, so latencies are latencies and not queueing; `--interval-ms 10` finds the limit.
 */
const WATCH_INTERVAL_MS = 20;
const WATCH_PAIRS = 2;
const PODS = 50;
const NODES = 3;
const POD_CREATE_CONCURRENCY = 10;
const CNI_RUNS = 10;
const POD_TIMEOUT_MS = 180_000;


interface Options {
  sections: Section[];
  stores: StoreKind[];
  count?: number;
  intervalMs: number;
  pods: number;
  nodes: number;
}

function positiveInteger(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new BenchError(`--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: { only: { type: 'string' }, store: { type: 'string' }, count: { type: 'string' }, 'interval-ms': { type: 'string' }, pods: { type: 'string' }, nodes: { type: 'string' } },
    strict: true,
  });
  const sections: Section[] = [];
  for (const name of (values.only ?? SECTIONS.join(',')).split(',')) {
    const section = SECTIONS.find((s) => s === name.trim());
    if (!section) throw new BenchError(`--only takes a comma-separated subset of ${SECTIONS.join(',')}, got ${JSON.stringify(name)}`);
    if (!sections.includes(section)) sections.push(section);
  }
  const store = values.store ?? 'both';
  const stores = store === 'both' ? [...STORE_KINDS] : STORE_KINDS.filter((kind) => kind === store);
  if (stores.length === 0) throw new BenchError(`--store takes sqlite, etcd or both, got ${JSON.stringify(store)}`);
  const count = positiveInteger('count', values.count);
  const nodes = positiveInteger('nodes', values.nodes) ?? NODES;
  if (nodes > 20) throw new BenchError(`--nodes must be at most 20, got ${nodes}`);
  const intervalMs = positiveInteger('interval-ms', values['interval-ms']) ?? WATCH_INTERVAL_MS;
  return { sections, stores, ...(count === undefined ? {} : { count }), intervalMs, pods: positiveInteger('pods', values.pods) ?? PODS, nodes };
}


const progress = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function writesTable(results: readonly WriteBenchResult[]): string {
  const rows: string[][] = [];
  for (const result of results) {
    const raw = medianRates(result.rates.raw);
    const store = medianRates(result.rates.store);
    const api = medianRates(result.rates.api);
    for (const op of ['creates', 'updates'] as const) {
      rows.push([
        result.kind,
        op === 'creates' ? 'create' : 'update',
        formatNumber(raw[op]),
        formatNumber(store[op]),
        formatNumber(api[op]),
        formatRatio(store[op], raw[op]),
        formatRatio(api[op], raw[op]),
        formatRatio(api[op], store[op]),
        op === 'creates' ? [raw.clientBusy, store.clientBusy, api.serverBusy, api.clientBusy].map(percent).join(' / ') : '',
      ]);
    }
  }
  return formatTable(['STORE', 'OP', 'RAW/S', 'STORE/S', 'API/S', 'STORE/RAW', 'API/RAW', 'API/STORE', 'BUSY RAW / STORE / API SRV / API CLI'], rows);
}

interface WatchSummary {
  latency: LatencySummary;
  deliveriesPerSecond: number;
  missing: number;
  clientBusy: number;
  serverBusy: number;
}

function watchSummary(result: WatchBenchResult, label: WatchContender): WatchSummary {
  const runs = result.runs[label];
  return {
    latency: summarizeLatencies(runs.flatMap((run) => run.latenciesMs), `${result.kind} ${label} watch latencies`),
    deliveriesPerSecond: median(runs.map((run) => run.deliveriesPerSecond)),
    missing: runs.reduce((sum, run) => sum + (run.expected - run.delivered), 0),
    clientBusy: median(runs.map((run) => run.clientBusy)),
    serverBusy: median(runs.map((run) => run.serverBusy)),
  };
}

function watchTable(results: readonly WatchBenchResult[]): string {
  const rows: string[][] = [];
  for (const result of results) {
    const store = watchSummary(result, 'store');
    const api = watchSummary(result, 'api');
    for (const [label, summary] of [['Store.watch', store], ['apiserver', api]] as const) {
      const isApi = summary === api;
      rows.push([
        result.kind,
        label,
        formatNumber(summary.latency.p50),
        formatNumber(summary.latency.p99),
        formatNumber(summary.latency.max),
        formatNumber(summary.deliveriesPerSecond),
        String(summary.missing),
        isApi ? `${percent(summary.serverBusy)} / ${percent(summary.clientBusy)}` : `- / ${percent(summary.clientBusy)}`,
        isApi ? formatRatio(api.latency.p50, store.latency.p50) : '',
        isApi ? formatRatio(api.latency.p99, store.latency.p99) : '',
        isApi ? formatRatio(api.deliveriesPerSecond, store.deliveriesPerSecond) : '',
      ]);
    }
  }
  return formatTable(['STORE', 'PATH', 'P50 MS', 'P99 MS', 'MAX MS', 'DELIVERIES/S', 'MISSING', 'BUSY SRV / BENCH', 'P50 API/STORE', 'P99 API/STORE', 'DELIV API/STORE'], rows);
}

function podsTable(result: PodBenchResult): string {
  const startup = summarizeLatencies(result.startupMs, 'pod startup times');
  const add = summarizeLatencies(result.cniAddMs, 'CNI ADD times');
  const del = summarizeLatencies(result.cniDelMs, 'CNI DEL times');
  const row = (what: string, s: LatencySummary, ratio: string): string[] => [what, String(s.count), formatNumber(s.p50), formatNumber(s.p90), formatNumber(s.max), ratio];
  return formatTable(
    ['WHAT', 'N', 'P50 MS', 'P90 MS', 'MAX MS', 'P50 / CNI ADD P50'],
    [
      row('pod create → Running with podIP', startup, formatRatio(startup.p50, add.p50, 1)),
      row(`bare CNI ADD (pontoon-flannel, ${result.cniNode})`, add, '1x'),
      row(`bare CNI DEL (pontoon-flannel, ${result.cniNode})`, del, formatRatio(del.p50, add.p50)),
    ],
  );
}

interface RunResults {
  writes: WriteBenchResult[];
  watch: WatchBenchResult[];
  pods?: PodBenchResult;
  /** Parts that failed; the others are still reported. */
  failures: { part: string; error: string }[];
}

/** Runs one part; a failure is recorded (and the run goes on), an interrupt is not caught. */
async function attempt<T>(results: RunResults, part: string, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof BenchInterrupted) throw err;
    results.failures.push({ part, error: describeError(err) });
    progress(`${part} FAILED: ${describeError(err)}`);
    return undefined;
  }
}

function machineResults(options: Options, results: RunResults, load: { before: number[]; after: number[] }): unknown {
  return {
    options,
    failures: results.failures,
    cores: cpus().length,
    load,
    writes: results.writes.map((r) => ({
      storeKind: r.kind,
      objectBytes: r.objectBytes,
      count: r.count,
      concurrency: r.concurrency,
      rounds: r.rounds,
      describe: r.describe,
      samples: r.rates,
      median: { raw: medianRates(r.rates.raw), store: medianRates(r.rates.store), api: medianRates(r.rates.api) },
    })),
    watch: results.watch.map((r) => ({
      storeKind: r.kind,
      watchers: r.watchers,
      count: r.count,
      intervalMs: r.intervalMs,
      describe: r.describe,
      summary: { store: watchSummary(r, 'store'), api: watchSummary(r, 'api') },
      deliveriesPerSecondByRun: { store: r.runs.store.map((run) => run.deliveriesPerSecond), api: r.runs.api.map((run) => run.deliveriesPerSecond) },
    })),
    pods: results.pods && {
      ...results.pods,
      startup: summarizeLatencies(results.pods.startupMs),
      cniAdd: summarizeLatencies(results.pods.cniAddMs),
      cniDel: summarizeLatencies(results.pods.cniDelMs),
    },
  };
}

async function openRig(kind: StoreKind, tempDir: string, etcd: () => Promise<BenchEtcd>): Promise<StoreRig> {
  if (kind === 'sqlite') return openSqliteRig(join(tempDir, 'sqlite'));
  return openEtcdRig((await etcd()).endpoint);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.sections.includes('pods') && process.getuid?.() !== 0) throw new BenchError('the pods part needs root (network namespaces); run as root or pass --only writes,watch');
  const tempDir = mkdtempSync(join(tmpdir(), 'pontoon-bench-apiserver-'));
  const loadBefore = loadavg();
  let etcd: BenchEtcd | undefined;
  const rigs: StoreRig[] = [];
  const results: RunResults = { writes: [], watch: [], failures: [] };
  try {
    const needsStores = options.sections.includes('writes') || options.sections.includes('watch');
    if (needsStores) {
      for (const kind of options.stores) {
        progress(`${kind}: starting the apiserver${kind === 'etcd' ? ' and etcd' : ''} ...`);
        rigs.push(
          await openRig(kind, tempDir, async () => {
            etcd ??= await startBenchEtcd();
            return etcd;
          }),
        );
        await checkpoint();
      }
    }
    if (options.sections.includes('writes')) {
      for (const rig of rigs) {
        progress(`writes on ${rig.kind}:`);
        const result = await attempt(results, `writes on ${rig.kind}`, () =>
          runWriteBench(rig, { count: options.count ?? WRITE_COUNT, concurrency: WRITE_CONCURRENCY, rounds: WRITE_ROUNDS, warmup: WRITE_WARMUP, checkpoint, progress }),
        );
        if (result) results.writes.push(result);
      }
    }
    if (options.sections.includes('watch')) {
      for (const rig of rigs) {
        progress(`watch fan-out on ${rig.kind}:`);
        const result = await attempt(results, `watch fan-out on ${rig.kind}`, () =>
          runWatchBench(rig, { watchers: WATCHERS, count: options.count ?? WATCH_COUNT, intervalMs: options.intervalMs, pairs: WATCH_PAIRS, checkpoint, progress }),
        );
        if (result) results.watch.push(result);
      }
    }
    for (const rig of rigs.splice(0)) await rig.close();
    if (options.sections.includes('pods')) {
      progress('pod startup:');
      const podOptions = {
        clusterName: `${RUN_PREFIX}pods`,
        nodes: options.nodes,
        pods: options.pods,
        concurrency: POD_CREATE_CONCURRENCY,
        cniRuns: CNI_RUNS,
        timeoutMs: POD_TIMEOUT_MS,
        checkpoint,
        progress,
      };
      const logDir = join(tmpdir(), `pontoon-bench-apiserver-logs-${process.pid}`);
      results.pods = await attempt(results, 'pod startup', () => runPodBench(podOptions, logDir));
      const podFailure = results.failures.find((f) => f.part === 'pod startup');
      if (podFailure && existsSync(logDir)) podFailure.error += `\n(the cluster's daemon logs are kept in ${logDir})`;
    }

    const loadAfter = loadavg();
    const cores = cpus().length;
    const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ');
    console.log(`apiserver benchmark, node ${process.version}, ${cores} cores`);
    console.log(`load average (1/5/15 min): before ${load(loadBefore)}, after ${load(loadAfter)}${(loadAfter[0] ?? 0) > cores * 0.5 ? '  (busy machine: absolute numbers are noisy, read the ratios)' : ''}`);
    const firstWrite = results.writes[0];
    if (firstWrite) {
      console.log('');
      console.log(`Write throughput: ConfigMaps of ${firstWrite.objectBytes} B JSON, ${firstWrite.count} creates then ${firstWrite.count} updates per round, ${firstWrite.concurrency} in flight, median of ${firstWrite.rounds} alternated rounds (after a warmup)`);
      console.log(writesTable(results.writes));
      console.log('  RAW = the same JSON straight into the engine (better-sqlite3, WAL + synchronous=NORMAL, one transaction per write; etcd3 put)');
      console.log('  STORE = SqliteStore/EtcdStore in-process (revision, CAS, change log); API = apiserver over HTTP on 127.0.0.1 (POST, PUT with resourceVersion)');
      console.log('  BUSY = event-loop utilisation while writing: of this process for RAW and STORE (they run in it), of the apiserver worker and of this process (the client) for API');
    }
    const firstWatch = results.watch[0];
    if (firstWatch) {
      console.log('');
      console.log(`Watch fan-out: 1 writer, ${firstWatch.watchers} watchers, ${firstWatch.count} creates paced every ${firstWatch.intervalMs} ms (${firstWatch.watchers * firstWatch.count} deliveries per run), ${WATCH_PAIRS} runs each, alternated`);
      console.log('  latency = write start → receipt by a watcher, over all deliveries of all runs');
      console.log(watchTable(results.watch));
    }
    if (results.pods) {
      const pods = results.pods;
      console.log('');
      console.log(`Pod startup: ${pods.pods} Pods (busybox httpd) on ${pods.nodes} nodes, ${pods.concurrency} creates in flight; reference: ${CNI_RUNS} bare CNI ADD/DEL through podCni (ip netns exec <node> pontoon-flannel)`);
      console.log(podsTable(pods));
      const perNode = Object.entries(pods.podsPerNode).sort().map(([node, n]) => `${node}=${n}`).join(' ');
      const serialAddMs = pods.pods * median(pods.cniAddMs);
      console.log(`  all ${pods.pods} Running: ${formatNumber(pods.totalMs)} ms after the first create (${formatNumber((pods.pods / pods.totalMs) * 1000)} pods/s); pods per node: ${perNode}`);
      console.log(`  vs ${pods.pods} bare ADDs one after another (${pods.pods} × ADD p50 = ${formatNumber(serialAddMs)} ms): ${formatRatio(pods.totalMs, serialAddMs)}`);
    }
    for (const failure of results.failures) {
      console.log('');
      console.log(`${failure.part}: FAILED`);
      console.log(failure.error.replace(/^/gm, '  '));
    }
    if (results.failures.length > 0) process.exitCode = 1;
    console.log('');
    console.log(benchJsonLine('apiserver', machineResults(options, results, { before: loadBefore, after: loadAfter })));
  } finally {
    for (const rig of rigs) await rig.close().catch((err: unknown) => console.error(`failed to stop the ${rig.kind} apiserver: ${describeError(err)}`));
    await etcd?.stop();
    for (const { name, error } of deleteNetnsWithPrefix(RUN_PREFIX)) console.error(`failed to delete network namespace "${name}": ${describeError(error)}`);
    rmSync(tempDir, { recursive: true, force: true });
  }
}

runBench(main);
