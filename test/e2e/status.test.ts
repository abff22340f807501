/**
 * `pontoon status`, `pontoon topology` and every daemon's /metrics and /healthz on a real lab:
 * BGP backend over two racks with a route reflector per rack (so IPIP between racks, plain
 * routes within, BGP sessions to show), process agents, the nftables proxy. What the command
 * prints is checked against what the lab itself knows (state.json's subnets from each node's
 * subnet.env, its racks), not against the command's own earlier output.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Node, Service } from '../../src/api/types.js';
import { adminClient, cliPath, clusterDown, type ClusterState, restartFlanneld, stopProcess } from '../../src/cli/cluster/cluster.js';
import { httpGet, type ProbeTarget } from '../../src/cli/status/probe.js';
import { type ClusterSnapshot, NODE_DAEMONS } from '../../src/cli/status/snapshot.js';
import { labSource } from '../../src/cli/status/sources.js';
import { parseExposition, valueOf } from '../../src/lib/prom-text.js';
import { testCluster } from '../helpers/cluster.js';
import { poll } from '../helpers/wait.js';

let state: ClusterState;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pontoon-status-'));
  state = await testCluster('bgp', { nodes: 3, racks: 2, pods: 0, controlPlane: true, routeReflectors: 1 });
});

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (state) await clusterDown(state.name);
});

function pontoon(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function status(): { code: number; snapshot: ClusterSnapshot } {
  const result = pontoon(['status', '--cluster', state.name, '--json']);
  assert.ok(result.stdout.startsWith('{'), `status --json printed no JSON: ${result.stderr}`);
  return { code: result.status, snapshot: JSON.parse(result.stdout) as ClusterSnapshot };
}

const rackSegment = (rack: number): string => `198.18.${rack}.0/24`;

test('status: every node Ready with its own subnet, the bgp backend, healthy daemons, Established peers, proxy rules', async () => {
  // BGP sessions come up a moment after the agents start; the command must then say all is well.
  const { code, snapshot } = await poll('a healthy status', () => {
    const s = status();
    return s.code === 0 ? s : false;
  }, { timeoutMs: 60_000, intervalMs: 1000, describe: () => pontoon(['status', '--cluster', state.name]).stdout });
  assert.equal(code, 0);
  assert.deepEqual(snapshot.nodes.map((n) => n.name).sort(), state.nodes.map((n) => n.name).sort());
  for (const labNode of state.nodes) {
    const n = snapshot.nodes.find((x) => x.name === labNode.name)!;
    assert.equal(n.ready, 'True', n.name);
    assert.equal(n.internalIp, labNode.underlayIp);
    assert.equal(n.lease?.subnet, labNode.subnet, `${n.name}'s lease vs its subnet.env`);
    assert.equal(n.rack, rackSegment(labNode.rack));
    assert.equal(n.backend, 'bgp/ipip cross-subnet');
    assert.deepEqual(n.daemons.map((d) => [d.daemon, d.health]).sort(), NODE_DAEMONS.map((d) => [d, 'healthy']).sort(), n.name);
    assert.equal(n.proxy?.mode, 'nftables');
    assert.ok((n.proxy?.rules ?? 0) > 0, `${n.name} proxy rules`);
    assert.ok(n.proxy?.lastSync && Date.parse(n.proxy.lastSync) > Date.parse(snapshot.gatheredAt) - 3600_000);
    // Every other node is a peer (through the reflectors) or this node is one's client.
    assert.ok(n.bgpPeers.length > 0 && n.bgpPeers.every((p) => p.state === 'Established'), JSON.stringify(n.bgpPeers));
    for (const p of n.bgpPeers) assert.ok(p.since && p.node, JSON.stringify(p));
  }
  const reflectors = snapshot.nodes.filter((n) => n.routeReflector).map((n) => n.rack).sort();
  assert.deepEqual(reflectors, [rackSegment(0), rackSegment(1)]);
  assert.equal(snapshot.controlPlane.apiserver.health, 'healthy');
  assert.deepEqual(snapshot.controlPlane.components.map((c) => [c.daemon, c.health]), [['controller-manager', 'healthy'], ['scheduler', 'healthy']]);
  const text = pontoon(['status', '--cluster', state.name]);
  assert.equal(text.status, 0, text.stdout);
  for (const labNode of state.nodes) assert.match(text.stdout, new RegExp(`^${labNode.name}\\s+Ready\\s+${labNode.underlayIp.replace(/\./g, '\\.')}`, 'm'));
  // The lab's kubeconfig alone also finds the lab.
  assert.equal(pontoon(['status', '--kubeconfig', state.controlPlane!.kubeconfig, '--json']).status, 0);
});

/** The official Python client's parser, as an outside judge of the exposition format. */
function pythonParses(text: string): { ok: boolean; error: string; names: string[] } {
  const program = 'import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families as p\nprint(json.dumps(sorted({s.name for f in p(sys.stdin.read()) for s in f.samples})))';
  const result = spawnSync('/usr/bin/python3', ['-c', program], { input: text, encoding: 'utf8' });
  return { ok: result.status === 0, error: result.stderr, names: result.status === 0 ? (JSON.parse(result.stdout) as string[]) : [] };
}

