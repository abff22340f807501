import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { asPathLength, compareRoutes, neighborAs, selectBest } from '../../src/bgp/rib/decision.js';
import type { PeerRef, Route } from '../../src/bgp/types.js';
import { peer, prng, rid, route, seq, shuffle } from './rib-fixtures.js';

const ibgpA = peer('192.0.2.1', { type: 'ibgp', routerId: rid('1.1.1.1') });
const ibgpB = peer('192.0.2.2', { type: 'ibgp', routerId: rid('2.2.2.2') });
const ebgpA = peer('198.51.100.1', { type: 'ebgp', asn: 65100, routerId: rid('3.3.3.3') });
const ebgpB = peer('198.51.100.2', { type: 'ebgp', asn: 65200, routerId: rid('4.4.4.4') });
const local: PeerRef = { id: '', asn: 65000, routerId: rid('9.9.9.9'), type: 'ibgp', rrClient: false };

/** The preferred one of two routes, checked in both argument orders. */
function winner(a: Route, b: Route, options?: Parameters<typeof compareRoutes>[2]): Route {
  const ab = compareRoutes(a, b, options);
  const ba = compareRoutes(b, a, options);
  assert.equal(Math.sign(ab), -Math.sign(ba), 'comparison must be antisymmetric');
  assert.notEqual(ab, 0);
  const best = selectBest([a, b], options);
  assert.equal(best, ab < 0 ? a : b, 'selectBest agrees with compareRoutes');
  return ab < 0 ? a : b;
}

describe('decision process, step by step (RFC 4271 §9.1, RFC 4456 §9)', () => {
  it('0: a route with an unusable next hop is not a candidate, whatever its LOCAL_PREF', () => {
    const unusable = route('10.0.0.0/24', ibgpA, { localPref: 500 });
    const usable = route('10.0.0.0/24', ibgpB, { localPref: 100 });
    const options = { nextHopUsable: (r: Route) => r !== unusable };
    assert.equal(winner(unusable, usable, options), usable);
    assert.equal(selectBest([unusable], options), undefined);
  });

  it('our own route beats a learned one with a higher LOCAL_PREF', () => {
    const ours = route('10.0.0.0/24', local, { localPref: 100 });
    const learned = route('10.0.0.0/24', ibgpA, { localPref: 1000 });
    assert.equal(winner(ours, learned), ours);
  });

  it('1: higher LOCAL_PREF wins, even over a shorter AS_PATH', () => {
    const high = route('10.0.0.0/24', ibgpB, { localPref: 200, asPath: seq(1, 2, 3) });
    const low = route('10.0.0.0/24', ibgpA, { localPref: 150, asPath: seq(1) });
    assert.equal(winner(high, low), high);
  });

  it('1: a missing LOCAL_PREF counts as the default 100 (or the configured one)', () => {
    const missing = route('10.0.0.0/24', ibgpB);
    assert.equal(winner(missing, route('10.0.0.0/24', ibgpA, { localPref: 99 })), missing);
    const above = route('10.0.0.0/24', ibgpA, { localPref: 101 });
    assert.equal(winner(missing, above), above);
    assert.equal(winner(missing, above, { defaultLocalPref: 200 }), missing);
  });

  it('2: shorter AS_PATH wins', () => {
    const short = route('10.0.0.0/24', ibgpB, { asPath: seq(65100) });
    const long = route('10.0.0.0/24', ibgpA, { asPath: seq(65100, 65200) });
    assert.equal(winner(short, long), short);
  });

  it('2: an AS_SET counts as one AS, confederation segments as none', () => {
    const withSet = route('10.0.0.0/24', ibgpB, { asPath: [{ type: 'sequence', asns: [1] }, { type: 'set', asns: [2, 3, 4] }] });
    const three = route('10.0.0.0/24', ibgpA, { asPath: seq(5, 6, 7) });
    assert.equal(asPathLength(withSet.attributes.asPath), 2);
    assert.equal(winner(withSet, three), withSet);
    const confed = route('10.0.0.0/24', ibgpB, { asPath: [{ type: 'confed-sequence', asns: [64512, 64513] }, { type: 'sequence', asns: [1] }] });
    const two = route('10.0.0.0/24', ibgpA, { asPath: seq(5, 6) });
    assert.equal(winner(confed, two), confed);
  });

  it('3: lowest ORIGIN wins: igp < egp < incomplete', () => {
    const igp = route('10.0.0.0/24', ibgpB, { origin: 'igp' });
    const egp = route('10.0.0.0/24', ibgpA, { origin: 'egp' });
    const incomplete = route('10.0.0.0/24', ibgpA, { origin: 'incomplete' });
    assert.equal(winner(igp, egp), igp);
    assert.equal(winner(egp, incomplete), egp);
  });

  it('4: lower MED wins between routes from the same neighbour AS; a missing MED is 0', () => {
    const low = route('10.0.0.0/24', ibgpB, { asPath: seq(65100), med: 10 });
    const high = route('10.0.0.0/24', ibgpA, { asPath: seq(65100), med: 20 });
    assert.equal(winner(low, high), low);
    const missing = route('10.0.0.0/24', ibgpB, { asPath: seq(65100) });
    const five = route('10.0.0.0/24', ibgpA, { asPath: seq(65100), med: 5 });
    assert.equal(winner(missing, five), missing);
  });

  it('4: MED is not compared between different neighbour ASes (router id decides)', () => {
    // Same path length; the lower MED comes from the higher router id. Were MED compared,
    // ibgpB would win; between different ASes the router id (ibgpA lower) decides.
    const lowMed = route('10.0.0.0/24', ibgpB, { asPath: seq(65100), med: 10 });
    const highMed = route('10.0.0.0/24', ibgpA, { asPath: seq(65200), med: 20 });
    assert.equal(winner(lowMed, highMed), highMed);
  });

  it('4: the neighbour AS is the first AS outside the confederation; empty paths are our own AS', () => {
    assert.equal(neighborAs(route('10.0.0.0/24', ibgpA, { asPath: [{ type: 'confed-sequence', asns: [64512] }, ...seq(65100, 1)] })), 65100);
    assert.equal(neighborAs(route('10.0.0.0/24', ibgpA)), 'local');
    assert.equal(neighborAs(route('10.0.0.0/24', ibgpA, { asPath: [{ type: 'set', asns: [1, 2] }] })), undefined);
  });

  it('5: eBGP-learned beats iBGP-learned', () => {
    const external = route('10.0.0.0/24', ebgpB, { asPath: seq(65100) });
    const internal = route('10.0.0.0/24', ibgpA, { asPath: seq(65100) });
    assert.equal(winner(external, internal), external);
  });

  it('7: shorter CLUSTER_LIST wins (absent is length 0)', () => {
    const none = route('10.0.0.0/24', ibgpB, { originatorId: rid('5.5.5.5') });
    const one = route('10.0.0.0/24', ibgpA, { originatorId: rid('5.5.5.5'), clusterList: [1] });
    const two = route('10.0.0.0/24', ibgpA, { originatorId: rid('5.5.5.5'), clusterList: [1, 2] });
    assert.equal(winner(none, one), none);
    assert.equal(winner(one, route('10.0.0.0/24', ibgpB, { originatorId: rid('5.5.5.5'), clusterList: [3, 4] })), one);
    assert.equal(winner(one, two), one);
  });

  it('8: lowest BGP Identifier wins', () => {
    const a = route('10.0.0.0/24', ibgpA);
    const b = route('10.0.0.0/24', ibgpB);
    assert.equal(winner(a, b), a);
  });

  it('8: ORIGINATOR_ID stands in for the router id when present', () => {
    // ibgpA has the lower router id (1.1.1.1) but carries ORIGINATOR_ID 7.7.7.7 > 2.2.2.2.
    const reflected = route('10.0.0.0/24', ibgpA, { originatorId: rid('7.7.7.7') });
    const direct = route('10.0.0.0/24', ibgpB);
    assert.equal(winner(reflected, direct), direct);
  });

  it('9: lowest peer address wins when the router ids are the same', () => {
    const sameRouter = rid('5.5.5.5');
    const low = route('10.0.0.0/24', peer('192.0.2.10', { type: 'ibgp', routerId: sameRouter }));
    const high = route('10.0.0.0/24', peer('192.0.2.20', { type: 'ibgp', routerId: sameRouter }));
    assert.equal(winner(low, high), low);
  });
});

