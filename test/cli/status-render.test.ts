/**
 * The status/topology renderers on fixed inputs written here (not taken from their output):
 * the snapshot → model step (meshes collapse to one bus, broken sessions stay visible,
 * endpoints count per node), the dot text (one cluster per rack with exactly its nodes,
 * Graphviz accepts it), the SVG (well-formed XML, every node drawn once, no two boxes
 * overlapping, also at 50 nodes), the text screen, the exposition reader and the telemetry
 * listener every daemon uses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { renderDot } from '../../src/cli/status/dot.js';
import { httpGet } from '../../src/cli/status/probe.js';
import { renderStatus } from '../../src/cli/status/render.js';
import type { ClusterSnapshot, NodeStatusView } from '../../src/cli/status/snapshot.js';
import { problemsOf } from '../../src/cli/status/snapshot.js';
import { layoutTopology, renderSvg, type Placed } from '../../src/cli/status/svg.js';
import { topologyOf, type TopologyModel } from '../../src/cli/status/topology-model.js';
import { ExpositionError, parseExposition, samplesOf, valueOf } from '../../src/lib/prom-text.js';
import { addProcessMetrics, parseListenAddress, serveTelemetry } from '../../src/lib/telemetry.js';

const healthy = (daemon: string) => ({ daemon, at: 'x', health: 'healthy' as const, detail: 'ok', expected: true });

function node(name: string, rack: number, index: number, extra: Partial<NodeStatusView> = {}): NodeStatusView {
  return {
    name,
    ready: 'True',
    internalIp: `198.18.${rack}.${10 + index}`,
    rack: `198.18.${rack}.0/24`,
    podCidr: `10.244.${index}.0/24`,
    lease: { subnet: `10.244.${index}.0/24`, backendType: 'alloc', publicIp: `198.18.${rack}.${10 + index}` },
    backend: 'bgp/ipip cross-subnet',
    routeReflector: false,
    daemons: [healthy('kubelet'), healthy('flanneld'), healthy('proxy'), healthy('bgp')],
    bgpPeers: [],
    pods: index,
    ...extra,
  };
}

/** Two racks; a1 and b1 are route reflectors; b3's session to b1 is down; a2 also peers with a router. */
function rrSnapshot(): ClusterSnapshot {
  const peer = (to: NodeStatusView, role: string, state = 'Established') => ({ peer: to.internalIp, node: to.name, asn: '64512', role, state, since: '2026-01-01T00:00:00Z', prefixesReceived: 1, prefixesAdvertised: 1 });
  const a1 = node('a1', 0, 1, { routeReflector: true });
  const a2 = node('a2', 0, 2);
  const b1 = node('b1', 1, 3, { routeReflector: true });
  const b2 = node('b2', 1, 4);
  const b3 = node('b3', 1, 5, { daemons: [healthy('kubelet'), { daemon: 'flanneld', at: 'x', health: 'unreachable', detail: 'ECONNREFUSED', expected: true }, healthy('proxy'), healthy('bgp')] });
  const nodes = [
    { ...a1, bgpPeers: [peer(a2, 'rr-client'), peer(b1, 'mesh')] },
    { ...a2, bgpPeers: [peer(a1, 'rr'), { peer: '198.18.0.1', asn: '65000', role: 'tor', state: 'Established' }] },
    { ...b1, bgpPeers: [peer(b2, 'rr-client'), peer(b3, 'rr-client', 'Active'), peer(a1, 'mesh')] },
    { ...b2, bgpPeers: [peer(b1, 'rr')] },
    { ...b3, bgpPeers: [peer(b1, 'rr', 'Active')] },
  ];
  return {
    cluster: 'fixed',
    gatheredAt: '2026-01-01T00:00:00Z',
    tookMs: 5,
    controlPlane: { apiserver: { url: 'https://127.0.0.1:6443', health: 'healthy', detail: 'ready', latencyMs: 2 }, components: [healthy('controller-manager'), healthy('scheduler')] },
    nodes,
    services: [
      { namespace: 'default', name: 'web', type: 'ClusterIP', clusterIp: '10.96.0.10', ports: ['80/TCP'], endpoints: [{ ip: '10.244.1.2', node: 'a1', ready: true }, { ip: '10.244.1.3', node: 'a1', ready: true }, { ip: '10.244.4.2', node: 'b2', ready: true }] },
      { namespace: 'default', name: 'empty', type: 'ClusterIP', clusterIp: '10.96.0.11', ports: ['81/TCP'], endpoints: [] },
    ],
    ipipMode: 'cross-subnet',
  };
}

