/**
 * The pure parts of cluster DNS: record computation (dual-stack cluster IPs, which the lab's
 * apiserver does not allocate yet), reverse names, pod names, the zone's existence rules,
 * and the query scanner on a corpus of cut-short messages — checked against dns-packet as
 * the independent codec.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import type { Service } from '../../src/api/types.js';
import { encodeAnswer } from '../../src/dns/answers.js';
import { reverseName, serviceRecords } from '../../src/dns/records.js';
import { podIp, Resolver } from '../../src/dns/resolver.js';
import { DnsQueryError, RCODE, scanQuery, TYPE } from '../../src/dns/wire.js';
import { Zone } from '../../src/dns/zone.js';

describe('dns records and zone', () => {
  it('publishes A and AAAA for every cluster IP of a dual-stack Service, and a PTR for each', () => {
    const service = { metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00:96::20'] } } as Service;
    const { records } = serviceRecords(service, [], 'cluster.local');
    const byType = (t: number): string[] => records.filter((r) => r.type === t).map((r) => ('ip' in r ? r.ip : 'target' in r ? `${r.name} ${r.target}` : ''));
    assert.deepEqual(byType(TYPE.A), ['10.96.0.20']);
    assert.deepEqual(byType(TYPE.AAAA), ['fd00:96::20']);
    assert.deepEqual(byType(TYPE.PTR).sort(), [
      '0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa web.default.svc.cluster.local',
      '20.0.96.10.in-addr.arpa web.default.svc.cluster.local',
    ]);
  });

  it('reverses addresses as RFC 1035 §3.5 and RFC 3596 §2.5 write them', () => {
    assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(reverseName('2001:db8::567:89ab'), 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    assert.equal(reverseName('not-an-ip'), undefined);
  });

  it('reads pod names the way CoreDNS does', () => {
    assert.equal(podIp('10-244-1-5'), '10.244.1.5');
    assert.equal(podIp('fd00--1'), 'fd00::1');
    assert.equal(podIp('10-244-1-500'), undefined);
    assert.equal(podIp('web'), undefined);
  });

  it('keeps empty non-terminals existing until their last name goes', () => {
    const zone = new Zone();
    zone.replace('a', { records: [{ name: '_http._tcp.web.ns.svc.z', type: TYPE.SRV, priority: 0, weight: 100, port: 80, target: 'web.ns.svc.z' }], names: [] });
    zone.replace('b', { records: [{ name: 'web.ns.svc.z', type: TYPE.A, ip: '10.0.0.1' }], names: [] });
    assert.ok(zone.exists('_tcp.web.ns.svc.z'));
    assert.ok(zone.exists('svc.z'));
    zone.replace('a', undefined);
    assert.ok(!zone.exists('_tcp.web.ns.svc.z'));
    assert.ok(zone.exists('ns.svc.z'));
    zone.replace('b', undefined);
    assert.ok(!zone.exists('svc.z'));
    assert.equal(zone.size, 0);
  });

  it('encodes answers dns-packet decodes back, owner names compressed to the question', () => {
    const zone = new Zone();
    zone.replace('x', { records: [1, 2, 3].map((i) => ({ name: 'hl.ns.svc.z', type: TYPE.A, ip: `10.0.0.${i}` })), names: [] });
    const resolution = new Resolver(zone, { zone: 'z', podMode: 'disabled' }).resolve('hl.ns.svc.z', TYPE.A);
    assert.notEqual(resolution, 'forward');
    if (resolution === 'forward') return;
    const prepared = encodeAnswer('hl.ns.svc.z', TYPE.A, resolution, 5);
    const decoded = dnsPacket.decode(prepared.plain);
    assert.deepEqual(decoded.answers?.map((a) => [a.name, a.type, 'data' in a ? a.data : '']), [1, 2, 3].map((i) => ['hl.ns.svc.z', 'A', `10.0.0.${i}`]));
    // 12 header + 17 question + 3 × (2 pointer + 10 + 4)
    assert.equal(prepared.plain.length, 12 + 17 + 3 * 16);
    assert.ok(dnsPacket.decode(prepared.plainTruncated).flag_tc);
    assert.equal(dnsPacket.decode(prepared.edns).additionals?.[0]?.type, 'OPT');
  });

  it('scans every prefix of a query without reading past it: drop or FORMERR, never another error', () => {
    const query = dnsPacket.encode({ id: 77, type: 'query', questions: [{ name: 'web.default.svc.cluster.local', type: 'SRV' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
    const full = scanQuery(query);
    assert.equal(full?.qtype, 33);
    assert.equal(full?.edns?.udpBytes, 4096);
    for (let length = 0; length < query.length; length++) {
      try {
        const scanned = scanQuery(query.subarray(0, length));
        assert.ok(scanned === undefined ? length < 12 : true, `length ${length}`);
      } catch (err) {
        assert.ok(err instanceof DnsQueryError, `length ${length}: ${String(err)}`);
        assert.equal(err.rcode, RCODE.FORMERR);
      }
    }
  });
});
