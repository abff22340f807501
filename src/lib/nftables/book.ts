/**
 * The record of what one nftables table holds, built from contributions, and the
 * transactions that change it — the `diff` step of a reconciler, computed without reading
 * rules back from the kernel.
 *
 * A contribution is what one owner (a Service, say) puts into the table: chains with their
 * rules, set definitions, elements. Replacing some contributions yields a transaction that
 * touches only what they changed, so a one-Service change costs the same at 10 Services as
 * at 10k. Elements are reference-counted: two owners may contribute the same element (one
 * endpoint behind two Services), and it stays while either wants it.
 *
 * After a restart the book starts from what the kernel lists (`reset(observed)`). Every
 * chain the book writes carries its fingerprint on its first rule (user data nft does not
 * show), so a chain whose fingerprint and rule count match is left as it is; a set whose
 * definition matches keeps its elements, and only the ones that differ are deleted or
 * added. What cannot be matched is rewritten, and what nobody contributes any more is
 * deleted — all in the first transaction, so there is no moment without rules and an
 * unchanged table sees no change at all. Knowing only names (`content` absent), every
 * known chain is rewritten and every known set refilled. Dynamic sets (filled by the
 * packet path, e.g. session affinity) are never flushed while wanted: their elements are
 * state the kernel owns.
 *
 * Transaction order: table, new sets, every new or changed chain declared (so rules may
 * refer to any of them), their rules, element deletes then adds, then removals — chains
 * flushed before any is deleted, sets deleted last.
 */
import { hash } from 'node:crypto';
import type { ChainDef, Element, NftFamily, Operation, Rule, SetDef, Transaction } from './ir.js';
import { ruleText, verdictText } from './text.js';
import { decodeKey, type ElementIdentity, elementIdentity, setIdentity } from './wire.js';

export interface ChainState {
  readonly def: ChainDef;
  readonly rules: readonly Rule[];
  /**
   * Kept with the chain in the kernel (after the fingerprint in its first rule's tag) and
   * handed back by `observedMemo`: what the chain's owner needs to build the same chain
   * again after a restart (the proxy: which endpoint block the chain reads).
   */
  readonly memo?: string;
}

export interface SetElement {
  readonly set: string;
  readonly element: Element;
}

export interface Contribution {
  readonly sets?: readonly SetDef[];
  readonly chains?: readonly ChainState[];
  readonly elements?: readonly SetElement[];
}

/** A chain as the kernel holds it: its rule count and its first rule's tag. */
export interface ObservedChain {
  readonly rules: number;
  readonly tag?: string;
}

/** A set as the kernel holds it; `elements` absent for dynamic sets (never compared). */
export interface ObservedSet {
  readonly identity: string;
  readonly elements?: readonly ElementIdentity[];
}

/** What the kernel holds: names, and — when read (Nftables.observe) — what is in them. */
export interface ObservedTable {
  readonly chains: readonly string[];
  readonly sets: readonly string[];
  readonly content?: {
    readonly chains: ReadonlyMap<string, ObservedChain>;
    readonly sets: ReadonlyMap<string, ObservedSet>;
  };
}

export interface PlanStats {
  chainsWritten: number;
  chainsDeleted: number;
  elementsAdded: number;
  elementsDeleted: number;
}

export interface Plan {
  readonly transaction: Transaction;
  readonly stats: PlanStats;
  /** Records the plan as applied; call once the kernel accepted the transaction. */
  readonly commit: () => void;
}

interface HeldElement {
  element: Element;
  /** verdict text, to tell a changed element from an identical one */
  value: string;
  refs: number;
}

const signatures = new WeakMap<ChainState, string>();

function signatureOf(chain: ChainState, family: NftFamily): string {
  let signature = signatures.get(chain);
  if (signature === undefined) {
    signature = `${JSON.stringify(chain.def)}\n${chain.rules.map((rule) => ruleText(rule, family)).join('\n')}`;
    signatures.set(chain, signature);
  }
  return signature;
}

const fingerprints = new WeakMap<ChainState, string>();

