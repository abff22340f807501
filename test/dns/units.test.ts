/**
 * The pure parts of cluster DNS: record computation (dual-stack cluster IPs, which the lab's
 * apiserver does not allocate yet), reverse names, pod names, the zone's existence rules,
 * and the query scanner on a corpus of cut-short messages — checked against dns-packet as
 * the independent codec.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import type { EndpointSlice, Service } from '../../src/api/types.js';
import { encodeAnswer, renderFor } from '../../src/dns/answers.js';
import { reverseName, serviceFields, serviceRecords, sliceFields } from '../../src/dns/records.js';
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

  it('computes the same records from the trimmed objects its informers keep as from whole ones', () => {
    const meta = (name: string, extra: object = {}) => ({ name, namespace: 'shop', uid: `uid-${name}`, resourceVersion: '17', creationTimestamp: '2026-12-05T00:00:00Z', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"blob"}' }, managedFields: [{ manager: 'kubectl', operation: 'Apply' as const }], ...extra });
    const ports = [{ name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 8080, appProtocol: 'http' }, { name: 'dns', protocol: 'UDP' as const, port: 53 }, { port: 9000 }];
    const services: Service[] = [
      { apiVersion: 'v1', kind: 'Service', metadata: meta('web'), spec: { type: 'ClusterIP', selector: { app: 'web' }, clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ports, sessionAffinity: 'None' } },
      { apiVersion: 'v1', kind: 'Service', metadata: meta('db'), spec: { clusterIP: 'None', ports, publishNotReadyAddresses: true } },
      { apiVersion: 'v1', kind: 'Service', metadata: meta('hl'), spec: { clusterIP: 'None', clusterIPs: ['None'], ports } },
      { apiVersion: 'v1', kind: 'Service', metadata: meta('ext'), spec: { type: 'ExternalName', externalName: 'Example.COM.' } },
    ];
    const endpoint = (ip: string, extra: object = {}) => ({ addresses: [ip], nodeName: 'n1', zone: 'z1', targetRef: { kind: 'Pod', name: `p-${ip}`, namespace: 'shop' }, ...extra });
    const slicesOf = (service: string): EndpointSlice[] => [
      {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta(`${service}-a`, { labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } }),
        addressType: 'IPv4',
        endpoints: [endpoint('10.1.0.5', { hostname: 'db-0', conditions: { ready: true, serving: true, terminating: false } }), endpoint('10.1.0.6', { conditions: { ready: false, serving: false } }), endpoint('10.1.0.7')],
        ports: [{ name: 'http', protocol: 'TCP', port: 8080, appProtocol: 'http' }, { name: 'dns', protocol: 'UDP', port: 53 }],
      },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta(`${service}-b`, { labels: { 'kubernetes.io/service-name': service } }), addressType: 'IPv6', endpoints: [endpoint('fd00:1::5', { hostname: 'DB-1' })], ports: [{ name: 'http', port: 8080 }] },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta(`${service}-c`, { labels: { 'kubernetes.io/service-name': service } }), addressType: 'FQDN', endpoints: [endpoint('db.example.com')] },
    ];
    for (const service of services) {
      const slices = slicesOf(service.metadata.name ?? '');
      const whole = serviceRecords(service, slices, 'cluster.local');
      assert.ok(whole.records.length > 0, `${service.metadata.name}: the fixture publishes records`);
      assert.deepEqual(serviceRecords(serviceFields(service), slices.map(sliceFields), 'cluster.local'), whole, `${service.metadata.name}`);
      assert.deepEqual(Object.keys(serviceFields(service).metadata).sort(), ['name', 'namespace', 'resourceVersion'], 'uid, annotations, managedFields dropped');
    }
    assert.deepEqual(sliceFields(slicesOf('db')[0]!).metadata.labels, { 'kubernetes.io/service-name': 'db' }, 'the controller finds the slice\'s Service by this label');
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
    const decoded = dnsPacket.decode(prepared.wire);
    assert.deepEqual(decoded.answers?.map((a) => [a.name, a.type, 'data' in a ? a.data : '']), [1, 2, 3].map((i) => ['hl.ns.svc.z', 'A', `10.0.0.${i}`]));
    // 12 header + 17 question + 3 × (2 pointer + 10 + 4)
    assert.equal(prepared.wire.length, 12 + 17 + 3 * 16);
  });

  it('renders the four forms of an answer for a query: its id, RD and case; OPT only with OPT; TC with the question alone when too big', () => {
    const zone = new Zone();
    zone.replace('x', { records: [1, 2, 3].map((i) => ({ name: 'hl.ns.svc.z', type: TYPE.A, ip: `10.0.0.${i}` })), names: [] });
    const resolution = new Resolver(zone, { zone: 'z', podMode: 'disabled' }).resolve('hl.ns.svc.z', TYPE.A);
    if (resolution === 'forward') return assert.fail('resolved in the zone');
    const prepared = encodeAnswer('hl.ns.svc.z', TYPE.A, resolution, 5);
    const opt: dnsPacket.OptAnswer = { name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
    for (const edns of [false, true]) {
      const query = dnsPacket.encode({ id: 4242, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'HL.ns.Svc.z', type: 'A' }], ...(edns ? { additionals: [opt] } : {}) });
      const scanned = scanQuery(query);
      assert.ok(scanned);
      for (const limit of [512, 40]) {
        const reply: dnsPacket.DecodedPacket = dnsPacket.decode(renderFor(prepared, edns, limit, query, scanned.nameStart, scanned.nameEnd, false));
        const what = `edns ${edns}, limit ${limit}`;
        assert.equal(reply.id, 4242, what);
        assert.equal(reply.flag_rd, true, what);
        assert.equal(reply.flag_ra, false, what);
        assert.equal(reply.flag_aa, true, what);
        assert.equal(reply.type, 'response', what);
        assert.equal(reply.questions?.[0]?.name, 'HL.ns.Svc.z', what);
        assert.equal(reply.flag_tc, limit === 40, what);
        assert.deepEqual(reply.answers?.map((a) => 'data' in a && a.data), limit === 40 ? [] : ['10.0.0.1', '10.0.0.2', '10.0.0.3'], what);
        assert.deepEqual(reply.additionals?.map((a) => a.type), edns ? ['OPT'] : [], what);
      }
    }
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
