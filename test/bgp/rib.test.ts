import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rib, type PeerExportOptions } from '../../src/bgp/rib/rib.js';
import { UnknownPeerError } from '../../src/bgp/rib/errors.js';
import { prefixFromKey, prefixKey } from '../../src/bgp/rib/prefix.js';
import { ATTR_FLAG, type PeerRef, type UpdateMessage } from '../../src/bgp/types.js';
import { announce, attrs, ip, net, peer, prefixesOf, prng, rid, seq, shuffle, slash24s, withdraw } from './rib-fixtures.js';

const ASN = 65000;
const ROUTER_ID = rid('10.0.0.1');
const CLUSTER_ID = rid('10.0.0.1');

function exportOptions(v4: string, v6?: string): PeerExportOptions {
  return {
    localAddress: { 'ipv4-unicast': ip(v4), 'ipv6-unicast': v6 === undefined ? undefined : ip(v6) },
    families: v6 === undefined ? ['ipv4-unicast'] : ['ipv4-unicast', 'ipv6-unicast'],
  };
}

function addAll(rib: Rib, ...peers: PeerRef[]): void {
  for (const p of peers) rib.addPeer(p, exportOptions('10.0.0.1', 'fd00::1'));
}

/** The one UPDATE carrying `prefix` in a drain, or undefined. */
function updateFor(updates: readonly UpdateMessage[], prefix: string): UpdateMessage | undefined {
  const target = net(prefix);
  return updates.find((u) => [...u.nlri, ...(u.mpReach?.nlri ?? [])].some((p) => p.value === target.value && p.prefixLength === target.prefixLength));
}

