/**
 * The topology as Graphviz dot: one cluster subgraph per rack, a hub node per mesh (tunnel
 * or iBGP full mesh) its members connect to, single edges for the other BGP sessions, and
 * Services in their own cluster with an arrow to each node that holds endpoints (labelled
 * with how many). `dot -Tsvg` renders it; `pontoon topology --svg` draws without Graphviz.
 */
import type { TopologyModel, TunnelKind } from './topology-model.js';

export const TUNNEL_COLORS: Record<TunnelKind, string> = {
  vxlan: '#1f77b4',
  udp: '#9467bd',
  ipip: '#ff7f0e',
  'host-gw': '#2ca02c',
  routes: '#7f7f7f',
  'ibgp-mesh': '#17becf',
};

/** A dot ID: always quoted, with `"` and `\` escaped, newlines as `\n`. */
export function dotId(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

const nodeId = (name: string): string => dotId(`node/${name}`);

export function renderDot(model: TopologyModel): string {
  const lines: string[] = [];
  lines.push(`graph ${dotId(`pontoon ${model.cluster}`)} {`);
  lines.push(`  graph [fontname="Helvetica", label=${dotId(`Pontoon cluster ${model.cluster}`)}, labelloc=t, rankdir=TB, nodesep=0.25, ranksep=0.6];`);
  lines.push('  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor="#f4f6fb"];');
  lines.push('  edge [fontname="Helvetica", fontsize=9];');
  model.racks.forEach((rack, i) => {
    lines.push(`  subgraph ${dotId(`cluster_rack_${i}`)} {`);
    lines.push(`    label=${dotId(`rack ${rack.id}`)}; style="rounded"; color="#999999";`);
    for (const n of rack.nodes) {
      const fill = !n.ready ? '#f8d7da' : !n.healthy ? '#fff3cd' : n.routeReflector ? '#dff0d8' : '#f4f6fb';
      const label = `${n.name}${n.routeReflector ? ' (RR)' : ''}\n${n.ip}\n${n.subnet} · ${n.pods} pods`;
      lines.push(`    ${nodeId(n.name)} [label=${dotId(label)}, fillcolor=${dotId(fill)}${n.routeReflector ? ', penwidth=2' : ''}];`);
    }
    for (const p of model.peers.filter((peer) => peer.rack === rack.id)) lines.push(`    ${dotId(p.id)} [label=${dotId(p.label)}, shape=octagon, fillcolor="#ffffff"];`);
    lines.push('  }');
  });
  for (const p of model.peers.filter((peer) => peer.rack === undefined)) lines.push(`  ${dotId(p.id)} [label=${dotId(p.label)}, shape=octagon, fillcolor="#ffffff"];`);
  for (const t of model.tunnels) {
    const color = TUNNEL_COLORS[t.kind];
    lines.push(`  ${dotId(t.id)} [label=${dotId(`${t.label}\n${t.scope === 'cluster' ? 'every node pair' : t.scope === 'cross-rack' ? 'between racks' : 'within each rack'}`)}, shape=ellipse, style=filled, fillcolor="#ffffff", color=${dotId(color)}];`);
    for (const m of t.members) lines.push(`  ${nodeId(m)} -- ${dotId(t.id)} [color=${dotId(color)}, style=${t.kind === 'routes' || t.kind === 'host-gw' ? 'dotted' : 'dashed'}];`);
  }
  for (const s of model.sessions) {
    const end = (x: string): string => (x.startsWith('peer/') ? dotId(x) : nodeId(x));
    const color = s.state === 'Established' ? '#2ca02c' : '#d62728';
    lines.push(`  ${end(s.a)} -- ${end(s.b)} [color=${dotId(color)}, label=${dotId(`${s.kind}${s.state === 'Established' ? '' : ` ${s.state}`}`)}];`);
  }
  if (model.services.length > 0) {
    lines.push(`  subgraph ${dotId('cluster_services')} {`);
    lines.push('    label="Services"; style="rounded"; color="#cccccc";');
    for (const s of model.services) lines.push(`    ${dotId(s.id)} [label=${dotId(`${s.label}${s.unplaced ? `\n${s.unplaced} endpoints elsewhere` : ''}${s.endpoints.length === 0 && !s.unplaced ? '\nno endpoints' : ''}`)}, shape=component, fillcolor=${dotId(s.endpoints.length === 0 && !s.unplaced ? '#f8d7da' : '#fdf6e3')}];`);
    lines.push('  }');
    for (const s of model.services) for (const e of s.endpoints) lines.push(`  ${dotId(s.id)} -- ${nodeId(e.node)} [dir=forward, color="#b58900", label=${dotId(String(e.count))}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
