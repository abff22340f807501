/**
 * The nftables mode's RuleSink: a TableBook per family; every sync is one netlink batch
 * covering both families' tables (all or nothing).
 *
 * A full sync (the first one, after a failure, or when asked) starts the books from the
 * chain and set names the kernel lists — names only, never rules — so it rewrites what it
 * owns and deletes what is stale in the same transaction, without a moment of no rules.
 * Should the kernel refuse that (a set whose definition changed between versions), the
 * table is deleted and built again, still in one transaction.
 */
import type { IpFamily } from '../../lib/ip.js';
import type { Contribution, Plan } from '../../lib/nftables/book.js';
import { TableBook } from '../../lib/nftables/book.js';
import type { Transaction } from '../../lib/nftables/ir.js';
import { transactionText } from '../../lib/nftables/text.js';
import type { ProxyConfig } from '../config.js';
import { chooseEndpoints, servicePortKey } from '../model.js';
import type { RuleSink, ServiceEntry, SyncReport } from '../sink.js';
import { NFT_TABLE, nftFamily, servicePortContribution, staticContribution } from './rules.js';

/** What the sink needs of nf_tables (lib/nftables/nftables.ts; a fake in unit tests). */
export interface NftablesApi {
  apply(transactions: readonly Transaction[]): void;
  listChains(family: 'ip' | 'ip6', table: string): string[];
  listSets(family: 'ip' | 'ip6', table: string): string[];
}

const STATIC_OWNER = '';

export function serviceContribution(family: IpFamily, entry: ServiceEntry, config: ProxyConfig): Contribution {
  const sets = [];
  const chains = [];
  const elements = [];
  for (const port of entry.ports) {
    const part = servicePortContribution(family, port, chooseEndpoints(port, entry.endpoints.get(servicePortKey(port)) ?? [], family), config);
    sets.push(...(part.sets ?? []));
    chains.push(...(part.chains ?? []));
    elements.push(...(part.elements ?? []));
  }
  return { sets, chains, elements };
}

export class NftablesSink implements RuleSink {
  readonly mode = 'nftables';
  private readonly books = new Map<IpFamily, TableBook>();
  private needFull = true;

  constructor(
    private readonly config: ProxyConfig,
    private readonly nft: NftablesApi,
  ) {
    for (const family of config.families) this.books.set(family, new TableBook(nftFamily(family), NFT_TABLE));
  }

  private changesFor(family: IpFamily, services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): Map<string, Contribution | undefined> {
    const changes = new Map<string, Contribution | undefined>();
    if (changed === 'all') {
      changes.set(STATIC_OWNER, staticContribution(family, this.config));
      for (const [key, entry] of services) changes.set(key, serviceContribution(family, entry, this.config));
      return changes;
    }
    for (const key of changed) {
      const entry = services.get(key);
      changes.set(key, entry ? serviceContribution(family, entry, this.config) : undefined);
    }
    return changes;
  }

  sync(services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): SyncReport {
    const full = this.needFull || changed === 'all';
    this.needFull = true; // until this sync has succeeded
    const plans: Plan[] = [];
    const changes = new Map<IpFamily, Map<string, Contribution | undefined>>();
    for (const [family, book] of this.books) {
      if (full) book.reset({ chains: this.nft.listChains(book.family, NFT_TABLE), sets: this.nft.listSets(book.family, NFT_TABLE) });
      const familyChanges = this.changesFor(family, services, full ? 'all' : changed);
      changes.set(family, familyChanges);
      plans.push(book.plan(familyChanges, full));
    }
    try {
      this.nft.apply(plans.map((plan) => plan.transaction));
    } catch (err) {
      if (!full) throw err;
      plans.length = 0;
      const rebuild: Transaction[] = [];
      for (const [family, book] of this.books) {
        book.reset();
        const plan = book.plan(changes.get(family) ?? new Map(), true);
        plans.push(plan);
        rebuild.push({ ...plan.transaction, operations: [{ op: 'add-table' }, { op: 'delete-table' }, ...plan.transaction.operations] });
      }
      this.nft.apply(rebuild);
    }
    for (const plan of plans) plan.commit();
    this.needFull = false;
    return this.report(full, plans);
  }

  private report(full: boolean, plans: readonly Plan[]): SyncReport {
    const rules = new Map<string, number>();
    let elements = 0;
    for (const book of this.books.values()) {
      const size = book.size;
      rules.set(`${book.family} ${NFT_TABLE}`, size.rules);
      elements += size.elements;
    }
    return {
      full,
      chainsWritten: plans.reduce((n, p) => n + p.stats.chainsWritten, 0),
      chainsDeleted: plans.reduce((n, p) => n + p.stats.chainsDeleted, 0),
      rules,
      elements,
    };
  }

  render(services: ReadonlyMap<string, ServiceEntry>): string {
    return this.config.families
      .map((family) => {
        const book = new TableBook(nftFamily(family), NFT_TABLE);
        return transactionText(book.plan(this.changesFor(family, services, 'all'), true).transaction);
      })
      .join('');
  }

  cleanup(): void {
    const transactions: Transaction[] = [];
    for (const book of this.books.values()) {
      transactions.push({ family: book.family, table: NFT_TABLE, operations: [{ op: 'add-table' }, { op: 'delete-table' }] });
      book.reset();
    }
    this.nft.apply(transactions);
    this.needFull = true;
  }
}