describe('Rib: Loc-RIB changes', () => {
  it('reports a new prefix, then falls back to the next best on withdrawal, then reports it gone', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    const b = peer('192.0.2.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, a, b);
    const first = rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('192.0.2.1') })));
    assert.equal(first.changed.length, 1);
    assert.equal(first.changed[0]?.previous, undefined);
    assert.equal(first.changed[0]?.best?.from.id, a.id);

    const worse = rib.receive(b.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65200, 1), nextHop: ip('192.0.2.2') })));
    assert.deepEqual(worse.changed, [], 'a worse path does not change the best');

    const fallback = rib.receive(a.id, withdraw(['10.1.0.0/16']));
    assert.equal(fallback.changed.length, 1);
    assert.equal(fallback.changed[0]?.previous?.from.id, a.id);
    assert.equal(fallback.changed[0]?.best?.from.id, b.id);
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.from.id, b.id);

    const gone = rib.receive(b.id, withdraw(['10.1.0.0/16']));
    assert.equal(gone.changed[0]?.best, undefined);
    assert.equal(rib.bestFor(net('10.1.0.0/16')), undefined);
    assert.equal(rib.stats().paths, 0);
  });

  it('paths come and go one peer at a time: the best and the path count follow through one, three, one and none', () => {
    // The Loc-RIB keeps a lone path without an array and switches form as peers come and go.
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const peers = [1, 2, 3].map((i) => peer(`192.0.2.${i}`, { type: 'ebgp', asn: 65100 + i }));
    const [a, b, c] = peers as [PeerRef, PeerRef, PeerRef];
    addAll(rib, a, b, c);
    const prefix = '10.9.0.0/16';
    // Shorter AS_PATH wins: c (1 hop) over b (2) over a (3).
    const from = (p: PeerRef, hops: number): void => void rib.receive(p.id, announce([prefix], attrs({ asPath: seq(...Array.from({ length: hops }, () => p.asn)), nextHop: p.address })));
    const best = (): string | undefined => rib.bestFor(net(prefix))?.from.id;
    from(a, 3);
    assert.equal(best(), a.id);
    from(a, 3); // the same peer again while alone: still one path
    assert.equal(rib.stats().paths, 1);
    from(b, 2);
    from(c, 1);
    assert.deepEqual([best(), rib.stats().paths], [c.id, 3]);
    rib.receive(c.id, withdraw([prefix]));
    assert.deepEqual([best(), rib.stats().paths], [b.id, 2]);
    rib.receive(b.id, withdraw([prefix]));
    assert.deepEqual([best(), rib.stats().paths], [a.id, 1]);
    rib.receive(b.id, withdraw([prefix])); // b has no path any more: nothing happens
    assert.deepEqual([best(), rib.stats().paths], [a.id, 1]);
    from(c, 1); // back to two from one
    assert.deepEqual([best(), rib.stats().paths], [c.id, 2]);
    rib.receive(c.id, withdraw([prefix]));
    rib.receive(a.id, withdraw([prefix]));
    assert.deepEqual([best(), rib.stats().paths], [undefined, 0]);
    from(b, 2); // the prefix comes back after it was dropped
    assert.deepEqual([best(), rib.stats().paths], [b.id, 1]);
  });

  it('a re-announcement with identical attributes is not a change', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, a);
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('192.0.2.1') })));
    assert.deepEqual(rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('192.0.2.1') }))).changed, []);
    assert.equal(rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('192.0.2.9') }))).changed.length, 1);
  });

  it('the best does not depend on the order UPDATEs arrive in (seeded shuffle)', () => {
    const random = prng(7);
    const peers = Array.from({ length: 6 }, (_, i) =>
      peer(`192.0.2.${i + 1}`, { type: i % 2 === 0 ? 'ebgp' : 'ibgp', asn: i % 2 === 0 ? 65100 + (i % 3) : ASN, routerId: 100 - i }),
    );
    const updates = peers.flatMap((p, i) => [
      { from: p, update: announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100 + (i % 3)), med: (i * 7) % 3, nextHop: p.address })) },
      { from: p, update: announce(['10.3.0.0/16'], attrs({ asPath: seq(65100 + (i % 2), 1), med: i % 2, nextHop: p.address })) },
    ]);
    let expected: string | undefined;
    for (let trial = 0; trial < 30; trial++) {
      const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
      addAll(rib, ...peers);
      for (const { from, update } of shuffle(updates, random)) rib.receive(from.id, update);
      const bests = ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16'].map((p) => rib.bestFor(net(p))?.from.id).join(',');
      expected ??= bests;
      assert.equal(bests, expected);
    }
  });

  it('nextHopUsable removes candidates, and reevaluateNextHops applies new answers', () => {
    const unreachable = new Set<string>(['192.0.2.1']);
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID }, { nextHopUsable: (r) => !unreachable.has(r.from.id) });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    const b = peer('192.0.2.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, a, b);
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: a.address })));
    assert.equal(rib.bestFor(net('10.1.0.0/16')), undefined);
    rib.receive(b.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65200, 1), nextHop: b.address })));
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.from.id, b.id);
    unreachable.clear();
    const changes = rib.reevaluateNextHops();
    assert.equal(changes.changed.length, 1);
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.from.id, a.id);
  });

  it('treat-as-withdraw removes the NLRI the UPDATE carries', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, a);
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: a.address })));
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: a.address })), { treatAsWithdraw: true });
    assert.equal(rib.bestFor(net('10.1.0.0/16')), undefined);
  });

  it('refuses prefixes with host bits set and unknown peers', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, a);
    assert.throws(() => rib.receive(a.id, announce([{ family: 4, value: 0x0a010001n, prefixLength: 16 }], attrs())), { name: 'RibError' });
    assert.equal(rib.stats().paths, 0);
    assert.throws(() => rib.receive('192.0.2.99', withdraw([])), UnknownPeerError);
  });
});

