/**
 * An nf_tables handle on one network namespace (the one the thread is in when it is
 * opened): applies transactions as one netlink batch — all of it or none of it, like
 * `nft -f` — and reads back what a reconciler needs after a restart: the names of a
 * table's chains and sets, each chain's rule count and first-rule tag, each set's
 * definition and (unless dynamic) its elements — never the rules' expressions (see wire.ts).
 */
import { errnoName, PontoonError } from '../errors.js';
import { cstring, decodeAttrs, NetlinkDecodeError, readCString } from '../netlink/codec.js';
import { NETLINK_NETFILTER, NetlinkError, NetlinkSocket } from '../netlink/socket.js';
import { transactionText } from './text.js';
import type { ObservedChain, ObservedSet, ObservedTable } from './book.js';
import type { NftFamily, Operation, Transaction } from './ir.js';
import {
  decodeElements,
  decodeRuleTag,
  decodeSet,
  NFT_MSG_GETSETELEM,
  NFTA_SET_ELEM_LIST_SET,
  NFTA_SET_ELEM_LIST_TABLE,
  encodeBatch,
  familyNumber,
  NFT_MSG_GETCHAIN,
  NFT_MSG_GETSET,
  NFTA_CHAIN_NAME,
  NFTA_CHAIN_TABLE,
  NFTA_SET_TABLE,
  decodeRuleJumps,
  NFT_MSG_GETRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_TABLE,
  nfgenmsg,
  nftType,
} from './wire.js';

export interface NftFailure {
  errno: number;
  code: string;
  /** The kernel's extended-ACK text, when it gave one. */
  text?: string;
  /** The operation (as nft script) the kernel refused. */
  operation: string;
}

/** The kernel refused a transaction; nothing of it was applied. */
export class NftTransactionError extends PontoonError {
  constructor(
    readonly table: string,
    readonly failures: readonly NftFailure[],
  ) {
    const first = failures[0];
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more)` : '';
    super(`failed to apply nftables transaction to table "${table}": ${first ? `${first.code}${first.text ? ` (${first.text})` : ''} at "${first.operation}"` : 'refused'}${more}`);
  }
}

function operationLabel(transaction: Transaction, operation: Operation | undefined): string {
  if (!operation) return 'batch';
  return transactionText({ ...transaction, operations: [operation] }).trim().slice(0, 300);
}

export class Nftables {
  private readonly socket = new NetlinkSocket(NETLINK_NETFILTER);

  /**
   * Applies the transaction — or several, for several tables — in one netlink batch, all
   * or nothing; throws NftTransactionError when the kernel refuses.
   */
  apply(transaction: Transaction | readonly Transaction[]): void {
    const transactions = (Array.isArray(transaction) ? transaction : [transaction]) as readonly Transaction[];
    if (transactions.every((t) => t.operations.length === 0)) return;
    // The message count is known only once encoded: encode from the next sequence number,
    // then reserve as many as the batch used (begin, messages, end).
    const firstSeq = this.socket.peekSeq();
    const batch = encodeBatch(transactions, firstSeq);
    this.socket.nextSeq(batch.count + 2);
    const failed = this.socket.sendBatch(batch.datagram, firstSeq, (firstSeq + batch.count) >>> 0);
    if (failed.size === 0) return;
    const failures: NftFailure[] = [];
    for (const [seq, { errno, text }] of failed) {
      const index = ((seq - firstSeq) >>> 0) - 1;
      const origin = batch.operationOf[index];
      const owner = origin ? transactions[origin.transaction] : undefined;
      const operation = owner && origin ? operationLabel(owner, owner.operations[origin.operation]) : 'batch';
      failures.push(text === undefined ? { errno, code: errnoName(errno), operation } : { errno, code: errnoName(errno), text, operation });
    }
    throw new NftTransactionError(transactions.map((t) => `${t.family} ${t.table}`).join(', '), failures);
  }

  /** Names of the table's chains; empty when the table does not exist. */
  listChains(family: NftFamily, table: string): string[] {
    return this.dump(NFT_MSG_GETCHAIN, family, [[NFTA_CHAIN_TABLE, table]], `chains of ${family} ${table}`).flatMap((attrs) => readCString(attrs.get(NFTA_CHAIN_NAME)) ?? []);
  }

  /**
   * What the table holds, for a reconciler starting over: chain and set names, and what is
   * in them (see ObservedTable). Empty when the table does not exist.
   */
  observe(family: NftFamily, table: string): ObservedTable {
    const chainNames = this.listChains(family, table);
    const chains = new Map<string, ObservedChain>(chainNames.map((name) => [name, { rules: 0 }]));
    for (const attrs of this.dump(NFT_MSG_GETRULE, family, [[NFTA_RULE_TABLE, table]], `rules of ${family} ${table}`)) {
      const rule = decodeRuleTag(attrs);
      if (!rule) continue;
      const seen = chains.get(rule.chain) ?? { rules: 0 };
      // Rules come in chain order: the first one seen carries the chain's tag.
      chains.set(rule.chain, seen.rules === 0 && rule.tag !== undefined ? { rules: 1, tag: rule.tag } : { ...seen, rules: seen.rules + 1 });
    }
    const sets = new Map<string, ObservedSet>();
    for (const attrs of this.dump(NFT_MSG_GETSET, family, [[NFTA_SET_TABLE, table]], `sets of ${family} ${table}`)) {
      const set = decodeSet(attrs);
      if (!set) continue;
      if (set.dynamic) {
        sets.set(set.name, { identity: set.identity });
        continue;
      }
      const filters = [[NFTA_SET_ELEM_LIST_TABLE, table], [NFTA_SET_ELEM_LIST_SET, set.name]] as const;
      const elements = this.dump(NFT_MSG_GETSETELEM, family, filters, `elements of ${family} ${table} ${set.name}`).flatMap(decodeElements);
      sets.set(set.name, { identity: set.identity, elements });
    }
    return { chains: chainNames, sets: [...sets.keys()], content: { chains, sets } };
  }

  /** The chains the rules of `chain` jump or go to; empty when table or chain do not exist. */
  listJumpTargets(family: NftFamily, table: string, chain: string): string[] {
    return this.dump(NFT_MSG_GETRULE, family, [[NFTA_RULE_TABLE, table], [NFTA_RULE_CHAIN, chain]], `rules of ${family} ${table} ${chain}`).flatMap(decodeRuleJumps);
  }

  close(): void {
    this.socket.close();
  }

  /**
   * A dump filtered by the given string attributes (the kernel filters by them; replies
   * are checked again here), as attribute maps; empty when the table or chain is absent.
   */
  private dump(message: number, family: NftFamily, filters: readonly (readonly [number, string])[], what: string): Map<number, Buffer>[] {
    let replies;
    try {
      replies = this.socket.query(nftType(message), nfgenmsg(familyNumber(family)), filters.map(([type, value]) => ({ type, value: cstring(value) })), true, `list ${what}`);
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENOENT') return [];
      throw err;
    }
    const matching: Map<number, Buffer>[] = [];
    for (const reply of replies) {
      if (reply.payload.length < 4) throw new NetlinkDecodeError('nf_tables reply shorter than its nfgenmsg');
      const attrs = decodeAttrs(reply.payload, 4);
      if (filters.every(([type, value]) => readCString(attrs.get(type)) === value)) matching.push(attrs);
    }
    return matching;
  }
}