describe('decision process: order independence', () => {
  it('resolves the MED cycle as RFC 4271 §9.1.2.2 does, whatever the arrival order', () => {
    // A beats B on MED (same AS 65100), B beats C on router id, C beats A on router id.
    // §9.1.2.2 (c) first removes B (a same-AS route with lower MED exists), then (f) picks C.
    const a = route('10.0.0.0/24', peer('192.0.2.3', { type: 'ebgp', asn: 65100, routerId: 3 }), { asPath: seq(65100), med: 10 });
    const b = route('10.0.0.0/24', peer('192.0.2.1', { type: 'ebgp', asn: 65100, routerId: 1 }), { asPath: seq(65100), med: 20 });
    const c = route('10.0.0.0/24', peer('192.0.2.2', { type: 'ebgp', asn: 65200, routerId: 2 }), { asPath: seq(65200), med: 0 });
    assert.ok(compareRoutes(a, b) < 0 && compareRoutes(b, c) < 0 && compareRoutes(c, a) < 0, 'the pairwise order is a cycle');
    for (const order of [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]]) {
      assert.equal(selectBest(order), c);
    }
  });

  it('random route sets from several peers: the best never depends on the order (seeded)', () => {
    const random = prng(4271);
    const int = (n: number): number => Math.floor(random() * n);
    for (let round = 0; round < 200; round++) {
      const routes: Route[] = [];
      const count = 2 + int(8);
      for (let i = 0; i < count; i++) {
        const neighbour = [65100, 65200, 65300][int(3)] ?? 65100;
        const from = peer(`192.0.2.${i + 1}`, { type: int(2) === 0 ? 'ebgp' : 'ibgp', asn: neighbour, routerId: 1 + int(4) });
        routes.push(
          route('10.0.0.0/24', from, {
            asPath: seq(neighbour, ...(int(2) === 0 ? [1] : [])),
            ...(int(3) > 0 ? { med: int(3) * 10 } : {}),
            ...(int(4) === 0 ? { localPref: 200 } : {}),
            origin: int(4) === 0 ? 'egp' : 'igp',
          }),
        );
      }
      const expected = selectBest(routes);
      assert.ok(expected !== undefined);
      for (let trial = 0; trial < 20; trial++) assert.equal(selectBest(shuffle(routes, random)), expected, `round ${round}`);
    }
  });
});