describe('Rib: import policy', () => {
  it('drops eBGP routes whose AS_PATH contains our AS, and withdraws what they replace', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, a);
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: a.address })));
    const looped = rib.receive(a.id, announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100, ASN, 65300), nextHop: a.address })));
    assert.equal(looped.changed.length, 1, 'the earlier route for 10.1/16 is implicitly withdrawn');
    assert.equal(rib.bestFor(net('10.1.0.0/16')), undefined);
    assert.equal(rib.bestFor(net('10.2.0.0/16')), undefined);
    assert.deepEqual(rib.stats().perPeer.get(a.id), { received: 2, accepted: 0, advertised: 0 });
  });

  it('ignores LOCAL_PREF sent by an eBGP peer', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const a = peer('192.0.2.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, a);
    rib.receive(a.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: a.address, localPref: 500 })));
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.attributes.localPref, undefined);
  });

  it('an RR drops iBGP routes with its router id as ORIGINATOR_ID or its cluster id in CLUSTER_LIST', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID, clusterId: rid('10.0.0.100') });
    const client = peer('192.0.2.1', { type: 'ibgp', rrClient: true });
    addAll(rib, client);
    rib.receive(client.id, announce(['10.1.0.0/16'], attrs({ nextHop: client.address, originatorId: ROUTER_ID })));
    rib.receive(client.id, announce(['10.2.0.0/16'], attrs({ nextHop: client.address, originatorId: rid('1.2.3.4'), clusterList: [rid('10.0.0.7'), rid('10.0.0.100')] })));
    rib.receive(client.id, announce(['10.3.0.0/16'], attrs({ nextHop: client.address, originatorId: rid('1.2.3.4'), clusterList: [rid('10.0.0.7')] })));
    assert.deepEqual([...rib.adjRibIn(client.id)].map((r) => r.prefix.value), [net('10.3.0.0/16').value]);
  });
});

