/**
 * One netfilter hook of one node: nft base chains and iptables built-in chains of that hook
 * run in priority order (iptables' tables sit at their fixed priorities: raw -300, mangle
 * -150, nat -100 (dstnat) / 100 (srcnat), filter 0), the way the kernel interleaves them.
 * When the host's iptables is iptables-nft, its tables also appear in the nft ruleset as
 * `ip filter`/`ip nat`; those are read from iptables-save instead (its rules are xt
 * expressions in nft's JSON), so each rule is evaluated once.
 */
import type { NetState } from '../netstate.js';
import { IptablesRules } from './ipt-eval.js';
import { type Hook, type HookContext, type NetfilterOutcome, NftRules } from './nft-eval.js';
import type { Packet } from './packet.js';

const IPT_CHAINS: Record<Hook, { table: string; chain: string; prio: number }[]> = {
  prerouting: [
    { table: 'raw', chain: 'PREROUTING', prio: -300 },
    { table: 'mangle', chain: 'PREROUTING', prio: -150 },
    { table: 'nat', chain: 'PREROUTING', prio: -100 },
  ],
  input: [
    { table: 'mangle', chain: 'INPUT', prio: -150 },
    { table: 'filter', chain: 'INPUT', prio: 0 },
    { table: 'nat', chain: 'INPUT', prio: 100 },
  ],
  forward: [
    { table: 'mangle', chain: 'FORWARD', prio: -150 },
    { table: 'filter', chain: 'FORWARD', prio: 0 },
  ],
  output: [
    { table: 'raw', chain: 'OUTPUT', prio: -300 },
    { table: 'mangle', chain: 'OUTPUT', prio: -150 },
    { table: 'nat', chain: 'OUTPUT', prio: -100 },
    { table: 'filter', chain: 'OUTPUT', prio: 0 },
  ],
  postrouting: [
    { table: 'mangle', chain: 'POSTROUTING', prio: -150 },
    { table: 'nat', chain: 'POSTROUTING', prio: 100 },
  ],
};

export class NodeNetfilter {
  private readonly nft: NftRules | undefined;
  private readonly ipt: IptablesRules | undefined;

  constructor(state: NetState) {
    this.ipt = state.iptables ? new IptablesRules(state.iptables) : undefined;
    this.nft = state.nftables ? new NftRules(state.nftables, { skipXtables: this.ipt !== undefined }) : undefined;
  }

  /** Runs a hook; the packet is changed in place (DNAT at prerouting/output, marks). */
  run(hook: Hook, packet: Packet, context: HookContext): NetfilterOutcome {
    const outcome: NetfilterOutcome = { verdict: 'accept', hits: [], unknown: [] };
    const steps: { prio: number; nat: boolean; run: () => 'accept' | 'drop' | 'reject' }[] = [];
    for (const chain of this.nft?.baseChains(hook) ?? []) {
      steps.push({ prio: chain.prio ?? 0, nat: chain.type === 'nat', run: () => this.nft!.runChain(chain, packet, context, outcome) });
    }
    for (const { table, chain, prio } of IPT_CHAINS[hook]) {
      if (this.ipt?.has(table)) steps.push({ prio, nat: table === 'nat', run: () => this.ipt!.runChain(table, chain, packet, context, outcome) });
    }
    steps.sort((a, b) => a.prio - b.prio);
    for (const step of steps) {
      // Once a NAT chain of this hook has bound the connection, the kernel skips the others.
      if (step.nat && (outcome.dnat !== undefined || outcome.masquerade !== undefined)) continue;
      const verdict = step.run();
      if (verdict !== 'accept') {
        outcome.verdict = verdict;
        return outcome;
      }
    }
    return outcome;
  }
}
