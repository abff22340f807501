/**
 * CNI latency benchmark: how long a runtime waits for ADD, DEL and VERSION from Pontoon's
 * `pontoon-bridge` (with `pontoon-ipam`, served in-process) against the reference `bridge` +
 * `host-local` from containernetworking-plugins, both measured in the same run.
 *
 * Reading the numbers: each sample is the wall-clock time of one plugin process, spawn to exit,
 * process start included, because that is what a runtime pays per pod. A ratio is
 * pontoon / reference for the same statistic: 1x is parity, 4x means Pontoon takes four times as
 * long. VERSION does no kernel work, so its times are the process start floor of each plugin;
 * ADD minus VERSION is roughly the plugin's own work.
 *
 * Fairness: both plugins get the same config (bar bridge name, subnet and data dir), the same
 * environment a runtime would pass (ours plus the CNI variables; the Node plugin's shebang
 * drops NODE_EXTRA_CA_CERTS itself) and the same `ip netns exec <node>` wrapper, whose own
 * cost is printed as the wrapper floor; it is in both sides of every ratio, so it pulls
 * ratios toward 1x. Contenders alternate sample by sample so machine noise hits both alike.
 *
 * A third contender, "in-process", is the same pontoon-bridge ADD/DEL run through the plugin
 * harness (`runPlugin`) inside this long-lived process, with the thread in the node's
 * namespace: what a kubelet could pay for our own plugins if it called them instead of
 * exec'ing them (third-party plugins keep the exec contract). It is the plugin's share of
 * sandbox network setup without a process start; its ratio is against the exec'd reference.
 *
 * A fourth, "thick", keeps the exec contract without starting Node per call: the runtime
 * execs `pontoon-bridge-shim` (a shell script), which hands the invocation to a `pontoon
 * cni-server` already running in the node's namespace over a unix socket.
 *
 * Last, sandbox network setup as our kubelet does it (src/kubelet/cni.ts: config load, the
 * plugin call, the result cache), both ways: every plugin exec'd, and our plugin run by the
 * kubelet's CNI helper (a long-lived cni-server child, src/kubelet/cni-helper.ts); the
 * reference plugin exec'd by the same code is the yardstick.
 *
 *   node build/bench/cni.js [--runs N]     (default 30; needs root)
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeError } from '../src/lib/errors.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from '../src/cni-plugin/bridge/bridge.js';
import { classifyError } from '../src/cni-plugin/classify.js';
import { type CniHandlers, runPlugin } from '../src/cni-plugin/skel/skel.js';
import { createNetns, deleteNetns, deleteNetnsWithPrefix, enterNetns, netnsPath } from '../src/lib/netns.js';
import { CniNetwork } from '../src/kubelet/cni.js';
import { CniHelper } from '../src/kubelet/cni-helper.js';
import { createLogger } from '../src/lib/log.js';
import { parseJson } from './lib/json.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PONTOON_CNI_DIR = join(ROOT, 'dist/cni');
const REFERENCE_CNI_DIR = '/usr/lib/cni';
const CNI_PATH = `${PONTOON_CNI_DIR}:${REFERENCE_CNI_DIR}`;
// The newest version Debian's containernetworking-plugins speak; Pontoon gets the same.
const CNI_VERSION = '1.0.0';

const DEFAULT_RUNS = 30;
const WARMUP_RUNS = 3;
const PLUGIN_TIMEOUT_MS = 60_000;
const ADD_P50_TARGET_RATIO = 2;


type Verb = 'ADD' | 'DEL' | 'VERSION';
const VERBS: readonly Verb[] = ['ADD', 'DEL', 'VERSION'];

const BRIDGE_HANDLERS: CniHandlers = { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc };

interface Contender {
  label: 'reference' | 'pontoon' | 'in-process' | 'thick';
  /** Extra environment for the exec (the thick shim's socket). */
  env?: Record<string, string>;
  /** Short tag for namespace and container names. */
  tag: string;
  pluginPath: string;
  /** The simulated node: the plugin runs here, its bridge lives here. */
  nodeNetns: string;
  /** The network config, as the plugin reads it from stdin. */
  stdin: string;
}