/** n nodes over `racks` racks, VXLAN, full iBGP-free; services with endpoints spread round-robin. */
function syntheticModel(n: number, racks: number): TopologyModel {
  const names = Array.from({ length: n }, (_, i) => `node-${String(i + 1).padStart(2, '0')}`);
  return {
    cluster: `synthetic-${n}`,
    racks: Array.from({ length: racks }, (_, r) => ({
      id: `10.0.${r}.0/24`,
      nodes: names.filter((_, i) => i % racks === r).map((name, i) => ({ name, ip: `10.0.${r}.${i + 10}`, subnet: `10.244.${i}.0/24`, backend: 'vxlan', ready: true, healthy: true, routeReflector: i === 0, pods: 3 })),
    })),
    tunnels: [{ id: 'tunnel/vxlan', kind: 'vxlan', label: 'VXLAN VNI 1', scope: 'cluster', members: names }],
    sessions: names.filter((_, i) => i >= racks).map((name, i) => ({ a: name, b: names[i % racks]!, state: i % 7 === 0 ? 'Active' : 'Established', kind: 'rr' as const })),
    peers: [],
    services: Array.from({ length: 12 }, (_, s) => ({ id: `svc/default/s${s}`, label: `default/s${s} 10.96.1.${s}`, endpoints: [{ node: names[s]!, count: 2 }, { node: names[(s * 7) % n]!, count: 1 }], unplaced: 0 })),
  };
}

function overlaps(a: Placed, b: Placed): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function assertWellFormedXml(svg: string): void {
  const result = spawnSync('/usr/bin/python3', ['-c', 'import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.buffer.read()); print("ok")'], { input: svg, encoding: 'utf8' });
  assert.equal(result.status, 0, `the SVG is not well-formed XML: ${result.stderr}`);
}

test('topologyOf: racks by segment, RR and eBGP sessions kept singly, a broken session marked, endpoints counted per node', () => {
  const model = topologyOf(rrSnapshot());
  assert.deepEqual(model.racks.map((r) => [r.id, r.nodes.map((n) => n.name)]), [['198.18.0.0/24', ['a1', 'a2']], ['198.18.1.0/24', ['b1', 'b2', 'b3']]]);
  // cross-subnet: IPIP between racks, plain routes within
  assert.deepEqual(model.tunnels.map((t) => [t.kind, t.scope]), [['ipip', 'cross-rack'], ['routes', 'rack']]);
  const pairs = model.sessions.map((s) => `${s.a}-${s.b}:${s.kind}:${s.state}`).sort();
  assert.deepEqual(pairs, ['a1-a2:rr:Established', 'a1-b1:ibgp:Established', 'a2-peer/198.18.0.1:ebgp:Established', 'b1-b2:rr:Established', 'b1-b3:rr:Active']);
  assert.deepEqual(model.peers, [{ id: 'peer/198.18.0.1', label: 'AS 65000 198.18.0.1', rack: '198.18.0.0/24' }]);
  const web = model.services.find((s) => s.id === 'svc/default/web');
  assert.deepEqual(web?.endpoints.map((e) => [e.node, e.count]).sort(), [['a1', 2], ['b2', 1]]);
  assert.equal(model.racks[1]?.nodes.find((n) => n.name === 'b3')?.healthy, false);
});

