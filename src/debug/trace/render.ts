/** Text rendering of a trace: one line per hop, the deciding entry, and the verdict last. */
import type { TraceResult } from './packet.js';

export function renderTrace(title: string, result: TraceResult): string {
  const width = Math.max(4, ...result.hops.map((h) => h.node.length));
  const stepWidth = Math.max(4, ...result.hops.map((h) => h.step.length));
  const lines = [title];
  result.hops.forEach((hop, i) => {
    const mark = hop.verdict === 'drop' ? '✗' : '·';
    lines.push(`${String(i + 1).padStart(3)} ${mark} ${hop.node.padEnd(width)}  ${hop.step.padEnd(stepWidth)}  ${hop.detail}`);
  });
  const last = result.hops.at(-1);
  lines.push(result.arrived ? `ARRIVED (${result.final.src} → ${result.final.dst}${result.final.dport !== undefined ? `:${result.final.dport}` : ''})` : `DROPPED at hop ${result.hops.length} on ${last?.node ?? '?'}: ${last?.reason ?? 'unknown'}`);
  return lines.join('\n') + '\n';
}
