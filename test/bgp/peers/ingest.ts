/**
 * Measures GoBGP → BIRD ingest of many IPv4 prefixes over a veth: from BIRD's session
 * reaching Established to all prefixes in BIRD's table, and to all of them in BIRD's kernel
 * table (its kernel protocol). For bench/bgp.ts; also runnable on its own:
 *
 *   node build/test/bgp/peers/ingest.js [prefixes=100000] [runs=3]
 *
 * How: the prefixes go into GoBGP first (an MRT TABLE_DUMP_V2 file, `gobgp mrt inject
 * global`, then waiting until `global rib summary` shows them all), GoBGP is passive, then BIRD starts and connects (connect delay 1 s). Established
 * is observed by polling `birdc show protocols` every ~5 ms; the table by the protocol's
 * import counter (`show protocols all`: `show route count` walks the table and slows
 * BIRD down while it ingests) and the kernel by /proc/<bird pid>/net/fib_triestat ("Prefixes:" of the Main
 * trie: a counter, not a 100k-line dump), every ~10 ms. Times are therefore ±10 ms.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseIp } from '../../../src/lib/ip.js';
import { Lab } from '../../helpers/lab.js';
import { startBird } from './bird.js';
import { startGobgp } from './gobgp.js';
import { ipv4Prefixes, mrtTableDump } from './mrt.js';
import { linkNamespaces } from './topology.js';

export interface IngestResult {
  prefixes: number;
  /** `gobgp mrt inject global` of the file, until GoBGP holds every prefix */
  injectMs: number;
  /** BIRD's protocol Established → all prefixes in master4 */
  establishedToTableMs: number;
  /** BIRD's protocol Established → all prefixes in the kernel's main table */
  establishedToKernelMs: number;
  /** CPU (user + system) BIRD and gobgpd used from Established to the end: who the bottleneck is */
  birdCpuMs: number;
  gobgpdCpuMs: number;
}

/** A process's user + system CPU time so far (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The number of prefixes in the main FIB trie of the namespace `pid` lives in. */
function kernelPrefixes(pid: number): number {
  const text = readFileSync(`/proc/${pid}/net/fib_triestat`, 'utf8');
  const main = text.slice(text.indexOf('Main:'));
  const match = /Prefixes:\s*(\d+)/.exec(main);
  if (!match) throw new Error(`no "Prefixes:" in the Main section of /proc/${pid}/net/fib_triestat`);
  return Number(match[1]);
}

export async function measureIngest(count: number, lab = new Lab('bgpingest')): Promise<IngestResult> {
  const birdNs = lab.netns('bird');
  const gobgpNs = lab.netns('gobgp');
  const daemons: { stop(): Promise<void> }[] = [];
  try {
    linkNamespaces({ netns: birdNs, addresses: ['198.18.0.1/24'] }, { netns: gobgpNs, addresses: ['198.18.0.2/24'] });
    const dir = lab.tempDir('ingest');
    const mrtFile = join(dir, 'routes.mrt');
    writeFileSync(mrtFile, mrtTableDump(ipv4Prefixes(count), { nextHop: parseIp('198.18.0.2'), asPath: [64513] }, { routerId: 0xc6120002, address: parseIp('198.18.0.2'), asn: 64513 }));

    const gobgp = await startGobgp(gobgpNs, { routerId: '198.18.0.2', asn: 64513, peers: [{ address: '198.18.0.1', asn: 64512, passive: true }] }, lab.tempDir('gobgp'));
    daemons.push(gobgp);
    let start = performance.now();
    await gobgp.inject(mrtFile, 'ipv4', count);
    const injectMs = performance.now() - start;

    const bird = await startBird(birdNs, { routerId: '198.18.0.1', asn: 64512, peers: [{ name: 'gobgp', address: '198.18.0.2', asn: 64513 }], kernelExport: true }, lab.tempDir('bird'));
    daemons.push(bird);
    const baseline = kernelPrefixes(bird.pid);
    const deadline = performance.now() + 60_000;
    while (!bird.protocols().some((p) => p.name === 'gobgp' && p.info.startsWith('Established'))) {
      if (performance.now() > deadline) throw new Error(`no session:\n${bird.logTail()}`);
      await sleep(5);
    }
    start = performance.now();
    const birdCpu = cpuMs(bird.pid);
    const gobgpdCpu = cpuMs(gobgp.pid);
    let tableMs: number | undefined;
    let kernelMs: number | undefined;
    while (tableMs === undefined || kernelMs === undefined) {
      if (performance.now() > deadline) throw new Error(`timed out: BIRD has ${bird.protocolRoutes('gobgp').imported}, the kernel ${kernelPrefixes(bird.pid) - baseline} of ${count}`);
      if (tableMs === undefined && bird.protocolRoutes('gobgp').imported >= count) tableMs = performance.now() - start;
      if (kernelMs === undefined && kernelPrefixes(bird.pid) - baseline >= count) kernelMs = performance.now() - start;
      await sleep(10);
    }
    return { prefixes: count, injectMs, establishedToTableMs: tableMs, establishedToKernelMs: kernelMs, birdCpuMs: cpuMs(bird.pid) - birdCpu, gobgpdCpuMs: cpuMs(gobgp.pid) - gobgpdCpu };
  } finally {
    for (const daemon of daemons.reverse()) await daemon.stop();
    lab.cleanup();
  }
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 100_000);
  const runs = Number(process.argv[3] ?? 3);
  for (let run = 1; run <= runs; run++) {
    const result = await measureIngest(count);
    console.log(
      `run ${run}: ${result.prefixes} IPv4 prefixes GoBGP → BIRD: inject ${result.injectMs.toFixed(0)} ms; ` +
        `Established → BIRD table ${result.establishedToTableMs.toFixed(0)} ms, → kernel ${result.establishedToKernelMs.toFixed(0)} ms ` +
        `(cpu: bird ${result.birdCpuMs} ms, gobgpd ${result.gobgpdCpuMs} ms)`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
