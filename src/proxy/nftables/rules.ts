/**
 * The nftables mode's rules: an IPVS-like O(1) data path in our own table, `table ip
 * pontoon` (and `ip6 pontoon`), built as contributions (lib/nftables/book.ts) — one fixed
 * part, one per service port — so a changed Service rewrites only its own chains and
 * elements.
 *
 *   nat-prerouting / nat-output  →  services:
 *       ip daddr . meta l4proto . th dport vmap @service-ips      (cluster, external, LB IPs)
 *       fib daddr type local … meta l4proto . th dport vmap @service-nodeports
 *       (before them: traffic to @cluster-ips from outside the pod network is marked for
 *       masquerade — one rule for every Service)
 *   svc-<hash>-ns/name/proto/port   (every usable endpoint)
 *       affinity lookups; then one rule per endpoint: `numgen random mod (N-i) 0 … dnat to E` — the i-th rule takes 1/(N-i) of
 *       what is left, so each endpoint gets 1/N
 *   local-…   the node's own endpoints (internal/externalTrafficPolicy Local), or drop
 *   ext-…     node ports, external and LB IPs: masquerade and go to svc- (policy Cluster),
 *             or keep the client address and go to local- (policy Local)
 *   filter-*  (priority -110, before DNAT; -90 after it in output):
 *       @no-endpoint-services / @no-endpoint-nodeports → reject (TCP reset, else ICMP port
 *       unreachable); @cluster-ips not DNATed (a port the Service lacks) → reject
 *   nat-postrouting → masquerading: the mark bit, and @hairpin-endpoints (a pod reaching
 *       itself through its Service: saddr . daddr both the endpoint) → masquerade
 *
 * Design note: endpoints are chosen by a run of numgen rules in the service chain rather
 * than kube-proxy's anonymous `numgen … vmap { 0 : goto ep-a, … }`. An anonymous set per
 * Service made a 10k-Service load superlinear (the kernel scans a table's sets by name), and
 * per-endpoint chains tripled what the kernel re-validates on every commit (it walks every
 * chain reachable from the base chains whenever a rule or element with a jump is added):
 * a one-Service change took 60 ms at 10k Services with endpoint chains, ~12 ms without.
 * For the same reason the per-Service masquerade rule and hairpin rules, which kube-proxy
 * puts in every service and endpoint chain, are one set lookup each for all Services.
 */
import { formatIp, type IpFamily, type IpNet } from '../../lib/ip.js';
import type { ChainState, Contribution, SetElement } from '../../lib/nftables/book.js';
import type { ChainDef, KeyAtom, KeyType, NftFamily, Rule, Selector, SetDef, Statement } from '../../lib/nftables/ir.js';
import { DADDR, DPORT, L4PROTO, SADDR, goto, jump, match, rule, verdict } from '../../lib/nftables/ir.js';
import type { ProxyConfig } from '../config.js';
import type { Endpoint, EndpointChoice, Protocol, ServicePort } from '../model.js';
import { nftChains } from '../names.js';

export const NFT_TABLE = 'pontoon';

const PRIORITY_FILTER_PRE_DNAT = -110;
const PRIORITY_FILTER_POST_DNAT = -90;
const PRIORITY_DSTNAT = -100;
const PRIORITY_SRCNAT = 100;

export const SETS = {
  serviceIps: 'service-ips',
  serviceNodePorts: 'service-nodeports',
  clusterIps: 'cluster-ips',
  noEndpointServices: 'no-endpoint-services',
  noEndpointNodePorts: 'no-endpoint-nodeports',
  hairpin: 'hairpin-endpoints',
} as const;

/**
 * Endpoints of a service chain sit in an endpoint map at keys offset … offset+N-1, one
 * block of this size per chain (so up to 4096 endpoints per Service port).
 */
export const ENDPOINT_BLOCK = 4096;

/**
 * Blocks are spread over this many endpoint maps (`endpoints-00` … `endpoints-ff`, each
 * made when a chain first uses it). One map for all would make a large sync quadratic: the
 * kernel checks every new element against every rule that reads the map, and every new
 * reading rule against every element (measured: 3.8 s instead of 0.3 s at 10k Services).
 */
