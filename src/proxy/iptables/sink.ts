/**
 * The iptables mode's RuleSink: an IptablesBook per family, one `iptables-restore
 * --noflush` per family and sync (both tables in it), and the jumps from the built-in
 * chains ensured (`-C`, else `-I … 1`) on full syncs, as kube-proxy does — the built-in
 * chains belong to everyone, so we never rewrite them.
 *
 * Full syncs start from the KUBE-* chain names the kernel holds. They are read through
 * nf_tables netlink when iptables is iptables-nft (its chains are nf_tables chains in
 * tables `ip nat`/`ip filter`), because `iptables-save` of a 10k-Service nat table takes
 * seconds; from `iptables-save` otherwise.
 */
import type { IpFamily } from '../../lib/ip.js';
import type { IptablesContribution, IptablesLine, IptablesPlan } from '../../lib/iptables-book.js';
import { IptablesBook } from '../../lib/iptables-book.js';
import type { ProxyConfig } from '../config.js';
import { chooseEndpoints, servicePortKey } from '../model.js';
import type { RuleSink, ServiceEntry, SyncReport } from '../sink.js';
import { builtinJumps, servicePortContribution, sharedChains, staticContribution } from './rules.js';

export const OWNED_CHAIN_PREFIX = 'KUBE-';
export const TABLES = ['nat', 'filter'] as const;

/** What the sink needs of iptables (lib/iptables.ts; a fake in unit tests). */
export interface IptablesApi {
  restore(family: IpFamily, script: string): void;
  /** Chain names of a table (built-in ones included). */
  listChains(family: IpFamily, table: string): string[];
  /** The chains `chain` of `table` jumps to (to tell whether our jumps into it exist). */
  jumpTargets(family: IpFamily, table: string, chain: string): string[];
  deleteRule(family: IpFamily, table: string, chain: string, rule: string): void;
}

const STATIC_OWNER = '';

export function serviceContribution(family: IpFamily, entry: ServiceEntry, config: ProxyConfig): IptablesContribution {
  const chains = [];
  const lines = [];
  for (const port of entry.ports) {
    const part = servicePortContribution(family, port, chooseEndpoints(port, entry.endpoints.get(servicePortKey(port)) ?? [], family), config);
    chains.push(...(part.chains ?? []));
    lines.push(...(part.lines ?? []));
  }
  return { chains, lines };
}

export class IptablesSink implements RuleSink {
  readonly mode = 'iptables';
  private readonly books = new Map<IpFamily, IptablesBook>();
  private needFull = true;

  constructor(
    private readonly config: ProxyConfig,
    private readonly iptables: IptablesApi,
  ) {
    for (const family of config.families) this.books.set(family, new IptablesBook(sharedChains(family)));
  }

  private changesFor(family: IpFamily, services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): Map<string, IptablesContribution | undefined> {
    const changes = new Map<string, IptablesContribution | undefined>();
    if (changed === 'all') {
      changes.set(STATIC_OWNER, staticContribution(this.config));
      for (const [key, entry] of services) changes.set(key, serviceContribution(family, entry, this.config));
      return changes;
    }
    for (const key of changed) {
      const entry = services.get(key);
      changes.set(key, entry ? serviceContribution(family, entry, this.config) : undefined);
    }
    return changes;
  }

  /**
   * The jumps from built-in chains not there yet (as kube-proxy's EnsureRule: a jump to our
   * chain from that built-in chain counts as present). They go into the same restore.
   */
  private missingJumps(family: IpFamily): IptablesLine[] {
    const present = new Map<string, Set<string>>();
    const missing: IptablesLine[] = [];
    for (const [table, chain, rule] of builtinJumps()) {
      const key = `${table} ${chain}`;
      let targets = present.get(key);
      if (!targets) present.set(key, (targets = new Set(this.iptables.jumpTargets(family, table, chain))));
      const target = /-j (\S+)$/.exec(rule)?.[1] ?? '';
      if (!targets.has(target)) missing.push({ table, chain, rule });
    }
    return missing;
  }

  private ownedChains(family: IpFamily): { table: string; name: string }[] {
    return TABLES.flatMap((table) => this.iptables.listChains(family, table).filter((name) => name.startsWith(OWNED_CHAIN_PREFIX)).map((name) => ({ table, name })));
  }

  sync(services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): SyncReport {
    const full = this.needFull || changed === 'all';
    this.needFull = true; // until this sync has succeeded
    const plans: IptablesPlan[] = [];
    for (const [family, book] of this.books) {
      if (full) book.reset(this.ownedChains(family));
      const plan = book.plan(this.changesFor(family, services, full ? 'all' : changed), full, full ? this.missingJumps(family) : []);
      if (plan.script) this.iptables.restore(family, plan.script);
      plan.commit();
      plans.push(plan);
    }
    this.needFull = false;
    const rules = new Map<string, number>();
    for (const [family, book] of this.books) {
      for (const [table, count] of book.ruleCount) rules.set(`${family === 4 ? 'ip' : 'ip6'} ${table}`, count);
    }
    return {
      full,
      chainsWritten: plans.reduce((n, p) => n + p.chainsWritten, 0),
      chainsDeleted: plans.reduce((n, p) => n + p.chainsDeleted, 0),
      rules,
      elements: 0,
    };
  }

  render(services: ReadonlyMap<string, ServiceEntry>): string {
    return this.config.families
      .map((family) => {
        const jumps = builtinJumps().map(([table, chain, rule]) => ({ table, chain, rule }));
        const plan = new IptablesBook(sharedChains(family)).plan(this.changesFor(family, services, 'all'), true, jumps);
        return `# ${family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush\n${plan.script}`;
      })
      .join('');
  }

  cleanup(): void {
    for (const family of this.config.families) {
      for (const [table, chain, rule] of builtinJumps()) this.iptables.deleteRule(family, table, chain, rule);
      const owned = this.ownedChains(family);
      const script = TABLES.map((table) => {
        const names = owned.filter((c) => c.table === table).map((c) => c.name);
        return names.length ? [`*${table}`, ...names.map((n) => `:${n} - [0:0]`), ...names.map((n) => `-X ${n}`), 'COMMIT'].join('\n') : '';
      })
        .filter(Boolean)
        .join('\n');
      if (script) this.iptables.restore(family, `${script}\n`);
      this.books.get(family)?.reset();
    }
    this.needFull = true;
  }
}
