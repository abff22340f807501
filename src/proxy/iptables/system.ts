/** The IptablesApi of a real namespace: the system's iptables/ip6tables commands. */
import type { IpFamily } from '../../lib/ip.js';
import { chainsOf, deleteRuleIfPresent, iptablesBackend, jumpTargetsOf, listRules, restoreNoFlush, saveTable } from '../../lib/iptables.js';
import type { Nftables } from '../../lib/nftables/nftables.js';
import type { IptablesApi } from './sink.js';

export class SystemIptables implements IptablesApi {
  private readonly backends = new Map<IpFamily, 'nft' | 'legacy'>();

  /** `nft` lists iptables-nft's chains quickly (see sink.ts); `netns` runs the commands there. */
  constructor(
    private readonly nft: Nftables,
    private readonly netns?: string,
  ) {}

  private backend(family: IpFamily): 'nft' | 'legacy' {
    let backend = this.backends.get(family);
    if (!backend) this.backends.set(family, (backend = iptablesBackend(family, this.netns)));
    return backend;
  }

  restore(family: IpFamily, script: string): void {
    restoreNoFlush(family, script, this.netns);
  }

  listChains(family: IpFamily, table: string): string[] {
    if (this.backend(family) === 'nft') return this.nft.listChains(family === 4 ? 'ip' : 'ip6', table);
    return [...chainsOf(saveTable(family, table, this.netns))];
  }

  jumpTargets(family: IpFamily, table: string, chain: string): string[] {
    if (this.backend(family) === 'nft') return this.nft.listJumpTargets(family === 4 ? 'ip' : 'ip6', table, chain);
    return jumpTargetsOf(listRules(family, table, chain, this.netns));
  }

  deleteRule(family: IpFamily, table: string, chain: string, rule: string): void {
    deleteRuleIfPresent(family, table, chain, rule, this.netns);
  }
}
