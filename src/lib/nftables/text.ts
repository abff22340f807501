/**
 * The nft script rendering of a transaction: one command per line, as `nft -f` reads it.
 * This is what golden files hold and `--dry-run` prints; `nft -f` of it builds the same
 * table as the netlink rendering (wire.ts), which a kernel test checks.
 */
import { PontoonError } from '../errors.js';
import { formatIp, formatIpNet, type Ip } from '../ip.js';
import type { ChainDef, Element, KeyAtom, MatchValue, Operation, Rule, Selector, SetDef, Statement, Transaction, Verdict } from './ir.js';

function selectorText(selector: Selector, family: 'ip' | 'ip6'): string {
  switch (selector.sel) {
    case 'saddr':
    case 'daddr':
      return `${family} ${selector.sel}`;
    case 'sport':
    case 'dport':
      return `th ${selector.sel}`;
    case 'l4proto':
    case 'mark':
    case 'iifname':
    case 'oifname':
      return `meta ${selector.sel}`;
    case 'ct-state':
      return 'ct state';
    case 'ct-status':
      return 'ct status';
    case 'fib-daddr-type':
      return 'fib daddr type';
    case 'fib-saddr-type':
      return 'fib saddr type';
    case 'numgen':
      return `numgen random mod ${selector.modulus}${selector.offset ? ` offset ${selector.offset}` : ''}`;
  }
}

const hex = (value: number): string => `0x${(value >>> 0).toString(16).padStart(8, '0')}`;

function valueText(value: MatchValue): string {
  if ('ip' in value) return formatIp(value.ip);
  if ('net' in value) return formatIpNet(value.net);
  if ('port' in value) return String(value.port);
  if ('proto' in value) return value.proto;
  if ('number' in value) return String(value.number);
  if ('name' in value) return JSON.stringify(value.name);
  if ('ctState' in value) return value.ctState.join(',');
  if ('ctStatus' in value) return value.ctStatus;
  return value.addrType;
}

export function verdictText(verdict: Verdict): string {
  return verdict.kind === 'jump' || verdict.kind === 'goto' ? `${verdict.kind} ${verdict.chain}` : verdict.kind;
}

function keysText(keys: readonly Selector[], family: 'ip' | 'ip6'): string {
  return keys.map((key) => selectorText(key, family)).join(' . ');
}

function endpointText(addr: Ip, port: number | undefined): string {
  if (port === undefined) return formatIp(addr);
  return addr.family === 6 ? `[${formatIp(addr)}]:${port}` : `${formatIp(addr)}:${port}`;
}

export function statementText(statement: Statement, family: 'ip' | 'ip6'): string {
  switch (statement.st) {
    case 'match': {
      const left = selectorText(statement.left, family);
      const masked = statement.mask === undefined ? left : `${left} & ${hex(statement.mask)}`;
      // nft reads `ct state new` as "any of these bits"; an explicit == would mean "exactly".
      const op = statement.op === '!=' ? ' !=' : statement.mask !== undefined ? ' ==' : '';
      return `${masked}${op} ${valueText(statement.right)}`;
    }
    case 'lookup':
      return `${keysText(statement.keys, family)}${statement.negate ? ' !=' : ''} @${statement.set}`;
    case 'vmap':
      return `${keysText(statement.keys, family)} vmap @${statement.map}`;
    case 'verdict':
      return verdictText(statement.verdict);
    case 'dnat':
      return `dnat to ${endpointText(statement.addr, statement.port)}`;
    case 'dnat-map':
      return `dnat ${family} to ${selectorText(statement.key, family)} map @${statement.map}`;
    case 'masquerade':
      return statement.fullyRandom ? 'masquerade fully-random' : 'masquerade';
    case 'reject':
      return statement.tcpReset ? 'reject with tcp reset' : 'reject';
    case 'set-mark':
      return `meta mark set meta mark ${statement.op} ${hex(statement.value)}`;
    case 'counter':
      return 'counter';
    case 'set-update':
      return `update @${statement.set} { ${keysText(statement.keys, family)} }`;
  }
}

export function ruleText(rule: Rule, family: 'ip' | 'ip6'): string {
  const body = rule.statements.map((s) => statementText(s, family)).join(' ');
  return rule.comment === undefined ? body : `${body} comment ${JSON.stringify(rule.comment)}`;
}

