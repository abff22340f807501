/**
 * Evaluates `iptables-save -c` text against one Packet: built-in chains of a table, user
 * chains by -j/-g, first match wins, with the matches and targets flannel's masquerade,
 * kube-proxy's iptables mode and hand-written DROP/REJECT rules use. A match this does not
 * model makes the rule "not evaluated" (skipped, and named), never guessed.
 */
import { netContains, parseIpNet, tryParseIp } from '../../lib/ip.js';
import type { HookContext, NetfilterOutcome, RuleHit } from './nft-eval.js';
import type { Packet } from './packet.js';

interface IptRule {
  chain: string;
  args: string[];
  counter: { packets: number; bytes: number };
  line: string;
  index: number;
}

interface IptTable {
  policies: Map<string, string>;
  rules: Map<string, IptRule[]>;
}

/** Splits an iptables-save line into words, keeping "quoted strings" whole. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  return out;
}

export class IptablesRules {
  private readonly tables = new Map<string, IptTable>();

  constructor(save: string) {
    let table: IptTable | undefined;
    for (const raw of save.split('\n')) {
      const line = raw.trim();
      if (line.startsWith('*')) {
        table = { policies: new Map(), rules: new Map() };
        this.tables.set(line.slice(1), table);
      } else if (line.startsWith(':') && table) {
        const [name, policy] = line.slice(1).split(/\s+/);
        if (name) {
          table.policies.set(name, policy ?? '-');
          table.rules.set(name, []);
        }
      } else if (table && /^(\[\d+:\d+\]\s+)?-A\s/.test(line)) {
        const counterMatch = /^\[(\d+):(\d+)\]\s+/.exec(line);
        const rest = counterMatch ? line.slice(counterMatch[0].length) : line;
        const args = words(rest);
        const chain = args[1] ?? '';
        const list = table.rules.get(chain) ?? [];
        list.push({ chain, args: args.slice(2), counter: { packets: Number(counterMatch?.[1] ?? 0), bytes: Number(counterMatch?.[2] ?? 0) }, line: rest, index: list.length + 1 });
        table.rules.set(chain, list);
      }
    }
  }

  has(table: string): boolean {
    return this.tables.has(table);
  }

  /** Runs a built-in chain of a table (PREROUTING, FORWARD, ...); changes the packet in place. */
  runChain(tableName: string, chainName: string, packet: Packet, context: HookContext, outcome: NetfilterOutcome): 'accept' | 'drop' | 'reject' {
    const table = this.tables.get(tableName);
    if (!table || !table.rules.has(chainName)) return 'accept';
    const result = this.walk(table, tableName, chainName, packet, context, outcome, 0);
    if (result === 'continue' || result === 'return') {
      if (table.policies.get(chainName) === 'DROP') {
        outcome.killer = { where: `iptables -t ${tableName} chain ${chainName}`, text: 'policy DROP' };
        return 'drop';
      }
      return 'accept';
    }
    return result;
  }

  private walk(table: IptTable, tableName: string, chainName: string, packet: Packet, context: HookContext, outcome: NetfilterOutcome, depth: number): 'accept' | 'drop' | 'reject' | 'return' | 'continue' {
    if (depth > 32) return 'continue';
    for (const rule of table.rules.get(chainName) ?? []) {
      const hit: RuleHit = { where: `iptables -t ${tableName} chain ${chainName} rule ${rule.index}`, text: rule.line, counter: rule.counter };
      const comment = argAfter(rule.args, '--comment');
      if (comment) hit.comment = comment;
      const matched = this.matches(rule.args, packet, context);
      if (matched === undefined) {
        outcome.unknown.push(hit);
        continue;
      }
      if (!matched) continue;
      const jump = argAfter(rule.args, '-j');
      const gotoTarget = argAfter(rule.args, '-g');
      const target = jump ?? gotoTarget;
      if (!target) continue; // a rule without a target only counts
      // A Service chain's random pick: follow the endpoint asked for, when one is.
      if (context.preferEndpoint && /^KUBE-SV[CL]-/.test(chainName) && target.startsWith('KUBE-SEP-') && !this.endpointsOf(table, chainName, target).includes(context.preferEndpoint)) continue;
      outcome.hits.push(hit);
      switch (target) {
        case 'ACCEPT':
          return 'accept';
        case 'DROP':
          outcome.killer = hit;
          return 'drop';
        case 'REJECT':
          outcome.killer = hit;
          return 'reject';
        case 'RETURN':
          return 'return';
        case 'MASQUERADE':
        case 'SNAT':
          outcome.masquerade = hit;
          return 'accept';
        case 'DNAT': {
          const to = argAfter(rule.args, '--to-destination') ?? '';
          const [ip, port] = to.split(':');
          if (ip) packet.dst = ip;
          if (port) packet.dport = Number(port);
          const candidates = outcome.dnat?.candidates ?? [to];
          outcome.dnat = { to: ip ?? packet.dst, candidates, ...(port ? { port: Number(port) } : {}) };
          return 'accept';
        }
        case 'MARK': {
          const xmark = argAfter(rule.args, '--set-xmark');
          const or = argAfter(rule.args, '--or-mark');
          if (xmark) {
            const [value, mask] = xmark.split('/').map((v) => Number(v));
            packet.mark = (((packet.mark & ~(mask ?? 0xffffffff)) >>> 0) ^ (value ?? 0)) >>> 0;
          } else if (or) packet.mark = (packet.mark | Number(or)) >>> 0;
          continue;
        }
        case 'LOG':
        case 'TRACE':
        case 'CT':
        case 'NOTRACK':
          continue;
        default: {
          if (!table.rules.has(target)) {
            outcome.unknown.push(hit);
            continue;
          }
          // kube-proxy's Service chain picks an endpoint chain at random: all are candidates.
          if (target.startsWith('KUBE-SVC-') || target.startsWith('KUBE-SVL-')) {
            outcome.dnat = { to: packet.dst, candidates: this.endpointsOf(table, target) };
          }
          const at = outcome.hits.length;
          const result = this.walk(table, tableName, target, packet, context, outcome, depth + 1);
          // A jump is shown only when something in the target chain mattered.
          if (outcome.hits.length === at && outcome.killer === undefined) outcome.hits.splice(outcome.hits.indexOf(hit), 1);
          if (gotoTarget) return result === 'continue' ? 'return' : result;
          if (result !== 'return' && result !== 'continue') return result;
        }
      }
    }
    return 'continue';
  }

  private endpointsOf(table: IptTable, chain: string, only?: string): string[] {
    return (table.rules.get(chain) ?? []).flatMap((rule) => {
      const sep = argAfter(rule.args, '-j');
      if (!sep?.startsWith('KUBE-SEP-') || (only !== undefined && sep !== only)) return [];
      return (table.rules.get(sep) ?? []).flatMap((r) => argAfter(r.args, '--to-destination') ?? []);
    });
  }

  /** true/false, or undefined when a match is not modelled. */
  private matches(args: string[], packet: Packet, context: HookContext): boolean | undefined {
    let negate = false;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i] ?? '';
      const next = args[i + 1] ?? '';
      if (arg === '!') {
        negate = true;
        continue;
      }
      let result: boolean | undefined;
      // Most options take one value; the flags below that take none set 1.
      let consumed = 2;
      switch (arg) {
        case '-s':
        case '-d':
          result = inNet(arg === '-s' ? packet.src : packet.dst, next);
          break;
        case '-p':
          result = next === packet.proto || next === 'all';
          break;
        case '-i':
        case '-o': {
          const dev = (arg === '-i' ? context.iif : context.oif) ?? '';
          result = next.endsWith('+') ? dev.startsWith(next.slice(0, -1)) : dev === next;
          break;
        }
        case '--dport':
        case '--dports':
          result = next.split(',').some((p) => portIn(packet.dport, p));
          break;
        case '--sport':
          result = portIn(packet.sport, next);
          break;
        case '--ctstate':
        case '--state':
          result = next.split(',').includes('NEW');
          break;
        case '--mark': {
          const [value, mask] = next.split('/').map((v) => Number(v));
          result = ((packet.mark & (mask ?? 0xffffffff)) >>> 0) === (value ?? 0);
          break;
        }
        case '--dst-type':
        case '--src-type': {
          const address = arg === '--dst-type' ? packet.dst : packet.src;
          result = next === 'LOCAL' ? context.isLocal(address) : undefined;
          break;
        }
        case '--mode':
        case '--probability':
        case '--every':
        case '--packet':
        case '-j':
        case '-g':
        case '--to-destination':
        case '--set-xmark':
        case '--or-mark':
        case '--reject-with':
        case '--log-prefix':
        case '--to-source':
        case '--comment':
          result = true;
          break;
        case '-m':
          if (next === 'tcp' || next === 'udp' || next === 'comment' || next === 'conntrack' || next === 'state' || next === 'mark' || next === 'addrtype' || next === 'statistic' || next === 'multiport' || next === 'icmp') {
            result = true;
            break;
          }
          return undefined;
        case '--random-fully':
        case '--random':
        case '--persistent':
          consumed = 1;
          result = true;
          break;
        default:
          return undefined;
      }
      if (result === undefined) return undefined;
      if (negate) result = !result;
      negate = false;
      if (!result) return false;
      i += consumed - 1;
    }
    return true;
  }
}

function argAfter(args: readonly string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at >= 0 ? args[at + 1] : undefined;
}

function inNet(ip: string, cidr: string): boolean {
  const address = tryParseIp(ip);
  if (!address) return false;
  const net = parseIpNet(cidr.includes('/') ? cidr : `${cidr}/32`);
  return net.family === address.family && netContains(net, address);
}

function portIn(port: number | undefined, spec: string): boolean {
  if (port === undefined) return false;
  const [low, high] = spec.split(':').map(Number);
  return high === undefined ? port === low : port >= (low ?? 0) && port <= high;
}

