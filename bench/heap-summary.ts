/**
 * What holds a V8 heap: sums the self size and count of a `.heapsnapshot`'s objects by kind
 * and constructor name, biggest first. For the memory side of bench/bgp (`--heap-snapshot`).
 *
 *   node build/bench/heap-summary.js FILE [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Row {
  name: string;
  count: number;
  bytes: number;
}

function summarize(heap: Snapshot): { rows: Row[]; total: number; objects: number } {
  const fields = heap.snapshot.meta.node_fields;
  const stride = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const typeNames = heap.snapshot.meta.node_types[0];
  const byName = new Map<string, Row>();
  let total = 0;
  for (let i = 0; i < heap.nodes.length; i += stride) {
    const type = typeNames[heap.nodes[i + typeAt] ?? 0] ?? '?';
    const bytes = heap.nodes[i + sizeAt] ?? 0;
    // Strings and numbers are grouped by kind; their "names" are their values.
    const named = type === 'object' || type === 'closure' || type === 'array' || type === 'hidden' || type === 'native';
    const name = named ? `${type} ${heap.strings[heap.nodes[i + nameAt] ?? 0] ?? '?'}` : type;
    let row = byName.get(name);
    if (row === undefined) byName.set(name, (row = { name, count: 0, bytes: 0 }));
    row.count++;
    row.bytes += bytes;
    total += bytes;
  }
  return { rows: [...byName.values()].sort((a, b) => b.bytes - a.bytes), total, objects: heap.nodes.length / stride };
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: heap-summary FILE [--top N]');
  const { rows, total, objects } = summarize(JSON.parse(readFileSync(file, 'utf8')) as Snapshot);
  const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
  process.stdout.write(`${objects} objects, ${mib(total)} MiB of self size\n`);
  for (const row of rows.slice(0, Number(values.top))) {
    process.stdout.write(`${mib(row.bytes).padStart(8)} MiB ${String(row.count).padStart(9)}  ${(row.bytes / row.count).toFixed(0).padStart(6)} B each  ${row.name}\n`);
  }
}

main();
