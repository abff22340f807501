/**
 * The nftables mode's RuleSink: a TableBook per family; every sync is one netlink batch
 * covering both families' tables (all or nothing).
 *
 * A full sync (the first one, after a failure, or when asked) starts the books from what
 * the kernel holds (chain fingerprints, set definitions and elements, never rule
 * expressions), so a restart over an unchanged table changes nothing, and otherwise
 * rewrites what differs and deletes what is stale in one transaction, without a moment of
 * no rules.
 * Should the kernel refuse that (a set whose definition changed between versions), the
 * table is deleted and built again, still in one transaction.
 */
import { describeError } from '../../lib/errors.js';
import type { IpFamily } from '../../lib/ip.js';
import type { ChainState, Contribution, ObservedTable, Plan, SetElement } from '../../lib/nftables/book.js';
import { observedMemo, TableBook } from '../../lib/nftables/book.js';
import type { SetDef, Transaction } from '../../lib/nftables/ir.js';
import { transactionText } from '../../lib/nftables/text.js';
import type { ProxyConfig } from '../config.js';
import { chooseEndpoints, servicePortKey } from '../model.js';
import type { RuleSink, ServiceEntry, SyncReport } from '../sink.js';
import { type EndpointBlocks, memoBlock, NFT_TABLE, nftFamily, servicePortContribution, staticContribution } from './rules.js';

/** What the sink needs of nf_tables (lib/nftables/nftables.ts; a fake in unit tests). */
export interface NftablesApi {
  apply(transactions: readonly Transaction[]): void;
  observe(family: 'ip' | 'ip6', table: string): ObservedTable;
}

const STATIC_OWNER = '';

/**
 * Blocks of endpoint-map keys, one per chain that picks from a map: stable while the chain
 * exists (a partial sync rewrites only the elements that changed), released when its
 * Service no longer has the chain. A full sync starts from the blocks the kernel's chains
 * say they read (their memo), so a restart keeps every unchanged chain as it is.
 */
export class EndpointBlockAllocator {
  private readonly byChain = new Map<string, number>();
  private readonly chainsOf = new Map<string, Set<string>>();
  /** Released blocks, highest first, so the lowest is taken next. */
  private readonly free: number[] = [];
  private next = 0;

  /** The allocator as one Service sees it; `done()` releases what it stopped using. */
  forService(key: string): { blocks: EndpointBlocks; done: () => void } {
    const used = new Set<string>();
    const blocks = (chain: string): number => {
      used.add(chain);
      let block = this.byChain.get(chain);
      if (block === undefined) {
        block = this.free.pop() ?? this.next++;
        this.byChain.set(chain, block);
      }
      return block;
    };
    const done = (): void => {
      for (const chain of this.chainsOf.get(key) ?? []) if (!used.has(chain)) this.release(chain);
      if (used.size) this.chainsOf.set(key, used);
      else this.chainsOf.delete(key);
    };
    return { blocks, done };
  }

  /**
   * Forgets every Service and starts from `held` (chain → block, as the kernel holds them);
   * a block two chains claim goes to the first. Call `releaseUnclaimed` once every Service
   * has been seen again.
   */
  adopt(held: ReadonlyMap<string, number>): void {
    this.byChain.clear();
    this.chainsOf.clear();
    this.free.length = 0;
    const taken = new Set<number>();
    for (const [chain, block] of held) {
      if (taken.has(block)) continue;
      taken.add(block);
      this.byChain.set(chain, block);
    }
    this.next = taken.size ? Math.max(...taken) + 1 : 0;
    for (let block = this.next - 1; block >= 0; block--) if (!taken.has(block)) this.free.push(block);
  }

  /** Releases the adopted blocks of chains no Service has claimed since `adopt`. */
  releaseUnclaimed(): void {
    const claimed = new Set<string>();
    for (const chains of this.chainsOf.values()) for (const chain of chains) claimed.add(chain);
    for (const chain of [...this.byChain.keys()]) if (!claimed.has(chain)) this.release(chain);
  }

