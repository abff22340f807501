/** JSON helpers the benchmarks share: tolerant parsing of tool output. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The one line a benchmark prints for machines: `BENCH_JSON {"bench":...}`. The fixed tag
 * lets a collector grep it out of the human-readable tables around it.
 */
export function benchJsonLine(bench: string, results: unknown): string {
  return `BENCH_JSON ${JSON.stringify({ bench, node: process.version, at: new Date().toISOString(), results })}`;
}