interface Invocation {
  elapsedMs: number;
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Summary {
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
}

function networkConfig(pluginType: string, bridge: string, ipamType: string, subnet: string, dataDir: string): string {
  return JSON.stringify({
    cniVersion: CNI_VERSION,
    name: 'pontoon-bench',
    type: pluginType,
    bridge,
    isGateway: true,
    ipMasq: false,
    ipam: { type: ipamType, ranges: [[{ subnet }]], dataDir, routes: [{ dst: '0.0.0.0/0' }] },
  });
}

function parseRuns(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { runs: { type: 'string' } }, strict: true });
  if (values.runs === undefined) return DEFAULT_RUNS;
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new BenchError(`--runs must be a positive integer, got ${JSON.stringify(values.runs)}`);
  return runs;
}

/** Runs `file args` inside `nodeNetns` the way every sample is taken, and times it. */
async function timedSpawn(nodeNetns: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin: string): Promise<Invocation> {
  const argv = ['netns', 'exec', nodeNetns, file, ...args];
  const started = process.hrtime.bigint();
  const result = spawnSync('ip', argv, { input: stdin, env, encoding: 'utf8', timeout: PLUGIN_TIMEOUT_MS });
  const elapsedNs = process.hrtime.bigint() - started;
  await checkpoint();
  if (result.error) throw new BenchError(`failed to run "${file}" in "${nodeNetns}": ${result.error.message}`, { cause: result.error });
  return { elapsedMs: Number(elapsedNs) / 1e6, status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** The plugin's handlers called in this process, timed like a spawn; the thread sits in the node's namespace meanwhile. */
async function invokeInProcess(contender: Contender, command: Verb, cniEnv: Record<string, string>): Promise<Invocation> {
  let stdout = '';
  const io = { env: { CNI_COMMAND: command, CNI_PATH, ...cniEnv }, readStdin: () => Buffer.from(contender.stdin), writeStdout: (text: string) => void (stdout += text) };
  const leave = enterNetns(netnsPath(contender.nodeNetns));
  const started = process.hrtime.bigint();
  let status: number;
  try {
    status = await runPlugin(BRIDGE_HANDLERS, classifyError, io);
  } finally {
    leave();
  }
  const elapsedNs = process.hrtime.bigint() - started;
  await checkpoint();
  if (status !== 0) throw new BenchError(`failed to run ${command} in-process: ${stdout.trim()}`);
  return { elapsedMs: Number(elapsedNs) / 1e6, status, signal: null, stdout, stderr: '' };
}

async function invokePlugin(contender: Contender, command: Verb, cniEnv: Record<string, string> = {}): Promise<Invocation> {
  if (contender.label === 'in-process') return invokeInProcess(contender, command, cniEnv);
  // A runtime passes its own environment through; so do we, NODE_EXTRA_CA_CERTS included.
  const env: NodeJS.ProcessEnv = { ...process.env, CNI_COMMAND: command, CNI_PATH, ...contender.env, ...cniEnv };
  const outcome = await timedSpawn(contender.nodeNetns, contender.pluginPath, [], env, contender.stdin);
  if (outcome.status !== 0) {
    const how = outcome.status === null ? `killed by ${outcome.signal ?? 'a signal'}` : `exit code ${outcome.status}`;
    throw new BenchError(`failed to run ${command} with ${contender.label} "${contender.pluginPath}": ${how}: ${(outcome.stdout + outcome.stderr).trim()}`);
  }
  return outcome;
}


/** An ADD counts only if it printed a CNI result with at least one address. */
function expectAddResult(contender: Contender, outcome: Invocation): void {
  const result = parseJson(outcome.stdout);
  const ips = typeof result === 'object' && result !== null ? (result as Record<string, unknown>)['ips'] : undefined;
  if (!Array.isArray(ips) || ips.length === 0) {
    throw new BenchError(`failed to check ADD result of ${contender.label}: no "ips" in ${JSON.stringify(outcome.stdout)}`);
  }
}

function expectVersionResult(contender: Contender, outcome: Invocation): void {
  const result = parseJson(outcome.stdout);
  const versions = typeof result === 'object' && result !== null ? (result as Record<string, unknown>)['supportedVersions'] : undefined;
  if (!Array.isArray(versions) || !versions.includes(CNI_VERSION)) {
    throw new BenchError(`failed to check VERSION result of ${contender.label}: ${CNI_VERSION} not in ${JSON.stringify(outcome.stdout)}`);
  }
}

let containerCounter = 0;

/** One pod's life: a fresh container namespace (untimed), timed ADD, timed DEL, namespace gone. */
async function addThenDel(contender: Contender): Promise<{ addMs: number; delMs: number }> {
  const id = `${contender.tag}${containerCounter++}`;
  const containerNetns = `${RUN_PREFIX}${id}`;
  createNetns(containerNetns);
  try {
    const cniEnv = { CNI_CONTAINERID: `${RUN_PREFIX}${id}`, CNI_NETNS: netnsPath(containerNetns), CNI_IFNAME: 'eth0' };
    const add = await invokePlugin(contender, 'ADD', cniEnv);
    expectAddResult(contender, add);
    const del = await invokePlugin(contender, 'DEL', cniEnv);
    return { addMs: add.elapsedMs, delMs: del.elapsedMs };
  } finally {
    deleteNetns(containerNetns);
  }
}

/** Linear interpolation between closest ranks, so p95 of 30 samples is not just the maximum. */
function percentile(sorted: readonly number[], fraction: number): number {
  const rank = (sorted.length - 1) * fraction;
  const below = sorted[Math.floor(rank)];
  const above = sorted[Math.ceil(rank)];
  if (below === undefined || above === undefined) throw new BenchError('failed to summarize samples: there are none');
  return below + (above - below) * (rank - Math.floor(rank));
}

function summarize(samplesMs: readonly number[]): Summary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const meanMs = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return { p50Ms: percentile(sorted, 0.5), p95Ms: percentile(sorted, 0.95), meanMs };
}

function formatRatio(pontoonMs: number, referenceMs: number): string {
  return `${(pontoonMs / referenceMs).toFixed(1)}x`;
}

function printReport(runs: number, samples: ReadonlyMap<string, number[]>, wrapperFloor: Summary): void {
  const columns = [9, 11, 10, 10, 10];
  const row = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i < 2 ? cell.padEnd(columns[i] ?? 0) : cell.padStart(columns[i] ?? 0))).join('');
  const get = (verb: Verb, label: Contender['label']): Summary => summarize(samples.get(`${verb}/${label}`) ?? []);

  console.log(`CNI plugin latency, ${runs} runs per verb and contender (after ${WARMUP_RUNS} warmup), cniVersion ${CNI_VERSION}, node ${process.version}`);
  console.log(`reference: ${REFERENCE_CNI_DIR}/bridge + host-local; pontoon: dist/cni/pontoon-bridge + pontoon-ipam; both via "ip netns exec <node>"`);
  console.log('');
  console.log(row(['verb', 'contender', 'p50 ms', 'p95 ms', 'mean ms']));
  for (const verb of VERBS) {
    const reference = get(verb, 'reference');
    const pontoon = get(verb, 'pontoon');
    for (const [label, summary] of [['reference', reference], ['pontoon', pontoon]] as const) {
      console.log(row([label === 'reference' ? verb : '', label, summary.p50Ms.toFixed(2), summary.p95Ms.toFixed(2), summary.meanMs.toFixed(2)]));
    }
    console.log(row(['', 'ratio', formatRatio(pontoon.p50Ms, reference.p50Ms), formatRatio(pontoon.p95Ms, reference.p95Ms), formatRatio(pontoon.meanMs, reference.meanMs)]));
  }
  console.log(row(['wrapper', 'floor', wrapperFloor.p50Ms.toFixed(2), wrapperFloor.p95Ms.toFixed(2), wrapperFloor.meanMs.toFixed(2)]) + '   (ip netns exec <node> true)');
  console.log('');
  const add = { reference: get('ADD', 'reference'), pontoon: get('ADD', 'pontoon') };
  console.log(`ADD p50 ratio: ${formatRatio(add.pontoon.p50Ms, add.reference.p50Ms)} (target <= ${ADD_P50_TARGET_RATIO}x)`);
  console.log(`ADD p95 ratio: ${formatRatio(add.pontoon.p95Ms, add.reference.p95Ms)}`);
  const thick = { add: get('ADD', 'thick'), del: get('DEL', 'thick') };
  console.log(
    `thick (runtime execs pontoon-bridge-shim, a running pontoon cni-server does the work): ADD p50 ${thick.add.p50Ms.toFixed(2)} ms = ${formatRatio(thick.add.p50Ms, add.reference.p50Ms)} the reference (target <= ${ADD_P50_TARGET_RATIO}x), p95 ${formatRatio(thick.add.p95Ms, add.reference.p95Ms)}; DEL p50 ${formatRatio(thick.del.p50Ms, get('DEL', 'reference').p50Ms)}`,
  );
  const inProcess = { add: get('ADD', 'in-process'), del: get('DEL', 'in-process') };
  console.log(
    `in-process (a kubelet calling our plugin instead of exec'ing it): ADD p50 ${inProcess.add.p50Ms.toFixed(2)} ms = ${formatRatio(inProcess.add.p50Ms, add.reference.p50Ms)} the exec'd reference, DEL p50 ${inProcess.del.p50Ms.toFixed(2)} ms = ${formatRatio(inProcess.del.p50Ms, get('DEL', 'reference').p50Ms)}`,
  );
}

