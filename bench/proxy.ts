/**
 * Service proxy benchmark: both modes at 1k, 5k, 10k and 20k Services × 2 endpoints, and
 * 10k × 10. Each cell (bench/lib/proxy-worker.ts) runs in a fresh node namespace and
 * measures, against references taken in the same run:
 *   - full sync into an empty kernel vs the raw tool loading the same rules as text into a
 *     fresh namespace (`nft -f`; `iptables-restore --noflush`, and for context the flushing
 *     restore that replaces a whole namespace's tables)
 *   - one Service added, one endpoint changed, one Service removed (partial syncs), and the
 *     raw tool applying the same one-Service addition
 *   - a restart: a fresh proxy's first full sync over the unchanged kernel state, vs the full
 *     sync into an empty kernel (and how many chains it wrote: nftables reconciles, 0)
 *   - rules and elements held, proxy RSS
 *   - first-packet TCP connect latency from a pod to a Service vs the same connect to the
 *     endpoint pod before any rule exists ("no rules") and, interleaved with the Service
 *     connects, directly to the pod with the rules loaded ("direct")
 * and checks the issue's targets (nftables: full ≤ 1 s at 10k, 20k ≤ 2.2× 10k, one change
 * ≤ 20 ms at 10k, connect at 10k ≤ 1.1× 1k and ≤ no-rules + 10 µs; iptables: full ≤ 1.5× the
 * raw restore, one change ≤ 100 ms at 10k).
 *
 *   node build/bench/proxy.js [--scales 1000x2,5000x2,10000x2,20000x2,10000x10] [--modes nftables,iptables]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createNetns, deleteNetns, deleteNetnsWithPrefix } from '../src/lib/netns.js';
import type { ProxyCell } from './lib/proxy-worker.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

const WORKER = fileURLToPath(new URL('./lib/proxy-worker.js', import.meta.url));
const DEFAULT_SCALES = '1000x2,5000x2,10000x2,20000x2,10000x10';

function cell(mode: string, services: number, endpoints: number, index: number): ProxyCell {
  const node = `${RUN_PREFIX}proxy${index}`;
  createNetns(node);
  try {
    const result = spawnSync('ip', ['netns', 'exec', node, process.execPath, WORKER, '--mode', mode, '--services', String(services), '--endpoints', String(endpoints), '--node', node, '--prefix', `${node}-`], {
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
      timeout: 3_600_000,
    });
    if (result.status !== 0) throw new BenchError(`${mode} ${services}×${endpoints} failed: ${result.stderr || result.error}`);
    return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as ProxyCell;
  } finally {
    deleteNetnsWithPrefix(`${node}-`);
    deleteNetns(node);
  }
}

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { scales: { type: 'string', default: DEFAULT_SCALES }, modes: { type: 'string', default: 'nftables,iptables' } } });
  const scales = (values.scales ?? DEFAULT_SCALES).split(',').map((s) => {
    const [services, endpoints] = s.split('x').map(Number);
    if (!services || !endpoints) throw new BenchError(`--scales: "${s}" is not SERVICESxENDPOINTS`);
    return { services, endpoints };
  });
  const modes = (values.modes ?? '').split(',');
  const cells: ProxyCell[] = [];
  let index = 0;
  for (const mode of modes) {
    for (const { services, endpoints } of scales) {
      process.stderr.write(`${mode} ${services} Services × ${endpoints} endpoints ...\n`);
      const result = cell(mode, services, endpoints, index++);
      cells.push(result);
      process.stderr.write(`  full ${ms(result.fullSyncMs)} ms (raw ${ms(result.rawFullMs)} ms), one Service ${ms(result.addServiceMs)} ms, connect p50 ${result.connect.p50.toFixed(0)} µs\n`);
      await checkpoint();
    }
  }

  const rows = [['MODE', 'SERVICES', 'FULL ms', 'RAW ms', 'FULL/RAW', 'ADD SVC ms', 'RAW ADD ms', 'EP CHANGE ms', 'DEL SVC ms', 'RESTART ms (chains written)', 'RULES', 'ELEMENTS', 'RSS MiB', 'CONNECT p50/p90 µs', 'DIRECT p50 µs', 'NO RULES p50 µs']];
  for (const c of cells) {
    rows.push([
      c.mode,
      `${c.services}×${c.endpoints}`,
      ms(c.fullSyncMs),
      `${ms(c.rawFullMs)}${c.rawFlushMs !== undefined ? ` (flush ${ms(c.rawFlushMs)})` : ''}`,
      ratio(c.fullSyncMs, c.rawFullMs),
      ms(c.addServiceMs),
      ms(c.rawAddServiceMs),
      ms(c.changeEndpointMs),
      ms(c.removeServiceMs),
      `${ms(c.restartSyncMs)} (${c.restartChainsWritten}), ${ratio(c.restartSyncMs, c.fullSyncMs)} of full`,
      String(c.rules),
      String(c.elements),
      c.rssMiB.toFixed(0),
      `${c.connect.p50.toFixed(0)}/${c.connect.p90.toFixed(0)}`,
      c.connectDirect.p50.toFixed(0),
      c.connectNoRules.p50.toFixed(0),
    ]);
  }
  console.log(table(rows));

  // The targets.
  const find = (mode: string, services: number, endpoints = 2): ProxyCell | undefined => cells.find((c) => c.mode === mode && c.services === services && c.endpoints === endpoints);
  const checks: [string, boolean | undefined, string][] = [];
  const n1k = find('nftables', 1000);
  const n10k = find('nftables', 10000);
  const n20k = find('nftables', 20000);
  if (n10k) {
    checks.push(['nftables full sync at 10k ≤ 1 s', n10k.fullSyncMs <= 1000, `${ms(n10k.fullSyncMs)} ms (nft -f of the same rules: ${ms(n10k.rawFullMs)} ms, ${ratio(n10k.fullSyncMs, n10k.rawFullMs)})`]);
    checks.push(['nftables one Service added at 10k ≤ 20 ms', n10k.addServiceMs <= 20, `${ms(n10k.addServiceMs)} ms (nft -f of the same change: ${ms(n10k.rawAddServiceMs)} ms)`]);
    checks.push(['nftables one endpoint changed at 10k ≤ 20 ms', n10k.changeEndpointMs <= 20, `${ms(n10k.changeEndpointMs)} ms`]);
    checks.push(['nftables restart over an unchanged table at 10k writes no chain', n10k.restartChainsWritten === 0, `${n10k.restartChainsWritten} chains, ${ms(n10k.restartSyncMs)} ms (${ratio(n10k.restartSyncMs, n10k.fullSyncMs)} of a full sync into an empty kernel)`]);
    checks.push(['nftables connect at 10k ≤ no-rules + 10 µs', n10k.connect.p50 <= n10k.connectNoRules.p50 + 10, `p50 ${n10k.connect.p50.toFixed(0)} µs vs no rules ${n10k.connectNoRules.p50.toFixed(0)} µs`]);
  }
  if (n10k && n20k) checks.push(['nftables full sync linear: 20k ≤ 2.2× 10k', n20k.fullSyncMs <= 2.2 * n10k.fullSyncMs, `${ratio(n20k.fullSyncMs, n10k.fullSyncMs)}`]);
  if (n10k && n1k) checks.push(['nftables connect at 10k ≤ 1.1× at 1k', n10k.connect.p50 <= 1.1 * n1k.connect.p50, `${n10k.connect.p50.toFixed(0)} vs ${n1k.connect.p50.toFixed(0)} µs (${ratio(n10k.connect.p50, n1k.connect.p50)})`]);
  const i10k = find('iptables', 10000);
  for (const c of cells.filter((x) => x.mode === 'iptables')) {
    checks.push([`iptables full sync ≤ 1.5× raw restore at ${c.services}×${c.endpoints}`, c.fullSyncMs <= 1.5 * c.rawFullMs, `${ratio(c.fullSyncMs, c.rawFullMs)} of iptables-restore --noflush${c.rawFlushMs !== undefined ? `; ${ratio(c.fullSyncMs, c.rawFlushMs)} of a flushing restore` : ''}`]);
  }
  if (i10k) checks.push(['iptables one Service added at 10k ≤ 100 ms', i10k.addServiceMs <= 100, `${ms(i10k.addServiceMs)} ms (growth: ${cells.filter((c) => c.mode === 'iptables' && c.endpoints === 2).map((c) => `${c.services / 1000}k ${ms(c.addServiceMs)}`).join(', ')} ms)`]);
  console.log('\ntargets:');
  for (const [what, ok, detail] of checks) console.log(`  ${ok ? 'met   ' : 'MISSED'} ${what}: ${detail}`);
}

runBench(main);