/** The tag a chain's first rule carries: a digest of the chain's definition and rules. */
export function fingerprintOf(chain: ChainState, family: NftFamily): string {
  let fingerprint = fingerprints.get(chain);
  if (fingerprint === undefined) {
    // One-shot hash: a third of createHash's cost, which shows at 10k chains.
    fingerprint = hash('sha1', signatureOf(chain, family), 'base64url').slice(0, 22);
    fingerprints.set(chain, fingerprint);
  }
  return fingerprint;
}

/** The tag a chain's first rule carries: its fingerprint, then its memo if it has one. */
function tagOf(chain: ChainState, family: NftFamily): string {
  const fingerprint = fingerprintOf(chain, family);
  return chain.memo === undefined ? fingerprint : `${fingerprint} ${chain.memo}`;
}

/** The memo (ChainState.memo) a chain the kernel holds was written with, if any. */
export function observedMemo(chain: ObservedChain): string | undefined {
  const at = chain.tag?.indexOf(' ') ?? -1;
  return at < 0 ? undefined : chain.tag?.slice(at + 1);
}

/** The add-rule operations that write a chain, its first rule tagged (tagOf). */
function ruleOps(chain: ChainState, family: NftFamily): Operation[] {
  const name = chain.def.name;
  return chain.rules.map((rule, index) => ({ op: 'add-rule', chain: name, rule: index === 0 ? { ...rule, tag: tagOf(chain, family) } : rule }));
}

/** Whether the kernel's chain is the one wanted, as far as its tag and rule count tell. */
function unchanged(seen: ObservedChain | undefined, chain: ChainState, family: NftFamily): boolean {
  return seen !== undefined && seen.rules === chain.rules.length && seen.rules > 0 && seen.tag === tagOf(chain, family);
}

/**
 * A cheap identity for an element key (the book keys maps by it; nft's text would do, but
 * formatting 40k addresses is a third of a large sync's bookkeeping).
 */
function keyId(key: Element['key']): string {
  let id = '';
  for (const atom of key) {
    if ('ip' in atom) id += atom.ip.family === 4 ? `a${Number(atom.ip.value)},` : `A${atom.ip.value.toString(36)},`;
    else if ('proto' in atom) id += `p${atom.proto},`;
    else if ('port' in atom) id += `o${atom.port},`;
    else id += `n${atom.number},`;
  }
  return id;
}

const elementValue = (element: Element): string =>
  element.verdict ? verdictText(element.verdict) : element.endpoint ? keyId([{ ip: element.endpoint.ip }, { port: element.endpoint.port }]) : '';

export class TableBook {
  private readonly contributions = new Map<string, Contribution>();
  /** Chains the kernel holds, with their content; `undefined` = exists, content unknown. */
  private readonly chains = new Map<string, ChainState | undefined>();
  /** Set definitions the kernel holds; `undefined` = exists, definition and elements unknown. */
  private readonly sets = new Map<string, SetDef | undefined>();
  private readonly setOwners = new Map<string, number>();
  private readonly elements = new Map<string, Map<string, HeldElement>>();
  private ruleCount = 0;
  /** What the kernel held at the last reset, until the first plan has been committed. */
  private observed: ObservedTable['content'];

  constructor(
    readonly family: NftFamily,
    readonly table: string,
  ) {}

  /** Forgets every contribution; the kernel holds `observed` (names only) from now on. */
  reset(observed: ObservedTable = { chains: [], sets: [] }): void {
    this.contributions.clear();
    this.chains.clear();
    this.sets.clear();
    this.setOwners.clear();
    this.elements.clear();
    this.ruleCount = 0;
    this.observed = observed.content;
    for (const name of observed.chains) this.chains.set(name, undefined);
    for (const name of observed.sets) this.sets.set(name, undefined);
  }

  get size(): { chains: number; rules: number; elements: number } {
    let elements = 0;
    for (const held of this.elements.values()) elements += held.size;
    return { chains: this.chains.size, rules: this.ruleCount, elements };
  }

  /** Keys of every contribution the book holds. */
  owners(): IterableIterator<string> {
    return this.contributions.keys();
  }

