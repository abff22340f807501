/**
 * A typed model of the nftables objects Pontoon writes: tables, chains, sets and maps,
 * elements, and rules made of a small set of statements. One model, two renderings: nft's
 * script language (text.ts — golden files, `--dry-run`, what a person reads) and the
 * nf_tables netlink messages the kernel takes (wire.ts — what a sync sends). A test applies
 * both to twin namespaces and compares what `nft list` decodes, so the two cannot drift.
 *
 * Design note: only what the service proxy needs is modelled (matches on addresses,
 * ports, protocol, mark, conntrack state/status and address type; concatenated lookups and
 * verdict maps; numgen; DNAT, masquerade, reject; mark updates; dynamic set updates). A
 * statement nft has and this model lacks is a compile error, not a runtime surprise.
 */
import type { Ip, IpNet } from '../ip.js';

export type NftFamily = 'ip' | 'ip6';

export type L4Proto = 'tcp' | 'udp' | 'sctp';

/** A value a rule loads from the packet (or its metadata) into registers. */
export type Selector =
  | { readonly sel: 'saddr' | 'daddr' }
  | { readonly sel: 'sport' | 'dport' }
  | { readonly sel: 'l4proto' }
  | { readonly sel: 'mark' }
  | { readonly sel: 'iifname' | 'oifname' }
  | { readonly sel: 'ct-state' | 'ct-status' }
  | { readonly sel: 'fib-daddr-type' | 'fib-saddr-type' }
  | { readonly sel: 'numgen'; readonly modulus: number; readonly offset?: number };

export const SADDR: Selector = { sel: 'saddr' };
export const DADDR: Selector = { sel: 'daddr' };
export const DPORT: Selector = { sel: 'dport' };
export const L4PROTO: Selector = { sel: 'l4proto' };
export const MARK: Selector = { sel: 'mark' };

export type CtState = 'new' | 'established' | 'related' | 'invalid';
export type CtStatus = 'dnat' | 'snat';

/** The right-hand side of a comparison, by what the selector loads. */
export type MatchValue =
  | { readonly ip: Ip }
  | { readonly net: IpNet }
  | { readonly port: number }
  | { readonly proto: L4Proto }
  | { readonly number: number }
  | { readonly name: string }
  | { readonly ctState: readonly CtState[] }
  | { readonly ctStatus: CtStatus }
  | { readonly addrType: 'local' };

export type Verdict =
  | { readonly kind: 'accept' | 'drop' | 'return' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string };

export type Statement =
  /** `left [& mask] == right` (or `!=`). Flag values (ct state) match when any flag is set. */
  | { readonly st: 'match'; readonly left: Selector; readonly op: '==' | '!='; readonly right: MatchValue; readonly mask?: number }
  /** `keys @set` (`keys != @set` when negated). */
  | { readonly st: 'lookup'; readonly keys: readonly Selector[]; readonly set: string; readonly negate?: boolean }
  /** `keys vmap @map`: jump/goto/accept... as the map's element says; no element, no verdict. */
  | { readonly st: 'vmap'; readonly keys: readonly Selector[]; readonly map: string }
  | { readonly st: 'verdict'; readonly verdict: Verdict }
  | { readonly st: 'dnat'; readonly addr: Ip; readonly port?: number }
  /** `dnat ip to <key> map @m`: address and port from an endpoint map (data 'endpoint'). */
  | { readonly st: 'dnat-map'; readonly key: Selector; readonly map: string }
  | { readonly st: 'masquerade'; readonly fullyRandom: boolean }
  /** ICMP(v6) port unreachable, or a TCP reset (after a `meta l4proto tcp` match). */
  | { readonly st: 'reject'; readonly tcpReset?: boolean }
  | { readonly st: 'set-mark'; readonly op: 'or' | 'xor'; readonly value: number }
  | { readonly st: 'counter' }
  /** `update @set { keys }`: adds the key or refreshes its timeout. */
  | { readonly st: 'set-update'; readonly set: string; readonly keys: readonly Selector[] };

