/**
 * iptables through iptables-save/iptables-restore: one process per batch of changes instead
 * of one per rule, and atomic per table. `-w` waits for the xtables lock other agents hold.
 */
import { run } from './exec.js';
import type { IpFamily } from './ip.js';

function tool(family: IpFamily, verb: 'save' | 'restore'): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}-${verb}`;
}

/** The rules of one table as iptables-save prints them (`-A CHAIN ...` lines). */
export function saveTable(family: IpFamily, table: string, netns?: string): string {
  return run(tool(family, 'save'), ['-t', table], netns ? { netns } : {});
}

/** Applies a restore script without flushing the rest of the table. */
export function restoreNoFlush(family: IpFamily, script: string, netns?: string): void {
  run(tool(family, 'restore'), ['--noflush', '-w', '5'], netns ? { input: script, netns } : { input: script });
}

/** Names of the chains a saved table declares (`:NAME POLICY [..]` lines). */
export function chainsOf(saved: string): Set<string> {
  const chains = new Set<string>();
  for (const line of saved.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] ?? '');
  }
  return chains;
}
