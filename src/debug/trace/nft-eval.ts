/**
 * Evaluates nft's JSON ruleset (`nft -j list ruleset`) against one Packet: the base chains of
 * a hook in priority order, jumps/gotos, verdict maps, DNAT (with every candidate endpoint of
 * a numgen map), masquerade and mark arithmetic — the statements kube-proxy-style rule sets
 * and a user's own DROP rules use. An expression this does not model makes its rule "not
 * evaluated": the rule is skipped and named in the result, never guessed.
 *
 * First packet of a connection: `ct state` is `new`, affinity sets (`update @set`) are no-ops,
 * and a numgen/random choice follows the first candidate (the others are listed).
 */
import { ipEqual, netContains, parseIp, parseIpNet, tryParseIp } from '../../lib/ip.js';
import type { NftObject, NftRuleset } from '../netstate.js';
import { L4_NUMBERS, type Packet } from './packet.js';

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

/** What the packet context outside the packet itself answers: interfaces, local addresses. */
export interface HookContext {
  iif?: string;
  oif?: string;
  isLocal: (ip: string) => boolean;
  /** Service DNAT: follow this candidate (`ip:port`) instead of the first. */
  preferEndpoint?: string;
}

export interface RuleHit {
  /** `table family/name chain C handle H` */
  where: string;
  /** A short rendering of the rule. */
  text: string;
  counter?: { packets: number; bytes: number };
  comment?: string;
}

export interface NetfilterOutcome {
  verdict: 'accept' | 'drop' | 'reject';
  /** The rule that dropped/rejected, when one did. */
  killer?: RuleHit;
  /** Rules that matched and did something (jump, nat, mark, verdict). */
  hits: RuleHit[];
  dnat?: { to: string; port?: number; candidates: string[] };
  masquerade?: RuleHit;
  /** Rules skipped because an expression is not modelled. */
  unknown: RuleHit[];
}

export interface Chain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  type?: string;
  prio?: number;
  policy?: string;
  rules: Rule[];
}

interface Rule {
  handle: number;
  expr: unknown[];
  comment?: string;
}

interface NamedSet {
  elements: unknown[];
  /** For maps: element key → value. */
  map?: [unknown, unknown][];
}

type Value = string | number;

/** The tables iptables-nft manages (their rules are evaluated from iptables-save instead). */
const XTABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

export class NftRules {
  private readonly chains = new Map<string, Chain>();
  private readonly sets = new Map<string, NamedSet>();

  constructor(ruleset: NftRuleset, options: { skipXtables: boolean }) {
    for (const object of ruleset.nftables) {
      const [kind, body] = Object.entries(object)[0] ?? [];
      if (!body || typeof body !== 'object') continue;
      const b = body as Record<string, unknown>;
      const family = String(b['family'] ?? '');
      if (family !== 'ip' && family !== 'inet') continue;
      const table = String(b['table'] ?? '');
      if (options.skipXtables && family === 'ip' && XTABLES.has(table)) continue;
      const key = (name: unknown): string => `${family}/${table}/${String(name)}`;
      if (kind === 'chain') {
        const chain: Chain = { family, table, name: String(b['name']), rules: [] };
        if (typeof b['hook'] === 'string') chain.hook = b['hook'];
        if (typeof b['type'] === 'string') chain.type = b['type'];
        if (typeof b['prio'] === 'number') chain.prio = b['prio'];
        if (typeof b['policy'] === 'string') chain.policy = b['policy'];
        this.chains.set(key(b['name']), chain);
      } else if (kind === 'rule') {
        const chain = this.chains.get(key(b['chain']));
        const rule: Rule = { handle: Number(b['handle'] ?? 0), expr: Array.isArray(b['expr']) ? (b['expr'] as unknown[]) : [] };
        if (typeof b['comment'] === 'string') rule.comment = b['comment'];
        chain?.rules.push(rule);
      } else if (kind === 'set' || kind === 'map') {
        const elem = Array.isArray(b['elem']) ? (b['elem'] as unknown[]) : [];
        const set: NamedSet = { elements: kind === 'set' ? elem.map(unwrapElem) : [] };
        if (kind === 'map') set.map = elem.filter((e): e is [unknown, unknown] => Array.isArray(e) && e.length === 2).map(([k, v]) => [unwrapElem(k), v]);
        this.sets.set(`${family}/${table}/@${String(b['name'])}`, set);
      }
    }
  }

