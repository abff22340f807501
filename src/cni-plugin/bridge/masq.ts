/**
 * Masquerade for traffic leaving the pod network, in the reference plugin's shape: one chain
 * per attachment that accepts traffic to the pod's own subnet and masquerades the rest
 * (multicast excepted), entered from POSTROUTING by the pod's source address. Rules are made
 * in the namespace the plugin runs in (the node's), and found again by chain name on DEL.
 */
import { chainRules, listRules, restoreNoFlush } from '../../lib/iptables.js';
import { formatIp, formatIpNet, type IpFamily, type IpNet, networkOf } from '../../lib/ip.js';
import { crypto } from '../../lib/lazy.js';

const CHAIN_PREFIX = 'PONTOON-';

/** iptables chain names are at most 28 characters: the prefix plus 20 hex digits. */
export function masqChainName(network: string, containerId: string, ifname: string): string {
  const digest = crypto()
    .createHash('sha256').update(`${network}\0${containerId}\0${ifname}`).digest('hex');
  return `${CHAIN_PREFIX}${digest.slice(0, 28 - CHAIN_PREFIX.length)}`;
}

export function masqComment(network: string, containerId: string): string {
  return `name: ${network} id: ${containerId}`;
}

export function setupMasq(chain: string, comment: string, addresses: readonly IpNet[]): void {
  for (const family of [4, 6] as const) {
    const mine = addresses.filter((address) => address.family === family);
    if (mine.length === 0) continue;
    const multicast = family === 4 ? '224.0.0.0/4' : 'ff00::/8';
    const host = family === 4 ? 32 : 128;
    const lines = ['*nat', `:${chain} - [0:0]`];
    for (const address of mine) {
      lines.push(`-A ${chain} -d ${formatIpNet(networkOf(address))} -m comment --comment "${comment}" -j ACCEPT`);
    }
    lines.push(`-A ${chain} ! -d ${multicast} -m comment --comment "${comment}" -j MASQUERADE`);
    for (const address of mine) {
      lines.push(`-A POSTROUTING -s ${formatIp(address)}/${host} -m comment --comment "${comment}" -j ${chain}`);
    }
    lines.push('COMMIT', '');
    restoreNoFlush(family, lines.join('\n'));
  }
}

/**
 * Removes the chains and every POSTROUTING jump into them; absent rules are fine. Reads
 * POSTROUTING and the chains themselves, never the whole nat table (which holds the service
 * proxy's rules too: seconds to save at 10k Services, for every pod deleted).
 */
export function teardownMasq(chains: ReadonlySet<string>, families: readonly IpFamily[] = [4, 6]): void {
  for (const family of families) {
    let postrouting: string[];
    try {
      postrouting = listRules(family, 'nat', 'POSTROUTING');
    } catch {
      continue; // no such table or tool for this family: nothing of ours can be there
    }
    const present = [...chains].filter((chain) => chainRules(family, 'nat', chain) !== undefined);
    const removal = removalFor(postrouting, present, chains);
    if (removal) restoreNoFlush(family, removal);
  }
}

/** Masquerade chains of `network` whose container is not in `liveContainers` (for GC). */
export function staleMasqChains(network: string, liveContainers: ReadonlySet<string>, family: IpFamily): Set<string> {
  let postrouting: string[];
  try {
    postrouting = listRules(family, 'nat', 'POSTROUTING');
  } catch {
    return new Set();
  }
  const stale = new Set<string>();
  for (const [chain, owner] of masqChainsOf(postrouting)) {
    if (owner.network === network && !liveContainers.has(owner.containerId)) stale.add(chain);
  }
  return stale;
}

/**
 * A restore script deleting the chains that exist (`present`) and the POSTROUTING jumps into
 * any of `chains`; undefined when there is nothing to remove.
 */
export function removalFor(postrouting: readonly string[], present: readonly string[], chains: ReadonlySet<string>): string | undefined {
  const jumps = postrouting.filter((line) => {
    const target = / -j (\S+)$/.exec(line)?.[1];
    return target !== undefined && chains.has(target);
  });
  if (jumps.length === 0 && present.length === 0) return undefined;
  const lines = ['*nat', ...jumps.map((line) => line.replace(/^-A /, '-D '))];
  for (const chain of present) lines.push(`-F ${chain}`, `-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Our masquerade chains, from POSTROUTING's jumps, with the container ID from their comment. */
export function masqChainsOf(postrouting: readonly string[]): Map<string, { network: string; containerId: string }> {
  const found = new Map<string, { network: string; containerId: string }>();
  for (const line of postrouting) {
    const match = /^-A POSTROUTING .*--comment "name: (\S+) id: (\S+)" -j (PONTOON-[0-9a-f]+)$/.exec(line);
    if (match && match[1] && match[2] && match[3]) found.set(match[3], { network: match[1], containerId: match[2] });
  }
  return found;
}
