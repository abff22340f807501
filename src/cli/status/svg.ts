/**
 * The topology drawn as SVG with a fixed layout of our own, no Graphviz needed: one column
 * per rack (nodes stacked, headed by the rack's segment), one coloured rail per tunnel down
 * the left of each column with a stub to every member, and a bus across the top joining
 * the rails of a tunnel that crosses racks. Route-reflector and other single sessions are
 * arcs on the right of a column (lines between columns), external peers sit above their
 * rack, Services form the last column with a thin line to each node holding endpoints.
 *
 * The layout is a grid, so it stays readable as the cluster grows: 50 nodes in 4 racks is
 * 4 columns of 13, and boxes never overlap (the tests check that on a 50-node model).
 */
import { TUNNEL_COLORS } from './dot.js';
import type { TopologyModel, TopologyNode } from './topology-model.js';

export const SVG_LAYOUT = { nodeWidth: 210, nodeHeight: 46, rowPitch: 58, railGap: 10, arcRoom: 70, serviceWidth: 300, servicePitch: 46 } as const;

export function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A box the layout placed, for the tests and for wiring lines. */
export interface Placed {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface SvgLayout {
  readonly width: number;
  readonly height: number;
  readonly nodes: ReadonlyMap<string, Placed>;
  readonly services: ReadonlyMap<string, Placed>;
  readonly peers: ReadonlyMap<string, Placed>;
}

export function layoutTopology(model: TopologyModel): SvgLayout {
  const L = SVG_LAYOUT;
  const margin = 20;
  const buses = model.tunnels.filter((t) => t.scope !== 'rack').length;
  const busTop = 56;
  const peersTop = busTop + buses * 24 + 16;
  const hasPeers = model.peers.length > 0;
  const rackTop = peersTop + (hasPeers ? 56 : 0);
  const railsWidth = model.tunnels.length * L.railGap + 14;
  const columnWidth = railsWidth + L.nodeWidth + L.arcRoom;
  const nodes = new Map<string, Placed>();
  const peers = new Map<string, Placed>();
  model.racks.forEach((rack, column) => {
    const x = margin + column * columnWidth;
    rack.nodes.forEach((n, row) => nodes.set(n.name, { x: x + railsWidth, y: rackTop + 34 + row * L.rowPitch, width: L.nodeWidth, height: L.nodeHeight }));
    model.peers.filter((p) => p.rack === rack.id).forEach((p, i) => peers.set(p.id, { x: x + railsWidth + i * 90, y: peersTop, width: 170, height: 32 }));
  });
  const racksRight = margin + model.racks.length * columnWidth;
  model.peers.filter((p) => p.rack === undefined).forEach((p, i) => peers.set(p.id, { x: racksRight + i * 180, y: peersTop, width: 170, height: 32 }));
  const services = new Map<string, Placed>();
  const servicesX = racksRight + 30;
  model.services.forEach((s, i) => services.set(s.id, { x: servicesX, y: rackTop + 34 + i * L.servicePitch, width: L.serviceWidth, height: 36 }));
  const tallest = Math.max(0, ...model.racks.map((r) => r.nodes.length));
  const bottom = Math.max(rackTop + 34 + tallest * L.rowPitch, rackTop + 34 + model.services.length * L.servicePitch);
  const peersRight = Math.max(0, ...[...peers.values()].map((p) => p.x + p.width));
  const width = Math.max(model.services.length > 0 ? servicesX + L.serviceWidth + margin : racksRight + margin, peersRight + margin, 480);
  const legends = model.tunnels.filter((t) => t.scope === 'rack').length;
  return { width, height: bottom + 40 + legends * 16, nodes, services, peers };
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x}" y="${y}"${attrs ? ` ${attrs}` : ''}>${xmlEscape(content)}</text>`;
}

function nodeFill(n: TopologyNode): string {
  if (!n.ready) return '#f8d7da';
  if (!n.healthy) return '#fff3cd';
  return n.routeReflector ? '#dff0d8' : '#f4f6fb';
}