  /** Base chains of a hook, in the order the kernel runs them. */
  baseChains(hook: Hook, types?: readonly string[]): Chain[] {
    return [...this.chains.values()].filter((c) => c.hook === hook && (!types || types.includes(c.type ?? 'filter'))).sort((a, b) => (a.prio ?? 0) - (b.prio ?? 0));
  }

  /** Runs one base chain; the packet is changed in place (DNAT, mark). */
  runChain(chain: Chain, packet: Packet, context: HookContext, outcome: NetfilterOutcome): 'accept' | 'drop' | 'reject' {
    const result = this.walk(chain, packet, context, outcome, 0);
    if (result === 'continue' || result === 'return') return chain.policy === 'drop' ? policyDrop(chain, outcome) : 'accept';
    return result;
  }

  private walk(chain: Chain, packet: Packet, context: HookContext, outcome: NetfilterOutcome, depth: number): 'accept' | 'drop' | 'reject' | 'return' | 'continue' {
    if (depth > 32) return 'continue';
    for (const rule of chain.rules) {
      const hit: RuleHit = { where: `table ${chain.family} ${chain.table} chain ${chain.name} handle ${rule.handle}`, text: renderRule(rule.expr) };
      if (rule.comment) hit.comment = rule.comment;
      let matched = true;
      let acted = false;
      let verdict: 'accept' | 'drop' | 'reject' | 'return' | 'continue' | undefined;
      for (const expr of rule.expr) {
        const step = this.statement(expr, chain, packet, context, outcome, hit, depth);
        if (step === 'unknown') {
          outcome.unknown.push(hit);
          matched = false;
          break;
        }
        if (step === 'nomatch') {
          matched = false;
          break;
        }
        if (step === 'acted') acted = true;
        else if (step !== 'match') {
          verdict = step;
          break;
        }
      }
      if (!matched) continue;
      if ((acted || (verdict && verdict !== 'continue')) && !outcome.hits.includes(hit)) outcome.hits.push(hit);
      if (verdict === 'drop' || verdict === 'reject') outcome.killer = hit;
      if (verdict && verdict !== 'continue') return verdict;
    }
    return 'continue';
  }

  private statement(
    expr: unknown,
    chain: Chain,
    packet: Packet,
    context: HookContext,
    outcome: NetfilterOutcome,
    hit: RuleHit,
    depth: number,
  ): 'match' | 'nomatch' | 'unknown' | 'acted' | 'accept' | 'drop' | 'reject' | 'return' | 'continue' {
    if (typeof expr !== 'object' || expr === null) return 'unknown';
    const [kind, body] = Object.entries(expr)[0] ?? [];
    const b = (body ?? {}) as Record<string, unknown>;
    switch (kind) {
      case 'match': {
        const result = this.match(b, chain, packet, context);
        return result === undefined ? 'unknown' : result ? 'match' : 'nomatch';
      }
      case 'counter':
        hit.counter = { packets: Number(b['packets'] ?? 0), bytes: Number(b['bytes'] ?? 0) };
        return 'match';
      case 'accept':
        return 'accept';
      case 'drop':
        return 'drop';
      case 'reject':
        return 'reject';
      case 'return':
        return 'return';
      case 'continue':
        return 'continue';
      case 'jump':
      case 'goto': {
        const target = this.chains.get(`${chain.family}/${chain.table}/${String(b['target'])}`);
        if (!target) return 'unknown';
        // A jump is shown only when something in the target chain mattered.
        const at = outcome.hits.length;
        outcome.hits.push(hit);
        const result = this.walk(target, packet, context, outcome, depth + 1);
        const effect = outcome.hits.length > at + 1 || outcome.killer !== undefined || outcome.dnat !== undefined;
        if (!effect) outcome.hits.splice(at, 1);
        if (kind === 'goto') return result === 'continue' ? 'return' : result;
        return result === 'return' || result === 'continue' ? (effect ? 'acted' : 'match') : result;
      }
      case 'vmap': {
        const key = this.value(b['key'], packet, context);
        if (key === undefined) return 'unknown';
        const entries = this.mapEntries(b['data'], chain);
        if (!entries) return 'unknown';
        const found = entries.find(([k]) => this.elementMatches(k, key));
        if (!found) return 'nomatch';
        return this.statement(found[1], chain, packet, context, outcome, hit, depth);
      }
      case 'dnat': {
        const chosen = this.dnatTarget(b, chain, packet, context);
        if (!chosen) return 'unknown';
        outcome.dnat = chosen;
        packet.dst = chosen.to;
        if (chosen.port !== undefined) packet.dport = chosen.port;
        return 'accept';
      }
      case 'masquerade':
      case 'snat':
        outcome.masquerade = hit;
        return 'accept';
      case 'mangle': {
        const key = b['key'] as Record<string, unknown> | undefined;
        if (!key || !('meta' in key) || (key['meta'] as { key?: string }).key !== 'mark') return 'unknown';
        const value = this.value(b['value'], packet, context);
        if (typeof value !== 'number') return 'unknown';
        packet.mark = value >>> 0;
        return 'acted';
      }
      case 'set':
      case 'log':
      case 'notrack':
      case 'limit':
        return 'match';
      default:
        return 'unknown';
    }
  }