export const ENDPOINT_MAPS = 256;

export function endpointMapName(block: number): string {
  return `endpoints-${(block % ENDPOINT_MAPS).toString(16).padStart(2, '0')}`;
}

/** Gives each chain that picks endpoints from a map its block number. */
export type EndpointBlocks = (chain: string) => number;

/** Blocks fit the map's 32-bit keys: block × ENDPOINT_BLOCK stays below 2^32. */
const MAX_BLOCKS = 2 ** 32 / ENDPOINT_BLOCK;

/** The memo (ChainState.memo) of a chain that reads endpoint block `block`. */
export const blockMemo = (block: number): string => `block ${block}`;

/** The block a chain's memo names; undefined when it names none or one out of range. */
export function memoBlock(memo: string | undefined): number | undefined {
  const match = /^block (\d{1,7})$/.exec(memo ?? '');
  const block = match ? Number(match[1]) : NaN;
  return block < MAX_BLOCKS ? block : undefined;
}

const CHAINS = {
  services: 'services',
  markForMasquerade: 'mark-for-masquerade',
  masquerading: 'masquerading',
  serviceEndpointsCheck: 'service-endpoints-check',
  nodePortEndpointsCheck: 'nodeport-endpoints-check',
  clusterIpsCheck: 'cluster-ips-check',
} as const;

export const nftFamily = (family: IpFamily): NftFamily => (family === 4 ? 'ip' : 'ip6');
const addrType = (family: IpFamily): KeyType => (family === 4 ? 'ipv4_addr' : 'ipv6_addr');
const proto = (protocol: Protocol): 'tcp' | 'udp' | 'sctp' => protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
const FIB_SADDR_LOCAL: Statement = match({ sel: 'fib-saddr-type' }, { addrType: 'local' });
const SERVICE_KEY: readonly Selector[] = [DADDR, L4PROTO, DPORT];
const NODEPORT_KEY: readonly Selector[] = [L4PROTO, DPORT];

function chain(name: string, rules: readonly Rule[], base?: ChainDef['base']): { def: ChainDef; rules: readonly Rule[] } {
  return { def: base ? { name, base } : { name }, rules };
}

/** Loopback addresses never take node-port traffic (route_localnet stays off). */
function loopback(family: IpFamily): IpNet {
  return family === 4 ? { family: 4, value: 0x7f000000n, prefixLength: 8 } : { family: 6, value: 1n, prefixLength: 128 };
}

/**
 * Traffic to a cluster IP from outside the pod network must come back through this node,
 * so it is masqueraded (kube-proxy's per-Service "cluster IP" rule, here one rule for all
 * Services: @cluster-ips holds every cluster IP). With --masquerade-all all of it; without
 * a pod network to tell outside from inside, none. Marking traffic to a port the Service
 * lacks is harmless: cluster-ips-check rejects it.
 */
function clusterIpMasquerade(family: IpFamily, config: ProxyConfig): Rule[] {
  const toClusterIp: Statement = { st: 'lookup', keys: [DADDR], set: SETS.clusterIps };
  if (config.masqueradeAll) return [rule([toClusterIp, jump(CHAINS.markForMasquerade)], 'masquerade all traffic to cluster IPs')];
  const cidr = config.clusterCidrs.get(family);
  if (!cidr) return [];
  return [rule([match(SADDR, { net: cidr }, '!='), toClusterIp, jump(CHAINS.markForMasquerade)], 'masquerade traffic to cluster IPs from outside the pod network')];
}