export function renderSvg(model: TopologyModel): string {
  const L = SVG_LAYOUT;
  const layout = layoutTopology(model);
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  out.push(`<title>${xmlEscape(`Pontoon cluster ${model.cluster}`)}</title>`);
  out.push('<rect width="100%" height="100%" fill="#ffffff"/>');
  out.push(text(20, 28, `Pontoon cluster ${model.cluster}: ${model.racks.reduce((n, r) => n + r.nodes.length, 0)} nodes, ${model.racks.length} racks, ${model.services.length} Services`, 'font-size="15" font-weight="bold"'));

  // Rails and buses: the tunnels.
  const railX = (tunnelIndex: number, node: { x: number }): number => node.x - 14 - (model.tunnels.length - 1 - tunnelIndex) * L.railGap;
  let bus = 0;
  let legend = 0;
  out.push('<g class="tunnels">');
  model.tunnels.forEach((t, ti) => {
    const color = TUNNEL_COLORS[t.kind];
    const dash = t.kind === 'routes' || t.kind === 'host-gw' ? ' stroke-dasharray="2,3"' : t.kind === 'ibgp-mesh' ? ' stroke-dasharray="6,3"' : '';
    const busY = t.scope === 'rack' ? undefined : 56 + bus++ * 24;
    const railTops: number[] = [];
    out.push(`<g class="tunnel" id="${xmlEscape(t.id)}"><title>${xmlEscape(t.label)}</title>`);
    for (const rack of model.racks) {
      const members = rack.nodes.filter((n) => t.members.includes(n.name)).map((n) => layout.nodes.get(n.name)!);
      if (members.length === 0) continue;
      const x = railX(ti, members[0]!);
      const top = busY ?? members[0]!.y + L.nodeHeight / 2;
      const last = members.at(-1)!;
      railTops.push(x);
      out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${last.y + L.nodeHeight / 2}" stroke="${color}" stroke-width="2"${dash}/>`);
      for (const m of members) out.push(`<line x1="${x}" y1="${m.y + L.nodeHeight / 2}" x2="${m.x}" y2="${m.y + L.nodeHeight / 2}" stroke="${color}" stroke-width="1.5"${dash}/>`);
    }
    if (busY !== undefined && railTops.length > 0) {
      const left = Math.min(...railTops);
      const right = Math.max(...railTops, left + 260);
      out.push(`<line x1="${left}" y1="${busY}" x2="${right}" y2="${busY}" stroke="${color}" stroke-width="3"${dash}/>`);
      out.push(text(left + 6, busY - 5, `${t.label}${t.scope === 'cross-rack' ? ' — between racks' : ''}`, `fill="${color}" font-weight="bold"`));
    } else if (railTops.length > 0) {
      out.push(text(20, layout.height - 12 - legend++ * 16, `┆ rails: ${t.label}`, `fill="${color}"`));
    }
    out.push('</g>');
  });
  out.push('</g>');

  // Rack frames and nodes.
  out.push('<g class="racks">');
  for (const rack of model.racks) {
    const boxes = rack.nodes.map((n) => layout.nodes.get(n.name)!);
    const first = boxes[0];
    if (!first) continue;
    const x = first.x - model.tunnels.length * L.railGap - 18;
    const y = first.y - 30;
    const height = boxes.length * L.rowPitch + 30;
    out.push(`<g class="rack"><rect x="${x}" y="${y}" width="${L.nodeWidth + model.tunnels.length * L.railGap + 18 + L.arcRoom - 10}" height="${height}" rx="8" fill="none" stroke="#bbbbbb"/>`);
    out.push(text(x + 8, y + 18, `rack ${rack.id}`, 'font-weight="bold" fill="#555555"'));
    out.push('</g>');
  }
  for (const rack of model.racks) {
    for (const n of rack.nodes) {
      const b = layout.nodes.get(n.name)!;
      out.push(`<g class="node" id="${xmlEscape(`node/${n.name}`)}"><title>${xmlEscape(`${n.name} ${n.ip} ${n.subnet} ${n.backend}${n.ready ? '' : ' NotReady'}${n.healthy ? '' : ' unhealthy'}`)}</title>`);
      out.push(`<rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" rx="6" fill="${nodeFill(n)}" stroke="${n.routeReflector ? '#2ca02c' : '#666666'}" stroke-width="${n.routeReflector ? 2 : 1}"/>`);
      out.push(text(b.x + 8, b.y + 15, `${n.name}${n.routeReflector ? ' (RR)' : ''}${n.ready ? '' : ' NotReady'}${n.ready && !n.healthy ? ' unhealthy' : ''}`, 'font-weight="bold"'));
      out.push(text(b.x + 8, b.y + 28, `${n.ip} · ${n.backend}`));
      out.push(text(b.x + 8, b.y + 40, `${n.subnet} · ${n.pods} pods`, 'fill="#555555"'));
      out.push('</g>');
    }
  }
  for (const [id, b] of layout.peers) {
    const peer = model.peers.find((p) => p.id === id)!;
    out.push(`<g class="peer" id="${xmlEscape(id)}"><rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" rx="14" fill="#ffffff" stroke="#444444"/>${text(b.x + 10, b.y + 20, peer.label)}</g>`);
  }
  out.push('</g>');

  // Single BGP sessions.
  out.push('<g class="sessions">');
  for (const s of model.sessions) {
    const a = layout.nodes.get(s.a) ?? layout.peers.get(s.a);
    const b = layout.nodes.get(s.b) ?? layout.peers.get(s.b);
    if (!a || !b) continue;
    const color = s.state === 'Established' ? '#2ca02c' : '#d62728';
    const title = `<title>${xmlEscape(`${s.kind} ${s.a} — ${s.b}: ${s.state}`)}</title>`;
    if (a.x === b.x && layout.nodes.has(s.a) && layout.nodes.has(s.b)) {
      // Same column: an arc on the right, bulging more the farther apart the two are.
      const ay = a.y + a.height / 2;
      const by = b.y + b.height / 2;
      const bulge = Math.min(L.arcRoom - 8, 14 + Math.abs(by - ay) * 0.08);
      out.push(`<path d="M ${a.x + a.width} ${ay} C ${a.x + a.width + bulge} ${ay}, ${b.x + b.width + bulge} ${by}, ${b.x + b.width} ${by}" fill="none" stroke="${color}" stroke-width="1.2">${title}</path>`);
    } else {
      const [left, right] = a.x <= b.x ? [a, b] : [b, a];
      out.push(`<line x1="${left.x + left.width}" y1="${left.y + left.height / 2}" x2="${right.x}" y2="${right.y + right.height / 2}" stroke="${color}" stroke-width="1.2" opacity="0.8">${title}</line>`);
    }
  }
  out.push('</g>');

  // Services and their endpoints.
  out.push('<g class="services">');
  for (const s of model.services) {
    const b = layout.services.get(s.id)!;
    for (const e of s.endpoints) {
      const n = layout.nodes.get(e.node);
      if (n) out.push(`<line x1="${b.x}" y1="${b.y + b.height / 2}" x2="${n.x + n.width}" y2="${n.y + n.height / 2}" stroke="#b58900" stroke-width="${Math.min(4, 0.8 + e.count * 0.4)}" opacity="0.45"><title>${xmlEscape(`${s.id} → ${e.node}: ${e.count} endpoints`)}</title></line>`);
    }
    const total = s.endpoints.reduce((sum, e) => sum + e.count, 0) + s.unplaced;
    const where = s.endpoints.map((e) => `${e.node}×${e.count}`).join(' ');
    out.push(`<g class="service" id="${xmlEscape(s.id)}"><rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" rx="4" fill="${total === 0 ? '#f8d7da' : '#fdf6e3'}" stroke="#b58900"/>`);
    out.push(text(b.x + 8, b.y + 14, s.label, 'font-weight="bold"'));
    out.push(text(b.x + 8, b.y + 28, total === 0 ? 'no endpoints' : `${total} endpoints: ${where.length > 40 ? `${where.slice(0, 40)}…` : where}${s.unplaced ? ` +${s.unplaced} elsewhere` : ''}`, 'fill="#555555"'));
    out.push('</g>');
  }
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