  private match(b: Record<string, unknown>, chain: Chain, packet: Packet, context: HookContext): boolean | undefined {
    const op = String(b['op'] ?? '==');
    const left = this.value(b['left'], packet, context);
    if (left === undefined) return undefined;
    const right = b['right'];
    let result: boolean | undefined;
    if (typeof right === 'string' && right.startsWith('@')) {
      const set = this.sets.get(`${chain.family}/${chain.table}/${right}`);
      if (!set) return undefined;
      result = set.elements.some((e) => this.elementMatches(e, left));
    } else if (typeof right === 'object' && right !== null && 'set' in right) {
      const elements = (right as { set: unknown[] }).set.map(unwrapElem);
      result = elements.some((e) => this.elementMatches(e, left));
    } else {
      result = this.elementMatches(unwrapElem(right), left);
    }
    if (result === undefined) return undefined;
    if (op === '!=') return !result;
    if (op === '==' || op === 'in') return result;
    return undefined;
  }

  /** Does a set element (value, prefix, range, concat) contain `value`? */
  private elementMatches(element: unknown, value: Value | Value[]): boolean {
    if (Array.isArray(value)) {
      const parts = typeof element === 'object' && element !== null && 'concat' in element ? (element as { concat: unknown[] }).concat : undefined;
      return parts !== undefined && parts.length === value.length && parts.every((p, i) => this.elementMatches(unwrapElem(p), value[i] as Value));
    }
    if (typeof element === 'object' && element !== null) {
      if ('prefix' in element) {
        const p = (element as { prefix: { addr: string; len: number } }).prefix;
        const ip = typeof value === 'string' ? tryParseIp(value) : undefined;
        return ip !== undefined && ip.family === 4 && p.addr.includes('.') && netContains(parseIpNet(`${p.addr}/${p.len}`), ip);
      }
      if ('range' in element) {
        const [low, high] = (element as { range: [Value, Value] }).range;
        return compare(value, low) >= 0 && compare(value, high) <= 0;
      }
      return false;
    }
    if (Array.isArray(element)) return element.some((e) => this.elementMatches(e, value));
    return sameValue(element as Value, value);
  }