/** The table's fixed part: base chains, the dispatch and check chains, the shared sets. */
export function staticContribution(family: IpFamily, config: ProxyConfig): Contribution {
  const addr = addrType(family);
  const sets: SetDef[] = [
    { name: SETS.serviceIps, keys: [addr, 'inet_proto', 'inet_service'], data: 'verdict', comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
    { name: SETS.serviceNodePorts, keys: ['inet_proto', 'inet_service'], data: 'verdict', comment: 'NodePort traffic' },
    { name: SETS.clusterIps, keys: [addr], comment: 'Active ClusterIPs' },
    { name: SETS.noEndpointServices, keys: [addr, 'inet_proto', 'inet_service'], comment: 'Services with no endpoints: rejected' },
    { name: SETS.noEndpointNodePorts, keys: ['inet_proto', 'inet_service'], comment: 'NodePorts with no endpoints: rejected' },
    { name: SETS.hairpin, keys: [addr, addr], comment: 'endpoint . endpoint: a pod reaching itself through a Service' },
  ];
  const newOnly = match({ sel: 'ct-state' }, { ctState: ['new'] });
  const rejectIfIn = (keys: readonly Selector[], set: string): Rule[] => [
    rule([match(L4PROTO, { proto: 'tcp' }), { st: 'lookup', keys, set }, { st: 'reject', tcpReset: true }]),
    rule([{ st: 'lookup', keys, set }, { st: 'reject' }]),
  ];
  const mark = config.masqueradeMark;
  return {
    sets,
    chains: [
      chain('filter-input', [rule([newOnly, jump(CHAINS.nodePortEndpointsCheck)]), rule([newOnly, jump(CHAINS.serviceEndpointsCheck)])], { type: 'filter', hook: 'input', priority: PRIORITY_FILTER_PRE_DNAT }),
      chain('filter-forward', [rule([newOnly, jump(CHAINS.serviceEndpointsCheck)]), rule([newOnly, jump(CHAINS.clusterIpsCheck)])], { type: 'filter', hook: 'forward', priority: PRIORITY_FILTER_PRE_DNAT }),
      chain('filter-output', [rule([newOnly, jump(CHAINS.serviceEndpointsCheck)])], { type: 'filter', hook: 'output', priority: PRIORITY_FILTER_PRE_DNAT }),
      chain('filter-output-post-dnat', [rule([newOnly, jump(CHAINS.clusterIpsCheck)])], { type: 'filter', hook: 'output', priority: PRIORITY_FILTER_POST_DNAT }),
      chain('nat-prerouting', [rule([jump(CHAINS.services)])], { type: 'nat', hook: 'prerouting', priority: PRIORITY_DSTNAT }),
      chain('nat-output', [rule([jump(CHAINS.services)])], { type: 'nat', hook: 'output', priority: PRIORITY_DSTNAT }),
      chain('nat-postrouting', [rule([jump(CHAINS.masquerading)])], { type: 'nat', hook: 'postrouting', priority: PRIORITY_SRCNAT }),
      chain(CHAINS.serviceEndpointsCheck, rejectIfIn(SERVICE_KEY, SETS.noEndpointServices)),
      chain(CHAINS.nodePortEndpointsCheck, rejectIfIn(NODEPORT_KEY, SETS.noEndpointNodePorts).map((r) => rule([match(DADDR, { net: loopback(family) }, '!='), ...r.statements]))),
      chain(CHAINS.clusterIpsCheck, [
        rule([match(L4PROTO, { proto: 'tcp' }), { st: 'lookup', keys: [DADDR], set: SETS.clusterIps }, { st: 'reject', tcpReset: true }], 'Reject traffic to invalid ports of ClusterIPs'),
        rule([{ st: 'lookup', keys: [DADDR], set: SETS.clusterIps }, { st: 'reject' }], 'Reject traffic to invalid ports of ClusterIPs'),
      ]),
      chain(CHAINS.services, [
        ...clusterIpMasquerade(family, config),
        rule([{ st: 'vmap', keys: SERVICE_KEY, map: SETS.serviceIps }]),
        rule([match({ sel: 'fib-daddr-type' }, { addrType: 'local' }), match(DADDR, { net: loopback(family) }, '!='), { st: 'vmap', keys: NODEPORT_KEY, map: SETS.serviceNodePorts }]),
      ]),
      chain(CHAINS.markForMasquerade, [rule([{ st: 'set-mark', op: 'or', value: mark }])]),
      chain(CHAINS.masquerading, [
        rule([{ st: 'lookup', keys: [SADDR, DADDR], set: SETS.hairpin }, jump(CHAINS.markForMasquerade)], 'hairpin: a pod reaching itself through a Service'),
        rule([{ st: 'match', left: { sel: 'mark' }, op: '==', right: { number: 0 }, mask: mark }, verdict('return')]),
        rule([{ st: 'set-mark', op: 'xor', value: mark }]),
        rule([{ st: 'masquerade', fullyRandom: true }]),
      ]),
    ],
  };
}

/**
 * The rules that pick one endpoint and DNAT to it, and the map elements they use:
 *   one endpoint:  `meta l4proto tcp dnat to E`
 *   N endpoints:   `meta l4proto tcp dnat ip to numgen random mod N offset B map
 *                  @endpoints-XX`, elements B … B+N-1 → endpoint — one rule and an O(1)
 *                  lookup however many endpoints, and an endpoint change is an element
 *                  change, which the kernel applies without re-validating the table
 *   affinity:      per endpoint `ip saddr @affinity-… update … dnat to E`, then the same
 *                  pick as a run of numgen rules (each remembering the client in its set)
 */
function endpointRules(
  port: ServicePort,
  chainName: string,
  all: readonly Endpoint[],
  affinity: ((e: Endpoint) => string) | undefined,
  blocks: EndpointBlocks,
): { rules: Rule[]; elements: SetElement[]; sets: SetDef[]; block?: number } {
  const endpoints = all.slice(0, ENDPOINT_BLOCK);
  const rules: Rule[] = [];
  const l4 = match(L4PROTO, { proto: proto(port.protocol) });
  const dnat = (e: Endpoint): Statement => ({ st: 'dnat', addr: e.ip, port: e.port });
  const to = (e: Endpoint): string => `${port.name} -> ${e.ip.family === 6 ? `[${formatAddr(e)}]` : formatAddr(e)}:${e.port}`;
  if (affinity) {
    const remember = (e: Endpoint): Statement => ({ st: 'set-update', set: affinity(e), keys: [SADDR] });
    for (const e of endpoints) rules.push(rule([{ st: 'lookup', keys: [SADDR], set: affinity(e) }, remember(e), l4, dnat(e)]));
    endpoints.forEach((e, i) => {
      const left = endpoints.length - i;
      const pick = left > 1 ? [match({ sel: 'numgen', modulus: left }, { number: 0 })] : [];
      rules.push(rule([...pick, remember(e), l4, dnat(e)], to(e)));
    });
    return { rules, elements: [], sets: [] };
  }
  const only = endpoints[0];
  if (endpoints.length === 1 && only) return { rules: [rule([l4, dnat(only)], to(only))], elements: [], sets: [] };
  const block = blocks(chainName);
  const map = endpointMapName(block);
  const offset = block * ENDPOINT_BLOCK;
  const pick: Selector = { sel: 'numgen', modulus: endpoints.length, offset };
  rules.push(rule([l4, { st: 'dnat-map', key: pick, map }], `${port.name}: ${endpoints.length} endpoints`));
  const elements = endpoints.map((e, i): SetElement => ({ set: map, element: { key: [{ number: offset + i }], endpoint: { ip: e.ip, port: e.port } } }));
  return { rules, elements, sets: [{ name: map, keys: ['numgen'], data: 'endpoint' }], block };
}

const formatAddr = (e: Endpoint): string => formatIp(e.ip);

/**
 * One service port's part of the table for one family: its chains, its map elements, and
 * its affinity sets. Empty when the Service has no cluster IP of this family.
 */
export function servicePortContribution(family: IpFamily, port: ServicePort, choice: EndpointChoice, config: ProxyConfig, blocks: EndpointBlocks): Contribution {
  const clusterIPs = port.clusterIPs.filter((ip) => ip.family === family);
  if (clusterIPs.length === 0) return {};
  const externalIPs = [...port.externalIPs, ...port.loadBalancerIPs].filter((ip) => ip.family === family);
  const p = proto(port.protocol);
  const elements: SetElement[] = [];
  const sets: SetDef[] = [];
  const chains: ChainState[] = [];
  const serviceKey = (ip: KeyAtom): KeyAtom[] => [ip, { proto: p }, { port: port.port }];
  for (const ip of clusterIPs) elements.push({ set: SETS.clusterIps, element: { key: [{ ip }] } });

  const hasNodePort = port.nodePort !== undefined;
  const hasExternal = hasNodePort || externalIPs.length > 0;
  if (!choice.any) {
    // No endpoint anywhere: every address of the Service rejects at once.
    for (const ip of [...clusterIPs, ...externalIPs]) elements.push({ set: SETS.noEndpointServices, element: { key: serviceKey({ ip }) } });
    if (hasNodePort) elements.push({ set: SETS.noEndpointNodePorts, element: { key: [{ proto: p }, { port: port.nodePort ?? 0 }] } });
    return { elements };
  }

  const affinitySeconds = port.affinitySeconds;
  const affinity = affinitySeconds === undefined ? undefined : (e: Endpoint): string => nftChains.affinity(port, e, affinitySeconds);
  const addr = addrType(family);
  const needed = new Set<Endpoint>();
  const clusterCidr = config.clusterCidrs.get(family);

  const svc = nftChains.svc(port);
  const local = nftChains.local(port);
  const ext = nftChains.ext(port);
  // The cluster chain serves cluster-IP traffic (policy Cluster) and every external path
  // (directly, or for pods and the node under ETP Local); the local chain the Local policies.
  const wantCluster = !port.internalPolicyLocal || hasExternal;
  const wantLocal = port.internalPolicyLocal || (hasExternal && port.externalPolicyLocal);

  const endpointChain = (name: string, endpoints: readonly Endpoint[]): void => {
    const picked = endpointRules(port, name, endpoints, affinity, blocks);
    chains.push(picked.block === undefined ? chain(name, picked.rules) : { ...chain(name, picked.rules), memo: blockMemo(picked.block) });
    elements.push(...picked.elements);
    sets.push(...picked.sets);
  };
  if (wantCluster) {
    endpointChain(svc, choice.cluster);
    for (const e of choice.cluster) needed.add(e);
  }
  if (wantLocal) {
    if (choice.local.length > 0) endpointChain(local, choice.local);
    else chains.push(chain(local, [rule([verdict('drop')], `${port.name} has no local endpoints`)]));
    for (const e of choice.local) needed.add(e);
  }
  const internalTarget = port.internalPolicyLocal ? local : svc;
  for (const ip of clusterIPs) elements.push({ set: SETS.serviceIps, element: { key: serviceKey({ ip }), verdict: { kind: 'goto', chain: internalTarget } } });

  if (hasExternal) {
    const rules: Rule[] = port.externalPolicyLocal
      ? [
          // Pods and the node itself reach external addresses like cluster IPs (and the node
          // is masqueraded); only traffic from outside keeps its address and stays local.
          ...(clusterCidr ? [rule([match(SADDR, { net: clusterCidr }), goto(svc)], `pod traffic for ${port.name} external destinations`)] : []),
          rule([FIB_SADDR_LOCAL, jump(CHAINS.markForMasquerade)], `masquerade local traffic for ${port.name} external destinations`),
          rule([FIB_SADDR_LOCAL, goto(svc)], `route local traffic for ${port.name} external destinations`),
          rule([goto(local)]),
        ]
      : [rule([jump(CHAINS.markForMasquerade)], `masquerade traffic for ${port.name} external destinations`), rule([goto(svc)])];
    chains.push(chain(ext, rules));
    for (const ip of externalIPs) elements.push({ set: SETS.serviceIps, element: { key: serviceKey({ ip }), verdict: { kind: 'goto', chain: ext } } });
    if (hasNodePort) elements.push({ set: SETS.serviceNodePorts, element: { key: [{ proto: p }, { port: port.nodePort ?? 0 }], verdict: { kind: 'goto', chain: ext } } });
  }

  for (const e of needed) {
    // Only a pod on this node can reach itself through this node's rules.
    if (e.local) elements.push({ set: SETS.hairpin, element: { key: [{ ip: e.ip }, { ip: e.ip }] } });
    if (affinity && affinitySeconds !== undefined) sets.push({ name: affinity(e), keys: [addr], dynamic: true, timeoutSeconds: affinitySeconds });
  }
  return { sets, chains, elements };
}

