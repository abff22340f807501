/** JSON helpers the benchmarks share: tolerant parsing of tool output. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
