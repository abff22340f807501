import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import {
  InvalidServiceRangeError,
  ServiceIpAllocator,
  parsePortRange,
  serviceResourcesInUse,
  type ServiceResourcesInUse,
} from '../../src/apiserver/kinds/service-ips.js';
import { strategyFor } from '../../src/apiserver/kinds/strategy.js';
import { netContains, parseIp, parseIpNet } from '../../src/lib/ip.js';

type Json = Record<string, unknown>;

/** A defaulted Service, as the server hands it to the allocator. */
function service(name: string, spec: Json = {}, namespace = 'default'): KubeObject {
  const object: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ port: 80 }], ...spec } };
  strategyFor('Service').applyDefaults(object);
  return object;
}

function spec(object: KubeObject): Json {
  return object['spec'] as Json;
}

function nodePorts(object: KubeObject): unknown[] {
  return (spec(object)['ports'] as Json[]).map((port) => port['nodePort']);
}

function empty(): ServiceResourcesInUse {
  return { clusterIPs: new Set(), nodePorts: new Set() };
}

/** Allocates and records, as the server does after a successful write. */
function allocateAll(allocator: ServiceIpAllocator, services: KubeObject[]): ServiceResourcesInUse {
  const used = empty();
  for (const object of services) {
    assert.deepEqual(allocator.allocate(object, used), []);
    const taken = serviceResourcesInUse([object]);
    for (const ip of taken.clusterIPs) used.clusterIPs.add(ip);
    for (const port of taken.nodePorts) used.nodePorts.add(port);
  }
  return used;
}