export interface Rule {
  readonly statements: readonly Statement[];
  /** Shown by `nft list`; at most 127 bytes (NFT_USERDATA_MAXLEN is 256, comments 128). */
  readonly comment?: string;
  /**
   * Kept by the kernel in the rule's user data and not shown by `nft list`: the book tags a
   * chain's first rule with the chain's fingerprint so a restart can tell what is unchanged.
   */
  readonly tag?: string;
}

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

export interface ChainDef {
  readonly name: string;
  /** A base chain hooks into the stack; a regular chain is only reached by jump/goto. */
  readonly base?: { readonly type: 'nat' | 'filter'; readonly hook: Hook; readonly priority: number; readonly policy?: 'accept' | 'drop' };
  readonly comment?: string;
}

/**
 * Element key fields, in nft's datatype names; 'numgen' is a numgen result (declared
 * `typeof numgen random mod 1`, only as the key of an endpoint map).
 */
export type KeyType = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service' | 'mark' | 'numgen';

export interface SetDef {
  readonly name: string;
  readonly keys: readonly KeyType[];
  /**
   * A map rather than a set: to verdicts (`type K : verdict`), or to endpoints — the
   * table family's address and a port (`typeof numgen random mod 1 : ip daddr . th dport`).
   */
  readonly data?: 'verdict' | 'endpoint';
  /** Elements expire; with `dynamic` rules may add them (`update @set`). */
  readonly timeoutSeconds?: number;
  readonly dynamic?: boolean;
  readonly comment?: string;
}

/** One field of an element key, in key-type order. */
export type KeyAtom = { readonly ip: Ip } | { readonly proto: L4Proto } | { readonly port: number } | { readonly number: number };

export interface Element {
  readonly key: readonly KeyAtom[];
  readonly verdict?: Verdict;
  readonly endpoint?: { readonly ip: Ip; readonly port: number };
}

export type Operation =
  | { readonly op: 'add-table' }
  | { readonly op: 'delete-table' }
  | { readonly op: 'add-chain'; readonly chain: ChainDef }
  | { readonly op: 'flush-chain'; readonly name: string }
  | { readonly op: 'delete-chain'; readonly name: string }
  | { readonly op: 'add-rule'; readonly chain: string; readonly rule: Rule }
  | { readonly op: 'add-set'; readonly set: SetDef }
  | { readonly op: 'flush-set'; readonly name: string }
  | { readonly op: 'delete-set'; readonly name: string }
  | { readonly op: 'add-elements'; readonly set: string; readonly elements: readonly Element[] }
  | { readonly op: 'delete-elements'; readonly set: string; readonly keys: readonly (readonly KeyAtom[])[] };

/** Everything one sync changes in one table, applied all or nothing. */
export interface Transaction {
  readonly family: NftFamily;
  readonly table: string;
  readonly operations: readonly Operation[];
}

// ---- constructors, so rule builders read like the rules they make -------------------------

export const match = (left: Selector, right: MatchValue, op: '==' | '!=' = '=='): Statement => ({ st: 'match', left, op, right });
export const jump = (chain: string): Statement => ({ st: 'verdict', verdict: { kind: 'jump', chain } });
export const goto = (chain: string): Statement => ({ st: 'verdict', verdict: { kind: 'goto', chain } });
export const verdict = (kind: 'accept' | 'drop' | 'return'): Statement => ({ st: 'verdict', verdict: { kind } });
/** A rule; a comment longer than the kernel keeps (127 bytes) is cut at a character boundary. */
export function rule(statements: readonly Statement[], comment?: string): Rule {
  if (comment === undefined) return { statements };
  let text = comment;
  while (Buffer.byteLength(text) > MAX_COMMENT_BYTES) text = text.slice(0, -1);
  return { statements, comment: text };
}

export const MAX_COMMENT_BYTES = 127;
