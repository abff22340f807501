/**
 * iptables through iptables-restore (one process per batch of changes instead of one per
 * rule, atomic per table) and `iptables -S` of single chains. `-w` waits for the xtables lock other agents hold.
 */
import { CommandError, run } from './exec.js';
import type { IpFamily } from './ip.js';

function tool(family: IpFamily, verb: 'save' | 'restore' | ''): string {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  return verb ? `${base}-${verb}` : base;
}

const inNetns = (netns: string | undefined): { netns?: string } => (netns ? { netns } : {});

/**
 * A restore may take minutes: iptables-nft 1.8.9 spends time quadratic in the chains one
 * --noflush transaction touches (~1 min for a 10k-Service full sync). Killing it midway
 * would only make the next attempt start over, so it gets a generous timeout.
 */
const RESTORE_TIMEOUT_MS = 30 * 60_000;

/** Applies a restore script without flushing the rest of the table. */
export function restoreNoFlush(family: IpFamily, script: string, netns?: string): void {
  run(tool(family, 'restore'), ['--noflush', '-w', '5'], { input: script, timeoutMs: RESTORE_TIMEOUT_MS, ...(netns ? { netns } : {}) });
}

/**
 * The rules of one table as iptables-save prints them. Costly on a big table (seconds for a
 * 10k-Service nat table): only for what cannot be read chain by chain.
 */
export function saveTable(family: IpFamily, table: string, netns?: string): string {
  return run(tool(family, 'save'), ['-t', table], inNetns(netns));
}

/** Names of the chains a saved table declares (`:NAME POLICY [..]` lines). */
export function chainsOf(saved: string): Set<string> {
  const chains = new Set<string>();
  for (const line of saved.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] ?? '');
  }
  return chains;
}

/** Which kernel interface the system's `iptables` drives: nf_tables or the legacy xtables. */
export function iptablesBackend(family: IpFamily, netns?: string): 'nft' | 'legacy' {
  return /nf_tables/.test(run(tool(family, ''), ['--version'], inNetns(netns))) ? 'nft' : 'legacy';
}

/**
 * Splits a rule as iptables-save prints it into argv, honouring double quotes
 * (`-m comment --comment "ns/svc:port cluster IP"`).
 */
export function ruleArgs(rule: string): string[] {
  const args: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const match of rule.matchAll(pattern)) args.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? ''));
  return args;
}

/** True when `chain` of `table` holds the rule (`iptables -C`). */
export function hasRule(family: IpFamily, table: string, chain: string, rule: string, netns?: string): boolean {
  try {
    run(tool(family, ''), ['-w', '5', '-t', table, '-C', chain, ...ruleArgs(rule)], inNetns(netns));
    return true;
  } catch (err) {
    // iptables -C exits 1 for "no such rule" (and "no such chain"); anything else is real.
    if (err instanceof CommandError && err.exitCode === 1) return false;
    throw err;
  }
}

/**
 * One chain's rules as `iptables -S` prints them; undefined when the chain does not exist.
 * Read a chain, never the table: `iptables-save` of a nat table holding a 10k-Service
 * proxy's rules takes seconds, `-S POSTROUTING` milliseconds.
 */
export function chainRules(family: IpFamily, table: string, chain: string, netns?: string): string[] | undefined {
  try {
    return run(tool(family, ''), ['-w', '5', '-t', table, '-S', chain], inNetns(netns)).split('\n').filter((line) => line.startsWith('-A '));
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === 1) return undefined;
    throw err;
  }
}

/** One chain's rules as `iptables -S` prints them; empty when the chain does not exist. */
export function listRules(family: IpFamily, table: string, chain: string, netns?: string): string[] {
  return chainRules(family, table, chain, netns) ?? [];
}

/** The `-j` targets of `-A` rules. */
export function jumpTargetsOf(rules: readonly string[]): string[] {
  return rules.map((rule) => / -[jg] (\S+)/.exec(rule)?.[1]).filter((target): target is string => target !== undefined);
}

/** Deletes the rule from `chain` if it is there. */
export function deleteRuleIfPresent(family: IpFamily, table: string, chain: string, rule: string, netns?: string): void {
  while (hasRule(family, table, chain, rule, netns)) run(tool(family, ''), ['-w', '5', '-t', table, '-D', chain, ...ruleArgs(rule)], inNetns(netns));
}