describe('cluster IPs', () => {
  test('the kubernetes service gets the first address; others start in the dynamic band', () => {
    const allocator = new ServiceIpAllocator({ random: () => 0 });
    assert.equal(allocator.kubernetesServiceIP, '10.96.0.1');
    const kubernetes = service('kubernetes', { ports: [{ port: 443, name: 'https' }] });
    assert.deepEqual(allocator.allocate(kubernetes, empty()), []);
    assert.equal(spec(kubernetes)['clusterIP'], '10.96.0.1');
    assert.deepEqual(spec(kubernetes)['clusterIPs'], ['10.96.0.1']);
    assert.deepEqual(spec(kubernetes)['ipFamilies'], ['IPv4']);
    assert.equal(spec(kubernetes)['ipFamilyPolicy'], 'SingleStack');

    const web = service('web');
    assert.deepEqual(allocator.allocate(web, { clusterIPs: new Set(['10.96.1.2']), nodePorts: new Set() }), []);
    // 2^20 addresses: the lowest 256 after the kubernetes address are left to explicit requests.
    assert.equal(spec(web)['clusterIP'], '10.96.1.3');
  });

  test('dynamic picks are unique, inside the range, and never the reserved addresses', () => {
    const allocator = new ServiceIpAllocator();
    const services = Array.from({ length: 200 }, (_, i) => service(`s${i}`));
    const used = allocateAll(allocator, services);
    assert.equal(used.clusterIPs.size, 200);
    const range = parseIpNet('10.96.0.0/12');
    for (const ip of used.clusterIPs) {
      assert.ok(netContains(range, parseIp(ip)), ip);
      assert.ok(!['10.96.0.0', '10.96.0.1', '10.111.255.255'].includes(ip), ip);
    }
  });

  test('a requested IP is kept when free, refused when taken, reserved or out of range', () => {
    const allocator = new ServiceIpAllocator();
    const used: ServiceResourcesInUse = { clusterIPs: new Set(['10.96.0.10']), nodePorts: new Set() };
    const free = service('dns', { clusterIP: '10.96.0.11' });
    assert.deepEqual(allocator.allocate(free, used), []);
    assert.equal(spec(free)['clusterIP'], '10.96.0.11');

    const cases: [string, string][] = [
      ['10.96.0.10', 'Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: provided IP is already allocated'],
      ['10.0.0.10', 'Invalid value: ["10.0.0.10"]: failed to allocate IP 10.0.0.10: the provided IP (10.0.0.10) is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ['10.96.0.0', 'Invalid value: ["10.96.0.0"]: failed to allocate IP 10.96.0.0: the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ['10.111.255.255', 'Invalid value: ["10.111.255.255"]: failed to allocate IP 10.111.255.255: the provided IP (10.111.255.255) is not in the valid range. The range of valid IPs is 10.96.0.0/12'],
      ['10.96.0.1', 'Invalid value: ["10.96.0.1"]: failed to allocate IP 10.96.0.1: the provided IP is reserved for the kubernetes service'],
    ];
    for (const [ip, message] of cases) {
      const object = service('web', { clusterIP: ip });
      const causes = allocator.allocate(object, used);
      assert.deepEqual(causes, [{ reason: 'FieldValueInvalid', field: 'spec.clusterIPs', message }], ip);
    }
  });

  test('headless and ExternalName services get no address', () => {
    const allocator = new ServiceIpAllocator();
    const headless = service('db', { clusterIP: 'None' });
    assert.deepEqual(allocator.allocate(headless, empty()), []);
    assert.deepEqual(spec(headless)['clusterIPs'], ['None']);
    assert.deepEqual(spec(headless)['ipFamilies'], ['IPv4']);
    const external = service('ext', { type: 'ExternalName', externalName: 'db.example.com', ports: [] });
    assert.deepEqual(allocator.allocate(external, empty()), []);
    assert.equal(spec(external)['clusterIP'], undefined);
  });

  test('on update the stored IP stays valid although `used` holds it', () => {
    const allocator = new ServiceIpAllocator();
    const old = service('web', { clusterIP: '10.96.0.20' });
    const used = serviceResourcesInUse([old]);
    const next = structuredClone(old);
    assert.deepEqual(allocator.allocate(next, used, old), []);
    assert.deepEqual(summaryOf(allocator.allocate(structuredClone(old), used)), ['spec.clusterIPs'], 'without previous it is taken');
  });

  test('families: this cluster serves one', () => {
    const allocator = new ServiceIpAllocator();
    assert.deepEqual(summaryOf(allocator.allocate(service('a', { ipFamilies: ['IPv6'] }), empty())), ['spec.ipFamilies[0]']);
    assert.deepEqual(summaryOf(allocator.allocate(service('b', { ipFamilyPolicy: 'RequireDualStack' }), empty())), ['spec.ipFamilyPolicy']);
    // PreferDualStack settles for one family, but a family asked for by name must exist.
    const prefer = service('c', { ipFamilyPolicy: 'PreferDualStack' });
    assert.deepEqual(allocator.allocate(prefer, empty()), []);
    assert.deepEqual(spec(prefer)['ipFamilies'], ['IPv4']);
    const named = service('d', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv4', 'IPv6'] });
    assert.deepEqual(summaryOf(allocator.allocate(named, empty())), ['spec.ipFamilies[1]']);

    const v6 = new ServiceIpAllocator({ serviceCidr: 'fd00:10:96::/112', random: () => 0 });
    assert.equal(v6.kubernetesServiceIP, 'fd00:10:96::1');
    const web = service('web');
    assert.deepEqual(v6.allocate(web, empty()), []);
    assert.equal(spec(web)['clusterIP'], 'fd00:10:96::102');
    assert.deepEqual(spec(web)['ipFamilies'], ['IPv6']);
  });

  test('a full range throws ServiceRangeFullError', () => {
    const allocator = new ServiceIpAllocator({ serviceCidr: '10.96.0.0/29' });
    const used = allocateAll(allocator, ['a', 'b', 'c', 'd', 'e'].map((name) => service(name)));
    assert.deepEqual([...used.clusterIPs].sort(), ['10.96.0.2', '10.96.0.3', '10.96.0.4', '10.96.0.5', '10.96.0.6']);
    assert.throws(() => allocator.allocate(service('f'), used), { name: 'ServiceRangeFullError', message: 'failed to allocate a serviceIP: range is full', resource: 'serviceIP' });
  });

  test('bad ranges are refused up front', () => {
    assert.throws(() => new ServiceIpAllocator({ serviceCidr: '10.96.0.0' }), InvalidServiceRangeError);
    assert.throws(() => new ServiceIpAllocator({ serviceCidr: '10.0.0.0/8' }), InvalidServiceRangeError);
    assert.throws(() => new ServiceIpAllocator({ nodePortRange: '32767-30000' }), InvalidServiceRangeError);
    assert.throws(() => new ServiceIpAllocator({ serviceCidr: '10.96.0.0/16,10.97.0.0/16' }), InvalidServiceRangeError, 'two ranges of one family');
    assert.throws(() => new ServiceIpAllocator({ serviceCidr: '10.96.0.0/16,fd00::/112,fd01::/112' }), InvalidServiceRangeError);
    assert.throws(() => new ServiceIpAllocator({ serviceCidr: '10.96.0.0/16,fd00::/64' }), InvalidServiceRangeError, 'an IPv6 range over 2^20');
    assert.deepEqual(parsePortRange('30000-32767'), { min: 30000, max: 32767 });
  });
});

function summaryOf(causes: { field?: string }[]): (string | undefined)[] {
  return causes.map((cause) => cause.field);
}

describe('node ports', () => {
  test('NodePort services get one port each in the range; TCP and UDP of one port share it', () => {
    const allocator = new ServiceIpAllocator();
    const dns = service('dns', {
      type: 'NodePort',
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'metrics', port: 9153 },
      ],
    });
    assert.deepEqual(allocator.allocate(dns, empty()), []);
    const [udp, tcp, metrics] = nodePorts(dns) as number[];
    assert.equal(udp, tcp);
    assert.notEqual(udp, metrics);
    for (const port of [udp!, metrics!]) assert.ok(port >= 30000 && port <= 32767, String(port));
    const clusterOnly = service('plain');
    assert.deepEqual(allocator.allocate(clusterOnly, empty()), []);
    assert.deepEqual(nodePorts(clusterOnly), [undefined]);
  });

  test('requested node ports are checked against the range and what is used', () => {
    const allocator = new ServiceIpAllocator();
    const used: ServiceResourcesInUse = { clusterIPs: new Set(), nodePorts: new Set([30080]) };
    const outside = service('a', { type: 'NodePort', ports: [{ port: 80, nodePort: 8080 }] });
    assert.deepEqual(allocator.allocate(outside, used), [
      {
        reason: 'FieldValueInvalid',
        field: 'spec.ports[0].nodePort',
        message: 'Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767',
      },
    ]);
    assert.equal(spec(outside)['clusterIP'], undefined, 'nothing is written when a request fails');
    const taken = service('b', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] });
    assert.deepEqual(allocator.allocate(taken, used), [
      { reason: 'FieldValueInvalid', field: 'spec.ports[0].nodePort', message: 'Invalid value: 30080: provided port is already allocated' },
    ]);
    assert.deepEqual(allocator.allocate(taken, used, structuredClone(taken)), [], 'its own stored port is fine on update');
    const mixed = service('c', { type: 'NodePort', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 81, nodePort: 30081 }] });
    assert.deepEqual(allocator.allocate(mixed, used), []);
    const [dynamic, fixed] = nodePorts(mixed) as number[];
    assert.equal(fixed, 30081);
    assert.ok(dynamic !== 30080 && dynamic !== 30081);
  });

  test('load balancers: node ports unless opted out, a health-check port for Local traffic', () => {
    const allocator = new ServiceIpAllocator();
    const local = service('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
    assert.deepEqual(allocator.allocate(local, empty()), []);
    const healthCheck = spec(local)['healthCheckNodePort'] as number;
    assert.ok(healthCheck >= 30000 && healthCheck <= 32767);
    assert.notEqual(healthCheck, nodePorts(local)[0]);
    const bare = service('lb2', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false });
    assert.deepEqual(allocator.allocate(bare, empty()), []);
    assert.deepEqual(nodePorts(bare), [undefined]);
    assert.equal(spec(bare)['healthCheckNodePort'], undefined);
  });

  test('a full port range throws', () => {
    const allocator = new ServiceIpAllocator({ nodePortRange: '30000-30002' });
    const used = allocateAll(allocator, ['a', 'b', 'c'].map((name) => service(name, { type: 'NodePort' })));
    assert.deepEqual([...used.nodePorts].sort(), [30000, 30001, 30002]);
    assert.throws(() => allocator.allocate(service('d', { type: 'NodePort' }), used), { name: 'ServiceRangeFullError', message: 'failed to allocate a nodePort: range is full', range: '30000-30002' });
  });

  test('serviceResourcesInUse collects addresses and every kind of node port', () => {
    const used = serviceResourcesInUse([
      service('a', { clusterIP: '10.96.0.20', type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }),
      service('b', { clusterIP: 'None' }),
      service('c', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIPs: ['10.96.0.21'], healthCheckNodePort: 31000, ports: [{ port: 80, nodePort: 30081 }] }),
    ]);
    assert.deepEqual([...used.clusterIPs].sort(), ['10.96.0.20', '10.96.0.21']);
    assert.deepEqual([...used.nodePorts].sort(), [30080, 30081, 31000]);
  });
});

