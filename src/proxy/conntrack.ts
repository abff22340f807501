/**
 * Conntrack cleanup for UDP Services — the kube-proxy bug users hit most: a UDP "flow"
 * lives in conntrack for as long as packets keep coming, so after its endpoint is gone a
 * client (a DNS resolver, say) keeps sending into the void. After every sync that removed
 * a UDP endpoint we delete the flows DNATed to it; when a UDP Service goes from no
 * endpoints to some, flows to its addresses that were made while it had none (no DNAT:
 * they went nowhere) are deleted so the next packet is load-balanced. TCP needs none of
 * this: a dead endpoint answers with a reset or times out and the client reconnects.
 */
import { CommandError, run } from '../lib/exec.js';
import { formatIp, type Ip } from '../lib/ip.js';
import { chooseEndpoints, servicePortKey, type Endpoint, type ServicePort } from './model.js';
import type { ServiceEntry } from './sink.js';

export interface FlowFilter {
  readonly protocol: 'udp' | 'sctp';
  readonly family: 4 | 6;
  readonly origDst?: Ip;
  readonly origDstPort: number;
  /** Only flows DNATed to this address. */
  readonly dnatTo?: Ip;
}

/** Deletes conntrack entries; returns how many went. */
export interface ConntrackApi {
  deleteFlows(filter: FlowFilter): number;
}

/** The `conntrack` tool (conntrack-tools), in the namespace the process runs in or `netns`. */
export class ConntrackTool implements ConntrackApi {
  constructor(private readonly netns?: string) {}

  deleteFlows(filter: FlowFilter): number {
    const args = ['-D', '-f', filter.family === 4 ? 'ipv4' : 'ipv6', '-p', filter.protocol, '--orig-port-dst', String(filter.origDstPort)];
    if (filter.origDst) args.push('--orig-dst', formatIp(filter.origDst));
    if (filter.dnatTo) args.push('--dst-nat', formatIp(filter.dnatTo));
    try {
      return deletedCount(run('conntrack', args, this.netns ? { netns: this.netns } : {}));
    } catch (err) {
      // conntrack exits 1 when it deleted nothing; that is not a failure.
      if (err instanceof CommandError && err.exitCode === 1 && /0 flow entries/.test(err.stderr)) return 0;
      throw err;
    }
  }
}

function deletedCount(output: string): number {
  return Number(/(\d+) flow entries have been deleted/.exec(output)?.[1] ?? 0);
}

const CONNTRACKED: ReadonlySet<string> = new Set(['UDP', 'SCTP']);

function addressesOf(port: ServicePort, family: 4 | 6): Ip[] {
  return [...port.clusterIPs, ...port.externalIPs, ...port.loadBalancerIPs].filter((ip) => ip.family === family);
}

/** Endpoints the rules send some traffic to. */
function inUse(port: ServicePort, endpoints: readonly Endpoint[], family: 4 | 6): Map<string, Ip> {
  const choice = chooseEndpoints(port, endpoints, family);
  const used = new Map<string, Ip>();
  for (const e of [...choice.internal, ...choice.external]) used.set(formatIp(e.ip), e.ip);
  return used;
}

/**
 * The flows to delete after a sync that took each changed Service from `before` to
 * `after` (undefined: the Service did not exist).
 */
export function staleFlows(changes: ReadonlyMap<string, { before?: ServiceEntry; after?: ServiceEntry }>, families: readonly (4 | 6)[]): FlowFilter[] {
  const filters: FlowFilter[] = [];
  for (const { before, after } of changes.values()) {
    for (const oldPort of before?.ports ?? []) {
      if (!CONNTRACKED.has(oldPort.protocol)) continue;
      const protocol = oldPort.protocol === 'UDP' ? 'udp' : 'sctp';
      const key = servicePortKey(oldPort);
      const newPort = after?.ports.find((p) => servicePortKey(p) === key);
      for (const family of families) {
        const was = inUse(oldPort, before?.endpoints.get(key) ?? [], family);
        const now = newPort ? inUse(newPort, after?.endpoints.get(key) ?? [], family) : new Map<string, Ip>();
        for (const [text, ip] of was) {
          if (now.has(text)) continue;
          for (const address of addressesOf(oldPort, family)) filters.push({ protocol, family, origDst: address, origDstPort: oldPort.port, dnatTo: ip });
          if (oldPort.nodePort !== undefined) filters.push({ protocol, family, origDstPort: oldPort.nodePort, dnatTo: ip });
        }
      }
    }
    for (const newPort of after?.ports ?? []) {
      if (!CONNTRACKED.has(newPort.protocol)) continue;
      const protocol = newPort.protocol === 'UDP' ? 'udp' : 'sctp';
      const key = servicePortKey(newPort);
      const oldPort = before?.ports.find((p) => servicePortKey(p) === key);
      for (const family of families) {
        const had = oldPort ? inUse(oldPort, before?.endpoints.get(key) ?? [], family).size > 0 : false;
        const has = inUse(newPort, after?.endpoints.get(key) ?? [], family).size > 0;
        if (had || !has) continue;
        for (const address of addressesOf(newPort, family)) filters.push({ protocol, family, origDst: address, origDstPort: newPort.port });
        if (newPort.nodePort !== undefined) filters.push({ protocol, family, origDstPort: newPort.nodePort });
      }
    }
  }
  return filters;
}
