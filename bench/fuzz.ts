/**
 * Fuzz driver: seeded mutations through one target (test/fuzz/targets/): BGP messages through
 * the codec and the FSM, CNI configs and environments through the plugins, apiserver request
 * bodies and query strings. Prints how often each reaction happened (a change that stops
 * inputs reaching a decoder shows up as a shifted table), writes every crash to
 * `<out>/<target>-<seed>-<index>.json` in the fixture format of test/fixtures/fuzz/, and ends
 * with `N inputs, C crashes`; exits 1 when C > 0.
 *
 *   node build/bench/fuzz.js --target bgp|cni|apiserver [--count N] [--seed S] [--out DIR]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { apiserverTarget } from '../test/fuzz/targets/apiserver.js';
import { bgpTarget } from '../test/fuzz/targets/bgp.js';
import { cniTarget } from '../test/fuzz/targets/cni.js';
import { type FuzzTarget, runTarget } from '../test/fuzz/target.js';
import { BenchError, checkpoint, runBench } from './lib/run.js';

const TARGETS: Readonly<Record<string, FuzzTarget>> = { bgp: bgpTarget, cni: cniTarget, apiserver: apiserverTarget };
const DEFAULT_COUNT: Readonly<Record<string, number>> = { bgp: 100_000, cni: 20_000, apiserver: 5_000 };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { target: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string', default: '24301' }, out: { type: 'string', default: 'fuzz-crashes' } },
  });
  const target = TARGETS[values.target ?? ''];
  if (!target) throw new BenchError(`--target: "${values.target ?? ''}" is not one of ${Object.keys(TARGETS).join(', ')}`);
  const count = values.count === undefined ? (DEFAULT_COUNT[target.name] ?? 1000) : Number(values.count);
  const seed = Number(values.seed);
  if (!Number.isInteger(count) || count <= 0) throw new BenchError(`--count: "${values.count}" is not a positive integer`);
  if (!Number.isInteger(seed)) throw new BenchError(`--seed: "${values.seed}" is not an integer`);

  const started = performance.now();
  const report = await runTarget(target, seed, count, async (done, crashes) => {
    if (done % 500 === 0 || done === count) {
      process.stderr.write(`\r${done} inputs, ${crashes} crashes`);
      await checkpoint();
    }
  });
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write('\n');

  const rows = [...report.outcomes].sort((a, b) => b[1] - a[1]);
  const width = Math.max(0, ...rows.map(([name]) => name.length));
  console.log(`target ${target.name}, seed ${seed}: ${count} inputs in ${seconds.toFixed(1)} s (${Math.round(count / seconds)}/s)`);
  for (const [name, n] of rows) console.log(`  ${name.padEnd(width)}  ${String(n).padStart(8)}  ${((100 * n) / count).toFixed(2).padStart(6)}%`);
  if (report.crashes.length > 0) {
    mkdirSync(values.out, { recursive: true });
    for (const crash of report.crashes) {
      const file = join(values.out, `${target.name}-${seed}-${crash.index}.json`);
      writeFileSync(file, `${JSON.stringify({ note: '', found: crash.reason, target: target.name, seed, index: crash.index, input: crash.input }, null, 2)}\n`);
      console.log(`crash ${crash.index}: ${crash.reason.split('\n')[0]}\n  written to ${file}`);
    }
    process.exitCode = 1;
  }
  console.log(`${count} inputs, ${report.crashes.length} crashes`);
}

runBench(main);