test('topologyOf: a full iBGP mesh becomes one bus; its broken session is still drawn', () => {
  const base = rrSnapshot();
  const names = ['m1', 'm2', 'm3', 'm4', 'm5'];
  const nodes = names.map((name, i) => {
    const n = node(name, 0, i + 1);
    return { ...n, routeReflector: false, bgpPeers: names.filter((o) => o !== name).map((o, j) => ({ peer: `198.18.0.${11 + names.indexOf(o)}`, node: o, asn: '64512', role: 'mesh', state: name === 'm1' && o === 'm5' ? 'Connect' : 'Established' })) };
  });
  const model = topologyOf({ ...base, nodes, services: [] });
  const mesh = model.tunnels.find((t) => t.kind === 'ibgp-mesh');
  assert.ok(mesh, 'a mesh bus');
  assert.deepEqual([...mesh.members].sort(), names);
  assert.match(mesh.label, /10 sessions, 9 Established/);
  assert.deepEqual(model.sessions.map((s) => `${s.a}-${s.b}:${s.state}`), ['m1-m5:Connect']);
});

test('renderDot: one cluster per rack holding exactly its nodes, one edge per tunnel member, Graphviz accepts it', () => {
  const model = topologyOf(rrSnapshot());
  const dot = renderDot(model);
  const clusters = [...dot.matchAll(/subgraph "cluster_rack_\d+" \{([\s\S]*?)\n {2}\}/g)].map((m) => [...(m[1] ?? '').matchAll(/"node\/([^"]+)" \[/g)].map((x) => x[1]));
  assert.deepEqual(clusters, [['a1', 'a2'], ['b1', 'b2', 'b3']]);
  assert.equal([...dot.matchAll(/-- "tunnel\/ipip"/g)].length, 5);
  assert.match(dot, /"node\/b1" -- "node\/b3" \[color="#d62728"/);
  assert.match(dot, /"svc\/default\/web" -- "node\/a1" \[dir=forward, [^\]]*label="2"\]/);
  assert.match(dot, /"svc\/default\/empty" \[label="[^"]*no endpoints"/);
  const graphviz = spawnSync('dot', ['-Tsvg'], { input: dot, encoding: 'utf8' });
  if (graphviz.error) return; // Graphviz not installed: the structure checks above stand
  assert.equal(graphviz.status, 0, graphviz.stderr);
  assertWellFormedXml(graphviz.stdout);
});

test('renderDot quotes what would break the syntax', () => {
  const model: TopologyModel = { ...syntheticModel(2, 1), cluster: 'a "quoted" \\ name' };
  const dot = renderDot(model);
  assert.ok(dot.startsWith('graph "pontoon a \\"quoted\\" \\\\ name" {'));
});

test('renderSvg: well-formed, every node once, boxes apart, escapes text', () => {
  const snapshot = rrSnapshot();
  const model = topologyOf({ ...snapshot, services: [...snapshot.services, { namespace: 'x', name: '<b>&', type: 'ClusterIP', clusterIp: '10.96.0.12', ports: [], endpoints: [] }] });
  const svg = renderSvg(model);
  assertWellFormedXml(svg);
  for (const name of ['a1', 'a2', 'b1', 'b2', 'b3']) assert.equal(svg.split(`id="node/${name}"`).length - 1, 1, name);
  assert.ok(svg.includes('x/&lt;b&gt;&amp;'));
  const layout = layoutTopology(model);
  const boxes = [...layout.nodes.values(), ...layout.services.values(), ...layout.peers.values()];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) assert.ok(!overlaps(boxes[i]!, boxes[j]!), `boxes ${i} and ${j} overlap`);
});

test('renderSvg at 50 nodes in 4 racks: all drawn, one column per rack, nothing overlaps, fits the canvas', () => {
  const model = syntheticModel(50, 4);
  const svg = renderSvg(model);
  assertWellFormedXml(svg);
  const drawn = [...svg.matchAll(/<g class="node" id="node\/([^"]+)"/g)].map((m) => m[1]);
  assert.equal(drawn.length, 50);
  assert.deepEqual([...new Set(drawn)].sort(), model.racks.flatMap((r) => r.nodes.map((n) => n.name)).sort());
  const layout = layoutTopology(model);
  for (const rack of model.racks) assert.equal(new Set(rack.nodes.map((n) => layout.nodes.get(n.name)?.x)).size, 1, `rack ${rack.id} is one column`);
  const boxes = [...layout.nodes.values(), ...layout.services.values()];
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i]!;
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= layout.width && b.y + b.height <= layout.height, `box ${i} outside the canvas`);
    for (let j = i + 1; j < boxes.length; j++) assert.ok(!overlaps(b, boxes[j]!), `boxes ${i} and ${j} overlap`);
  }
  // 13 rows at most: the drawing grows with the tallest rack, not with the node count squared.
  assert.ok(layout.height < 1200, `height ${layout.height}`);
  // One rail per rack plus one bus for the VXLAN mesh, not 1225 tunnel lines.
  assert.ok((svg.match(/<line /g) ?? []).length < 50 * 3 + 12 * 2 + 50);
});