test('every daemon serves /metrics in the exposition format with pontoon_ process metrics, and /healthz', async () => {
  const source = labSource(state, 3000);
  const nodes = await adminClient(state).list<Node>(RESOURCE.nodes);
  const targets: { what: string; metrics: ProbeTarget; health: ProbeTarget }[] = [];
  for (const node of nodes.items) for (const daemon of NODE_DAEMONS) targets.push({ what: `${daemon} on ${node.metadata.name}`, ...source.nodeTargets(node, daemon) });
  for (const c of source.controlPlane) targets.push({ what: c.component, metrics: c.target, health: c.target });
  // Cluster DNS is not part of a process-agents lab: run one in n1's namespace for this.
  const n1 = state.nodes[0]!;
  const dns = spawn('ip', ['netns', 'exec', n1.netns, process.execPath, cliPath(), 'dns', '--kubeconfig', join(n1.dir, 'kubeconfig'), '--listen', '127.0.0.1:1053', '--log-level', 'warn'], { stdio: 'ignore' });
  try {
    targets.push({ what: 'dns', metrics: { netns: n1.netns, host: '127.0.0.1', port: 9153 }, health: { netns: n1.netns, host: '127.0.0.1', port: 9153 } });
        for (const t of targets) {
      const health = await poll(`${t.what} /healthz`, () => httpGet(t.health, '/healthz', 3000).then((a) => (a.status === 200 ? a : false)), { timeoutMs: 20_000, retryErrors: true });
      // kube-proxy's 10256 answers with its JSON (lastUpdated, currentTime); the others say ok.
      if (!t.what.startsWith('proxy')) assert.equal(health.body.trim(), 'ok', t.what);
      else assert.ok((JSON.parse(health.body) as { lastUpdated?: string }).lastUpdated, t.what);
      const metrics = await httpGet(t.metrics, '/metrics', 3000);
      assert.equal(metrics.status, 200, t.what);
      const parsed = parseExposition(metrics.body);
      for (const name of ['pontoon_process_cpu_seconds_total', 'pontoon_process_resident_memory_bytes', 'pontoon_process_open_fds']) assert.ok(valueOf(parsed, name) !== undefined, `${t.what}: no ${name}`);
      assert.ok(parsed.samples.some((s) => s.name === 'pontoon_build_info'), t.what);
      // scripts/setup.sh installs python3-prometheus-client; without it this fails, never skips.
      const judged = pythonParses(metrics.body);
      assert.ok(judged.ok, `${t.what}: prometheus_client rejects it: ${judged.error}`);
      assert.ok(judged.names.includes('pontoon_process_cpu_seconds_total'), t.what);
    }
    // The daemons' own series, each where it belongs.
    const firstNode = nodes.items[0]!;
    const flanneld = parseExposition((await httpGet(source.nodeTargets(firstNode, 'flanneld').metrics, '/metrics', 3000)).body);
    const lease = state.nodes.find((n) => n.name === firstNode.metadata.name)!.subnet;
    assert.equal(valueOf(flanneld, 'pontoon_flanneld_lease_info', { subnet: lease, backend: 'alloc' }), 1);
    const proxy = parseExposition((await httpGet(source.nodeTargets(firstNode, 'proxy').metrics, '/metrics', 3000)).body);
    assert.ok(valueOf(proxy, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds')! > 0, 'upstream kube-proxy names stay');
    const client = adminClient(state);
    const apiserver = parseExposition(await client.requestText('GET', '/metrics'));
    assert.ok(valueOf(apiserver, 'pontoon_process_cpu_seconds_total') !== undefined);
    assert.ok(parseExposition(await client.requestText('GET', '/metrics')).samples.some((s) => s.name === 'apiserver_request_total' && s.labels['verb'] === 'GET' && s.value >= 1));
  } finally {
    dns.kill('SIGTERM');
  }
});

test('topology: dot and SVG hold the lab’s racks, nodes, IPIP and routes, BGP sessions and Services with their endpoints', async () => {
  const client = adminClient(state);
  const n2 = state.nodes[1]!;
  await client.create<Service>(RESOURCE.services, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'topo-web', namespace: 'default' }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } });
  await client.create<EndpointSlice>(RESOURCE.endpointslices, {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'topo-web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'topo-web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [n2.subnet.replace(/0\/24$/, '7')], nodeName: n2.name, conditions: { ready: true } }],
    ports: [{ port: 8080, protocol: 'TCP' }],
  });
  const dot = pontoon(['topology', '--cluster', state.name, '--dot']);
  assert.equal(dot.status, 0, dot.stderr);
  for (const node of state.nodes) assert.match(dot.stdout, new RegExp(`"node/${node.name}" \\[label="${node.name}`));
  for (const rack of [0, 1]) assert.ok(dot.stdout.includes(`label="rack ${rackSegment(rack)}"`), `rack ${rack}`);
  assert.match(dot.stdout, /"tunnel\/ipip" \[label="IPIP \(across racks\)/);
  assert.match(dot.stdout, /"tunnel\/routes" \[label="BGP routes \(same rack\)/);
  // Each client's session with its rack's reflector is an edge (the rack holding two nodes has one).
  assert.ok(/"node\/n\d" -- "node\/n\d" \[color="#2ca02c", label="rr"\]/.test(dot.stdout), 'an RR session edge');
  assert.match(dot.stdout, new RegExp(`"svc/default/topo-web" -- "node/${n2.name}" \\[dir=forward, [^\\]]*label="1"\\]`));
  assert.match(dot.stdout, /"svc\/default\/kubernetes"/);
  assert.equal(spawnSync('dot', ['-Tsvg', '-o', '/dev/null'], { input: dot.stdout }).status, 0, 'graphviz accepts the dot');

  const file = join(dir, 'lab.svg');
  const svg = pontoon(['topology', '--cluster', state.name, '--svg', file]);
  assert.equal(svg.status, 0, svg.stderr);
  const text = readFileSync(file, 'utf8');
  const wellFormed = spawnSync('/usr/bin/python3', ['-c', 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])', file]);
  assert.equal(wellFormed.status, 0, wellFormed.stderr?.toString());
  for (const node of state.nodes) assert.equal(text.split(`id="node/${node.name}"`).length - 1, 1, node.name);
  assert.ok(text.includes('id="tunnel/ipip"') && text.includes('id="svc/default/topo-web"'));
  const graphviz = pontoon(['topology', '--cluster', state.name, '--svg', join(dir, 'gv.svg'), '--graphviz']);
  assert.equal(graphviz.status, 0, graphviz.stderr);
});

test('a stopped flanneld shows as unhealthy on exactly that node, and status exits 1', async () => {
  const victim = state.nodes[1]!;
  await stopProcess(victim.flanneldPid, 'flanneld');
  try {
    const { code, snapshot } = status();
    assert.equal(code, 1);
    for (const n of snapshot.nodes) {
      const flanneld = n.daemons.find((d) => d.daemon === 'flanneld');
      assert.equal(flanneld?.health, n.name === victim.name ? 'unreachable' : 'healthy', n.name);
      for (const d of n.daemons.filter((x) => x.daemon !== 'flanneld')) assert.equal(d.health, 'healthy', `${d.daemon} on ${n.name}`);
    }
    const text = pontoon(['status', '--cluster', state.name]).stdout;
    assert.deepEqual(text.split('\n').filter((l) => l.startsWith('✗')), [`✗ flanneld on ${victim.name} unreachable: connect ECONNREFUSED 127.0.0.1:8471`]);
  } finally {
    await restartFlanneld(state, victim);
  }
});
