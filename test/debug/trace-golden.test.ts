/**
 * The path computation on committed snapshots (test/fixtures/trace/*.json, taken from real
 * lab agents): golden renderings of healthy paths, and each kind of breakage applied to a
 * copy of the snapshot — the walk must stop at exactly the hop that was broken, on the node
 * where it was broken. Set PONTOON_UPDATE_GOLDEN=1 to rewrite the golden files after a
 * deliberate change of the output (and read the diff).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { NetState } from '../../src/debug/netstate.js';
import { renderTrace } from '../../src/debug/trace/render.js';
import { type NodeFacts, tracePath, type TraceRequest } from '../../src/debug/trace/walk.js';
import { ROOT } from '../helpers/cni.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'trace');

interface Fixture {
  nodes: Record<string, { state: NetState; facts: NodeFacts }>;
  podNames: Record<string, string>;
  services: Record<string, { ip: string; port: number; endpoints: string[] }>;
}

function load(name: string): Fixture {
  return JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Fixture;
}

function request(fixture: Fixture, from: TraceRequest['from'], dst: string, extra: Partial<TraceRequest> = {}): TraceRequest {
  return {
    nodes: new Map(Object.entries(fixture.nodes)),
    podNames: new Map(Object.entries(fixture.podNames)),
    from,
    dst,
    proto: 'tcp',
    dport: 8080,
    dstLabel: dst,
    ...extra,
  };
}

function checkGolden(file: string, text: string): void {
  const path = join(FIXTURES, file);
  if (process.env['PONTOON_UPDATE_GOLDEN'] === '1' || !existsSync(path)) writeFileSync(path, text);
  assert.equal(text, readFileSync(path, 'utf8'), `${file} differs (PONTOON_UPDATE_GOLDEN=1 rewrites it)`);
}

/** The pod on `node` in the fixture: its IP and name. */
function podOn(fixture: Fixture, node: string): { ip: string; name: string } {
  const state = fixture.nodes[node]?.state;
  const ip = Object.keys(fixture.podNames).find((candidate) => state?.pods.some((p) => p.addresses.some((a) => a.address.startsWith(`${candidate}/`))));
  assert.ok(ip, `no API pod on ${node} in the fixture`);
  return { ip, name: fixture.podNames[ip] ?? ip };
}

function lastHop(result: ReturnType<typeof tracePath>): { node: string; step: string; detail: string; reason?: string } {
  const hop = result.hops.at(-1);
  assert.ok(hop);
  return hop;
}