function chainBody(chain: ChainDef): string {
  const parts: string[] = [];
  if (chain.base) {
    parts.push(`type ${chain.base.type} hook ${chain.base.hook} priority ${chain.base.priority};`);
    parts.push(`policy ${chain.base.policy ?? 'accept'};`);
  }
  if (chain.comment !== undefined) parts.push(`comment ${JSON.stringify(chain.comment)};`);
  return parts.length ? ` { ${parts.join(' ')} }` : '';
}

function setBody(set: SetDef, family: 'ip' | 'ip6'): string {
  const parts = [declaration(set, family)];
  const flags = [...(set.dynamic ? ['dynamic'] : []), ...(set.timeoutSeconds !== undefined ? ['timeout'] : [])];
  if (flags.length) parts.push(`flags ${flags.join(',')};`);
  if (set.timeoutSeconds !== undefined) parts.push(`timeout ${set.timeoutSeconds}s;`);
  if (set.comment !== undefined) parts.push(`comment ${JSON.stringify(set.comment)};`);
  return ` { ${parts.join(' ')} }`;
}

function declaration(set: SetDef, family: 'ip' | 'ip6'): string {
  if (set.data === 'endpoint') {
    if (set.keys.length !== 1 || set.keys[0] !== 'numgen') throw new NftablesTextError(`endpoint map ${set.name}: only a numgen key is supported`);
    return `typeof numgen random mod 1 : ${family} daddr . th dport;`;
  }
  if (set.keys.includes('numgen')) throw new NftablesTextError(`set ${set.name}: a numgen key needs endpoint data`);
  return `type ${set.keys.join(' . ')}${set.data === 'verdict' ? ' : verdict' : ''};`;
}

export class NftablesTextError extends PontoonError {}

function atomText(atom: KeyAtom): string {
  if ('ip' in atom) return formatIp(atom.ip);
  if ('proto' in atom) return atom.proto;
  if ('port' in atom) return String(atom.port);
  return String(atom.number);
}

/** An element key as nft writes it (`10.96.0.10 . tcp . 80`); also a stable map key. */
export const keyText = (key: readonly KeyAtom[]): string => key.map(atomText).join(' . ');

function elementText(element: Element): string {
  if (element.verdict) return `${keyText(element.key)} : ${verdictText(element.verdict)}`;
  if (element.endpoint) return `${keyText(element.key)} : ${formatIp(element.endpoint.ip)} . ${element.endpoint.port}`;
  return keyText(element.key);
}

function operationText(operation: Operation, family: 'ip' | 'ip6', table: string): string {
  const at = `${family} ${table}`;
  switch (operation.op) {
    case 'add-table':
      return `add table ${at}`;
    case 'delete-table':
      return `delete table ${at}`;
    case 'add-chain':
      return `add chain ${at} ${operation.chain.name}${chainBody(operation.chain)}`;
    case 'flush-chain':
      return `flush chain ${at} ${operation.name}`;
    case 'delete-chain':
      return `delete chain ${at} ${operation.name}`;
    case 'add-rule':
      return `add rule ${at} ${operation.chain} ${ruleText(operation.rule, family)}`;
    case 'add-set':
      return `add ${operation.set.data ? 'map' : 'set'} ${at} ${operation.set.name}${setBody(operation.set, family)}`;
    case 'flush-set':
      return `flush set ${at} ${operation.name}`;
    case 'delete-set':
      return `delete set ${at} ${operation.name}`;
    case 'add-elements':
      return operation.elements.length ? `add element ${at} ${operation.set} { ${operation.elements.map(elementText).join(', ')} }` : '';
    case 'delete-elements':
      return operation.keys.length ? `delete element ${at} ${operation.set} { ${operation.keys.map(keyText).join(', ')} }` : '';
  }
}

/** The transaction as an nft script (`nft -f` applies it as one transaction too). */
export function transactionText(transaction: Transaction): string {
  const lines: string[] = [];
  for (const operation of transaction.operations) {
    const line = operationText(operation, transaction.family, transaction.table);
    if (line) lines.push(line);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