function cleanup(tempDir: string): void {
  for (const { name, error } of deleteNetnsWithPrefix(RUN_PREFIX)) {
    console.error(`failed to delete network namespace "${name}": ${describeError(error)}`);
  }
  rmSync(tempDir, { recursive: true, force: true });
}


type SetupWay = 'reference exec' | 'pontoon exec' | 'pontoon helper';

/** CniNetwork.add then del per sample, the three ways alternating; returns the samples by way. */
async function kubeletSetup(runs: number, tempDir: string): Promise<Map<SetupWay, { add: number[]; del: number[] }>> {
  const nodeNetns = `${RUN_PREFIX}kub-node`;
  createNetns(nodeNetns);
  const log = createLogger('bench', { level: 'silent' });
  const helper = new CniHelper({ command: [process.execPath, join(ROOT, 'dist/cli/pontoon.cjs')], socketPath: join(tempDir, 'kubelet', 'cni-helper.sock'), logFile: join(tempDir, 'kubelet', 'cni-helper.log'), hostNetns: nodeNetns, log });
  const network = (way: SetupWay, index: number): CniNetwork => {
    const confDir = join(tempDir, `conf${index}`);
    mkdirSync(confDir, { recursive: true });
    const [type, ipam] = way === 'reference exec' ? ['bridge', 'host-local'] : ['pontoon-bridge', 'pontoon-ipam'];
    writeFileSync(join(confDir, '10-bench.conf'), networkConfig(type, `kub${index}br0`, ipam, `10.${101 + index}.0.0/16`, join(tempDir, `kub${index}`)));
    return new CniNetwork({ confDir, binDirs: [PONTOON_CNI_DIR, REFERENCE_CNI_DIR], cacheDir: join(tempDir, `cache${index}`), hostNetns: nodeNetns, ...(way === 'pontoon helper' ? { helper } : {}) });
  };
  const ways: SetupWay[] = ['reference exec', 'pontoon exec', 'pontoon helper'];
  const networks = ways.map((way, i) => [way, network(way, i)] as const);
  const samples = new Map(ways.map((way) => [way, { add: [] as number[], del: [] as number[] }]));
  helper.start();
  try {
    for (let waited = 0; !existsSync(join(tempDir, 'kubelet', 'cni-helper.sock')); waited += 50) {
      if (waited > 20_000) throw new BenchError('the kubelet CNI helper did not open its socket in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (let i = -WARMUP_RUNS; i < runs; i++) {
      for (const [way, cni] of networks) {
        const id = `kub${containerCounter++}`;
        const containerNetns = `${RUN_PREFIX}${id}`;
        createNetns(containerNetns);
        try {
          const ref = { namespace: 'bench', name: id, uid: id, sandboxId: `${RUN_PREFIX}${id}`, netnsPath: netnsPath(containerNetns) };
          const t0 = performance.now();
          await cni.add(ref);
          const t1 = performance.now();
          await cni.del(ref);
          const t2 = performance.now();
          if (i >= 0) {
            samples.get(way)?.add.push(t1 - t0);
            samples.get(way)?.del.push(t2 - t1);
          }
        } finally {
          deleteNetns(containerNetns);
        }
        await checkpoint();
      }
    }
  } finally {
    await helper.stop();
    deleteNetns(nodeNetns);
  }
  return samples;
}

function printKubeletSetup(samples: Map<SetupWay, { add: number[]; del: number[] }>): void {
  const reference = samples.get('reference exec');
  if (!reference) return;
  const refAdd = summarize(reference.add);
  const refDel = summarize(reference.del);
  console.log('');
  console.log('sandbox network setup as our kubelet does it (CniNetwork: config, plugin, result cache), p50:');
  for (const [way, { add, del }] of samples) {
    const a = summarize(add);
    const d = summarize(del);
    console.log(`  ${way.padEnd(15)} ADD ${a.p50Ms.toFixed(2).padStart(7)} ms (${formatRatio(a.p50Ms, refAdd.p50Ms)} the reference)   DEL ${d.p50Ms.toFixed(2).padStart(7)} ms (${formatRatio(d.p50Ms, refDel.p50Ms)})`);
  }
}

async function main(): Promise<void> {
  const runs = parseRuns(process.argv.slice(2));
  const tempDir = mkdtempSync(join(tmpdir(), 'pontoon-bench-'));
  let stopServer = (): void => undefined;
  try {
    /** A contender with its own node namespace, bridge, subnet and IPAM directory. */
    const contender = (label: Contender['label'], tag: string, pluginPath: string, type: string, ipam: string, subnetIndex: number, env?: Record<string, string>): Contender => ({
      label,
      tag,
      pluginPath,
      nodeNetns: `${RUN_PREFIX}${tag}-node`,
      stdin: networkConfig(type, `${tag}br0`, ipam, `10.${91 + subnetIndex}.0.0/16`, join(tempDir, tag)),
      ...(env ? { env } : {}),
    });
    const socket = join(tempDir, 'cni.sock');
    const reference = contender('reference', 'ref', join(REFERENCE_CNI_DIR, 'bridge'), 'bridge', 'host-local', 0);
    const pontoon = contender('pontoon', 'ptn', join(PONTOON_CNI_DIR, 'pontoon-bridge'), 'pontoon-bridge', 'pontoon-ipam', 1);
    const inProcess = contender('in-process', 'inp', '(runPlugin in this process)', 'pontoon-bridge', 'pontoon-ipam', 2);
    const thick = contender('thick', 'thk', join(PONTOON_CNI_DIR, 'pontoon-bridge-shim'), 'pontoon-bridge-shim', 'pontoon-ipam', 3, { PONTOON_CNI_SOCKET: socket });
    const contenders = [reference, pontoon, inProcess, thick];
    for (const contender of contenders) createNetns(contender.nodeNetns);
    const server = spawn('ip', ['netns', 'exec', thick.nodeNetns, process.execPath, join(ROOT, 'dist/cli/pontoon.cjs'), 'cni-server', '--socket', socket, '--log-level', 'warn'], { stdio: 'inherit' });
    stopServer = () => server.kill('SIGKILL');
    for (let waited = 0; !existsSync(socket); waited += 50) {
      if (waited > 20_000) throw new BenchError('pontoon cni-server did not open its socket in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const samples = new Map<string, number[]>();
    const record = (verb: Verb, contender: Contender, ms: number): void => {
      const key = `${verb}/${contender.label}`;
      const list = samples.get(key);
      if (list) list.push(ms);
      else samples.set(key, [ms]);
    };

    // Negative iterations are warmup: they fill page caches and create each bridge, uncounted.
    for (let i = -WARMUP_RUNS; i < runs; i++) {
      for (const contender of contenders) {
        const { addMs, delMs } = await addThenDel(contender);
        if (i < 0) continue;
        record('ADD', contender, addMs);
        record('DEL', contender, delMs);
      }
    }

    const wrapperFloorMs: number[] = [];
    for (let i = -WARMUP_RUNS; i < runs; i++) {
      for (const contender of [reference, pontoon]) {
        const version = await invokePlugin(contender, 'VERSION');
        expectVersionResult(contender, version);
        if (i >= 0) record('VERSION', contender, version.elapsedMs);
      }
      const floor = await timedSpawn(reference.nodeNetns, 'true', [], process.env, '');
      if (i >= 0) wrapperFloorMs.push(floor.elapsedMs);
    }

    printReport(runs, samples, summarize(wrapperFloorMs));
    stopServer();
    printKubeletSetup(await kubeletSetup(runs, tempDir));
  } finally {
    stopServer();
    cleanup(tempDir);
  }
}

runBench(main);
