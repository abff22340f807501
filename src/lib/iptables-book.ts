/**
 * The record of the iptables chains one owner-family holds (kube-proxy's KUBE-* chains),
 * built from contributions, and the `iptables-restore --noflush` input that changes it.
 *
 * Two kinds of chain:
 *   - owned chains (KUBE-SVC-…, KUBE-SEP-…) belong to exactly one contribution and are rewritten
 *     whole when they change (`:CHAIN - [0:0]` flushes it in noflush mode, then `-A`s);
 *   - shared chains (KUBE-SERVICES, KUBE-NODEPORTS, …) hold one rule per contribution:
 *     a partial sync edits them rule by rule (`-D` the rules that went, `-I … 1` the new
 *     ones, so a fixed trailer such as the jump to KUBE-NODEPORTS stays last). Rewriting
 *     KUBE-SERVICES whole, as kube-proxy does on every sync, costs ~0.5 s at 10k Services
 *     with iptables-nft; an insert costs ~20 ms.
 * A full sync rewrites everything and deletes (`-X`) the chains the kernel listed that
 * nobody contributes any more; removals come after the rules that referred to them.
 */

export interface IptablesChain {
  readonly table: string;
  readonly name: string;
  readonly rules: readonly string[];
}

export interface IptablesLine {
  readonly table: string;
  readonly chain: string;
  /** The rule without `-A CHAIN`: `-d 10.96.0.10/32 -p tcp … -j KUBE-SVC-…`. */
  readonly rule: string;
}

export interface IptablesContribution {
  readonly chains?: readonly IptablesChain[];
  readonly lines?: readonly IptablesLine[];
}

export interface SharedChain {
  readonly table: string;
  readonly name: string;
  /** Rules kept after every contributed one (written on full rewrites only). */
  readonly trailer?: readonly string[];
}

export interface IptablesPlan {
  /** The restore input (all tables), or '' when nothing changes. */
  readonly script: string;
  readonly chainsWritten: number;
  readonly chainsDeleted: number;
  readonly full: boolean;
  readonly commit: () => void;
}

const chainKey = (table: string, name: string): string => `${table}\u0000${name}`;

interface TableScript {
  declare: Set<string>;
  /** `-D` of shared-chain rules: first, before anything they might refer to goes. */
  deletes: string[];
  body: string[];
  removals: string[];
}

export class IptablesBook {
  private readonly contributions = new Map<string, IptablesContribution>();
  /** Owned chains the kernel holds; `undefined` = exists, content unknown. */
  private readonly chains = new Map<string, IptablesChain | undefined>();
  /** Lines of the shared chains, by chain key then rule text. */
  private readonly lines = new Map<string, Map<string, number>>();
  private sharedKnown = false;
  private readonly shared: ReadonlyMap<string, SharedChain>;

  constructor(shared: readonly SharedChain[]) {
    this.shared = new Map(shared.map((chain) => [chainKey(chain.table, chain.name), chain]));
  }

  /** Forgets every contribution; the kernel holds these owned chains (names only). */
  reset(observed: readonly { table: string; name: string }[] = []): void {
    this.contributions.clear();
    this.chains.clear();
    this.lines.clear();
    this.sharedKnown = false;
    for (const { table, name } of observed) {
      if (!this.shared.has(chainKey(table, name))) this.chains.set(chainKey(table, name), undefined);
    }
  }

  get ruleCount(): Map<string, number> {
    const counts = new Map<string, number>();
    const add = (table: string, n: number): void => void counts.set(table, (counts.get(table) ?? 0) + n);
    for (const chain of this.chains.values()) if (chain) add(chain.table, chain.rules.length);
    for (const [key, rules] of this.lines) add(key.split('\u0000')[0] ?? '', rules.size);
    for (const chain of this.shared.values()) add(chain.table, chain.trailer?.length ?? 0);
    return counts;
  }