describe('Rib: export and route reflection (RFC 4456 §6)', () => {
  const rr = () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID, clusterId: CLUSTER_ID });
    const c1 = peer('192.0.2.1', { type: 'ibgp', rrClient: true, routerId: rid('1.1.1.1') });
    const c2 = peer('192.0.2.2', { type: 'ibgp', rrClient: true, routerId: rid('2.2.2.2') });
    const n1 = peer('192.0.2.3', { type: 'ibgp', routerId: rid('3.3.3.3') });
    const n2 = peer('192.0.2.4', { type: 'ibgp', routerId: rid('4.4.4.4') });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100, routerId: rid('5.5.5.5') });
    addAll(rib, c1, c2, n1, n2, e1);
    for (const p of [c1, c2, n1, n2, e1]) rib.drain(p.id);
    return { rib, c1, c2, n1, n2, e1 };
  };

  it('from a client: to the other clients and to non-clients, with ORIGINATOR_ID and CLUSTER_LIST', () => {
    const { rib, c1, c2, n1, e1 } = rr();
    rib.receive(c1.id, announce(['10.1.0.0/16'], attrs({ nextHop: ip('192.0.2.1'), localPref: 150, clusterList: [rid('10.9.9.9')] })));
    assert.deepEqual(rib.drain(c1.id), [], 'split horizon');
    for (const target of [c2, n1]) {
      const update = updateFor(rib.drain(target.id), '10.1.0.0/16');
      assert.ok(update?.attributes, `reflected to ${target.id}`);
      assert.equal(update.attributes.originatorId, c1.routerId);
      assert.deepEqual(update.attributes.clusterList, [CLUSTER_ID, rid('10.9.9.9')]);
      assert.deepEqual(update.attributes.nextHop, ip('192.0.2.1'), 'a reflector leaves the next hop alone');
      assert.equal(update.attributes.localPref, 150);
    }
    const external = updateFor(rib.drain(e1.id), '10.1.0.0/16')?.attributes;
    assert.ok(external);
    assert.equal(external.originatorId, undefined);
    assert.equal(external.clusterList, undefined);
    assert.equal(external.localPref, undefined);
    assert.deepEqual(external.asPath, seq(ASN));
    assert.deepEqual(external.nextHop, ip('10.0.0.1'));
  });

  it('keeps an existing ORIGINATOR_ID and never sends a route to the router it names', () => {
    const { rib, c1, c2, n1 } = rr();
    rib.receive(n1.id, announce(['10.1.0.0/16'], attrs({ nextHop: ip('192.0.2.3'), originatorId: c2.routerId, clusterList: [rid('10.9.9.9')] })));
    assert.equal(updateFor(rib.drain(c1.id), '10.1.0.0/16')?.attributes?.originatorId, c2.routerId);
    assert.deepEqual(rib.drain(c2.id), []);
  });

  it('from a non-client: to clients only', () => {
    const { rib, c1, c2, n1, n2 } = rr();
    rib.receive(n1.id, announce(['10.1.0.0/16'], attrs({ nextHop: ip('192.0.2.3') })));
    assert.ok(updateFor(rib.drain(c1.id), '10.1.0.0/16'));
    assert.ok(updateFor(rib.drain(c2.id), '10.1.0.0/16'));
    assert.deepEqual(rib.drain(n2.id), []);
    assert.deepEqual(rib.drain(n1.id), []);
  });

  it('from eBGP: to everyone, not reflected (no ORIGINATOR_ID), LOCAL_PREF 100 added, next hop kept', () => {
    const { rib, c1, c2, n1, n2, e1 } = rr();
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('198.51.100.1'), med: 30 })));
    for (const target of [c1, c2, n1, n2]) {
      const attributes = updateFor(rib.drain(target.id), '10.1.0.0/16')?.attributes;
      assert.ok(attributes, target.id);
      assert.equal(attributes.originatorId, undefined);
      assert.equal(attributes.clusterList, undefined);
      assert.equal(attributes.localPref, 100);
      assert.equal(attributes.med, 30, 'a MED from a neighbour AS may go to iBGP peers');
      assert.deepEqual(attributes.nextHop, ip('198.51.100.1'));
    }
    assert.deepEqual(rib.drain(e1.id), []);
  });

  it('a speaker that is not a reflector does not pass iBGP routes to iBGP peers', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const i1 = peer('192.0.2.1', { type: 'ibgp', rrClient: true });
    const i2 = peer('192.0.2.2', { type: 'ibgp' });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, i1, i2, e1);
    rib.receive(i1.id, announce(['10.1.0.0/16'], attrs({ nextHop: ip('192.0.2.1') })));
    assert.deepEqual(rib.drain(i2.id), []);
    assert.ok(updateFor(rib.drain(e1.id), '10.1.0.0/16'));
  });

  it('to eBGP: a learned MED is not passed on, our own MED is; PARTIAL set on unknown transitive attributes', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    const transitive = { flags: ATTR_FLAG.OPTIONAL | ATTR_FLAG.TRANSITIVE, typeCode: 99, value: new Uint8Array([1, 2]) };
    const nonTransitive = { flags: ATTR_FLAG.OPTIONAL, typeCode: 98, value: new Uint8Array([3]) };
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('198.51.100.1'), med: 30, unknown: [transitive, nonTransitive] })));
    rib.originate(net('10.244.1.0/24'), { med: 5 });
    const updates = rib.drain(e2.id);
    const learned = updateFor(updates, '10.1.0.0/16')?.attributes;
    assert.ok(learned);
    assert.equal(learned.med, undefined);
    assert.deepEqual(learned.asPath, seq(ASN, 65100));
    assert.deepEqual(learned.unknown, [{ ...transitive, flags: transitive.flags | ATTR_FLAG.PARTIAL }]);
    const ours = updateFor(updates, '10.244.1.0/24')?.attributes;
    assert.equal(ours?.med, 5);
    assert.deepEqual(ours?.asPath, seq(ASN));
    assert.deepEqual(ours?.nextHop, ip('10.0.0.1'));
  });

  it('honours NO_EXPORT and NO_ADVERTISE (RFC 1997)', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID, clusterId: CLUSTER_ID });
    const c1 = peer('192.0.2.1', { type: 'ibgp', rrClient: true });
    const c2 = peer('192.0.2.2', { type: 'ibgp', rrClient: true });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, c1, c2, e1);
    rib.receive(c1.id, announce(['10.1.0.0/16'], attrs({ nextHop: ip('192.0.2.1'), communities: [0xffffff01] })));
    rib.receive(c1.id, announce(['10.2.0.0/16'], attrs({ nextHop: ip('192.0.2.1'), communities: [0xffffff02] })));
    assert.deepEqual(prefixesOf(rib.drain(c2.id)).announced, [`4:${net('10.1.0.0/16').value.toString(16)}/16`]);
    assert.deepEqual(rib.drain(e1.id), []);
  });

  it('our own routes get our address as next hop towards iBGP, and LOCAL_PREF 100', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const i1 = peer('192.0.2.1', { type: 'ibgp' });
    addAll(rib, i1);
    rib.originate(net('10.244.1.0/24'));
    const attributes = updateFor(rib.drain(i1.id), '10.244.1.0/24')?.attributes;
    assert.deepEqual(attributes?.nextHop, ip('10.0.0.1'));
    assert.equal(attributes?.localPref, 100);
    assert.deepEqual(attributes?.asPath, []);
  });

  it('nextHopSelf puts our address on eBGP-learned routes sent to iBGP', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const i1 = peer('192.0.2.1', { type: 'ibgp' });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    rib.addPeer(i1, { ...exportOptions('10.0.0.1'), nextHopSelf: true });
    addAll(rib, e1);
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: ip('198.51.100.1') })));
    assert.deepEqual(updateFor(rib.drain(i1.id), '10.1.0.0/16')?.attributes?.nextHop, ip('10.0.0.1'));
  });
});