  /**
   * The transaction that replaces the contributions of the given owners (undefined removes
   * one). With `sweep`, anything the book holds that no contribution claims afterwards
   * (names from `reset(observed)`) is removed too; use it for full syncs.
   */
  plan(changes: ReadonlyMap<string, Contribution | undefined>, sweep = false): Plan {
    if (sweep && this.contributions.size === 0) return this.planFromNames(changes);
    const family = this.family;
    const stats: PlanStats = { chainsWritten: 0, chainsDeleted: 0, elementsAdded: 0, elementsDeleted: 0 };
    const head: Operation[] = [{ op: 'add-table' }];
    const declare: Operation[] = [];
    const rules: Operation[] = [];
    const elementDeletes = new Map<string, Element['key'][]>();
    const elementAdds = new Map<string, Element[]>();
    const flushes: Operation[] = [];
    const deletes: Operation[] = [];
    const commits: (() => void)[] = [];

    // Work out the new totals per chain, set owner count and element refs.
    const nextChains = new Map<string, ChainState | null>(); // null: removed
    const setOwnerDelta = new Map<string, number>();
    const setDefs = new Map<string, SetDef>();
    // Per element key: the change in references, and the element as a new contribution
    // wants it (absent when only removals touched the key).
    const refDelta = new Map<string, Map<string, { delta: number; wanted?: Element; removed?: Element }>>();
    const touch = (set: string, element: Element, delta: number): void => {
      let bySet = refDelta.get(set);
      if (!bySet) refDelta.set(set, (bySet = new Map()));
      const key = keyId(element.key);
      const entry = bySet.get(key) ?? { delta: 0 };
      entry.delta += delta;
      if (delta > 0) entry.wanted = element;
      else entry.removed = element;
      bySet.set(key, entry);
    };
    for (const [owner, next] of changes) {
      const previous = this.contributions.get(owner);
      for (const chain of previous?.chains ?? []) if (!nextChains.has(chain.def.name)) nextChains.set(chain.def.name, null);
      for (const chain of next?.chains ?? []) nextChains.set(chain.def.name, chain);
      for (const set of previous?.sets ?? []) setOwnerDelta.set(set.name, (setOwnerDelta.get(set.name) ?? 0) - 1);
      for (const set of next?.sets ?? []) {
        setOwnerDelta.set(set.name, (setOwnerDelta.get(set.name) ?? 0) + 1);
        setDefs.set(set.name, set);
      }
      for (const { set, element } of previous?.elements ?? []) touch(set, element, -1);
      for (const { set, element } of next?.elements ?? []) touch(set, element, +1);
      commits.push(() => {
        if (next) this.contributions.set(owner, next);
        else this.contributions.delete(owner);
      });
    }

    // Sets: declared when new (or of unknown definition), refilled when contents unknown.
    const removedSets: string[] = [];
    for (const [name, delta] of setOwnerDelta) {
      const owners = (this.setOwners.get(name) ?? 0) + delta;
      const def = setDefs.get(name);
      commits.push(() => this.setOwners.set(name, owners));
      if (owners <= 0) {
        if (this.sets.has(name)) removedSets.push(name);
        continue;
      }
      if (!def) continue;
      const known = this.sets.get(name);
      if (known === undefined || JSON.stringify(known) !== JSON.stringify(def)) {
        head.push({ op: 'add-set', set: def });
        if (this.sets.has(name) && known === undefined && !def.dynamic) head.push({ op: 'flush-set', name });
        commits.push(() => this.sets.set(name, def));
      }
    }

    // Chains.
    for (const [name, chain] of nextChains) {
      const existing = this.chains.get(name);
      const exists = this.chains.has(name);
      if (chain === null) continue; // handled below, unless re-added by another owner
      if (exists && existing !== undefined && signatureOf(existing, family) === signatureOf(chain, family)) {
        commits.push(() => this.chains.set(name, chain));
        continue;
      }
      declare.push({ op: 'add-chain', chain: chain.def });
      if (exists) rules.push({ op: 'flush-chain', name });
      rules.push(...ruleOps(chain, family));
      stats.chainsWritten++;
      const delta = chain.rules.length - (existing?.rules.length ?? 0);
      commits.push(() => {
        this.chains.set(name, chain);
        this.ruleCount += delta;
      });
    }
    const removeChain = (name: string): void => {
      flushes.push({ op: 'flush-chain', name });
      deletes.push({ op: 'delete-chain', name });
      stats.chainsDeleted++;
      const rulesGone = this.chains.get(name)?.rules.length ?? 0;
      commits.push(() => {
        this.chains.delete(name);
        this.ruleCount -= rulesGone;
      });
    };
    for (const [name, chain] of nextChains) if (chain === null && this.chains.has(name)) removeChain(name);

    // Elements, by reference count.
    for (const [set, bySet] of refDelta) {
      const held = this.elements.get(set) ?? new Map<string, HeldElement>();
      for (const [key, { delta, wanted, removed }] of bySet) {
        const current = held.get(key);
        const refs = (current?.refs ?? 0) + delta;
        if (refs <= 0) {
          if (current) {
            push(elementDeletes, set, current.element.key);
            stats.elementsDeleted++;
          }
          commits.push(() => {
            held.delete(key);
            if (held.size === 0) this.elements.delete(set);
          });
          continue;
        }
        // Still referenced: a new contribution's element replaces the held one when its value
        // (verdict, endpoint) differs — a changed Service re-points its map elements.
        const element = wanted ?? current?.element ?? removed;
        if (!element) continue;
        const value = elementValue(element);
        if (!current || current.value !== value) {
          if (current) push(elementDeletes, set, current.element.key);
          else stats.elementsAdded++;
          push(elementAdds, set, element);
        }
        const kept: HeldElement = { element, value, refs };
        commits.push(() => {
          held.set(key, kept);
          this.elements.set(set, held);
        });
      }
    }

    if (sweep) {
      const claimed = new Set<string>();
      for (const [owner, contribution] of this.contributions) {
        if (changes.has(owner)) continue;
        for (const chain of contribution.chains ?? []) claimed.add(chain.def.name);
      }
      for (const [, contribution] of changes) for (const chain of contribution?.chains ?? []) claimed.add(chain.def.name);
      for (const name of this.chains.keys()) if (!claimed.has(name) && !nextChains.has(name)) removeChain(name);
      const wanted = new Set<string>();
      for (const [name, owners] of this.setOwners) if (owners > 0 && !setOwnerDelta.has(name)) wanted.add(name);
      for (const [name, delta] of setOwnerDelta) if ((this.setOwners.get(name) ?? 0) + delta > 0) wanted.add(name);
      for (const name of this.sets.keys()) if (!wanted.has(name) && !removedSets.includes(name)) removedSets.push(name);
    }
    for (const name of removedSets) {
      deletes.push({ op: 'delete-set', name });
      commits.push(() => {
        this.sets.delete(name);
        this.setOwners.delete(name);
        this.elements.delete(name);
      });
    }

    const elementOps: Operation[] = [];
    for (const [set, keys] of elementDeletes) elementOps.push({ op: 'delete-elements', set, keys });
    for (const [set, elements] of elementAdds) elementOps.push({ op: 'add-elements', set, elements });
    const body = [...declare, ...rules, ...elementOps, ...flushes, ...deletes];
    const operations = body.length === 0 && head.length === 1 ? [] : [...head, ...body];
    return {
      transaction: { family, table: this.table, operations },
      stats,
      commit: () => {
        for (const step of commits) step();
        this.observed = undefined;
      },
    };
  }