describe('trace on the vxlan + nftables snapshot', () => {
  const fixture = load('vxlan-nftables');
  const a = podOn(fixture, 'n1');
  const b = podOn(fixture, 'n2');
  const fromA = { kind: 'pod' as const, node: 'n1', ...a };
  const web = fixture.services['default/web'];
  assert.ok(web);

  test('pod → pod on another node arrives through VXLAN (golden)', () => {
    const result = tracePath(request(fixture, fromA, b.ip));
    assert.equal(result.arrived, true, renderTrace('', result));
    checkGolden('vxlan-nftables.pod-to-pod.txt', renderTrace(`trace ${a.name} → ${b.name}`, result));
    const encap = result.hops.find((h) => h.step === 'encap');
    assert.match(encap?.detail ?? '', /VXLAN VNI 1/);
    assert.equal(result.final.dst, b.ip);
  });

  test('pod → Service is DNATed to an endpoint, and every candidate path arrives (golden)', () => {
    const result = tracePath(request(fixture, fromA, web.ip, { dport: web.port, service: { name: 'default/web', endpoints: web.endpoints } }));
    assert.equal(result.arrived, true, renderTrace('', result));
    const dnat = result.hops.find((h) => h.candidates);
    assert.deepEqual([...(dnat?.candidates ?? [])].map((c) => c.split(':')[0]).sort(), [...web.endpoints].sort());
    checkGolden('vxlan-nftables.pod-to-service.txt', renderTrace(`trace ${a.name} → svc/web`, result));
    for (const endpoint of dnat?.candidates ?? []) {
      const variant = tracePath(request(fixture, fromA, web.ip, { dport: web.port, preferEndpoint: endpoint, service: { name: 'default/web', endpoints: web.endpoints } }));
      assert.equal(variant.arrived, true, renderTrace(endpoint, variant));
      assert.equal(`${variant.final.dst}:${variant.final.dport ?? ''}`, endpoint);
    }
  });

  test('pod → pod on the same node is bridged at L2: no host route or netfilter hop', () => {
    const other = fixture.nodes['n1']!.state.pods.find((p) => !p.addresses.some((x) => x.address.startsWith(`${a.ip}/`)) && p.eth0);
    const otherIp = other?.addresses.find((x) => x.dev === 'eth0' && x.family === 4)?.address.split('/')[0];
    assert.ok(otherIp, 'the fixture has a second pod on n1');
    const result = tracePath(request(fixture, fromA, otherIp));
    assert.equal(result.arrived, true, renderTrace('', result));
    assert.equal(result.hops.some((h) => h.step === 'route'), false, renderTrace('', result));
    // The lab host has br_netfilter loaded: bridged frames meet the IP hooks, and only then.
    const hooks = result.hops.some((h) => h.step.startsWith('nf '));
    assert.equal(hooks, fixture.nodes['n1']!.state.sysctls.bridgeNfCallIptables === true, renderTrace('', result));
    assert.match(result.hops.find((h) => h.step === 'bridge')?.detail ?? '', /bridges veth\S+ → veth\S+/);
  });

  test('node → pod on another node arrives', () => {
    const result = tracePath(request(fixture, { kind: 'node', node: 'n2' }, a.ip));
    assert.equal(result.arrived, true, renderTrace('', result));
  });

  /** A deep copy to break. */
  function broken(change: (nodes: Fixture['nodes']) => void): Fixture {
    const copy = structuredClone(fixture);
    change(copy.nodes);
    return copy;
  }

  test('a missing FDB entry stops the packet at the fdb hop on the sending node', () => {
    const copy = broken((nodes) => {
      const state = nodes['n1']!.state;
      state.fdb = state.fdb.filter((f) => !(f.dev === 'flannel.1' && f.dst));
    });
    const result = tracePath(request(copy, fromA, b.ip));
    assert.equal(result.arrived, false);
    assert.equal(lastHop(result).step, 'fdb');
    assert.equal(lastHop(result).node, 'n1');
  });

  test('a missing neighbour entry stops it at the neighbour hop', () => {
    const copy = broken((nodes) => {
      const state = nodes['n1']!.state;
      state.neighbours = state.neighbours.filter((n) => n.dev !== 'flannel.1' || n.family !== 4);
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n1', 'neighbour']);
  });

  test('a missing route stops it at the route hop', () => {
    const copy = broken((nodes) => {
      const state = nodes['n1']!.state;
      state.routes = state.routes.filter((r) => !(r.dev === 'flannel.1' && r.table === 254));
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n1', 'route']);
    assert.match(hop.reason ?? '', /no route/);
  });

  test('a DROP rule in the forward hook is named with its table, chain, handle and counter', () => {
    const copy = broken((nodes) => {
      const state = nodes['n2']!.state;
      state.nftables!.nftables.push(
        { table: { family: 'ip', name: 'breakme' } },
        { chain: { family: 'ip', table: 'breakme', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
        { rule: { family: 'ip', table: 'breakme', chain: 'fwd', handle: 7, expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: b.ip } }, { counter: { packets: 3, bytes: 180 } }, { drop: null }] } },
      );
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n2', 'nf forward']);
    assert.match(hop.detail, /table ip breakme chain fwd handle 7/);
    assert.match(hop.detail, /3 pkts 180 bytes/);
  });

  test('an iptables DROP rule is named by chain and rule number', () => {
    const copy = broken((nodes) => {
      const state = nodes['n2']!.state;
      state.iptables = (state.iptables ?? '').replace(/(\*filter\n(?::.*\n)*)/, `$1[5:300] -A FORWARD -d ${b.ip}/32 -p tcp -j DROP\n`);
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n2', 'nf forward']);
    assert.match(hop.detail, /iptables -t filter chain FORWARD rule 1/);
  });

  test('a Service without endpoints is rejected by the proxy rule for it', () => {
    const copy = broken((nodes) => {
      const state = nodes['n1']!.state;
      for (const object of state.nftables!.nftables) {
        const map = object['map'] as { name?: string; elem?: unknown[] } | undefined;
        if (map?.name === 'service-ips') map.elem = (map.elem ?? []).filter((e) => !JSON.stringify(e).includes(web.ip));
        const set = object['set'] as { name?: string; elem?: unknown[] } | undefined;
        if (set?.name === 'no-endpoint-services') set.elem = [{ concat: [web.ip, 'tcp', web.port] }];
      }
    });
    const result = tracePath(request(copy, fromA, web.ip, { dport: web.port, service: { name: 'default/web', endpoints: [] } }));
    const hop = lastHop(result);
    assert.equal(result.arrived, false);
    assert.match(hop.detail, /service-endpoints-check/);
    assert.match(hop.reason ?? '', /no endpoints/);
  });

  test('strict rp_filter with an asymmetric reverse route stops it at rp_filter', () => {
    const copy = broken((nodes) => {
      const state = nodes['n2']!.state;
      state.sysctls.rpFilter['flannel.1'] = 1;
      state.routes.push({ family: 4, dst: `${a.ip}/32`, table: 254, protocol: 4, scope: 0, type: 1, gateway: '198.18.0.11', dev: 'eth0' });
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n2', 'rp_filter']);
  });

  test('ip_forward off stops it where the node should forward', () => {
    const copy = broken((nodes) => {
      nodes['n1']!.state.sysctls.ipForward = false;
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n1', 'forward']);
  });

  test('a link down is named: the destination pod’s veth', () => {
    const copy = broken((nodes) => {
      const state = nodes['n2']!.state;
      const veth = state.pods.find((p) => p.addresses.some((x) => x.address.startsWith(`${b.ip}/`)))?.hostVeth;
      const link = state.links.find((l) => l.name === veth);
      assert.ok(link);
      link.up = false;
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n2', 'veth']);
    assert.match(hop.reason ?? '', /down/);
  });

  test('an underlay MTU below the encapsulated size is named', () => {
    const copy = broken((nodes) => {
      const eth0 = nodes['n1']!.state.links.find((l) => l.name === 'eth0');
      assert.ok(eth0);
      eth0.mtu = 1400;
    });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n1', 'mtu']);
    assert.match(hop.reason ?? '', /1500 bytes > eth0 mtu 1400/);
  });
});

describe('trace on the host-gw + iptables snapshot', () => {
  const fixture = load('hostgw-iptables');
  const a = podOn(fixture, 'n1');
  const b = podOn(fixture, 'n2');
  const fromA = { kind: 'pod' as const, node: 'n1', ...a };
  const web = fixture.services['default/web'];
  assert.ok(web);

  test('pod → pod routes via the peer node’s underlay address, no encapsulation (golden)', () => {
    const result = tracePath(request(fixture, fromA, b.ip));
    assert.equal(result.arrived, true, renderTrace('', result));
    assert.equal(result.hops.some((h) => h.step === 'encap'), false);
    const route = result.hops.find((h) => h.node === 'n1' && h.step === 'route');
    assert.match(route?.detail ?? '', /via 198\.18\.0\.12 dev eth0/);
    checkGolden('hostgw-iptables.pod-to-pod.txt', renderTrace(`trace ${a.name} → ${b.name}`, result));
  });

  test('pod → Service: kube-proxy chains pick each endpoint, and each path arrives (golden)', () => {
    const base = request(fixture, fromA, web.ip, { dport: web.port, service: { name: 'default/web', endpoints: web.endpoints } });
    const result = tracePath(base);
    assert.equal(result.arrived, true, renderTrace('', result));
    checkGolden('hostgw-iptables.pod-to-service.txt', renderTrace(`trace ${a.name} → svc/web`, result));
    const candidates = result.hops.find((h) => h.candidates)?.candidates ?? [];
    assert.deepEqual(candidates.map((c) => c.split(':')[0]).sort(), [...web.endpoints].sort());
    const reached = candidates.map((endpoint) => {
      const variant = tracePath({ ...base, preferEndpoint: endpoint });
      assert.equal(variant.arrived, true, renderTrace(endpoint, variant));
      return `${variant.final.dst}:${variant.final.dport ?? ''}`;
    });
    assert.deepEqual(reached, candidates);
  });

  test('a FAILED neighbour for the next-hop node is named', () => {
    const copy = structuredClone(fixture);
    const state = copy.nodes['n1']!.state;
    state.neighbours = state.neighbours.filter((n) => n.ip !== '198.18.0.12');
    state.neighbours.push({ family: 4, ip: '198.18.0.12', dev: 'eth0', state: 0x20 });
    const hop = lastHop(tracePath(request(copy, fromA, b.ip)));
    assert.deepEqual([hop.node, hop.step], ['n1', 'neighbour']);
  });
});