describe('Rib: Adj-RIB-Out deltas', () => {
  it('sends the full table once, then only changes; identical attributes twice send nothing', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1);
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    addAll(rib, e2);
    assert.equal(prefixesOf(rib.drain(e2.id)).announced.length, 2, 'the table so far, on the first drain');
    assert.deepEqual(rib.drain(e2.id), []);
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    assert.deepEqual(rib.drain(e2.id), [], 'same exported attributes: nothing new');
    // A change the exported attributes hide (a learned MED is not sent to eBGP) is not a delta either.
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address, med: 7 })));
    assert.deepEqual(rib.drain(e2.id), []);
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100, 65101), nextHop: e1.address })));
    const updates = rib.drain(e2.id);
    assert.equal(updates.length, 1);
    assert.deepEqual(updates[0]?.attributes?.asPath, seq(ASN, 65100, 65101));
    assert.equal(updates[0]?.nlri.length, 1);
  });

  it('groups prefixes with the same exported attributes into one UPDATE', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    // Two attribute objects, different MEDs: identical once exported to another AS.
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address, med: 1 })));
    rib.receive(e1.id, announce(['10.2.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address, med: 2 })));
    rib.receive(e1.id, announce(['10.3.0.0/16'], attrs({ asPath: seq(65100, 7), nextHop: e1.address })));
    const updates = rib.drain(e2.id);
    assert.deepEqual(updates.map((u) => u.nlri.length).sort(), [1, 2]);
  });

  it('withdraws from other peers what a removed peer had advertised', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.drain(e2.id);
    const changes = rib.removePeer(e1.id);
    assert.equal(changes.changed.length, 2);
    const updates = rib.drain(e2.id);
    assert.equal(updates.length, 1);
    assert.equal(updates[0]?.attributes, undefined);
    assert.equal(prefixesOf(updates).withdrawn.length, 2);
    assert.deepEqual(rib.drain(e2.id), []);
    assert.throws(() => rib.drain(e1.id), UnknownPeerError);
  });

  it('withdraws when the best changes to one that must not be sent to the peer', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const i1 = peer('192.0.2.1', { type: 'ibgp' });
    const i2 = peer('192.0.2.2', { type: 'ibgp' });
    addAll(rib, e1, i1, i2);
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100, 1, 2), nextHop: e1.address })));
    assert.equal(prefixesOf(rib.drain(i2.id)).announced.length, 1);
    rib.receive(i1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65300), nextHop: i1.address })));
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.from.id, i1.id);
    assert.equal(prefixesOf(rib.drain(i2.id)).withdrawn.length, 1, 'an iBGP best is not re-advertised to iBGP');
  });

  it('resend re-announces everything the peer should have (route refresh)', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.2.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.drain(e2.id);
    rib.resend(e2.id);
    assert.equal(prefixesOf(rib.drain(e2.id)).announced.length, 2);
    assert.deepEqual(rib.drain(e2.id), []);
  });

  it('a peer that is not drained for a long time still gets exact deltas', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    rib.receive(e1.id, announce(slash24s(10), attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.drain(e2.id);
    // Far more churn than the change log keeps for a lagging peer: 10 prefixes flap 1000 times.
    for (let i = 0; i < 1000; i++) {
      rib.receive(e1.id, announce(slash24s(5), attrs({ asPath: seq(65100, i), nextHop: e1.address })));
    }
    rib.receive(e1.id, announce(slash24s(5), attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.receive(e1.id, { type: 'update', withdrawn: slash24s(2, 8), nlri: [] });
    const { announced, withdrawn } = prefixesOf(rib.drain(e2.id));
    assert.deepEqual(announced, []);
    assert.equal(withdrawn.length, 2);
  });

  it('keeps every UPDATE under 4096 octets for 100k prefixes, each prefix sent once', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    const all = slash24s(100_000);
    const longPath = seq(65100, ...Array.from({ length: 40 }, (_, i) => 4_200_000_000 + i));
    for (let i = 0; i < all.length; i += 500) {
      const communities = Array.from({ length: i % 1000 === 0 ? 100 : 1 }, (_, c) => c);
      rib.receive(e1.id, announce(all.slice(i, i + 500), attrs({ asPath: longPath, nextHop: e1.address, communities })));
    }
    const updates = rib.drain(e2.id);
    for (const update of updates) assert.ok(encodedLength(update) <= 4096, `UPDATE of ${encodedLength(update)} octets`);
    const { announced } = prefixesOf(updates);
    assert.equal(announced.length, 100_000);
    assert.equal(new Set(announced).size, 100_000);
    // 100k /24s are 400 kB of NLRI; well-packed UPDATEs need a little over 100 of them.
    assert.ok(updates.length < 200, `${updates.length} UPDATEs`);
  });
});