  private release(chain: string): void {
    const block = this.byChain.get(chain);
    if (block === undefined) return;
    this.byChain.delete(chain);
    const at = this.free.findIndex((b) => b < block);
    this.free.splice(at < 0 ? this.free.length : at, 0, block);
  }
}

/** chain → block for the kernel's chains whose memo names an endpoint block. */
function heldBlocks(observed: ObservedTable): Map<string, number> {
  const held = new Map<string, number>();
  for (const [name, chain] of observed.content?.chains ?? []) {
    const block = memoBlock(observedMemo(chain));
    if (block !== undefined) held.set(name, block);
  }
  return held;
}

export function serviceContribution(family: IpFamily, entry: ServiceEntry, config: ProxyConfig, blocks: EndpointBlocks): Contribution {
  const sets: SetDef[] = [];
  const chains: ChainState[] = [];
  const elements: SetElement[] = [];
  for (const port of entry.ports) {
    const part = servicePortContribution(family, port, chooseEndpoints(port, entry.endpoints.get(servicePortKey(port)) ?? [], family), config, blocks);
    sets.push(...(part.sets ?? []));
    chains.push(...(part.chains ?? []));
    elements.push(...(part.elements ?? []));
  }
  return { sets, chains, elements };
}

export class NftablesSink implements RuleSink {
  readonly mode = 'nftables';
  private readonly books = new Map<IpFamily, TableBook>();
  private readonly blocks = new Map<IpFamily, EndpointBlockAllocator>();
  private needFull = true;

  constructor(
    private readonly config: ProxyConfig,
    private readonly nft: NftablesApi,
  ) {
    for (const family of config.families) this.books.set(family, new TableBook(nftFamily(family), NFT_TABLE));
  }

  private changesFor(
    family: IpFamily,
    services: ReadonlyMap<string, ServiceEntry>,
    changed: ReadonlySet<string> | 'all',
    allocator: EndpointBlockAllocator,
    held: ReadonlyMap<string, number> = new Map(),
  ): Map<string, Contribution | undefined> {
    const changes = new Map<string, Contribution | undefined>();
    const contribute = (key: string, entry: ServiceEntry | undefined): void => {
      const { blocks, done } = allocator.forService(key);
      changes.set(key, entry ? serviceContribution(family, entry, this.config, blocks) : undefined);
      done();
    };
    if (changed === 'all') {
      allocator.adopt(held);
      changes.set(STATIC_OWNER, staticContribution(family, this.config));
      for (const [key, entry] of services) contribute(key, entry);
      allocator.releaseUnclaimed();
      return changes;
    }
    for (const key of changed) contribute(key, services.get(key));
    return changes;
  }

  sync(services: ReadonlyMap<string, ServiceEntry>, changed: ReadonlySet<string> | 'all'): SyncReport {
    const full = this.needFull || changed === 'all';
    this.needFull = true; // until this sync has succeeded
    const plans: Plan[] = [];
    const changes = new Map<IpFamily, Map<string, Contribution | undefined>>();
    for (const [family, book] of this.books) {
      const observed = full ? this.nft.observe(book.family, NFT_TABLE) : undefined;
      if (observed) book.reset(observed);
      const familyChanges = this.changesFor(family, services, full ? 'all' : changed, this.allocatorOf(family), observed && heldBlocks(observed));
      changes.set(family, familyChanges);
      plans.push(book.plan(familyChanges, full));
    }
    let rebuilt: string | undefined;
    try {
      this.nft.apply(plans.map((plan) => plan.transaction));
    } catch (err) {
      if (!full) throw err;
      rebuilt = describeError(err);
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
    return { ...this.report(full, plans), ...(rebuilt !== undefined ? { rebuilt } : {}) };
  }

  private allocatorOf(family: IpFamily): EndpointBlockAllocator {
    let allocator = this.blocks.get(family);
    if (!allocator) this.blocks.set(family, (allocator = new EndpointBlockAllocator()));
    return allocator;
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
        return transactionText(book.plan(this.changesFor(family, services, 'all', new EndpointBlockAllocator()), true).transaction);
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