/**
 * The cases of the Kubernetes dual-stack docs ("Services" in concepts/services-networking/
 * dual-stack) and of upstream's initIPFamilyFields, on a cluster with
 * --service-cidr 10.96.0.0/16,fd00:10:96::/112 unless the row says otherwise.
 */
describe('dual-stack families', () => {
  const V4 = '10.96.0.0/16';
  const V6 = 'fd00:10:96::/112';
  const inV4 = (ip: unknown): boolean => typeof ip === 'string' && netContains(parseIpNet(V4), parseIp(ip));
  const inV6 = (ip: unknown): boolean => typeof ip === 'string' && netContains(parseIpNet(V6), parseIp(ip));

  interface Row {
    name: string;
    cidr?: string;
    spec: Json;
    policy?: string;
    families?: string[];
    /** One check per clusterIPs entry, or 'None'. */
    ips?: ((ip: unknown) => boolean)[] | 'None';
    causes?: string[];
  }
  const rows: Row[] = [
    { name: 'no policy: SingleStack on the primary family', spec: {}, policy: 'SingleStack', families: ['IPv4'], ips: [inV4] },
    { name: 'no policy, IPv6-primary cluster', cidr: `${V6},${V4}`, spec: {}, policy: 'SingleStack', families: ['IPv6'], ips: [inV6] },
    { name: 'SingleStack asking for the secondary family', spec: { ipFamilies: ['IPv6'] }, policy: 'SingleStack', families: ['IPv6'], ips: [inV6] },
    { name: 'PreferDualStack gets both, primary first', spec: { ipFamilyPolicy: 'PreferDualStack' }, policy: 'PreferDualStack', families: ['IPv4', 'IPv6'], ips: [inV4, inV6] },
    { name: 'PreferDualStack with IPv6 first', spec: { ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv6', 'IPv4'] }, policy: 'PreferDualStack', families: ['IPv6', 'IPv4'], ips: [inV6, inV4] },
    { name: 'RequireDualStack naming IPv6 only adds IPv4 second', spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6'] }, policy: 'RequireDualStack', families: ['IPv6', 'IPv4'], ips: [inV6, inV4] },
    { name: 'PreferDualStack on a single-stack cluster', cidr: V4, spec: { ipFamilyPolicy: 'PreferDualStack' }, policy: 'PreferDualStack', families: ['IPv4'], ips: [inV4] },
    { name: 'RequireDualStack on a single-stack cluster', cidr: V4, spec: { ipFamilyPolicy: 'RequireDualStack' }, causes: ['spec.ipFamilyPolicy'] },
    { name: 'two families without a policy', spec: { ipFamilies: ['IPv4', 'IPv6'] }, causes: ['spec.ipFamilyPolicy'] },
    { name: 'two cluster IPs with SingleStack', spec: { ipFamilyPolicy: 'SingleStack', clusterIPs: ['10.96.0.20', 'fd00:10:96::20'], clusterIP: '10.96.0.20' }, causes: ['spec.ipFamilyPolicy'] },
    { name: 'requested IPs of both families are kept', spec: { ipFamilyPolicy: 'RequireDualStack', clusterIPs: ['fd00:10:96::20', '10.96.0.20'] }, policy: 'RequireDualStack', families: ['IPv6', 'IPv4'], ips: [(ip) => ip === 'fd00:10:96::20', (ip) => ip === '10.96.0.20'] },
    { name: 'a requested IPv6 address on an IPv4 cluster', cidr: V4, spec: { clusterIP: 'fd00:10:96::20' }, causes: ['spec.clusterIPs[0]'] },
    { name: 'a requested IPv6 address outside the IPv6 range', spec: { ipFamilyPolicy: 'PreferDualStack', clusterIPs: ['10.96.0.20', 'fd00:99::20'] }, causes: ['spec.clusterIPs'] },
    { name: 'headless with selector follows the policy', spec: { clusterIP: 'None', ipFamilyPolicy: 'PreferDualStack' }, policy: 'PreferDualStack', families: ['IPv4', 'IPv6'], ips: 'None' },
    { name: 'headless with selector, no policy', spec: { clusterIP: 'None' }, policy: 'SingleStack', families: ['IPv4'], ips: 'None' },
    { name: 'headless without selector defaults to RequireDualStack', spec: { clusterIP: 'None', selector: {} }, policy: 'RequireDualStack', families: ['IPv4', 'IPv6'], ips: 'None' },
    { name: 'headless without selector may be dual on a single-stack cluster', cidr: V4, spec: { clusterIP: 'None', selector: {} }, policy: 'RequireDualStack', families: ['IPv4', 'IPv6'], ips: 'None' },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const allocator = new ServiceIpAllocator({ serviceCidr: row.cidr ?? `${V4},${V6}` });
      const object = service('web', row.spec);
      const causes = allocator.allocate(object, empty());
      if (row.causes) {
        assert.deepEqual(summaryOf(causes), row.causes);
        assert.equal(spec(object)['ipFamilyPolicy'], row.spec['ipFamilyPolicy'], 'a refused Service is left untouched');
        return;
      }
      assert.deepEqual(causes, []);
      const s = spec(object);
      assert.equal(s['ipFamilyPolicy'], row.policy);
      assert.deepEqual(s['ipFamilies'], row.families);
      if (row.ips === 'None') {
        assert.deepEqual(s['clusterIPs'], ['None']);
      } else {
        const ips = s['clusterIPs'] as unknown[];
        assert.equal(ips.length, row.ips?.length);
        row.ips?.forEach((check, i) => assert.ok(check(ips[i]), `clusterIPs[${i}] = ${String(ips[i])}`));
        assert.equal(s['clusterIP'], ips[0], 'clusterIP is clusterIPs[0]');
      }
      // The strategy's validation accepts what the allocator wrote.
      assert.deepEqual(strategyFor('Service').validate(object), []);
    });
  }

  test('the kubernetes Service stays on the primary family', () => {
    for (const [cidr, expected] of [[`${V4},${V6}`, '10.96.0.1'], [`${V6},${V4}`, 'fd00:10:96::1']] as const) {
      const allocator = new ServiceIpAllocator({ serviceCidr: cidr });
      assert.equal(allocator.kubernetesServiceIP, expected);
      const kubernetes = service('kubernetes', { clusterIP: allocator.kubernetesServiceIP, ports: [{ port: 443, name: 'https' }] });
      assert.deepEqual(allocator.allocate(kubernetes, empty()), []);
      assert.deepEqual(spec(kubernetes)['clusterIPs'], [expected]);
    }
  });

  test('dual picks are unique per family across many services', () => {
    const allocator = new ServiceIpAllocator({ serviceCidr: `${V4},${V6}` });
    const used = allocateAll(allocator, Array.from({ length: 100 }, (_, i) => service(`s${i}`, { ipFamilyPolicy: 'RequireDualStack' })));
    assert.equal([...used.clusterIPs].filter(inV4).length, 100);
    assert.equal([...used.clusterIPs].filter(inV6).length, 100);
  });

  test('update: upgrade to dual-stack keeps the primary IP; SingleStack releases the secondary', () => {
    const allocator = new ServiceIpAllocator({ serviceCidr: `${V4},${V6}` });
    const old = service('web');
    assert.deepEqual(allocator.allocate(old, empty()), []);
    const primary = spec(old)['clusterIP'];

    const upgrade = structuredClone(old);
    spec(upgrade)['ipFamilyPolicy'] = 'PreferDualStack';
    assert.deepEqual(allocator.allocate(upgrade, serviceResourcesInUse([old]), old), []);
    const ips = spec(upgrade)['clusterIPs'] as unknown[];
    assert.equal(ips[0], primary);
    assert.ok(inV6(ips[1]));
    assert.deepEqual(spec(upgrade)['ipFamilies'], ['IPv4', 'IPv6']);

    const shrink = structuredClone(upgrade);
    spec(shrink)['clusterIPs'] = [primary];
    spec(shrink)['ipFamilies'] = ['IPv4'];
    assert.deepEqual(summaryOf(allocator.allocate(shrink, serviceResourcesInUse([upgrade]), upgrade)), ['spec.ipFamilyPolicy', 'spec.ipFamilyPolicy'], 'PreferDualStack may not drop the secondary');

    const downgrade = structuredClone(upgrade);
    spec(downgrade)['ipFamilyPolicy'] = 'SingleStack';
    assert.deepEqual(allocator.allocate(downgrade, serviceResourcesInUse([upgrade]), upgrade), []);
    assert.deepEqual(spec(downgrade)['clusterIPs'], [primary]);
    assert.deepEqual(spec(downgrade)['ipFamilies'], ['IPv4']);
  });
});