describe('Rib: graceful restart, receiving side (RFC 4724 §4.2)', () => {
  it('keeps stale routes as best, replaces them with new announcements, sweeps the rest', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.2.0.0/16', 'fd00:1::/48'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.drain(e2.id);

    rib.markStale(e1.id, ['ipv4-unicast']);
    const down = rib.removePeer(e1.id);
    assert.equal(down.changed.length, 1, 'only the IPv6 route (family not preserved) goes');
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.stale, true);
    assert.equal(rib.bestFor(net('10.2.0.0/16'))?.from.id, e1.id);
    assert.equal(prefixesOf(rib.drain(e2.id)).withdrawn.length, 1, 'stale routes stay advertised');

    addAll(rib, e1);
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    assert.equal(rib.bestFor(net('10.1.0.0/16'))?.stale, undefined);
    assert.equal(rib.bestFor(net('10.2.0.0/16'))?.stale, true);

    const swept = rib.sweepStale(e1.id, 'ipv4-unicast');
    assert.deepEqual(swept.changed.map((c) => c.prefix.value), [net('10.2.0.0/16').value]);
    assert.equal(rib.bestFor(net('10.2.0.0/16')), undefined);
    assert.ok(rib.bestFor(net('10.1.0.0/16')));
    assert.deepEqual(prefixesOf(rib.drain(e2.id)), { announced: [], withdrawn: [`4:${net('10.2.0.0/16').value.toString(16)}/16`] });
  });

  it('the restart timer expiring with the peer still down removes the stale routes and the peer', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    addAll(rib, e1);
    rib.receive(e1.id, announce(['10.1.0.0/16'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.markStale(e1.id, ['ipv4-unicast']);
    rib.removePeer(e1.id);
    assert.ok(rib.stats().perPeer.has(e1.id));
    assert.equal(rib.sweepStale(e1.id, 'ipv4-unicast').changed.length, 1);
    assert.equal(rib.stats().perPeer.has(e1.id), false);
    assert.throws(() => rib.adjRibIn(e1.id), UnknownPeerError);
  });
});

