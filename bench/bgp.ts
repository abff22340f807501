/**
 * BGP benchmark: our speaker (`pontoon bgp`, the process users run) against BIRD 2 doing the
 * same jobs in the same run, with GoBGP as the route source for both:
 *
 *   1. ingest: N IPv4 prefixes (default 100k) preloaded into a passive GoBGP (an MRT file,
 *      `gobgp mrt inject`, as test/bgp/peers/ingest.ts does), one eBGP session over a veth;
 *      the receiver connects. Measured from the receiver's session reaching Established
 *      (polled every 5 ms) to all N in its RIB (ours: `status` rib.ipv4 over the control
 *      socket; BIRD: the protocol's import counter, `show protocols all`), polled every
 *      --rib-poll-ms, and to all N in its kernel (ours `kernelSync: true`, BIRD a kernel
 *      protocol exporting BGP routes): /proc/<pid>/net/fib_triestat "Prefixes:" of the Main
 *      trie minus the connected baseline, every 10 ms, cross-checked at the end against
 *      `ip -4 route show proto 88|bird`.
 *   2. reflection: the receiver as route reflector of --clients iBGP clients (one GoBGP
 *      injector holding --reflect prefixes, the rest sessions of one BIRD that count what they
 *      receive and store nothing, `import none`). The injector's link stays down until every
 *      other client is Established; measured from the reflector's session to the injector
 *      reaching Established to every client having received every prefix.
 *   3. memory: VmRSS (and VmHWM) of the receiver process when job 1 completes, at N and at
 *      --big prefixes (default 1M, one run; `--skip-big` to leave it out), and VmRSS again
 *      after --settle-ms (default 10 s) with nothing to do.
 *
 *   node build/bench/bgp.js [--prefixes 100000] [--clients 50] [--reflect 10000] [--big 1000000] [--skip-big] [--runs 1] [--rib-poll-ms 25] [--settle-ms 10000] [--node-flags=...] [--heap-snapshot DIR]
 *
 * `--heap-snapshot DIR` writes a V8 heap snapshot of our speaker into DIR when each ingest
 * completes (before it is stopped); `node build/bench/heap-summary.js FILE` says what holds
 * the memory.
 *
 * Our speaker runs with the node flags deploy/pontoon.yaml gives `pontoon bgp` (bench/lib/node-flags.ts).
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseIp } from '../src/lib/ip.js';
import { run } from '../src/lib/exec.js';
import { startBird } from '../test/bgp/peers/bird.js';
import { startGobgp } from '../test/bgp/peers/gobgp.js';
import { ipv4Prefixes, mrtTableDump } from '../test/bgp/peers/mrt.js';
import { linkNamespaces } from '../test/bgp/peers/topology.js';
import { Lab } from '../test/helpers/lab.js';
import { nodeFlagsFor } from './lib/node-flags.js';
import { cpuMs, injectMrt, kernelPrefixes, kernelPrefixesIn, OurSpeaker, parseClientCounts, rssMiB, startClients } from './lib/bgp-rig.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

type Kind = 'ours' | 'bird';
const NAMES: Record<Kind, string> = { ours: 'ours', bird: 'BIRD' };

interface Stoppable {
  stop(): Promise<void>;
}

interface IngestResult {
  kind: Kind;
  prefixes: number;
  tableMs: number;
  kernelMs: number;
  rssMiB: number;
  hwmMiB: number;
  /** VmRSS after --settle-ms with nothing to do (V8 collects and shrinks its heap when idle) */
  settledMiB: number;
  /** receiver CPU from Established to the end */
  cpuMs: number;
  gobgpdCpuMs: number;
  /** ours: how long a `status` request took while ingesting (mean, max), ms */
  statusMs?: { mean: number; max: number };
}

interface ReflectResult {
  kind: Kind;
  clients: number;
  prefixes: number;
  /** reflector's session to the injector Established → the first / every client has them all */
  firstMs: number;
  allMs: number;
  rrCpuMs: number;
  clientsCpuMs: number;
}

function labFor(tag: string): Lab {
  const lab = new Lab(`bench-bgp${tag}`);
  if (!lab.prefix.startsWith(RUN_PREFIX)) throw new BenchError(`lab prefix ${lab.prefix} does not start with ${RUN_PREFIX}`);
  return lab;
}

async function stopAll(daemons: Stoppable[]): Promise<void> {
  for (const daemon of daemons.reverse()) await daemon.stop().catch(() => undefined);
}

