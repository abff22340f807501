/**
 * The files that give a container its name and its resolver, as the kubelet writes them
 * (pkg/kubelet/network/dns and kubelet_pods.go): /etc/resolv.conf by dnsPolicy, the
 * Kubernetes-managed /etc/hosts, /etc/hostname. Pure functions: the inputs are the pod, the
 * node's DNS settings and the node's own files' contents, so every rule is testable alone.
 */
import type { HostAlias, Pod } from '../api/types.js';

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** glibc reads three nameservers; upstream drops the rest with a warning. */
const MAX_NAMESERVERS = 3;
/** Upstream's limits since 1.28 (MaxDNSSearchPaths, MaxDNSSearchListChars). */
const MAX_SEARCHES = 32;
const MAX_SEARCH_CHARS = 2048;
const MAX_HOSTNAME = 63;

export interface ResolvConf {
  nameservers: string[];
  searches: string[];
  options: string[];
}

export interface NodeDnsSettings {
  /** --cluster-dns: empty means the kubelet has none (ClusterFirst falls back to Default). */
  clusterDNS: readonly string[];
  clusterDomain: string;
  /** The node's resolv.conf as parsed from --resolv-conf ("" flag: nothing). */
  host: ResolvConf;
}

/** What the pod's DNS ends up as, and a warning when the policy had to fall back. */
export interface PodDns {
  resolv: ResolvConf;
  fallbackWarning?: string;
}

/** Parses resolv.conf(5): nameserver, search/domain (the last one wins), options. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, ...fields] = line.split(/\s+/);
    if (keyword === 'nameserver' && fields[0]) conf.nameservers.push(fields[0]);
    else if (keyword === 'search' || keyword === 'domain') conf.searches = fields;
    else if (keyword === 'options') conf.options.push(...fields);
  }
  return conf;
}

export function formatResolvConf(conf: ResolvConf): string {
  // containerd's order: search, nameservers, options.
  const lines: string[] = [];
  if (conf.searches.length > 0) lines.push(`search ${conf.searches.join(' ')}`);
  for (const server of conf.nameservers) lines.push(`nameserver ${server}`);
  if (conf.options.length > 0) lines.push(`options ${conf.options.join(' ')}`);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values.filter(Boolean))];
}

/** Options by name: a later `ndots:2` replaces an earlier `ndots:5` (upstream mergeDNSOptions). */
function mergeOptions(base: readonly string[], extra: readonly { name: string; value?: string }[]): string[] {
  const merged = new Map<string, string>();
  for (const option of base) merged.set(option.split(':')[0] ?? option, option);
  for (const option of extra) merged.set(option.name, option.value !== undefined ? `${option.name}:${option.value}` : option.name);
  return [...merged.values()];
}

function fitSearches(searches: readonly string[]): string[] {
  const kept: string[] = [];
  let chars = 0;
  for (const search of searches) {
    if (kept.length >= MAX_SEARCHES || chars + search.length + (kept.length > 0 ? 1 : 0) > MAX_SEARCH_CHARS) break;
    chars += search.length + (kept.length > 0 ? 1 : 0);
    kept.push(search);
  }
  return kept;
}

type DnsType = 'cluster' | 'host' | 'none';

/** upstream getPodDNSType: ClusterFirst on the host network means the node's resolver. */
function dnsType(pod: Pod): DnsType {
  switch (pod.spec.dnsPolicy ?? 'ClusterFirst') {
    case 'ClusterFirstWithHostNet':
      return 'cluster';
    case 'Default':
      return 'host';
    case 'None':
      return 'none';
    default:
      return pod.spec.hostNetwork ? 'host' : 'cluster';
  }
}

export function podDns(pod: Pod, node: NodeDnsSettings): PodDns {
  let type = dnsType(pod);
  let fallbackWarning: string | undefined;
  if (type === 'cluster' && node.clusterDNS.length === 0) {
    fallbackWarning = `pod: "${pod.metadata.name ?? ''}_${pod.metadata.namespace ?? 'default'}(${pod.metadata.uid ?? ''})". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`;
    type = 'host';
  }
  let resolv: ResolvConf;
  if (type === 'cluster') {
    const namespace = pod.metadata.namespace ?? 'default';
    const domain = node.clusterDomain;
    resolv = { nameservers: [...node.clusterDNS], searches: [`${namespace}.svc.${domain}`, `svc.${domain}`, domain, ...node.host.searches], options: ['ndots:5'] };
  } else if (type === 'host') {
    resolv = { nameservers: [...node.host.nameservers], searches: [...node.host.searches], options: [...node.host.options] };
  } else {
    resolv = { nameservers: [], searches: [], options: [] };
  }
  const config = pod.spec.dnsConfig;
  if (config) {
    resolv.nameservers.push(...(config.nameservers ?? []));
    resolv.searches.push(...(config.searches ?? []));
    resolv.options = mergeOptions(resolv.options, config.options ?? []);
  }
  resolv.nameservers = unique(resolv.nameservers).slice(0, MAX_NAMESERVERS);
  resolv.searches = fitSearches(unique(resolv.searches));
  return fallbackWarning ? { resolv, fallbackWarning } : { resolv };
}

export interface PodHostname {
  hostname: string;
  /** `<subdomain>.<ns>.svc.<domain>` when spec.subdomain is set. */
  domain?: string;
}

/** upstream GeneratePodHostNameAndDomain (hostname truncated to 63 as the kubelet does). */
export function podHostname(pod: Pod, clusterDomain: string): PodHostname {
  const raw = pod.spec.hostname || (pod.metadata.name ?? '');
  const hostname = raw.length > MAX_HOSTNAME ? raw.slice(0, MAX_HOSTNAME).replace(/[-.]+$/, '') : raw;
  if (!pod.spec.subdomain) return { hostname };
  return { hostname, domain: `${pod.spec.subdomain}.${pod.metadata.namespace ?? 'default'}.svc.${clusterDomain}` };
}

/** The name the UTS namespace carries: the FQDN with setHostnameAsFQDN. */
export function utsHostname(pod: Pod, clusterDomain: string, nodeName: string): string {
  // A hostNetwork pod has the node's name (upstream shares the node's UTS namespace).
  if (pod.spec.hostNetwork) return nodeName;
  const { hostname, domain } = podHostname(pod, clusterDomain);
  return pod.spec.setHostnameAsFQDN && domain ? `${hostname}.${domain}` : hostname;
}

function aliasLines(aliases: readonly HostAlias[] | undefined): string {
  if (!aliases || aliases.length === 0) return '';
  return `\n# Entries added by HostAliases.\n${aliases.map((alias) => `${alias.ip}\t${(alias.hostnames ?? []).join('\t')}\n`).join('')}`;
}

/** The Kubernetes-managed /etc/hosts (kubelet_pods.go managedHostsFileContent). */
export function hostsFile(pod: Pod, podIPs: readonly string[], clusterDomain: string, nodeHosts: string): string {
  if (pod.spec.hostNetwork) {
    const body = nodeHosts.endsWith('\n') || nodeHosts === '' ? nodeHosts : `${nodeHosts}\n`;
    return `# Kubernetes-managed hosts file (host network).\n${body}${aliasLines(pod.spec.hostAliases)}`;
  }
  const { hostname, domain } = podHostname(pod, clusterDomain);
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    ...podIPs.map((ip) => (domain ? `${ip}\t${hostname}.${domain}\t${hostname}` : `${ip}\t${hostname}`)),
  ];
  return `${lines.join('\n')}\n${aliasLines(pod.spec.hostAliases)}`;
}
