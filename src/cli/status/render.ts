/** `pontoon status` as one screen of text (the JSON form is the snapshot itself). */
import { formatTable } from '../table.js';
import { type ClusterSnapshot, type DaemonStatus, NODE_DAEMON_PORTS, NODE_DAEMONS, problemsOf } from './snapshot.js';

/** "12s", "5m", "3h", "2d" since `iso`, as kubectl prints ages. */
export function age(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

function healthWord(d: DaemonStatus | undefined): string {
  if (!d) return '-';
  return d.health === 'healthy' ? 'ok' : d.health === 'unhealthy' ? 'UNHEALTHY' : 'DOWN';
}

export function renderStatus(snapshot: ClusterSnapshot, now = Date.now()): string {
  const out: string[] = [];
  const cp = snapshot.controlPlane;
  const api = cp.apiserver;
  const parts = [`apiserver ${api.url} ${api.health === 'healthy' ? `ready (${api.latencyMs ?? '?'} ms)` : `NOT READY: ${api.detail}`}`];
  if (api.store) parts.push(`store ${api.store}`);
  for (const c of cp.components) parts.push(`${c.daemon} ${healthWord(c)}`);
  out.push(`cluster ${snapshot.cluster} — control plane: ${parts.join(' · ')}`);
  out.push('');
  const rows = snapshot.nodes.map((n) => {
    const daemon = (name: string): DaemonStatus | undefined => n.daemons.find((d) => d.daemon === name);
    const proxy = daemon('proxy');
    const proxyCell = !proxy ? '-' : `${n.proxy?.mode ?? '?'} ${healthWord(proxy)}${n.proxy ? `, ${n.proxy.rules ?? '?'} rules, synced ${age(n.proxy.lastSync, now)} ago` : ''}`;
    const bgp = daemon('bgp');
    const established = n.bgpPeers.filter((p) => p.state === 'Established').length;
    const bgpCell = !bgp ? '-' : `${healthWord(bgp)} ${established}/${n.bgpPeers.length} peers${n.routeReflector ? ' (RR)' : ''}`;
    return [
      n.name,
      n.ready === 'True' ? 'Ready' : `NotReady(${n.ready})`,
      n.internalIp,
      n.rack,
      n.lease ? n.lease.subnet : n.podCidr ? `${n.podCidr} (no lease)` : '<none>',
      n.backend + (n.lease?.vni !== undefined ? ` vni ${n.lease.vni}` : ''),
      healthWord(daemon('kubelet')),
      healthWord(daemon('flanneld')),
      proxyCell,
      bgpCell,
      String(n.pods),
    ];
  });
  out.push(formatTable(['NODE', 'STATUS', 'INTERNAL IP', 'RACK', 'LEASE', 'BACKEND', 'KUBELET', 'FLANNELD', 'PROXY', 'BGP', 'PODS'], rows));
  const peers = snapshot.nodes.flatMap((n) => n.bgpPeers.map((p) => [n.name, p.node ? `${p.peer} (${p.node})` : p.peer, p.asn, p.role, p.state, age(p.since, now), `${p.prefixesReceived ?? '?'}/${p.prefixesAdvertised ?? '?'}`]));
  if (peers.length > 0) {
    out.push('');
    out.push(formatTable(['BGP ON', 'PEER', 'AS', 'ROLE', 'STATE', 'SINCE', 'PREFIXES RX/TX'], peers));
  }
  const problems = problemsOf(snapshot);
  out.push('');
  if (problems.length === 0) out.push('all healthy');
  for (const problem of problems) out.push(`✗ ${problem}`);
  const ports = NODE_DAEMONS.map((d) => `${d} :${NODE_DAEMON_PORTS[d].metrics}${NODE_DAEMON_PORTS[d].health !== NODE_DAEMON_PORTS[d].metrics ? `/:${NODE_DAEMON_PORTS[d].health}` : ''}`).join(', ');
  const where = snapshot.nodes[0]?.daemons[0]?.at.replace(/^\S+:\d+/, '<addr>') ?? '';
  out.push(`asked ${ports} (/metrics, /healthz${where ? `; e.g. ${where}` : ''}) in ${snapshot.tookMs} ms`);
  return `${out.join('\n')}\n`;
}