describe('Rib: IPv6', () => {
  it('receives and sends IPv6 through MP_REACH / MP_UNREACH with an IPv6 next hop', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('2001:db8::1', { type: 'ebgp', asn: 65100, routerId: 7 });
    const e2 = peer('2001:db8::2', { type: 'ebgp', asn: 65200, routerId: 8 });
    const v4only = peer('198.51.100.3', { type: 'ebgp', asn: 65300 });
    addAll(rib, e1, e2);
    rib.addPeer(v4only, exportOptions('10.0.0.1'));
    rib.receive(e1.id, announce(['fd00:1::/48', 'fd00:2::/48'], attrs({ asPath: seq(65100), nextHop: ip('2001:db8::1') })));
    assert.equal(rib.stats().prefixes['ipv6-unicast'], 2);
    const updates = rib.drain(e2.id);
    assert.equal(updates.length, 1);
    const update = updates[0];
    assert.equal(update?.mpReach?.family, 'ipv6-unicast');
    assert.equal(update?.mpReach?.nlri.length, 2);
    assert.deepEqual(update?.nlri, []);
    assert.deepEqual(update?.attributes?.nextHop, ip('fd00::1'));
    assert.deepEqual(rib.drain(v4only.id), [], 'IPv6 is not sent on a session without it');

    rib.receive(e1.id, withdraw(['fd00:1::/48']));
    const withdrawal = rib.drain(e2.id);
    assert.deepEqual(withdrawal, [{ type: 'update', withdrawn: [], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: [net('fd00:1::/48')] } }]);
  });
});

describe('Rib: stats and our own routes', () => {
  it('counts prefixes, paths, received, accepted and advertised', () => {
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const e1 = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
    const e2 = peer('198.51.100.2', { type: 'ebgp', asn: 65200 });
    addAll(rib, e1, e2);
    rib.originate(net('10.244.1.0/24'));
    rib.receive(e1.id, announce(['10.1.0.0/16', '10.244.1.0/24'], attrs({ asPath: seq(65100), nextHop: e1.address })));
    rib.receive(e1.id, announce(['10.9.0.0/16'], attrs({ asPath: seq(65100, ASN), nextHop: e1.address })));
    rib.drain(e2.id);
    rib.drain(e1.id);
    const stats = rib.stats();
    assert.deepEqual(stats.prefixes, { 'ipv4-unicast': 2, 'ipv6-unicast': 0 });
    assert.equal(stats.paths, 3);
    assert.equal(rib.bestFor(net('10.244.1.0/24'))?.from.id, '', 'our own route wins');
    assert.deepEqual(stats.perPeer.get(e1.id), { received: 3, accepted: 2, advertised: 1 });
    assert.deepEqual(stats.perPeer.get(e2.id), { received: 0, accepted: 0, advertised: 2 });
    assert.equal([...rib.adjRibIn('')].length, 1);

    rib.withdrawOriginated(net('10.244.1.0/24'));
    assert.equal(rib.bestFor(net('10.244.1.0/24'))?.from.id, e1.id);
  });

  it('the prefix count stays the number of best routes through random announcements, withdrawals and a peer leaving (seeded)', () => {
    const random = prng(11);
    const rib = new Rib({ asn: ASN, routerId: ROUTER_ID });
    const peers = [peer('198.51.100.1', { type: 'ebgp', asn: 65100 }), peer('198.51.100.2', { type: 'ebgp', asn: 65200 }), peer('198.51.100.3', { type: 'ebgp', asn: 65300 })];
    addAll(rib, ...peers);
    const prefixes = Array.from({ length: 64 }, (_, i) => `10.${i}.0.0/16`);
    const counted = (): number => [...rib.best('ipv4-unicast')].length;
    for (let step = 0; step < 2000; step++) {
      const from = peers[Math.floor(random() * peers.length)] as (typeof peers)[number];
      const some = prefixes.filter(() => random() < 0.1);
      if (random() < 0.5) rib.receive(from.id, announce(some, attrs({ asPath: seq(from.asn), nextHop: from.address })));
      else rib.receive(from.id, withdraw(some));
      assert.equal(rib.stats().prefixes['ipv4-unicast'], counted(), `step ${step}`);
    }
    rib.removePeer((peers[0] as (typeof peers)[number]).id);
    assert.equal(rib.stats().prefixes['ipv4-unicast'], counted());
  });
});