  /**
   * The full sync from a book that holds only names (after reset): every contributed chain
   * written, every contributed set declared (and refilled unless dynamic), everything else
   * the kernel listed removed. The same result as the general path, without its per-element
   * deltas and deferred steps (a 10k-Service sync spent a third of its time collecting them).
   */
  private planFromNames(changes: ReadonlyMap<string, Contribution | undefined>): Plan {
    const head: Operation[] = [{ op: 'add-table' }];
    const declare: Operation[] = [];
    const rules: Operation[] = [];
    const flushes: Operation[] = [];
    const deletes: Operation[] = [];
    const stats: PlanStats = { chainsWritten: 0, chainsDeleted: 0, elementsAdded: 0, elementsDeleted: 0 };
    const chains = new Map<string, ChainState>();
    const setDefs = new Map<string, SetDef>();
    const setOwners = new Map<string, number>();
    const elements = new Map<string, Map<string, HeldElement>>();
    const contributions = new Map<string, Contribution>();
    let ruleCount = 0;
    for (const [owner, contribution] of changes) {
      if (!contribution) continue;
      contributions.set(owner, contribution);
      for (const set of contribution.sets ?? []) {
        setOwners.set(set.name, (setOwners.get(set.name) ?? 0) + 1);
        if (!setDefs.has(set.name)) setDefs.set(set.name, set);
      }
      for (const chain of contribution.chains ?? []) {
        const name = chain.def.name;
        chains.set(name, chain);
        ruleCount += chain.rules.length;
        if (unchanged(this.observed?.chains.get(name), chain, this.family)) continue;
        declare.push({ op: 'add-chain', chain: chain.def });
        if (this.chains.has(name)) rules.push({ op: 'flush-chain', name });
        rules.push(...ruleOps(chain, this.family));
        stats.chainsWritten++;
      }
      for (const { set, element } of contribution.elements ?? []) {
        let held = elements.get(set);
        if (!held) elements.set(set, (held = new Map()));
        const key = keyId(element.key);
        const existing = held.get(key);
        if (existing) existing.refs++;
        else held.set(key, { element, value: elementValue(element), refs: 1 });
      }
    }
    // Sets the kernel holds as wanted keep their elements: only the differences are sent.
    const kept = new Map<string, readonly ElementIdentity[] | undefined>();
    for (const [name, def] of setDefs) {
      const seen = this.observed?.sets.get(name);
      if (seen && seen.identity === setIdentity(this.family, def)) {
        kept.set(name, seen.elements);
        continue;
      }
      head.push({ op: 'add-set', set: def });
      if (this.sets.has(name) && !def.dynamic) head.push({ op: 'flush-set', name });
    }
    const adds: Operation[] = [];
    const elementDeletes: Operation[] = [];
    for (const [set, held] of elements) {
      if (kept.has(set)) continue;
      adds.push({ op: 'add-elements', set, elements: [...held.values()].map((h) => h.element) });
      stats.elementsAdded += held.size;
    }
    for (const [set, inKernel] of kept) {
      const def = setDefs.get(set);
      if (!def || def.dynamic || !inKernel) continue;
      const { add, remove } = elementDiff(inKernel, elements.get(set)?.values() ?? [], def);
      if (remove.length) elementDeletes.push({ op: 'delete-elements', set, keys: remove });
      if (add.length) adds.push({ op: 'add-elements', set, elements: add });
      stats.elementsAdded += add.length;
      stats.elementsDeleted += remove.length;
    }
    for (const name of this.chains.keys()) {
      if (chains.has(name)) continue;
      flushes.push({ op: 'flush-chain', name });
      deletes.push({ op: 'delete-chain', name });
      stats.chainsDeleted++;
    }
    for (const name of this.sets.keys()) if (!setDefs.has(name)) deletes.push({ op: 'delete-set', name });
    const body = [...declare, ...rules, ...elementDeletes, ...adds, ...flushes, ...deletes];
    return {
      transaction: { family: this.family, table: this.table, operations: body.length === 0 && head.length === 1 ? [] : [...head, ...body] },
      stats,
      commit: () => {
        this.reset();
        for (const [owner, contribution] of contributions) this.contributions.set(owner, contribution);
        for (const [name, chain] of chains) this.chains.set(name, chain);
        for (const [name, def] of setDefs) this.sets.set(name, def);
        for (const [name, owners] of setOwners) this.setOwners.set(name, owners);
        for (const [set, held] of elements) this.elements.set(set, held);
        this.ruleCount = ruleCount;
      },
    };
  }
}

/**
 * What to change in a set the kernel holds so it holds `wanted`: keys it lacks or maps
 * elsewhere are added (a changed one deleted first), keys nobody wants deleted.
 */
function elementDiff(inKernel: readonly ElementIdentity[], wanted: Iterable<HeldElement>, def: SetDef): { add: Element[]; remove: Element['key'][] } {
  const held = new Map<string, string>();
  for (const { key, value } of inKernel) held.set(key, value);
  const add: Element[] = [];
  const remove: Element['key'][] = [];
  for (const { element } of wanted) {
    const { key, value } = elementIdentity(element);
    const current = held.get(key);
    held.delete(key);
    if (current === value) continue;
    if (current !== undefined) remove.push(element.key);
    add.push(element);
  }
  for (const key of held.keys()) remove.push(decodeKey(key, def.keys));
  return { add, remove };
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