test('renderStatus and problemsOf name the unhealthy daemon on its node and the broken peer', () => {
  const snapshot = rrSnapshot();
  const problems = problemsOf(snapshot);
  assert.deepEqual(problems.filter((p) => p.startsWith('flanneld')), ['flanneld on b3 unreachable: ECONNREFUSED']);
  assert.ok(problems.includes('bgp on b1: peer 198.18.1.15 Active'));
  const text = renderStatus(snapshot, Date.parse('2026-01-01T00:05:00Z'));
  const b3 = text.split('\n').find((line) => line.startsWith('b3 '));
  assert.ok(b3?.includes('DOWN'), b3);
  const a1 = text.split('\n').find((line) => line.startsWith('a1 '));
  assert.ok(a1 && !a1.includes('DOWN') && a1.includes('(RR)'), a1);
  assert.match(text, /198\.18\.0\.1\s+65000\s+tor\s+Established/);
});

test('parseExposition reads prom-client output and rejects what a scraper would', async () => {
  const registry = new Registry();
  new Counter({ name: 'x_total', help: 'a "help"\nline', labelNames: ['path'], registers: [registry] }).inc({ path: 'a"b\\c' }, 3);
  new Histogram({ name: 'x_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] }).observe(0.5);
  const parsed = parseExposition(await registry.metrics());
  assert.equal(valueOf(parsed, 'x_total', { path: 'a"b\\c' }), 3);
  assert.equal(parsed.types.get('x_seconds'), 'histogram');
  assert.deepEqual(samplesOf(parsed, 'x_seconds_bucket').map((s) => [s.labels['le'], s.value]), [['0.1', 0], ['1', 1], ['+Inf', 1]]);
  for (const bad of ['x{a=b} 1', 'x 1 2 3', 'x one', '# TYPE x countr', '1x 2', 'x{a="b" 1']) assert.throws(() => parseExposition(bad), ExpositionError, bad);
  assert.throws(() => parseExposition('# TYPE x gauge\n# TYPE x gauge\nx 1'), ExpositionError);
});

test('serveTelemetry: /metrics with pontoon_ process metrics, /healthz following the health function, 404 elsewhere', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-telemetry-'));
  const socket = join(dir, 'm.sock');
  let ok = false;
  const registry = addProcessMetrics(new Registry(), 'test');
  const server = await serveTelemetry({ address: parseListenAddress(`unix:${socket}`, '--x'), registry, health: () => ({ healthy: ok, detail: 'not yet' }) });
  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      request({ socketPath: socket, path }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
        .on('error', reject)
        .end();
    });
  try {
    const metrics = parseExposition((await get('/metrics')).body);
    assert.ok(valueOf(metrics, 'pontoon_process_cpu_seconds_total') !== undefined);
    assert.ok(valueOf(metrics, 'pontoon_process_resident_memory_bytes')! > 0);
    assert.equal(valueOf(metrics, 'pontoon_build_info', { daemon: 'test' }), 1);
    assert.deepEqual(await get('/healthz'), { status: 503, body: 'unhealthy: not yet\n' });
    ok = true;
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok' });
    assert.equal((await get('/nope')).status, 404);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(parseListenAddress('[::1]:9', '--x'), { host: '::1', port: 9 });
  assert.throws(() => parseListenAddress('unix:relative', '--x'), /--x/);
});

test('httpGet gives up on a daemon that accepts the connection but never answers (stopped, hung)', async () => {
  const { createServer } = await import('node:net');
  const held: import('node:net').Socket[] = [];
  const silent = createServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  try {
    await assert.rejects(httpGet({ host: '127.0.0.1', port }, '/healthz', 300), /no answer within 300 ms/);
  } finally {
    for (const s of held) s.destroy();
    silent.close();
  }
});