  /**
   * The restore input replacing the given contributions. `full` rewrites every chain
   * (shared ones whole) and removes unclaimed ones; a book whose shared chains are not
   * known (after reset) plans full whatever is asked. `extra` rules are inserted first in
   * chains the book does not own (`-I CHAIN 1`), once its own chains are declared.
   */
  plan(changes: ReadonlyMap<string, IptablesContribution | undefined>, full = false, extra: readonly IptablesLine[] = []): IptablesPlan {
    const all = full || !this.sharedKnown;
    const tables = new Map<string, TableScript>();
    const tableOf = (table: string): TableScript => {
      let script = tables.get(table);
      if (!script) tables.set(table, (script = { declare: new Set(), deletes: [], body: [], removals: [] }));
      return script;
    };
    const commits: (() => void)[] = [];
    let chainsWritten = 0;
    let chainsDeleted = 0;

    const next = new Map(this.contributions);
    for (const [owner, contribution] of changes) {
      if (contribution) next.set(owner, contribution);
      else next.delete(owner);
    }

    // Owned chains.
    const wanted = new Map<string, IptablesChain>();
    for (const contribution of all ? next.values() : [...changes.values()]) {
      for (const chain of contribution?.chains ?? []) wanted.set(chainKey(chain.table, chain.name), chain);
    }
    const write = (key: string, chain: IptablesChain): void => {
      const script = tableOf(chain.table);
      script.declare.add(chain.name);
      for (const rule of chain.rules) script.body.push(`-A ${chain.name} ${rule}`);
      chainsWritten++;
      commits.push(() => this.chains.set(key, chain));
    };
    for (const [key, chain] of wanted) {
      const known = this.chains.get(key);
      if (!all && known && sameRules(known.rules, chain.rules)) continue;
      write(key, chain);
    }
    const remove = (key: string): void => {
      const [table = '', name = ''] = key.split('\u0000');
      const script = tableOf(table);
      script.declare.add(name); // flushed first, so -X finds it empty
      script.removals.push(`-X ${name}`);
      chainsDeleted++;
      commits.push(() => this.chains.delete(key));
    };
    if (all) {
      for (const key of this.chains.keys()) if (!wanted.has(key)) remove(key);
    } else {
      for (const [owner] of changes) {
        for (const chain of this.contributions.get(owner)?.chains ?? []) {
          const key = chainKey(chain.table, chain.name);
          if (!wanted.has(key) && this.chains.has(key)) remove(key);
        }
      }
    }

    // Shared chains.
    const counts = new Map<string, Map<string, number>>();
    if (all) {
      for (const contribution of next.values()) for (const line of contribution.lines ?? []) bump(counts, chainKey(line.table, line.chain), line.rule, 1);
      for (const [key, chain] of this.shared) {
        const script = tableOf(chain.table);
        script.declare.add(chain.name);
        for (const rule of counts.get(key)?.keys() ?? []) script.body.push(`-A ${chain.name} ${rule}`);
        for (const rule of chain.trailer ?? []) script.body.push(`-A ${chain.name} ${rule}`);
      }
      commits.push(() => {
        this.lines.clear();
        for (const [key, rules] of counts) this.lines.set(key, rules);
        this.sharedKnown = true;
      });
    } else {
      const delta = new Map<string, Map<string, number>>();
      for (const [owner, contribution] of changes) {
        for (const line of this.contributions.get(owner)?.lines ?? []) bump(delta, chainKey(line.table, line.chain), line.rule, -1);
        for (const line of contribution?.lines ?? []) bump(delta, chainKey(line.table, line.chain), line.rule, 1);
      }
      for (const [key, rules] of delta) {
        const shared = this.shared.get(key);
        if (!shared) continue;
        const held = this.lines.get(key) ?? new Map<string, number>();
        const script = tableOf(shared.table);
        for (const [rule, change] of rules) {
          const before = held.get(rule) ?? 0;
          const after = before + change;
          if (before > 0 && after <= 0) script.deletes.push(`-D ${shared.name} ${rule}`);
          if (before <= 0 && after > 0) script.body.push(shared.trailer?.length ? `-I ${shared.name} 1 ${rule}` : `-A ${shared.name} ${rule}`);
          commits.push(() => {
            if (after > 0) held.set(rule, after);
            else held.delete(rule);
            this.lines.set(key, held);
          });
        }
      }
    }

    for (const [owner, contribution] of changes) {
      commits.push(() => {
        if (contribution) this.contributions.set(owner, contribution);
        else this.contributions.delete(owner);
      });
    }

    // Lines into chains the book does not own (jumps from built-in chains), after ours exist;
    // inserted last first, so they end up in the given order at the top of their chain.
    for (const line of [...extra].reverse()) tableOf(line.table).body.push(`-I ${line.chain} 1 ${line.rule}`);

    const parts: string[] = [];
    for (const [table, script] of [...tables].sort(([a], [b]) => a.localeCompare(b))) {
      if (script.declare.size === 0 && script.deletes.length === 0 && script.body.length === 0 && script.removals.length === 0) continue;
      // Line by line: a 20k-Service table has more lines than a spread call takes arguments.
      parts.push(`*${table}`);
      for (const name of script.declare) parts.push(`:${name} - [0:0]`);
      for (const lines of [script.deletes, script.body, script.removals]) for (const line of lines) parts.push(line);
      parts.push('COMMIT');
    }
    return {
      script: parts.length ? `${parts.join('\n')}\n` : '',
      chainsWritten,
      chainsDeleted,
      full: all,
      commit: () => {
        for (const step of commits) step();
      },
    };
  }
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((rule, i) => rule === b[i]);
}

function bump(map: Map<string, Map<string, number>>, key: string, rule: string, by: number): void {
  let rules = map.get(key);
  if (!rules) map.set(key, (rules = new Map()));
  rules.set(rule, (rules.get(rule) ?? 0) + by);
}