/** Signals the speaker (started with --heapsnapshot-signal) and waits for its snapshot to be written. */
async function heapSnapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = performance.now() + 120_000;
  let last = -1;
  for (;;) {
    const file = readdirSync(dir).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
    const size = file === undefined ? -1 : statSync(join(dir, file)).size;
    // V8 writes the file in one go; done once it stops growing over a second.
    if (file !== undefined && size > 0 && size === last) return join(dir, file);
    if (performance.now() > deadline) throw new BenchError(`no heap snapshot from pid ${pid} in ${dir}`);
    last = size;
    await sleep(1000);
  }
}

async function ingest(kind: Kind, count: number, ribPollMs: number, settleMs: number, nodeFlags: string[], snapshotDir?: string): Promise<IngestResult> {
  const lab = labFor(`i${kind}`);
  const daemons: Stoppable[] = [];
  try {
    const rxNs = lab.netns('rx');
    const gobgpNs = lab.netns('gobgp');
    linkNamespaces({ netns: rxNs, addresses: ['198.18.0.1/24'] }, { netns: gobgpNs, addresses: ['198.18.0.2/24'] });
    const mrtFile = join(lab.tempDir('bgpbench'), 'routes.mrt');
    writeFileSync(mrtFile, mrtTableDump(ipv4Prefixes(count), { nextHop: parseIp('198.18.0.2'), asPath: [64513] }, { routerId: 0xc6120002, address: parseIp('198.18.0.2'), asn: 64513 }));
    const gobgp = await startGobgp(gobgpNs, { routerId: '198.18.0.2', asn: 64513, peers: [{ address: '198.18.0.1', asn: 64512, passive: true }] }, lab.tempDir('gobgp'));
    daemons.push(gobgp);
    await injectMrt(gobgp, mrtFile, count);
    await checkpoint();

    const baseline = kernelPrefixesIn(rxNs); // the connected route
    let pid: number;
    let established: () => Promise<boolean>;
    let inTable: () => Promise<number>;
    let kernelCheck: () => number;
    const statusTimes: number[] = [];
    if (kind === 'ours') {
      const flags = snapshotDir === undefined ? nodeFlags : [...nodeFlags, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`];
      const speaker = OurSpeaker.start(rxNs, { routerId: '198.18.0.1', asn: 64512, kernelSync: true, nodeFlags: flags, peers: [{ address: '198.18.0.2', asn: 64513 }] }, lab.tempDir('ours'));
      daemons.push(speaker);
      pid = speaker.pid;
      established = async () => (await speaker.status())?.peers[0]?.state === 'Established';
      inTable = async () => {
        const start = performance.now();
        const status = await speaker.status();
        statusTimes.push(performance.now() - start);
        return status?.rib.ipv4 ?? 0;
      };
      kernelCheck = () => Number(run('sh', ['-c', 'ip -4 route show proto 88 | wc -l'], { netns: rxNs }).trim());
    } else {
      const bird = await startBird(rxNs, { routerId: '198.18.0.1', asn: 64512, peers: [{ name: 'gobgp', address: '198.18.0.2', asn: 64513 }], kernelExport: true }, lab.tempDir('bird'));
      daemons.push(bird);
      pid = bird.pid;
      established = async () => bird.protocols().some((p) => p.name === 'gobgp' && p.info.startsWith('Established'));
      inTable = async () => bird.protocolRoutes('gobgp').imported;
      kernelCheck = () => Number(run('sh', ['-c', 'ip -4 route show proto bird | wc -l'], { netns: rxNs }).trim());
    }
    const timeoutMs = 60_000 + count * 0.6;
    let deadline = performance.now() + 60_000;
    while (!(await established())) {
      if (performance.now() > deadline) throw new BenchError(`${NAMES[kind]}: no session with GoBGP in 60 s`);
      await sleep(5);
    }
    const start = performance.now();
    const cpu0 = cpuMs(pid);
    const gobgpCpu0 = cpuMs(gobgp.pid);
    deadline = start + timeoutMs;
    // Two independent loops: a slow status answer must not delay the kernel's counter.
    let lastTable = 0;
    let lastKernel = 0;
    const timedOut = (): BenchError => new BenchError(`${NAMES[kind]} ingest of ${count}: timed out after ${timeoutMs / 1000} s with ${lastTable} in the RIB and ${lastKernel} in the kernel`);
    const tableLoop = async (): Promise<number> => {
      for (;;) {
        lastTable = await inTable();
        if (lastTable >= count) return performance.now() - start;
        if (performance.now() > deadline) throw timedOut();
        await sleep(ribPollMs);
        await checkpoint();
      }
    };
    const kernelLoop = async (): Promise<number> => {
      for (;;) {
        lastKernel = kernelPrefixes(pid) - baseline;
        if (lastKernel >= count) return performance.now() - start;
        if (performance.now() > deadline) throw timedOut();
        await sleep(10);
        await checkpoint();
      }
    };
    const [tableMs, kernelMs] = await Promise.all([tableLoop(), kernelLoop()]);
    const memory = rssMiB(pid);
    const cpu = cpuMs(pid) - cpu0;
    const gobgpdCpu = cpuMs(gobgp.pid) - gobgpCpu0;
    const exact = kernelCheck();
    if (exact !== count) throw new BenchError(`${NAMES[kind]}: the kernel counter said ${count}, but the routes of its protocol number ${exact}`);
    await sleep(settleMs);
    const settled = rssMiB(pid).rss;
    const result: IngestResult = { kind, prefixes: count, tableMs, kernelMs, rssMiB: memory.rss, hwmMiB: memory.hwm, settledMiB: settled, cpuMs: cpu, gobgpdCpuMs: gobgpdCpu };
    if (kind === 'ours' && snapshotDir !== undefined) process.stderr.write(`  heap snapshot: ${await heapSnapshot(pid, snapshotDir)}\n`);
    if (statusTimes.length > 0) result.statusMs = { mean: statusTimes.reduce((a, b) => a + b, 0) / statusTimes.length, max: Math.max(...statusTimes) };
    return result;
  } finally {
    await stopAll(daemons);
    lab.cleanup();
  }
}

async function reflect(kind: Kind, clients: number, count: number, nodeFlags: string[]): Promise<ReflectResult> {
  const lab = labFor(`r${kind}`);
  const daemons: Stoppable[] = [];
  const rr = '198.18.1.1';
  const injector = '198.18.1.2';
  const receivers = Array.from({ length: clients - 1 }, (_, i) => `198.18.1.${3 + i}`);
  if (clients < 2 || clients > 250) throw new BenchError('--clients must be 2..250');
  try {
    const rrNs = lab.netns('rr');
    const clNs = lab.netns('cl');
    const injNs = lab.netns('inj');
    // One segment: a bridge in the reflector's namespace, the clients' namespace and the injector's on it.
    run('ip', ['-n', rrNs, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', rrNs, 'addr', 'add', `${rr}/24`, 'dev', 'br0']);
    for (const [name, ns] of [['vcl', clNs], ['vinj', injNs]] as const) {
      run('ip', ['-n', rrNs, 'link', 'add', name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', rrNs, 'link', 'set', name, 'master', 'br0', 'up']);
    }
    run('ip', ['-n', rrNs, 'link', 'set', 'br0', 'up']);
    for (const address of receivers) run('ip', ['-n', clNs, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    run('ip', ['-n', clNs, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', injNs, 'addr', 'add', `${injector}/24`, 'dev', 'eth0']); // left down until the clients are up

    const mrtFile = join(lab.tempDir('bgpbench'), 'routes.mrt');
    writeFileSync(mrtFile, mrtTableDump(ipv4Prefixes(count, 40 << 24), { nextHop: parseIp(injector), asPath: [] }, { routerId: 0xc6120102, address: parseIp(injector), asn: 64512 }));
    const gobgp = await startGobgp(injNs, { routerId: injector, asn: 64512, peers: [{ address: rr, asn: 64512, passive: true }] }, lab.tempDir('gobgp'));
    daemons.push(gobgp);
    await injectMrt(gobgp, mrtFile, count);

    let pid: number;
    let injectorUp: () => Promise<boolean>;
    if (kind === 'ours') {
      const speaker = OurSpeaker.start(
        rrNs,
        {
          routerId: rr,
          asn: 64512,
          clusterId: rr,
          kernelSync: false,
          nodeFlags,
          peers: [{ address: injector, asn: 64512, routeReflectorClient: true }, ...receivers.map((address) => ({ address, asn: 64512, routeReflectorClient: true, passive: true }))],
        },
        lab.tempDir('ours'),
      );
      daemons.push(speaker);
      pid = speaker.pid;
      injectorUp = async () => (await speaker.status())?.peers.find((p) => p.address === injector)?.state === 'Established';
    } else {
      const bird = await startBird(
        rrNs,
        {
          routerId: rr,
          asn: 64512,
          rrClusterId: rr,
          peers: [{ name: 'inj', address: injector, asn: 64512, rrClient: true }, ...receivers.map((address, i) => ({ name: `c${i}`, address, asn: 64512, rrClient: true, passive: true }))],
        },
        lab.tempDir('bird'),
      );
      daemons.push(bird);
      pid = bird.pid;
      injectorUp = async () => bird.protocols().some((p) => p.name === 'inj' && p.info.startsWith('Established'));
    }
    const clientBird = await startClients(clNs, rr, 64512, receivers, lab.tempDir('clients'));
    daemons.push(clientBird);
    const counts = (): ReturnType<typeof parseClientCounts> => parseClientCounts(clientBird.birdc('show', 'protocols', 'all'));
    let deadline = performance.now() + 90_000;
    for (let c = counts(); c.established < receivers.length; c = counts()) {
      if (performance.now() > deadline) throw new BenchError(`${NAMES[kind]} reflector: only ${c.established} of ${receivers.length} clients Established after 90 s`);
      await sleep(100);
      await checkpoint();
    }
    run('ip', ['-n', injNs, 'link', 'set', 'eth0', 'up']);
    deadline = performance.now() + 90_000;
    while (!(await injectorUp())) {
      if (performance.now() > deadline) throw new BenchError(`${NAMES[kind]} reflector: no session with the injector after 90 s`);
      await sleep(5);
    }
    const start = performance.now();
    const rrCpu0 = cpuMs(pid);
    const clientsCpu0 = cpuMs(clientBird.pid);
    deadline = start + 120_000;
    let firstMs: number | undefined;
    let allMs: number | undefined;
    let last = counts();
    while (allMs === undefined) {
      if (performance.now() > deadline) throw new BenchError(`${NAMES[kind]} reflector: after 120 s clients hold ${[...last.received.values()].join(',')} of ${count}`);
      last = counts();
      const done = [...last.received.values()].filter((n) => n >= count).length;
      if (firstMs === undefined && done > 0) firstMs = performance.now() - start;
      if (done === receivers.length) allMs = performance.now() - start;
      else await sleep(20);
      await checkpoint();
    }
    const over = [...last.received.entries()].filter(([, n]) => n !== count);
    if (over.length > 0) process.stderr.write(`  note: ${over.length} clients received more updates than prefixes (${over.slice(0, 3).map(([p, n]) => `${p}=${n}`).join(', ')})\n`);
    return { kind, clients, prefixes: count, firstMs: firstMs ?? allMs, allMs, rrCpuMs: cpuMs(pid) - rrCpu0, clientsCpuMs: cpuMs(clientBird.pid) - clientsCpu0 };
  } finally {
    await stopAll(daemons);
    lab.cleanup();
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
};
const sec = (ms: number): string => (ms / 1000).toFixed(2);
const rate = (count: number, ms: number): string => `${Math.round(count / (ms / 1000)).toLocaleString('en-US')}/s`;
const k = (n: number): string => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      prefixes: { type: 'string', default: '100000' },
      clients: { type: 'string', default: '50' },
      reflect: { type: 'string', default: '10000' },
      big: { type: 'string', default: '1000000' },
      'skip-big': { type: 'boolean', default: false },
      'skip-reflect': { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      'rib-poll-ms': { type: 'string', default: '25' },
      'settle-ms': { type: 'string', default: '10000' },
      'node-flags': { type: 'string' },
      'heap-snapshot': { type: 'string' },
    },
  });
  const nodeFlags = nodeFlagsFor(values['node-flags'], 'pontoon.yaml', 'bgp');
  process.stderr.write(`our speaker runs as node ${nodeFlags.join(' ') || 'without flags'} (deploy/pontoon.yaml's; --node-flags=... overrides)\n`);
  const prefixes = Number(values.prefixes);
  const clients = Number(values.clients);
  const reflectCount = Number(values.reflect);
  const big = Number(values.big);
  const runs = Number(values.runs);
  const ribPollMs = Number(values['rib-poll-ms']);
  const settleMs = Number(values['settle-ms']);
  for (const [name, value] of Object.entries({ prefixes, clients, reflect: reflectCount, big, runs, 'rib-poll-ms': ribPollMs, 'settle-ms': settleMs })) {
    if (!Number.isInteger(value) || value <= 0) throw new BenchError(`--${name} must be a positive integer`);
  }
  const kinds: Kind[] = ['ours', 'bird'];
  const ingests: IngestResult[] = [];
  const reflections: ReflectResult[] = [];
  const bigs: IngestResult[] = [];
  const problems: string[] = [];
  const attempt = async <T>(what: string, job: () => Promise<T>): Promise<T | undefined> => {
    process.stderr.write(`${what} ...\n`);
    try {
      return await job();
    } catch (err) {
      if ((err as Error).name === 'BenchInterrupted') throw err;
      const message = `${what} failed: ${(err as Error).message}`;
      problems.push(message);
      process.stderr.write(`  ${message}\n`);
      return undefined;
    }
  };
  for (let r = 1; r <= runs; r++) {
    for (const kind of r % 2 ? kinds : [...kinds].reverse()) {
      const result = await attempt(`run ${r}: ${NAMES[kind]} ingest of ${k(prefixes)}`, () => ingest(kind, prefixes, ribPollMs, settleMs, nodeFlags, values['heap-snapshot']));
      if (result) {
        ingests.push(result);
        process.stderr.write(`  RIB ${sec(result.tableMs)} s, kernel ${sec(result.kernelMs)} s, RSS ${result.rssMiB.toFixed(0)} MiB (${result.settledMiB.toFixed(0)} MiB idle), cpu ${result.cpuMs} ms${result.statusMs ? `, status ${result.statusMs.mean.toFixed(1)}/${result.statusMs.max.toFixed(1)} ms` : ''}\n`);
      }
    }
  }
  if (!values['skip-reflect']) {
    for (let r = 1; r <= runs; r++) {
      for (const kind of r % 2 ? kinds : [...kinds].reverse()) {
        const result = await attempt(`run ${r}: ${NAMES[kind]} reflecting ${k(reflectCount)} to ${clients} clients`, () => reflect(kind, clients, reflectCount, nodeFlags));
        if (result) {
          reflections.push(result);
          process.stderr.write(`  first client ${sec(result.firstMs)} s, all ${sec(result.allMs)} s, rr cpu ${result.rrCpuMs} ms, clients cpu ${result.clientsCpuMs} ms\n`);
        }
      }
    }
  }
  if (!values['skip-big']) {
    for (const kind of kinds) {
      const result = await attempt(`${NAMES[kind]} ingest of ${k(big)} (once)`, () => ingest(kind, big, ribPollMs * 4, settleMs, nodeFlags, values['heap-snapshot']));
      if (result) {
        bigs.push(result);
        process.stderr.write(`  RIB ${sec(result.tableMs)} s, kernel ${sec(result.kernelMs)} s, RSS ${result.rssMiB.toFixed(0)} MiB (${result.settledMiB.toFixed(0)} MiB idle), cpu ${result.cpuMs} ms\n`);
      }
    }
  }

  const pick = <T extends { kind: Kind }>(list: T[], kind: Kind, field: (x: T) => number): number | undefined => {
    const values = list.filter((x) => x.kind === kind).map(field);
    return values.length > 0 ? median(values) : undefined;
  };
  const rows: string[][] = [['JOB', 'OURS', 'BIRD', 'OURS/BIRD', 'TARGET']];
  const timeRow = (label: string, list: { kind: Kind }[], count: number, field: (x: never) => number, target?: number): void => {
    const o = pick(list as { kind: Kind }[], 'ours', field as (x: { kind: Kind }) => number);
    const b = pick(list as { kind: Kind }[], 'bird', field as (x: { kind: Kind }) => number);
    const cell = (v: number | undefined): string => (v === undefined ? 'not measured' : `${sec(v)} s  ${rate(count, v)}`);
    const ratio = o !== undefined && b !== undefined ? b / o : undefined; // rate ratio = inverse time ratio
    rows.push([label, cell(o), cell(b), ratio === undefined ? '-' : `${ratio.toFixed(2)}× rate`, target === undefined ? '' : `≥ ${target.toFixed(1)}× ${ratio === undefined ? '' : ratio >= target ? 'met' : 'MISSED'}`]);
  };
  const memRow = (label: string, list: IngestResult[]): void => {
    const o = pick(list, 'ours', (x) => x.rssMiB);
    const b = pick(list, 'bird', (x) => x.rssMiB);
    const oh = pick(list, 'ours', (x) => x.hwmMiB);
    const bh = pick(list, 'bird', (x) => x.hwmMiB);
    const cell = (v: number | undefined, h: number | undefined): string => (v === undefined ? 'not measured' : `${v.toFixed(0)} MiB (peak ${h?.toFixed(0)})`);
    const ratio = o !== undefined && b !== undefined ? o / b : undefined;
    rows.push([label, cell(o, oh), cell(b, bh), ratio === undefined ? '-' : `${ratio.toFixed(2)}× RSS`, `≤ 2.0× ${ratio === undefined ? '' : ratio <= 2 ? 'met' : 'MISSED'}`]);
    const os = pick(list, 'ours', (x) => x.settledMiB);
    const bs = pick(list, 'bird', (x) => x.settledMiB);
    const settledCell = (v: number | undefined): string => (v === undefined ? 'not measured' : `${v.toFixed(0)} MiB`);
    const settledRatio = os !== undefined && bs !== undefined ? os / bs : undefined;
    rows.push([`${label}, ${settleMs / 1000} s idle`, settledCell(os), settledCell(bs), settledRatio === undefined ? '-' : `${settledRatio.toFixed(2)}× RSS`, `≤ 2.0× ${settledRatio === undefined ? '' : settledRatio <= 2 ? 'met' : 'MISSED'}`]);
  };
  timeRow(`${k(prefixes)} eBGP: Established → RIB`, ingests, prefixes, (x: IngestResult) => x.tableMs, 1);
  timeRow(`${k(prefixes)} eBGP: Established → kernel`, ingests, prefixes, (x: IngestResult) => x.kernelMs, 1);
  timeRow(`RR ${clients} clients, ${k(reflectCount)}: → first client`, reflections, reflectCount, (x: ReflectResult) => x.firstMs);
  timeRow(`RR ${clients} clients, ${k(reflectCount)}: → all ${clients - 1} clients`, reflections, reflectCount, (x: ReflectResult) => x.allMs, 0.5);
  memRow(`RSS at ${k(prefixes)}`, ingests);
  if (values['skip-big']) rows.push([`RSS at ${k(big)}`, 'not measured (--skip-big)', 'not measured (--skip-big)', '-', '≤ 2.0×']);
  else {
    memRow(`RSS at ${k(big)}`, bigs);
    timeRow(`${k(big)} eBGP: Established → RIB`, bigs, big, (x: IngestResult) => x.tableMs);
    timeRow(`${k(big)} eBGP: Established → kernel`, bigs, big, (x: IngestResult) => x.kernelMs);
  }
  console.log(`BGP: ours vs BIRD 2, GoBGP as the source, ${runs} run(s) each (medians), this machine, this run`);
  console.log(table(rows));
  console.log('\nreceiver CPU (user+system) from Established to the end:');
  for (const list of [ingests, bigs]) {
    for (const kind of kinds) {
      const xs = list.filter((x) => x.kind === kind);
      if (xs.length === 0) continue;
      const x = xs[0] as IngestResult;
      console.log(`  ${k(x.prefixes)} ${NAMES[kind]}: ${median(xs.map((y) => y.cpuMs))} ms (gobgpd ${median(xs.map((y) => y.gobgpdCpuMs))} ms)${x.statusMs ? `; a status request took ${median(xs.map((y) => y.statusMs?.mean ?? 0)).toFixed(1)} ms mean, ${median(xs.map((y) => y.statusMs?.max ?? 0)).toFixed(1)} ms max while ingesting` : ''}`);
    }
  }
  for (const kind of kinds) {
    const xs = reflections.filter((x) => x.kind === kind);
    if (xs.length > 0) console.log(`  reflector ${NAMES[kind]}: ${median(xs.map((y) => y.rrCpuMs))} ms (the clients' BIRD ${median(xs.map((y) => y.clientsCpuMs))} ms)`);
  }
  console.log('\nfor context, GoBGP → BIRD measured on this machine earlier (the issue): 100k in BIRD\'s table 1.0–1.1 s after Established, in the kernel 1.25–1.4 s.');
  if (problems.length > 0) {
    console.log('\nproblems:');
    for (const problem of problems) console.log(`  ${problem}`);
    process.exitCode = 1;
  }
}

runBench(main);
