/**
 * flannel's --ip-masq rules: masquerade pod traffic leaving the pod network, never traffic
 * between pods, and let forwarded pod traffic through a DROP-policy FORWARD chain. Each lives
 * in a chain of its own that is rewritten whole on every sync (iptables-restore declares the
 * chain, which flushes it), entered by one jump rule added only if missing.
 */
import { listRules, restoreNoFlush } from '../lib/iptables.js';
import { formatIpNet, type IpNet } from '../lib/ip.js';

export const POSTROUTING_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
const COMMENT = '-m comment --comment "flanneld masq"';

export function masqRules(network: IpNet, subnet: IpNet): string[] {
  const net = formatIpNet(network);
  const mine = formatIpNet(subnet);
  const multicast = network.family === 4 ? '224.0.0.0/4' : 'ff00::/8';
  return [
    `-A ${POSTROUTING_CHAIN} -s ${net} -d ${net} ${COMMENT} -j RETURN`,
    `-A ${POSTROUTING_CHAIN} -s ${net} ! -d ${multicast} ${COMMENT} -j MASQUERADE --random-fully`,
    `-A ${POSTROUTING_CHAIN} ! -s ${net} -d ${mine} ${COMMENT} -j RETURN`,
    `-A ${POSTROUTING_CHAIN} ! -s ${net} -d ${net} ${COMMENT} -j MASQUERADE --random-fully`,
  ];
}

/** Reads only the built-in chain (a node running the iptables proxy has a huge nat table). */
function hasJump(family: IpNet['family'], table: string, from: string, to: string): boolean {
  return listRules(family, table, from).some((line) => line.endsWith(`-j ${to}`));
}

/** Installs or refreshes the rules in the current namespace. */
export function syncIpMasq(network: IpNet, subnet: IpNet): void {
  const family = network.family;
  const natScript = ['*nat', `:${POSTROUTING_CHAIN} - [0:0]`, ...masqRules(network, subnet)];
  if (!hasJump(family, 'nat', 'POSTROUTING', POSTROUTING_CHAIN)) natScript.push(`-A POSTROUTING ${COMMENT} -j ${POSTROUTING_CHAIN}`);
  restoreNoFlush(family, [...natScript, 'COMMIT', ''].join('\n'));

  const net = formatIpNet(network);
  const filterScript = [
    '*filter',
    `:${FORWARD_CHAIN} - [0:0]`,
    `-A ${FORWARD_CHAIN} -s ${net} -m comment --comment "flanneld forward" -j ACCEPT`,
    `-A ${FORWARD_CHAIN} -d ${net} -m comment --comment "flanneld forward" -j ACCEPT`,
  ];
  if (!hasJump(family, 'filter', 'FORWARD', FORWARD_CHAIN)) filterScript.push(`-A FORWARD -m comment --comment "flanneld forward" -j ${FORWARD_CHAIN}`);
  restoreNoFlush(family, [...filterScript, 'COMMIT', ''].join('\n'));
}