  private value(expr: unknown, packet: Packet, context: HookContext): Value | Value[] | undefined {
    if (typeof expr === 'string' || typeof expr === 'number') return expr;
    if (typeof expr !== 'object' || expr === null) return undefined;
    const [kind, body] = Object.entries(expr)[0] ?? [];
    const b = (body ?? {}) as Record<string, unknown>;
    switch (kind) {
      case 'payload': {
        const field = String(b['field']);
        const protocol = String(b['protocol']);
        if (protocol === 'ip') return field === 'saddr' ? packet.src : field === 'daddr' ? packet.dst : field === 'protocol' ? packet.proto : undefined;
        if (protocol === 'th' || protocol === packet.proto) {
          if (field === 'dport') return packet.dport ?? -1;
          if (field === 'sport') return packet.sport;
          return undefined;
        }
        // `tcp dport` on a UDP packet: no such field, the match fails.
        if (protocol === 'tcp' || protocol === 'udp' || protocol === 'sctp') return -1;
        if (protocol === 'icmp' && field === 'type') return packet.proto === 'icmp' ? 'echo-request' : -1;
        return undefined;
      }
      case 'meta': {
        const key = String(b['key']);
        if (key === 'l4proto' || key === 'protocol') return key === 'l4proto' ? packet.proto : 'ip';
        if (key === 'mark') return packet.mark;
        if (key === 'iifname' || key === 'iif') return context.iif ?? '';
        if (key === 'oifname' || key === 'oif') return context.oif ?? '';
        if (key === 'nfproto') return 'ipv4';
        return undefined;
      }
      case 'ct': {
        const key = String(b['key']);
        if (key === 'state') return 'new';
        if (key === 'status') return '';
        return undefined;
      }
      case 'fib': {
        const flags = Array.isArray(b['flags']) ? b['flags'].map(String) : [String(b['flags'])];
        if (b['result'] !== 'type') return undefined;
        const address = flags.includes('daddr') ? packet.dst : flags.includes('saddr') ? packet.src : undefined;
        if (address === undefined) return undefined;
        return context.isLocal(address) ? 'local' : 'unicast';
      }
      case 'concat': {
        const parts = (body as unknown[]).map((p) => this.value(p, packet, context));
        if (parts.some((p) => p === undefined || Array.isArray(p))) return undefined;
        return parts as Value[];
      }
      case '&':
      case '|':
      case '^': {
        const [a, c] = (body as unknown[]).map((p) => this.value(p, packet, context));
        if (typeof a !== 'number' || typeof c !== 'number') return undefined;
        return (kind === '&' ? a & c : kind === '|' ? a | c : a ^ c) >>> 0;
      }
      default:
        return undefined;
    }
  }

  private mapEntries(data: unknown, chain: Chain): [unknown, unknown][] | undefined {
    if (typeof data === 'string' && data.startsWith('@')) return this.sets.get(`${chain.family}/${chain.table}/${data}`)?.map;
    if (typeof data === 'object' && data !== null && 'set' in data) {
      return (data as { set: unknown[] }).set.filter((e): e is [unknown, unknown] => Array.isArray(e) && e.length === 2).map(([k, v]) => [unwrapElem(k), v]);
    }
    return undefined;
  }

  private dnatTarget(b: Record<string, unknown>, chain: Chain, packet: Packet, context: HookContext): { to: string; port?: number; candidates: string[] } | undefined {
    const addr = b['addr'];
    if (typeof addr === 'string') {
      const port = typeof b['port'] === 'number' ? b['port'] : undefined;
      const target = { to: addr, candidates: [port === undefined ? addr : `${addr}:${port}`] };
      return port === undefined ? target : { ...target, port };
    }
    if (typeof addr === 'object' && addr !== null && 'map' in addr) {
      const map = (addr as { map: { key: unknown; data: unknown } }).map;
      const entries = this.mapEntries(map.data, chain);
      if (!entries) return undefined;
      const render = ([, v]: [unknown, unknown]): string => {
        const parts = typeof v === 'object' && v !== null && 'concat' in v ? (v as { concat: Value[] }).concat : [v as Value];
        return parts.map(String).join(':');
      };
      const key = map.key as Record<string, unknown>;
      let chosen: [unknown, unknown] | undefined;
      if ('numgen' in key) {
        // Random: every element is a candidate; follow the asked-for one, else the first.
        const sorted = [...entries].sort((x, y) => compare(x[0] as Value, y[0] as Value));
        chosen = sorted.find((e) => render(e) === context.preferEndpoint) ?? sorted[0];
      } else {
        const value = this.value(key, packet, context);
        if (value === undefined) return undefined;
        chosen = entries.find(([k]) => this.elementMatches(k, value));
      }
      if (!chosen) return { to: packet.dst, candidates: [] };
      const [to, port] = render(chosen).split(':');
      const result = { to: to ?? packet.dst, candidates: entries.map(render) };
      return port === undefined ? result : { ...result, port: Number(port) };
    }
    return undefined;
  }
}

