/** `peersFor`: who a node peers with, per topology (pure). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type NodeFacts, peersFor } from '../../src/bgp/node-agent.js';
import { formatIp, parseIp } from '../../src/lib/ip.js';

const node = (name: string, address: string, reflector = false, asn = 64512): NodeFacts => ({ name, address: parseIp(address), asn, reflector });
const nodes = [node('n1', '198.18.0.11', true), node('n2', '198.18.1.12'), node('n3', '198.18.0.13')];
const addresses = (peers: ReturnType<typeof peersFor>): string[] => peers.map((p) => formatIp(p.address));

test('mesh and route reflectors are unchanged without a tor peer', () => {
  assert.deepEqual(addresses(peersFor(nodes[1] as NodeFacts, nodes)), ['198.18.0.11']);
  assert.deepEqual(addresses(peersFor(nodes[0] as NodeFacts, nodes)), ['198.18.1.12', '198.18.0.13']);
  const mesh = nodes.map((n) => ({ ...n, reflector: false }));
  assert.deepEqual(addresses(peersFor(mesh[0] as NodeFacts, mesh)), ['198.18.1.12', '198.18.0.13']);
});

test('tor: the rack router is the only peer, eBGP, passive (the router connects)', () => {
  const peers = peersFor(node('n2', '198.18.1.12', false, 64513), nodes, { address: parseIp('198.18.1.1'), asn: 65000 });
  assert.equal(peers.length, 1);
  assert.deepEqual({ ...peers[0], address: formatIp(peers[0]?.address ?? parseIp('0.0.0.0')) }, { address: '198.18.1.1', asn: 65000, port: 179, routeReflectorClient: false, passive: true, description: 'tor' });
});
