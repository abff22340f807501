/**
 * The iptables mode's rules, in kube-proxy's layout and spelling, so `iptables-save`, the
 * blog posts and the debugging habits people have all apply:
 *
 *   nat  PREROUTING/OUTPUT → KUBE-SERVICES: one rule per cluster/external/LB IP and port
 *          → KUBE-SVC-<hash>  masquerade from outside the pod network, then one rule per
 *            endpoint with `-m statistic --mode random --probability 1/(N-i)` (affinity:
 *            `-m recent --rcheck` first) → KUBE-SEP-<hash>: hairpin masquerade, DNAT
 *          → KUBE-EXT-<hash> for node ports and external IPs (masquerade, or under ETP Local
 *            short-circuit pods and the node and otherwise → KUBE-SVL-<hash>, local only)
 *        last rule: `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
 *       POSTROUTING → KUBE-POSTROUTING: masquerade what carries mark 0x4000
 *  filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES: REJECT Services without endpoints
 *         (DROP where only local endpoints count and there are none); KUBE-NODEPORTS
 *         accepts health-check node ports; KUBE-FORWARD accepts marked and established
 *         traffic.
 * Rule text is in iptables-save's order (addresses, protocol, then matches), so what we
 * write is what `iptables-save` prints back, byte for byte; a kernel test checks.
 */
import { formatIp, formatIpNet, type Ip, type IpFamily } from '../../lib/ip.js';
import type { IptablesChain, IptablesContribution, IptablesLine, SharedChain } from '../../lib/iptables-book.js';
import type { ProxyConfig } from '../config.js';
import type { Endpoint, EndpointChoice, ServicePort } from '../model.js';
import { endpointText } from '../model.js';
import { iptablesChains } from '../names.js';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
const KUBE_FORWARD = 'KUBE-FORWARD';

const hexMark = (mark: number): string => `0x${mark.toString(16)}`;
const host = (ip: Ip): string => `${formatIp(ip)}/${ip.family === 4 ? 32 : 128}`;
const comment = (text: string): string => `-m comment --comment "${text}"`;
const loopback = (family: IpFamily): string => (family === 4 ? '127.0.0.0/8' : '::1/128');

/** The shared chains, each with the rules that must stay last. */
export function sharedChains(family: IpFamily): SharedChain[] {
  return [
    {
      table: 'nat',
      name: KUBE_SERVICES,
      trailer: [`! -d ${loopback(family)} ${comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL -j ${KUBE_NODEPORTS}`],
    },
    { table: 'nat', name: KUBE_NODEPORTS },
    { table: 'filter', name: KUBE_SERVICES },
    { table: 'filter', name: KUBE_EXTERNAL_SERVICES },
    { table: 'filter', name: KUBE_NODEPORTS },
  ];
}

/** The jumps from the built-in chains into ours: [table, chain, rule]. */
export function builtinJumps(): [string, string, string][] {
  const portals = comment('kubernetes service portals');
  const external = comment('kubernetes externally-visible service portals');
  return [
    ['nat', 'PREROUTING', `${portals} -j ${KUBE_SERVICES}`],
    ['nat', 'OUTPUT', `${portals} -j ${KUBE_SERVICES}`],
    ['nat', 'POSTROUTING', `${comment('kubernetes postrouting rules')} -j ${KUBE_POSTROUTING}`],
    ['filter', 'INPUT', `-m conntrack --ctstate NEW ${external} -j ${KUBE_EXTERNAL_SERVICES}`],
    ['filter', 'INPUT', `${comment('kubernetes health check service ports')} -j ${KUBE_NODEPORTS}`],
    ['filter', 'FORWARD', `${comment('kubernetes forwarding rules')} -j ${KUBE_FORWARD}`],
    ['filter', 'FORWARD', `-m conntrack --ctstate NEW ${portals} -j ${KUBE_SERVICES}`],
    ['filter', 'FORWARD', `-m conntrack --ctstate NEW ${external} -j ${KUBE_EXTERNAL_SERVICES}`],
    ['filter', 'OUTPUT', `-m conntrack --ctstate NEW ${portals} -j ${KUBE_SERVICES}`],
  ];
}

