/**
 * A node's proxy rules as text that two histories of the same desired state print alike, so
 * tests can compare kernels: one that got there by many partial syncs, by a restart, or by
 * one fresh full sync.
 */
import { run } from '../../src/lib/exec.js';

/**
 * The nft listing made comparable across histories: endpoint maps folded into the rules
 * that read them (blocks are numbered by allocation history), element lists sorted (hash
 * order), and chains and sets in name order (nft lists them in creation order).
 */
export function canonicalNft(netns: string): string {
  const out: string[] = [];
  for (const family of ['ip', 'ip6']) {
    let text: string;
    try {
      text = run('nft', ['list', 'table', family, 'pontoon'], { netns });
    } catch {
      continue;
    }
    const blocks = new Map<string, string[]>();
    let current: string[] | undefined;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      const head = /^(chain|set|map) (\S+) \{$/.exec(line);
      if (head) {
        current = [];
        blocks.set(`${head[1]} ${head[2]}`, current);
      } else if (line === '}') current = undefined;
      else if (current && line) current.push(line);
    }
    const maps = new Map<string, Map<number, string>>();
    for (const [name, lines] of blocks) {
      if (!name.startsWith('map endpoints-')) continue;
      const body = lines.join(' ');
      const entries = new Map<number, string>();
      for (const element of /elements = \{(.*)\}/.exec(body)?.[1]?.split(',') ?? []) {
        const at = element.indexOf(' : ');
        if (at > 0) entries.set(Number(element.slice(0, at).trim()), element.slice(at + 3).trim());
      }
      maps.set(name.slice('map '.length), entries);
      blocks.delete(name);
    }
    const fold = (line: string): string =>
      line.replace(/numgen random mod (\d+)(?: offset (\d+))? map @(endpoints-[0-9a-f]+)/, (_, mod: string, offset: string | undefined, map: string) => {
        const base = Number(offset ?? 0);
        return `one of { ${Array.from({ length: Number(mod) }, (__, i) => maps.get(map)?.get(base + i) ?? '?').join(', ')} }`;
      });
    // Dynamic set elements (session affinity) carry their remaining lifetime: state, not rules.
    for (const lines of blocks.values()) for (let i = 0; i < lines.length; i++) lines[i] = (lines[i] ?? '').replace(/ expires \S+/g, '');
    for (const name of [...blocks.keys()].sort()) {
      const lines = (blocks.get(name) ?? []).map(fold).join('\n');
      out.push(`${family} ${name}`, lines.replace(/elements = \{([^}]*)\}/gs, (_, body: string) => `elements = { ${body.split(',').map((e) => e.trim()).sort().join(', ')} }`));
    }
  }
  return out.join('\n');
}

const SHARED = new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES']);

/** KUBE-* chains as iptables-save prints them, by name; the shared chains' rules in any order. */
export function canonicalIptables(netns: string): string {
  const out: string[] = [];
  for (const save of ['iptables-save', 'ip6tables-save']) {
    let table = '';
    const chains = new Map<string, string[]>();
    for (const line of run(save, [], { netns }).split('\n')) {
      if (line.startsWith('*')) table = line;
      const chain = /^(?::|-A )(\S+)/.exec(line)?.[1];
      if (!chain || !/KUBE-|^(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/.test(chain)) continue;
      const key = `${save} ${table} ${chain}`;
      if (!chains.has(key)) chains.set(key, []);
      if (line.startsWith('-A ')) chains.get(key)?.push(line);
    }
    for (const key of [...chains.keys()].sort()) {
      const rules = chains.get(key) ?? [];
      const name = key.split(' ').at(-1) ?? '';
      // Shared chains: their rules in any order, except that nat KUBE-SERVICES must end with
      // its trailer (the node-port jump); the filter chains have no trailer.
      if (!SHARED.has(name)) out.push(key, ...rules);
      else out.push(key, ...[...rules].sort(), ...(key.includes('*nat KUBE-SERVICES') ? [`last: ${rules.at(-1) ?? ''}`] : []));
    }
  }
  return out.join('\n');
}