function policyDrop(chain: Chain, outcome: NetfilterOutcome): 'drop' {
  outcome.killer = { where: `table ${chain.family} ${chain.table} chain ${chain.name}`, text: 'policy drop' };
  return 'drop';
}

function unwrapElem(element: unknown): unknown {
  if (typeof element === 'object' && element !== null && 'elem' in element) return unwrapElem((element as { elem: { val: unknown } }).elem.val);
  return element;
}

function sameValue(a: Value, b: Value | Value[]): boolean {
  if (Array.isArray(b)) return false;
  if (a === b) return true;
  const na = typeof a === 'string' && a in L4_NUMBERS ? L4_NUMBERS[a] : a;
  const nb = typeof b === 'string' && b in L4_NUMBERS ? L4_NUMBERS[b] : b;
  if (na === nb) return true;
  if (typeof a === 'string' && typeof b === 'string') {
    const ia = tryParseIp(a);
    const ib = tryParseIp(b);
    if (ia && ib) return ipEqual(ia, ib);
  }
  return String(a) === String(b);
}

function compare(a: Value | Value[], b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string' && tryParseIp(a) && tryParseIp(b)) {
    const d = parseIp(a).value - parseIp(b).value;
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return String(a).localeCompare(String(b));
}

/** A compact, nft-like rendering of a rule's expressions, for output. */
export function renderRule(exprs: readonly unknown[]): string {
  return exprs.map(renderExpr).join(' ');
}

function renderExpr(expr: unknown): string {
  if (typeof expr === 'string') return expr;
  if (typeof expr === 'number') return String(expr);
  if (Array.isArray(expr)) return `{ ${expr.map(renderExpr).join(', ')} }`;
  if (typeof expr !== 'object' || expr === null) return String(expr);
  const [kind, body] = Object.entries(expr)[0] ?? ['?', null];
  const b = (body ?? {}) as Record<string, unknown>;
  switch (kind) {
    case 'match': {
      const left = b['left'];
      const bitwise = typeof left === 'object' && left !== null && ('&' in left || '|' in left || '^' in left);
      const op = (b['op'] === '==' && !bitwise) || b['op'] === 'in' ? '' : ` ${String(b['op'])}`;
      return `${renderExpr(left)}${op} ${renderExpr(b['right'])}`;
    }
    case 'payload':
      return `${String(b['protocol'])} ${String(b['field'])}`;
    case 'meta':
      return `meta ${String(b['key'])}`;
    case 'ct':
      return `ct ${String(b['key'])}`;
    case 'fib':
      return `fib ${([] as unknown[]).concat(b['flags']).map(String).join(' . ')} ${String(b['result'])}`;
    case 'concat':
      return (body as unknown[]).map(renderExpr).join(' . ');
    case 'prefix':
      return `${String(b['addr'])}/${String(b['len'])}`;
    case 'range':
      return (body as unknown[]).map(renderExpr).join('-');
    case 'set':
      return Array.isArray(body) ? `{ ${body.map(renderExpr).join(', ')} }` : 'set';
    case '&':
    case '|':
    case '^':
      return (body as unknown[]).map(renderExpr).join(` ${kind} `);
    case 'counter':
      return `counter packets ${String(b['packets'] ?? 0)} bytes ${String(b['bytes'] ?? 0)}`;
    case 'jump':
    case 'goto':
      return `${kind} ${String(b['target'])}`;
    case 'vmap':
      return `${renderExpr(b['key'])} vmap ${renderExpr(b['data'])}`;
    case 'dnat':
      return `dnat to ${renderExpr(b['addr'])}${b['port'] !== undefined ? `:${String(b['port'])}` : ''}`;
    case 'map':
      return `${renderExpr(b['key'])} map ${renderExpr(b['data'])}`;
    case 'numgen':
      return `numgen ${String(b['mode'])} mod ${String(b['mod'])}`;
    case 'mangle':
      return `${renderExpr(b['key'])} set ${renderExpr(b['value'])}`;
    case 'reject':
      return body ? `reject with ${String(b['type'] ?? '')}${b['expr'] ? ` ${String(b['expr'])}` : ''}` : 'reject';
    case 'elem':
      return renderExpr(b['val']);
    default:
      return body === null ? kind : `${kind} ${JSON.stringify(body)}`;
  }
}