export function staticContribution(config: ProxyConfig): IptablesContribution {
  const mark = hexMark(config.masqueradeMark);
  return {
    chains: [
      { table: 'nat', name: KUBE_MARK_MASQ, rules: [`-j MARK --set-xmark ${mark}/${mark}`] },
      {
        table: 'nat',
        name: KUBE_POSTROUTING,
        rules: [`-m mark ! --mark ${mark}/${mark} -j RETURN`, `-j MARK --set-xmark ${mark}/0x0`, `${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully`],
      },
      {
        table: 'filter',
        name: KUBE_FORWARD,
        rules: [
          `${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`,
          `${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        ],
      },
    ],
  };
}

/**
 * 1/(N-i) as the statistic match keeps it — a 31-bit fraction, printed by iptables-save
 * with 11 decimals — so what we write is what iptables-save prints back (kube-proxy writes
 * 10 decimals, which the kernel rounds the same way).
 */
export function probability(remaining: number): string {
  return (Math.round(0x80000000 / remaining) / 0x80000000).toFixed(11);
}

function endpointChainRules(port: ServicePort, endpoints: readonly Endpoint[]): string[] {
  const rules: string[] = [];
  const recent = (e: Endpoint): string => `--name ${iptablesChains.sep(port, e)} --mask ${e.ip.family === 4 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rsource`;
  if (port.affinitySeconds !== undefined) {
    for (const e of endpoints) {
      rules.push(`${comment(`${port.name} -> ${endpointText(e)}`)} -m recent --rcheck --seconds ${port.affinitySeconds} --reap ${recent(e)} -j ${iptablesChains.sep(port, e)}`);
    }
  }
  endpoints.forEach((e, i) => {
    const left = endpoints.length - i;
    const pick = left > 1 ? ` -m statistic --mode random --probability ${probability(left)}` : '';
    rules.push(`${comment(`${port.name} -> ${endpointText(e)}`)}${pick} -j ${iptablesChains.sep(port, e)}`);
  });
  return rules;
}

/** One service port's chains and its rules in the shared chains, for one family. */
export function servicePortContribution(family: IpFamily, port: ServicePort, choice: EndpointChoice, config: ProxyConfig): IptablesContribution {
  const clusterIPs = port.clusterIPs.filter((ip) => ip.family === family);
  if (clusterIPs.length === 0) return {};
  const externalIPs = port.externalIPs.filter((ip) => ip.family === family);
  const lbIPs = port.loadBalancerIPs.filter((ip) => ip.family === family);
  const p = port.protocol.toLowerCase();
  const chains: IptablesChain[] = [];
  const lines: IptablesLine[] = [];
  const svc = iptablesChains.svc(port);
  const svl = iptablesChains.svl(port);
  const ext = iptablesChains.ext(port);
  const clusterCidr = config.clusterCidrs.get(family);
  const hasNodePort = port.nodePort !== undefined;
  const hasExternal = hasNodePort || externalIPs.length > 0 || lbIPs.length > 0;
  const reject = `-j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`;
  // Where the endpoints a kind of traffic may use are none: REJECT when the Service has no
  // endpoints at all, DROP when only the local ones count and this node has none.
  const filterTarget = choice.any ? { target: '-j DROP', why: 'has no local endpoints' } : { target: reject, why: 'has no endpoints' };
  const to = (ip: Ip): string => `-d ${host(ip)} -p ${p}`;
  const dport = `-m ${p} --dport ${port.port}`;

  // Cluster IP.
  const internalTarget = port.internalPolicyLocal ? svl : svc;
  for (const ip of clusterIPs) {
    if (choice.internal.length > 0) {
      lines.push({ table: 'nat', chain: KUBE_SERVICES, rule: `${to(ip)} ${comment(`${port.name} cluster IP`)} ${dport} -j ${internalTarget}` });
    } else {
      lines.push({ table: 'filter', chain: KUBE_SERVICES, rule: `${to(ip)} ${comment(`${port.name} ${filterTarget.why}`)} ${dport} ${filterTarget.target}` });
    }
  }
  // External and load-balancer IPs and the node port, as kube-proxy does: the nat jump to
  // KUBE-EXT whenever the Service has endpoints (pods and the node may still be served),
  // and a filter rule for what is left undelivered when no external endpoint exists.
  const noExternal = choice.external.length === 0;
  for (const [ips, what] of [
    [externalIPs, 'external IP'],
    [lbIPs, 'loadbalancer IP'],
  ] as const) {
    for (const ip of ips) {
      if (choice.any) lines.push({ table: 'nat', chain: KUBE_SERVICES, rule: `${to(ip)} ${comment(`${port.name} ${what}`)} ${dport} -j ${ext}` });
      if (noExternal) lines.push({ table: 'filter', chain: KUBE_EXTERNAL_SERVICES, rule: `${to(ip)} ${comment(`${port.name} ${filterTarget.why}`)} ${dport} ${filterTarget.target}` });
    }
  }
  if (hasNodePort) {
    if (choice.any) lines.push({ table: 'nat', chain: KUBE_NODEPORTS, rule: `-p ${p} ${comment(port.name)} -m ${p} --dport ${port.nodePort} -j ${ext}` });
    if (noExternal) {
      lines.push({ table: 'filter', chain: KUBE_EXTERNAL_SERVICES, rule: `-p ${p} ${comment(`${port.name} ${filterTarget.why}`)} -m addrtype --dst-type LOCAL -m ${p} --dport ${port.nodePort} ${filterTarget.target}` });
    }
  }
  if (port.healthCheckNodePort !== undefined) {
    lines.push({ table: 'filter', chain: KUBE_NODEPORTS, rule: `-p tcp ${comment(`${port.name} health check node port`)} -m tcp --dport ${port.healthCheckNodePort} -j ACCEPT` });
  }
  if (!choice.any) return { lines };

  // Service chains, and an endpoint chain for every endpoint one of them uses.
  const used = new Map<string, Endpoint>();
  const usesCluster = !port.internalPolicyLocal || hasExternal;
  const usesLocal = port.internalPolicyLocal || (hasExternal && port.externalPolicyLocal);
  if (usesCluster) {
    // Without a pod network to tell outside from inside (and no --masquerade-all), none.
    const from = config.masqueradeAll ? '' : clusterCidr ? `! -s ${formatIpNet(clusterCidr)} ` : undefined;
    const masquerade = from === undefined ? [] : clusterIPs.map((ip) => `${from}${to(ip)} ${comment(`${port.name} cluster IP`)} ${dport} -j ${KUBE_MARK_MASQ}`);
    chains.push({ table: 'nat', name: svc, rules: [...masquerade, ...endpointChainRules(port, choice.cluster)] });
    for (const e of choice.cluster) used.set(endpointText(e), e);
  }
  if (usesLocal) {
    chains.push({ table: 'nat', name: svl, rules: endpointChainRules(port, choice.local) });
    for (const e of choice.local) used.set(endpointText(e), e);
  }
  if (hasExternal) {
    const rules = port.externalPolicyLocal
      ? [
          ...(clusterCidr ? [`-s ${formatIpNet(clusterCidr)} ${comment(`pod traffic for ${port.name} external destinations`)} -j ${svc}`] : []),
          `${comment(`masquerade LOCAL traffic for ${port.name} external destinations`)} -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`,
          `${comment(`route LOCAL traffic for ${port.name} external destinations`)} -m addrtype --src-type LOCAL -j ${svc}`,
          `-j ${svl}`,
        ]
      : [`${comment(`masquerade traffic for ${port.name} external destinations`)} -j ${KUBE_MARK_MASQ}`, `-j ${svc}`];
    chains.push({ table: 'nat', name: ext, rules });
  }
  for (const e of used.values()) {
    const sep = iptablesChains.sep(port, e);
    const affinity = port.affinitySeconds !== undefined ? ` -m recent --set --name ${sep} --mask ${e.ip.family === 4 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rsource` : '';
    chains.push({
      table: 'nat',
      name: sep,
      rules: [`-s ${host(e.ip)} ${comment(port.name)} -j ${KUBE_MARK_MASQ}`, `-p ${p} ${comment(port.name)}${affinity} -m ${p} -j DNAT --to-destination ${endpointText(e)}`],
    });
  }
  return { chains, lines };
}