/**
 * Exact encoded size, computed here independently of the RIB's own bounds: RFC 4271 §4.3
 * with 3-octet attribute headers (4 when the value exceeds 255 octets), 4-octet AS numbers,
 * RFC 4760 for MP_REACH.
 */
function encodedLength(update: UpdateMessage): number {
  const attribute = (valueLength: number): number => (valueLength > 255 ? 4 : 3) + valueLength;
  const nlri = (nets: readonly { prefixLength: number }[]): number => nets.reduce((sum, p) => sum + 1 + Math.ceil(p.prefixLength / 8), 0);
  let attributes = 0;
  const a = update.attributes;
  if (a !== undefined) {
    attributes += attribute(1);
    attributes += attribute(a.asPath.reduce((sum, s) => sum + 2 + 4 * s.asns.length, 0));
    if (update.mpReach === undefined) attributes += attribute(4);
    else attributes += attribute(5 + (a.linkLocalNextHop === undefined ? 16 : 32) + nlri(update.mpReach.nlri));
    if (a.med !== undefined) attributes += attribute(4);
    if (a.localPref !== undefined) attributes += attribute(4);
    if (a.communities !== undefined) attributes += attribute(4 * a.communities.length);
    if (a.originatorId !== undefined) attributes += attribute(4);
    if (a.clusterList !== undefined) attributes += attribute(4 * a.clusterList.length);
    for (const raw of a.unknown ?? []) attributes += attribute(raw.value.length);
  }
  if (update.mpUnreach !== undefined) attributes += attribute(3 + nlri(update.mpUnreach.withdrawn));
  return 19 + 2 + nlri(update.withdrawn) + 2 + attributes + nlri(update.nlri);
}

describe('prefix keys', () => {
  it('are unique per prefix and turn back into the prefix, for every IPv4 length (seeded)', () => {
    const random = prng(32);
    const seen = new Map<number | string, string>();
    for (let i = 0; i < 20_000; i++) {
      const prefixLength = i % 33;
      const bits = BigInt(Math.floor(random() * 2 ** 32));
      const value = prefixLength === 0 ? 0n : (bits >> BigInt(32 - prefixLength)) << BigInt(32 - prefixLength);
      const prefix = { family: 4 as const, value, prefixLength };
      const key = prefixKey(prefix);
      const text = `${value}/${prefixLength}`;
      assert.equal(seen.get(key) ?? text, text, `key ${key} shared by two prefixes`);
      seen.set(key, text);
      assert.deepEqual(prefixFromKey('ipv4-unicast', key), prefix);
    }
    const v6 = net('2001:db8:1::/48');
    assert.deepEqual(prefixFromKey('ipv6-unicast', prefixKey(v6)), v6);
  });
});
