/**
 * flannel's --ip-masq rules: masquerade pod traffic leaving the pod network, never traffic
 * between pods, and let forwarded pod traffic through a DROP-policy FORWARD chain. Each lives
 * in a chain of its own, rewritten whole (iptables-restore declares the chain, which flushes
 * it) only when its rules differ from the wanted ones, entered by one jump rule added only if
 * missing. A sync that finds the rules in place writes nothing: a restarted flanneld, or the
 * periodic resync, must not flush and re-add them (nft monitor showed every resync deleting
 * and re-adding both chains).
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

/** Makes `chain` hold exactly `rules` and be jumped to from `from`; writes only what differs. */
function ensureChain(family: IpNet['family'], table: string, from: string, chain: string, rules: readonly string[], jumpComment: string): void {
  const script = [`*${table}`];
  const current = listRules(family, table, chain);
  // `iptables -S` prints rules as we write them (same match order, quoting and spacing).
  if (current.length !== rules.length || current.some((line, i) => line !== rules[i])) script.push(`:${chain} - [0:0]`, ...rules);
  if (!hasJump(family, table, from, chain)) script.push(`-A ${from} ${jumpComment} -j ${chain}`);
  if (script.length > 1) restoreNoFlush(family, [...script, 'COMMIT', ''].join('\n'));
}

/** Installs or refreshes the rules in the current namespace. */
export function syncIpMasq(network: IpNet, subnet: IpNet): void {
  const family = network.family;
  ensureChain(family, 'nat', 'POSTROUTING', POSTROUTING_CHAIN, masqRules(network, subnet), COMMENT);
  const net = formatIpNet(network);
  const forward = '-m comment --comment "flanneld forward"';
  ensureChain(family, 'filter', 'FORWARD', FORWARD_CHAIN, [`-A ${FORWARD_CHAIN} -s ${net} ${forward} -j ACCEPT`, `-A ${FORWARD_CHAIN} -d ${net} ${forward} -j ACCEPT`], forward);
}

